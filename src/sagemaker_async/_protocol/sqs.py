"""SQS on the wire, the four operations waiting on notifications needs: sans I/O.

SQS speaks AWS JSON 1.0 today (botocore's model: ``"protocol": "json"``, ``jsonVersion``
1.0, ``targetPrefix`` AmazonSQS, ``awsQueryCompatible``): every call is a ``POST /`` to the
regional endpoint, named by ``X-Amz-Target``, with a JSON body. Because the service is
"query compatible", botocore also sends ``x-amzn-query-mode: true``, and SQS answers errors
with the old query-protocol code in ``x-amzn-query-error`` ("AWS.SimpleQueueService.
NonExistentQueue;Sender"), which botocore reports as the error code; we do the same.

The bodies are what botocore's serializer writes (``json.dumps`` defaults, the members in the
order we pass them and botocore is called with in the fixtures), so requests compare byte
for byte (``fixtures/sqs/``, ``tests/test_sqs_wire.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ServiceError
from .invoke import _sanitize_code, request_id_of, service_error

__all__ = [
    "MAX_BATCH",
    "MAX_WAIT_SECONDS",
    "BatchResult",
    "SqsMessage",
    "batch_body",
    "get_queue_attributes_body",
    "parse_batch",
    "parse_queue_attributes",
    "parse_receive",
    "parse_sqs_error",
    "receive_body",
    "sqs_headers",
]

# Entries per DeleteMessageBatch / ChangeMessageVisibilityBatch, and messages per receive.
MAX_BATCH = 10
MAX_WAIT_SECONDS = 20  # the longest long poll SQS allows
_CONTENT_TYPE = "application/x-amz-json-1.0"


@dataclass(frozen=True, slots=True)
class SqsMessage:
    """One received message: its id, the handle to delete or release it, its body."""

    message_id: str
    receipt_handle: str = field(repr=False)
    body: str = field(repr=False)
    sent_timestamp: int | None = None  # milliseconds since the epoch (SentTimestamp)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Entry ids that succeeded, and failed ones as ``(id, code, message)``."""

    successful: tuple[str, ...]
    failed: tuple[tuple[str, str, str], ...]


def sqs_headers(operation: str) -> list[tuple[str, str]]:
    """The headers botocore sends (and signs), in its order."""
    return [
        ("X-Amz-Target", f"AmazonSQS.{operation}"),
        ("Content-Type", _CONTENT_TYPE),
        ("x-amzn-query-mode", "true"),
    ]


def _dumps(document: Mapping[str, object]) -> bytes:
    return json.dumps(document).encode("utf-8")


def receive_body(
    queue_url: str,
    *,
    max_messages: int = MAX_BATCH,
    wait_seconds: int = MAX_WAIT_SECONDS,
    visibility_timeout: int | None = None,
) -> bytes:
    """ReceiveMessage: a long poll for up to ``max_messages``, with SentTimestamp."""
    document: dict[str, object] = {
        "QueueUrl": queue_url,
        "MessageSystemAttributeNames": ["SentTimestamp"],
        "MaxNumberOfMessages": max_messages,
    }
    if visibility_timeout is not None:
        document["VisibilityTimeout"] = visibility_timeout
    document["WaitTimeSeconds"] = wait_seconds
    return _dumps(document)


def batch_body(
    queue_url: str, handles: Sequence[str], *, visibility_timeout: int | None = None
) -> bytes:
    """DeleteMessageBatch (no timeout) or ChangeMessageVisibilityBatch; entry ids 0..n-1."""
    entries: list[dict[str, object]] = []
    for index, handle in enumerate(handles):
        entry: dict[str, object] = {"Id": str(index), "ReceiptHandle": handle}
        if visibility_timeout is not None:
            entry["VisibilityTimeout"] = visibility_timeout
        entries.append(entry)
    return _dumps({"QueueUrl": queue_url, "Entries": entries})


