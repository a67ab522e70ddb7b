"""InvokeEndpointAsync on the wire: parameters to request parts, responses to results.

The sans-I/O half of the client (h11's idea): no sockets, no clock, no credentials. The
request parts mirror what botocore's rest-json serializer produces for the same call (the
same headers, in the model's member order, integers as decimal strings, optional headers
omitted, the inline body sent as raw bytes with no HTTP Content-Type), and the parsers
follow botocore's rest-json error rules, so the two can be compared byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import quote

from .._models import AsyncInvocation
from ..errors import (
    AccessDeniedError,
    InternalFailure,
    ServiceError,
    ServiceUnavailable,
    ThrottlingError,
    ValidationError,
)
from .freshness import parse_http_date
from .params import INVOKE_FIELDS, InvokeParams

__all__ = [
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "error_class",
    "invoke_headers",
    "invoke_path",
    "parse_error",
    "parse_invoke_response",
    "request_id_of",
]

# (keyword, header) in the order of the model's members, which is the order botocore
# serializes them in; the payload's location is one of them.
_HEADERS = tuple((f.name, f.header) for f in INVOKE_FIELDS)

# The codes botocore's standard retry mode treats as throttling and as transient.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
    }
)
_BY_CODE: Mapping[str, type[ServiceError]] = {
    "ValidationError": ValidationError,
    "ValidationException": ValidationError,
    "InternalFailure": InternalFailure,
    "ServiceUnavailable": ServiceUnavailable,
    **dict.fromkeys(THROTTLING_CODES, ThrottlingError),
    **dict.fromkeys(_ACCESS_CODES, AccessDeniedError),
}
_BY_STATUS: Mapping[int, type[ServiceError]] = {
    429: ThrottlingError,
    500: InternalFailure,
    503: ServiceUnavailable,
}


def invoke_path(endpoint_name: str) -> str:
    """The request path, the endpoint name percent-encoded as a URI label."""
    return f"/endpoints/{quote(endpoint_name, safe='~')}/async-invocations"


def invoke_headers(params: InvokeParams) -> list[tuple[str, str]]:
    """The X-Amzn-SageMaker-* headers of a call; parameters not given are not sent.

    Spaces and tabs at either end are dropped: RFC 7230 makes them no part of the value (and
    SigV4 trims them before signing), but HTTP/1.1 stacks such as h11 refuse to send them.
    """
    options = params.options
    location = params.input_location
    headers = []
    for name, header in _HEADERS:
        value = location if name == "input_location" else options.get(name)
        if value is not None:
            headers.append((header, str(value).strip(" \t")))
    return headers


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The AWS request id, from whichever header the service used."""
    return headers.get("x-amzn-requestid") or headers.get("x-amz-request-id")


def parse_invoke_response(
    status_code: int, headers: Mapping[str, str], body: bytes
) -> AsyncInvocation:
    """A 2xx answer to InvokeEndpointAsync as an ``AsyncInvocation``.

    ``headers`` must look names up case-insensitively (``httpx.Headers`` does), or be a
    dict with lower-cased names.
    """
    request_id = request_id_of(headers)
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = None
    inference_id = document.get("InferenceId") if isinstance(document, dict) else None
    if not isinstance(inference_id, str):
        raise ServiceError(
            "the service's answer has no InferenceId in its JSON body",
            code="MalformedResponse",
            status_code=status_code,
            request_id=request_id,
        )
    return AsyncInvocation(
        inference_id=inference_id,
        output_location=headers.get("x-amzn-sagemaker-outputlocation"),
        failure_location=headers.get("x-amzn-sagemaker-failurelocation"),
        request_id=request_id,
        submitted_at=parse_http_date(headers.get("date")),
    )


def _sanitize_code(code: str) -> str:
    """``aws.protocols#Foo:http://...`` → ``Foo`` (the awsJson/restJson rule)."""
    code = code.split(":", 1)[0]
    return code.rsplit("#", 1)[-1].strip()


def error_class(code: str, status_code: int) -> type[ServiceError]:
    """The contract's class for an error code, falling back on the HTTP status."""
    return _BY_CODE.get(code) or _BY_STATUS.get(status_code) or ServiceError


def parse_error(status_code: int, headers: Mapping[str, str], body: bytes) -> ServiceError:
    """A non-2xx answer as the typed error; never fails, whatever a proxy sent."""
    document: object = None
    if body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
    fields: Mapping[str, object] = document if isinstance(document, dict) else {}
    code = headers.get("x-amzn-errortype") or ""
    if not code:
        # botocore's order: the header, then the body's code/Code, then its __type.
        raw = fields.get("code") or fields.get("Code") or fields.get("__type") or ""
        code = raw if isinstance(raw, str) else ""
    return service_error(_sanitize_code(code), fields, status_code, headers)


def service_error(
    code: str, fields: Mapping[str, object], status_code: int, headers: Mapping[str, str]
) -> ServiceError:
    """The typed error for a JSON error document's ``code`` (already read) and fields.

    Shared by the runtime's rest-json and SQS's JSON 1.0 errors, which differ only in where
    the code is found.
    """
    message_field = fields.get("message", fields.get("Message", ""))
    message = message_field if isinstance(message_field, str) else ""
    if not code:
        # Not an AWS error document (an HTML page from a proxy, an empty body): botocore
        # reports the status as the code and its reason phrase as the message.
        code = str(status_code)
        if not message:
            try:
                message = HTTPStatus(status_code).phrase
            except ValueError:
                message = ""
    cls = error_class(code, status_code)
    return cls(message, code=code, status_code=status_code, request_id=request_id_of(headers))
