"""The local endpoint's own SigV4 verification, against botocore as the signing oracle.

The verifier shares no code with our client's signer, so a request botocore signs must pass
it, and any change to what was signed (a header, the body, the path, the key, the clock)
must fail it with the code AWS uses. Then, end to end: 403 in the service's shape.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sagemaker_async import AccessDeniedError, ServiceError
from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._sigv4_verify import AuthError, SigV4Verifier
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]

KEY, SECRET = "AKIDLOCAL", "local/secret+KEY"
HOST = "127.0.0.1:8080"
PATH = "/endpoints/my-endpoint/async-invocations"
SERVICE_TYPE = "http://internal.amazon.com/coral/com.amazon.coral.service/"

Wire = tuple[str, bytes, list[tuple[bytes, bytes]], bytes]


def botocore_signed(
    target: str = PATH,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    key: str = KEY,
    secret: str = SECRET,
    service: str = "sagemaker",
    token: str | None = None,
) -> Wire:
    """A request as botocore signs it, in the form the server receives it."""
    request = AWSRequest(
        method="POST", url=f"http://{HOST}{target}", headers=headers or {}, data=body
    )
    SigV4Auth(Credentials(key, secret, token), service, "us-east-1").add_auth(request)
    wire = [(b"host", HOST.encode())]
    for name, value in request.headers.items():
        raw = value if isinstance(value, bytes) else value.encode("utf-8")
        wire.append((name.lower().encode(), raw))
    return "POST", target.encode(), wire, body


def verify(wire: Wire, *, now: float | None = None, **kwargs: Any) -> None:
    method, target, headers, body = wire
    verifier = SigV4Verifier(KEY, SECRET, **kwargs)
    verifier.verify(method, target, headers, body, now=time.time() if now is None else now)


def rejected(wire: Wire, **kwargs: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        verify(wire, **kwargs)
    return caught.value


def replace_header(wire: Wire, name: bytes, value: bytes) -> Wire:
    method, target, headers, body = wire
    return method, target, [(n, value if n == name else v) for n, v in headers], body


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "headers", "body"),
    [
        pytest.param(PATH, {}, b'{"inline": true}', id="inline-body"),
        pytest.param(
            PATH,
            {
                "X-Amzn-SageMaker-InputLocation": "s3://bucket/ünïcode key.json",
                "X-Amzn-SageMaker-Custom-Attributes": "a=1,  b=2   c",
                "X-Amzn-SageMaker-Content-Type": "application/json",
            },
            b"",
            id="input-location-utf8-and-spaces",
        ),
        pytest.param("/a/./b/../c//d/", {}, b"x", id="dot-segments-and-slashes"),
        pytest.param("/p%20q/r%2Fs", {}, b"x", id="percent-encoded-path"),
        pytest.param("/x?b=2&a=1%202&a=0&empty", {}, b"x", id="query"),
    ],
)
def test_requests_botocore_signed_are_accepted(
    target: str, headers: dict[str, str], body: bytes
) -> None:
    verify(botocore_signed(target, headers, body))


def test_headers_that_were_not_signed_do_not_matter() -> None:
    method, target, headers, body = botocore_signed(body=b"x")
    headers += [(b"user-agent", b"anything"), (b"amz-sdk-request", b"attempt=2; max=3")]
    verify((method, target, headers, body))


def test_without_x_amz_date_the_date_header_is_the_request_time() -> None:
    method, target, headers, body = botocore_signed(body=b"x")
    no_amz = [(n, v) for n, v in headers if n != b"x-amz-date"]
    error = rejected((method, target, no_amz, body))
    assert error.code == "IncompleteSignatureException"
    assert "either a 'X-Amz-Date' or a 'Date' header" in error.message
    # An hour-old Date header is read as such (and so fails the clock check).
    hour_ago = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 3600))
    scope_date = time.strftime("%Y%m%d", time.gmtime(time.time() - 3600))
    auth = next(v for n, v in headers if n == b"authorization").decode()
    today = auth.split("/")[1]
    dated = [
        *((n, v.replace(today.encode(), scope_date.encode())) for n, v in no_amz),
        (b"date", hour_ago.encode()),
    ]
    assert rejected((method, target, dated, body)).message.startswith("Signature expired")


# -- rejected ----------------------------------------------------------------------------------


def test_a_missing_signature() -> None:
    error = rejected(("POST", PATH.encode(), [(b"host", HOST.encode())], b""))
    assert (error.status, error.code, error.message) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )


def test_a_wrong_secret() -> None:
    error = rejected(botocore_signed(body=b"x", secret="not-the-secret"))
    assert error.code == "InvalidSignatureException"
    assert error.message.startswith("The request signature we calculated does not match")


def test_an_unknown_access_key() -> None:
    error = rejected(botocore_signed(body=b"x", key="AKIDOTHER"))
    assert (error.code, error.message) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_a_session_token_we_never_issued() -> None:
    error = rejected(botocore_signed(body=b"x", token="FQoG-token"))
    assert error.code == "UnrecognizedClientException"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda w: (w[0], w[1], w[2], w[3] + b"!"), id="body"),
        pytest.param(
            lambda w: (w[0], b"/endpoints/other/async-invocations", w[2], w[3]), id="path"
        ),
        pytest.param(lambda w: ("PUT", w[1], w[2], w[3]), id="method"),
        pytest.param(
            lambda w: replace_header(w, b"x-amzn-sagemaker-inputlocation", b"s3://other/key"),
            id="signed-header",
        ),
        pytest.param(lambda w: replace_header(w, b"host", b"127.0.0.1:9999"), id="host"),
    ],
)
def test_any_change_to_what_was_signed(tamper: Any) -> None:
    wire = botocore_signed(headers={"X-Amzn-SageMaker-InputLocation": "s3://b/k"}, body=b"x")
    assert rejected(tamper(wire)).code == "InvalidSignatureException"


def test_the_clock_may_be_15_minutes_off_and_no_more() -> None:
    wire = botocore_signed(body=b"x")
    now = time.time()
    verify(wire, now=now + 14 * 60)
    verify(wire, now=now - 14 * 60)
    late = rejected(wire, now=now + 16 * 60)
    assert late.code == "InvalidSignatureException"
    assert late.message.startswith("Signature expired: ")
    assert late.message.endswith(" - 15 min.)")
    early = rejected(wire, now=now - 16 * 60)
    assert early.message.startswith("Signature not yet current: ")


def test_the_scope_must_be_this_service() -> None:
    error = rejected(botocore_signed(body=b"x", service="s3"))
    assert error.message == "Credential should be scoped to correct service: 'sagemaker'. "


def test_the_host_must_be_signed() -> None:
    method, target, headers, body = botocore_signed(body=b"x")
    auth = next(v for n, v in headers if n == b"authorization")
    headers = replace_header(
        (method, target, headers, body),
        b"authorization",
        auth.replace(b"SignedHeaders=host;", b"SignedHeaders="),
    )[2]
    error = rejected((method, target, headers, body))
    assert "'Host' or ':authority' must be a 'SignedHeader'" in error.message


def test_a_declared_content_hash_must_match_the_body() -> None:
    method, target, headers, body = botocore_signed(body=b"x")
    headers.append((b"x-amz-content-sha256", b"0" * 64))
    error = rejected((method, target, headers, body))
    assert "x-amz-content-sha256" in error.message


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        ("AWS4-HMAC-SHA1 Credential=a/b/c/d/e", "Unsupported AWS 'algorithm'"),
        ("AWS4-HMAC-SHA256 Credential=AKIDLOCAL/x, SignedHeaders=host, Signature=ab", "5 slash"),
        ("AWS4-HMAC-SHA256 SignedHeaders=host", "requires 'Credential' parameter"),
    ],
)
def test_a_malformed_authorization_header(authorization: str, fragment: str) -> None:
    headers = [(b"host", HOST.encode()), (b"authorization", authorization.encode())]
    error = rejected(("POST", PATH.encode(), headers, b""))
    assert error.code == "IncompleteSignatureException"
    assert fragment in error.message


# -- end to end: 403 in the service's shape ----------------------------------------------------


@pytest.mark.usefixtures("warm_moto")
async def test_the_endpoint_checks_signatures_when_given_credentials() -> None:
    local = LocalEndpoint({"my-endpoint": lambda payload: payload}, credentials=f"{KEY}:{SECRET}")
    async with local:
        async with client_for(local, aws_access_key_id=KEY, aws_secret_access_key=SECRET) as ok:
            invocation = await ok.invoke_endpoint_async("my-endpoint", body=b"x")
            assert invocation.inference_id

        async with client_for(local, aws_access_key_id=KEY, aws_secret_access_key="wrong") as bad:
            with pytest.raises(AccessDeniedError) as caught:
                await bad.invoke_endpoint_async("my-endpoint", body=b"x")
        assert caught.value.status_code == 403
        assert caught.value.code == "InvalidSignatureException"

        async with client_for(local, aws_access_key_id="AKIDOTHER") as stranger:
            with pytest.raises(ServiceError) as unknown:
                await stranger.invoke_endpoint_async("my-endpoint", body=b"x")
        assert unknown.value.code == "UnrecognizedClientException"

        async with httpx.AsyncClient() as http:
            response = await http.post(f"{local.endpoint_url}{PATH}", content=b"x")
        assert local.invocation_count("my-endpoint") == 1
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == (
        f"MissingAuthenticationTokenException:{SERVICE_TYPE}"
    )
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Missing Authentication Token"}


@pytest.mark.usefixtures("warm_moto")
async def test_without_credentials_any_signature_is_accepted() -> None:
    async with LocalEndpoint({"my-endpoint": lambda payload: payload}) as local:
        async with client_for(local, aws_access_key_id="whatever", aws_secret_access_key="x") as c:
            await c.invoke_endpoint_async("my-endpoint", body=b"x")
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{local.endpoint_url}{PATH}", content=b"x")
        assert response.status_code == 202
