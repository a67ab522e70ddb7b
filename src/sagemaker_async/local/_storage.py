"""Where the local endpoint reads payloads and writes results: a real S3 API.

The queue only needs three things of storage — read an object, write an object with a
content type, make sure a bucket exists — so that is the whole interface (``Storage``). The
implementation sends signed S3 requests (PutObject, GetObject, CreateBucket) to an S3
endpoint URL, normally the local endpoint's own port, so the objects it writes are exactly
the ones users then poll for with our client, boto3 or the AWS CLI.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx

from .._signing import FrozenCredentials, SigV4Signer, format_amz_date

__all__ = ["S3Storage", "Storage", "StorageError", "parse_s3_uri"]

_CODE = re.compile(rb"<Code>([^<]*)</Code>")


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


def _error_code(response: httpx.Response) -> str:
    match = _CODE.search(response.content)
    return match.group(1).decode("utf-8", "replace") if match else str(response.status_code)


class S3Storage:
    """Signed, path-style S3 requests to ``endpoint_url``."""

    def __init__(
        self,
        endpoint_url: str,
        credentials: FrozenCredentials,
        *,
        region: str = "us-east-1",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = endpoint_url.rstrip("/")
        self._credentials = credentials
        self._signer = SigV4Signer(region, "s3")
        self._client = client or httpx.AsyncClient(timeout=60.0)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _send(
        self, method: str, bucket: str, key: str | None, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        path = f"/{quote(bucket, safe='')}"
        if key is not None:
            path += "/" + quote(key, safe="/-_.~")
        request = httpx.Request(method, self._base + path, headers=headers, content=body)
        self._signer.sign_request(
            request,
            self._credentials,
            amz_date=format_amz_date(time.time()),
            payload_hash=hashlib.sha256(body).hexdigest(),
        )
        return await self._client.send(request)

    async def read(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        try:
            response = await self._send("GET", bucket, key, b"", {})
        except httpx.HTTPError as exc:
            raise StorageError(f"GetObject {uri} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise StorageError(f"GetObject {uri} failed: {_error_code(response)}")
        return response.content

    async def write(self, uri: str, data: bytes, content_type: str) -> None:
        bucket, key = parse_s3_uri(uri)
        try:
            response = await self._send("PUT", bucket, key, data, {"Content-Type": content_type})
        except httpx.HTTPError as exc:
            raise StorageError(f"PutObject {uri} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise StorageError(f"PutObject {uri} failed: {_error_code(response)}")

    async def ensure_bucket(self, bucket: str) -> None:
        try:
            response = await self._send("PUT", bucket, None, b"", {})
        except httpx.HTTPError as exc:
            raise StorageError(
                f"CreateBucket {bucket} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 200:
            return
        code = _error_code(response)
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StorageError(f"CreateBucket {bucket} failed: {code}")
