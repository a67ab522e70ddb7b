"""Trailing checksums on S3 uploads: ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what botocore
sends over HTTPS by default) and ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``.

botocore is the oracle: a boto3 client is pointed at ``https://`` on the endpoint's port,
and a ``before-send`` hook takes the request exactly as botocore would put it on the wire
(signed head, aws-chunked body, trailer) and replays it over plain HTTP to the same port,
so the Host it signed is the Host we check. Hostile variants change one thing on the way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._checksums import new_checksum
from sagemaker_async.local._s3_auth import S3Verifier, unverified_payload
from sagemaker_async.local._sigv4_verify import AuthError
from sagemaker_async.signing import FrozenCredentials, SigV4Signer
from test_local_support import warm_moto

__all__ = ["warm_moto"]

KEY, SECRET, REGION = "AKIDTRAILER", "trailer/secret+KEY", "us-east-1"
Wire = tuple[str, bytes, tuple[tuple[bytes, bytes], ...], bytes]


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: object) -> bytes:
        return self._data


def _https_client(port: int) -> Any:
    """boto3 as it talks to S3 over HTTPS: default checksums, so unsigned-trailer uploads."""
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=f"https://127.0.0.1:{port}",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _wire(request: Any, port: int) -> Wire:
    target = request.url.split(f"127.0.0.1:{port}", 1)[1].encode()
    headers = [(b"host", f"127.0.0.1:{port}".encode())]
    for name, value in request.headers.items():
        raw = value if isinstance(value, bytes) else value.encode()
        headers.append((name.lower().encode(), raw))
    body = request.body.read() if hasattr(request.body, "read") else request.body or b""
    return request.method, target, tuple(headers), body


def botocore_wire(body: bytes, port: int = 8080, **put: Any) -> Wire:
    """What botocore sends for a PutObject over HTTPS, captured before it is sent."""
    client = _https_client(port)
    sent: list[Wire] = []

    def capture(request: Any, **_: object) -> AWSResponse:
        sent.append(_wire(request, port))
        return AWSResponse(
            request.url, 200, HTTPHeaders.from_dict({"Content-Length": "0"}), _Raw(b"")
        )

    client.meta.events.register("before-send", capture)
    client.put_object(Bucket="bucket", Key="some key.bin", Body=body, **put)
    return sent[0]


def replaying_client(local: LocalEndpoint, mutate: Callable[[bytes], bytes] = bytes) -> Any:
    """boto3 over "https", each request replayed over HTTP to the endpoint (body mutated)."""
    client = _https_client(local.port)

    def replay(request: Any, **_: object) -> AWSResponse:
        method, target, headers, body = _wire(request, local.port)
        sent = [
            (n, v)
            for n, v in headers
            if n not in (b"host", b"expect", b"transfer-encoding", b"content-length")
        ]
        with httpx.Client(trust_env=False) as http:
            answer = http.request(
                method,
                f"http://127.0.0.1:{local.port}" + target.decode(),
                headers=sent,
                content=iter([mutate(body)]),  # chunked on the wire, as botocore sends it
            )
        return AWSResponse(
            request.url,
            answer.status_code,
            HTTPHeaders.from_dict(dict(answer.headers)),
            _Raw(answer.content),
        )

    client.meta.events.register("before-send", replay)
    return client


def plain_client(local: LocalEndpoint) -> Any:
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=local.s3_endpoint_url,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def verify(wire: Wire, piece: int = 1 << 30) -> bytes:
    method, target, headers, body = wire
    check = S3Verifier(KEY, SECRET, region=REGION).check_head(
        method, target, headers, now=time.time()
    )
    out = [check.feed(body[i : i + piece]) for i in range(0, len(body), piece)]
    check.finish()
    return b"".join(out)


# -- the verifier against botocore's bytes -----------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA256", "SHA1"])
@pytest.mark.parametrize("piece", [1, 5, 4096, 1 << 30])
def test_botocores_unsigned_trailer_upload_verifies_and_decodes(
    algorithm: str | None, piece: int
) -> None:
    body = os.urandom(3000) if piece < 10 else os.urandom(200_000)
    put: dict[str, Any] = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    wire = botocore_wire(body, **put)
    headers = dict(wire[2])
    assert headers[b"x-amz-content-sha256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers[b"x-amz-trailer"] == f"x-amz-checksum-{(algorithm or 'crc32').lower()}".encode()
    assert verify(wire, piece) == body


def _replace_trailer(body: bytes, value: bytes) -> bytes:
    head, sep, _ = body.rpartition(b":")
    return head + sep + value + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: _replace_trailer(b, b"AAAAAA=="), "BadDigest"),
        (lambda b: b.rsplit(b"0\r\n", 1)[0] + b"0\r\n\r\n", "MalformedTrailerError"),
        (lambda b: b.replace(b"checksum-crc32", b"checksum-sha1"), "MalformedTrailerError"),
        (lambda b: b"%x" % (int(b.split(b"\r\n", 1)[0], 16) - 1) + b"\r\n" + b.split(b"\r\n", 1)[1],
         "IncompleteBody"),
        (lambda b: b"%x" % (int(b.split(b"\r\n", 1)[0], 16) + 1) + b"\r\n" + b.split(b"\r\n", 1)[1],
         "IncompleteBody"),
        (lambda b: b[:-2], "IncompleteBody"),
        (lambda b: b[:40], "IncompleteBody"),
        (lambda b: b + b"x", "IncompleteBody"),
        (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "BadDigest"),
    ],
    ids=["checksum", "trailer-absent", "other-trailer", "short-chunk",
         "long-chunk", "no-final-crlf", "cut", "extra", "flipped-data"],
)  # fmt: skip
def test_a_mutated_trailer_upload_is_refused(mutate: Callable[[bytes], bytes], code: str) -> None:
    method, target, headers, body = botocore_wire(b"0123456789" * 100)
    with pytest.raises(AuthError) as caught:
        verify((method, target, headers, mutate(body)))
    assert caught.value.code == code
    assert caught.value.status == 400


def test_the_decoded_length_must_match_the_chunks() -> None:
    method, target, headers, body = botocore_wire(b"x" * 100)
    # Re-declared (and so re-signed) shorter: the first chunk is already longer.
    signer_headers = [(n, v) for n, v in headers if n not in (b"authorization", b"x-amz-date")]
    request = httpx.Request(
        method,
        "http://" + dict(headers)[b"host"].decode() + target.decode(),
        headers=[(n, b"99" if n == b"x-amz-decoded-content-length" else v)
                 for n, v in signer_headers if n != b"host"],
    )  # fmt: skip
    SigV4Signer(REGION, "s3").sign_request(
        request,
        FrozenCredentials(KEY, SECRET),
        amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    resigned = tuple((n.lower(), v) for n, v in request.headers.raw)
    with pytest.raises(AuthError) as caught:
        verify((method, target, resigned, body))
    assert caught.value.code == "IncompleteBody"


def test_an_unsupported_trailer_is_refused_on_the_head() -> None:
    method, target, headers, _ = botocore_wire(b"x")
    changed = tuple((n, b"x-amz-checksum-md5" if n == b"x-amz-trailer" else v) for n, v in headers)
    with pytest.raises(AuthError) as caught:
        unverified_payload(method, target, changed)
    assert (caught.value.code, caught.value.status) == ("InvalidRequest", 400)
    # With credentials the trailer name is signed: changed, it is a forgery first.
    with pytest.raises(AuthError, match="SignatureDoesNotMatch"):
        S3Verifier(KEY, SECRET, region=REGION).check_head(method, target, changed, now=time.time())


def _mutate(data: bytes, position: int, byte: int) -> bytes:
    if not data:
        return bytes([byte])
    i = position % len(data)
    return data[:i] + bytes([byte]) + data[i + 1 :]


@settings(max_examples=300, deadline=None)
@given(
    part=st.sampled_from(["header", "body", "body", "body"]),
    index=st.integers(min_value=0, max_value=10_000),
    position=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_fuzz_any_change_to_a_trailer_upload_is_refused(
    part: str, index: int, position: int, byte: int
) -> None:
    wire = _FUZZ_WIRE
    method, target, headers, body = wire
    if part == "header":
        auth = dict(headers)[b"authorization"].decode()
        signed = {h.encode() for h in auth.split("SignedHeaders=")[1].split(",")[0].split(";")}
        candidates = [
            i for i, (name, _) in enumerate(headers) if name in signed | {b"authorization"}
        ]
        i = candidates[index % len(candidates)]
        name, value = headers[i]
        headers = (*headers[:i], (name, _mutate(value, position, byte)), *headers[i + 1 :])
    else:
        body = _mutate(body, position, byte)
    if (headers, body) == (wire[2], wire[3]):
        return
    try:
        verify((method, target, headers, body))
    except AuthError:
        return
    # Only an equivalent spelling may pass: a hex digit's or a trailer name's letter case.
    assert part == "body"
    assert body.lower() == wire[3].lower(), body


_FUZZ_WIRE = botocore_wire(b"fuzz me " * 40)


# -- end to end, over HTTP ------------------------------------------------------------------


@pytest.mark.usefixtures("warm_moto")
@pytest.mark.parametrize("credentials", [f"{KEY}:{SECRET}", None], ids=["signed", "open"])
async def test_boto3s_https_uploads_are_stored_after_their_trailer_is_checked(
    credentials: str | None,
) -> None:
    small, large = os.urandom(1000), os.urandom(3 * 1024 * 1024)  # large: streamed to moto
    async with LocalEndpoint({"e": bytes.upper}, credentials=credentials) as local:
        s3, reader = replaying_client(local), plain_client(local)

        def roundtrip() -> list[Any]:
            results = []
            for key, data, algorithm in (("small", small, "CRC32"), ("large", large, "CRC32"),
                                         ("sha", small, "SHA256")):  # fmt: skip
                put = s3.put_object(
                    Bucket=local.bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm
                )
                got = reader.get_object(Bucket=local.bucket, Key=key)["Body"].read()
                results.append((put, got, data))
            return results

        for put, got, data in await asyncio.to_thread(roundtrip):
            assert got == data
            assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        crc = base64.b64encode(zlib.crc32(large).to_bytes(4, "big")).decode()
        assert (await asyncio.to_thread(roundtrip))[1][0]["ChecksumCRC32"] == crc


@pytest.mark.usefixtures("warm_moto")
@pytest.mark.parametrize("credentials", [f"{KEY}:{SECRET}", None], ids=["signed", "open"])
async def test_a_trailer_that_does_not_match_stores_nothing(credentials: str | None) -> None:
    async with LocalEndpoint({"e": bytes.upper}, credentials=credentials) as local:
        forged = replaying_client(local, mutate=lambda b: _replace_trailer(b, b"AAAAAA=="))
        absent = replaying_client(local, mutate=lambda b: b.rsplit(b"0\r\n", 1)[0] + b"0\r\n\r\n")
        reader = plain_client(local)

        def attempt(client: Any) -> str:
            try:
                client.put_object(Bucket=local.bucket, Key="k", Body=b"data" * 1000)
            except client.exceptions.ClientError as exc:
                return str(exc.response["Error"]["Code"])
            return "stored"

        assert await asyncio.to_thread(attempt, forged) == "BadDigest"
        assert await asyncio.to_thread(attempt, absent) == "MalformedTrailerError"
        listed = await asyncio.to_thread(reader.list_objects_v2, Bucket=local.bucket)
        assert "Contents" not in listed


# -- the signed variant: chunk signatures and a trailer signature --------------------------


def _signed_trailer_upload(
    url: str, path: str, data: bytes, *, tamper: str = ""
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER PutObject; the seed
    signature by our client's signer, chunk and trailer signatures chained here."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    request = httpx.Request(
        "PUT",
        url + path,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "X-Amz-Trailer": "x-amz-checksum-crc32c",
        },
    )
    SigV4Signer(REGION, "s3").sign_request(
        request,
        FrozenCredentials(KEY, SECRET),
        amz_date=amz_date,
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    )
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    key = ("AWS4" + SECRET).encode()
    for part in (amz_date[:8], REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()

    def sign(*lines: str) -> str:
        return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()

    empty = hashlib.sha256(b"").hexdigest()
    body = b""
    for piece in (data[:1000], data[1000:], b""):
        previous = sign("AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, empty,
                        hashlib.sha256(piece).hexdigest())  # fmt: skip
        body += b"%x;chunk-signature=%s\r\n" % (len(piece), previous.encode())
        body += piece + b"\r\n" if piece else b""
    checksum = new_checksum("crc32c")
    checksum.update(data)
    value = "AAAAAA==" if tamper == "checksum" else checksum.b64digest()
    trailer = f"x-amz-checksum-crc32c:{value}\n"
    signature = sign("AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                     hashlib.sha256(trailer.encode()).hexdigest())  # fmt: skip
    if tamper == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    body += trailer.replace("\n", "\r\n").encode()
    body += f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    headers = {
        n: v for n, v in request.headers.items() if n.lower() not in ("host", "content-length")
    }
    return headers, body


@pytest.mark.usefixtures("warm_moto")
async def test_the_signed_trailer_variant_is_verified_chunk_by_chunk_and_at_its_trailer() -> None:
    data = os.urandom(2500)
    async with LocalEndpoint({"e": bytes.upper}, credentials=f"{KEY}:{SECRET}") as local:
        url, path = local.s3_endpoint_url, f"/{local.bucket}/signed-trailer"
        async with httpx.AsyncClient(trust_env=False) as http:
            cases = [("signature", 403, b"SignatureDoesNotMatch"), ("checksum", 400, b"BadDigest")]
            for tamper, status, code in [*cases, ("", 200, b"")]:
                headers, body = _signed_trailer_upload(url, path, data, tamper=tamper)
                response = await http.put(url + path, content=body, headers=headers)
                assert response.status_code == status, (tamper, response.text)
                assert code in response.content
                if tamper:
                    assert (await http.get(url + path)).status_code in (403, 404)
        stored = await asyncio.to_thread(
            lambda: plain_client(local).get_object(Bucket=local.bucket, Key="signed-trailer")
        )
        assert stored["Body"].read() == data


@pytest.mark.parametrize(
    ("algorithm", "check"),
    [("crc32", 0xCBF43926), ("crc32c", 0xE3069283), ("crc64nvme", 0xAE8B14860A799888)],
)
def test_the_crcs_give_their_published_check_values(algorithm: str, check: int) -> None:
    checksum = new_checksum(algorithm)
    for piece in (b"1234", b"", b"56789"):  # fed in pieces, as a body streams
        checksum.update(piece)
    assert int.from_bytes(base64.b64decode(checksum.b64digest()), "big") == check


def test_the_shas_are_base64_digests() -> None:
    for name in ("sha1", "sha256"):
        checksum = new_checksum(name.upper())
        checksum.update(b"abc")
        assert base64.b64decode(checksum.b64digest()) == hashlib.new(name, b"abc").digest()
    with pytest.raises(ValueError, match="md5"):
        new_checksum("md5")


def test_the_aws_crt_computes_the_slow_crcs_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from sagemaker_async.local import _checksums

    calls: list[str] = []

    def continued(name: str, width: int) -> Callable[[bytes, int], int]:
        # The CRT's contract: the next value from the previous final one.
        def function(data: bytes, previous: int) -> int:
            calls.append(name)
            table = _checksums._TableCrc(
                _checksums._reflected_table(
                    _checksums._CRC32C if width == 32 else _checksums._CRC64NVME
                ),
                width,
            )
            table._crc = previous ^ table._mask
            table.update(data)
            return table._crc ^ table._mask

        return function

    fake = types.ModuleType("awscrt.checksums")
    fake.crc32c = continued("crc32c", 32)  # type: ignore[attr-defined]
    fake.crc64nvme = continued("crc64nvme", 64)  # type: ignore[attr-defined]
    package = types.ModuleType("awscrt")
    package.checksums = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "awscrt", package)
    monkeypatch.setitem(sys.modules, "awscrt.checksums", fake)
    _checksums._crt_checksums.cache_clear()
    try:
        for name, check in (("crc32c", 0xE3069283), ("crc64nvme", 0xAE8B14860A799888)):
            checksum = new_checksum(name)
            checksum.update(b"1234")
            checksum.update(b"56789")
            assert int.from_bytes(base64.b64decode(checksum.b64digest()), "big") == check
    finally:
        _checksums._crt_checksums.cache_clear()
    assert calls == ["crc32c", "crc32c", "crc64nvme", "crc64nvme"]


def test_an_unsigned_trailer_carries_no_trailer_signature() -> None:
    method, target, headers, body = botocore_wire(b"abc")
    forged = body[:-2] + b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n\r\n"
    with pytest.raises(AuthError) as caught:
        verify((method, target, headers, forged))
    assert caught.value.code == "MalformedTrailerError"
