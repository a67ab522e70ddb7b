"""The S3 object operations, sent through the client's one signed sender.

Thin I/O around ``_protocol.s3``: pick the host for the bucket's region, build the request (a pure
function), send it, and when S3 says the bucket lives in another region, remember that
region and send the request once more, signed for it (what the AWS SDKs do). The runtime
client's FIPS and dual-stack settings choose the S3 host too: a FIPS user's payload never
leaves FIPS.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from .._protocol.endpoints import resolve_s3_host
from .._protocol.freshness import parse_http_date
from .._protocol.invoke import request_id_of
from .._protocol.requests import Request
from .._protocol.s3 import (
    ListEntry,
    Redirect,
    S3Endpoint,
    S3Location,
    get_object_request,
    head_bucket_request,
    head_object_request,
    list_objects_request,
    parse_list_entries,
    parse_list_wanted,
    parse_s3_error,
    parse_s3_failure,
    put_object_request,
    redirect_region,
)
from .._protocol.s3_multipart import (
    CompletedPart,
    abort_request,
    checksum_headers,
    complete_body,
    complete_request,
    create_request,
    parse_complete,
    parse_upload_id,
    upload_part_request,
)
from .._protocol.sigv4 import SigV4Signer
from ..errors import AccessDeniedError, ServiceError

if TYPE_CHECKING:  # the sender reads bodies with .streams, which reads object heads here
    from .sender import Content, SignedSender

__all__ = ["ObjectHead", "S3Objects", "object_head"]

logger = logging.getLogger("sagemaker_async")

_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a HEAD (or a GET's response head) says about an object, body unread."""

    last_modified: datetime | None = None
    content_length: int | None = None
    content_type: str | None = None
    content_encoding: str | None = None


def object_head(headers: httpx.Headers) -> ObjectHead:
    """The object's metadata from S3's response headers (a bad length reads as unknown)."""
    length_text = headers.get("content-length")
    length = int(length_text) if length_text is not None and length_text.isdigit() else None
    return ObjectHead(
        last_modified=parse_http_date(headers.get("last-modified")),
        content_length=length,
        content_type=headers.get("content-type"),
        content_encoding=headers.get("content-encoding"),
    )


# CompleteMultipartUpload can fail after its 200 head was sent: these codes are transient.
_COMPLETE_RETRY_CODES = frozenset({"InternalError", "SlowDown", "ServiceUnavailable"})
_COMPLETE_ATTEMPTS = 3


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _found_or_missing(status: int) -> bool:
    return 200 <= status < 300 or status == 404


def _any(status: int) -> bool:
    return True


