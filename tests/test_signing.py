"""SigV4 against three independent sources of truth.

* AWS's public SigV4 test suite (``fixtures/aws4_testsuite``): the corner cases the spec
  itself pins down (duplicate and multi-line headers, dot segments, double encoding, query
  ordering, session tokens), checked at every stage: canonical request, string to sign,
  ``Authorization``.
* botocore, the oracle for what AWS accepts today: our ``sign_request`` and botocore's
  ``SigV4Auth`` / ``S3SigV4Auth`` sign the very same request under a frozen clock and must
  agree byte for byte on every header they add, for the requests this client actually
  sends (InvokeEndpointAsync, S3 Put/Head/Get) and, via hypothesis, for random ones.
* The signing-key cache and the reprs, because a hot-path optimization that derives the
  wrong key, or a repr that leaks a secret into a log, would pass every other test.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.auth
import botocore.credentials
import botocore.session
import httpx
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse, HTTPHeaders
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagemaker_async._protocol import sigv4 as _signing
from sagemaker_async._protocol.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    FrozenCredentials,
    SigV4Signer,
    canonical_query,
    canonical_uri,
    format_amz_date,
)

SUITE = Path(__file__).resolve().parent.parent / "fixtures" / "aws4_testsuite"

# The suite's fixed inputs (see its README).
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
SERVICE = "service"
AMZ_DATE = "20150830T123600Z"

# Every header a signer adds; both signers must agree on all of them, every occurrence.
SIGNING_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# The AWS test suite: loader
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """One suite case: the raw request as written in ``.req`` and the expected outputs."""

    name: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    creq: str
    sts: str
    authz: str
    token: str | None
    """The session token the signed request (``.sreq``) carries, if any."""
    token_signed: bool
    """Whether that token is part of the signature (``post-sts-header-before``) or added
    after signing (``post-sts-header-after``)."""

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def host(self) -> str:
        return next(value for name, value in self.headers if name.lower() == "host")


def parse_http_request(raw: bytes) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """Split a raw HTTP/1.1 request into method, target, headers and body.

    Kept faithful to the files rather than to a real HTTP parser: header values are not
    stripped, a continuation line (obs-fold) stays in its value with its newline and
    indentation, repeated names stay repeated, in order; the signer must cope with all.
    """
    head, _, body = raw.partition(b"\n\n")
    request_line, *lines = head.decode("utf-8").split("\n")
    method, _, rest = request_line.partition(" ")
    target, _, _version = rest.rpartition(" ")
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, target, headers, body


def load_vector(req_file: Path) -> Vector:
    method, target, headers, body = parse_http_request(req_file.read_bytes())
    path, _, query = target.partition("?")
    creq = req_file.with_suffix(".creq").read_text(encoding="utf-8")
    signed_request = parse_http_request(req_file.with_suffix(".sreq").read_bytes())[2]
    token = next(
        (value for name, value in signed_request if name.lower() == "x-amz-security-token"),
        None,
    )
    return Vector(
        name=req_file.parent.relative_to(SUITE).as_posix(),
        method=method,
        path=path,
        query=query,
        headers=tuple(headers),
        body=body,
        creq=creq,
        sts=req_file.with_suffix(".sts").read_text(encoding="utf-8"),
        authz=req_file.with_suffix(".authz").read_text(encoding="utf-8"),
        token=token,
        token_signed="x-amz-security-token" in creq.split("\n")[-2].split(";"),
    )


VECTORS = [load_vector(path) for path in sorted(SUITE.rglob("*.req"))]
VECTOR_IDS = [vector.name for vector in VECTORS]


def headers_to_sign(vector: Vector) -> list[tuple[str, str]]:
    """The ``.req`` headers plus, when the case signs one, the session-token header.

    ``get-vanilla-with-session-token`` leaves the token out of its ``.req``; the signed
    request (and canonical request) carry it, as ``sign_request`` adds it before signing.
    """
    headers = list(vector.headers)
    names = {name.lower() for name, _ in headers}
    if vector.token is not None and vector.token_signed and "x-amz-security-token" not in names:
        headers.append(("X-Amz-Security-Token", vector.token))
    return headers


def reference_authorization(canonical_request: bytes, signed_headers: str) -> str:
    """The suite's Authorization for a given canonical request, computed from the spec."""

    def step(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    scope = f"{AMZ_DATE[:8]}/{REGION}/{SERVICE}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{AMZ_DATE}\n{scope}\n{sha256_hex(canonical_request)}"
    key = step(
        step(step(step(f"AWS4{SECRET_KEY}".encode(), AMZ_DATE[:8]), REGION), SERVICE),
        "aws4_request",
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )


def test_suite_is_complete_and_licensed() -> None:
    """The copy must be whole: a lost case would silently drop out of the parametrization."""
    assert (SUITE / "LICENSE").is_file()
    assert (SUITE / "NOTICE").is_file()
    assert len(VECTORS) == 34
    for vector in VECTORS:
        case = SUITE / vector.name / Path(vector.name).name
        for suffix in (".req", ".creq", ".sts", ".authz", ".sreq"):
            assert case.with_suffix(suffix).is_file(), f"{case}{suffix}"


def test_loader_keeps_duplicates_and_folded_lines() -> None:
    """The cases that matter only work if the loader hands the raw shape to the signer."""
    by_name = {vector.name: vector for vector in VECTORS}
    duplicate = by_name["get-header-key-duplicate"].headers
    assert [v for n, v in duplicate if n == "My-Header1"] == ["value2", "value2", "value1"]
    multiline = dict(by_name["get-header-value-multiline"].headers)
    assert multiline["My-Header1"] == "value1\n  value2\n     value3"
    assert by_name["post-x-www-form-urlencoded"].body == b"Param1=value1"
    assert by_name["get-utf8"].path == "/\u1234"
    assert by_name["post-sts-token/post-sts-header-after"].token_signed is False
    assert by_name["post-sts-token/post-sts-header-before"].token_signed is True


# --------------------------------------------------------------------------------------
# The AWS test suite: every stage through the string API
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_suite_canonical_request_string_to_sign_and_authorization(vector: Vector) -> None:
    """The path and query go in exactly as the ``.req`` writes them (raw UTF-8 included)."""
    signer = SigV4Signer(REGION, SERVICE)
    headers = headers_to_sign(vector)
    payload_hash = sha256_hex(vector.body)
    expected_signed_headers = vector.creq.split("\n")[-2]

    canonical, signed_headers = signer.canonical_request(
        method=vector.method,
        path=vector.path,
        query=vector.query,
        headers=headers,
        payload_hash=payload_hash,
    )
    assert canonical == vector.creq
    assert signed_headers == expected_signed_headers

    to_sign, signed_headers = signer.string_to_sign(
        method=vector.method,
        path=vector.path,
        query=vector.query,
        headers=headers,
        payload_hash=payload_hash,
        amz_date=AMZ_DATE,
    )
    assert to_sign == vector.sts
    assert signed_headers == expected_signed_headers

    authorization = signer.authorization(
        method=vector.method,
        path=vector.path,
        query=vector.query,
        headers=headers,
        payload_hash=payload_hash,
        credentials=FrozenCredentials(ACCESS_KEY, SECRET_KEY),
        amz_date=AMZ_DATE,
    )
    assert authorization == vector.authz


# --------------------------------------------------------------------------------------
# botocore as the oracle
# --------------------------------------------------------------------------------------


@contextmanager
def frozen_botocore_clock(amz_date: str) -> Iterator[None]:
    """Make botocore sign at ``amz_date``, whichever way this botocore reads the clock.

    A plain attribute swap rather than ``mock.patch``: this runs for every hypothesis
    example, and ``mock.patch`` costs more than both signatures together.
    """
    now = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    name: str
    replacement: object
    if hasattr(botocore.auth, "get_current_datetime"):
        name = "get_current_datetime"

        def replacement(remove_tzinfo: bool = True) -> datetime.datetime:
            return now

    else:  # older botocore calls datetime.datetime.utcnow() itself

        class FrozenDatetime(datetime.datetime):
            @classmethod
            def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
                return now

        name = "datetime"
        replacement = types.SimpleNamespace(datetime=FrozenDatetime, timezone=datetime.timezone)
    original = getattr(botocore.auth, name)
    setattr(botocore.auth, name, replacement)
    try:
        yield
    finally:
        setattr(botocore.auth, name, original)


# Headers botocore only adds after signing (when it prepares the request or right before
# sending): they are not on its request at signing time, so they are not copied over.
_ADDED_AFTER_SIGNING = frozenset({"content-length", "amz-sdk-invocation-id", "amz-sdk-request"})


def botocore_sign(
    request: httpx.Request,
    credentials: FrozenCredentials,
    *,
    region: str,
    service: str,
    amz_date: str,
    unsigned_payload: bool = False,
    params: Sequence[tuple[str, str]] | None = None,
) -> dict[str, list[str]]:
    """Sign what ``request`` will send with botocore, as botocore would hold it.

    ``params`` hands botocore the decoded query parameters, as its serializers do, instead
    of the raw query (which botocore would sign verbatim, without re-encoding).
    """
    # Spelled out from what goes on the wire: str(httpx.URL("http://h")) has no path, and
    # botocore would sign "" where the server sees "/".
    target = request.url.raw_path.decode("ascii")
    if params is not None:
        target = target.partition("?")[0]
    url = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}{target}"
    # A list of pairs, not the Mapping the stubs want: repeated names must stay repeated.
    query_params: Any = params
    aws = AWSRequest(method=request.method, url=url, data=request.content, params=query_params)
    for name, value in request.headers.multi_items():
        if name not in _ADDED_AFTER_SIGNING:
            aws.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    botocore_credentials = botocore.credentials.Credentials(
        credentials.access_key, credentials.secret_key, credentials.token
    )
    auth: botocore.auth.SigV4Auth
    if service == "s3":
        auth = botocore.auth.S3SigV4Auth(botocore_credentials, service, region)
        if unsigned_payload:
            aws.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    else:
        auth = botocore.auth.SigV4Auth(botocore_credentials, service, region)
        if unsigned_payload:
            aws.context["payload_signing_enabled"] = False
    with frozen_botocore_clock(amz_date):
        auth.add_auth(aws)
    return {name: aws.headers.get_all(name) or [] for name in SIGNING_HEADERS}


