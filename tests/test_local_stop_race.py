"""A stop that comes while a request's one object is being written.

The store outlives the endpoint (a moto server of its own, as ``--s3-endpoint-url``), so a
stop writes "endpoint stopped" failure objects there. The race: the output's PUT has reached
the store, its answer has not reached the endpoint, and the stop cancels the worker. The
request must end with that output alone — not a failure object as well. The window is
held open with events around the store's write: no timing, no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._storage import ClientStorage, StorageError
from test_local_support import client_for

pytest_plugins = ["moto_server"]

STOPPED = b"Endpoint stopped: the local endpoint was shut down before this request finished."


class Window:
    """Holds a store write open after (or before) it reached the store."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *,
        target: str,
        fail: bool = False,
        before: bool = False,
    ):
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        original: Callable[..., Awaitable[None]] = ClientStorage.write

        async def write(storage: ClientStorage, uri: str, data: bytes, content_type: str) -> None:
            if target not in uri:
                await original(storage, uri, data, content_type)
                return
            if not fail and not before:
                await original(storage, uri, data, content_type)  # stored...
            self.reached.set()
            await self.release.wait()  # ...and its answer still on the way
            if before:
                await original(storage, uri, data, content_type)
            if fail:
                raise StorageError(f"PutObject {uri} failed: InternalError")

        monkeypatch.setattr(ClientStorage, "write", write)


@pytest.fixture
async def store(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from moto_server import MOTO_KEY, MOTO_SECRET

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
    s3 = moto_server.boto3_s3()
    await asyncio.to_thread(s3.create_bucket, Bucket="store")
    return moto_server


def _endpoint(store: Any, handler: Callable[[bytes], bytes]) -> LocalEndpoint:
    return LocalEndpoint(
        {"e": handler},
        isolation="in-process",
        s3_endpoint_url=store.url,
        output_path="s3://store/out",
        failure_path="s3://store/fail",
    )


async def _stop_inside(local: LocalEndpoint, window: Window) -> None:
    """Stop the endpoint while the write is held: release it once the workers are gone."""
    await asyncio.wait_for(window.reached.wait(), 5)
    stopping = asyncio.ensure_future(local.aclose())
    queue = local._queues["e"]
    for _ in range(10_000):  # yields to the loop, never a timed wait
        if queue._closing and not queue._workers:
            break
        await asyncio.sleep(0)
    else:
        pytest.fail("the stop never cancelled the workers")
    window.release.set()
    await asyncio.wait_for(stopping, 5)


async def _objects(store: Any) -> dict[str, bytes]:
    s3 = store.boto3_s3()

    def read() -> dict[str, bytes]:
        listed = s3.list_objects_v2(Bucket="store").get("Contents", [])
        return {
            item["Key"]: s3.get_object(Bucket="store", Key=item["Key"])["Body"].read()
            for item in listed
        }

    return await asyncio.to_thread(read)


async def test_an_output_stored_as_the_stop_comes_is_the_only_object(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = Window(monkeypatch, target="/out/")
    local = _endpoint(store, bytes.upper)
    await local.start()
    try:
        async with client_for(local) as client:
            accepted = await client.invoke_endpoint_async("e", body=b"done", inference_id="one")
        await _stop_inside(local, window)
    finally:
        await local.aclose()
    assert accepted.output_location == "s3://store/out/one.out"
    assert await _objects(store) == {"out/one.out": b"DONE"}
    assert local.dropped == []
    assert local.stats("e")["succeeded"] == 1


async def test_a_failure_being_written_as_the_stop_comes_is_not_replaced(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(payload: bytes) -> bytes:
        raise ValueError("no")

    window = Window(monkeypatch, target="/fail/")
    local = _endpoint(store, broken)
    await local.start()
    try:
        async with client_for(local) as client:
            await client.invoke_endpoint_async("e", body=b"x", inference_id="two")
        await _stop_inside(local, window)
    finally:
        await local.aclose()
    assert await _objects(store) == {"fail/two-error.out": b"Model error: ValueError: no"}
    assert local.dropped == []


async def test_an_output_write_that_fails_during_the_stop_leaves_its_failure(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = Window(monkeypatch, target="/out/", fail=True)
    local = _endpoint(store, bytes.upper)
    await local.start()
    try:
        async with client_for(local) as client:
            await client.invoke_endpoint_async("e", body=b"x", inference_id="three")
        await _stop_inside(local, window)
    finally:
        await local.aclose()
    objects = await _objects(store)
    assert list(objects) == ["fail/three-error.out"]
    assert objects["fail/three-error.out"].startswith(b"Could not store the output:")
    assert local.dropped == []


async def test_a_running_request_with_no_write_yet_gets_the_stopped_failure(
    store: Any,
) -> None:
    started = asyncio.Event()

    async def hangs(payload: bytes) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return payload

    local = LocalEndpoint(
        {"e": hangs},
        isolation="in-process",
        s3_endpoint_url=store.url,
        output_path="s3://store/out",
        failure_path="s3://store/fail",
    )
    async with local:
        async with client_for(local) as client:
            await client.invoke_endpoint_async("e", body=b"x", inference_id="four")
        await asyncio.wait_for(started.wait(), 5)
    assert await _objects(store) == {"fail/four-error.out": STOPPED}


async def test_a_write_that_outlasts_the_stop_is_cut_off_and_reported(
    store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sagemaker_async.local import _endpoint as endpoint_module

    monkeypatch.setattr(endpoint_module, "_STOP_WRITE_SECONDS", 0.01)
    window = Window(monkeypatch, target="/out/", before=True)  # a store that never answers
    local = _endpoint(store, bytes.upper)
    await local.start()
    try:
        async with client_for(local) as client:
            await client.invoke_endpoint_async("e", body=b"x", inference_id="five")
        await asyncio.wait_for(window.reached.wait(), 5)
        await asyncio.wait_for(local.aclose(), 5)  # never released: the stop does not wait
    finally:
        await local.aclose()
    assert local.dropped == ["five"]
    assert await _objects(store) == {}  # the write was cancelled before it reached the store
    assert any("five" in record.getMessage() for record in caplog.records)
    with pytest.raises(RuntimeError, match="five"):
        await local.wait_idle(1)
