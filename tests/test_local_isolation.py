"""Handlers in worker processes: whatever a handler does, its request ends with exactly one
object and the endpoint (and every other endpoint) goes on serving."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._handlers import process_spec
from test_local_support import client_for, s3_request, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

M = "handler_modules.misbehaving"


async def _outcome(local: LocalEndpoint, output: str, failure: str) -> tuple[str, bytes]:
    """Exactly one of the two objects exists; which, and its body."""
    await local.wait_idle(10)
    out = await s3_request(local, "GET", output)
    fail = await s3_request(local, "GET", failure)
    assert sorted([out.status, fail.status]) == [200, 404], (out, fail)
    return ("output", out.body) if out.status == 200 else ("failure", fail.body)


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("raises", "Model error: ValueError: bad input"),
        ("system_exit", "the handler raised SystemExit(3); its worker process was replaced"),
        ("async_keyboard_interrupt", "raised KeyboardInterrupt(); its worker process was replaced"),
        ("exits", "the worker process exited with status 7 while handling the request"),
    ],
)
async def test_a_misbehaving_handler_costs_its_request_only(handler: str, message: str) -> None:
    async with (
        LocalEndpoint({"bad": f"{M}:{handler}", "good": f"{M}:upper"}, concurrency=1) as local,
        client_for(local) as client,
    ):
        bad = await client.invoke_endpoint_async("bad", body=b"x")
        kind, body = await _outcome(local, bad.output_location, bad.failure_location)
        assert kind == "failure"
        assert message in body.decode()
        # The endpoint lives on, the bad one's worker was replaced, the other never noticed.
        again = await client.invoke_endpoint_async("bad", body=b"y")
        good = await client.invoke_endpoint_async("good", body=b"ok")
        assert (await _outcome(local, again.output_location, again.failure_location))[0] == (
            "failure"
        )
        assert await _outcome(local, good.output_location, good.failure_location) == (
            "output",
            b"OK",
        )


async def test_a_hung_handler_is_killed_at_its_timeout_and_its_capacity_comes_back() -> None:
    async with (
        LocalEndpoint(
            {"hang": f"{M}:hangs", "good": f"{M}:upper"}, concurrency=1, time_scale=0.05
        ) as local,
        client_for(local) as client,
    ):
        hung = [
            await client.invoke_endpoint_async("hang", body=b"x", invocation_timeout_seconds=1)
            for _ in range(3)
        ]
        good = await client.invoke_endpoint_async("good", body=b"ok")
        for invocation in hung:
            kind, body = await _outcome(
                local, invocation.output_location, invocation.failure_location
            )
            assert (kind, body[:21]) == ("failure", b"Inference timed out: ")
        assert await _outcome(local, good.output_location, good.failure_location) == (
            "output",
            b"OK",
        )


async def test_the_server_process_never_runs_a_module_handler() -> None:
    async with (
        LocalEndpoint({"pid": f"{M}:pid"}, concurrency=2) as local,
        client_for(local) as client,
    ):
        inv = await client.invoke_endpoint_async("pid", body=b"x")
        kind, body = await _outcome(local, inv.output_location, inv.failure_location)
        assert kind == "output"
        assert int(body) != os.getpid()


async def test_in_process_handlers_contain_base_exceptions() -> None:
    def sync_exit(payload: bytes) -> bytes:
        raise SystemExit(4)

    async def async_interrupt(payload: bytes) -> bytes:
        raise KeyboardInterrupt

    async with (
        LocalEndpoint({"a": sync_exit, "b": async_interrupt, "c": bytes.upper}) as local,
        client_for(local) as client,
    ):
        a = await client.invoke_endpoint_async("a", body=b"x")
        b = await client.invoke_endpoint_async("b", body=b"x")
        c = await client.invoke_endpoint_async("c", body=b"x")
        assert (await _outcome(local, a.output_location, a.failure_location)) == (
            "failure",
            b"Model error: the handler raised SystemExit(4).",
        )
        assert (await _outcome(local, b.output_location, b.failure_location)) == (
            "failure",
            b"Model error: the handler raised KeyboardInterrupt().",
        )
        assert (await _outcome(local, c.output_location, c.failure_location)) == ("output", b"X")


async def test_isolation_process_sends_importable_callables_to_workers() -> None:
    from handler_modules.misbehaving import pid

    async with (
        LocalEndpoint({"pid": pid}, isolation="process") as local,
        client_for(local) as client,
    ):
        inv = await client.invoke_endpoint_async("pid", body=b"x")
        assert int((await _outcome(local, inv.output_location, inv.failure_location))[1]) != (
            os.getpid()
        )


def test_a_closure_cannot_go_to_a_worker_process() -> None:
    handler: Callable[[bytes], bytes] = lambda payload: payload  # noqa: E731
    with pytest.raises(ValueError, match="isolation='in-process'"):
        process_spec(handler)


@pytest.mark.parametrize(
    ("handlers", "message"),
    [
        ({"a": f"{M}:three_parameters"}, "takes 3 required parameters"),
        ({"a": f"{M}:no_such"}, "has no 'no_such'"),
    ],
)
async def test_handler_problems_stop_the_start(handlers: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        async with LocalEndpoint(handlers):
            pass


def test_an_in_process_handler_signature_is_checked_at_construction_of_its_runner() -> None:
    def three(a: bytes, b: object, c: object) -> bytes:
        return a

    with pytest.raises(TypeError, match="takes 3 required parameters"):
        asyncio.run(LocalEndpoint({"a": three}).start())


@pytest.mark.parametrize(
    ("inference_id", "extension"),
    [("..", None), (".", None), ("../../x", None), ("id-1", ".."), ("id-2", "a/./b/../c")],
)
async def test_dot_segments_are_stored_exactly_as_the_service_names_them(
    inference_id: str, extension: str | None
) -> None:
    async with (
        LocalEndpoint({"e": bytes.upper}) as local,
        client_for(local) as client,
    ):
        inv = await client.invoke_endpoint_async(
            "e", body=b"x", inference_id=inference_id, s3_output_path_extension=extension
        )
        await local.wait_idle(10)
        expected_key = "/".join(
            part for part in ("output", extension, f"{inference_id}.out") if part
        )
        assert inv.output_location == f"s3://{local.bucket}/{expected_key}"
        import boto3

        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=local.s3_endpoint_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert [o["Key"] for o in listed.get("Contents", [])] == [expected_key]


async def test_hung_in_process_handlers_hold_no_shared_capacity() -> None:
    """The old bug: four timed-out sync hangs on one endpoint starved every endpoint."""
    release = threading.Event()

    def hang(payload: bytes) -> bytes:
        release.wait()
        return b"too late"

    try:
        async with (
            LocalEndpoint(
                {"hang": hang, "good": bytes.upper}, concurrency=2, time_scale=0.05
            ) as local,
            client_for(local) as client,
        ):
            hung = [
                await client.invoke_endpoint_async("hang", body=b"x", invocation_timeout_seconds=1)
                for _ in range(6)
            ]
            good = [await client.invoke_endpoint_async("good", body=b"ok") for _ in range(4)]
            for invocation in good:
                assert await _outcome(
                    local, invocation.output_location, invocation.failure_location
                ) == ("output", b"OK")
            for invocation in hung:
                kind, body = await _outcome(
                    local, invocation.output_location, invocation.failure_location
                )
                assert (kind, body[:21]) == ("failure", b"Inference timed out: ")
    finally:
        release.set()  # the abandoned threads end; their results are dropped


async def test_killing_a_worker_never_reaps_it_behind_asyncio_s_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Process.kill()`` polls first (``Popen.send_signal``), and that ``waitpid`` could
    reap a worker that had just exited before asyncio's child watcher did, which then
    logged "Unknown child process pid ..." under a ``local serve`` error (Python 3.10)."""
    import subprocess
    import sys

    from sagemaker_async.local._workers import _Worker

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    polled: list[int] = []
    poll = subprocess.Popen.poll

    def recorded(self: subprocess.Popen[bytes]) -> int | None:
        polled.append(self.pid)
        return poll(self)

    monkeypatch.setattr(subprocess.Popen, "poll", recorded)
    worker = _Worker(process)
    await worker.close()
    assert process.returncode == -9
    assert polled == []  # no waitpid of ours: only asyncio's watcher reaps
    worker.kill()  # after the exit asyncio saw: nothing sent
