"""The service-side validation of InvokeEndpointAsync, without a server.

Its constraints must be the model's (botocore ships the model; it is the reference), its
messages Coral's, and sensitive values must never be echoed.
"""

from __future__ import annotations

import botocore.session
import pytest

from sagemaker_async.local._validation import (
    _ENDPOINT_NAME,
    _RULES,
    InvalidRequest,
    Invocation,
    parse_invocation,
)


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [
        (f"x-amzn-sagemaker-{name.replace('_', '-')}".encode(), value.encode("utf-8"))
        for name, value in values.items()
    ]


def message(name: str, hdrs: list[tuple[bytes, bytes]], body: bytes = b"x") -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_invocation(name, hdrs, body)
    return caught.value.message


def test_the_rules_are_the_models() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    request = model.operation_model("InvokeEndpointAsync").input_shape
    assert request is not None
    members = request.members
    by_member = {rule.member: rule for rule in (*_RULES, _ENDPOINT_NAME)}
    for name, shape in members.items():
        if shape.type_name != "string":
            continue
        rule = by_member[name[0].lower() + name[1:]]
        assert rule.pattern == shape.metadata.get("pattern"), name
        assert rule.max_len == shape.metadata.get("max"), name
        assert rule.min_len == shape.metadata.get("min", 0), name
        if rule.header is not None:
            assert rule.header == shape.serialization["name"].lower(), name
        assert rule.sensitive == bool(shape.metadata.get("sensitive")), name


def test_a_valid_request_is_parsed_whole() -> None:
    parsed = parse_invocation(
        "my-endpoint",
        headers(
            content_type="application/json",
            accept="*/*",
            custom_attributes="a=b",
            inference_id="id 1",
            inputlocation="s3://bucket/ü.json",
            s3outputpathextension="x/y",
            filename="out.json",
            requestttlseconds="60",
            invocationtimeoutseconds="3600",
        ),
        b"",
    )
    assert parsed == Invocation(
        endpoint_name="my-endpoint",
        input_location="s3://bucket/ü.json",
        body=None,
        content_type="application/json",
        accept="*/*",
        custom_attributes="a=b",
        inference_id="id 1",
        s3_output_path_extension="x/y",
        filename="out.json",
        request_ttl_seconds=60,
        invocation_timeout_seconds=3600,
    )


def test_the_endpoint_name_is_percent_decoded_then_checked() -> None:
    assert parse_invocation("a%2Db", [], b"x").endpoint_name == "a-b"
    assert message("a_b", []) == (
        "1 validation error detected: Value 'a_b' at 'endpointName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
    )
    assert "length less than or equal to 63" in message("a" * 64, [])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"inference_id": ""},
            "Value '' at 'inferenceId' failed to satisfy constraint: Member must have length "
            "greater than or equal to 1",
        ),
        (
            {"inference_id": " leading"},
            r"Member must satisfy regular expression pattern: \A\S[\p{Print}]*\z",
        ),
        ({"content_type": "tëxt"}, r"at 'contentType' failed to satisfy constraint"),
        ({"inputlocation": "ftp://b/k"}, r"pattern: ^(https|s3)://([^/]+)/?(.*)$"),
        ({"s3outputpathextension": "s3:/x"}, "at 's3OutputPathExtension'"),
        ({"filename": "x" * 33}, "length less than or equal to 32"),
        ({"requestttlseconds": "ten"}, "Value 'ten' at 'requestTTLSeconds'"),
    ],
)
def test_violations_are_worded_as_coral_does(values: dict[str, str], expected: str) -> None:
    text = message("ep", headers(**values))
    assert " validation error" in text.split(":")[0]
    assert expected in text


def test_sensitive_values_are_never_echoed() -> None:
    secret = "token=sëcret"
    text = message("ep", headers(custom_attributes=secret))
    assert "sëcret" not in text
    assert "Value at 'customAttributes' failed to satisfy constraint" in text
    body = message("ep", [], b"s" * 128_001)
    assert "sss" not in body
    assert "Value at 'body'" in body


def test_every_violation_is_listed() -> None:
    text = message(
        "bad_name", headers(filename="a.b.c", invocationtimeoutseconds="0"), b"x" * 128_001
    )
    assert text.startswith("4 validation errors detected: ")
    assert text.count("; ") == 3


def test_the_body_limit_is_inclusive() -> None:
    assert parse_invocation("ep", [], b"x" * 128_000).body == b"x" * 128_000
