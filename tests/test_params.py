"""Validation of InvokeEndpointAsync parameters against every constraint of the model.

The patterns below are the service model's own (botocore's sagemaker-runtime
service-2.json), translated to Python's regex dialect, and a test checks that the
translation still matches the model shipped in the installed botocore. Hypothesis draws
values from them: everything the model allows must pass, and every violation must fail
with ``ParamValidationError`` naming the parameter, before any request is sent.

Where the client is stricter than the model it is on purpose: NUL, CR and LF (and VT/FF,
which HTTP/1.1 stacks refuse in a header) can never travel in an HTTP header, so the
generated alphabets leave those out and dedicated cases show they are refused.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ENDPOINT, INPUT, make_client, new_router
from sagemaker_async import ParamValidationError
from sagemaker_async._protocol.params import MAX_INLINE_BODY, InvokeParams, validate_invoke

# -- the model's constraints ----------------------------------------------------------------

# (python parameter, model member, Java pattern in the model, min, max)
MODEL_STRINGS = [
    ("endpoint_name", "EndpointName", "^[a-zA-Z0-9](-*[a-zA-Z0-9])*", None, 63),
    ("content_type", "ContentType", "\\p{ASCII}*", None, 1024),
    ("accept", "Accept", "\\p{ASCII}*", None, 1024),
    ("custom_attributes", "CustomAttributes", "\\p{ASCII}*", None, 1024),
    ("inference_id", "InferenceId", "\\A\\S[\\p{Print}]*\\z", 1, 64),
    ("input_location", "InputLocation", "^(https|s3)://([^/]+)/?(.*)$", 1, 1024),
    (
        "s3_output_path_extension",
        "S3OutputPathExtension",
        "^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$",
        1,
        512,
    ),
    ("filename", "Filename", "^(?!.*\\..*\\.)[a-zA-Z0-9][a-zA-Z0-9-_\\.]*$", 1, 32),
]
MODEL_INTEGERS = [
    ("request_ttl_seconds", "RequestTTLSeconds", 60, 21600),
    ("invocation_timeout_seconds", "InvocationTimeoutSeconds", 1, 3600),
]

# Python translations of the Java patterns above, matched whole. Java's \S is
# [^ \t\n\x0B\f\r] (any other character, non-ASCII too), \p{Print} is [\x20-\x7e].
PY_PATTERNS = {
    "endpoint_name": r"[a-zA-Z0-9](-*[a-zA-Z0-9])*",
    "content_type": r"[\x00-\x7f]*",
    "accept": r"[\x00-\x7f]*",
    "custom_attributes": r"[\t\x20-\x7e]*",  # RFC 7230 field-value, as the contract says
    "inference_id": r"[^ \t\n\x0b\x0c\r][\x20-\x7e]*",
    "input_location": r"(https|s3)://([^/]+)/?(.*)",
    "s3_output_path_extension": r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+",
    "filename": r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*",
}
MAX_LEN = {name: hi for name, _, _, _, hi in MODEL_STRINGS}
MIN_LEN = {name: lo or 0 for name, _, _, lo, _ in MODEL_STRINGS}

# ASCII without the characters no HTTP header can carry.
# (codepoint bounds, not codec="ascii", which costs seconds to build.)
ASCII = st.characters(max_codepoint=0x7F)
HEADER_SAFE_ASCII = st.characters(max_codepoint=0x7F, exclude_characters="\x00\r\n\x0b\x0c")


def model_members() -> dict[str, Any]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    return dict(shape.members)


def test_constraints_here_are_the_installed_models() -> None:
    """If botocore's model changes a limit or a pattern, this file must follow."""
    members = model_members()
    for _, member, pattern, lo, hi in MODEL_STRINGS:
        meta = members[member].metadata
        assert (meta.get("pattern"), meta.get("min"), meta.get("max")) == (pattern, lo, hi)
    for _, member, lo, hi in MODEL_INTEGERS:
        assert members[member].type_name == "integer"
        assert (members[member].metadata["min"], members[member].metadata["max"]) == (lo, hi)
    assert members["Body"].type_name == "blob"
    assert members["Body"].metadata["max"] == MAX_INLINE_BODY == 128_000
    assert members["CustomAttributes"].metadata["sensitive"] is True
    assert members["Body"].metadata["sensitive"] is True


