"""S3 on the wire, for the three object operations a caller of async inference needs.

PutObject (upload the input), HeadObject (poll for the output or the failure) and GetObject
(read it), plus HeadBucket (find a bucket's region when S3 redirects without saying where).
The sans-I/O half, like ``.invoke``: S3 URIs in, request parts out; status, headers and
body in, a typed error out. No sockets, no clock, no credentials.

What botocore does, and so what we do (``tests/test_s3.py`` compares against botocore):

- keys are percent-encoded as one greedy URI label: UTF-8, everything but ``A-Z a-z 0-9
  - _ . ~ /`` escaped, and S3 signs that path as sent (no second encoding, no normalizing);
- virtual-hosted addressing (``{bucket}.{host}/{key}``) on AWS when the bucket is a valid
  DNS label; path-style (``{host}/{bucket}/{key}``) for buckets that are not (dots, which
  would break the TLS wildcard certificate, upper case, underscores) and for every custom
  endpoint URL (``http://127.0.0.1:5000/{bucket}/{key}``);
- errors are XML documents (``<Error><Code>``...); a HEAD error has no body at all, so its
  code comes from the status;
- a bucket in another region is found from ``x-amz-bucket-region`` or the error's
  ``<Region>`` and the request is sent again, once, signed for that region.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from ..errors import AccessDeniedError, ParamValidationError, ServiceError
from .invoke import error_class, request_id_of
from .requests import Request
from .sigv4 import EMPTY_SHA256

__all__ = [
    "MAX_KEY_BYTES",
    "ListEntry",
    "Redirect",
    "S3Endpoint",
    "S3Location",
    "S3Request",
    "check_content_type",
    "encode_key",
    "get_object_request",
    "head_bucket_request",
    "head_object_request",
    "is_virtual_hostable",
    "list_objects_request",
    "parse_list_entries",
    "parse_list_page",
    "parse_list_wanted",
    "parse_s3_error",
    "parse_s3_failure",
    "parse_s3_prefix",
    "parse_s3_uri",
    "put_object_request",
    "redirect_region",
]

MAX_KEY_BYTES = 1024

# botocore's VALID_BUCKET (legacy us-east-1 buckets may hold upper case and underscores),
# with S3's minimum length.
_BUCKET = re.compile(r"[A-Za-z0-9._-]{3,255}")
# A bucket that can be a single DNS label (botocore's check_dns_name, and the S3 rule set's
# isVirtualHostableS3Bucket without sub-domains): lower case, digits, hyphens, no dots.
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
# botocore's validate_region_name: a region lands in a host name, so it must be one label.
_REGION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# Header values we send: printable ASCII (a content type), never a line break.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
# The S3 host label of an https object URL: "s3", "s3-fips", "s3-us-west-2", ...
_S3_LABEL = re.compile(r"s3(?:-[a-z0-9-]+)?")
# ... but not the special-purpose endpoints, whose URLs do not name a bucket the same way.
_SPECIAL_S3_LABELS = frozenset({"s3-accesspoint", "s3-object-lambda", "s3-outposts"})

# HEAD errors have no body: S3's own codes for the statuses it answers with.
_CODE_BY_STATUS: Mapping[int, str] = {
    301: "PermanentRedirect",
    302: "Found",
    307: "TemporaryRedirect",
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    411: "MissingContentLength",
    412: "PreconditionFailed",
    416: "InvalidRange",
    500: "InternalError",
    503: "ServiceUnavailable",
}
_REDIRECT_STATUS = frozenset({301, 302, 307})
_REDIRECT_CODES = frozenset(
    {"PermanentRedirect", "TemporaryRedirect", "IllegalLocationConstraintException"}
)


@dataclass(frozen=True, slots=True)
class S3Location:
    """One S3 object, validated: a bucket name S3 allows and a key of 1..1024 UTF-8 bytes."""

    bucket: str
    key: str

    def __post_init__(self) -> None:
        _check_bucket(self.bucket, "s3_uri")
        _check_key(self.key, "s3_uri")

    @property
    def uri(self) -> str:
        """The ``s3://bucket/key`` form: what InputLocation and the AWS CLI take."""
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri


def _bad_uri(param: str, uri: str, why: str) -> ParamValidationError:
    return ParamValidationError(
        f"Invalid {param} {uri!r}: {why}. Expected s3://bucket/key (or an https:// S3 object URL).",
        param=param,
    )


