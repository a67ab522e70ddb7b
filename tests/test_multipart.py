"""Multipart uploads: botocore's wire, moto's behaviour, and every way one can go wrong.

The requests are compared with botocore's own for the same operations with
``ChecksumAlgorithm="SHA256"`` against a plain-HTTP endpoint (where botocore signs the
payload and sends the checksum as a header, so the wire is deterministic). moto (a real
server on 127.0.0.1) checks the checksums and assembles the object; after every failure
and cancellation ``ListMultipartUploads`` must be empty: no parts left behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from botocore_oracle import boto3_s3, botocore_request, header
from helpers import make_client
from sagemaker_async import ParamValidationError, ServiceError, _client
from sagemaker_async._io.multipart_upload import part_size_for
from sagemaker_async._io.runtime import Runtime
from sagemaker_async._io.sender import SignedSender
from sagemaker_async._protocol.s3 import S3Endpoint, S3Location
from sagemaker_async._protocol.s3_multipart import (
    CompletedPart,
    abort_request,
    complete_request,
    create_request,
    parse_complete,
    parse_upload_id,
    upload_part_request,
)

if TYPE_CHECKING:
    from moto_server import MotoServer

pytest_plugins = ["moto_server"]

MIB = 1024 * 1024
LOCAL = "http://127.0.0.1:5000"
KEY = "dir with spaces/big+file.bin"
BUCKET = "uploads"


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- the wire, against botocore ---------------------------------------------------------------


def _ours_signed(client: Any, request: Any, body: bytes, amz_date: str) -> httpx.Request:
    """Our client's signing of one S3Request, at botocore's timestamp."""
    import calendar
    import time as _time

    signed_at = float(calendar.timegm(_time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    sender = SignedSender(
        credentials=client._sender.credentials,
        max_attempts=3,
        timeout=httpx.Timeout(5.0),
        runtime=Runtime(clock=lambda: signed_at),
    )
    return sender._signed_request(
        request,
        httpx.URL(request.url),
        body,
        client._s3._signer("us-east-1"),
        _frozen(),
        "00000000-0000-4000-8000-000000000000",
        1,
        3,
    )


def _frozen() -> Any:
    from botocore_oracle import ACCESS_KEY, SECRET_KEY
    from sagemaker_async._protocol.sigv4 import FrozenCredentials

    return FrozenCredentials(ACCESS_KEY, SECRET_KEY)


def _compare(ours: httpx.Request, theirs: Any) -> None:
    assert str(ours.url) == theirs.url
    assert ours.method == theirs.method
    for name in (
        "Authorization",
        "X-Amz-Content-SHA256",
        "x-amz-checksum-sha256",
        "x-amz-sdk-checksum-algorithm",
        "x-amz-checksum-algorithm",
        "Content-Type",
    ):
        if name in theirs.headers:
            assert ours.headers[name] == header(theirs, name), name
        else:
            assert name not in ours.headers, name
    body = theirs.body
    if hasattr(body, "read"):
        body = body.read()
    assert ours.content == (body or b"")


async def test_multipart_requests_equal_botocores() -> None:
    boto = boto3_s3("us-east-1", endpoint_url=LOCAL)
    client, _ = make_client(s3_endpoint_url=LOCAL)
    endpoint = S3Endpoint.from_url(LOCAL)
    location = S3Location(BUCKET, KEY)
    part = b"part one bytes" * 100
    digest = hashlib.sha256(part).hexdigest()
    upload_id = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA+/="
    async with client:
        theirs = botocore_request(
            boto,
            "create_multipart_upload",
            Bucket=BUCKET,
            Key=KEY,
            ContentType="a/b",
            ChecksumAlgorithm="SHA256",
        )
        ours = _ours_signed(
            client,
            create_request(location, endpoint, content_type="a/b"),
            b"",
            header(theirs, "X-Amz-Date"),
        )
        _compare(ours, theirs)

        theirs = botocore_request(
            boto,
            "upload_part",
            Bucket=BUCKET,
            Key=KEY,
            UploadId=upload_id,
            PartNumber=7,
            Body=part,
            ChecksumAlgorithm="SHA256",
        )
        request = upload_part_request(
            location, endpoint, upload_id=upload_id, part_number=7, payload_hash=digest
        )
        _compare(_ours_signed(client, request, part, header(theirs, "X-Amz-Date")), theirs)

        parts = [CompletedPart(2, '"e2"', "c2=="), CompletedPart(1, '"e&1"', "c1==")]
        theirs = botocore_request(
            boto,
            "complete_multipart_upload",
            Bucket=BUCKET,
            Key=KEY,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": '"e&1"', "ChecksumSHA256": "c1=="},
                    {"PartNumber": 2, "ETag": '"e2"', "ChecksumSHA256": "c2=="},
                ]
            },
        )
        request, body = complete_request(location, endpoint, upload_id=upload_id, parts=parts)
        _compare(_ours_signed(client, request, body, header(theirs, "X-Amz-Date")), theirs)

        theirs = botocore_request(
            boto, "abort_multipart_upload", Bucket=BUCKET, Key=KEY, UploadId=upload_id
        )
        request = abort_request(location, endpoint, upload_id=upload_id)
        _compare(_ours_signed(client, request, b"", header(theirs, "X-Amz-Date")), theirs)


def test_parse_answers() -> None:
    created = (
        b'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult '
        b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key>'
        b"<UploadId>abc-123</UploadId></InitiateMultipartUploadResult>"
    )
    assert parse_upload_id(200, created, "r") == "abc-123"
    for bad in (b"", b"<html>", b"<InitiateMultipartUploadResult/>", b"<<<"):
        with pytest.raises(ServiceError, match="UploadId"):
            parse_upload_id(200, bad, "r")
    assert parse_complete(200, b"<CompleteMultipartUploadResult/>", "r") is None
    error = parse_complete(
        200, b"<Error><Code>InternalError</Code><Message>try again</Message></Error>", "r"
    )
    assert error is not None
    assert (error.code, error.status_code, error.message) == ("InternalError", 200, "try again")


def test_part_size_respects_s3_limits() -> None:
    assert part_size_for(100 * MIB, 8 * MIB) == 8 * MIB
    assert part_size_for(100 * MIB, 1 * MIB) == 5 * MIB  # S3's minimum part
    assert part_size_for(100_000 * MIB, 8 * MIB) == 10 * MIB  # at most 10,000 parts


# -- against moto -------------------------------------------------------------------------------


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    moto_server.boto3_s3().create_bucket(Bucket=BUCKET)
    return moto_server


def small_parts(client: Any, concurrency: int = 3) -> Any:
    """Multipart from 6 MiB, in S3's smallest parts, so tests stay small."""
    client._multipart_threshold = 6 * MIB
    client._part_size = 5 * MIB
    client._part_concurrency = concurrency
    return client