def valid_kwargs(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"endpoint_name": ENDPOINT, "input_location": INPUT}
    kwargs.update(overrides)
    return kwargs


def rejected(param: str, **overrides: Any) -> ParamValidationError:
    kwargs = valid_kwargs(**overrides)
    with pytest.raises(ParamValidationError) as info:
        validate_invoke(**kwargs)
    assert info.value.param == param
    assert param in str(info.value)
    return info.value


# -- accepted values -------------------------------------------------------------------------


def test_minimal_call_is_accepted() -> None:
    assert validate_invoke(ENDPOINT, INPUT) == InvokeParams(ENDPOINT, input_location=INPUT)


def test_every_parameter_at_its_limits_is_accepted() -> None:
    params = validate_invoke(
        "a" * 63,
        "s3://b/" + "k" * (1024 - len("s3://b/")),
        content_type="c" * 1024,
        accept="a" * 1024,
        custom_attributes="x" * 1024,
        inference_id="i" * 64,
        s3_output_path_extension="p" * 512,
        filename="f" * 32,
        request_ttl_seconds=21600,
        invocation_timeout_seconds=3600,
    )
    assert params.request_ttl_seconds == 21600
    assert params.invocation_timeout_seconds == 3600
    lows = validate_invoke(
        "a",
        "s3://b",
        inference_id="i",
        s3_output_path_extension="p",
        filename="f",
        request_ttl_seconds=60,
        invocation_timeout_seconds=1,
        content_type="",
        accept="",
        custom_attributes="",
    )
    assert (lows.request_ttl_seconds, lows.invocation_timeout_seconds) == (60, 1)
    assert lows.content_type == ""


@pytest.mark.parametrize(
    "body", [b"", b"{}", bytes(range(256)), b"\x00" * MAX_INLINE_BODY], ids=len
)
def test_inline_bodies_up_to_the_limit_are_accepted(body: bytes) -> None:
    params = validate_invoke(ENDPOINT, body=body)
    assert params.body == body
    assert params.input_location is None


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_bodies_become_bytes(kind: type) -> None:
    params = validate_invoke(ENDPOINT, body=kind(b"abc"))
    assert type(params.body) is bytes
    assert params.body == b"abc"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("input_location", "s3://bücket/ключ/データ.json"),
        ("input_location", "https://my-bucket.s3.amazonaws.com/k/ e y"),
        ("input_location", "s3://b/"),
        ("custom_attributes", "a=b; c = d\tx"),
        ("inference_id", "x-\u00e9"[::-1]),  # non-ASCII first character: Java's \S allows it
        ("inference_id", "a b ~"),
        ("s3_output_path_extension", "!_.*'()/-"),
        ("s3_output_path_extension", "s3/https/x"),
        ("filename", "one.dot"),
        ("filename", "a-_.x"),
        ("endpoint_name", "a--b---c9"),
    ],
)
def test_odd_but_valid_values_are_accepted(param: str, value: str) -> None:
    params = validate_invoke(**valid_kwargs(**{param: value}))
    assert getattr(params, param) == value


def test_repr_hides_sensitive_fields() -> None:
    params = validate_invoke(ENDPOINT, body=b"secret-body", custom_attributes="secret-attr")
    assert "secret-body" not in repr(params)
    assert "secret-attr" not in repr(params)


# -- rejected values -------------------------------------------------------------------------

