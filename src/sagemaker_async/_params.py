"""Validation of InvokeEndpointAsync parameters against the service model's constraints.

Every rule of the model (botocore/data/sagemaker-runtime/2017-05-13/service-2.json) is
checked here, before any I/O, so a bad call fails at once with the parameter and the rule
named, instead of after a signed round trip. Patterns are matched whole: the model's
patterns are written for the service's validator, which anchors them. Values of sensitive
parameters (custom attributes, body) never appear in a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ParamValidationError

__all__ = ["MAX_INLINE_BODY", "InvokeParams", "validate_invoke"]

MAX_INLINE_BODY = 128_000

_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
# The model's pattern minus the characters a header line cannot carry (NUL, CR, LF, VT, FF);
# its (.*) also stops, as Java's "." does, at the line terminators U+0085, U+2028, U+2029.
_INPUT_LOCATION = re.compile(
    r"(https|s3)://([^/\x00\n\x0b\x0c\r]+)/?([^\x00\n\x0b\x0c\r\x85\u2028\u2029]*)"
)
# The model's \A\S[\p{Print}]*\z in Java's dialect: \S is anything but [ \t\n\x0B\f\r] (NUL
# excluded here: no header can carry it), \p{Print} is [\x20-\x7e].
_INFERENCE_ID = re.compile(r"[^\x00\t\n\x0b\x0c\r ][\x20-\x7e]*")
_S3_OUTPUT_PATH_EXTENSION = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
_FILENAME = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*")
# \p{ASCII} without the controls a header cannot carry (NUL, CR, LF; VT and FF, which
# HTTP/1.1 stacks such as h11 refuse in a field value).
_ASCII_HEADER = re.compile(r"[\x01-\x09\x0e-\x7f]*")
# RFC 7230 field-value: visible US-ASCII, spaces and tabs.
_VISIBLE_ASCII = re.compile(r"[\t\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class InvokeParams:
    """A validated InvokeEndpointAsync call; one cannot exist with a broken rule."""

    endpoint_name: str
    input_location: str | None = None
    body: bytes | None = field(default=None, repr=False)
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = field(default=None, repr=False)
    inference_id: str | None = None
    s3_output_path_extension: str | None = None
    filename: str | None = None
    request_ttl_seconds: int | None = None
    invocation_timeout_seconds: int | None = None


def _fail(param: str, rule: str) -> ParamValidationError:
    return ParamValidationError(f"Invalid parameter {param}: {rule}", param=param)


def _string(
    param: str,
    value: object,
    *,
    min_len: int = 0,
    max_len: int,
    pattern: re.Pattern[str] | None = None,
    rule: str = "",
    show_value: bool = True,
) -> str:
    if not isinstance(value, str):
        raise _fail(param, f"must be a str, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        raise _fail(param, f"length must be {min_len}..{max_len}, got {len(value)}")
    if pattern is not None and pattern.fullmatch(value) is None:
        shown = f" (got {value!r})" if show_value else ""
        raise _fail(param, f"{rule}{shown}")
    return value


def _integer(param: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(param, f"must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(param, f"must be between {lo} and {hi}, got {value}")
    return value


def _body(value: object) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise _fail(
            "body",
            f"must be bytes, not {type(value).__name__} (encode text first, "
            "or use submit()/upload_input() for files)",
        )
    if len(value) > MAX_INLINE_BODY:
        raise _fail(
            "body",
            f"inline payloads are at most {MAX_INLINE_BODY:,} bytes, got {len(value):,}; "
            "upload it to S3 and pass input_location instead",
        )
    return value


def validate_invoke(
    endpoint_name: object,
    input_location: object = None,
    *,
    body: object = None,
    content_type: object = None,
    accept: object = None,
    custom_attributes: object = None,
    inference_id: object = None,
    s3_output_path_extension: object = None,
    filename: object = None,
    request_ttl_seconds: object = None,
    invocation_timeout_seconds: object = None,
) -> InvokeParams:
    """Check every argument against the model; raise ``ParamValidationError`` on the first."""
    name = _string(
        "endpoint_name",
        endpoint_name,
        min_len=1,
        max_len=63,
        pattern=_ENDPOINT_NAME,
        rule="must be letters, digits and hyphens, starting and ending with a letter or digit",
    )
    if (input_location is None) == (body is None):
        raise _fail(
            "input_location",
            "exactly one of input_location (an S3 URI) and body (inline bytes) is required"
            + ("; both were given" if body is not None else ""),
        )
    return InvokeParams(
        endpoint_name=name,
        input_location=None
        if input_location is None
        else _string(
            "input_location",
            input_location,
            min_len=1,
            max_len=1024,
            pattern=_INPUT_LOCATION,
            rule="must be an s3:// or https:// URI on one line",
        ),
        body=None if body is None else _body(body),
        content_type=None
        if content_type is None
        else _string(
            "content_type",
            content_type,
            max_len=1024,
            pattern=_ASCII_HEADER,
            rule="must be ASCII without line breaks",
        ),
        accept=None
        if accept is None
        else _string(
            "accept",
            accept,
            max_len=1024,
            pattern=_ASCII_HEADER,
            rule="must be ASCII without line breaks",
        ),
        custom_attributes=None
        if custom_attributes is None
        else _string(
            "custom_attributes",
            custom_attributes,
            max_len=1024,
            pattern=_VISIBLE_ASCII,
            rule="must be visible US-ASCII characters, spaces and tabs (RFC 7230 field-value)",
            show_value=False,
        ),
        inference_id=None
        if inference_id is None
        else _string(
            "inference_id",
            inference_id,
            min_len=1,
            max_len=64,
            pattern=_INFERENCE_ID,
            rule="must not start with whitespace, and the rest must be printable ASCII",
        ),
        s3_output_path_extension=None
        if s3_output_path_extension is None
        else _string(
            "s3_output_path_extension",
            s3_output_path_extension,
            min_len=1,
            max_len=512,
            pattern=_S3_OUTPUT_PATH_EXTENSION,
            rule="must be letters, digits and !_.*'()/- and must not start with s3: or https:",
        ),
        filename=None
        if filename is None
        else _string(
            "filename",
            filename,
            min_len=1,
            max_len=32,
            pattern=_FILENAME,
            rule="must start with a letter or digit, use letters, digits, -, _ and . only, "
            "and contain at most one dot",
        ),
        request_ttl_seconds=None
        if request_ttl_seconds is None
        else _integer("request_ttl_seconds", request_ttl_seconds, 60, 21600),
        invocation_timeout_seconds=None
        if invocation_timeout_seconds is None
        else _integer("invocation_timeout_seconds", invocation_timeout_seconds, 1, 3600),
    )
