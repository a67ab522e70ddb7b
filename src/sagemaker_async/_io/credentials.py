"""Credentials for signing: resolved once, off the event loop, refreshed ahead of expiry.

botocore stays the source of credentials (its default chain knows env vars, shared files,
SSO, IMDS, containers, processes), but every one of those sources can block: files, HTTP
to IMDS or SSO, a subprocess. So the chain runs in a worker thread, once, and a refresh is
a single in-flight task that every concurrent call awaits instead of each starting its own.
Explicit and environment keys never import botocore at all: that import costs ~85 ms.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .._protocol.sigv4 import FrozenCredentials
from ..errors import NoCredentialsError, ParamValidationError

__all__ = ["CredentialProvider", "make_provider"]

# How often a refreshable credential's expiry is looked at, at most (seconds). botocore's
# own refresh windows are 10–15 minutes wide, so a check per second loses nothing.
_CHECK_INTERVAL = 1.0


class CredentialProvider(Protocol):
    """What the client needs from a credential source."""

    source: str

    async def get(self) -> FrozenCredentials:
        """The credentials to sign the next request with."""
        ...

    async def refresh(self, stale: FrozenCredentials) -> FrozenCredentials | None:
        """New credentials after the service said ``stale`` expired; None if none are newer."""
        ...


class StaticProvider:
    """Keys that never change: explicit arguments or environment variables."""

    __slots__ = ("_credentials", "source")

    def __init__(self, credentials: FrozenCredentials, source: str) -> None:
        self._credentials = credentials
        self.source = source

    async def get(self) -> FrozenCredentials:
        return self._credentials

    async def refresh(self, stale: FrozenCredentials) -> FrozenCredentials | None:
        return None


def _freeze(obj: Any) -> FrozenCredentials:
    """One consistent snapshot of a credentials object (may block: call in a thread)."""
    getter = getattr(obj, "get_frozen_credentials", None)
    snapshot = getter() if callable(getter) else obj
    access_key = getattr(snapshot, "access_key", None)
    secret_key = getattr(snapshot, "secret_key", None)
    if not access_key or not secret_key:
        raise NoCredentialsError("The credentials object has no access key or secret key.")
    return FrozenCredentials(str(access_key), str(secret_key), getattr(snapshot, "token", None))


class ObjectProvider:
    """Any object with ``access_key``/``secret_key``/``token``, botocore's refreshable ones too.

    Reading the attributes of a botocore ``RefreshableCredentials`` may refresh it, which is
    blocking I/O; so snapshots are taken in a worker thread, and only when its own
    ``refresh_needed()`` says so (looked at no more than once a second).
    """

    __slots__ = ("_clock", "_current", "_inflight", "_next_check", "_obj", "_plain", "source")

    def __init__(
        self, obj: Any, source: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._obj = obj
        self.source = source
        self._clock = clock
        self._current: FrozenCredentials | None = None
        self._next_check = 0.0
        self._inflight: asyncio.Future[FrozenCredentials] | None = None
        self._plain = not callable(getattr(obj, "get_frozen_credentials", None)) and not callable(
            getattr(obj, "refresh_needed", None)
        )

    def _needs_refresh(self) -> bool:
        check = getattr(self._obj, "refresh_needed", None)
        if not callable(check):
            return False
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + _CHECK_INTERVAL
        return bool(check())

    async def get(self) -> FrozenCredentials:
        current = self._current
        # While a refresh is in flight every caller waits for it, as botocore's own callers
        # wait for a mandatory refresh, rather than signing with keys about to expire.
        if current is not None and self._inflight is None and not self._needs_refresh():
            if self._plain:
                # A plain attribute holder may be mutated by its owner: read it each time
                # (no I/O behind plain attributes), reusing the snapshot while unchanged.
                obj = self._obj
                if (obj.access_key, obj.secret_key, obj.token) != (
                    current.access_key,
                    current.secret_key,
                    current.token,
                ):
                    current = self._current = _freeze(obj)
            return current
        return await self._snapshot()

    async def refresh(self, stale: FrozenCredentials) -> FrozenCredentials | None:
        fresh = await self._snapshot()
        return None if fresh == stale else fresh

    async def _snapshot(self) -> FrozenCredentials:
        """Take a snapshot in a thread; concurrent callers share the one in flight."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._take_snapshot())
        return await asyncio.shield(self._inflight)

    async def _take_snapshot(self) -> FrozenCredentials:
        try:
            self._current = await asyncio.to_thread(_freeze, self._obj)
            return self._current
        finally:
            self._inflight = None