INVALID = [
    # (parameter, value, words the message must contain)
    ("endpoint_name", "", "length"),
    ("endpoint_name", "a" * 64, "length"),
    ("endpoint_name", "-abc", "letters"),
    ("endpoint_name", "abc-", "letters"),
    ("endpoint_name", "a_b", "letters"),
    ("endpoint_name", "a b", "letters"),
    ("endpoint_name", "a/b", "letters"),
    ("endpoint_name", "é", "letters"),
    ("endpoint_name", None, "str"),
    ("endpoint_name", b"abc", "str"),
    ("endpoint_name", 7, "str"),
    ("input_location", "", "length"),
    ("input_location", "s3://b/" + "k" * 1018, "length"),
    ("input_location", "ftp://b/k", "s3://"),
    ("input_location", "s3:/b/k", "s3://"),
    ("input_location", "s3://", "s3://"),
    ("input_location", "s3:///k", "s3://"),
    ("input_location", "S3://b/k", "s3://"),
    ("input_location", "s3://b/k\r\nX-Evil: 1", "s3://"),
    ("input_location", "s3://b/k\n", "s3://"),
    ("input_location", "s3://b/\x00", "s3://"),
    ("input_location", "s3://b/k\x0b", "s3://"),
    ("input_location", "s3://b/k\u2028", "s3://"),
    ("input_location", b"s3://b/k", "str"),
    ("content_type", "c" * 1025, "length"),
    ("content_type", "tëxt/plain", "ASCII"),
    ("content_type", "text/plain\r\nX: y", "ASCII"),
    ("content_type", "a\x00b", "ASCII"),
    ("content_type", "a\x0bb", "ASCII"),
    ("content_type", 5, "str"),
    ("accept", "a" * 1025, "length"),
    ("accept", "application/jsön", "ASCII"),
    ("accept", "a\nb", "ASCII"),
    ("accept", ["application/json"], "str"),
    ("custom_attributes", "x" * 1025, "length"),
    ("custom_attributes", "é", "visible"),
    ("custom_attributes", "a\nb", "visible"),
    ("custom_attributes", "a\x01b", "visible"),
    ("custom_attributes", "a\x7fb", "visible"),
    ("custom_attributes", {"a": "b"}, "str"),
    ("inference_id", "", "length"),
    ("inference_id", "i" * 65, "length"),
    ("inference_id", " lead", "whitespace"),
    ("inference_id", "\tlead", "whitespace"),
    ("inference_id", "ab\x7f", "printable"),
    ("inference_id", "aé", "printable"),
    ("inference_id", "a\nb", "printable"),
    ("inference_id", 42, "str"),
    ("s3_output_path_extension", "", "length"),
    ("s3_output_path_extension", "p" * 513, "length"),
    ("s3_output_path_extension", "s3:foo", "s3:"),
    ("s3_output_path_extension", "https:foo", "https:"),
    ("s3_output_path_extension", "a b", "letters"),
    ("s3_output_path_extension", "a#b", "letters"),
    ("s3_output_path_extension", "a\\b", "letters"),
    ("s3_output_path_extension", "ü", "letters"),
    ("filename", "", "length"),
    ("filename", "f" * 33, "length"),
    ("filename", "a.b.c", "one dot"),
    ("filename", "a..b", "one dot"),
    ("filename", ".hidden", "start"),
    ("filename", "-x", "start"),
    ("filename", "_x", "start"),
    ("filename", "a b", "letters"),
    ("filename", "a/b", "letters"),
    ("filename", "ä", "letters"),
    ("request_ttl_seconds", 59, "between 60 and 21600"),
    ("request_ttl_seconds", 21601, "between 60 and 21600"),
    ("request_ttl_seconds", -1, "between 60 and 21600"),
    ("request_ttl_seconds", True, "int"),
    ("request_ttl_seconds", 600.0, "int"),
    ("request_ttl_seconds", "600", "int"),
    ("invocation_timeout_seconds", 0, "between 1 and 3600"),
    ("invocation_timeout_seconds", 3601, "between 1 and 3600"),
    ("invocation_timeout_seconds", False, "int"),
    ("invocation_timeout_seconds", 1.5, "int"),
    ("invocation_timeout_seconds", "300", "int"),
]


@pytest.mark.parametrize(("param", "value", "rule"), INVALID)
async def test_each_invalid_value_is_refused_before_sending(
    param: str, value: Any, rule: str
) -> None:
    router = new_router()  # no routes: a request would fail the test
    client, _ = make_client(router)
    kwargs = valid_kwargs(**{param: value})
    async with client:
        with pytest.raises(ParamValidationError) as info:
            await client.invoke_endpoint_async(
                kwargs.pop("endpoint_name"), kwargs.pop("input_location"), **kwargs
            )
    assert info.value.param == param
    assert param in str(info.value)
    assert rule in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not router.calls


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"\x00" * (MAX_INLINE_BODY + 1), "128,000"),
        ("text, not bytes", "bytes"),
        (12, "bytes"),
        ([b"a"], "bytes"),
    ],
    ids=["too-large", "str", "int", "list"],
)
def test_invalid_bodies(body: Any, rule: str) -> None:
    error = rejected("body", input_location=None, body=body)
    assert rule in str(error)


