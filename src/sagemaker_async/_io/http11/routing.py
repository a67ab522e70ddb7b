"""Which transport carries a request: ours, or httpx's when the environment names a proxy.

We do not speak to proxies; :func:`proxy_configured` says when httpx would use one, and
:class:`OwnedSenders` (the transports a client builds for itself) hands those origins to an
``httpx.AsyncClient`` that honours the environment. Both trust ``AWS_CA_BUNDLE`` when set.

Like our pool, httpx's client is good for one event loop only: its connections live on the
loop that opened them, and used from a later loop (a second ``asyncio.run``) its first
request failed with "Event loop is closed". So each loop gets a client of its own, closed
as that loop shuts down: an async generator started on the loop holds it, and asyncio
finalises a loop's async generators before ``asyncio.run`` closes it. After the loop has
closed, the client's connections could only be closed through httpcore's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import ssl
from collections.abc import AsyncGenerator, Mapping

import httpx

from ...errors import ParamValidationError
from .transport import LeanTransport

__all__ = ["OwnedSenders", "ca_bundle_context", "proxy_configured"]

_MAX_CONNECTIONS = 256


class OwnedSenders:
    """The transports a client owns: our pool, and httpx's client for proxied origins.

    Each is built on first use; whether an origin is proxied is decided once per origin.
    """

    def __init__(self, timeout: httpx.Timeout, ca_bundle: str | None) -> None:
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._proxied: dict[tuple[str, bytes], bool] = {}
        self.lean: LeanTransport | None = None
        self.proxy_client: httpx.AsyncClient | None = None
        self._proxy_loop: asyncio.AbstractEventLoop | None = None
        self._proxy_closer: AsyncGenerator[None, None] | None = None

    def for_url(self, url: httpx.URL) -> LeanTransport | httpx.AsyncClient:
        origin = (url.scheme, url.netloc)
        proxied = self._proxied.get(origin)
        if proxied is None:
            proxied = self._proxied[origin] = proxy_configured(url, os.environ)
        if proxied:
            loop = asyncio.get_running_loop()
            if self.proxy_client is None or self._proxy_loop is not loop:
                self._open_proxy_client(loop)
            assert self.proxy_client is not None
            return self.proxy_client
        if self.lean is None:
            timeout = self._timeout
            self.lean = LeanTransport(
                ssl_context=ca_bundle_context(self._ca_bundle),
                max_connections=_MAX_CONNECTIONS,
                max_keepalive_connections=_MAX_CONNECTIONS,
                connect_timeout=timeout.connect,
                read_timeout=timeout.read,
                write_timeout=timeout.write,
                pool_timeout=timeout.pool,
            )
        return self.lean

    def _open_proxy_client(self, loop: asyncio.AbstractEventLoop) -> None:
        """httpx's client for this loop; a previous loop's was closed as that loop ended."""
        self._let_go_of_proxy_client()
        client = httpx.AsyncClient(
            trust_env=True,
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=_MAX_CONNECTIONS,
                max_keepalive_connections=_MAX_CONNECTIONS,
            ),
            verify=ca_bundle_context(self._ca_bundle) or True,
        )
        self.proxy_client, self._proxy_loop = client, loop
        self._proxy_closer = _closed_with_the_loop(client)

    def _let_go_of_proxy_client(self) -> None:
        """Forget the client of an earlier loop. Under ``asyncio.run`` its closer already
        ran; a loop closed without finalising its generators leaves it to the collector."""
        closer, self._proxy_closer = self._proxy_closer, None
        self.proxy_client = self._proxy_loop = None
        if closer is not None and getattr(closer, "ag_frame", None) is not None:
            # Not finalised by its loop: finish it here, so the collector does not ask that
            # (closed) loop to, and let its connections go with the client.
            with contextlib.suppress(BaseException):
                closer.aclose().send(None)

    async def aclose(self) -> None:
        lean, self.lean = self.lean, None
        closer, loop = self._proxy_closer, self._proxy_loop
        self._proxy_closer, self.proxy_client, self._proxy_loop = None, None, None
        if lean is not None:
            await lean.aclose()
        if closer is not None and loop is asyncio.get_running_loop():
            await closer.aclose()  # closes the client


async def _closes(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Holds ``client`` until the generator is closed, then closes it on its own loop."""
    try:
        yield
    finally:
        await client.aclose()


