"""Answers in the SageMaker Runtime service's own shape.

The real service is a Coral service speaking rest-json: every answer carries an
``x-amzn-RequestId``; an error carries ``x-amzn-ErrorType: <Code>:<namespace URL>`` and a JSON
body ``{"message": "..."}``. SDKs take the code from the header (dropping everything after
the colon), so botocore, the AWS CLI and our client all read our errors as the service's.
"""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

from ._http import Response

__all__ = [
    "SERVICE_NAMESPACE",
    "VALIDATE_NAMESPACE",
    "accepted",
    "error",
    "json_error",
    "new_request_id",
    "s3_error",
]

# Coral names the component that rejected the request in the error type's namespace:
# the input validator for parameter errors, the service framework for authentication.
VALIDATE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.validate/"
SERVICE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"


def new_request_id() -> str:
    return str(uuid.uuid4())


def error(status: int, code: str, message: str, *, namespace: str = SERVICE_NAMESPACE) -> Response:
    """An error answer; ``message`` must hold no secret and no sensitive parameter value."""
    return Response(
        status,
        [
            ("x-amzn-RequestId", new_request_id()),
            ("x-amzn-ErrorType", f"{code}:{namespace}"),
            ("Content-Type", "application/json"),
        ],
        json.dumps({"message": message}).encode(),
    )


def accepted(inference_id: str, output_location: str, failure_location: str) -> Response:
    """The 202 of InvokeEndpointAsync: the id in the body, the locations in headers."""
    return Response(
        202,
        [
            ("x-amzn-RequestId", new_request_id()),
            ("X-Amzn-SageMaker-OutputLocation", _header_value(output_location)),
            ("X-Amzn-SageMaker-FailureLocation", _header_value(failure_location)),
            ("Content-Type", "application/json"),
        ],
        json.dumps({"InferenceId": inference_id}).encode(),
    )


def _header_value(value: str) -> str | bytes:
    # An inference id or path may hold non-ASCII text; h11 needs bytes for that.
    return value if value.isascii() else value.encode("utf-8")


def s3_error(status: int, code: str, message: str) -> Response:
    """An error in S3's shape (XML), for the S3 half of the port."""
    request_id = new_request_id().replace("-", "")[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return Response(
        status,
        [("x-amz-request-id", request_id), ("Content-Type", "application/xml")],
        body.encode("utf-8"),
    )


def json_error(status: int, code: str, message: str) -> Response:
    """An error in the awsJson protocol's shape (SQS): the code in the body's ``__type``."""
    return Response(
        status,
        [
            ("x-amzn-RequestId", new_request_id()),
            ("x-amzn-query-error", f"{code};Sender"),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message}).encode(),
    )