def test_both_or_neither_payload_is_rejected() -> None:
    both = rejected("input_location", body=b"x")
    assert "both" in str(both)
    neither = rejected("input_location", input_location=None)
    assert "exactly one" in str(neither)


SECRET_ATTRS = [
    "token=SeCrEtAtTr\n",
    "SeCrEtAtTr" + "x" * 1024,
    "SeCrEtAtTr é",
    "SeCrEtAtTr\x7f",
]


@pytest.mark.parametrize("value", SECRET_ATTRS, ids=["newline", "long", "unicode", "del"])
def test_custom_attributes_value_never_in_the_message(value: str) -> None:
    error = rejected("custom_attributes", custom_attributes=value)
    assert "SeCrEtAtTr" not in str(error)
    assert "SeCrEtAtTr" not in repr(error)


def test_body_never_in_the_message() -> None:
    error = rejected("body", input_location=None, body=b"SeCrEtBoDy" * 13_000)
    assert "SeCrEtBoDy" not in str(error)


# -- property-based: the model's patterns ----------------------------------------------------


def from_model(param: str, alphabet: st.SearchStrategy[str]) -> Any:
    """Strings that fully match the model's pattern, within its length limits."""
    strategy = st.from_regex(PY_PATTERNS[param], fullmatch=True, alphabet=alphabet)
    return strategy.filter(lambda s: MIN_LEN[param] <= len(s) <= MAX_LEN[param])


ASCII_ALPHABET = {
    "endpoint_name": ASCII,
    "content_type": HEADER_SAFE_ASCII,
    "accept": HEADER_SAFE_ASCII,
    "custom_attributes": ASCII,
    "inference_id": HEADER_SAFE_ASCII,
    "input_location": HEADER_SAFE_ASCII,
    "s3_output_path_extension": ASCII,
    "filename": ASCII,
}
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
# Built once: a regex strategy is costly to construct, cheap to draw from.
MODEL_VALUES = {param: from_model(param, alphabet) for param, alphabet in ASCII_ALPHABET.items()}
LONGER_MODEL_VALUES = {
    param: values.filter(lambda s: len(s) >= 2) for param, values in MODEL_VALUES.items()
}


@pytest.mark.parametrize("param", list(PY_PATTERNS))
@FAST
@given(data=st.data())
def test_values_matching_the_model_are_accepted(param: str, data: st.DataObject) -> None:
    value = data.draw(MODEL_VALUES[param])
    params = validate_invoke(**valid_kwargs(**{param: value}))
    assert getattr(params, param) == value


@FAST
@given(ttl=st.integers(60, 21600), timeout=st.integers(1, 3600))
def test_integers_in_range_are_accepted(ttl: int, timeout: int) -> None:
    params = validate_invoke(
        ENDPOINT, INPUT, request_ttl_seconds=ttl, invocation_timeout_seconds=timeout
    )
    assert (params.request_ttl_seconds, params.invocation_timeout_seconds) == (ttl, timeout)


@FAST
@given(body=st.binary(max_size=2048), pad=st.integers(0, MAX_INLINE_BODY - 2048))
def test_bodies_within_the_limit_are_accepted(body: bytes, pad: int) -> None:
    payload = body + b"\x00" * pad
    assert validate_invoke(ENDPOINT, body=payload).body == payload


@pytest.mark.parametrize("param", list(PY_PATTERNS))
@FAST
@given(data=st.data())
def test_too_long_values_are_rejected(param: str, data: st.DataObject) -> None:
    value = data.draw(MODEL_VALUES[param])
    extra = data.draw(st.integers(1, 50))
    value += "a" * (MAX_LEN[param] + extra - len(value))  # "a" is valid at the end of any
    error = rejected(param, **{param: value})
    assert "length" in str(error)