def our_sign(
    request: httpx.Request,
    credentials: FrozenCredentials,
    *,
    signer: SigV4Signer,
    amz_date: str,
    payload_hash: str,
) -> dict[str, list[str]]:
    signed = signer.sign_request(request, credentials, amz_date=amz_date, payload_hash=payload_hash)
    assert len(signed.headers.get_list("Authorization")) == 1
    return {name: signed.headers.get_list(name) for name in SIGNING_HEADERS}


def assert_same_as_botocore(
    request: httpx.Request,
    credentials: FrozenCredentials,
    *,
    region: str,
    service: str,
    amz_date: str,
    payload_hash: str,
    params: Sequence[tuple[str, str]] | None = None,
    signer: SigV4Signer | None = None,
) -> dict[str, list[str]]:
    """botocore first (it reads the unsigned request), then ours (which edits it)."""
    expected = botocore_sign(
        request,
        credentials,
        region=region,
        service=service,
        amz_date=amz_date,
        unsigned_payload=payload_hash == UNSIGNED_PAYLOAD,
        params=params,
    )
    actual = our_sign(
        request,
        credentials,
        signer=signer or SigV4Signer(region, service),
        amz_date=amz_date,
        payload_hash=payload_hash,
    )
    assert actual == expected
    return actual


# --------------------------------------------------------------------------------------
# The AWS test suite through the hot path (sign_request on an httpx.Request)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_suite_through_sign_request(vector: Vector) -> None:
    """Each case as httpx would send it: same Authorization as the suite and as botocore.

    One case cannot be sent verbatim: ``get-utf8`` has raw UTF-8 bytes in its request
    line, which httpx (rightly) refuses to send; it percent-encodes them, and what goes
    on the wire, ``/%E1%88%B4``, is then encoded again like every non-S3 path, just as
    ``get-space`` turns ``%20`` into ``%2520``. For it the expected canonical request is
    the suite's with that one line changed, and botocore agrees.
    """
    request = httpx.Request(
        vector.method,
        f"http://{vector.host}{vector.target}",
        headers=list(vector.headers),
        content=vector.body,
    )
    signed_token = vector.token if vector.token_signed else None
    credentials = FrozenCredentials(ACCESS_KEY, SECRET_KEY, signed_token)
    signed = assert_same_as_botocore(
        request,
        credentials,
        region=REGION,
        service=SERVICE,
        amz_date=AMZ_DATE,
        payload_hash=sha256_hex(vector.body),
    )
    if vector.token is not None and not vector.token_signed:
        request.headers["X-Amz-Security-Token"] = vector.token  # sent, but not signed

    if vector.path.isascii():
        assert signed["Authorization"] == [vector.authz]
    else:
        wire_path = request.url.raw_path.decode("ascii")
        assert wire_path == quote(vector.path)
        lines = vector.creq.split("\n")
        lines[1] = quote(wire_path, safe="/~")
        assert lines[1] == "/%25E1%2588%25B4"
        expected = reference_authorization("\n".join(lines).encode(), lines[-2])
        assert signed["Authorization"] == [expected]
    assert signed["X-Amz-Date"] == [AMZ_DATE]
    assert request.headers.get("X-Amz-Security-Token") == vector.token