class S3Objects:
    """PutObject, HeadObject and GetObject for one client (its region, endpoint, flags)."""

    __slots__ = (
        "_bucket_regions",
        "_endpoint_url",
        "_endpoints",
        "_region",
        "_sender",
        "_signers",
        "_use_dualstack",
        "_use_fips",
    )

    def __init__(
        self,
        sender: SignedSender,
        *,
        region: str,
        endpoint_url: str | None = None,
        use_fips: bool = False,
        use_dualstack: bool = False,
    ) -> None:
        self._sender = sender
        self._region = region
        self._endpoint_url = endpoint_url
        self._use_fips = use_fips
        self._use_dualstack = use_dualstack
        # Buckets found (by a redirect) to live outside the client's region.
        self._bucket_regions: dict[str, str] = {}
        self._signers: dict[str, SigV4Signer] = {}
        self._endpoints: dict[str, S3Endpoint] = {}
        # Resolve now, so a region or flag S3 cannot serve fails at the first call.
        self._endpoint(region)

    def bucket_region(self, bucket: str) -> str:
        """The region requests for ``bucket`` are signed for (the client's, until redirected)."""
        return self._bucket_regions.get(bucket, self._region)

    def _endpoint(self, region: str) -> S3Endpoint:
        endpoint = self._endpoints.get(region)
        if endpoint is None:
            if self._endpoint_url is not None:
                endpoint = S3Endpoint.from_url(self._endpoint_url)
            else:
                endpoint = S3Endpoint.aws(
                    resolve_s3_host(
                        region, use_fips=self._use_fips, use_dualstack=self._use_dualstack
                    )
                )
            self._endpoints[region] = endpoint
        return endpoint

    def _signer(self, region: str) -> SigV4Signer:
        signer = self._signers.get(region)
        if signer is None:
            signer = self._signers[region] = SigV4Signer(region, "s3")
        return signer

    def _remember(self, bucket: str, region: str) -> None:
        if len(self._bucket_regions) >= _CACHE_SIZE:
            self._bucket_regions.clear()
        self._bucket_regions[bucket] = region

    async def _request(
        self,
        bucket: str,
        build: Callable[[S3Endpoint], Request],
        *,
        content: Content = b"",
        accept: Callable[[int], bool] = _ok,
        log_fields: str = "",
        stream: bool = False,
        retries: bool = True,
    ) -> httpx.Response:
        """Send, following a region redirect once."""
        region = self.bucket_region(bucket)
        redirected = False
        while True:
            request = build(self._endpoint(region))
            head = request.method == "HEAD"
            redirects: list[Redirect] = []

            def parse_failure(
                response: httpx.Response, head: bool = head, redirects: list[Redirect] = redirects
            ) -> ServiceError:
                error, redirect = parse_s3_failure(
                    response.status_code, response.headers, response.content, head=head
                )
                if redirect is not None:
                    redirects.append(redirect)
                return error

            try:
                return await self._sender.send(
                    request,
                    signer=self._signer(region),
                    parse_failure=parse_failure,
                    content=content,
                    accept=accept,
                    log_fields=log_fields,
                    stream=stream,
                    retries=retries,
                )
            except ServiceError:
                if redirected or not redirects:
                    raise
                new_region = redirects[-1].region
                if new_region is None:
                    new_region = await self._find_region(bucket, region)
                if new_region is None or new_region == region:
                    raise
                logger.debug(
                    "S3 bucket %s is in region %s, not %s: sending there "
                    "(set region_name to avoid the extra round trip)",
                    bucket,
                    new_region,
                    region,
                )
                self._remember(bucket, new_region)
                region = new_region
                redirected = True

    async def _find_region(self, bucket: str, region: str) -> str | None:
        """HeadBucket: S3 names the bucket's region in a header of any answer, even a 403."""
        try:
            response = await self._sender.send(
                head_bucket_request(bucket, self._endpoint(region)),
                signer=self._signer(region),
                parse_failure=lambda r: parse_s3_error(r.status_code, r.headers, r.content),
                accept=_any,
            )
        except Exception:  # the original error is the one worth reporting
            return None
        redirect = redirect_region(301, response.headers, b"", head=True)
        return None if redirect is None else redirect.region

    async def put_object(
        self,
        location: S3Location,
        content: Content,
        *,
        payload_hash: str,
        content_length: int | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """Upload; ``content_length`` is required when ``content`` is a stream factory.

        The payload's SHA-256 goes twice, as botocore sends it with ChecksumAlgorithm
        SHA256: signed (``X-Amz-Content-SHA256``) and as ``x-amz-checksum-sha256``, which
        S3 stores with the object and which Object Lock buckets require.
        """
        checksums = checksum_headers(payload_hash)

        def build(endpoint: S3Endpoint) -> Request:
            request = put_object_request(
                location,
                endpoint,
                payload_hash=payload_hash,
                content_type=content_type,
                content_length=content_length,
            )
            return request._replace(headers=(*checksums, *request.headers))

        return await self._request(
            location.bucket, build, content=content, log_fields=f" location={location.uri}"
        )

    # -- multipart -------------------------------------------------------------------------

    async def create_multipart_upload(
        self, location: S3Location, *, content_type: str | None = None
    ) -> str:
        response = await self._request(
            location.bucket,
            lambda endpoint: create_request(location, endpoint, content_type=content_type),
            log_fields=f" location={location.uri}",
        )
        return parse_upload_id(
            response.status_code, response.content, request_id_of(response.headers)
        )

    async def upload_part(
        self,
        location: S3Location,
        *,
        upload_id: str,
        part_number: int,
        data: Content,
        payload_hash: str,
        content_length: int | None = None,
    ) -> str:
        """One part, retried on its own by the client's retry policy; returns its ETag.

        ``data`` is bytes, or a factory of a fresh stream per attempt with its
        ``content_length``.
        """
        response = await self._request(
            location.bucket,
            lambda endpoint: upload_part_request(
                location,
                endpoint,
                upload_id=upload_id,
                part_number=part_number,
                payload_hash=payload_hash,
                content_length=content_length,
            ),
            content=data,
            log_fields=f" location={location.uri} part={part_number}",
        )
        etag: str | None = response.headers.get("etag")
        if not etag:
            raise ServiceError(
                f"UploadPart {part_number} of {location.uri} answered without an ETag",
                code="MalformedResponse",
                status_code=response.status_code,
                request_id=request_id_of(response.headers),
            )
        return etag

    async def complete_multipart_upload(
        self, location: S3Location, *, upload_id: str, parts: list[CompletedPart]
    ) -> None:
        """Complete; S3 may answer 200 with an error in the body, retried if transient."""
        body = complete_body(parts)
        attempt = 1
        while True:
            response = await self._request(
                location.bucket,
                lambda endpoint: complete_request(
                    location, endpoint, upload_id=upload_id, parts=parts
                )[0],
                content=body,
                log_fields=f" location={location.uri}",
            )
            error = parse_complete(
                response.status_code, response.content, request_id_of(response.headers)
            )
            if error is None:
                return
            if error.code not in _COMPLETE_RETRY_CODES or attempt >= _COMPLETE_ATTEMPTS:
                raise error
            attempt += 1

    async def abort_multipart_upload(self, location: S3Location, *, upload_id: str) -> None:
        await self._request(
            location.bucket,
            lambda endpoint: abort_request(location, endpoint, upload_id=upload_id),
            log_fields=f" location={location.uri}",
        )

    async def head_object(self, location: S3Location, *, retries: bool = True) -> ObjectHead | None:
        """The object's metadata, None on 404; any other answer raises.

        A 403 is an ``AccessDeniedError`` whose message says what to grant: S3 answers 403
        instead of 404 for a missing object when the caller may not list the bucket.
        ``retries=False``: one attempt, no retry quota (a wait retries on its own schedule).
        """
        try:
            response = await self._request(
                location.bucket,
                lambda endpoint: head_object_request(location, endpoint),
                accept=_found_or_missing,
                log_fields=f" location={location.uri}",
                retries=retries,
            )
        except AccessDeniedError as exc:
            raise AccessDeniedError(
                f"S3 denied HeadObject on {location.uri}. Grant s3:GetObject on it and "
                f"s3:ListBucket on bucket {location.bucket} (without ListBucket S3 answers "
                "403, not 404, while the object does not exist yet).",
                code=exc.code,
                status_code=exc.status_code,
                request_id=exc.request_id,
            ) from exc
        if response.status_code == 404:
            return None
        return object_head(response.headers)

    async def open_object(self, location: S3Location) -> httpx.Response:
        """GetObject with the body unread: the caller streams it and must ``aclose`` it."""
        return await self._request(
            location.bucket,
            lambda endpoint: get_object_request(location, endpoint),
            log_fields=f" location={location.uri}",
            stream=True,
        )

    async def get_object(self, location: S3Location) -> tuple[bytes, str | None]:
        """The object's stored bytes (never decoded) and its Content-Type."""
        from .streams import read_body  # here: .streams builds on this module

        response = await self.open_object(location)
        try:
            body = await read_body(response, location.uri, None)
        finally:
            await response.aclose()
        return body, response.headers.get("content-type")

    async def list_objects(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, page after page), in S3's order."""
        keys: list[str] = []
        token: str | None = None
        while True:
            page, token = await self.list_page(bucket, prefix, token)
            keys.extend(entry.key for entry in page)
            if token is None:
                return keys

    async def list_page(
        self, bucket: str, prefix: str, token: str | None, *, retries: bool = True
    ) -> tuple[list[ListEntry], str | None]:
        """One ListObjectsV2 page under ``prefix``: its entries and the next page's token.

        ``retries=False``: one attempt, no retry quota.
        """
        response = await self._request(
            bucket,
            functools.partial(list_objects_request, bucket, prefix, token),
            log_fields=f" bucket={bucket} prefix={prefix}",
            retries=retries,
        )
        return parse_list_entries(response.content)

    async def list_wanted(
        self, bucket: str, prefix: str, token: str | None, wanted: Container[str]
    ) -> tuple[list[ListEntry], int, str | None]:
        """One page of a watched prefix: the ``wanted`` entries, the keys read, next token.

        One attempt, no retry quota: a watch lists again at its next tick, as a wait's HEADs
        look again at theirs.
        """
        response = await self._request(
            bucket,
            functools.partial(list_objects_request, bucket, prefix, token),
            log_fields=f" bucket={bucket} prefix={prefix}",
            retries=False,
        )
        return parse_list_wanted(response.content, wanted)
