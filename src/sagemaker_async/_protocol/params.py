"""The InvokeEndpointAsync parameters: one table, and the validation it drives.

``INVOKE_FIELDS`` is the only place a header parameter is described: its keyword name, its
header, its wire type, the model's constraint, its command-line flag and manifest key. The
validator, the request headers, the client's and the batch's signatures (through
``InvokeOptions``, which a test keeps equal to the table), the CLI parser and the manifest
are all built from it, so a new header is one entry here plus its tests.

Every rule of the model (botocore/data/sagemaker-runtime/2017-05-13/service-2.json) is
checked here, before any I/O, so a bad call fails at once with the parameter and the rule
named, instead of after a signed round trip. Patterns are matched whole: the model's
patterns are written for the service's validator, which anchors them. Values of sensitive
parameters (custom attributes, body) never appear in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict

from ..errors import ParamValidationError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "INVOKE_FIELDS",
    "MAX_INLINE_BODY",
    "OPTION_FIELDS",
    "InvokeField",
    "InvokeOptions",
    "InvokeParams",
    "validate_invoke",
]

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


def _fail(param: str, rule: str) -> ParamValidationError:
    return ParamValidationError(f"Invalid parameter {param}: {rule}", param=param)


@dataclass(frozen=True, slots=True)
class InvokeField:
    """One header parameter of InvokeEndpointAsync, as every layer needs to know it."""

    name: str  # the keyword argument (and manifest key, when ``manifest`` is true)
    member: str  # the model's member name
    header: str  # exactly as botocore sends it (its case is signed)
    wire_type: Literal["string", "integer"]
    min: int  # length of a string, value of an integer
    max: int
    pattern: re.Pattern[str] | None = None
    rule: str = ""  # what ``pattern`` means, in words
    sensitive: bool = False  # never echoed in a message, repr or log line
    metavar: str = "TEXT"
    help: str | None = None
    manifest: bool = True  # a manifest line may set it per item
    batch_default: bool = True  # ``batch`` takes it once, for every item

    @property
    def cli_flag(self) -> str:
        """The AWS CLI's option: the keyword in kebab-case (``--content-type``)."""
        return "--" + self.name.replace("_", "-")

    # Strings found valid already (the same content type, endpoint after endpoint): a
    # set lookup instead of a regex. Bounded; never holds a sensitive value.
    _valid: set[str] = field(default_factory=set, compare=False, repr=False)

    def check(self, value: object) -> str | int:
        """The value if the model allows it; ``ParamValidationError`` naming the rule if not."""
        if value.__class__ is str and value in self._valid:
            return value  # a str, by its class
        if self.wire_type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _fail(self.name, f"must be an int, not {type(value).__name__}")
            if not self.min <= value <= self.max:
                raise _fail(self.name, f"must be between {self.min} and {self.max}, got {value}")
            return value
        if not isinstance(value, str):
            raise _fail(self.name, f"must be a str, not {type(value).__name__}")
        if not self.min <= len(value) <= self.max:
            raise _fail(self.name, f"length must be {self.min}..{self.max}, got {len(value)}")
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            shown = "" if self.sensitive else f" (got {value!r})"
            raise _fail(self.name, f"{self.rule}{shown}")
        if not self.sensitive and value.__class__ is str:
            _remember(self._valid, value)
        return value


def _remember(valid: set[str], value: str) -> None:
    if len(valid) >= _VALID_CACHE_SIZE:
        valid.clear()
    valid.add(value)


_ASCII_RULE = "must be ASCII without line breaks"

