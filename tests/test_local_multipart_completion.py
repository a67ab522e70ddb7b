"""CompleteMultipartUpload in the built-in store, assembled without the object in memory.

Oracle: moto's own ``complete``. The same parts are uploaded twice to one backend and
completed once each way (streamed, and by moto with streaming off); everything a client can
see must agree: the bytes, the ETag, the checksum and its type, or the error. Measured
where it matters: the peak RSS of a ``local serve`` process while boto3 uploads 200 MiB in
parts through it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from botocore_oracle import boto3_s3, botocore_request
from sagemaker_async.local import _moto_complete, _moto_stream
from sagemaker_async.local._http import Request, Response
from sagemaker_async.local._s3backend import MotoBackend, _is_completion
from test_local_big_upload import MIB, _peak_rss, _stored_sha256, _write_body, serving_in_a_process
from test_local_moto_routing import HOST, as_request
from test_local_support import backend_fixture, warm_moto

__all__ = ["backend_fixture", "warm_moto"]

PARTS = (os.urandom(5 * MIB), os.urandom(100 * 1024))  # a full part, then a short last one


def signed(operation: str, **params: Any) -> Request:
    return as_request(
        botocore_request(boto3_s3("us-east-1", endpoint_url=f"http://{HOST}"), operation, **params)
    )


async def upload_parts(
    backend: MotoBackend, bucket: str, key: str, parts: tuple[bytes, ...], **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    created = await backend.handle(
        signed("create_multipart_upload", Bucket=bucket, Key=key, **create)
    )
    assert created.status == 200, created.body
    upload_id = created.body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    done = []
    for number, data in enumerate(parts, start=1):
        answer = await backend.handle(
            signed(
                "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                Body=data,
            )
        )  # fmt: skip
        assert answer.status == 200
        done.append({"PartNumber": number, "ETag": dict(answer.headers)["ETag"]})
    return upload_id, done


async def complete(
    backend: MotoBackend, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]
) -> Response:
    request = signed(
        "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": parts},
    )  # fmt: skip
    assert _is_completion(request)
    return await backend.handle(request)


async def seen(backend: MotoBackend, bucket: str, key: str) -> tuple[Any, ...]:
    """What a client sees of the object: bytes, ETag, checksum headers, size."""
    head = await backend.handle(
        signed("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    )
    if head.status != 200:
        return (head.status,)  # nothing stored (an error names the key: not compared)
    got = await backend.handle(signed("get_object", Bucket=bucket, Key=key))
    headers = {n.lower(): v for n, v in head.headers if n.lower() != "x-amzn-requestid"}
    checksums = {n: v for n, v in headers.items() if n.startswith("x-amz-checksum")}
    return (
        head.status,
        hashlib.sha256(got.body).hexdigest(),
        headers.get("etag"),
        checksums,
        headers.get("content-length"),
    )


async def both_ways(
    backend: MotoBackend, parts: tuple[bytes, ...], edit: Any = None, **create: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The same upload completed streamed and by moto: (status, error code, object) each."""
    bucket = f"mpc-{uuid.uuid4().hex[:12]}"
    assert (await backend.handle(signed("create_bucket", Bucket=bucket))).status == 200
    outcomes = []
    for streamed in (True, False):
        backend._stream_completions = streamed
        try:
            key = f"obj-{streamed}"
            upload_id, done = await upload_parts(backend, bucket, key, parts, **create)
            answer = await complete(backend, bucket, key, upload_id, edit(done) if edit else done)
            code = (
                answer.body.split(b"<Code>")[1].split(b"</Code>")[0]
                if answer.status != 200
                else None
            )
            outcomes.append((answer.status, code, await seen(backend, bucket, key)))
        finally:
            backend._stream_completions = True
    return outcomes[0], outcomes[1]


