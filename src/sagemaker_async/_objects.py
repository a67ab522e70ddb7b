"""The S3 object operations, sent through the client's one signed sender.

Thin I/O around ``_s3``: pick the host for the bucket's region, build the request (a pure
function), send it, and when S3 says the bucket lives in another region, remember that
region and send the request once more, signed for it (what the AWS SDKs do). The runtime
client's FIPS and dual-stack settings choose the S3 host too: a FIPS user's payload never
leaves FIPS.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import httpx

from ._endpoints import resolve_s3_host
from ._requests import Request
from ._s3 import (
    Redirect,
    S3Endpoint,
    S3Location,
    get_object_request,
    head_bucket_request,
    head_object_request,
    list_objects_request,
    parse_list_page,
    parse_s3_error,
    parse_s3_failure,
    put_object_request,
    redirect_region,
)
from ._sender import Content, SignedSender
from ._signing import SigV4Signer
from .errors import AccessDeniedError, ServiceError

__all__ = ["S3Objects"]

logger = logging.getLogger("sagemaker_async")

_CACHE_SIZE = 1024


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
        """Upload; ``content_length`` is required when ``content`` is a stream factory."""
        return await self._request(
            location.bucket,
            lambda endpoint: put_object_request(
                location,
                endpoint,
                payload_hash=payload_hash,
                content_type=content_type,
                content_length=content_length,
            ),
            content=content,
            log_fields=f" location={location.uri}",
        )

    async def head_object(self, location: S3Location) -> bool:
        """True when the object exists, False on 404; any other answer raises.

        A 403 is an ``AccessDeniedError`` whose message says what to grant: S3 answers 403
        instead of 404 for a missing object when the caller may not list the bucket.
        """
        try:
            response = await self._request(
                location.bucket,
                lambda endpoint: head_object_request(location, endpoint),
                accept=_found_or_missing,
                log_fields=f" location={location.uri}",
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
        return response.status_code != 404

    async def get_object(self, location: S3Location) -> tuple[bytes, str | None]:
        """The object's bytes and its Content-Type."""
        response = await self._request(
            location.bucket,
            lambda endpoint: get_object_request(location, endpoint),
            log_fields=f" location={location.uri}",
        )
        return response.content, response.headers.get("content-type")

    async def list_objects(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix`` (ListObjectsV2, page after page), in S3's order."""
        keys: list[str] = []
        token: str | None = None
        while True:
            response = await self._request(
                bucket,
                functools.partial(list_objects_request, bucket, prefix, token),
                log_fields=f" bucket={bucket} prefix={prefix}",
            )
            page, token = parse_list_page(response.content)
            keys.extend(page)
            if token is None:
                return keys