def _closed_with_the_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """A started ``_closes(client)``: its first step registers it with the running loop,
    whose ``shutdown_asyncgens`` (run by ``asyncio.run`` before it closes the loop) then
    closes it. The first step only reaches the ``yield``, so it is taken here, in place."""
    closer = _closes(client)
    step = closer.__anext__()
    with contextlib.suppress(StopIteration):
        step.send(None)
    return closer


def ca_bundle_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    """A context trusting ``AWS_CA_BUNDLE``, as botocore honours it; None: the default.

    Built only when a pool of ours is first needed.
    """
    if ca_bundle is None:
        return None
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ParamValidationError(
            f"AWS_CA_BUNDLE {ca_bundle!r} cannot be loaded: {exc}", param="AWS_CA_BUNDLE"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def proxy_configured(url: httpx.URL, env: Mapping[str, str]) -> bool:
    """Whether ``httpx.AsyncClient(trust_env=True)`` would send ``url`` through a proxy.

    The caller falls back to httpx's own transport when this is true, so it mirrors httpx
    0.28 exactly rather than any other reading of these variables: the environment is
    read as ``urllib.request.getproxies_environment`` reads it (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; lowercase names win; an empty lowercase
    value unsets; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set, as under CGI),
    then turned into httpx's mount patterns and matched most specific first. So in
    ``NO_PROXY``: ``*`` disables proxies; ``example.com`` covers it and its subdomains;
    ``.example.com`` only subdomains; IP addresses and ``localhost`` match exactly (no
    CIDR ranges); ``http://example.com`` matches that scheme and host only.
    """
    proxies = _env_proxies(env)
    mounts: dict[str, bool] = {}  # httpx mount pattern -> goes through a proxy
    for scheme in ("http", "https", "all"):
        if proxies.get(scheme):
            mounts[f"{scheme}://"] = True
    for entry in proxies.get("no", "").split(","):
        host = entry.strip()
        if host == "*":
            return False
        if not host:
            continue
        if "://" in host:
            mounts[host] = False
        elif _is_ip_literal(host, 4):
            mounts[f"all://{host}"] = False
        elif _is_ip_literal(host, 6):
            mounts[f"all://[{host}]"] = False
        elif host.lower() == "localhost":
            mounts[f"all://{host}"] = False
        else:
            mounts[f"all://*{host}"] = False
    patterns = sorted((_MountPattern(key), proxied) for key, proxied in mounts.items())
    for pattern, proxied in patterns:
        if pattern.matches(url):
            return proxied
    return False


def _env_proxies(env: Mapping[str, str]) -> dict[str, str]:
    proxies: dict[str, str] = {}
    for name, value in env.items():
        lname = name.lower()
        if value and lname.endswith("_proxy"):
            proxies[lname[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):
            lname = name.lower()
            if value:
                proxies[lname[:-6]] = value
            else:
                proxies.pop(lname[:-6], None)
    return proxies


def _is_ip_literal(text: str, version: int) -> bool:
    address = text.split("/")[0]
    try:
        if version == 4:
            ipaddress.IPv4Address(address)
        else:
            ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


class _MountPattern:
    """httpx's ``URLPattern`` (a private class there), re-stated: scheme, host, port."""

    def __init__(self, pattern: str) -> None:
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        if not self.host:
            self.regex: re.Pattern[str] | None = None
        elif self.host.startswith("*."):
            self.regex = re.compile(f"^.+\\.{re.escape(self.host[2:])}$")
        elif self.host.startswith("*"):
            self.regex = re.compile(f"^(.+\\.)?{re.escape(self.host[1:])}$")
        else:
            self.regex = re.compile(f"^{re.escape(self.host)}$")

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.regex is not None and not self.regex.match(url.host):
            return False
        return self.port is None or self.port == url.port

    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def __lt__(self, other: _MountPattern) -> bool:
        return self.priority() < other.priority()
