"""ListObjectsV2, for ``batch --input-prefix``: the one S3 call the client does not have.

It rides on the client's own S3 machinery (``client._s3``: the signed, retried send, the
region redirect, path-style addressing on custom endpoints) and on ``_s3``'s endpoint
rules, adding only the request's query and the parsing of the XML answer. Keys are asked
for URL-encoded (``encoding-type=url``, as botocore does) so any key survives XML.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from ._errors import CliError, UsageError

if TYPE_CHECKING:
    from .. import AsyncInferenceClient
    from .._s3 import S3Endpoint, S3Request

__all__ = ["list_objects_request", "list_uris", "parse_list_response", "split_prefix"]

_PAGE_SIZE = 1000


def split_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` as (bucket, prefix); the prefix may be empty."""
    from .._s3 import S3Location
    from ..errors import ParamValidationError

    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "s3":
        raise UsageError(f"--input-prefix {uri!r} is not an s3://bucket/prefix/ URI")
    bucket, _, prefix = rest.partition("/")
    try:
        S3Location(bucket, prefix or "x")  # the same bucket and key rules as any object
    except ParamValidationError as exc:
        raise UsageError(f"--input-prefix {uri!r}: {exc}") from None
    return bucket, prefix


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def list_objects_request(
    bucket: str, prefix: str, token: str | None, endpoint: S3Endpoint
) -> S3Request:
    """GET ``/?list-type=2&prefix=...`` on the bucket (virtual-hosted or path-style)."""
    from .._s3 import S3Request
    from .._signing import EMPTY_SHA256

    url, host = endpoint.url(bucket, "/")
    pairs = [
        ("list-type", "2"),
        ("encoding-type", "url"),
        ("max-keys", str(_PAGE_SIZE)),
        ("prefix", prefix),
    ]
    if token is not None:
        pairs.append(("continuation-token", token))
    return S3Request(
        "ListObjectsV2",
        "GET",
        f"{url}?{_query(pairs)}",
        host,
        (("X-Amz-Content-SHA256", EMPTY_SHA256),),
        EMPTY_SHA256,
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_list_response(body: bytes) -> tuple[list[str], str | None]:
    """(keys, next continuation token or None) of one ListObjectsV2 page.

    CPython's expat never fetches external entities, so a hostile answer cannot make this
    read files.
    """
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise CliError(f"S3 answered ListObjectsV2 with something that is not XML: {exc}") from None
    encoded = any(
        _local(child.tag) == "EncodingType" and (child.text or "").strip() == "url"
        for child in root
    )
    keys: list[str] = []
    token: str | None = None
    truncated = False
    for child in root:
        name = _local(child.tag)
        if name == "Contents":
            for field in child:
                if _local(field.tag) == "Key" and field.text:
                    keys.append(unquote(field.text) if encoded else field.text)
        elif name == "IsTruncated":
            truncated = (child.text or "").strip() == "true"
        elif name == "NextContinuationToken":
            token = child.text
    return keys, token if truncated else None


async def list_uris(client: AsyncInferenceClient, uri: str) -> list[str]:
    """Every object under the prefix, as ``s3://`` URIs in S3's (lexicographic) order.

    "Folder" markers (keys ending in ``/``) are left out: they hold no payload.
    """
    bucket, prefix = split_prefix(uri)
    uris: list[str] = []
    token: str | None = None
    while True:
        response = await client._s3._request(
            bucket,
            functools.partial(list_objects_request, bucket, prefix, token),
            log_fields=f" bucket={bucket} prefix={prefix}",
        )
        keys, token = parse_list_response(response.content)
        uris.extend(f"s3://{bucket}/{key}" for key in keys if not key.endswith("/"))
        if token is None:
            return uris