class ChainProvider:
    """botocore's default provider chain for a profile, resolved once in a worker thread."""

    __slots__ = ("_delegate", "_inflight", "_profile", "source")

    def __init__(self, profile_name: str | None) -> None:
        self._profile = profile_name
        self.source = (
            f"botocore chain (profile {profile_name!r})" if profile_name else ("botocore chain")
        )
        self._delegate: ObjectProvider | None = None
        self._inflight: asyncio.Future[ObjectProvider] | None = None

    def _resolve(self) -> ObjectProvider:
        import botocore.exceptions
        import botocore.session

        try:
            session = botocore.session.Session(profile=self._profile)
            found = session.get_credentials()
        except botocore.exceptions.ProfileNotFound as exc:
            raise ParamValidationError(str(exc), param="profile_name") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise NoCredentialsError(f"Could not resolve credentials: {exc}") from None
        if found is None:
            raise NoCredentialsError()
        provider = ObjectProvider(found, f"{self.source}: {getattr(found, 'method', '?')}")
        provider._current = _freeze(found)
        return provider

    async def _delegate_provider(self) -> ObjectProvider:
        if self._delegate is not None:
            return self._delegate
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(asyncio.to_thread(self._resolve))
        try:
            self._delegate = await asyncio.shield(self._inflight)
        finally:
            if self._inflight is not None and self._inflight.done():
                self._inflight = None
        return self._delegate

    async def get(self) -> FrozenCredentials:
        delegate = self._delegate
        if delegate is None:
            delegate = await self._delegate_provider()
        return await delegate.get()

    async def refresh(self, stale: FrozenCredentials) -> FrozenCredentials | None:
        # The chain may now find other credentials (a rotated file, a new SSO token):
        # resolve it afresh rather than trusting the object that just expired.
        self._delegate = None
        fresh = await self.get()
        return None if fresh == stale else fresh


def _has_attribute(obj: object, name: str) -> bool:
    """``hasattr`` without running a property or ``__getattr__``."""
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def make_provider(
    *,
    aws_access_key_id: str | None,
    aws_secret_access_key: str | None,
    aws_session_token: str | None,
    credentials: object | None,
    profile_name: str | None,
    env: Mapping[str, str],
    clock: Callable[[], float] = time.monotonic,
) -> CredentialProvider:
    """Pick the source the way boto3 does: explicit keys, an object, env vars, the chain."""
    if aws_access_key_id is not None or aws_secret_access_key is not None:
        if not aws_access_key_id or not aws_secret_access_key:
            raise ParamValidationError(
                "aws_access_key_id and aws_secret_access_key must be given together",
                param="aws_access_key_id" if not aws_access_key_id else "aws_secret_access_key",
            )
        return StaticProvider(
            FrozenCredentials(aws_access_key_id, aws_secret_access_key, aws_session_token or None),
            "explicit",
        )
    if aws_session_token is not None:
        raise ParamValidationError(
            "aws_session_token needs aws_access_key_id and aws_secret_access_key",
            param="aws_session_token",
        )
    if credentials is not None:
        # Looked up statically: on botocore's RefreshableCredentials these are properties
        # that may refresh (blocking I/O), and the constructor may run on the event loop.
        if not all(_has_attribute(credentials, n) for n in ("access_key", "secret_key", "token")):
            raise ParamValidationError(
                "credentials must have access_key, secret_key and token attributes "
                "(e.g. botocore.credentials.Credentials)",
                param="credentials",
            )
        return ObjectProvider(credentials, "credentials object", clock=clock)
    # botocore skips environment keys when a profile is named explicitly; so do we.
    if profile_name is None:
        key = env.get("AWS_ACCESS_KEY_ID")
        secret = env.get("AWS_SECRET_ACCESS_KEY")
        if key and secret:
            token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
            return StaticProvider(FrozenCredentials(key, secret, token), "environment")
    return ChainProvider(profile_name)
