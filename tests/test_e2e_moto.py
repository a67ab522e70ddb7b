"""The whole job end to end against moto's server: upload, invoke, wait, read.

moto answers InvokeEndpointAsync with 200 and at once writes its result (the next queued
one, or ``{"default": "response"}``) into a fresh bucket of its own, at
``s3://sagemaker-output-<uuid>/response.json`` or ``.../failure.json``. Results are keyed by
(endpoint, InputLocation), so each test uses its own endpoint name or input.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sagemaker_async import (
    AsyncInvocation,
    InferenceFailedError,
    ParamValidationError,
    ServiceError,
    WaitTimeoutError,
)
from sagemaker_async._io.payloads import CHUNK_SIZE
from sagemaker_async._io.runtime import Runtime

if TYPE_CHECKING:
    from moto_server import MotoServer

# The plugin module is imported by pytest, never here: it must be imported after pytest's
# assertion rewriting is set up for it.
pytest_plugins = ["moto_server"]

BUCKET = "inputs"


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    moto_server.boto3_s3().create_bucket(Bucket=BUCKET)
    return moto_server


def s3_bytes(server: MotoServer, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(server.boto3_s3().get_object(Bucket=bucket, Key=key)["Body"].read())


async def test_upload_invoke_wait(server: MotoServer) -> None:
    payload = json.dumps({"inputs": "hello"}).encode()
    server.queue_async_results({"data": '{"generated": "world"}'})
    async with server.client() as client:
        uri = await client.upload_input(
            payload, "s3://inputs/requests/0001.json", content_type="application/json"
        )
        assert uri == "s3://inputs/requests/0001.json"
        invocation = await client.invoke_endpoint_async(
            "my-endpoint", uri, content_type="application/json"
        )
        assert invocation.output_location is not None
        assert invocation.failure_location is not None
        result = await client.wait_for_result(invocation, timeout=5, poll_interval=0.01)
    assert result.body == b'{"generated": "world"}'
    assert result.location == invocation.output_location
    head = server.boto3_s3().head_object(Bucket=BUCKET, Key="requests/0001.json")
    assert head["ContentType"] == "application/json"
    assert s3_bytes(server, uri) == payload


async def test_queued_failure_raises_inference_failed(server: MotoServer) -> None:
    server.queue_async_results({"is_failure": True, "data": "CUDA out of memory"})
    async with server.client() as client:
        invocation = await client.invoke_endpoint_async("failing-endpoint", "s3://inputs/x")
        with pytest.raises(InferenceFailedError) as caught:
            await client.wait_for_result(invocation, timeout=5, poll_interval=0.01)
    assert caught.value.message == "CUDA out of memory"
    assert caught.value.failure_location == invocation.failure_location
    assert invocation.failure_location is not None
    assert invocation.failure_location in str(caught.value)


async def test_submit_inline(server: MotoServer) -> None:
    server.queue_async_results({"data": "inline answer"})
    async with server.client() as client:
        invocation = await client.submit("inline-endpoint", b'{"x": 1}', content_type="text/json")
        result = await client.wait_for_result(invocation, timeout=5, poll_interval=0.01)
    assert result.body == b"inline answer"
    # Nothing was uploaded: the payload travelled in the request.
    assert server.boto3_s3().list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


async def test_submit_through_s3_from_a_path(server: MotoServer, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000  # 256,000 bytes: too large to go inline
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    server.queue_async_results({"data": "from s3"})
    async with server.client() as client:
        invocation = await client.submit(
            "s3-endpoint", path, input_location="s3://inputs/big/payload.bin"
        )
        result = await client.wait_for_result(invocation, timeout=5, poll_interval=0.01)
    assert result.body == b"from s3"
    assert s3_bytes(server, "s3://inputs/big/payload.bin") == payload


async def test_submit_too_large_without_location_sends_nothing(
    server: MotoServer, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 128_001)
    async with server.client() as client:
        with pytest.raises(ParamValidationError, match="input_location"):
            await client.submit("ep", path)
        with pytest.raises(ParamValidationError, match="input_location"):
            await client.submit("ep", b"x" * 128_001)


async def test_upload_file_object_and_odd_keys(server: MotoServer) -> None:
    key = "dir with spaces/ünïcode/a+b=c&d~e!'()*.json"
    data = b"\x00\x01binary\xff" * 1000
    stream = io.BytesIO(b"skipped" + data)
    stream.seek(len(b"skipped"))
    async with server.client() as client:
        uri = await client.upload_input(stream, f"s3://{BUCKET}/{key}")
        result = await client.get_result(uri)
    assert uri == f"s3://{BUCKET}/{key}"
    assert result.body == data
    assert s3_bytes(server, uri) == data
    assert not stream.closed  # the caller's file stays the caller's


@pytest.mark.slow
async def test_50_mb_file_upload_streams(server: MotoServer, tmp_path: Path) -> None:
    size = 50 * 1024 * 1024
    path = tmp_path / "large.bin"
    expected = hashlib.sha256()
    with path.open("wb") as out:
        block = hashlib.sha256(b"seed").digest() * (CHUNK_SIZE // 32)
        for i in range(size // len(block)):
            chunk = i.to_bytes(4, "big") + block[4:]
            expected.update(chunk)
            out.write(chunk)
    async with server.client() as client:
        tracemalloc.start()
        try:
            await client.upload_input(path, f"s3://{BUCKET}/large.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes for a {size:,}-byte upload"
    stored = server.boto3_s3().get_object(Bucket=BUCKET, Key="large.bin")["Body"]
    actual = hashlib.sha256()
    for chunk in iter(lambda: stored.read(CHUNK_SIZE), b""):
        actual.update(chunk)
    assert actual.hexdigest() == expected.hexdigest()


async def test_wait_without_object_times_out_on_time(server: MotoServer) -> None:
    invocation = AsyncInvocation(
        inference_id="never",
        output_location=f"s3://{BUCKET}/out/never.out",
        failure_location=f"s3://{BUCKET}/failures/never-error.out",
    )
    async with server.client() as client:
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as caught:
            await client.wait_for_result(invocation, timeout=0.3, poll_interval=0.02)
        elapsed = time.monotonic() - started
    assert caught.value.timeout == 0.3
    assert 0.3 <= elapsed < 0.8  # the deadline, plus one poll in flight on a busy machine


async def test_poll_result_and_get_result(server: MotoServer) -> None:
    invocation = AsyncInvocation(
        inference_id="later",
        output_location=f"s3://{BUCKET}/out/later.out",
        failure_location=None,
    )
    async with server.client() as client:
        assert await client.poll_result(invocation) is None
        server.boto3_s3().put_object(
            Bucket=BUCKET, Key="out/later.out", Body=b"done", ContentType="text/plain"
        )
        result = await client.poll_result(invocation)
        assert result is not None
        assert (result.body, result.content_type) == (b"done", "text/plain")
        assert await client.get_result(f"s3://{BUCKET}/out/later.out") == result


async def test_s3_xml_errors_are_typed(server: MotoServer) -> None:
    async with server.client() as client:
        with pytest.raises(ServiceError) as missing_key:
            await client.get_result(f"s3://{BUCKET}/no/such/key")
        with pytest.raises(ServiceError) as missing_bucket:
            await client.upload_input(b"x", "s3://no-such-bucket/key")
    assert (missing_key.value.code, missing_key.value.status_code) == ("NoSuchKey", 404)
    assert (missing_bucket.value.code, missing_bucket.value.status_code) == ("NoSuchBucket", 404)


async def test_cancelling_a_wait_leaves_nothing_running(server: MotoServer) -> None:
    invocation = AsyncInvocation(
        inference_id="pending",
        output_location=f"s3://{BUCKET}/out/pending.out",
        failure_location=f"s3://{BUCKET}/failures/pending-error.out",
    )
    polled = asyncio.Event()

    async def sleep(delay: float) -> None:
        polled.set()  # one round of HEADs is done
        await asyncio.sleep(delay)

    async with server.client(_runtime=Runtime(poll_sleep=sleep)) as client:
        waiter = asyncio.create_task(client.wait_for_result(invocation, poll_interval=0.01))
        await polled.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert asyncio.all_tasks() == {asyncio.current_task()}
        # The client is still usable: no request was left half-done on a connection.
        assert await client.poll_result(invocation) is None


async def test_keys_with_dot_segments_are_written_and_read_exactly(server: MotoServer) -> None:
    """``a/../b`` is its own key to S3 (and to boto3); nothing may normalize it into ``b``."""
    keys = ["dots/a/../b", "dots/./c", "dots/.."]
    async with server.client() as client:
        for n, key in enumerate(keys):
            await client.upload_input(b"payload %d" % n, f"s3://{BUCKET}/{key}")
        for n, key in enumerate(keys):
            result = await client.get_result(f"s3://{BUCKET}/{key}")
            assert result.body == b"payload %d" % n
    listed = server.boto3_s3().list_objects_v2(Bucket=BUCKET, Prefix="dots/")
    assert sorted(item["Key"] for item in listed["Contents"]) == sorted(keys)
    assert s3_bytes(server, f"s3://{BUCKET}/dots/a/../b") == b"payload 0"