def _check_bucket(bucket: str, param: str) -> None:
    if _BUCKET.fullmatch(bucket) is None or ".." in bucket:
        raise ParamValidationError(
            f"Invalid bucket name {bucket!r} in {param}: a bucket name is 3-255 letters, "
            "digits, dots, hyphens and underscores.",
            param=param,
        )
    if bucket.endswith("--x-s3") or bucket.endswith("--table-s3"):
        raise ParamValidationError(
            f"Bucket {bucket!r} in {param} is an S3 directory or table bucket, which this "
            "client does not support: use a general purpose bucket.",
            param=param,
        )


def _check_key(key: str, param: str) -> None:
    if not key:
        raise ParamValidationError(
            f"The S3 URI in {param} names no object: add a key after the bucket (s3://bucket/key).",
            param=param,
        )
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ParamValidationError(
            f"The S3 key in {param} is longer than S3's limit of {MAX_KEY_BYTES} UTF-8 bytes.",
            param=param,
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise ParamValidationError(
            f"The S3 key in {param} is not valid Unicode text (it holds a lone surrogate).",
            param=param,
        ) from None


def parse_s3_uri(uri: object, *, param: str = "s3_uri") -> S3Location:
    """``s3://bucket/key`` (or an https S3 object URL) as a validated ``S3Location``.

    In ``s3://`` URIs the key is taken literally, as the AWS CLI and SageMaker do
    (``s3://b/a%20b`` is the key ``a%20b``); in https URLs it is percent-decoded, as S3 does.
    """
    if not isinstance(uri, str):
        raise ParamValidationError(
            f"{param} must be an S3 URI string such as 's3://bucket/key', "
            f"not {type(uri).__name__}.",
            param=param,
        )
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise _bad_uri(param, uri, "no scheme")
    scheme = scheme.lower()
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
    elif scheme == "https":
        bucket, key = _parse_https(uri, param)
    else:
        raise _bad_uri(param, uri, f"the scheme {scheme!r} is not s3 or https")
    if any(char in uri for char in "\r\n\x00"):
        raise _bad_uri(param, uri, "it contains a line break or NUL")
    _check_bucket(bucket, param)
    _check_key(key, param)
    return S3Location(bucket, key)


def _parse_https(uri: str, param: str) -> tuple[str, str]:
    """Virtual-hosted (``bucket.s3.region.amazonaws.com/key``) or path-style URLs."""
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        raise _bad_uri(param, uri, "it is not a valid URL") from None
    if parts.query or parts.fragment:
        raise _bad_uri(param, uri, "an object URL has no query string (is it presigned?)")
    labels = host.split(".")
    # The last S3-looking label: buckets may themselves contain an "s3" label.
    index = next(
        (
            i
            for i in range(len(labels) - 1, -1, -1)
            if _S3_LABEL.fullmatch(labels[i]) and labels[i] not in _SPECIAL_S3_LABELS
        ),
        None,
    )
    if index is None:
        raise _bad_uri(param, uri, f"{host!r} is not an S3 host")
    try:
        path = unquote(parts.path, errors="strict")
    except UnicodeDecodeError:
        raise _bad_uri(param, uri, "its path is not percent-encoded UTF-8") from None
    if index > 0:
        return ".".join(labels[:index]), path[1:]
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def is_virtual_hostable(bucket: str) -> bool:
    """True when the bucket can be the first label of the host name (botocore's rule)."""
    return _DNS_BUCKET.fullmatch(bucket) is not None and not _IP_ADDRESS.fullmatch(bucket)


def encode_key(key: str) -> str:
    """The key as botocore puts it in the path: a greedy label, ``/`` and ``~`` kept.

    A ``.`` or ``..`` segment (a valid key: ``a/../b`` is not ``b`` to S3) is written as
    ``%2E``/``%2E%2E`` so that nothing on the way normalizes it away (httpx's URL removes
    dot segments, RFC 3986); :func:`literal_dot_segments` turns them back into the literal
    dots botocore sends and signs, just before the request goes on the wire.
    """
    path = quote(key, safe="/~")
    if "." in path and any(segment in (".", "..") for segment in path.split("/")):
        path = "/".join(_DOT_ESCAPES.get(segment, segment) for segment in path.split("/"))
    return path


_DOT_ESCAPES: Final = {".": "%2E", "..": "%2E%2E"}
_DOT_LITERALS: Final = {b"%2E": b".", b"%2E%2E": b".."}


def literal_dot_segments(raw_path: bytes) -> bytes:
    """A path from :func:`encode_key` with its escaped dot segments literal again.

    ``quote`` writes a ``%`` of a key as ``%25``, so a ``%2E`` segment can only be ours.
    """
    if b"%2E" not in raw_path:
        return raw_path
    path, sep, query = raw_path.partition(b"?")
    path = b"/".join(_DOT_LITERALS.get(segment, segment) for segment in path.split(b"/"))
    return path + sep + query


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    """Where one region's S3 requests go: AWS's host for it, or a custom endpoint URL."""

    scheme: str
    host: str  # host[:port], as it is signed and sent
    prefix: str  # a custom endpoint's path, no trailing slash ("" for AWS)
    custom: bool

    @classmethod
    def aws(cls, host: str) -> S3Endpoint:
        """AWS's regional (or FIPS, dual-stack) host without the bucket, over https."""
        return cls("https", host, "", custom=False)

    @classmethod
    def from_url(cls, url: str) -> S3Endpoint:
        """A custom endpoint (``http://127.0.0.1:5000``): always path-style."""
        parts = urlsplit(url)
        return cls(parts.scheme, parts.netloc, parts.path.rstrip("/"), custom=True)

    def url(self, bucket: str, path: str) -> tuple[str, str]:
        """The URL and Host of ``path`` (``/`` + encoded key, or ``/``) in ``bucket``."""
        url, host, _ = self.target(bucket, path)
        return url, host

    def target(self, bucket: str, path: str) -> tuple[str, str, str]:
        """The URL, Host and raw path (as signed) of ``path`` in ``bucket``."""
        if not self.custom and is_virtual_hostable(bucket):
            host = f"{bucket}.{self.host}"
            return f"{self.scheme}://{host}{path}", host, path
        path = f"{self.prefix}/{bucket}" if path == "/" else f"{self.prefix}/{bucket}{path}"
        return f"{self.scheme}://{self.host}{path}", self.host, path


# One S3 request's parts: the same value as every other request.
S3Request = Request


def _object_request(
    operation: str,
    method: str,
    location: S3Location,
    endpoint: S3Endpoint,
    headers: tuple[tuple[str, str], ...] = (),
    payload_hash: str = EMPTY_SHA256,
) -> S3Request:
    url, host, path = endpoint.target(location.bucket, "/" + encode_key(location.key))
    return Request(
        operation,
        method,
        url,
        host,
        (*headers, ("X-Amz-Content-SHA256", payload_hash)),
        payload_hash,
        path,
    )


def check_content_type(content_type: object) -> str:
    """A Content-Type to store with an object: printable ASCII on one line."""
    if not isinstance(content_type, str) or _HEADER_VALUE.fullmatch(content_type) is None:
        raise ParamValidationError(
            f"content_type must be printable ASCII on one line, got {content_type!r}",
            param="content_type",
        )
    return content_type


def put_object_request(
    location: S3Location,
    endpoint: S3Endpoint,
    *,
    payload_hash: str,
    content_type: str | None = None,
    content_length: int | None = None,
) -> S3Request:
    """PutObject with a signed payload hash (S3 checks it, so a corrupted upload fails).

    ``content_length`` must be given for a streamed body: without it httpx would send it
    chunked, which S3 refuses (411). For a ``bytes`` body httpx sets it, unsigned, as
    botocore does.
    """
    headers: tuple[tuple[str, str], ...] = ()
    if content_type is not None:
        headers += (("Content-Type", check_content_type(content_type)),)
    if content_length is not None:
        headers += (("Content-Length", str(content_length)),)
    return _object_request("PutObject", "PUT", location, endpoint, headers, payload_hash)


def head_object_request(location: S3Location, endpoint: S3Endpoint) -> S3Request:
    """HeadObject: does the object exist yet? (200, or 404 with no body)."""
    return _object_request("HeadObject", "HEAD", location, endpoint)


def get_object_request(location: S3Location, endpoint: S3Endpoint) -> S3Request:
    """GetObject: the whole object."""
    return _object_request("GetObject", "GET", location, endpoint)


_LIST_PAGE_SIZE = 1000


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def parse_s3_prefix(uri: object, *, param: str = "s3_prefix") -> tuple[str, str]:
    """``s3://bucket/prefix/`` as (bucket, prefix); the prefix may be empty."""
    if not isinstance(uri, str):
        raise ParamValidationError(
            f"{param} must be an s3://bucket/prefix/ string, not {type(uri).__name__}",
            param=param,
        )
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "s3":
        raise ParamValidationError(
            f"{param} {uri!r} is not an s3://bucket/prefix/ URI", param=param
        )
    bucket, _, prefix = rest.partition("/")
    _check_bucket(bucket, param)
    if prefix:
        _check_key(prefix, param)  # a prefix follows the rules of the keys it starts
    return bucket, prefix


def list_objects_request(
    bucket: str, prefix: str, token: str | None, endpoint: S3Endpoint
) -> Request:
    """ListObjectsV2: ``GET /?list-type=2&prefix=...`` on the bucket, keys URL-encoded
    (``encoding-type=url``, as botocore asks) so any key survives XML."""
    url, host, path = endpoint.target(bucket, "/")
    # botocore's order (the shape's members, then the encoding its handler adds): the
    # signature does not depend on it, but a request equal to botocore's byte for byte does.
    pairs = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(_LIST_PAGE_SIZE))]
    if token is not None:
        pairs.append(("continuation-token", token))
    pairs.append(("encoding-type", "url"))
    query = _query(pairs)
    return Request(
        "ListObjectsV2",
        "GET",
        f"{url}?{query}",
        host,
        (("X-Amz-Content-SHA256", EMPTY_SHA256),),
        EMPTY_SHA256,
        path,
        query,
    )


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One object of a listing: what a wait needs of it without a HEAD."""

    key: str
    last_modified: datetime | None
    size: int | None


def _list_time(text: str | None) -> datetime | None:
    """ListObjectsV2's ``LastModified`` (ISO 8601, ``...Z``) as aware UTC."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _malformed_listing(f"LastModified {text!r} is not a time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _malformed_listing(why: str) -> ServiceError:
    return ServiceError(
        f"S3 answered ListObjectsV2 with {why}", code="MalformedResponse", status_code=200
    )


