"""The service's side of InvokeEndpointAsync validation: headers in, an invocation or the
service's own message out.

The client (``sagemaker_async._protocol.params``) rejects bad arguments before sending; this module
is what a request from *any* SDK meets, so it checks the wire form against the same model
constraints and words the result the way Coral's validator does — every violation listed,
``1 validation error detected: Value '…' at 'member' failed to satisfy constraint: …`` — so
users see locally the message they will see from AWS. Values of sensitive members (the body,
the custom attributes) are never echoed. Patterns are matched whole, like the client does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..options import MAX_INLINE_BODY

__all__ = ["INVOKE_PATH", "InvalidRequest", "Invocation", "parse_invocation"]

# The request path of InvokeEndpointAsync, on the raw (still percent-encoded) path.
INVOKE_PATH = re.compile(r"/endpoints/([^/]*)/async-invocations")


class InvalidRequest(Exception):
    """The request breaks the model's rules; ``message`` is the service's wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Invocation:
    """An InvokeEndpointAsync request that passed validation."""

    endpoint_name: str
    input_location: str | None
    body: bytes | None = field(repr=False)
    content_type: str | None
    accept: str | None
    custom_attributes: str | None = field(repr=False)
    inference_id: str | None
    s3_output_path_extension: str | None
    filename: str | None
    request_ttl_seconds: int | None
    invocation_timeout_seconds: int | None


@dataclass(frozen=True, slots=True)
class _Rule:
    member: str  # the model member, lowerCamel, as Coral names it in messages
    header: str | None
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None  # the model's pattern, quoted in messages
    regex: re.Pattern[str] | None = None  # the same pattern in Python's dialect
    sensitive: bool = False


_ASCII = re.compile(r"[\x00-\x7f]*")
_RULES = (
    _Rule(
        "contentType",
        "x-amzn-sagemaker-content-type",
        max_len=1024,
        pattern=r"\p{ASCII}*",
        regex=_ASCII,
    ),
    _Rule("accept", "x-amzn-sagemaker-accept", max_len=1024, pattern=r"\p{ASCII}*", regex=_ASCII),
    _Rule(
        "customAttributes",
        "x-amzn-sagemaker-custom-attributes",
        max_len=1024,
        pattern=r"\p{ASCII}*",
        regex=_ASCII,
        sensitive=True,
    ),
    _Rule(
        "inferenceId",
        "x-amzn-sagemaker-inference-id",
        min_len=1,
        max_len=64,
        pattern=r"\A\S[\p{Print}]*\z",
        # Java's \S is any non-space character; its \p{Print} is printable ASCII.
        regex=re.compile(r"\S[\x20-\x7e]*"),
    ),
    _Rule(
        "inputLocation",
        "x-amzn-sagemaker-inputlocation",
        min_len=1,
        max_len=1024,
        pattern=r"^(https|s3)://([^/]+)/?(.*)$",
        regex=re.compile(r"(https|s3)://([^/]+)/?(.*)"),
    ),
    _Rule(
        "s3OutputPathExtension",
        "x-amzn-sagemaker-s3outputpathextension",
        min_len=1,
        max_len=512,
        pattern=r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$",
        regex=re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+"),
    ),
    _Rule(
        "filename",
        "x-amzn-sagemaker-filename",
        min_len=1,
        max_len=32,
        pattern=r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$",
        regex=re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*"),
    ),
)
_ENDPOINT_NAME = _Rule(
    "endpointName",
    None,
    max_len=63,
    pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
    regex=re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*"),
)
# (member, header, min, max): the model's integer ranges.
_INTEGERS = (
    ("requestTTLSeconds", "x-amzn-sagemaker-requestttlseconds", 60, 21600),
    ("invocationTimeoutSeconds", "x-amzn-sagemaker-invocationtimeoutseconds", 1, 3600),
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _value(rule: _Rule, value: str) -> str:
    return f"Value at '{rule.member}'" if rule.sensitive else f"Value '{value}' at '{rule.member}'"


def _check(rule: _Rule, value: str, errors: list[str]) -> None:
    prefix = f"{_value(rule, value)} failed to satisfy constraint: Member must"
    if rule.max_len is not None and len(value) > rule.max_len:
        errors.append(f"{prefix} have length less than or equal to {rule.max_len}")
    if len(value) < rule.min_len:
        errors.append(f"{prefix} have length greater than or equal to {rule.min_len}")
    if rule.regex is not None and rule.regex.fullmatch(value) is None:
        errors.append(f"{prefix} satisfy regular expression pattern: {rule.pattern}")


def _header(headers: Sequence[tuple[bytes, bytes]], name: str) -> bytes | None:
    key = name.encode("ascii")
    for header_name, value in headers:
        if header_name == key:
            return value
    return None


def _text(raw: bytes) -> str:
    # UTF-8 as SDKs send it (an S3 key may be non-ASCII); undecodable bytes stay visible to
    # the ASCII patterns as non-ASCII characters, so they fail validation instead of crashing.
    return raw.decode("utf-8", "surrogateescape")


def parse_invocation(
    raw_endpoint_name: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> Invocation:
    """Validate one request; raise ``InvalidRequest`` with every violation, Coral-style."""
    errors: list[str] = []
    endpoint_name = unquote(raw_endpoint_name, errors="surrogateescape")
    _check(_ENDPOINT_NAME, endpoint_name, errors)

    strings: dict[str, str | None] = {}
    for rule in _RULES:
        assert rule.header is not None
        raw = _header(headers, rule.header)
        value = None if raw is None else _text(raw)
        if value is not None:
            _check(rule, value, errors)
        strings[rule.member] = value

    integers: dict[str, int | None] = {}
    for member, header, lo, hi in _INTEGERS:
        raw = _header(headers, header)
        number: int | None = None
        if raw is not None:
            text = _text(raw).strip()
            if _INTEGER.fullmatch(text) is None:
                errors.append(
                    f"Value '{text}' at '{member}' failed to satisfy constraint: "
                    "Member must be an integer"
                )
            else:
                number = int(text)
                prefix = f"Value '{number}' at '{member}' failed to satisfy constraint: Member must"
                if number < lo:
                    errors.append(f"{prefix} have value greater than or equal to {lo}")
                elif number > hi:
                    errors.append(f"{prefix} have value less than or equal to {hi}")
        integers[member] = number

    if len(body) > MAX_INLINE_BODY:
        errors.append(
            "Value at 'body' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_INLINE_BODY}"
        )

    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise InvalidRequest(f"{count} validation {noun} detected: " + "; ".join(errors))

    input_location = strings["inputLocation"]
    # An empty body is no body: botocore sends Content-Length: 0 with InputLocation.
    if input_location is not None and body:
        raise InvalidRequest(
            "InputLocation and Body are mutually exclusive: "
            "send the payload inline as the request body or name it in InputLocation, not both."
        )
    if input_location is None and not body:
        raise InvalidRequest(
            "Either InputLocation or Body must be provided: "
            "send the payload inline as the request body or name its S3 URI in InputLocation."
        )
    return Invocation(
        endpoint_name=endpoint_name,
        input_location=input_location,
        body=body or None,
        content_type=strings["contentType"],
        accept=strings["accept"],
        custom_attributes=strings["customAttributes"],
        inference_id=strings["inferenceId"],
        s3_output_path_extension=strings["s3OutputPathExtension"],
        filename=strings["filename"],
        request_ttl_seconds=integers["requestTTLSeconds"],
        invocation_timeout_seconds=integers["invocationTimeoutSeconds"],
    )
