"""The command line waiting on notifications: ``wait --queue-url``, ``batch --wait
--queue-url`` and ``local serve --notify``, as subprocesses against a local endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli_support import (
    assert_one_error_line,
    cli_env,
    finish,
    interrupt,
    read_line_containing,
    run_cli,
    start_cli,
)
from sagemaker_async.local import LocalEndpoint
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")


async def upper(payload: bytes) -> tuple[bytes, str]:
    return payload.upper(), "text/plain"


def fails(payload: bytes) -> bytes:
    raise ValueError("the model cannot read this")


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[tuple[LocalEndpoint, dict[str, str]]]:
    async with LocalEndpoint({"echo": upper, "fails": fails}, notify=True) as endpoint:
        env = cli_env(endpoint, tmp_path, {"AWS_ENDPOINT_URL_SQS": endpoint.endpoint_url})
        yield endpoint, env


@pytest.mark.slow  # three runs of the CLI
async def test_wait_with_queue_url_by_invocation_json_and_by_locations(
    local: tuple[LocalEndpoint, dict[str, str]],
) -> None:
    endpoint, env = local
    assert endpoint.queue_url is not None
    invoked = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "echo", "--body", "hello", env=env
    )
    assert invoked.returncode == 0, invoked.stderr
    got = await run_cli(
        "wait", "--invocation", "-", "--queue-url", endpoint.queue_url, "--timeout", "10",
        env=env, stdin=invoked.stdout,
    )  # fmt: skip
    assert (got.returncode, got.stdout, got.stderr) == (0, b"HELLO", "")

    failed = await run_cli(
        "invoke-endpoint-async", "--endpoint-name", "fails", "--body", "x", env=env
    )
    locations = json.loads(failed.stdout)
    # Named by its locations only (no inference id): found by the objects it waits on.
    got = await run_cli(
        "wait",
        "--output-location", locations["OutputLocation"],
        "--failure-location", locations["FailureLocation"],
        "--queue-url", endpoint.queue_url, "--timeout", "10",
        env=env,
    )  # fmt: skip
    assert got.returncode == 1
    assert_one_error_line(got.stderr, "InferenceFailedError", "cannot read this")


async def test_wait_on_a_missing_queue_is_one_error_line(
    local: tuple[LocalEndpoint, dict[str, str]],
) -> None:
    endpoint, env = local
    got = await run_cli(
        "wait", "--output-location", f"{endpoint.output_path}/x.out",
        "--queue-url", f"{endpoint.endpoint_url}/123456789012/no-such-queue",
        env=env,
    )  # fmt: skip
    assert got.returncode == 1
    assert_one_error_line(got.stderr, "NonExistentQueue")


@pytest.mark.slow  # a batch run of the CLI, about a second
async def test_batch_wait_with_queue_url_records_each_outcome(
    local: tuple[LocalEndpoint, dict[str, str]], tmp_path: Path
) -> None:
    endpoint, env = local
    assert endpoint.queue_url is not None
    lines = []
    for number in range(6):
        path = tmp_path / f"{number}.txt"
        path.write_text(f"item {number}")
        lines.append(str(path))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "echo", "--manifest", str(manifest),
        "--record", str(record), "--wait", "--queue-url", endpoint.queue_url,
        "--timeout", "10", "--quiet",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["submitted"], summary["succeeded"]) == (6, 6)
    async with client_for(endpoint) as client:
        for entry in map(json.loads, record.read_text().splitlines()):
            if entry.get("outcome") == "succeeded":
                body = (await client.get_result(entry["result_location"])).body
                assert body.startswith(b"ITEM ")


async def test_batch_queue_url_without_wait_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "m.jsonl").write_text(f"{tmp_path / 'x.txt'}\n")
    got = await run_cli(
        "batch", "--endpoint-name", "echo", "--manifest", str(tmp_path / "m.jsonl"),
        "--record", str(tmp_path / "r.jsonl"), "--queue-url", "http://127.0.0.1:1/1/q",
        env=cli_env(None, tmp_path),
    )  # fmt: skip
    assert got.returncode == 2
    assert "--queue-url only makes sense with --wait" in got.stderr


@pytest.mark.slow  # starts the server in a child process
async def test_local_serve_notify_prints_the_sqs_endpoint_and_the_queue(tmp_path: Path) -> None:
    process = await start_cli(
        "local", "serve", "--endpoint", "up=sagemaker_async.local.demo_models:echo_upper",
        "--notify", "--quiet",
        env=cli_env(None, tmp_path),
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    await read_line_containing(process.stdout, "Ctrl-C", seen)
    exports = dict(
        line.removeprefix("export ").strip().split("=", 1)
        for line in seen
        if line.startswith("export ") and "=" in line and " " not in line.strip()[7:]
    )
    runtime = exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    assert exports["AWS_ENDPOINT_URL_SQS"] == runtime
    assert exports["SAGEMAKER_ASYNC_QUEUE_URL"].startswith(f"{runtime}/123456789012/")
    interrupt(process)
    done = await finish(process)
    assert done.returncode == 130


@pytest.mark.slow  # a CLI run that waits out a one-second timeout
async def test_poll_interval_with_queue_url_sets_how_often_s3_is_still_checked(
    local: tuple[LocalEndpoint, dict[str, str]],
) -> None:
    endpoint, env = local
    assert endpoint.queue_url is not None
    output = f"{endpoint.output_path}/never.out"
    got = await run_cli(
        "wait", "--output-location", output, "--queue-url", endpoint.queue_url,
        "--poll-interval", "0.01", "--timeout", "1", "--debug",
        env=env,
    )  # fmt: skip
    assert got.returncode == 1
    assert "WaitTimeoutError" in got.stderr
    # Without the option only the last look at the deadline would go to S3 (the
    # listener's own fallback is 60 s); with it, S3 is looked at well before.
    heads = [line for line in got.stderr.splitlines() if f"HeadObject location={output}" in line]
    assert len(heads) >= 2, got.stderr
