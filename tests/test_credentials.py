"""Where the signing keys come from: explicit, environment, profile files, objects, nothing.

conftest strips every AWS_* variable and points the shared files at empty temp paths (with
IMDS disabled), so the chain finds only what a test puts there.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from helpers import (
    ACCESS_KEY,
    INPUT,
    INVOKE_URL,
    SESSION_TOKEN,
    accepted,
    make_client,
    new_router,
)
from sagemaker_async import AsyncInferenceClient, NoCredentialsError, ParamValidationError


def credential_of(request: httpx.Request) -> str:
    """The access key a request was signed with."""
    authorization = request.headers["authorization"]
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


async def signed_with(client: AsyncInferenceClient, route: Any) -> tuple[str, str | None]:
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    request = route.calls.last.request
    return credential_of(request), request.headers.get("x-amz-security-token")


def write_credentials_file(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path.write_text(textwrap.dedent(text))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))


# -- explicit and environment keys ------------------------------------------------------------


async def test_explicit_keys() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    assert await signed_with(client, route) == (ACCESS_KEY, None)


async def test_explicit_keys_with_a_session_token() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, aws_session_token=SESSION_TOKEN)
    assert await signed_with(client, route) == (ACCESS_KEY, SESSION_TOKEN)
    assert "x-amz-security-token" in route.calls.last.request.headers["authorization"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"aws_access_key_id": "AKID", "aws_secret_access_key": None}, "aws_secret_access_key"),
        ({"aws_access_key_id": None, "aws_secret_access_key": "s"}, "aws_access_key_id"),
        ({"aws_access_key_id": "", "aws_secret_access_key": "s"}, "aws_access_key_id"),
        (
            {"aws_access_key_id": None, "aws_secret_access_key": None, "aws_session_token": "t"},
            "aws_session_token",
        ),
        ({"credentials": object()}, "credentials"),
    ],
)
def test_incomplete_explicit_credentials_are_refused(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ParamValidationError) as info:
        AsyncInferenceClient("us-east-1", **kwargs)
    assert info.value.param == param


@pytest.mark.parametrize("token_var", [None, "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"])
async def test_environment_keys(monkeypatch: pytest.MonkeyPatch, token_var: str | None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    if token_var:
        monkeypatch.setenv(token_var, "env-token")
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, aws_access_key_id=None, aws_secret_access_key=None)
    assert await signed_with(client, route) == ("AKIDENV", "env-token" if token_var else None)


async def test_explicit_keys_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    assert await signed_with(client, route) == (ACCESS_KEY, None)


BOTOCORE_FREE = r"""
import asyncio, json, sys

import httpx
import sagemaker_async

after_import = sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3"))
seen = []


def handler(request):
    seen.append(request.headers["authorization"].split("Credential=")[1].split("/")[0])
    return httpx.Response(202, json={"InferenceId": "x"})


async def main():
    transport = httpx.MockTransport(handler)
    async with sagemaker_async.AsyncInferenceClient("us-east-1", transport=transport) as env:
        await env.invoke_endpoint_async("ep", "s3://b/k")
    async with sagemaker_async.AsyncInferenceClient(
        "us-east-1", aws_access_key_id="AKIDARG", aws_secret_access_key="s", transport=transport
    ) as explicit:
        await explicit.invoke_endpoint_async("ep", "s3://b/k")


asyncio.run(main())
after_calls = sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3"))
print(json.dumps({"after_import": after_import, "after_calls": after_calls, "seen": seen}))
"""


def test_import_and_static_keys_never_import_botocore() -> None:
    """botocore costs ~85 ms to import: only the full credential chain may pay for it."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}
    result = subprocess.run(
        [sys.executable, "-c", BOTOCORE_FREE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report == {"after_import": [], "after_calls": [], "seen": ["AKIDENV", "AKIDARG"]}


# -- the botocore chain: profiles --------------------------------------------------------------


async def test_profile_from_the_shared_credentials_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_credentials_file(
        tmp_path / "credentials",
        """\
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = default-secret

        [analytics]
        aws_access_key_id = AKIDPROFILE
        aws_secret_access_key = profile-secret
        aws_session_token = profile-token
        """,
        monkeypatch,
    )
    # botocore ignores environment keys when a profile is named: so do we.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, profile_name="analytics")
    assert await signed_with(client, route) == ("AKIDPROFILE", "profile-token")
    assert "analytics" in repr(client)


async def test_default_profile_through_the_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_credentials_file(
        tmp_path / "credentials",
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = default-secret\n",
        monkeypatch,
    )
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, profile_name=None)
    assert await signed_with(client, route) == ("AKIDDEFAULT", None)


async def test_unknown_profile_is_named() -> None:
    router = new_router()
    client, _ = make_client(router, profile_name="nope")
    async with client:
        with pytest.raises(ParamValidationError) as info:
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert info.value.param == "profile_name"
    assert not router.calls


async def test_no_credentials_anywhere() -> None:
    router = new_router()
    client, _ = make_client(router, profile_name=None)
    async with client:
        with pytest.raises(NoCredentialsError):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
        # Still none on the next call: the failure is not cached as a success.
        with pytest.raises(NoCredentialsError):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert not router.calls


async def test_the_chain_runs_once_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Files, SSO and IMDS are blocking I/O: the chain must never run on the loop's thread."""
    import botocore.session

    write_credentials_file(
        tmp_path / "credentials",
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n",
        monkeypatch,
    )
    threads: list[int] = []
    original = botocore.session.Session.get_credentials

    def recording(self: botocore.session.Session) -> Any:
        threads.append(threading.get_ident())
        return original(self)

    monkeypatch.setattr(botocore.session.Session, "get_credentials", recording)
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, profile_name=None)
    async with client:
        await asyncio.gather(
            *(client.invoke_endpoint_async("my-endpoint", INPUT) for _ in range(20))
        )
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert route.call_count == 21
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()


