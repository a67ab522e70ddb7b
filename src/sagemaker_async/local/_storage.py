"""Where the local endpoint reads payloads and writes results: a real S3 API, through our
own client.

The queue needs three things of storage — read an object, write an object with a content
type, make sure a bucket exists — so that is the whole interface (``Storage``). Reads and
writes go through ``AsyncInferenceClient.get_result`` and ``upload_input`` (signed
GetObject and PutObject, with the client's retries), pointed at the local endpoint's own
port, so the objects written are exactly what users then poll for with our client, boto3
or the AWS CLI, and the local endpoint exercises the client it ships with. The client has
no bucket operations, so CreateBucket is one signed request sent here.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Protocol
from urllib.parse import quote, urlsplit

import httpx

from .. import AsyncInferenceClient
from ..errors import SageMakerAsyncError, ServiceError
from ..signing import FrozenCredentials, SigV4Signer, format_amz_date

__all__ = ["ClientStorage", "Storage", "StorageError", "parse_s3_uri"]

_CODE = re.compile(rb"<Code>([^<]*)</Code>")
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


def _reason(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return exc.code or str(exc.status_code)
    return f"{type(exc).__name__}: {exc}"


class ClientStorage:
    """S3 at ``endpoint_url`` (path-style), through our client, signed with ``credentials``."""

    def __init__(
        self, endpoint_url: str, credentials: FrozenCredentials, *, http: httpx.AsyncClient
    ) -> None:
        self._base = endpoint_url.rstrip("/")
        self._credentials = credentials
        self._http = http
        self._signer = SigV4Signer(_REGION, "s3")
        self._client = AsyncInferenceClient(
            _REGION,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            endpoint_url=endpoint_url,
            s3_endpoint_url=endpoint_url,
            max_attempts=3,  # not the user's AWS_MAX_ATTEMPTS: this client is ours
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def read(self, uri: str) -> bytes:
        try:
            return (await self._client.get_result(uri)).body
        except SageMakerAsyncError as exc:
            raise StorageError(f"GetObject {uri} failed: {_reason(exc)}") from exc

    async def write(self, uri: str, data: bytes, content_type: str) -> None:
        try:
            await self._client.upload_input(data, uri, content_type=content_type)
        except SageMakerAsyncError as exc:
            raise StorageError(f"PutObject {uri} failed: {_reason(exc)}") from exc

    async def ensure_bucket(self, bucket: str) -> None:
        """CreateBucket, where "you already own it" (or someone else does) is no error."""
        request = httpx.Request("PUT", f"{self._base}/{quote(bucket, safe='')}")
        self._signer.sign_request(
            request,
            self._credentials,
            amz_date=format_amz_date(time.time()),
            payload_hash=hashlib.sha256(b"").hexdigest(),
        )
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise StorageError(
                f"CreateBucket {bucket} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 200:
            return
        match = _CODE.search(response.content)
        code = match.group(1).decode("utf-8", "replace") if match else str(response.status_code)
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StorageError(f"CreateBucket {bucket} failed: {code}")
