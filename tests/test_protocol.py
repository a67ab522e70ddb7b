"""Request parts and response parsing, compared with botocore's rest-json parser.

botocore's ``RestJSONParser`` is the reference for codes and messages: for every AWS-shaped
error document (and for the generic HTML/empty 5xx pages botocore special-cases) our
``parse_error`` must find the same ``Code`` and ``Message``. Where we deliberately differ
(a non-JSON 4xx from a proxy: botocore reports no code and the raw page as the message)
the test says so; so does the one other case, a JSON document with neither a code nor a
message, where we show the status's reason phrase and botocore an empty message.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_async import (
    AccessDeniedError,
    AsyncInvocation,
    InternalFailure,
    ServiceError,
    ServiceUnavailable,
    ThrottlingError,
    ValidationError,
)
from sagemaker_async._protocol.invoke import (
    THROTTLING_CODES,
    error_class,
    invoke_headers,
    invoke_path,
    parse_error,
    parse_invoke_response,
    request_id_of,
)
from sagemaker_async._protocol.params import validate_invoke


@functools.cache
def botocore_output_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model("InvokeEndpointAsync").output_shape


def botocore_parse(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What botocore makes of the same answer to InvokeEndpointAsync."""
    import botocore.parsers
    from botocore.awsrequest import HeadersDict

    parser = botocore.parsers.create_parser("rest-json")
    response = {"status_code": status, "headers": HeadersDict(headers), "body": body}
    parsed: dict[str, Any] = parser.parse(response, botocore_output_shape())
    return parsed


def hdrs(**items: str) -> httpx.Headers:
    return httpx.Headers({k.replace("_", "-"): v for k, v in items.items()})


# -- request parts ---------------------------------------------------------------------------


def test_path_of_an_endpoint() -> None:
    assert invoke_path("my-endpoint-1") == "/endpoints/my-endpoint-1/async-invocations"


def test_headers_in_model_order_integers_as_decimal_strings() -> None:
    params = validate_invoke(
        "ep",
        "s3://b/k",
        content_type="application/json",
        accept="text/csv",
        custom_attributes="a=b",
        inference_id="id-1",
        s3_output_path_extension="out/x",
        filename="f.json",
        request_ttl_seconds=600,
        invocation_timeout_seconds=300,
    )
    assert invoke_headers(params) == [
        ("X-Amzn-SageMaker-Content-Type", "application/json"),
        ("X-Amzn-SageMaker-Accept", "text/csv"),
        ("X-Amzn-SageMaker-Custom-Attributes", "a=b"),
        ("X-Amzn-SageMaker-Inference-Id", "id-1"),
        ("X-Amzn-SageMaker-InputLocation", "s3://b/k"),
        ("X-Amzn-SageMaker-S3OutputPathExtension", "out/x"),
        ("X-Amzn-SageMaker-Filename", "f.json"),
        ("X-Amzn-SageMaker-RequestTTLSeconds", "600"),
        ("X-Amzn-SageMaker-InvocationTimeoutSeconds", "300"),
    ]


def test_parameters_not_given_are_not_sent() -> None:
    assert invoke_headers(validate_invoke("ep", body=b"x")) == []
    assert invoke_headers(validate_invoke("ep", body=b"x", content_type="")) == [
        ("X-Amzn-SageMaker-Content-Type", "")
    ]


def test_spaces_and_tabs_around_values_are_not_sent() -> None:
    """RFC 7230: they are no part of a field value (and h11 refuses to send them)."""
    params = validate_invoke(
        "ep", "s3://b/k \t", custom_attributes=" \ta = b\t ", inference_id="id  "
    )
    assert invoke_headers(params) == [
        ("X-Amzn-SageMaker-Custom-Attributes", "a = b"),
        ("X-Amzn-SageMaker-Inference-Id", "id"),
        ("X-Amzn-SageMaker-InputLocation", "s3://b/k"),
    ]