# -- credentials objects -----------------------------------------------------------------------


async def test_a_botocore_credentials_object() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    credentials = Credentials("AKIDOBJ", "obj-secret", "obj-token")
    client, _ = make_client(router, credentials=credentials)
    assert await signed_with(client, route) == ("AKIDOBJ", "obj-token")


async def test_a_plain_object_is_reread_when_its_owner_changes_it() -> None:
    class Holder:
        access_key = "AKIDONE"
        secret_key = "one"
        token = None

    holder = Holder()
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, credentials=holder)
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
        holder.access_key, holder.secret_key = "AKIDTWO", "two"
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert [credential_of(call.request) for call in route.calls] == ["AKIDONE", "AKIDTWO"]


async def test_an_object_without_keys_is_no_credentials() -> None:
    router = new_router()
    client, _ = make_client(router, credentials=Credentials("", ""))
    async with client:
        with pytest.raises(NoCredentialsError):
            await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert not router.calls


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def utc_in(seconds: float) -> datetime.datetime:
    return utc_now() + datetime.timedelta(seconds=seconds)


class CountingRefresh:
    """A ``refresh_using`` for botocore that hands out numbered keys, in any thread."""

    def __init__(self, now: Callable[[], datetime.datetime] = utc_now) -> None:
        self.calls = 0
        self.threads: set[int] = set()
        self.now = now

    def __call__(self) -> dict[str, str]:
        self.calls += 1
        self.threads.add(threading.get_ident())
        return {
            "access_key": f"AKIDFRESH{self.calls}",
            "secret_key": f"fresh-secret-{self.calls}",
            "token": f"fresh-token-{self.calls}",
            "expiry_time": (self.now() + datetime.timedelta(hours=1)).isoformat(),
        }


def count_snapshots(credentials: RefreshableCredentials) -> list[int]:
    """Count the client's reads of the object (each may block, so each is a thread hop)."""
    reads: list[int] = []
    original: Callable[[], Any] = credentials.get_frozen_credentials

    def counting() -> Any:
        reads.append(threading.get_ident())
        return original()

    credentials.get_frozen_credentials = counting  # type: ignore[method-assign]
    return reads


async def test_100_concurrent_calls_around_an_expiry_share_one_refresh() -> None:
    refresh = CountingRefresh()
    credentials = RefreshableCredentials.create_from_metadata(
        {
            "access_key": "AKIDSTALE",
            "secret_key": "stale-secret",
            "token": "stale-token",
            "expiry_time": utc_in(30).isoformat(),  # inside botocore's mandatory window
        },
        refresh_using=refresh,
        method="test",
    )
    reads = count_snapshots(credentials)
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, credentials=credentials)
    async with client:
        await asyncio.gather(
            *(client.invoke_endpoint_async("my-endpoint", INPUT) for _ in range(100))
        )
    assert refresh.calls == 1
    assert len(reads) == 1
    assert threading.get_ident() not in refresh.threads  # refreshed off the loop
    assert {credential_of(call.request) for call in route.calls} == {"AKIDFRESH1"}
    assert route.call_count == 100


async def test_a_warm_client_refreshes_once_when_expiry_approaches() -> None:
    """Keys in use for a while come close to expiry while 100 calls are in flight."""
    now = [1_000.0]
    epoch = datetime.datetime.now(datetime.timezone.utc)

    def botocore_now() -> datetime.datetime:
        return epoch + datetime.timedelta(seconds=now[0] - 1_000.0)

    refresh = CountingRefresh(botocore_now)
    credentials = RefreshableCredentials(
        "AKIDFIRST",
        "first-secret",
        "first-token",
        epoch + datetime.timedelta(hours=1),
        refresh_using=refresh,
        method="test",
        time_fetcher=botocore_now,
    )
    reads = count_snapshots(credentials)
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router, credentials=credentials, monotonic=lambda: now[0])
    async with client:
        await client.invoke_endpoint_async("my-endpoint", INPUT)
        now[0] += 3600 - 60  # a minute before expiry
        await asyncio.gather(
            *(client.invoke_endpoint_async("my-endpoint", INPUT) for _ in range(100))
        )
        now[0] += 5
        await client.invoke_endpoint_async("my-endpoint", INPUT)
    assert refresh.calls == 1
    assert len(reads) == 2  # the first snapshot, then the one refresh
    keys = [credential_of(call.request) for call in route.calls]
    assert keys[0] == "AKIDFIRST"
    assert set(keys[1:]) == {"AKIDFRESH1"}