# The model's header members, in its order (the order botocore serializes them in).
INVOKE_FIELDS: tuple[InvokeField, ...] = (
    InvokeField(
        "content_type",
        "ContentType",
        "X-Amzn-SageMaker-Content-Type",
        "string",
        0,
        1024,
        _ASCII_HEADER,
        _ASCII_RULE,
        metavar="TYPE",
    ),
    InvokeField(
        "accept",
        "Accept",
        "X-Amzn-SageMaker-Accept",
        "string",
        0,
        1024,
        _ASCII_HEADER,
        _ASCII_RULE,
        metavar="TYPE",
    ),
    InvokeField(
        "custom_attributes",
        "CustomAttributes",
        "X-Amzn-SageMaker-Custom-Attributes",
        "string",
        0,
        1024,
        _VISIBLE_ASCII,
        "must be visible US-ASCII characters, spaces and tabs (RFC 7230 field-value)",
        sensitive=True,
        metavar="STRING",
        help="passed to the model; never printed",
    ),
    InvokeField(
        "inference_id",
        "InferenceId",
        "X-Amzn-SageMaker-Inference-Id",
        "string",
        1,
        64,
        _INFERENCE_ID,
        "must not start with whitespace, and the rest must be printable ASCII",
        metavar="ID",
        batch_default=False,  # one per item
    ),
    InvokeField(
        "input_location",
        "InputLocation",
        "X-Amzn-SageMaker-InputLocation",
        "string",
        1,
        1024,
        _INPUT_LOCATION,
        "must be an s3:// or https:// URI on one line",
        metavar="S3URI",
        help="s3://bucket/key of the input",
        manifest=False,  # a manifest line's "input"
        batch_default=False,
    ),
    InvokeField(
        "s3_output_path_extension",
        "S3OutputPathExtension",
        "X-Amzn-SageMaker-S3OutputPathExtension",
        "string",
        1,
        512,
        _S3_OUTPUT_PATH_EXTENSION,
        "must be letters, digits and !_.*'()/- and must not start with s3: or https:",
        metavar="PATH",
    ),
    InvokeField(
        "filename",
        "Filename",
        "X-Amzn-SageMaker-Filename",
        "string",
        1,
        32,
        _FILENAME,
        "must start with a letter or digit, use letters, digits, -, _ and . only, "
        "and contain at most one dot",
        metavar="NAME",
        batch_default=False,  # one per item, or the outputs overwrite each other
    ),
    InvokeField(
        "request_ttl_seconds",
        "RequestTTLSeconds",
        "X-Amzn-SageMaker-RequestTTLSeconds",
        "integer",
        60,
        21600,
        metavar="N",
    ),
    InvokeField(
        "invocation_timeout_seconds",
        "InvocationTimeoutSeconds",
        "X-Amzn-SageMaker-InvocationTimeoutSeconds",
        "integer",
        1,
        3600,
        metavar="N",
    ),
)
INPUT_LOCATION = next(f for f in INVOKE_FIELDS if f.name == "input_location")
# The keyword-only options (everything but the payload's location).
OPTION_FIELDS: tuple[InvokeField, ...] = tuple(f for f in INVOKE_FIELDS if f is not INPUT_LOCATION)
_OPTION_NAMES = frozenset(f.name for f in OPTION_FIELDS)
_OPTION_BY_NAME = {f.name: f for f in OPTION_FIELDS}
_VALID_CACHE_SIZE = 1024
_ENDPOINT_RULE = "must be letters, digits and hyphens, starting and ending with a letter or digit"


class InvokeOptions(TypedDict, total=False):
    """The keyword options of ``invoke_endpoint_async``, ``submit`` and a batch item.

    The static twin of ``OPTION_FIELDS`` (type checkers cannot read a table); a test keeps
    the two equal, name for name and type for type.
    """

    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    inference_id: str | None
    s3_output_path_extension: str | None
    filename: str | None
    request_ttl_seconds: int | None
    invocation_timeout_seconds: int | None


def _check_body(value: object) -> bytes:
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


@dataclass(frozen=True, slots=True, repr=False)
class InvokeParams:
    """A validated InvokeEndpointAsync call: ``__post_init__`` checks every rule, so an
    invalid one cannot exist. ``options`` holds the options given (not None), by name;
    each is readable as an attribute too (``params.inference_id``, None when not given).
    Headers are sent in the table's order, whatever the order of ``options``.
    """

    endpoint_name: str
    input_location: str | None = None
    body: bytes | None = None
    options: Mapping[str, str | int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_endpoint_name(self.endpoint_name)
        if (self.input_location is None) == (self.body is None):
            raise _fail(
                "input_location",
                "exactly one of input_location (an S3 URI) and body (inline bytes) is required"
                + ("; both were given" if self.body is not None else ""),
            )
        if self.input_location is not None:
            INPUT_LOCATION.check(self.input_location)
        else:
            body = _check_body(self.body)
            if body is not self.body:
                object.__setattr__(self, "body", body)
        checked: dict[str, str | int] = {}
        for name, value in self.options.items():
            option = _OPTION_BY_NAME.get(name)
            if option is None:
                raise TypeError(f"got an unexpected keyword argument {name!r}")
            if value is not None:  # an option left at None is not sent
                checked[name] = option.check(value)
        object.__setattr__(self, "options", checked)

    def __getattr__(self, name: str) -> str | int | None:
        if name in _OPTION_NAMES:
            return self.options.get(name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        shown = [f"endpoint_name={self.endpoint_name!r}"]
        if self.input_location is not None:
            shown.append(f"input_location={self.input_location!r}")
        if self.body is not None:
            shown.append(f"body=<{len(self.body)} bytes>")
        for f in OPTION_FIELDS:
            if f.name in self.options:
                value = "<hidden>" if f.sensitive else repr(self.options[f.name])
                shown.append(f"{f.name}={value}")
        return f"InvokeParams({', '.join(shown)})"


_valid_endpoint_names: set[str] = set()


def _check_endpoint_name(value: object) -> None:
    if value.__class__ is str and value in _valid_endpoint_names:
        return
    _check_endpoint_name_rules(value)
    _remember(_valid_endpoint_names, value)  # type: ignore[arg-type]  # a str by now


def _check_endpoint_name_rules(value: object) -> None:
    if not isinstance(value, str):
        raise _fail("endpoint_name", f"must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= 63:
        raise _fail("endpoint_name", f"length must be 1..63, got {len(value)}")
    if _ENDPOINT_NAME.fullmatch(value) is None:
        raise _fail("endpoint_name", f"{_ENDPOINT_RULE} (got {value!r})")


def validate_invoke(
    endpoint_name: object,
    input_location: object = None,
    *,
    body: object = None,
    **options: Unpack[InvokeOptions],
) -> InvokeParams:
    """Check every argument against the model; raise ``ParamValidationError`` on the first."""
    return InvokeParams(endpoint_name, input_location, body, options)  # type: ignore[arg-type]