def test_header_names_are_the_models() -> None:
    """Every header we send is named exactly as in botocore's model (the case is signed)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    members = shape.members
    in_model = {
        m.serialization["name"]
        for m in members.values()
        if m.serialization.get("location") == "header"
    }
    params = validate_invoke(
        "ep",
        "s3://b/k",
        content_type="t",
        accept="t",
        custom_attributes="c",
        inference_id="i",
        s3_output_path_extension="p",
        filename="f",
        request_ttl_seconds=60,
        invocation_timeout_seconds=1,
    )
    assert {name for name, _ in invoke_headers(params)} == in_model


# -- successful answers ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 202])
@pytest.mark.parametrize(
    ("output_header", "failure_header", "request_id_header"),
    [
        (
            "X-Amzn-SageMaker-OutputLocation",
            "X-Amzn-SageMaker-FailureLocation",
            "x-amzn-RequestId",
        ),
        (
            "x-amzn-sagemaker-outputlocation",
            "x-amzn-sagemaker-failurelocation",
            "x-amzn-requestid",
        ),
        (
            "X-AMZN-SAGEMAKER-OUTPUTLOCATION",
            "X-AMZN-SAGEMAKER-FAILURELOCATION",
            "X-AMZN-REQUESTID",
        ),
    ],
    ids=["canonical", "lower", "upper"],
)
def test_accepted_answer_in_any_header_casing(
    status: int, output_header: str, failure_header: str, request_id_header: str
) -> None:
    headers = {
        output_header: "s3://b/out/abc.out",
        failure_header: "s3://b/fail/abc-error.out",
        request_id_header: "5b1f0000-0000-0000-0000-000000000000",
        "Content-Type": "application/json",
    }
    body = b'{"InferenceId": "abc"}'
    invocation = parse_invoke_response(status, httpx.Headers(headers), body)
    assert invocation == AsyncInvocation(
        inference_id="abc",
        output_location="s3://b/out/abc.out",
        failure_location="s3://b/fail/abc-error.out",
        request_id="5b1f0000-0000-0000-0000-000000000000",
    )
    reference = botocore_parse(status, headers, body)
    assert reference["InferenceId"] == invocation.inference_id
    assert reference["OutputLocation"] == invocation.output_location
    assert reference["FailureLocation"] == invocation.failure_location
    assert reference["ResponseMetadata"]["RequestId"] == invocation.request_id


def test_locations_are_optional() -> None:
    invocation = parse_invoke_response(202, httpx.Headers({}), b'{"InferenceId": "x"}')
    assert invocation == AsyncInvocation("x", None, None, None)


def test_s3_style_request_id_header_is_understood() -> None:
    assert request_id_of(httpx.Headers({"x-amz-request-id": "S3REQ"})) == "S3REQ"
    assert request_id_of(httpx.Headers({"x-amzn-RequestId": "A", "x-amz-request-id": "B"})) == "A"


def test_extra_fields_in_the_body_are_ignored() -> None:
    body = json.dumps({"InferenceId": "x", "Unexpected": [1, 2]}).encode()
    assert parse_invoke_response(202, httpx.Headers({}), body).inference_id == "x"


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b"not json", b"<html>ok</html>", b'["InferenceId"]', b'{"InferenceId": 5}'],
    ids=["empty", "no-field", "text", "html", "list", "number"],
)
def test_answer_without_inference_id_is_a_malformed_response(body: bytes) -> None:
    with pytest.raises(ServiceError) as info:
        parse_invoke_response(202, hdrs(x_amzn_RequestId="rid"), body)
    error = info.value
    assert type(error) is ServiceError
    assert (error.code, error.status_code, error.request_id) == ("MalformedResponse", 202, "rid")


# -- errors ----------------------------------------------------------------------------------

ERROR_CASES = [
    # (id, status, headers, body, expected class, expected code, expected message)
    (
        "errortype-header-with-suffix",
        400,
        {"x-amzn-ErrorType": "ValidationError:http://internal.amazon.com/coral/com.amazon/"},
        b'{"message": "Endpoint x of account y not found."}',
        ValidationError,
        "ValidationError",
        "Endpoint x of account y not found.",
    ),
    (
        "type-with-namespace",
        500,
        {},
        b'{"__type": "com.amazon.coral.service#InternalFailure", "message": "boom"}',
        InternalFailure,
        "InternalFailure",
        "boom",
    ),
    (
        "type-with-namespace-and-suffix",
        503,
        {},
        b'{"__type": "aws.protocols#ServiceUnavailable:http://x/y", "Message": "later"}',
        ServiceUnavailable,
        "ServiceUnavailable",
        "later",
    ),
    (
        "lower-code-field",
        400,
        {},
        b'{"code": "ThrottlingException", "message": "Rate exceeded"}',
        ThrottlingError,
        "ThrottlingException",
        "Rate exceeded",
    ),
    (
        "upper-code-field-capital-message",
        400,
        {},
        b'{"Code": "ValidationError", "Message": "Capitalised"}',
        ValidationError,
        "ValidationError",
        "Capitalised",
    ),
    (
        "message-wins-over-Message",
        400,
        {"x-amzn-ErrorType": "ValidationError"},
        b'{"message": "lower", "Message": "upper"}',
        ValidationError,
        "ValidationError",
        "lower",
    ),
    (
        "header-wins-over-body",
        400,
        {"X-Amzn-ErrorType": "ThrottlingException:http://x"},
        b'{"__type": "ValidationError", "message": "m"}',
        ThrottlingError,
        "ThrottlingException",
        "m",
    ),
    (
        "code-wins-over-type",
        400,
        {},
        b'{"__type": "a#ValidationError", "code": "ThrottlingException", "message": "m"}',
        ThrottlingError,
        "ThrottlingException",
        "m",
    ),
    (
        "429-unknown-code",
        429,
        {"x-amzn-ErrorType": "SlowDownPlease"},
        b"{}",
        ThrottlingError,
        "SlowDownPlease",
        "",
    ),
    (
        "throttling-400",
        400,
        {"x-amzn-ErrorType": "ThrottlingException"},
        b'{"message": "Rate exceeded"}',
        ThrottlingError,
        "ThrottlingException",
        "Rate exceeded",
    ),
    *(
        (
            f"auth-{code}",
            status,
            {"x-amzn-ErrorType": code},
            b'{"message": "no"}',
            AccessDeniedError,
            code,
            "no",
        )
        for code, status in [
            ("UnrecognizedClientException", 403),
            ("InvalidSignatureException", 403),
            ("AccessDeniedException", 403),
            ("ExpiredTokenException", 400),
            ("InvalidClientTokenId", 403),
        ]
    ),
    (
        "unknown-code-kept",
        400,
        {"x-amzn-ErrorType": "ModelNotReadyException"},
        b'{"message": "warming up"}',
        ServiceError,
        "ModelNotReadyException",
        "warming up",
    ),
    (
        "unknown-code-500-by-status",
        500,
        {"x-amzn-ErrorType": "SomethingNew"},
        b'{"message": "?"}',
        InternalFailure,
        "SomethingNew",
        "?",
    ),
    (
        "json-without-code",
        400,
        {},
        b'{"message": "just a message"}',
        ServiceError,
        "400",
        "just a message",
    ),
    (
        "html-502-from-a-proxy",
        502,
        {"Content-Type": "text/html"},
        b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
        ServiceError,
        "502",
        "Bad Gateway",
    ),
    ("empty-503", 503, {}, b"", ServiceUnavailable, "503", "Service Unavailable"),
    ("empty-500", 500, {}, b"   ", InternalFailure, "500", "Internal Server Error"),
    ("empty-504", 504, {}, b"", ServiceError, "504", "Gateway Timeout"),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls", "code", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_answers(
    status: int,
    headers: dict[str, str],
    body: bytes,
    cls: type[ServiceError],
    code: str,
    message: str,
) -> None:
    all_headers = {"x-amzn-RequestId": "rid-1", **headers}
    error = parse_error(status, httpx.Headers(all_headers), body)
    assert type(error) is cls
    assert (error.code, error.message, error.status_code, error.request_id) == (
        code,
        message,
        status,
        "rid-1",
    )
    assert code in str(error)
    assert str(status) in str(error)
    assert "rid-1" in str(error)
    reference = botocore_parse(status, all_headers, body)["Error"]
    assert (reference["Code"], reference["Message"]) == (code, message)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b"<html><body>Request blocked by proxy</body></html>"),
        (403, b"Blocked by corporate proxy"),
        (413, b"<!DOCTYPE html><html>too large</html>"),
        (502, b"<!DOCTYPE html><html><body>bad gateway</body></html>"),
        (599, b"weird"),
    ],
)
def test_non_aws_pages_become_service_errors_with_the_status_as_code(
    status: int, body: bytes
) -> None:
    """Deliberately unlike botocore, which here reports no code and the raw page as the
    message: a page from a proxy is not a message worth showing, its status is."""
    error = parse_error(status, httpx.Headers({"Content-Type": "text/html"}), body)
    assert error.code == str(status)
    assert error.status_code == status
    assert body.decode() not in str(error)
    assert isinstance(error, ServiceError)
    assert error.request_id is None


@pytest.mark.parametrize(
    "body",
    [b"null", b"[]", b'"a string"', b"3", b'{"__type": 5, "message": ["x"]}', b"\xff\xfe"],
)
def test_odd_json_never_crashes(body: bytes) -> None:
    error = parse_error(400, httpx.Headers({}), body)
    assert error.code == "400"
    assert type(error) is ServiceError


def test_request_id_from_either_header() -> None:
    assert parse_error(500, hdrs(x_amz_request_id="s3"), b"").request_id == "s3"


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        ("ValidationError", 400, ValidationError),
        ("ValidationException", 400, ValidationError),
        ("InternalFailure", 500, InternalFailure),
        ("ServiceUnavailable", 503, ServiceUnavailable),
        ("AnythingElse", 429, ThrottlingError),
        ("AnythingElse", 500, InternalFailure),
        ("AnythingElse", 503, ServiceUnavailable),
        ("AnythingElse", 502, ServiceError),
        ("AnythingElse", 400, ServiceError),
        *((code, 400, ThrottlingError) for code in sorted(THROTTLING_CODES)),
    ],
)
def test_error_class_mapping(code: str, status: int, cls: type[ServiceError]) -> None:
    assert error_class(code, status) is cls


# -- property-based: agree with botocore on every AWS-shaped error ----------------------------

CODES = st.sampled_from(
    ["ValidationError", "ThrottlingException", "InternalFailure", "Foo", "ServiceUnavailable"]
)
DECORATED_CODES = st.builds(
    lambda ns, code, suffix: ns + code + suffix,
    st.sampled_from(["", "com.amazonaws.sagemaker#", "aws.protocols#", "a#b#"]),
    CODES,
    st.sampled_from(["", ":http://internal.amazon.com/coral/", ":x:y"]),
)
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=30)


@st.composite
def aws_error_answers(draw: st.DrawFn) -> tuple[int, dict[str, str], bytes]:
    status = draw(st.sampled_from([400, 403, 404, 413, 429, 500, 502, 503, 504]))
    headers = {"x-amzn-RequestId": draw(st.uuids()).hex}
    if draw(st.booleans()):
        name = draw(st.sampled_from(["x-amzn-ErrorType", "X-Amzn-Errortype", "x-amzn-errortype"]))
        headers[name] = draw(DECORATED_CODES)
    document: dict[str, str] = {}
    for key in draw(st.sets(st.sampled_from(["__type", "code", "Code"]), max_size=3)):
        document[key] = draw(DECORATED_CODES)
    for key in draw(st.sets(st.sampled_from(["message", "Message"]), max_size=2)):
        document[key] = draw(TEXT)
    if not headers.keys() - {"x-amzn-RequestId"} and not document.keys() & {
        "__type",
        "code",
        "Code",
    }:
        # No code anywhere and no message: we show the status's reason phrase where botocore
        # leaves the message empty (and an empty 5xx body is its generic case, tested above).
        document["message"] = draw(TEXT.filter(bool))
    return status, headers, json.dumps(document).encode()


@settings(max_examples=60, deadline=None)
@given(aws_error_answers())
def test_codes_and_messages_agree_with_botocore(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    ours = parse_error(status, httpx.Headers(headers), body)
    reference = botocore_parse(status, headers, body)
    assert (ours.code, ours.message) == (reference["Error"]["Code"], reference["Error"]["Message"])
    assert ours.request_id == reference["ResponseMetadata"]["RequestId"]
