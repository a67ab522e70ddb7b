"""``batch --input-prefix``: the objects under an S3 prefix, through the client's public
``list_objects`` (signed, retried, redirected like every other request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import UsageError

if TYPE_CHECKING:
    from .. import AsyncInferenceClient

__all__ = ["list_uris", "split_prefix"]


def split_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` as (bucket, prefix); a bad one is a usage error."""
    from .. import ParamValidationError, parse_s3_uri

    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "s3":
        raise UsageError(f"--input-prefix {uri!r} is not an s3://bucket/prefix/ URI")
    bucket, _, prefix = rest.partition("/")
    try:
        parse_s3_uri(f"s3://{bucket}/{prefix or 'x'}")  # the same rules as any object
    except ParamValidationError as exc:
        raise UsageError(f"--input-prefix {uri!r}: {exc}") from None
    return bucket, prefix


async def list_uris(client: AsyncInferenceClient, uri: str) -> list[str]:
    """Every object under the prefix, as ``s3://`` URIs in S3's (lexicographic) order.

    "Folder" markers (keys ending in ``/``) are left out: they hold no payload.
    """
    split_prefix(uri)
    return [found for found in await client.list_objects(uri) if not found.endswith("/")]