# --------------------------------------------------------------------------------------
# botocore as the oracle: the requests this client sends
# --------------------------------------------------------------------------------------

TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+example/token=="
CREDENTIALS = [
    pytest.param(FrozenCredentials("AKIDEXAMPLE", SECRET_KEY), id="long-term"),
    pytest.param(FrozenCredentials("ASIAEXAMPLE", SECRET_KEY, TOKEN), id="session-token"),
]


def invoke_endpoint_async(
    region: str,
    *,
    endpoint: str = "my-endpoint",
    body: bytes = b"",
    extra_headers: Sequence[tuple[str, str]] = (),
    host: str | None = None,
    scheme: str = "https",
) -> httpx.Request:
    """An InvokeEndpointAsync request shaped like botocore's (see wire-format.md)."""
    host = host or f"runtime.sagemaker.{region}.amazonaws.com"
    headers = [] if body else [("X-Amzn-SageMaker-InputLocation", "s3://my-bucket/inputs/in.json")]
    headers += extra_headers
    return httpx.Request(
        "POST",
        f"{scheme}://{host}/endpoints/{endpoint}/async-invocations",
        headers=headers,
        content=body,
    )


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "il-central-1"]
)
def test_invoke_endpoint_async_with_input_location(
    region: str, credentials: FrozenCredentials
) -> None:
    """The common call: no body (signed as the empty hash), payload in S3."""
    request = invoke_endpoint_async(
        region,
        extra_headers=[
            ("X-Amzn-SageMaker-Content-Type", "application/json"),
            ("X-Amzn-SageMaker-Accept", "application/json"),
            ("X-Amzn-SageMaker-RequestTTLSeconds", "600"),
            ("X-Amzn-SageMaker-InvocationTimeoutSeconds", "300"),
        ],
    )
    signed = assert_same_as_botocore(
        request,
        credentials,
        region=region,
        service="sagemaker",
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
    )
    assert signed["X-Amz-Content-SHA256"] == []  # only S3 and unsigned payloads send it
    assert signed["X-Amz-Security-Token"] == ([credentials.token] if credentials.token else [])
    assert f"/{region}/sagemaker/aws4_request" in signed["Authorization"][0]


