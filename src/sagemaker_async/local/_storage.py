"""Where the local endpoint reads payloads and writes results: a real S3 API.

The queue needs three things of storage — read an object, write an object with a content
type, make sure a bucket exists — so that is the whole interface (``Storage``). Each is one
signed S3 request to the local endpoint's own port (or the S3 it proxies), so the objects
written are exactly what users then poll for with our client, boto3 or the AWS CLI. The
request path is built here, not by a URL library, because keys may hold ``.`` and ``..``
segments that a normalizing client would silently turn into another key.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx

from ..signing import FrozenCredentials, SigV4Signer, format_amz_date
from ._http import Request, Response

__all__ = [
    "BackendStorage",
    "ClientStorage",
    "Storage",
    "StorageError",
    "object_path",
    "parse_s3_uri",
]

_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_ATTEMPTS = 3
_REGION = "us-east-1"  # moto's default; a named S3 endpoint is addressed path-style anyway


class StorageError(Exception):
    """An S3 request failed; the message names the object and the S3 error code."""


class Storage(Protocol):
    async def read(self, uri: str) -> bytes: ...

    async def write(self, uri: str, data: bytes, content_type: str) -> None: ...

    async def ensure_bucket(self, bucket: str) -> None: ...

    async def aclose(self) -> None: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` (or an ``https://`` S3 URL) to ``(bucket, key)``."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme == "https":
        host = parts.hostname or ""
        path = parts.path.lstrip("/")
        marker = host.find(".s3")
        if marker > 0:  # virtual-hosted: bucket.s3[.region].amazonaws.com/key
            bucket, key = host[:marker], path
        else:  # path-style: s3[.region].amazonaws.com/bucket/key
            bucket, _, key = path.partition("/")
    else:
        raise StorageError(f"{uri!r} is not an s3:// or https:// S3 URI")
    if not bucket:
        raise StorageError(f"{uri!r} names no bucket")
    return bucket, key


def object_path(bucket: str, key: str) -> bytes:
    """The path-style request path of an object, exact for any key S3 can hold.

    Every byte outside the unreserved set is percent-encoded, and ``.`` and ``..`` segments
    too, so that no client, proxy or server on the way applies RFC 3986 dot-segment removal:
    the key ``output/../a.out`` stays that key, as on the service.
    """
    segments = []
    for segment in key.split("/"):
        if segment in (".", ".."):
            segments.append(segment.replace(".", "%2E"))
        else:
            segments.append(quote(segment, safe="-_.~"))
    return ("/" + quote(bucket, safe="") + "/" + "/".join(segments)).encode("ascii")


def _create_bucket_body(region: str) -> bytes:
    """CreateBucket's body: S3 (and moto) refuse a bucket outside us-east-1 without one."""
    if region == "us-east-1":
        return b""
    return (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>" + region.encode("ascii") + b"</LocationConstraint>"
        b"</CreateBucketConfiguration>"
    )