def uploads_in_progress(server: MotoServer) -> list[Any]:
    return list(server.boto3_s3().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def stored(server: MotoServer, key: str) -> bytes:
    return bytes(server.boto3_s3().get_object(Bucket=BUCKET, Key=key)["Body"].read())


def open_files() -> set[str]:
    """What this process has open (Linux), to prove no file handle is left behind."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    names = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            names.add(os.readlink(fd))
    return names


def keys(server: MotoServer) -> list[str]:
    listing = server.boto3_s3().list_objects_v2(Bucket=BUCKET)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.parametrize("kind", ["bytes", "path", "file"])
async def test_multipart_upload_round_trip(server: MotoServer, kind: str, tmp_path: Path) -> None:
    data = os.urandom(16 * MIB + 123)
    source: Any = data
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    if kind == "path":
        source = path
    handle = path.open("rb")
    if kind == "file":
        source = handle
    try:
        async with small_parts(server.client()) as client:
            uri = await client.upload_input(source, f"s3://{BUCKET}/{KEY}", content_type="x/y")
    finally:
        handle.close()
    assert uri == f"s3://{BUCKET}/{KEY}"
    assert stored(server, KEY) == data
    head = server.boto3_s3().head_object(Bucket=BUCKET, Key=KEY, ChecksumMode="ENABLED")
    assert head["ContentType"] == "x/y"
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-4"')  # four parts: 5 + 5 + 5 + 1 MiB
    assert uploads_in_progress(server) == []


async def test_single_put_carries_the_sha256_checksum(server: MotoServer) -> None:
    data = b"small payload"
    async with server.client() as client:
        await client.upload_input(data, f"s3://{BUCKET}/small.json")
    head = server.boto3_s3().head_object(Bucket=BUCKET, Key="small.json", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64sha(data)


class PartFaults(httpx.AsyncBaseTransport):
    """Passes requests on to moto, failing chosen UploadPart attempts or hanging on one."""

    def __init__(
        self, fail: dict[int, list[int]], hang_part: int | None = None, hang_create: bool = False
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fail = fail  # part number -> statuses to answer its first attempts with
        self.hang_part = hang_part
        self.hang_create = hang_create  # S3 has made the upload; its answer is held back
        self.hanging = asyncio.Event()
        self.release = asyncio.Event()
        self.attempts: dict[int, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.hang_create and "uploads" in request.url.params:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            self.hanging.set()
            await self.release.wait()
            return response
        number = request.url.params.get("partNumber")
        if number is not None:
            n = int(number)
            self.attempts[n] = self.attempts.get(n, 0) + 1
            if n == self.hang_part:
                self.hanging.set()
                await asyncio.Event().wait()
            statuses = self.fail.get(n, [])
            if self.attempts[n] <= len(statuses):
                await request.aread()
                return httpx.Response(statuses[self.attempts[n] - 1], request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_failed_part_is_retried_on_its_own(server: MotoServer) -> None:
    data = os.urandom(16 * MIB)
    faults = PartFaults({2: [500, 503]})
    no_backoff = Runtime(sleep=lambda delay: asyncio.sleep(0))
    async with small_parts(server.client(transport=faults, _runtime=no_backoff)) as client:
        await client.upload_input(data, f"s3://{BUCKET}/retried.bin")
    assert faults.attempts == {1: 1, 2: 3, 3: 1, 4: 1}
    assert stored(server, "retried.bin") == data
    assert uploads_in_progress(server) == []


async def test_a_part_that_keeps_failing_aborts_the_upload(server: MotoServer) -> None:
    faults = PartFaults({3: [400]})
    async with small_parts(server.client(transport=faults)) as client:
        with pytest.raises(ServiceError) as caught:
            await client.upload_input(os.urandom(16 * MIB), f"s3://{BUCKET}/failed.bin")
    assert caught.value.status_code == 400
    assert uploads_in_progress(server) == []
    assert keys(server) == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelled_while_s3_creates_the_upload(server: MotoServer) -> None:
    faults = PartFaults({}, hang_create=True)
    async with small_parts(server.client(transport=faults)) as client:
        task = asyncio.ensure_future(
            client.upload_input(os.urandom(11 * MIB), f"s3://{BUCKET}/early.bin")
        )
        await faults.hanging.wait()
        assert len(uploads_in_progress(server)) == 1  # S3 made it; we do not know its id yet
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # waiting for the id, to abort the upload
        faults.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert uploads_in_progress(server) == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_a_multipart_upload_aborts_it(server: MotoServer, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(os.urandom(16 * MIB))
    faults = PartFaults({}, hang_part=3)
    async with small_parts(server.client(transport=faults), concurrency=2) as client:
        task = asyncio.ensure_future(client.upload_input(path, f"s3://{BUCKET}/cancelled.bin"))
        await faults.hanging.wait()
        assert str(path) in open_files()  # the source is open while parts are sent...
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert str(path) not in open_files()  # ...and closed once the upload is abandoned
    assert uploads_in_progress(server) == []
    assert keys(server) == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


class GrowingFile(io.BytesIO):
    """A file object someone appends to after the first part has been read."""

    name = "growing.bin"

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if chunk:
            self.reads += 1
        if self.reads == 1 and chunk:
            here = self.tell()
            self.seek(0, os.SEEK_END)
            self.write(b"appended")
            self.seek(here)
        return chunk


async def test_a_file_that_changes_during_a_multipart_upload(server: MotoServer) -> None:
    async with small_parts(server.client(), concurrency=1) as client:
        with pytest.raises(ParamValidationError, match=r"growing\.bin changed"):
            await client.upload_input(
                GrowingFile(os.urandom(12 * MIB)), f"s3://{BUCKET}/changed.bin"
            )
    assert uploads_in_progress(server) == []
    assert keys(server) == []


async def test_a_path_rewritten_during_a_multipart_upload(
    server: MotoServer, tmp_path: Path
) -> None:
    path = tmp_path / "rewritten.bin"
    path.write_bytes(os.urandom(12 * MIB))

    class Rewrite(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.params.get("partNumber") == "1":
                with path.open("r+b") as handle:  # someone edits the file meanwhile
                    handle.seek(7 * MIB)
                    handle.write(b"edited")
                os.utime(path, ns=(1, 1))
            return await self.inner.handle_async_request(request)

    async with small_parts(server.client(transport=Rewrite()), concurrency=1) as client:
        with pytest.raises(ParamValidationError, match=r"rewritten\.bin changed"):
            await client.upload_input(path, f"s3://{BUCKET}/rewritten.bin")
    assert uploads_in_progress(server) == []
    assert keys(server) == []


@pytest.mark.parametrize("kind", ["path", "file"])
async def test_a_file_that_changes_during_a_single_put(
    server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Hashed, then edited before it is sent: the stream stops before its last byte."""
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(3 * MIB))
    original = _client.prepare_upload  # type: ignore[attr-defined]

    async def prepare_then_edit(payload: object) -> Any:
        body = await original(payload)
        with path.open("r+b") as handle:
            handle.seek(2 * MIB)
            handle.write(b"edited!")
        return body

    monkeypatch.setattr(_client, "prepare_upload", prepare_then_edit)
    with path.open("rb") as handle:
        source: Any = path if kind == "path" else handle
        async with server.client() as client:
            with pytest.raises(ParamValidationError, match=r"payload\.bin changed"):
                await client.upload_input(source, f"s3://{BUCKET}/edited.bin")
    assert keys(server) == []