@pytest.mark.parametrize("credentials", CREDENTIALS)
def test_invoke_endpoint_async_with_inline_body(credentials: FrozenCredentials) -> None:
    """Inline payload: signed with the SHA-256 of the bytes, every optional header set."""
    body = b'{"inputs": "A  photo of\ta cat", "n": 1}'
    request = invoke_endpoint_async(
        "us-west-2",
        endpoint="Model-2-Endpoint",
        body=body,
        extra_headers=[
            ("X-Amzn-SageMaker-Content-Type", "application/json"),
            ("X-Amzn-SageMaker-Accept", "image/png"),
            ("X-Amzn-SageMaker-Custom-Attributes", "  trace=abc,   c000b4f9-df62  "),
            ("X-Amzn-SageMaker-Inference-Id", "inference 0001"),
            ("X-Amzn-SageMaker-S3OutputPathExtension", "run-7/outputs"),
            ("X-Amzn-SageMaker-Filename", "result.json"),
        ],
    )
    assert_same_as_botocore(
        request,
        credentials,
        region="us-west-2",
        service="sagemaker",
        amz_date="20260101T000000Z",
        payload_hash=sha256_hex(body),
    )


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        ("https", "runtime.sagemaker.us-east-1.amazonaws.com:8443"),
        ("https", "runtime.sagemaker.us-east-1.amazonaws.com:443"),
        ("http", "localhost:8080"),
        ("http", "127.0.0.1:5000"),
        ("https", "runtime-fips.sagemaker.us-east-1.amazonaws.com"),
        ("https", "runtime.sagemaker.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_invoke_endpoint_async_on_custom_hosts_and_ports(scheme: str, host: str) -> None:
    """The Host header (with a non-default port, without a default one) is signed."""
    request = invoke_endpoint_async("us-east-1", host=host, scheme=scheme)
    assert_same_as_botocore(
        request,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY, TOKEN),
        region="us-east-1",
        service="sagemaker",
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
    )


def test_unsigned_payload_outside_s3_sends_the_content_sha256_header() -> None:
    """Without the header a non-S3 service would hash the body itself and reject the call."""
    request = invoke_endpoint_async("us-east-1", body=b'{"inputs": 1}')
    signed = assert_same_as_botocore(
        request,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY),
        region="us-east-1",
        service="sagemaker",
        amz_date="20261126T001821Z",
        payload_hash=UNSIGNED_PAYLOAD,
    )
    assert signed["X-Amz-Content-SHA256"] == [UNSIGNED_PAYLOAD]


def test_re_signing_a_request_replaces_every_signing_header() -> None:
    """A retry signs the same request again: nothing stale may be signed or sent twice."""
    signer = SigV4Signer("us-east-1", "sagemaker")
    request = invoke_endpoint_async("us-east-1")
    signer.sign_request(
        request,
        FrozenCredentials("ASIAOLD", "old-secret", "old-token"),
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
    )
    fresh = FrozenCredentials("ASIANEW", SECRET_KEY, TOKEN)
    assert_same_as_botocore(
        request,
        fresh,
        region="us-east-1",
        service="sagemaker",
        amz_date="20261126T001921Z",
        payload_hash=EMPTY_SHA256,
        signer=signer,
    )
    for name in SIGNING_HEADERS[:3]:
        assert len(request.headers.get_list(name)) == 1


def test_headers_botocore_never_signs_are_left_out() -> None:
    """Hop-by-hop, tracing and user-agent headers, and those botocore adds after signing."""
    request = invoke_endpoint_async(
        "us-east-1",
        body=b"x" * 10,
        extra_headers=[
            ("User-Agent", "sagemaker-async/1.0 python/3.11"),
            ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
            ("Connection", "keep-alive"),
            ("Expect", "100-continue"),
            ("amz-sdk-invocation-id", "0b1d2e3f"),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ],
    )
    signed = assert_same_as_botocore(
        request,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY),
        region="us-east-1",
        service="sagemaker",
        amz_date="20261126T001821Z",
        payload_hash=sha256_hex(b"x" * 10),
    )
    assert "SignedHeaders=host;x-amz-date, " in signed["Authorization"][0]


def test_header_bytes_are_signed_exactly_as_sent() -> None:
    """Non-ASCII header bytes are signed as they go on the wire, UTF-8 or not.

    httpx's str views decode every header with one guessed codec (Latin-1 as soon as one
    value is not UTF-8), which would sign ``café`` as ``cafÃ©``; the server hashes bytes.
    """
    request = httpx.Request(
        "GET",
        "https://example.amazonaws.com/",
        headers=[(b"X-Meta", "caf\u00e9".encode()), (b"X-Raw", b"\xff\xfe")],
    )
    SigV4Signer(REGION, SERVICE).sign_request(
        request,
        FrozenCredentials(ACCESS_KEY, SECRET_KEY),
        amz_date=AMZ_DATE,
        payload_hash=EMPTY_SHA256,
    )
    signed_headers = "host;x-amz-date;x-meta;x-raw"
    canonical = (
        b"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:"
        + AMZ_DATE.encode()
        + b"\nx-meta:caf\xc3\xa9\nx-raw:\xff\xfe\n\n"
        + signed_headers.encode()
        + b"\n"
        + EMPTY_SHA256.encode()
    )
    assert request.headers["Authorization"] == reference_authorization(canonical, signed_headers)


