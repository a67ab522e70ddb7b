"""Shared constants and builders for the client tests.

Every client under test sends through ``httpx.MockTransport(router.async_handler)`` (the
contract's ``transport=`` seam; httpx is never patched globally), signs with a fixed clock
and never sleeps: its ``Runtime`` (a constructor argument) sleeps with a recorder of the
backoffs it was asked for.
"""

from __future__ import annotations

import calendar
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import respx

from sagemaker_async import AsyncInferenceClient
from sagemaker_async._io.runtime import Runtime

# The fixed clock of every signature: 2026-11-26T00:18:21Z.
FIXED_TIME = float(calendar.timegm((2026, 11, 26, 0, 18, 21)))
AMZ_DATE = "20261126T001821Z"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLEtokenOnlyForTests//////////wEaDCjH+example=="

REGION = "us-east-1"
RUNTIME_URL = "https://runtime.sagemaker.us-east-1.amazonaws.com"
ENDPOINT = "my-endpoint"
INVOKE_URL = f"{RUNTIME_URL}/endpoints/{ENDPOINT}/async-invocations"
INPUT = "s3://my-bucket/requests/0001.json"
OUTPUT = "s3://my-bucket/out/inf-1.out"
FAILURE = "s3://my-bucket/failures/inf-1-error.out"


class SleepRecorder:
    """Stands in for ``asyncio.sleep``: records the delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def new_router() -> respx.MockRouter:
    """A strict router: an unmatched request fails, and tests call assert_all_called."""
    return respx.MockRouter(assert_all_called=True, assert_all_mocked=True)


def make_client(
    router: respx.Router | None = None,
    *,
    clock: Callable[[], float] = lambda: FIXED_TIME,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
    poll_sleep: Callable[[float], Awaitable[Any]] | None = None,
    random: Callable[[], float] | None = None,
    monotonic: Callable[[], float] | None = None,
    **kwargs: Any,
) -> tuple[AsyncInferenceClient, SleepRecorder]:
    """A client on the mock seam with fixed keys, fixed clock and recorded sleeps.

    ``clock``, ``sleep`` (retry backoff), ``poll_sleep`` (waits), ``random`` and
    ``monotonic`` reach the client through its constructor (its ``Runtime``); the returned
    recorder is the backoff sleep unless one is given.
    """
    sleeps = SleepRecorder()
    runtime = Runtime(clock=clock, sleep=sleep or sleeps, poll_sleep=poll_sleep)
    if random is not None:
        runtime = dataclasses.replace(runtime, random=random)
    if monotonic is not None:
        runtime = dataclasses.replace(runtime, monotonic=monotonic)
    kwargs.setdefault("_runtime", runtime)
    if router is not None:
        kwargs.setdefault("transport", httpx.MockTransport(router.async_handler))
    kwargs.setdefault("region_name", REGION)
    if "credentials" not in kwargs and "profile_name" not in kwargs:
        kwargs.setdefault("aws_access_key_id", ACCESS_KEY)
        kwargs.setdefault("aws_secret_access_key", SECRET_KEY)
    return AsyncInferenceClient(**kwargs), sleeps


def accepted(
    inference_id: str = "inf-1",
    *,
    request_id: str = "req-1",
    output: str | None = OUTPUT,
    failure: str | None = FAILURE,
    status: int = 202,
) -> httpx.Response:
    """The service's answer to a queued invocation."""
    headers = {"x-amzn-RequestId": request_id}
    if output is not None:
        headers["X-Amzn-SageMaker-OutputLocation"] = output
    if failure is not None:
        headers["X-Amzn-SageMaker-FailureLocation"] = failure
    return httpx.Response(status, headers=headers, json={"InferenceId": inference_id})


def service_error(
    status: int,
    code: str,
    message: str = "",
    *,
    request_id: str = "req-err",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An AWS rest-json error: code in x-amzn-ErrorType and the body, message in the body."""
    all_headers = {
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.coral.service/",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    body = json.dumps({"__type": code, "message": message}).encode()
    return httpx.Response(status, headers=all_headers, content=body)


def use_config_file(
    monkeypatch: Any, tmp_path: Any, text: str, env: dict[str, str] | None = None
) -> None:
    """Point AWS_CONFIG_FILE at a fresh file holding ``text``, and set ``env`` too."""
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config"
    path.write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
