"""``local serve`` as a process you leave running: handler modules next to you import,
handler problems are one line at start, and a stop (SIGTERM, Ctrl-C, ``aclose``) within
seconds leaves every accepted request with an object."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sagemaker_async import AsyncInferenceClient
from sagemaker_async.local import LocalEndpoint
from test_local_support import KEY, REGION, SECRET, client_for, s3_request, warm_moto

__all__ = ["warm_moto"]

pytest_plugins = ["moto_server"]

CLI = [sys.executable, "-c", "import sys; from sagemaker_async.cli import main; sys.exit(main())"]
M = "handler_modules.misbehaving"
STOPPED = b"Endpoint stopped: the local endpoint was shut down before this request finished."


def _cli_available() -> list[str]:
    from sagemaker_async import cli

    assert hasattr(cli, "main")
    return CLI


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def handler(payload):\n    return (\n", "model.py:2"),
        ("import no_such_module_anywhere\n", "cannot import 'model'"),
        ("def handler(a, b, c):\n    return a\n", "takes 3 required parameters"),
        ("raise RuntimeError('at import')\n", "importing 'model' raised RuntimeError"),
    ],
)
def test_a_handler_that_cannot_load_is_one_line_and_status_2(
    tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "model.py").write_text(source)
    result = subprocess.run(
        [*_cli_available(), "local", "serve", "--endpoint", "e=model:handler"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


TESTS = str(Path(__file__).resolve().parent)


async def _start_serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *_cli_available(),
        "local",
        "serve",
        *args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": TESTS, **(env or {})},
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
    assert first.startswith("export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME="), first
    return process, first.split("=", 1)[1]


@pytest.mark.slow
async def test_serve_imports_a_handler_module_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "nextdoor.py").write_text(
        textwrap.dedent(
            """
            def handler(payload):
                return b"next door: " + payload
            """
        )
    )
    process, url = await _start_serve(tmp_path, "--endpoint", "e=nextdoor:handler", "--quiet")
    try:
        async with AsyncInferenceClient(
            REGION, endpoint_url=url, s3_endpoint_url=url, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ) as client:  # fmt: skip
            inv = await client.invoke_endpoint_async("e", body=b"hi")
            result = await client.wait_for_result(inv, timeout=30)
            assert result.body == b"next door: hi"
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 5)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_fails_queued_and_running_requests_in_a_store_that_outlives_it(
    moto_server: object, tmp_path: Path, signum: int
) -> None:
    from moto_server import MOTO_KEY, MOTO_SECRET, MotoServer

    assert isinstance(moto_server, MotoServer)
    s3 = moto_server.boto3_s3()
    await asyncio.to_thread(s3.create_bucket, Bucket="store")
    # The endpoint signs its own S3 requests to the store with the usual variables.
    env = {"AWS_ACCESS_KEY_ID": MOTO_KEY, "AWS_SECRET_ACCESS_KEY": MOTO_SECRET}
    process, url = await _start_serve(
        tmp_path,
        "--endpoint", f"hang={M}:hangs",
        "--concurrency", "2",
        "--s3-endpoint-url", moto_server.url,
        "--output-path", "s3://store/out",
        "--failure-path", "s3://store/fail",
        env=env,
    )  # fmt: skip
    try:
        async with AsyncInferenceClient(
            REGION, endpoint_url=url, s3_endpoint_url=url, aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_SECRET,
        ) as client:  # fmt: skip
            accepted = [await client.invoke_endpoint_async("hang", body=b"x") for _ in range(5)]
        process.send_signal(signum)
        await asyncio.wait_for(process.wait(), 5)  # within 5 s, hung handlers or not
        for inv in accepted:
            key = (inv.failure_location or "").split("/", 3)[3]
            body = await asyncio.to_thread(
                lambda key=key: s3.get_object(Bucket="store", Key=key)["Body"].read()  # type: ignore[misc]
            )
            assert body == STOPPED
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.usefixtures("warm_moto")
async def test_aclose_fails_what_is_queued_and_running() -> None:
    local = LocalEndpoint({"hang": f"{M}:hangs"}, concurrency=1)
    async with local, client_for(local) as client:
        # The first reaches the worker (and hangs there), the others wait in the queue.
        accepted = [await client.invoke_endpoint_async("hang", body=b"x") for _ in range(3)]
    await local.wait_idle(1)  # settled: nobody waits for nothing
    assert local.dropped == []
    # moto's store is per process: a second endpoint on the same bucket reads it.
    async with LocalEndpoint({"e": bytes.upper}, bucket=local.bucket) as reader:
        for inv in accepted:
            failure = await s3_request(reader, "GET", inv.failure_location)
            assert (failure.status, failure.body) == (200, STOPPED)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_a_killed_server_takes_its_hung_workers_with_it(tmp_path: Path) -> None:
    process, url = await _start_serve(
        tmp_path, "--endpoint", f"hang={M}:hangs", "--concurrency", "1", "--quiet"
    )
    try:
        async with AsyncInferenceClient(
            REGION, endpoint_url=url, s3_endpoint_url=url, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ) as client:  # fmt: skip
            await client.invoke_endpoint_async("hang", body=b"x")
        (worker,) = _children(process.pid)
        gone = asyncio.Event()
        fd = os.pidfd_open(worker)
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, gone.set)  # readable once the process has ended
        try:
            process.kill()
            await process.wait()
            await asyncio.wait_for(gone.wait(), 10)
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