def parse_list_entries(body: bytes) -> tuple[list[ListEntry], str | None]:
    """(entries, next continuation token or None) of one ListObjectsV2 answer.

    CPython's expat never fetches external entities, so a hostile answer cannot make this
    read files; an answer that is not XML, or whose entries are unreadable (no key, a bad
    time or size, truncated without a token), is a ``ServiceError``, never a short listing.
    """
    entries, _, token = parse_list_wanted(body, None)
    return entries, token


def parse_list_wanted(
    body: bytes, wanted: Container[str] | None
) -> tuple[list[ListEntry], int, str | None]:
    """(the entries whose key is ``wanted``, the keys on the page, the next token).

    A watch of a prefix looks for a few keys among thousands: the times and sizes of the
    others are not parsed (that is most of a page's cost). Every entry's key is still
    checked, and an entry without one is malformed, as in ``parse_list_entries``.
    """
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise _malformed_listing(f"something that is not XML: {exc}") from None
    if _local_name(root.tag) != "ListBucketResult":
        raise _malformed_listing(f"a <{_local_name(root.tag)}> document")
    encoded = any(
        _local_name(child.tag) == "EncodingType" and (child.text or "").strip() == "url"
        for child in root
    )
    entries: list[ListEntry] = []
    count = 0
    token: str | None = None
    truncated = False
    for child in root:
        name = _local_name(child.tag)
        if name == "Contents":
            count += 1
            entry = _list_entry(child, encoded, wanted)
            if entry is not None:
                entries.append(entry)
        elif name == "IsTruncated":
            truncated = (child.text or "").strip() == "true"
        elif name == "NextContinuationToken":
            token = child.text
    if truncated and not token:
        raise _malformed_listing("a truncated page without a continuation token")
    return entries, count, token if truncated else None


