"""SageMaker's async-inference notifications, read from an SQS message body: sans I/O.

The format is the one SageMaker documents in the Asynchronous Inference guide, "Check
prediction results" (https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-check-predictions.html):
a JSON object with ``eventSource`` "aws:sagemaker", ``eventName`` "InferenceResult",
``eventVersion`` "1.0", ``inferenceId``, ``eventTime`` (ISO 8601, UTC), ``invocationStatus``
("Completed" or "Failed"), ``failureReason`` when failed, ``requestParameters``
(``endpointName``, ``contentType``, ``inputLocation``...) and ``responseParameters``
(``contentType``, ``outputLocation``; ``failureLocation`` for a failure). With the
endpoint's ``IncludeInferenceResponseIn`` the response itself (at most 128 KB) rides along
as ``responseBody``: ``content`` plus an ``encoding``. We decode "BASE64" (binary responses)
and take "JSON", "TEXT" and "STRING" as the response as text (UTF-8); we could not confirm
the complete list of encodings from the guide, so an encoding we do not know leaves
``body`` at ``None`` and the caller reads the object from S3 rather than trusting bytes it
cannot decode.

The notification reaches SQS either as SNS delivers it (an envelope with ``Type``
"Notification" whose ``Message`` is the notification as a string) or raw (the subscription's
RawMessageDelivery): both are understood. Anything else is not ours: ``parse_notification``
returns ``None`` and never raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["InferenceEvent", "is_fresh", "parse_notification"]

_EVENT_SOURCE = "aws:sagemaker"
_EVENT_NAME = "InferenceResult"
_SUCCEEDED = "Completed"
_FAILED = "Failed"
_TEXT_ENCODINGS = frozenset({"JSON", "TEXT", "STRING", "UTF-8", "UTF8"})


@dataclass(frozen=True, slots=True)
class InferenceEvent:
    """One SageMaker notification: an inference succeeded or failed."""

    inference_id: str
    succeeded: bool
    endpoint_name: str | None
    output_location: str | None
    failure_location: str | None
    failure_reason: str | None
    event_time: datetime
    content_type: str | None
    body: bytes | None = field(repr=False)
    message_id: str

    def __repr__(self) -> str:
        size = "None" if self.body is None else f"<{len(self.body)} bytes>"
        return (
            f"InferenceEvent(inference_id={self.inference_id!r}, succeeded={self.succeeded!r}, "
            f"endpoint_name={self.endpoint_name!r}, event_time={self.event_time.isoformat()!r}, "
            f"body={size}, message_id={self.message_id!r})"
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# ISO 8601 as AWS writes it: 2022-01-25T22:46:00.608Z (any number of fraction digits).
_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:[.,]([0-9]+))?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _parse_time(value: object) -> datetime | None:
    """The time, timezone-aware UTC; Python 3.10's fromisoformat takes neither "Z" nor
    other than 3 or 6 fraction digits, so the text is normalised first."""
    if not isinstance(value, str):
        return None
    match = _TIME.fullmatch(value.strip())
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    if zone is None or zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}")
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _decode_body(response_body: object) -> bytes | None:
    """The included response as bytes, or None when absent or undecodable."""
    if not isinstance(response_body, dict):
        return None
    content = response_body.get("content")
    if not isinstance(content, str):
        return None
    encoding = response_body.get("encoding")
    encoding = encoding.upper() if isinstance(encoding, str) else "TEXT"
    if encoding == "BASE64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return None
    if encoding in _TEXT_ENCODINGS:
        return content.encode("utf-8")
    return None


def _unwrap(body: str) -> dict[str, object] | None:
    """The notification object, raw or from inside an SNS envelope."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        try:
            document = json.loads(document["Message"])
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
    return document


def parse_notification(body: str, message_id: str) -> InferenceEvent | None:
    """The ``InferenceEvent`` in an SQS message body, or ``None`` if it is not one."""
    document = _unwrap(body)
    if document is None:
        return None
    if document.get("eventSource") != _EVENT_SOURCE:
        return None
    name = document.get("eventName")
    if name is not None and name != _EVENT_NAME:
        return None
    inference_id = _str(document.get("inferenceId"))
    status = document.get("invocationStatus")
    event_time = _parse_time(document.get("eventTime"))
    if inference_id is None or status not in (_SUCCEEDED, _FAILED) or event_time is None:
        return None
    request = document.get("requestParameters")
    response = document.get("responseParameters")
    request = request if isinstance(request, dict) else {}
    response = response if isinstance(response, dict) else {}
    succeeded = status == _SUCCEEDED
    output_location = _str(response.get("outputLocation"))
    if succeeded and output_location is None:
        return None  # a success that says nowhere where its output is: not usable
    return InferenceEvent(
        inference_id=inference_id,
        succeeded=succeeded,
        endpoint_name=_str(request.get("endpointName")),
        output_location=output_location,
        failure_location=_str(response.get("failureLocation")),
        failure_reason=_str(document.get("failureReason")),
        event_time=event_time,
        content_type=_str(response.get("contentType")),
        body=_decode_body(document.get("responseBody")),
        message_id=message_id,
    )


def is_fresh(event: InferenceEvent, submitted_at: datetime | None) -> bool:
    """Whether ``event`` can be the outcome of a request submitted at ``submitted_at``.

    The rule of the S3 objects (``Last-Modified`` not earlier than ``submitted_at`` truncated
    to the second) applied to the event time: an event of an older run of a reused
    ``InferenceId`` is not this run's. Without ``submitted_at``, any event counts.
    """
    if submitted_at is None:
        return True
    if submitted_at.tzinfo is None:
        submitted_at = submitted_at.replace(tzinfo=timezone.utc)
    return event.event_time >= submitted_at.replace(microsecond=0)
