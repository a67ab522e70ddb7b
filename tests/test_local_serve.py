"""``serve`` (what ``sagemaker-async local serve`` runs), its ``python -m`` entry point, and
the bundled demo models."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from sagemaker_async import AsyncInferenceClient
from sagemaker_async.local import InvocationAttributes, serve
from sagemaker_async.local._serve import banner, parse_endpoint_specs
from sagemaker_async.local.demo_models import always_fails, echo_upper, sentiment
from test_local_support import KEY, REGION, SECRET, warm_moto

__all__ = ["warm_moto"]

DEMO = "sagemaker_async.local.demo_models"


def _attributes(custom: str | None = None, content_type: str | None = None) -> InvocationAttributes:
    return InvocationAttributes(content_type, None, custom, "id-1", "demo")


# -- serve, in process ---------------------------------------------------------------------


@pytest.mark.usefixtures("warm_moto")
async def _serving(*specs: str, **options: Any) -> tuple[asyncio.Task[None], list[str]]:
    """``serve`` started as a task, once its banner (the lines it printed) is out."""
    lines: list[str] = []
    ready = asyncio.Event()

    def collect(line: str) -> None:
        lines.append(line)
        if line.startswith("# Ctrl-C"):
            ready.set()

    task = asyncio.create_task(serve(list(specs), print=collect, **options))
    await asyncio.wait_for(ready.wait(), 5)
    return task, lines


async def test_serve_prints_the_exports_first_then_serves_until_cancelled() -> None:
    secret = "s3cr3t-never-printed"
    task, lines = await _serving(
        f"demo={DEMO}:echo_upper", f"sentiment={DEMO}:sentiment", credentials=f"{KEY}:{secret}"
    )
    runtime, s3 = lines[:2]
    assert runtime.startswith("export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:")
    url = runtime.split("=", 1)[1]
    assert s3 == f"export AWS_ENDPOINT_URL_S3={url}"
    exports = [line for line in lines if line.startswith("export ")]
    assert lines[: len(exports)] == exports  # every export line first, then comments
    comments = lines[len(exports) :]
    assert "demo, sentiment" in comments[0]
    assert "s3://sagemaker-async-local/output" in comments[1]
    assert all(line.startswith("#") for line in comments)  # harmless if eval'd by a shell
    assert not any(secret in line for line in lines)

    async with AsyncInferenceClient(
        REGION,
        endpoint_url=url,
        s3_endpoint_url=url,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
    ) as client:
        inv = await client.invoke_endpoint_async("demo", body=b"hi")
        assert inv.output_location is not None
        assert inv.output_location.startswith("s3://sagemaker-async-local/output/")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "at least one endpoint"),
        (["no-equals-sign"], "is not NAME=package.module:function"),
        (["a="], "is not NAME=package.module:function"),
        (["a=module_without_colon"], "is not of the form package.module:function"),
        ([f"a={DEMO}:echo_upper", f"a={DEMO}:sentiment"], "given twice"),
    ],
)
def test_bad_endpoint_specs_are_refused_with_a_reason(specs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_endpoint_specs(specs)


def test_endpoint_specs() -> None:
    # The server process imports no handler: its worker processes do, at start.
    parsed = parse_endpoint_specs([f"a={DEMO}:echo_upper", "b=http://127.0.0.1:8080"])
    assert parsed == {"a": f"{DEMO}:echo_upper", "b": "http://127.0.0.1:8080"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("json:no_such_function", "'json' has no 'no_such_function'"),
        ("json:__doc__", "names a str, not a callable"),
    ],
)
async def test_handlers_that_cannot_load_stop_the_start_with_a_reason(
    target: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await serve([f"a={target}"], print=lambda line: None)


# -- python -m sagemaker_async.local serve ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
async def test_python_m_serve_runs_and_stops_on_a_signal(signum: int, status: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagemaker_async.local",
        "serve",
        "--endpoint",
        f"demo={DEMO}:echo_upper",
        "--concurrency",
        "2",
        "--credentials",
        f"{KEY}:{SECRET}",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        second = (await asyncio.wait_for(process.stdout.readline(), 5)).decode().strip()
        url = first.split("=", 1)[1]
        assert second == f"export AWS_ENDPOINT_URL_S3={url}"
        async with AsyncInferenceClient(
            REGION,
            endpoint_url=url,
            s3_endpoint_url=url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ) as client:
            inv = await client.invoke_endpoint_async("demo", body=b"hi")
            assert inv.inference_id
        process.send_signal(signum)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == status
        assert b"Traceback" not in stderr
        # Our log line for the invocation, and no other library's chatter.
        assert f"demo: {inv.inference_id} queued".encode() in stderr
        assert b"HTTP Request" not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
def test_python_m_serve_reports_a_bad_spec_with_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sagemaker_async.local", "serve", "--endpoint", "bad"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    # The command line's own ``local serve``: its one-line error, its exit status.
    assert result.stderr.startswith("sagemaker-async: error: endpoint 'bad' is not NAME=")
    assert "Traceback" not in result.stderr


# -- the demo models ---------------------------------------------------------------------------


def test_echo_upper() -> None:
    assert echo_upper(b"hello") == b"HELLO"


async def test_sentiment_scores_words() -> None:
    body, content_type = await sentiment(b"I love it, great and fast", _attributes())
    assert content_type == "application/json"
    assert json.loads(body) == {"label": "positive", "score": 1.0, "words": 6}
    body, _ = await sentiment(
        b'{"text": "slow and bad but good"}', _attributes(content_type="application/json")
    )
    assert json.loads(body)["label"] == "negative"
    body, _ = await sentiment(b"a table", _attributes(custom="delay=0"))
    assert json.loads(body)["label"] == "neutral"


@pytest.mark.parametrize("payload", [b"", b"   ", b"\xff\xfe"])
async def test_sentiment_fails_on_empty_or_non_text(payload: bytes) -> None:
    with pytest.raises(ValueError, match="sentiment needs"):
        await sentiment(payload, _attributes())


def test_always_fails() -> None:
    with pytest.raises(RuntimeError, match="always fails"):
        always_fails(b"x")


# -- the banner: every line an SDK needs, nothing it does not -------------------------------


class _Started:
    endpoint_url = s3_endpoint_url = "http://127.0.0.1:4000"
    endpoint_names = ("e",)
    output_path = "s3://b-out/output"
    failure_path = "s3://b-out/failure"
    region = "us-east-1"
    queue_url: str | None = None
    sqs_endpoint_url = "http://127.0.0.1:4000"


def _exported(lines: list[str]) -> dict[str, str]:
    pairs = [word.split("=", 1) for line in lines if line.startswith("export ")
             for word in line.split()[1:]]  # fmt: skip
    return dict(pairs)


_URLS = {
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://127.0.0.1:4000",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4000",
}
_DUMMY = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@pytest.mark.parametrize(
    ("environ", "signed", "expected"),
    [
        # A clean shell: the served region as the AWS CLI v1 and boto3 read it, dummy keys.
        ({}, False, {"AWS_DEFAULT_REGION": "us-east-1", **_DUMMY}),
        # AWS_REGION naming another region is read first by our client and the AWS CLI v2.
        ({"AWS_REGION": "eu-west-1"}, False,
         {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", **_DUMMY}),
        # What is set right already is not repeated; keys of your own are never replaced.
        ({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKID"}, False, {}),
        ({"AWS_DEFAULT_REGION": "ap-south-1", "AWS_PROFILE": "dev"}, False,
         {"AWS_DEFAULT_REGION": "us-east-1"}),
        # Signatures checked: the keys are the user's own, never printed.
        ({}, True, {"AWS_DEFAULT_REGION": "us-east-1"}),
    ],
)  # fmt: skip
def test_the_banner_exports_what_an_sdk_needs(
    environ: dict[str, str], signed: bool, expected: dict[str, str]
) -> None:
    lines = banner(_Started(), signed=signed, environ=environ)  # type: ignore[arg-type]
    assert _exported(lines) == {**_URLS, **expected}
    exports = [line for line in lines if line.startswith("export ")]
    assert lines[: len(exports)] == exports
    assert all(line.startswith("#") for line in lines[len(exports) :])


def test_the_banner_exports_the_queue_and_a_region_given_to_serve() -> None:
    started = _Started()
    started.region = "eu-central-1"
    started.queue_url = "http://127.0.0.1:4000/123456789012/q"
    lines = banner(started, signed=True, environ={})  # type: ignore[arg-type]
    assert _exported(lines) == {
        **_URLS,
        "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:4000",
        "SAGEMAKER_ASYNC_QUEUE_URL": "http://127.0.0.1:4000/123456789012/q",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }
    assert any("for region eu-central-1" in line for line in lines)


# -- where handlers run: --isolation, and the worker-process cap ---------------------------------


async def test_serve_in_process_runs_a_module_handler_in_the_server_process() -> None:
    """``--isolation in-process``: thousands of slow async handlers need no thousand forks."""
    task, lines = await _serving(
        "pid=handler_modules.misbehaving:pid",
        concurrency=1000,  # over the worker-process cap: fine in-process
        isolation="in-process",
    )
    try:
        url = lines[0].split("=", 1)[1]
        async with AsyncInferenceClient(
            REGION,
            endpoint_url=url,
            s3_endpoint_url=url,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ) as client:
            inv = await client.invoke_endpoint_async("pid", body=b"x")
            result = await client.wait_for_result(inv, timeout=10, poll_interval=0.05)
        assert result.body == str(os.getpid()).encode()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_serve_refuses_more_worker_processes_than_the_cap_before_starting() -> None:
    with pytest.raises(ValueError, match=r"10000 worker processes .*--isolation in-process"):
        await serve([f"demo={DEMO}:echo_upper"], concurrency=10_000, print=lambda _: None)


@pytest.mark.slow
def test_the_command_line_refuses_the_cap_with_status_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sagemaker_async", "local", "serve", "--endpoint",
         f"demo={DEMO}:echo_upper", "--concurrency", "10000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--isolation in-process" in result.stderr
    assert "Traceback" not in result.stderr