def get_queue_attributes_body(queue_url: str) -> bytes:
    """GetQueueAttributes for the queue's VisibilityTimeout: proves the queue and access."""
    return _dumps({"QueueUrl": queue_url, "AttributeNames": ["VisibilityTimeout"]})


def _document(status_code: int, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ServiceError(
            "the SQS answer is not a JSON object",
            code="MalformedResponse",
            status_code=status_code,
            request_id=request_id_of(headers),
        )
    return document


def parse_receive(
    status_code: int, headers: Mapping[str, str], body: bytes
) -> tuple[list[SqsMessage], int]:
    """ReceiveMessage's messages, and how many entries were unusable (no id or handle).

    A message whose body is missing or not a string is still returned (with an empty body)
    so the caller can decide about it; one without a receipt handle cannot be acted on and
    is only counted.
    """
    document = _document(status_code, headers, body)
    raw = document.get("Messages") or []
    if not isinstance(raw, list):
        raise ServiceError(
            "the SQS answer's Messages is not a list",
            code="MalformedResponse",
            status_code=status_code,
            request_id=request_id_of(headers),
        )
    messages: list[SqsMessage] = []
    unusable = 0
    for item in raw:
        if not isinstance(item, dict):
            unusable += 1
            continue
        message_id = item.get("MessageId")
        handle = item.get("ReceiptHandle")
        if not isinstance(message_id, str) or not isinstance(handle, str) or not handle:
            unusable += 1
            continue
        text = item.get("Body")
        attributes = item.get("Attributes")
        sent: int | None = None
        if isinstance(attributes, dict):
            value = attributes.get("SentTimestamp")
            if isinstance(value, str) and value.isdigit():
                sent = int(value)
        messages.append(
            SqsMessage(
                message_id=message_id,
                receipt_handle=handle,
                body=text if isinstance(text, str) else "",
                sent_timestamp=sent,
            )
        )
    return messages, unusable


def _entries(document: Mapping[str, object], name: str) -> list[dict[str, object]]:
    raw = document.get(name) or []
    if not isinstance(raw, list):
        return []
    return [entry for entry in raw if isinstance(entry, dict) and isinstance(entry.get("Id"), str)]


def parse_batch(status_code: int, headers: Mapping[str, str], body: bytes) -> BatchResult:
    document = _document(status_code, headers, body)
    return BatchResult(
        successful=tuple(str(entry["Id"]) for entry in _entries(document, "Successful")),
        failed=tuple(
            (str(entry["Id"]), str(entry.get("Code", "")), str(entry.get("Message", "")))
            for entry in _entries(document, "Failed")
        ),
    )


def parse_queue_attributes(
    status_code: int, headers: Mapping[str, str], body: bytes
) -> dict[str, str]:
    document = _document(status_code, headers, body)
    attributes = document.get("Attributes") or {}
    if not isinstance(attributes, dict):
        return {}
    return {k: v for k, v in attributes.items() if isinstance(k, str) and isinstance(v, str)}


def parse_sqs_error(status_code: int, headers: Mapping[str, str], body: bytes) -> ServiceError:
    """A non-2xx SQS answer as the typed error, with the code botocore reports.

    botocore's order for a query-compatible JSON service: the code from
    ``x-amzn-query-error`` (before the ``;``), else the body's ``__type``/``code``
    (namespace stripped), else the HTTP status. Never fails, whatever a proxy sent.
    """
    document: object = None
    if body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
    fields: Mapping[str, object] = document if isinstance(document, dict) else {}
    code = ""
    query_error = headers.get("x-amzn-query-error") or ""
    if query_error:
        code = query_error.split(";", 1)[0].strip()
    if not code:
        raw = headers.get("x-amzn-errortype") or fields.get("__type") or fields.get("code") or ""
        code = _sanitize_code(raw) if isinstance(raw, str) else ""
    return service_error(code, fields, status_code, headers)