# --------------------------------------------------------------------------------------
# botocore as the oracle, end to end: what its real clients put on the wire
# --------------------------------------------------------------------------------------

# What a signer adds (compared, not copied) and what the HTTP layer owns (never signed).
_NOT_REPLAYED = frozenset(
    {name.lower() for name in SIGNING_HEADERS} | {"content-length", "transfer-encoding"}
)


class _EmptyRaw:
    """Just enough of a urllib3 response for botocore to parse a canned reply."""

    def stream(self, **_: object) -> Iterator[bytes]:
        yield b""


@contextmanager
def captured_botocore_requests(client: Any, amz_date: str) -> Iterator[list[Any]]:
    """Run real botocore client calls under a frozen clock, answering them locally.

    The ``before-send`` hook sees the request exactly as botocore would send it (signed,
    with the headers it adds after signing) and short-circuits the network.
    """
    sent: list[Any] = []

    def before_send(request: Any, **_: object) -> AWSResponse:
        sent.append(request)
        return AWSResponse(
            request.url, 200, HTTPHeaders.from_dict({"Content-Length": "0"}), _EmptyRaw()
        )

    client.meta.events.register("before-send", before_send)
    with frozen_botocore_clock(amz_date):
        yield sent


def replay_with_our_signer(
    sent: Any, credentials: FrozenCredentials, *, region: str, service: str
) -> None:
    """Rebuild botocore's request (unsigned) as an httpx.Request and sign it ourselves."""
    headers = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in sent.headers.items()
    }
    body = sent.body if isinstance(sent.body, bytes) else b""
    request = httpx.Request(
        sent.method,
        sent.url,
        headers=[(n, v) for n, v in headers.items() if n.lower() not in _NOT_REPLAYED],
        content=body,
    )
    # S3 announces the hash it signed (a digest, or a streaming/unsigned marker).
    payload_hash = headers.get("X-Amz-Content-SHA256", sha256_hex(body))
    signed = our_sign(
        request,
        credentials,
        signer=SigV4Signer(region, service),
        amz_date=headers["X-Amz-Date"],
        payload_hash=payload_hash,
    )
    expected = {name: [headers[name]] if name in headers else [] for name in SIGNING_HEADERS}
    assert signed == expected


def test_real_sagemaker_runtime_client_requests() -> None:
    """InvokeEndpointAsync as botocore's own client serializes and signs it."""
    credentials = FrozenCredentials("ASIAEXAMPLE", SECRET_KEY, TOKEN)
    client: Any = botocore.session.Session().create_client(
        "sagemaker-runtime",
        region_name="eu-west-1",
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )
    with captured_botocore_requests(client, "20261126T001821Z") as sent:
        client.invoke_endpoint_async(
            EndpointName="my-endpoint",
            InputLocation="s3://my-bucket/inputs/in put.json",
            ContentType="application/json",
            CustomAttributes="trace=1,   user=a  b",
            InvocationTimeoutSeconds=300,
        )
        client.invoke_endpoint_async(
            EndpointName="my-endpoint", Body=b'{"inputs": [1, 2]}', Accept="application/json"
        )
    assert len(sent) == 2
    assert sent[1].body == b'{"inputs": [1, 2]}'
    for request in sent:
        replay_with_our_signer(request, credentials, region="eu-west-1", service="sagemaker")


def test_real_s3_client_requests() -> None:
    """PutObject/HeadObject/GetObject, virtual-hosted and path-style, as botocore sends them.

    Over https botocore streams PutObject with a trailing checksum (the payload hash is
    the ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` marker, ``Content-Encoding: aws-chunked``
    and friends signed); over http it sends a CRC32 header and the body's SHA-256.
    """
    key = "in puts/\u00fc+~=(1).json"
    session = botocore.session.Session()
    extras: list[tuple[FrozenCredentials, dict[str, Any]]] = [
        (FrozenCredentials("ASIAEXAMPLE", SECRET_KEY, TOKEN), {}),
        (
            FrozenCredentials("AKIDEXAMPLE", SECRET_KEY),
            {
                "endpoint_url": "http://127.0.0.1:5000",
                "config": Config(s3={"addressing_style": "path"}),
            },
        ),
    ]
    for credentials, extra in extras:
        client: Any = session.create_client(
            "s3",
            region_name="us-west-2",
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            **extra,
        )
        with captured_botocore_requests(client, "20261126T001821Z") as sent:
            client.put_object(Bucket="my-bucket", Key=key, Body=b"hello")
            client.head_object(Bucket="my-bucket", Key=key)
            client.get_object(Bucket="my-bucket", Key=key, Range="bytes=0-1")
        assert len(sent) == 3
        for request in sent:
            replay_with_our_signer(request, credentials, region="us-west-2", service="s3")