# Characters each pattern refuses anywhere (the string stays valid otherwise).
BAD_CHARS = {
    "endpoint_name": st.sampled_from(list("_ ./é@:\t")),
    "content_type": st.sampled_from(["\x00", "\r", "\n", "\x0b", "é", "\u2028", "😀"]),
    "accept": st.sampled_from(["\x00", "\r", "\n", "ü", "\u00a0"]),
    "custom_attributes": st.sampled_from(["\x00", "\x01", "\r", "\n", "\x7f", "é", "\u3000"]),
    "inference_id": st.sampled_from(["\x00", "\n", "\r", "\x7f", "\x1f", "é"]),
    "input_location": st.sampled_from(["\x00", "\r", "\n", "\x0b", "\x0c"]),
    "s3_output_path_extension": st.sampled_from(list(' #?%&=+,;:@\\"<>é\t')),
    "filename": st.sampled_from(list(" /#?%!*()'é\t")),
}


@pytest.mark.parametrize("param", list(PY_PATTERNS))
@FAST
@given(data=st.data())
def test_bad_characters_are_rejected(param: str, data: st.DataObject) -> None:
    value = data.draw(LONGER_MODEL_VALUES[param])
    bad = data.draw(BAD_CHARS[param])
    # After the first character (which has its own rules) and before the end.
    at = data.draw(st.integers(1, len(value) - 1))
    value = (value[:at] + bad + value[at:])[: MAX_LEN[param]]
    rejected(param, **{param: value})


@pytest.mark.parametrize(("param", "lo", "hi"), [(p, lo, hi) for p, _, lo, hi in MODEL_INTEGERS])
@FAST
@given(data=st.data())
def test_out_of_range_integers_are_rejected(
    param: str, lo: int, hi: int, data: st.DataObject
) -> None:
    value = data.draw(st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1)))
    error = rejected(param, **{param: value})
    assert f"between {lo} and {hi}" in str(error)


WRONG_TYPES = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False),
    st.binary(min_size=1),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@pytest.mark.parametrize("param", [*PY_PATTERNS, *(p for p, _, _, _ in MODEL_INTEGERS)])
@FAST
@given(value=WRONG_TYPES)
def test_wrong_types_are_rejected(param: str, value: Any) -> None:
    error = rejected(param, **{param: value})
    assert type(value).__name__ in str(error)


@FAST
@given(size=st.integers(MAX_INLINE_BODY + 1, 4 * MAX_INLINE_BODY))
def test_bodies_over_the_limit_are_rejected(size: int) -> None:
    rejected("body", input_location=None, body=bytes(size))


@FAST
@given(data=st.data(), body=st.binary(max_size=64), both=st.booleans())
def test_both_or_neither_payload_is_rejected_whatever_the_values(
    data: st.DataObject, body: bytes, both: bool
) -> None:
    location = data.draw(MODEL_VALUES["input_location"]) if both else None
    with pytest.raises(ParamValidationError) as info:
        validate_invoke(ENDPOINT, location, body=body if both else None)
    assert info.value.param == "input_location"


@FAST
@given(attrs=st.text(min_size=1, max_size=1100))
def test_custom_attributes_never_echoed(attrs: str) -> None:
    """Whatever is wrong with custom attributes, the message names the rule, not the value."""
    marked = "ZqX" + attrs
    valid = len(marked) <= 1024 and all(c == "\t" or " " <= c <= "~" for c in marked)
    if valid:
        assert validate_invoke(ENDPOINT, INPUT, custom_attributes=marked).custom_attributes
        return
    with pytest.raises(ParamValidationError) as info:
        validate_invoke(ENDPOINT, INPUT, custom_attributes=marked)
    assert info.value.param == "custom_attributes"
    assert "ZqX" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"input_location": INPUT, "body": b"{}"},
        {"body": b"x" * (MAX_INLINE_BODY + 1)},
        {"body": json.dumps({"a": 1})},
    ],
    ids=["neither", "both", "too-large", "str-body"],
)
async def test_client_rejects_payload_mistakes_before_sending(kwargs: dict[str, Any]) -> None:
    router = new_router()
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ParamValidationError) as info:
            await client.invoke_endpoint_async(ENDPOINT, **kwargs)
    assert info.value.param in {"input_location", "body"}
    assert not router.calls