def _list_entry(
    contents: ET.Element, encoded: bool, wanted: Container[str] | None
) -> ListEntry | None:
    """One ``<Contents>``: its entry, or None when its key is not wanted."""
    key: str | None = None
    for field in contents:
        if _local_name(field.tag) == "Key":
            key = field.text
            break
    if not key:
        raise _malformed_listing("an entry without a key")
    if encoded:
        key = unquote(key)
    if wanted is not None and key not in wanted:
        return None
    last_modified: datetime | None = None
    size: int | None = None
    for field in contents:
        field_name = _local_name(field.tag)
        if field_name == "LastModified":
            last_modified = _list_time(field.text)
        elif field_name == "Size":
            text = (field.text or "").strip()
            if not text.isdigit():
                raise _malformed_listing(f"Size {field.text!r} is not a byte count")
            size = int(text)
    return ListEntry(key, last_modified, size)


def parse_list_page(body: bytes) -> tuple[list[str], str | None]:
    """(keys, next continuation token or None) of one ListObjectsV2 answer."""
    entries, token = parse_list_entries(body)
    return [entry.key for entry in entries], token


def head_bucket_request(bucket: str, endpoint: S3Endpoint) -> S3Request:
    """HeadBucket: its answer, even a 301 or 403, carries ``x-amz-bucket-region``."""
    url, host, path = endpoint.target(bucket, "/")
    return Request(
        "HeadBucket",
        "HEAD",
        url,
        host,
        (("X-Amz-Content-SHA256", EMPTY_SHA256),),
        EMPTY_SHA256,
        path,
    )