S3_KEYS = [
    "inputs/plain.json",
    "with space/and  two.json",
    "\u00fcn\u00efc\u00f6d\u00e9/\u0444\u0430\u0439\u043b \u6587\u4ef6.json",
    "a+b=c&d.json",
    "~user/tilde~file",
    "double//slash/",
    "100%/done.out",
    "semi;colon,comma@at:colon.json",
    "quote'paren(1)*star!.json",
]


def s3_url(bucket: str, key: str, *, endpoint: str | None = None) -> str:
    """Virtual-hosted on AWS, path-style on a custom endpoint; the key encoded like botocore."""
    encoded = quote(key, safe="/~")
    if endpoint is not None:
        return f"{endpoint}/{bucket}/{encoded}"
    return f"https://{bucket}.s3.us-west-2.amazonaws.com/{encoded}"


@pytest.mark.parametrize("credentials", CREDENTIALS)
@pytest.mark.parametrize("key", S3_KEYS)
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:5000"], ids=["aws", "path-style"])
def test_s3_put_head_get(key: str, endpoint: str | None, credentials: FrozenCredentials) -> None:
    """S3 signs the path as sent (no normalization, no second encoding) plus the body hash."""
    url = s3_url("my-bucket", key, endpoint=endpoint)
    body = b"\x00\x01 payload \xff" * 3
    put = httpx.Request(
        "PUT", url, headers={"Content-Type": "application/octet-stream"}, content=body
    )
    signed = assert_same_as_botocore(
        put,
        credentials,
        region="us-west-2",
        service="s3",
        amz_date="20261126T001821Z",
        payload_hash=sha256_hex(body),
    )
    assert signed["X-Amz-Content-SHA256"] == [sha256_hex(body)]
    for method in ("HEAD", "GET"):
        request = httpx.Request(
            method, url, headers={"Range": "bytes=0-99"} if method == "GET" else {}
        )
        assert_same_as_botocore(
            request,
            credentials,
            region="us-west-2",
            service="s3",
            amz_date="20261126T001821Z",
            payload_hash=EMPTY_SHA256,
        )


def test_s3_unsigned_payload_and_query() -> None:
    """Streaming uploads sign UNSIGNED-PAYLOAD; GetObject may carry a (canonical) query."""
    put = httpx.Request("PUT", s3_url("b", "big upload.bin"), content=b"x" * 100)
    signed = assert_same_as_botocore(
        put,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY, TOKEN),
        region="us-west-2",
        service="s3",
        amz_date="20261126T001821Z",
        payload_hash=UNSIGNED_PAYLOAD,
    )
    assert signed["X-Amz-Content-SHA256"] == [UNSIGNED_PAYLOAD]
    get = httpx.Request(
        "GET",
        s3_url("b", "out/x.out") + "?versionId=3%2FL4kqtJl40Nr8X8gdRQBpUMLUo&partNumber=1",
    )
    assert_same_as_botocore(
        get,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY),
        region="us-west-2",
        service="s3",
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
    )


@pytest.mark.parametrize("service", ["sagemaker", "s3"])
def test_query_params_encoded_by_httpx_match_botocore_params(service: str) -> None:
    """httpx's ``params=`` writes a space as ``+``; AWS decodes it as a space, as botocore signs."""
    params = [("response-content-disposition", 'attachment; filename="a b+c.txt"'), ("x", "")]
    request = httpx.Request("GET", "https://b.s3.us-west-2.amazonaws.com/k", params=tuple(params))
    assert b"a+b%2Bc.txt" in request.url.query
    assert_same_as_botocore(
        request,
        FrozenCredentials("AKIDEXAMPLE", SECRET_KEY),
        region="us-west-2",
        service=service,
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
        params=params,
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", ""),
        ("a", "a="),
        ("b=2&a=1&a=0", "a=0&a=1&b=2"),
        ("k=a+b", "k=a%20b"),
        ("k=a%2Bb", "k=a%2Bb"),
        ("k=%2f%7e%7E~", "k=%2F~~~"),
        ("k=%FF", "k=%FF"),
        ("k=\u1234", "k=%E1%88%B4"),
        ("k=a=b", "k=a%3Db"),
    ],
)
def test_canonical_query(raw: str, canonical: str) -> None:
    """Decoded then re-encoded per SigV4; a non-UTF-8 escape keeps its byte (no U+FFFD)."""
    assert canonical_query(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "s3", "canonical"),
    [
        ("", False, "/"),
        ("", True, "/"),
        ("/a/./b/../c//d/", False, "/a/c/d/"),
        ("/a/./b/../c//d/", True, "/a/./b/../c//d/"),
        ("/a%20b/$c", False, "/a%2520b/%24c"),
        ("/a%20b/$c", True, "/a%20b/$c"),
        ("/..", False, "/"),
    ],
)
def test_canonical_uri(raw: str, s3: bool, canonical: str) -> None:
    assert canonical_uri(raw, s3=s3) == canonical


def test_format_amz_date() -> None:
    assert format_amz_date(1440938160) == AMZ_DATE
    assert format_amz_date(1440938160.999) == AMZ_DATE


# --------------------------------------------------------------------------------------
# botocore as the oracle: random requests
# --------------------------------------------------------------------------------------