@pytest.mark.usefixtures("warm_moto")
@pytest.mark.parametrize("checksum_type", [None, "COMPOSITE", "FULL_OBJECT"])
@pytest.mark.parametrize("algorithm", [None, "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
async def test_a_streamed_completion_is_moto_s(
    backend: MotoBackend,
    algorithm: str | None,
    checksum_type: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adopted: list[int] = []
    adopt = _moto_stream.adopt_next_empty_value

    def counted(buffer: Any, size: int) -> Any:
        adopted.append(size)
        return adopt(buffer, size)

    monkeypatch.setattr(_moto_stream, "adopt_next_empty_value", counted)
    create: dict[str, str] = {}
    if algorithm is not None:
        create["ChecksumAlgorithm"] = algorithm
    if checksum_type is not None:
        create["ChecksumType"] = checksum_type
    streamed, moto = await both_ways(backend, PARTS, **create)
    assert adopted == [sum(map(len, PARTS))]  # streamed once (moto's way the other time)
    assert streamed == moto
    assert streamed[0] == 200
    assert streamed[2][1] == hashlib.sha256(b"".join(PARTS)).hexdigest()


@pytest.mark.usefixtures("warm_moto")
@pytest.mark.parametrize(
    ("name", "parts", "edit"),
    [
        ("a wrong ETag", PARTS, lambda done: [done[0], {**done[1], "ETag": '"0" '}]),
        ("an unknown part", PARTS, lambda done: [*done, {"PartNumber": 7, "ETag": '"00"'}]),
        ("a short part before the last", (b"x" * 1024, b"y"), None),
        ("no parts", PARTS, lambda done: []),
        ("parts out of order", PARTS, lambda done: done[::-1]),
    ],
)
async def test_a_refused_completion_is_refused_as_moto_refuses_it(
    backend: MotoBackend, name: str, parts: tuple[bytes, ...], edit: Any
) -> None:
    streamed, moto = await both_ways(backend, parts, edit)
    assert streamed == moto, name
    assert streamed[0] >= 400, name
    assert getattr(_moto_stream._local, "pending", None) is None  # nothing left pending


def test_the_completion_seam_is_there_in_the_moto_we_support() -> None:
    seam = _moto_complete.check_seam()
    _moto_complete.install()
    assert seam["models"].FakeMultipart.complete.__name__ == "complete"


@pytest.mark.parametrize(
    ("method", "target", "completion"),
    [
        ("POST", b"/b/k?uploadId=abc", True),
        ("POST", b"/b/dir/k?uploadId=abc&x-id=CompleteMultipartUpload", True),
        ("POST", b"/b/k?uploads", False),
        ("PUT", b"/b/k?uploadId=abc&partNumber=1", False),
        ("POST", b"/b?uploadId=abc", False),
        ("POST", b"/b/k?delete", False),
    ],
)
def test_only_completions_are_streamed(method: str, target: bytes, completion: bool) -> None:
    assert _is_completion(Request(method, target, (), b"")) is completion


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
async def test_a_200_mib_multipart_upload_costs_the_server_little_memory(tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    size = 200 * MIB
    source = tmp_path / "big.bin"
    expected = await asyncio.to_thread(_write_body, source, size)
    async with serving_in_a_process(tmp_path) as (pid, s3):
        config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
        # Warm every path first (a small multipart upload): the baseline is the peak of
        # everything but the big object.
        warm = tmp_path / "warm.bin"
        await asyncio.to_thread(_write_body, warm, 17 * MIB)
        await asyncio.to_thread(s3.upload_file, str(warm), "big", "warm", Config=config)
        baseline = _peak_rss(pid)
        await asyncio.to_thread(s3.upload_file, str(source), "big", "large", Config=config)
        growth = _peak_rss(pid) - baseline
        # Parts in flight cost memory by the part (ten of 8 MiB here: 40-75 MiB measured,
        # more under coverage); the object must cost none: moto's in-memory assembly
        # grew it 454 MiB, over twice the object.
        assert growth < 128 * MIB, f"the server's peak RSS grew {growth / MIB:.0f} MiB"
        assert await asyncio.to_thread(_stored_sha256, s3, "big", "large") == expected


@pytest.mark.usefixtures("warm_moto")
async def test_a_completion_answered_200_without_storing_the_object_is_an_error(
    backend: MotoBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If moto (another release, say) answered 200 without creating the key that adopts the
    assembled object, the client must not be told its upload is stored."""
    from moto.s3.models import S3Backend

    bucket = f"mpc-{uuid.uuid4().hex[:12]}"
    assert (await backend.handle(signed("create_bucket", Bucket=bucket))).status == 200
    upload_id, done = await upload_parts(backend, bucket, "k", PARTS)
    put_object = S3Backend.put_object

    def stores_a_value_of_its_own(
        self: Any, bucket_name: str, key: str, value: bytes, **kw: Any
    ) -> Any:
        return put_object(self, bucket_name, key, b"not the parts", **kw)

    monkeypatch.setattr(S3Backend, "put_object", stores_a_value_of_its_own)
    answer = await complete(backend, bucket, "k", upload_id, done)
    assert answer.status == 500
    assert b"<Code>InternalError</Code>" in answer.body
    assert getattr(_moto_stream._local, "pending", None) is None  # the spool was closed