class ClientStorage:
    """S3 at ``endpoint_url`` (path-style), signed with ``credentials``.

    Plain signed GetObject, PutObject and CreateBucket requests on our own HTTP client, the
    key on the wire built by ``object_path``: exactly the object a user then polls for with
    our client, boto3 or the AWS CLI.
    """

    def __init__(
        self,
        endpoint_url: str,
        credentials: FrozenCredentials,
        *,
        http: httpx.AsyncClient,
        region: str = _REGION,
    ) -> None:
        self._base = httpx.URL(endpoint_url.rstrip("/"))
        self._credentials = credentials
        self._http = http
        self._signer = SigV4Signer(region, "s3")
        self._bucket_body = _create_bucket_body(region)

    async def aclose(self) -> None:
        return None  # the HTTP client belongs to the endpoint

    async def _send(
        self, method: str, raw_path: bytes, body: bytes, headers: dict[str, str], what: str
    ) -> httpx.Response:
        request = httpx.Request(
            method, self._base.copy_with(raw_path=raw_path), headers=headers, content=body
        )
        self._signer.sign_request(
            request,
            self._credentials,
            amz_date=format_amz_date(time.time()),
            payload_hash=hashlib.sha256(body).hexdigest(),
        )
        last: Exception | None = None
        for _ in range(_ATTEMPTS):
            try:
                return await self._http.send(request)
            except httpx.TransportError as exc:  # our own port: a retry is safe and cheap
                last = exc
        raise StorageError(f"{what} failed: {type(last).__name__}: {last}")

    @staticmethod
    def _error(what: str, response: httpx.Response) -> StorageError:
        match = _CODE.search(response.content)
        code = match.group(1).decode("utf-8", "replace") if match else str(response.status_code)
        return StorageError(f"{what} failed: {code}")

    async def read(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        what = f"GetObject {uri}"
        response = await self._send("GET", object_path(bucket, key), b"", {}, what)
        if response.status_code != 200:
            raise self._error(what, response)
        return response.content

    async def write(self, uri: str, data: bytes, content_type: str) -> None:
        bucket, key = parse_s3_uri(uri)
        what = f"PutObject {uri}"
        response = await self._send(
            "PUT", object_path(bucket, key), data, {"Content-Type": content_type}, what
        )
        if response.status_code != 200:
            raise self._error(what, response)

    async def ensure_bucket(self, bucket: str) -> None:
        """CreateBucket, where "you already own it" (or someone else does) is no error."""
        what = f"CreateBucket {bucket}"
        path = b"/" + quote(bucket, safe="").encode()
        response = await self._send("PUT", path, self._bucket_body, {}, what)
        if response.status_code == 200:
            return
        error = self._error(what, response)
        if not str(error).endswith(("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
            raise error


class BackendStorage:
    """moto's S3 in this process, called directly: no HTTP, no signing, no socket.

    The default store's writes then cost the server a function call on moto's thread pool
    instead of a request through its own port (which, with ``--credentials``, it would
    also have to verify), and they still work while the port is closing.
    """

    def __init__(
        self,
        handle: Callable[[Request], Awaitable[Response]],
        host: str,
        credentials: FrozenCredentials,
        *,
        region: str = _REGION,
    ) -> None:
        self._handle = handle
        self._host = host
        self._credentials = credentials
        self._signer = SigV4Signer(region, "s3")
        self._bucket_body = _create_bucket_body(region)

    async def aclose(self) -> None:
        return None

    async def _send(
        self, method: str, path: bytes, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> Response:
        # Signed, though moto does not check: it treats an unsigned request as anonymous.
        signed = httpx.Request(
            method, httpx.URL(f"http://{self._host}").copy_with(raw_path=path), headers=headers
        )
        self._signer.sign_request(
            signed,
            self._credentials,
            amz_date=format_amz_date(time.time()),
            payload_hash=hashlib.sha256(body).hexdigest(),
        )
        raw = tuple((name.lower(), value) for name, value in signed.headers.raw)
        return await self._handle(Request(method, path, raw, body))

    @staticmethod
    def _error(what: str, response: Response) -> StorageError:
        match = _CODE.search(response.body)
        code = match.group(1).decode("utf-8", "replace") if match else str(response.status)
        return StorageError(f"{what} failed: {code}")

    async def read(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        response = await self._send("GET", object_path(bucket, key), b"")
        if response.status != 200:
            raise self._error(f"GetObject {uri}", response)
        return response.body

    async def write(self, uri: str, data: bytes, content_type: str) -> None:
        bucket, key = parse_s3_uri(uri)
        response = await self._send(
            "PUT",
            object_path(bucket, key),
            data,
            ((b"content-type", content_type.encode("latin-1", "replace")),),
        )
        if response.status != 200:
            raise self._error(f"PutObject {uri}", response)

    async def ensure_bucket(self, bucket: str) -> None:
        path = b"/" + quote(bucket, safe="").encode()
        response = await self._send("PUT", path, self._bucket_body)
        if response.status == 200:
            return
        error = self._error(f"CreateBucket {bucket}", response)
        if not str(error).endswith(("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
            raise error