# Not generated: Date (botocore then signs Date instead of X-Amz-Date), Content-Length and
# Transfer-Encoding (httpx owns them), X-Amz-Content-SHA256 (botocore signs its value
# instead of the payload hash), Host (httpx derives it from the URL).
_NAME_POOL = [
    "X-Amz-Meta-A",
    "x-amz-meta-a",
    "Content-Type",
    "Accept",
    "X-Amzn-SageMaker-Custom-Attributes",
    "My-Header1",
    "Range",
    "If-Match",
    "User-Agent",
    "X-Amzn-Trace-Id",
    "Connection",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "Authorization",
]
_EXCLUDED_NAMES = frozenset(
    {"date", "content-length", "transfer-encoding", "x-amz-content-sha256", "host"}
    | _ADDED_AFTER_SIGNING
)
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))
# Header values: visible ASCII broken up by runs of spaces and tabs, to exercise trimming.
_HEADER_TEXT = st.text(_VISIBLE_ASCII[:20] + "  \t", max_size=14)
# Path segments, query names and values: anything, the encoders must cope.
_ANY_TEXT = st.one_of(
    st.text(" %+&=/?#~.;:@!$'()*,aZ09-_\u00e9\u1234\U0001f600", max_size=6),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
)
_LABEL = st.text(_LOWER, min_size=1, max_size=6)


def _dashed(parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    return parts.map("-".join)


# Built once: strategies created inside the composite would be re-validated per example.
_SERVICES = st.one_of(
    st.sampled_from(["s3", "sagemaker", "execute-api"]),
    _dashed(st.lists(_LABEL, min_size=1, max_size=2)),
)
_REGIONS = st.one_of(
    st.sampled_from(["us-east-1", "eu-central-2", "cn-northwest-1", "us-gov-east-1"]),
    _dashed(st.lists(_LABEL, min_size=2, max_size=3)).map(lambda r: f"{r}-1"),
)
_SCHEMES = st.sampled_from(["http", "https"])
_HOSTS = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_PORTS = st.one_of(st.none(), st.integers(1, 65535))
_SEGMENTS = st.lists(st.one_of(_ANY_TEXT, st.sampled_from([".", "..", ""])), max_size=4)
# What a URL builder leaves bare in a path segment: nothing, '~', or every sub-delimiter.
_SAFE_IN_PATH = st.sampled_from(["", "~", "!$&'()*+,;=:@~"])
_PAIRS = st.lists(st.tuples(_ANY_TEXT, _ANY_TEXT), max_size=3)
_HEADER_NAMES = st.one_of(
    st.sampled_from(_NAME_POOL),
    st.text(_LOWER + "XYZ-019", min_size=1, max_size=8)
    .map(lambda n: f"X{n}")
    .filter(lambda n: n.lower() not in _EXCLUDED_NAMES),
)
_HEADERS = st.lists(st.tuples(_HEADER_NAMES, _HEADER_TEXT), max_size=5)
_BODIES = st.binary(max_size=32)
_METHODS = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "post"])
_TOKENS = st.one_of(st.none(), st.just(""), st.text(_VISIBLE_ASCII, min_size=1, max_size=12))
_ACCESS_KEYS = st.text("ABCDEFXYZ0123456789", min_size=3, max_size=12).map(lambda k: f"A{k}")
_SECRETS = st.text(_VISIBLE_ASCII, min_size=1, max_size=12)
_BOOLEANS = st.booleans()
_TIMES = st.integers(946_684_800, 4_102_444_799)  # 2000-01-01 .. 2099-12-31


@dataclass(frozen=True)
class RandomCase:
    request: httpx.Request
    params: tuple[tuple[str, str], ...] | None
    credentials: FrozenCredentials
    region: str
    service: str
    amz_date: str
    payload_hash: str


@st.composite
def random_cases(draw: st.DrawFn) -> RandomCase:
    """A request plus everything needed to sign it, drawn from the module-level pools."""
    service = draw(_SERVICES)
    region = draw(_REGIONS)
    scheme = draw(_SCHEMES)
    port = draw(_PORTS)
    netloc = draw(_HOSTS) if port is None else f"{draw(_HOSTS)}:{port}"
    safe = draw(_SAFE_IN_PATH)
    path = "/" + "/".join(quote(segment, safe=safe) for segment in draw(_SEGMENTS))

    pairs = draw(_PAIRS)
    params: tuple[tuple[str, str], ...] | None = None
    url = f"{scheme}://{netloc}{path}"
    as_params = draw(_BOOLEANS)
    if pairs and as_params:
        params = tuple(pairs)  # httpx encodes them its own way ('+' for spaces)
    elif pairs:  # already canonical: botocore signs a URL query verbatim
        url += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)

    body = draw(_BODIES)
    request = httpx.Request(
        draw(_METHODS), url, headers=draw(_HEADERS), params=params, content=body
    )
    # botocore honours "don't sign the payload" only for S3 or over https.
    unsigned = draw(_BOOLEANS) and (service == "s3" or scheme == "https")
    credentials = FrozenCredentials(draw(_ACCESS_KEYS), draw(_SECRETS), draw(_TOKENS))
    return RandomCase(
        request=request,
        params=params,
        credentials=credentials,
        region=region,
        service=service,
        amz_date=format_amz_date(draw(_TIMES)),
        payload_hash=UNSIGNED_PAYLOAD if unsigned else sha256_hex(body),
    )


