"""The sans-I/O S3 half: URIs, addressing, key encoding, signatures, errors, redirects.

botocore is the oracle for the wire: a boto3 S3 client builds the same PutObject,
HeadObject and GetObject (captured at ``before-send``, never sent) and our URL and
``Authorization`` must equal its own, byte for byte, for odd keys, odd buckets and every
FIPS / dual-stack / partition combination we route to.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botocore_oracle import (
    ACCESS_KEY,
    SECRET_KEY,
    add_content_length,
    boto3_s3,
    botocore_request,
    header,
)
from sagemaker_async import AccessDeniedError, ParamValidationError, ServiceError
from sagemaker_async._protocol.endpoints import resolve_s3_host
from sagemaker_async._protocol.s3 import (
    MAX_KEY_BYTES,
    Redirect,
    S3Endpoint,
    S3Location,
    S3Request,
    check_content_type,
    encode_key,
    get_object_request,
    head_bucket_request,
    head_object_request,
    is_virtual_hostable,
    list_objects_request,
    literal_dot_segments,
    parse_list_page,
    parse_s3_error,
    parse_s3_prefix,
    parse_s3_uri,
    put_object_request,
    redirect_region,
)
from sagemaker_async._protocol.sigv4 import EMPTY_SHA256, FrozenCredentials, SigV4Signer
from sagemaker_async.errors import InternalFailure, ServiceUnavailable, ThrottlingError

TOKEN = "FQoGZXIvYXdzEXAMPLEtoken+/=="

ODD_KEYS = [
    "plain/key.json",
    "a b/c~d+e!*'()&$@=;:,?#[]%.txt",
    "ünïcödé/日本語/émoji-🙂.bin",
    "/leading//double///slashes/",
    "trailing space ",
    "tab\tand\nnewline",
    "percent%2Fencoded%20already",
    "...three-dots/..x/x../.hidden",
    "a/../b/./c",  # dot segments: valid keys, sent literally as botocore sends them
    "..",
    "./x/..",
]


# -- URIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://my-bucket/requests/0001.json", "my-bucket", "requests/0001.json"),
        ("S3://my-bucket/k", "my-bucket", "k"),
        ("s3://my.dotted.bucket/a/b/", "my.dotted.bucket", "a/b/"),
        ("s3://Legacy_Bucket/k", "Legacy_Bucket", "k"),
        ("s3://b12/a%20b", "b12", "a%20b"),  # s3:// keys are literal, as in the AWS CLI
        ("s3://b12/ünï code", "b12", "ünï code"),
        ("s3://b12//leading", "b12", "/leading"),
        # https object URLs: percent-decoded, as S3 reads them
        ("https://my-bucket.s3.us-west-2.amazonaws.com/a%20b/c", "my-bucket", "a b/c"),
        ("https://my-bucket.s3.amazonaws.com/k", "my-bucket", "k"),
        ("https://my-bucket.s3-us-west-2.amazonaws.com/k", "my-bucket", "k"),
        ("https://my-bucket.s3-fips.us-east-1.amazonaws.com/k", "my-bucket", "k"),
        ("https://my-bucket.s3.dualstack.eu-west-1.amazonaws.com/k", "my-bucket", "k"),
        ("https://bkt.s3.cn-north-1.amazonaws.com.cn/k", "bkt", "k"),
        ("https://s3.us-west-2.amazonaws.com/my.dotted.bucket/a/b", "my.dotted.bucket", "a/b"),
        ("https://s3.amazonaws.com/my-bucket/%E2%9C%93", "my-bucket", "\u2713"),
        ("https://s3.data.s3.us-east-1.amazonaws.com/k", "s3.data", "k"),
    ],
)
def test_parse_s3_uri(uri: str, bucket: str, key: str) -> None:
    location = parse_s3_uri(uri)
    assert (location.bucket, location.key) == (bucket, key)
    assert location.uri == f"s3://{bucket}/{key}"
    assert str(location) == location.uri


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("my-bucket/key", "no scheme"),
        ("http://my-bucket.s3.amazonaws.com/k", "not s3 or https"),
        ("s3://my-bucket", "names no object"),
        ("s3://my-bucket/", "names no object"),
        ("s3://ab/k", "bucket name"),
        ("s3:///k", "bucket name"),
        ("s3://my bucket/k", "bucket name"),
        ("s3://a..b/k", "bucket name"),
        ("s3://my-bucket/line\nbreak", "line break"),
        ("s3://my-bucket/nul\x00", "line break or NUL"),
        ("s3://my-bucket/" + "k" * (MAX_KEY_BYTES + 1), "1024"),
        ("s3://my-bucket/" + "é" * 513, "1024"),  # 1026 UTF-8 bytes
        ("s3://my-bucket/\ud800", "surrogate"),
        ("s3://my-bucket--usw2-az1--x-s3/k", "directory"),
        ("https://example.com/bucket/key", "not an S3 host"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc", "query string"),
        ("https://b.s3.amazonaws.com/%FF", "UTF-8"),
        ("https://s3-accesspoint.us-east-1.amazonaws.com/k", "not an S3 host"),
    ],
)
def test_bad_uris_are_refused_with_the_parameter_named(uri: str, fragment: str) -> None:
    with pytest.raises(ParamValidationError, match=fragment) as caught:
        parse_s3_uri(uri, param="input_location")
    assert caught.value.param == "input_location"


def test_uri_must_be_a_string() -> None:
    with pytest.raises(ParamValidationError, match="not bytes"):
        parse_s3_uri(b"s3://b/k")


def test_location_validates_itself() -> None:
    with pytest.raises(ParamValidationError):
        S3Location("ok-bucket", "")
    with pytest.raises(ParamValidationError):
        S3Location("x", "k")


@given(st.text(min_size=1, max_size=300).filter(lambda k: "\x00" not in k))
@settings(max_examples=200)
def test_parse_keeps_any_key_or_names_the_rule(key: str) -> None:
    refused = "\r" in key or "\n" in key or len(key.encode("utf-8")) > MAX_KEY_BYTES
    if refused:
        with pytest.raises(ParamValidationError) as caught:
            parse_s3_uri(f"s3://my-bucket/{key}")
        assert caught.value.param == "s3_uri"
    else:
        assert parse_s3_uri(f"s3://my-bucket/{key}").key == key


@pytest.mark.parametrize("key", ["a/../k", "a/./b", "..", "./x/.."])
def test_keys_with_dot_segments_are_kept_exactly(key: str) -> None:
    """S3 allows them (a/../k is not k); they used to be refused."""
    assert parse_s3_uri(f"s3://my-bucket/{key}").key == key


# -- addressing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "virtual"),
    [
        ("my-bucket", True),
        ("abc", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("my.bucket", False),  # the TLS wildcard certificate covers one label only
        ("MyBucket", False),
        ("my_bucket", False),
        ("-bucket", False),
        ("bucket-", False),
        ("192.168.1.1", False),
    ],
)
def test_is_virtual_hostable(bucket: str, virtual: bool) -> None:
    assert is_virtual_hostable(bucket) is virtual


def test_custom_endpoints_are_path_style_and_keep_their_prefix() -> None:
    endpoint = S3Endpoint.from_url("http://127.0.0.1:5000/prefix")
    request = get_object_request(S3Location("my-bucket", "a b"), endpoint)
    assert request.url == "http://127.0.0.1:5000/prefix/my-bucket/a%20b"
    assert request.host == "127.0.0.1:5000"


def test_head_bucket_addressing() -> None:
    aws = S3Endpoint.aws("s3.us-west-2.amazonaws.com")
    assert head_bucket_request("my-bucket", aws).url == (
        "https://my-bucket.s3.us-west-2.amazonaws.com/"
    )
    assert head_bucket_request("my.bucket", aws).url == (
        "https://s3.us-west-2.amazonaws.com/my.bucket"
    )


def test_put_object_headers() -> None:
    endpoint = S3Endpoint.aws("s3.us-west-2.amazonaws.com")
    location = S3Location("my-bucket", "k")
    request = put_object_request(
        location, endpoint, payload_hash="ab" * 32, content_type="text/csv", content_length=42
    )
    assert request.method == "PUT"
    assert request.headers == (
        ("Content-Type", "text/csv"),
        ("Content-Length", "42"),
        ("X-Amz-Content-SHA256", "ab" * 32),
    )
    bare = put_object_request(location, endpoint, payload_hash=EMPTY_SHA256)
    assert bare.headers == (("X-Amz-Content-SHA256", EMPTY_SHA256),)
    with pytest.raises(ParamValidationError) as caught:
        put_object_request(location, endpoint, payload_hash=EMPTY_SHA256, content_type="a\r\nb")
    assert caught.value.param == "content_type"
    assert check_content_type("application/json") == "application/json"
    with pytest.raises(ParamValidationError):
        check_content_type(b"text/plain")


# -- botocore, the oracle --------------------------------------------------------------------


def our_authorization(
    request: S3Request, region: str, amz_date: str, token: str | None = None
) -> str:
    """What the client's ``_send`` signs: host, x-amz-date, the request's headers, token."""
    headers = [("host", request.host), ("x-amz-date", amz_date), *request.headers]
    if token:
        headers.append(("x-amz-security-token", token))
    return SigV4Signer(region, "s3").authorization(
        method=request.method,
        path=literal_dot_segments(httpx.URL(request.url).raw_path).decode("ascii"),
        query="",
        headers=headers,
        payload_hash=request.payload_hash,
        credentials=FrozenCredentials(ACCESS_KEY, SECRET_KEY, token),
        amz_date=amz_date,
    )


ROUTES = [
    # region, flags, bucket
    ("us-east-1", {}, "my-bucket"),
    ("us-west-2", {}, "my-bucket"),
    ("us-west-2", {}, "my.dotted.bucket"),
    ("us-west-2", {}, "Legacy_Bucket"),
    ("us-west-2", {"use_fips_endpoint": True}, "my-bucket"),
    ("us-west-2", {"use_fips_endpoint": True}, "my.bucket"),
    ("eu-central-1", {"use_dualstack_endpoint": True}, "my-bucket"),
    ("us-east-1", {"use_fips_endpoint": True, "use_dualstack_endpoint": True}, "my-bucket"),
    ("us-gov-west-1", {"use_fips_endpoint": True}, "my-bucket"),
    ("cn-north-1", {}, "my-bucket"),
    ("eu-isoe-west-1", {}, "my-bucket"),
]


def _endpoint(region: str, flags: dict[str, bool]) -> S3Endpoint:
    return S3Endpoint.aws(
        resolve_s3_host(
            region,
            use_fips=flags.get("use_fips_endpoint", False),
            use_dualstack=flags.get("use_dualstack_endpoint", False),
        )
    )


def _cases() -> Iterator[Any]:
    for region, flags, bucket in ROUTES:
        for key in ODD_KEYS:
            yield pytest.param(region, flags, bucket, key, id=f"{region}-{flags}-{bucket}-{key!r}")


@pytest.mark.parametrize(("region", "flags", "bucket", "key"), list(_cases()))
def test_head_and_get_match_botocore(
    region: str, flags: dict[str, bool], bucket: str, key: str
) -> None:
    client = boto3_s3(region, **flags)
    location = S3Location(bucket, key)
    endpoint = _endpoint(region, flags)
    for operation, build in (
        ("head_object", head_object_request),
        ("get_object", get_object_request),
    ):
        theirs = botocore_request(client, operation, Bucket=bucket, Key=key)
        ours = build(location, endpoint)
        assert literal_dot_segments(ours.url.encode()).decode() == theirs.url
        # httpx keeps the path exactly as built: nothing re-encoded, nothing normalized,
        # and the wire target (dot segments literal again) is botocore's.
        wire = literal_dot_segments(httpx.URL(ours.url).raw_path)
        assert wire.decode() == urlsplit(theirs.url).path
        assert ours.host == urlsplit(theirs.url).netloc
        amz_date = header(theirs, "X-Amz-Date")
        assert our_authorization(ours, region, amz_date) == header(theirs, "Authorization")
        assert header(theirs, "X-Amz-Content-SHA256") == EMPTY_SHA256


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("token", [None, TOKEN])
def test_put_object_matches_botocore(key: str, token: str | None) -> None:
    body = b'{"inputs": "hello"}'
    payload_hash = hashlib.sha256(body).hexdigest()
    client = boto3_s3("us-west-2", token=token)
    location = S3Location("my-bucket", key)
    endpoint = _endpoint("us-west-2", {})

    theirs = botocore_request(
        client, "put_object", Bucket="my-bucket", Key=key, Body=body, ContentType="text/json"
    )
    ours = put_object_request(
        location, endpoint, payload_hash=payload_hash, content_type="text/json"
    )
    assert literal_dot_segments(ours.url.encode()).decode() == theirs.url
    assert header(theirs, "X-Amz-Content-SHA256") == payload_hash
    amz_date = header(theirs, "X-Amz-Date")
    assert our_authorization(ours, "us-west-2", amz_date, token) == header(theirs, "Authorization")

    # A streamed upload signs its Content-Length too; botocore signs it the same way.
    add_length = functools.partial(add_content_length, length=len(body))
    client.meta.events.register("before-sign.s3.PutObject", add_length)
    try:
        theirs = botocore_request(client, "put_object", Bucket="my-bucket", Key=key, Body=body)
    finally:
        client.meta.events.unregister("before-sign.s3.PutObject", add_length)
    ours = put_object_request(
        location, endpoint, payload_hash=payload_hash, content_length=len(body)
    )
    assert "content-length" in header(theirs, "Authorization")
    amz_date = header(theirs, "X-Amz-Date")
    assert our_authorization(ours, "us-west-2", amz_date, token) == header(theirs, "Authorization")


def test_custom_endpoint_matches_botocore_path_style() -> None:
    client = boto3_s3(
        "us-west-2", endpoint_url="http://127.0.0.1:5000", s3={"addressing_style": "path"}
    )
    for key in ODD_KEYS:
        theirs = botocore_request(client, "head_object", Bucket="my-bucket", Key=key)
        ours = head_object_request(
            S3Location("my-bucket", key), S3Endpoint.from_url("http://127.0.0.1:5000")
        )
        assert literal_dot_segments(ours.url.encode()).decode() == theirs.url
        amz_date = header(theirs, "X-Amz-Date")
        assert our_authorization(ours, "us-west-2", amz_date) == header(theirs, "Authorization")


@given(
    key=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),  # type: ignore[arg-type]
        min_size=1,
        max_size=64,
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_key_is_encoded_as_botocore_encodes_it(key: str) -> None:
    theirs = botocore_request(boto3_s3("us-west-2"), "head_object", Bucket="my-bucket", Key=key)
    ours = head_object_request(
        S3Location("my-bucket", key), S3Endpoint.aws("s3.us-west-2.amazonaws.com")
    )
    assert literal_dot_segments(ours.url.encode()).decode() == theirs.url
    path = literal_dot_segments(("/" + encode_key(key)).encode()).decode()
    assert path == urlsplit(theirs.url).path
    wire = literal_dot_segments(httpx.URL(ours.url).raw_path)
    assert wire.decode() == urlsplit(theirs.url).path


# -- errors ----------------------------------------------------------------------------------


NO_SUCH_KEY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message><Key>out/x.out</Key>"
    b"<RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>"
)


def test_xml_error_fields() -> None:
    error = parse_s3_error(404, httpx.Headers({}), NO_SUCH_KEY)
    assert type(error) is ServiceError
    assert (error.code, error.message, error.status_code, error.request_id) == (
        "NoSuchKey",
        "The specified key does not exist.",
        404,
        "4442587FB7D0A2F9",
    )


def test_request_id_header_wins_and_moto_spelling_is_read() -> None:
    headers = httpx.Headers({"x-amz-request-id": "HEADER-ID"})
    assert parse_s3_error(404, headers, NO_SUCH_KEY).request_id == "HEADER-ID"
    moto = b"<Error><Code>NoSuchBucket</Code><Message>m</Message><RequestID>M1</RequestID></Error>"
    assert parse_s3_error(404, httpx.Headers({}), moto).request_id == "M1"


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (403, b"", AccessDeniedError, "Forbidden"),
        (404, b"", ServiceError, "NotFound"),
        (301, b"", ServiceError, "PermanentRedirect"),
        (400, b"", ServiceError, "BadRequest"),
        (500, b"", InternalFailure, "InternalError"),
        (503, b"", ServiceUnavailable, "ServiceUnavailable"),
        (418, b"", ServiceError, "ImaTeapot"),
        (599, b"", ServiceError, "599"),
        (403, b"<Error><Code>AccessDenied</Code><Message>Denied</Message></Error>",
         AccessDeniedError, "AccessDenied"),
        (403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>", AccessDeniedError,
         "SignatureDoesNotMatch"),
        (400, b"<Error><Code>ExpiredToken</Code></Error>", AccessDeniedError, "ExpiredToken"),
        (503, b"<Error><Code>SlowDown</Code></Error>", ThrottlingError, "SlowDown"),
        (500, b"<Error><Code>InternalError</Code></Error>", InternalFailure, "InternalError"),
        (404, b"<ErrorResponse><Error><Code>NoSuchBucket</Code></Error></ErrorResponse>",
         ServiceError, "NoSuchBucket"),
        (502, b"<html><body>Bad gateway</body></html>", ServiceError, "BadGateway"),
        (500, b"<Error><Code>unterminated", InternalFailure, "InternalError"),
        (400, b'{"json": "not xml"}', ServiceError, "BadRequest"),
    ],
)  # fmt: skip
def test_error_classes(status: int, body: bytes, cls: type[ServiceError], code: str) -> None:
    error = parse_s3_error(status, httpx.Headers({"x-amz-request-id": "R"}), body)
    assert type(error) is cls
    assert error.code == code
    assert error.status_code == status
    assert error.request_id == "R"
    assert error.message  # a body-less HEAD error still says something


def test_entities_are_not_expanded_from_outside() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<Error><Code>&x;</Code></Error>"
    )
    error = parse_s3_error(400, httpx.Headers({}), body)
    assert "root:" not in error.code + error.message


@given(status=st.integers(100, 599), body=st.binary(max_size=200))
def test_parse_s3_error_never_fails(status: int, body: bytes) -> None:
    error = parse_s3_error(status, httpx.Headers({}), body)
    assert isinstance(error, ServiceError)
    assert error.status_code == status


# -- redirects --------------------------------------------------------------------------------


def _xml(code: str, region: str | None = None) -> bytes:
    extra = f"<Region>{region}</Region>" if region else ""
    return f"<Error><Code>{code}</Code><Message>m</Message>{extra}</Error>".encode()


@pytest.mark.parametrize(
    ("status", "headers", "body", "head", "expected"),
    [
        (301, {"x-amz-bucket-region": "eu-west-1"}, _xml("PermanentRedirect"), False,
         Redirect("eu-west-1")),
        (301, {"x-amz-bucket-region": "eu-west-1"}, b"", True, Redirect("eu-west-1")),
        (400, {"x-amz-bucket-region": "ap-south-1"}, b"", True, Redirect("ap-south-1")),
        (400, {}, b"", True, Redirect(None)),  # botocore then asks HeadBucket
        (307, {}, _xml("TemporaryRedirect"), False, Redirect(None)),
        (400, {}, _xml("AuthorizationHeaderMalformed", "us-west-2"), False,
         Redirect("us-west-2")),
        (400, {"x-amz-bucket-region": "eu-north-1"},
         _xml("IllegalLocationConstraintException"), False, Redirect("eu-north-1")),
        (301, {}, _xml("PermanentRedirect"), False, Redirect(None)),
        (301, {"x-amz-bucket-region": "evil.example.com/x"}, b"", True, Redirect(None)),
        # not redirects
        (400, {}, _xml("AuthorizationHeaderMalformed"), False, None),
        (400, {"x-amz-bucket-region": "eu-west-1"}, _xml("InvalidArgument"), False, None),
        (400, {"x-amz-bucket-region": "eu-west-1"}, b"", False, None),
        (403, {"x-amz-bucket-region": "eu-west-1"}, b"", True, None),
        (404, {"x-amz-bucket-region": "eu-west-1"}, b"", True, None),
        (500, {}, b"", True, None),
    ],
)  # fmt: skip
def test_redirect_detection(
    status: int, headers: dict[str, str], body: bytes, head: bool, expected: Redirect | None
) -> None:
    assert redirect_region(status, httpx.Headers(headers), body, head=head) == expected


# -- the listing (ListObjectsV2) ------------------------------------------------------------


def test_list_objects_request_is_path_style_on_a_custom_endpoint() -> None:
    request = list_objects_request(
        "bucket", "a b/", "tok+en=", S3Endpoint.from_url("http://127.0.0.1:5000")
    )
    assert request.url == (  # botocore's list_objects_v2 URL for the same call, exactly
        "http://127.0.0.1:5000/bucket?list-type=2&prefix=a%20b%2F&max-keys=1000"
        "&continuation-token=tok%2Ben%3D&encoding-type=url"
    )
    assert (request.method, request.host) == ("GET", "127.0.0.1:5000")
    assert (request.path, request.query) == ("/bucket", request.url.partition("?")[2])
    aws = list_objects_request("bucket", "", None, S3Endpoint.aws("s3.us-east-1.amazonaws.com"))
    assert aws.url.startswith("https://bucket.s3.us-east-1.amazonaws.com/?list-type=2")


def test_parse_list_page_decodes_keys_and_follows_truncation() -> None:
    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Name>b</Name><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<Contents><Key>a%20b.txt</Key><Size>1</Size></Contents>"
        b"<Contents><Key>dir/</Key></Contents>"
        b"<NextContinuationToken>next</NextContinuationToken></ListBucketResult>"
    )
    assert parse_list_page(page) == (["a b.txt", "dir/"], "next")
    last = page.replace(b"<IsTruncated>true", b"<IsTruncated>false")
    assert parse_list_page(last) == (["a b.txt", "dir/"], None)
    with pytest.raises(ServiceError, match="not XML"):
        parse_list_page(b"<oops")


def test_parse_s3_prefix() -> None:
    assert parse_s3_prefix("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_prefix("s3://bucket") == ("bucket", "")
    for bad in ("https://bucket/a", "s3://b/a", "s3://bucket/" + "k" * 1100, 7):
        with pytest.raises(ParamValidationError):
            parse_s3_prefix(bad)
