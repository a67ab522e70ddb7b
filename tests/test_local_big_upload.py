"""Uploads into the built-in store (moto, in-process) streamed to storage, never held whole.

The server already spools a large body to a temporary file; moto's S3 would then read it
whole into memory, more than once. ``_moto_stream`` hands moto the spool instead. Measured
where it matters: the peak RSS (``VmHWM``) of a ``local serve`` process while boto3 PUTs
200 MiB through it; and checked for sameness (ETag, checksums, metadata, multipart) in
process against moto's answers for the same bytes sent small.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sagemaker_async.local import LocalEndpoint, _moto_stream
from sagemaker_async.local._http import Request
from sagemaker_async.local._s3backend import _is_large_upload
from test_local_support import warm_moto

__all__ = ["warm_moto"]

CLI = [sys.executable, "-c", "import sys; from sagemaker_async.cli import main; sys.exit(main())"]
MIB = 1024 * 1024


def _s3(url: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, **config),
    )


def _write_body(path: Path, size: int) -> str:
    """``size`` bytes written a MiB at a time (never whole in memory); their SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as file:
        for i in range(size // MIB):
            piece = i.to_bytes(8, "big") + block[8:]
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@contextlib.asynccontextmanager
async def serving_in_a_process(cwd: Path) -> AsyncIterator[tuple[int, Any]]:
    """``local serve`` in its own process (its peak RSS is its own): its pid, and a boto3
    S3 client for it with a bucket ``big``."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "local", "serve", "--endpoint", "e=sagemaker_async.local.demo_models:echo_upper",
        "--isolation", "in-process",
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
        s3 = _s3(first.split("=", 1)[1])
        await asyncio.to_thread(s3.create_bucket, Bucket="big")
        yield process.pid, s3
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def _stored_sha256(s3: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
async def test_a_200_mib_put_costs_the_server_little_memory(tmp_path: Path) -> None:
    size = 200 * MIB
    source = tmp_path / "big.bin"
    expected = await asyncio.to_thread(_write_body, source, size)
    async with serving_in_a_process(tmp_path) as (pid, s3):
        # Warm every path first (moto's import, a spooled upload): the baseline is the peak
        # of everything but the big body.
        warm = os.urandom(3 * MIB)
        await asyncio.to_thread(s3.put_object, Bucket="big", Key="warm", Body=warm)
        baseline = _peak_rss(pid)

        def put() -> None:
            with source.open("rb") as body:
                s3.put_object(Bucket="big", Key="large", Body=body)

        await asyncio.to_thread(put)
        growth = _peak_rss(pid) - baseline
        assert growth < 32 * MIB, f"the server's peak RSS grew {growth / MIB:.0f} MiB"
        assert await asyncio.to_thread(_stored_sha256, s3, "big", "large") == expected


def test_the_moto_seam_is_where_streaming_expects_it() -> None:
    # Fails loudly if a moto release moves FakeKey's value into something else.
    fake_key = _moto_stream.check_seam()
    _moto_stream.install()
    assert fake_key.__dict__["value"].fset.__name__ == "set_value"


def _headers(response: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = response["ResponseMetadata"]["HTTPHeaders"]
    return headers


@pytest.mark.usefixtures("warm_moto")
async def test_a_streamed_put_answers_and_stores_as_moto_does_for_a_small_one() -> None:
    data = os.urandom(3 * MIB + 17)  # over the 1 MiB spool threshold: streamed
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    crc32 = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    async with LocalEndpoint({"e": bytes.upper}) as local:
        s3 = _s3(local.s3_endpoint_url)

        def put_and_read() -> tuple[dict[str, Any], dict[str, Any], bytes]:
            put = s3.put_object(
                Bucket=local.bucket, Key="dir/streamed", Body=data, ContentMD5=md5,
                ChecksumAlgorithm="CRC32", Metadata={"who": "me"}, ContentType="app/x",
                Tagging="a=b",
            )  # fmt: skip
            head = s3.head_object(Bucket=local.bucket, Key="dir/streamed", ChecksumMode="ENABLED")
            body = s3.get_object(Bucket=local.bucket, Key="dir/streamed")["Body"].read()
            return put, head, body

        put, head, body = await asyncio.to_thread(put_and_read)
        assert body == data
        assert put["ETag"] == head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert put["ChecksumCRC32"] == crc32
        assert head["ContentLength"] == len(data)
        assert head["Metadata"] == {"who": "me"}
        assert head["ContentType"] == "app/x"
        tags = await asyncio.to_thread(
            s3.get_object_tagging, Bucket=local.bucket, Key="dir/streamed"
        )
        assert tags["TagSet"] == [{"Key": "a", "Value": "b"}]


@pytest.mark.usefixtures("warm_moto")
async def test_a_wrong_content_md5_or_checksum_stores_nothing() -> None:
    data = os.urandom(2 * MIB)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    async with LocalEndpoint({"e": bytes.upper}) as local:
        s3 = _s3(local.s3_endpoint_url)

        def attempt(**kwargs: Any) -> str:
            try:
                s3.put_object(Bucket=local.bucket, Key="bad", Body=data, **kwargs)
            except s3.exceptions.ClientError as exc:
                return str(exc.response["Error"]["Code"])
            return "stored"

        assert await asyncio.to_thread(attempt, ContentMD5=wrong) == "BadDigest"
        assert await asyncio.to_thread(attempt, ChecksumCRC32="AAAAAA==") == "BadDigest"
        listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert "Contents" not in listed


@pytest.mark.usefixtures("warm_moto")
async def test_a_multipart_upload_of_streamed_parts_is_the_object(tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    source = tmp_path / "parts.bin"
    expected = await asyncio.to_thread(_write_body, source, 12 * MIB)
    async with LocalEndpoint({"e": bytes.upper}) as local:
        s3 = _s3(local.s3_endpoint_url)
        config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
        await asyncio.to_thread(s3.upload_file, str(source), local.bucket, "mp", Config=config)
        head = await asyncio.to_thread(s3.head_object, Bucket=local.bucket, Key="mp")
        assert head["ETag"].endswith('-3"')
        assert head["ContentLength"] == 12 * MIB
        assert await asyncio.to_thread(_stored_sha256, s3, local.bucket, "mp") == expected


@pytest.mark.parametrize(
    ("method", "target", "headers", "streamed"),
    [
        ("PUT", b"/b/k", (), True),
        ("PUT", b"/b/dir/k?x-id=PutObject", (), True),
        ("PUT", b"/b/k?partNumber=2&uploadId=abc", (), True),
        ("PUT", b"/b/k?X-Amz-Signature=s&X-Amz-Expires=60", (), True),
        ("PUT", b"/b/k?tagging", (), False),
        ("PUT", b"/b/k?acl", (), False),
        ("PUT", b"/b", (), False),
        ("PUT", b"/b/", (), False),
        ("POST", b"/b/k?uploadId=abc", (), False),
        ("PUT", b"/b/k", ((b"x-amz-copy-source", b"/b/src"),), False),
    ],
)
def test_only_object_and_part_uploads_are_streamed(
    method: str, target: bytes, headers: tuple[tuple[bytes, bytes], ...], streamed: bool
) -> None:
    spool = io.BytesIO(b"x" * 10)
    request = Request(method, target, headers, b"", body_file=spool, body_size=10)
    assert _is_large_upload(request) is streamed
    assert _is_large_upload(Request(method, target, headers, b"x" * 10)) is False  # small


@pytest.mark.usefixtures("warm_moto")
async def test_a_large_body_cut_off_stores_nothing() -> None:
    async with LocalEndpoint({"e": bytes.upper}) as local:
        reader, writer = await asyncio.open_connection("127.0.0.1", local.port)
        writer.write(
            f"PUT /{local.bucket}/cut HTTP/1.1\r\nHost: h\r\n"
            f"Content-Length: {3 * MIB}\r\n\r\n".encode()
            + b"x" * (2 * MIB)  # spooled past the threshold, then the peer goes away
        )
        await writer.drain()
        writer.close()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # no answer: nothing stored
        s3 = _s3(local.s3_endpoint_url)
        listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert "Contents" not in listed


@pytest.mark.usefixtures("warm_moto")
async def test_a_streamed_upload_that_moto_refuses_stores_nothing() -> None:
    async with LocalEndpoint({"e": bytes.upper}) as local:
        s3 = _s3(local.s3_endpoint_url)

        def put() -> str:
            try:
                s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"y" * (2 * MIB))
            except s3.exceptions.ClientError as exc:
                return str(exc.response["Error"]["Code"])
            return "stored"

        assert await asyncio.to_thread(put) == "NoSuchBucket"
        # The pending body was not taken, and it is not left for the next key on the thread.
        await asyncio.to_thread(s3.put_object, Bucket=local.bucket, Key="small", Body=b"")
        head = await asyncio.to_thread(s3.head_object, Bucket=local.bucket, Key="small")
        assert head["ContentLength"] == 0


@pytest.mark.usefixtures("warm_moto")
async def test_without_credentials_a_declared_sha256_is_still_checked() -> None:
    import httpx

    async with LocalEndpoint({"e": bytes.upper}) as local:
        url = f"{local.s3_endpoint_url}/{local.bucket}/declared"
        async with httpx.AsyncClient(trust_env=False) as http:
            for body in (b"small", b"z" * (2 * MIB)):
                wrong = hashlib.sha256(body + b"!").hexdigest()
                headers = {"x-amz-content-sha256": wrong}
                response = await http.put(url, content=body, headers=headers)
                assert response.status_code == 400
                assert b"<Code>XAmzContentSHA256Mismatch</Code>" in response.content
            assert (await http.get(url)).status_code in (403, 404)
        s3 = _s3(local.s3_endpoint_url)
        listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert "Contents" not in listed