# Long-lived signers, shared across examples, so their key caches see the secret, the
# date and the scope change under them the way a long-running client's would.
_SHARED_SIGNERS: dict[tuple[str, str], SigV4Signer] = {}


@pytest.mark.slow  # 250 botocore signatures: about a second and a half
@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=random_cases())
def test_random_requests_match_botocore(case: RandomCase) -> None:
    """Any method, path, query, header set, body, region, service and credentials."""
    signer = _SHARED_SIGNERS.setdefault(
        (case.region, case.service), SigV4Signer(case.region, case.service)
    )
    assert_same_as_botocore(
        case.request,
        case.credentials,
        region=case.region,
        service=case.service,
        amz_date=case.amz_date,
        payload_hash=case.payload_hash,
        params=case.params,
        signer=signer,
    )


# --------------------------------------------------------------------------------------
# The signing-key cache and the reprs
# --------------------------------------------------------------------------------------


def derive_key(secret: str, datestamp: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (datestamp, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_signing_key_matches_the_aws_documentation() -> None:
    """The worked example in AWS's "derive a signing key" documentation."""
    key = SigV4Signer("us-east-1", "iam").signing_key(SECRET_KEY, "20150830")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_signing_key_is_derived_once_per_secret_and_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four HMACs per (secret, day); a new day or a rotated secret derives a new key."""
    derivations: list[str] = []
    real_hmac = _signing._hmac

    def counting_hmac(key: bytes, msg: str) -> bytes:
        derivations.append(msg)
        return real_hmac(key, msg)

    monkeypatch.setattr(_signing, "_hmac", counting_hmac)
    signer = SigV4Signer("eu-west-1", "sagemaker")

    def sign(credentials: FrozenCredentials, amz_date: str) -> None:
        request = invoke_endpoint_async("eu-west-1")
        signer.sign_request(request, credentials, amz_date=amz_date, payload_hash=EMPTY_SHA256)

    first = FrozenCredentials("AKID1", "secret-one")
    for amz_date in ("20261126T000000Z", "20261126T120000Z", "20261126T235959Z"):
        sign(first, amz_date)
    assert len(derivations) == 4
    day_one = signer.signing_key("secret-one", "20261126")
    assert day_one == derive_key("secret-one", "20261126", "eu-west-1", "sagemaker")
    assert len(derivations) == 4

    sign(first, "20261127T000000Z")  # the next day
    assert len(derivations) == 8
    day_two = signer.signing_key("secret-one", "20261127")
    assert day_two == derive_key("secret-one", "20261127", "eu-west-1", "sagemaker")
    assert day_two != day_one

    rotated = FrozenCredentials("AKID1", "secret-two")  # same access key, new secret
    sign(rotated, "20261127T000001Z")
    assert len(derivations) == 12
    rotated_key = signer.signing_key("secret-two", "20261127")
    assert rotated_key == derive_key("secret-two", "20261127", "eu-west-1", "sagemaker")
    assert rotated_key not in (day_one, day_two)
    assert len(derivations) == 12
    assert derivations[-4:] == ["20261127", "eu-west-1", "sagemaker", "aws4_request"]


def test_signing_key_cache_stays_consistent_across_threads() -> None:
    """Threads sharing a signer with two secrets must never get one secret's key for the other.

    The cache is one (secret, date, key) tuple swapped in a single assignment, so no
    interleaving can pair a secret with another's key. Under the GIL the window of a
    two-attribute cache is tiny; this guards free-threaded builds and future rewrites.
    """
    signer = SigV4Signer("us-east-1", "sagemaker")
    expected = {
        secret: derive_key(secret, "20261126", "us-east-1", "sagemaker")
        for secret in ("secret-a", "secret-b")
    }
    wrong: list[str] = []

    def hammer(secret: str) -> None:
        for _ in range(1000):
            if signer.signing_key(secret, "20261126") != expected[secret]:
                wrong.append(secret)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer, args=(s,)) for s in ("secret-a", "secret-b") * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_secrets_never_show_in_reprs() -> None:
    """Credentials and signers end up in logs and tracebacks; their secrets must not."""
    credentials = FrozenCredentials("AKIDVISIBLE", "s3cr3t-VALUE", "t0k3n-VALUE")
    signer = SigV4Signer("us-east-1", "sagemaker")
    signer.sign_request(
        invoke_endpoint_async("us-east-1"),
        credentials,
        amz_date="20261126T001821Z",
        payload_hash=EMPTY_SHA256,
    )  # the signer now caches a key derived from the secret
    for text in (repr(credentials), str(credentials), f"{credentials!r}", repr([credentials])):
        assert "AKIDVISIBLE" in text
        assert "s3cr3t" not in text
        assert "t0k3n" not in text
    for text in (repr(signer), str(signer)):
        assert text == "SigV4Signer(region='us-east-1', service='sagemaker')"
    assert not hasattr(signer, "__dict__")  # nothing for vars() to dump
