"""S3 multipart upload on the wire: the four requests and the two answers we read. Pure.

What botocore sends for CreateMultipartUpload, UploadPart, CompleteMultipartUpload and
AbortMultipartUpload with ``ChecksumAlgorithm="SHA256"`` against an endpoint where the
payload is signed (``tests/test_multipart.py`` compares byte for byte): the part's SHA-256
serves twice, hex as the signed payload hash and base64 as ``x-amz-checksum-sha256``, so S3
checks every part against both, and the completed object carries a composite SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

from ..errors import ServiceError
from .s3 import (
    S3Endpoint,
    S3Location,
    S3Request,
    check_content_type,
    encode_key,
    parse_s3_error,
)
from .sigv4 import EMPTY_SHA256

__all__ = [
    "CompletedPart",
    "abort_request",
    "checksum_headers",
    "complete_body",
    "complete_request",
    "create_request",
    "parse_complete",
    "parse_upload_id",
    "sha256_base64",
    "upload_part_request",
]

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# S3's limits: at most 10,000 parts, each at least 5 MiB but the last, at most 5 GiB.
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str
    checksum_sha256: str


def sha256_base64(hex_digest: str) -> str:
    """``x-amz-checksum-sha256``: the same digest as the signed payload hash, in base64."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def checksum_headers(hex_digest: str) -> tuple[tuple[str, str], ...]:
    """The flexible-checksum headers botocore adds to a PUT with ChecksumAlgorithm=SHA256."""
    return (
        ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ("x-amz-checksum-sha256", sha256_base64(hex_digest)),
    )


def _request(
    operation: str,
    method: str,
    location: S3Location,
    endpoint: S3Endpoint,
    query: str,
    headers: tuple[tuple[str, str], ...] = (),
    payload_hash: str = EMPTY_SHA256,
) -> S3Request:
    url, host, path = endpoint.target(location.bucket, "/" + encode_key(location.key))
    return S3Request(
        operation,
        method,
        f"{url}?{query}",
        host,
        (*headers, ("X-Amz-Content-SHA256", payload_hash)),
        payload_hash,
        path,
        query,
    )


def _upload_id(upload_id: str) -> str:
    return quote(upload_id, safe="-_.~")


def create_request(
    location: S3Location, endpoint: S3Endpoint, *, content_type: str | None = None
) -> S3Request:
    headers: tuple[tuple[str, str], ...] = ()
    if content_type is not None:
        headers += (("Content-Type", check_content_type(content_type)),)
    headers += (("x-amz-checksum-algorithm", "SHA256"),)
    return _request("CreateMultipartUpload", "POST", location, endpoint, "uploads", headers)


def upload_part_request(
    location: S3Location,
    endpoint: S3Endpoint,
    *,
    upload_id: str,
    part_number: int,
    payload_hash: str,
    content_length: int | None = None,
) -> S3Request:
    """``content_length`` for a streamed part (signed, as for a streamed PutObject)."""
    headers = checksum_headers(payload_hash)
    if content_length is not None:
        headers += (("Content-Length", str(content_length)),)
    return _request(
        "UploadPart",
        "PUT",
        location,
        endpoint,
        f"uploadId={_upload_id(upload_id)}&partNumber={part_number}",
        headers,
        payload_hash,
    )


def complete_body(parts: list[CompletedPart]) -> bytes:
    """The XML botocore serializes, parts in order (S3 requires ascending numbers)."""
    items = "".join(
        f"<Part><PartNumber>{part.number}</PartNumber><ETag>{_xml(part.etag)}</ETag>"
        f"<ChecksumSHA256>{part.checksum_sha256}</ChecksumSHA256></Part>"
        for part in sorted(parts, key=lambda part: part.number)
    )
    return (
        f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{items}'
        "</CompleteMultipartUpload>"
    ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def complete_request(
    location: S3Location, endpoint: S3Endpoint, *, upload_id: str, parts: list[CompletedPart]
) -> tuple[S3Request, bytes]:
    body = complete_body(parts)
    request = _request(
        "CompleteMultipartUpload",
        "POST",
        location,
        endpoint,
        f"uploadId={_upload_id(upload_id)}",
        payload_hash=hashlib.sha256(body).hexdigest(),
    )
    return request, body


def abort_request(location: S3Location, endpoint: S3Endpoint, *, upload_id: str) -> S3Request:
    return _request(
        "AbortMultipartUpload", "DELETE", location, endpoint, f"uploadId={_upload_id(upload_id)}"
    )


def _root(body: bytes) -> ET.Element | None:
    if not body.lstrip().startswith(b"<"):
        return None
    try:
        return ET.fromstring(body)  # noqa: S314 - expat: no external entities
    except ET.ParseError:
        return None


def _child(root: ET.Element, name: str) -> str | None:
    node = root.find(_NS + name)
    if node is None:
        node = root.find(name)
    return None if node is None or node.text is None else node.text.strip()


def parse_upload_id(status_code: int, body: bytes, request_id: str | None) -> str:
    root = _root(body)
    upload_id = None if root is None else _child(root, "UploadId")
    if not upload_id:
        raise ServiceError(
            "CreateMultipartUpload answered without an UploadId",
            code="MalformedResponse",
            status_code=status_code,
            request_id=request_id,
        )
    return upload_id


def parse_complete(status_code: int, body: bytes, request_id: str | None) -> ServiceError | None:
    """S3 may answer CompleteMultipartUpload 200 and put an error in the body."""
    root = _root(body)
    if root is None or root.tag.removeprefix(_NS) != "Error":
        return None
    error = parse_s3_error(500, {}, body)
    return type(error)(
        error.message, code=error.code, status_code=status_code, request_id=request_id
    )