# -- errors -------------------------------------------------------------------------------


def _error_fields(body: bytes) -> dict[str, str]:
    """The child elements of S3's ``<Error>`` document, or {} for anything else.

    ElementTree on CPython's expat never fetches external entities and caps entity
    expansion, so a hostile proxy cannot make this read files or explode memory.
    """
    if not body or not body.lstrip().startswith(b"<"):
        return {}
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return {}
    error = root if root.tag == "Error" else root.find("Error")
    if error is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in error}


def _code_for_status(status_code: int) -> str:
    code = _CODE_BY_STATUS.get(status_code)
    if code is not None:
        return code
    try:
        return "".join(char for char in HTTPStatus(status_code).phrase if char.isalnum())
    except ValueError:
        return str(status_code)


@dataclass(frozen=True, slots=True)
class Redirect:
    """S3 said the bucket lives elsewhere; ``region`` is None when it did not say where."""

    region: str | None


def parse_s3_failure(
    status_code: int, headers: Mapping[str, str], body: bytes, *, head: bool
) -> tuple[ServiceError, Redirect | None]:
    """A non-2xx S3 answer as the typed error, and whether it means "wrong region".

    The body is parsed once for both. Never fails, whatever was sent.
    """
    fields = _error_fields(body)
    return (
        _s3_error(status_code, headers, fields),
        _redirect(status_code, headers, body, fields, head=head),
    )


def parse_s3_error(status_code: int, headers: Mapping[str, str], body: bytes) -> ServiceError:
    """A non-2xx S3 answer as the contract's typed error; never fails, whatever was sent.

    Every 403 is an ``AccessDeniedError``, whatever its code: S3 uses 403 for denied,
    badly signed and unknown-key requests alike, and for a missing object the caller may
    not list.
    """
    return _s3_error(status_code, headers, _error_fields(body))


def _s3_error(
    status_code: int, headers: Mapping[str, str], fields: Mapping[str, str]
) -> ServiceError:
    code = fields.get("Code") or _code_for_status(status_code)
    message = fields.get("Message", "")
    if not message:
        try:
            message = HTTPStatus(status_code).phrase
        except ValueError:
            message = f"HTTP {status_code}"
    request_id = (
        request_id_of(headers) or fields.get("RequestId") or fields.get("RequestID") or None
    )
    cls = AccessDeniedError if status_code == 403 else error_class(code, status_code)
    return cls(message, code=code, status_code=status_code, request_id=request_id)


def redirect_region(
    status_code: int, headers: Mapping[str, str], body: bytes, *, head: bool
) -> Redirect | None:
    """Whether this error means "wrong region" and, if S3 said, which region is right.

    botocore's rules (S3RegionRedirectorv2): a 301/302/307, a PermanentRedirect or
    IllegalLocationConstraintException, an AuthorizationHeaderMalformed naming a
    ``<Region>``, or a body-less 301/400 answer to a HEAD. The region comes from
    ``x-amz-bucket-region``, else the error's ``<Region>``.
    """
    return _redirect(status_code, headers, body, _error_fields(body), head=head)


def _redirect(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    fields: Mapping[str, str],
    *,
    head: bool,
) -> Redirect | None:
    code = fields.get("Code", "")
    region_field = fields.get("Region") or None
    is_redirect = (
        status_code in _REDIRECT_STATUS
        or code in _REDIRECT_CODES
        or (code == "AuthorizationHeaderMalformed" and region_field is not None)
        or (head and not body and status_code in (301, 400))
    )
    if not is_redirect:
        return None
    region = headers.get("x-amz-bucket-region") or region_field
    if region is not None and _REGION.fullmatch(region) is None:
        region = None
    return Redirect(region)
