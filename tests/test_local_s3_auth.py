"""SigV4 on the S3 half: what AWS documents and botocore signs passes; anything changed in
what was signed is refused — on the head, before a body byte, or as the body streams in."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import time
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_async._protocol.sigv4 import FrozenCredentials, SigV4Signer
from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._s3_auth import S3Verifier
from sagemaker_async.local._sigv4_verify import AuthError
from test_local_support import warm_moto

__all__ = ["warm_moto"]

# -- AWS's published streaming example (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) ----------------

AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_NOW = float(calendar.timegm((2013, 5, 24, 0, 0, 0)))
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNKS = [
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
]
STREAM_HEADERS = (
    (b"host", b"s3.amazonaws.com"),
    (b"x-amz-date", b"20130524T000000Z"),
    (b"x-amz-storage-class", b"REDUCED_REDUNDANCY"),
    (
        b"authorization",
        b"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        b"SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        b"x-amz-decoded-content-length;x-amz-storage-class,Signature=" + SEED.encode(),
    ),
    (b"x-amz-content-sha256", b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    (b"content-encoding", b"aws-chunked"),
    (b"x-amz-decoded-content-length", b"66560"),
    (b"content-length", b"66824"),
)


def _stream_body(corrupt: bool = False) -> bytes:
    parts = []
    for size, signature in CHUNKS:
        data = bytearray(b"a" * size)
        if corrupt and size == 1024:
            data[10] = ord("b")
        parts.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (size, signature.encode(), data))
    return b"".join(parts)


def _aws_check() -> Any:
    verifier = S3Verifier(AWS_KEY, AWS_SECRET)
    return verifier.check_head(
        "PUT", b"/examplebucket/chunkObject.txt", STREAM_HEADERS, now=AWS_NOW
    )


@pytest.mark.parametrize("piece", [1, 7, 4096, 70000])
def test_the_aws_streaming_example_verifies_in_any_piece_size(piece: int) -> None:
    body = _stream_body()
    assert len(body) == 66824
    check = _aws_check()
    for start in range(0, len(body), piece):
        check.feed(body[start : start + piece])
    check.finish()


def test_a_changed_chunk_is_refused() -> None:
    check = _aws_check()
    with pytest.raises(AuthError) as caught:
        check.feed(_stream_body(corrupt=True))
    assert caught.value.code == "SignatureDoesNotMatch"


def test_a_stream_cut_before_its_final_chunk_is_refused() -> None:
    check = _aws_check()
    check.feed(_stream_body()[:66000])
    with pytest.raises(AuthError, match="before its final"):
        check.finish()


# -- botocore as the signing oracle ----------------------------------------------------------

KEY, SECRET, REGION = "AKIDLOCAL", "local/secret+KEY", "us-east-1"
HOST = "127.0.0.1:8080"


def botocore_s3(
    method: str = "PUT",
    path: str = "/bucket/some%20dir/key.txt",
    body: bytes = b"payload bytes",
    *,
    presign: bool = False,
    unsigned: bool = False,
) -> tuple[str, bytes, tuple[tuple[bytes, bytes], ...], bytes]:
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body)
    if unsigned:
        request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    credentials = Credentials(KEY, SECRET)
    if presign:
        S3SigV4QueryAuth(credentials, "s3", REGION, expires=300).add_auth(request)
    else:
        S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    target = str(request.url).split(HOST, 1)[1].encode()
    headers = [(b"host", HOST.encode())]
    for name, value in request.headers.items():
        raw = value if isinstance(value, bytes) else value.encode()
        headers.append((name.lower().encode(), raw))
    return method, target, tuple(headers), body


def s3_verify(wire: tuple[str, bytes, tuple[tuple[bytes, bytes], ...], bytes]) -> None:
    method, target, headers, body = wire
    check = S3Verifier(KEY, SECRET, region=REGION).check_head(
        method, target, headers, now=time.time()
    )
    check.feed(body)
    check.finish()


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"unsigned": True}, {"presign": True, "method": "GET", "body": b""}, {"body": b""}],
)
def test_botocore_signed_s3_requests_pass(kwargs: dict[str, Any]) -> None:
    s3_verify(botocore_s3(**kwargs))


def test_the_region_in_the_scope_must_be_the_endpoints() -> None:
    method, target, headers, _ = botocore_s3()
    with pytest.raises(AuthError) as caught:
        S3Verifier(KEY, SECRET, region="eu-west-1").check_head(
            method, target, headers, now=time.time()
        )
    assert caught.value.code == "AuthorizationHeaderMalformed"
    assert "the region 'us-east-1' is wrong; expecting 'eu-west-1'" in caught.value.message


def test_a_body_that_is_not_the_signed_one_is_refused() -> None:
    method, target, headers, _ = botocore_s3()
    with pytest.raises(AuthError) as caught:
        s3_verify((method, target, headers, b"FORGED RESULT"))
    assert caught.value.code == "XAmzContentSHA256Mismatch"


def test_no_signature_at_all_is_access_denied() -> None:
    with pytest.raises(AuthError) as caught:
        S3Verifier(KEY, SECRET).check_head(
            "GET", b"/b/k", ((b"host", HOST.encode()),), now=time.time()
        )
    assert caught.value.code == "AccessDenied"


def _mutate(raw: bytes, position: int, byte: int) -> bytes:
    i = position % len(raw)
    new = (raw[i] + 1 + byte % 255) % 256  # never the same byte
    return raw[:i] + bytes([new]) + raw[i + 1 :]


@settings(max_examples=200, deadline=None)
@given(
    presign=st.booleans(),
    part=st.sampled_from(["method", "target", "header", "body"]),
    index=st.integers(min_value=0, max_value=10_000),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_fuzz_any_change_to_a_signed_part_is_refused(
    presign: bool, part: str, index: int, position: int, byte: int
) -> None:
    wire = botocore_s3(presign=True, method="GET", body=b"") if presign else botocore_s3()
    method, target, headers, body = wire
    if part == "method":
        method = ["GET", "POST", "DELETE", "HEAD", "put"][index % 5]
    elif part == "target":
        target = _mutate(target, position, byte)
    elif part == "header":
        if presign:
            signed = {b"host"}
        else:
            auth = dict(headers)[b"authorization"].decode()
            signed = {
                h.encode() for h in auth.split("SignedHeaders=")[1].split(",")[0].split(";")
            } | {b"authorization"}
        candidates = [i for i, (name, _) in enumerate(headers) if name in signed]
        i = candidates[index % len(candidates)]
        name, value = headers[i]
        headers = (*headers[:i], (name, _mutate(value, position, byte)), *headers[i + 1 :])
    else:
        if presign:
            return  # a presigned URL signs no payload (UNSIGNED-PAYLOAD), as on AWS
        body = _mutate(body, position, byte)
    if (method, target, headers, body) == wire:
        return
    # A mutation may happen to yield an equivalent canonical form (e.g. %2f vs %2F in the
    # path), which AWS accepts too; everything else must fail.
    try:
        s3_verify((method, target, headers, body))
    except AuthError:
        return
    assert part == "target", (part, method, target)
    assert target.lower() == wire[1].lower(), target


# -- end to end, over HTTP ----------------------------------------------------------------------


def _boto3_s3(local: LocalEndpoint, secret: str = "SECRET", region: str = "us-east-1") -> Any:
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=local.s3_endpoint_url,
        aws_access_key_id="AKID",
        aws_secret_access_key=secret,
    )


@pytest.mark.usefixtures("warm_moto")
async def test_a_forged_put_cannot_overwrite_an_output() -> None:
    async with LocalEndpoint({"e": bytes.upper}, credentials="AKID:SECRET") as local:

        def work() -> list[Any]:
            good = _boto3_s3(local)
            good.put_object(Bucket=local.bucket, Key="output/x.out", Body=b"REAL")
            outcomes: list[Any] = []
            for client in (_boto3_s3(local, secret="WRONG"), _boto3_s3(local, region="eu-west-1")):
                try:
                    client.put_object(Bucket=local.bucket, Key="output/x.out", Body=b"FORGED")
                except client.exceptions.ClientError as exc:
                    outcomes.append(exc.response["Error"]["Code"])
            outcomes.append(good.get_object(Bucket=local.bucket, Key="output/x.out")["Body"].read())
            # boto3's presigned URLs, both forms it makes
            v2 = good.generate_presigned_url(
                "get_object", Params={"Bucket": local.bucket, "Key": "output/x.out"}
            )
            outcomes.append(httpx.get(v2).content)
            outcomes.append(httpx.get(v2.replace("Signature=", "Signature=x")).status_code)
            return outcomes

        outcomes = await asyncio.to_thread(work)
        assert outcomes == [
            "SignatureDoesNotMatch",
            "AuthorizationHeaderMalformed",
            b"REAL",
            b"REAL",
            403,
        ]


@pytest.mark.usefixtures("warm_moto")
async def test_a_body_that_does_not_match_its_declared_hash_is_not_stored() -> None:
    async with LocalEndpoint({"e": bytes.upper}, credentials="AKID:SECRET") as local:
        path = f"/{local.bucket}/k"
        request = AWSRequest(method="PUT", url=local.s3_endpoint_url + path, data=b"signed")
        S3SigV4Auth(Credentials("AKID", "SECRET"), "s3", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
        async with httpx.AsyncClient() as http:
            response = await http.put(
                local.s3_endpoint_url + path, content=b"FORGED", headers=headers
            )
            assert response.status_code == 400
            assert b"<Code>XAmzContentSHA256Mismatch</Code>" in response.content

        def exists() -> bool:
            try:
                _boto3_s3(local).head_object(Bucket=local.bucket, Key="k")
            except Exception:
                return False
            return True

        assert not await asyncio.to_thread(exists)


@pytest.mark.usefixtures("warm_moto")
async def test_the_aws_streaming_upload_is_stored_decoded() -> None:
    """The published example, re-signed for this endpoint's key by a chunk signer here."""
    import hmac

    async with LocalEndpoint({"e": bytes.upper}, credentials=f"{AWS_KEY}:{AWS_SECRET}") as local:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        date = amz_date[:8]
        scope = f"{date}/us-east-1/s3/aws4_request"
        data = b"a" * 66560
        pieces = [data[:65536], data[65536:], b""]
        framed_len = sum(len(b"%x;chunk-signature=" % len(p)) + 64 + 4 + len(p) for p in pieces)
        path = f"/{local.bucket}/chunkObject.txt"
        # The seed signature by our client's signer (independent of the verifier).
        request = httpx.Request(
            "PUT",
            local.s3_endpoint_url + path,
            headers={
                "Content-Encoding": "aws-chunked",
                "Content-Length": str(framed_len),
                "X-Amz-Decoded-Content-Length": "66560",
            },
        )
        SigV4Signer("us-east-1", "s3").sign_request(
            request,
            FrozenCredentials(AWS_KEY, AWS_SECRET),
            amz_date=amz_date,
            payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        )
        seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
        key = ("AWS4" + AWS_SECRET).encode()
        for part in (date, "us-east-1", "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        previous, body = seed, b""
        empty = hashlib.sha256(b"").hexdigest()
        for piece in pieces:
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    amz_date,
                    scope,
                    previous,
                    empty,
                    hashlib.sha256(piece).hexdigest(),
                ]
            )
            previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            body += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), previous.encode(), piece)
        assert len(body) == framed_len
        headers = dict(request.headers.items())
        async with httpx.AsyncClient() as http:
            response = await http.put(local.s3_endpoint_url + path, content=body, headers=headers)
            assert response.status_code == 200, response.text
            tampered = body.replace(b"aaaa", b"aaab", 1)
            refused = await http.put(
                local.s3_endpoint_url + path, content=tampered, headers=headers
            )
            assert refused.status_code == 403
            assert b"SignatureDoesNotMatch" in refused.content

        def read() -> bytes:
            s3 = boto3.client(
                "s3",
                region_name="us-east-1",
                endpoint_url=local.s3_endpoint_url,
                aws_access_key_id=AWS_KEY,
                aws_secret_access_key=AWS_SECRET,
            )
            body: bytes = s3.get_object(Bucket=local.bucket, Key="chunkObject.txt")["Body"].read()
            return body

        assert await asyncio.to_thread(read) == data


@pytest.mark.usefixtures("warm_moto")
async def test_with_notify_the_sqs_half_checks_signatures_too() -> None:
    async with LocalEndpoint({"e": bytes.upper}, credentials="AKID:SECRET", notify=True) as local:

        def receive(secret: str) -> Any:
            sqs = boto3.client(
                "sqs",
                region_name="us-east-1",
                endpoint_url=local.endpoint_url,
                aws_access_key_id="AKID",
                aws_secret_access_key=secret,
            )
            try:
                return sqs.receive_message(QueueUrl=local.queue_url, WaitTimeSeconds=0)
            except sqs.exceptions.ClientError as exc:
                return exc.response["Error"]["Code"]

        good = await asyncio.to_thread(receive, "SECRET")
        assert good["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert await asyncio.to_thread(receive, "WRONG") == "InvalidSignatureException"