class CompleteFails(httpx.AsyncBaseTransport):
    """CompleteMultipartUpload answers 200 with an error in its body, ``times`` times."""

    def __init__(self, code: str, times: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.code = code
        self.left = times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_complete = request.method == "POST" and "uploadId" in request.url.params
        if is_complete and self.left:
            self.left -= 1
            await request.aread()
            body = f"<Error><Code>{self.code}</Code><Message>later</Message></Error>"
            return httpx.Response(200, content=body.encode(), request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_complete_with_a_transient_error_in_its_200_is_retried(server: MotoServer) -> None:
    data = os.urandom(11 * MIB)
    async with small_parts(server.client(transport=CompleteFails("InternalError", 1))) as client:
        await client.upload_input(data, f"s3://{BUCKET}/completed.bin")
    assert stored(server, "completed.bin") == data
    assert uploads_in_progress(server) == []


async def test_complete_with_a_permanent_error_aborts(server: MotoServer) -> None:
    async with small_parts(server.client(transport=CompleteFails("InvalidPart", 1))) as client:
        with pytest.raises(ServiceError) as caught:
            await client.upload_input(os.urandom(11 * MIB), f"s3://{BUCKET}/invalid.bin")
    assert (caught.value.code, caught.value.status_code) == ("InvalidPart", 200)
    assert uploads_in_progress(server) == []
    assert keys(server) == []


async def test_a_text_file_object_is_refused_before_any_request(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * (7 * MIB))
    client, _ = make_client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    async with small_parts(client) as client:
        with path.open("r") as handle, pytest.raises(ParamValidationError, match="binary mode"):
            await client.upload_input(handle, "s3://my-bucket/in.txt")
