"""Notifications for the local endpoint: SageMaker → SNS → SQS, on the same port.

With ``notify=True`` the endpoint creates a queue in moto's SQS (served on its one port:
moto's dispatcher routes a request signed for ``sqs`` to SQS, as it routes S3's to S3) and,
after each output or failure object is written, puts on it the notification SageMaker
publishes, wrapped as SNS delivers it to a subscribed queue (an envelope whose
``Message`` is the notification's JSON). With ``include_response`` the response (at most
128 KB, as the service allows) is in the notification too, as the endpoint option
``IncludeInferenceResponseIn`` asks.

The hook is a ``Storage`` wrapper: it sees every object written and publishes for the ones
registered as some request's output or failure location, so the queue and the workers do
not need to know about it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._http import Request, Response
from ._s3backend import S3Backend
from ._storage import Storage

__all__ = ["MAX_INCLUDED_BODY", "Notifier", "NotifyingStorage", "is_long_poll", "is_sqs"]

logger = logging.getLogger("sagemaker_async.local")

MAX_INCLUDED_BODY = 128 * 1024
DEFAULT_QUEUE_NAME = "sagemaker-async-local-notifications"
_REGISTRY_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class _Pending:
    inference_id: str
    endpoint_name: str
    succeeded: bool
    output_location: str
    failure_location: str
    request_content_type: str | None
    input_location: str | None
    received: str


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _response_body(data: bytes, content_type: str | None) -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"content": base64.b64encode(data).decode("ascii"), "encoding": "BASE64"}
    if content_type is not None and "json" in content_type.lower():
        return {"content": text, "encoding": "JSON"}
    return {"content": text, "encoding": "TEXT"}


class Notifier:
    """Publishes SageMaker's notification for each registered output or failure object."""

    def __init__(
        self,
        *,
        account_id: str,
        region: str = "us-east-1",
        queue_name: str = DEFAULT_QUEUE_NAME,
        include_response: bool = False,
        wrap: bool = True,
        clock: Any = time.time,
    ) -> None:
        self._account_id = account_id
        self._region = region
        self._queue_name = queue_name
        self._include_response = include_response
        self._wrap = wrap
        self._clock = clock
        self._pending: dict[str, _Pending] = {}
        self._backend: Any = None
        self._changed = asyncio.Event()
        self.queue_url: str | None = None
        self.published = 0

    def start(self, base_url: str) -> str:
        """Create the queue in moto's SQS; returns its URL on our port."""
        from moto.sqs.models import sqs_backends

        self._backend = sqs_backends[self._account_id][self._region]
        _check_retention_cheaply(self._backend)
        self._backend.create_queue(self._queue_name)
        self.queue_url = f"{base_url}/{self._account_id}/{self._queue_name}"
        return self.queue_url

    def register(
        self,
        *,
        inference_id: str,
        endpoint_name: str,
        output_location: str,
        failure_location: str,
        content_type: str | None,
        input_location: str | None,
    ) -> None:
        """Remember a request, so that its output or failure object is announced."""
        if len(self._pending) >= _REGISTRY_LIMIT:
            self._pending.clear()  # a leak guard only: objects of forgotten requests go unannounced
        received = _iso(self._clock())
        for location, succeeded in ((output_location, True), (failure_location, False)):
            self._pending[location] = _Pending(
                inference_id=inference_id,
                endpoint_name=endpoint_name,
                succeeded=succeeded,
                output_location=output_location,
                failure_location=failure_location,
                request_content_type=content_type,
                input_location=input_location,
                received=received,
            )

    def written(self, uri: str, data: bytes, content_type: str) -> None:
        pending = self._pending.pop(uri, None)
        if pending is None:
            return
        other = pending.failure_location if pending.succeeded else pending.output_location
        self._pending.pop(other, None)
        self.publish(self.notification(pending, data, content_type))

    def notification(self, pending: _Pending, data: bytes, content_type: str) -> dict[str, Any]:
        request: dict[str, Any] = {"endpointName": pending.endpoint_name}
        if pending.request_content_type is not None:
            request["contentType"] = pending.request_content_type
        if pending.input_location is not None:
            request["inputLocation"] = pending.input_location
        response: dict[str, Any] = {"contentType": content_type}
        document: dict[str, Any] = {
            "awsRegion": self._region,
            "eventTime": _iso(self._clock()),
            "receivedTime": pending.received,
            "invocationStatus": "Completed" if pending.succeeded else "Failed",
        }
        if pending.succeeded:
            response["outputLocation"] = pending.output_location
        else:
            response["failureLocation"] = pending.failure_location
            document["failureReason"] = data[:1024].decode("utf-8", errors="replace")
        document["requestParameters"] = request
        document["responseParameters"] = response
        document["inferenceId"] = pending.inference_id
        document["eventVersion"] = "1.0"
        document["eventSource"] = "aws:sagemaker"
        document["eventName"] = "InferenceResult"
        if self._include_response and len(data) <= MAX_INCLUDED_BODY:
            document["responseBody"] = _response_body(data, content_type)
        return document

    def publish(self, notification: dict[str, Any]) -> None:
        """Put one notification on the queue, SNS-wrapped (or raw)."""
        body = json.dumps(notification)
        if self._wrap:
            succeeded = notification.get("invocationStatus") == "Completed"
            topic = "SuccessTopic" if succeeded else "ErrorTopic"
            body = json.dumps(
                {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "TopicArn": f"arn:aws:sns:{self._region}:{self._account_id}:{topic}",
                    "Message": body,
                    "Timestamp": _iso(self._clock()),
                    "SignatureVersion": "1",
                    "Signature": "local",
                    "SigningCertURL": "",
                    "UnsubscribeURL": "",
                }
            )
        try:
            self._enqueue(body)
        except Exception:  # the queue was deleted, moto refused: the object is still in S3
            logger.warning("local endpoint: could not publish a notification", exc_info=True)
            return
        self.published += 1
        self._changed.set()

    def _enqueue(self, body: str) -> None:
        """Put one message on the queue, in time independent of the queue's depth.

        moto's ``send_message`` reads every attribute of the queue to learn whether it
        deduplicates, and so counts its visible messages, one clock read each: with nobody
        reading the queue (a client polling S3 instead) publishing 10,000 notifications
        took minutes of this server's event loop, and its HEADs waited behind them. Our
        queue is a standard queue without delay, so the message is appended as moto's
        ``send_message`` would after its checks; anything else (a FIFO or delaying queue,
        a body over SQS's limit) still goes through ``send_message``.
        """
        queue = self._backend.get_queue(self._queue_name)
        try:
            from moto.sqs.constants import MAXIMUM_MESSAGE_LENGTH
            from moto.sqs.models import Message
        except ImportError:  # another moto: its own way, however slow
            self._backend.send_message(self._queue_name, body)
            return
        if (
            getattr(queue, "fifo_queue", True)
            or getattr(queue, "delay_seconds", 1)
            or len(body.encode()) > MAXIMUM_MESSAGE_LENGTH
        ):
            self._backend.send_message(self._queue_name, body)
            return
        message = Message(str(uuid.uuid4()), body)
        message.mark_sent()
        queue.add_message(message)

    async def handle_sqs(self, request: Request, backend: S3Backend) -> Response:
        """An SQS request for moto; long polls are waited out here, on the event loop.

        moto would wait out ``WaitTimeSeconds`` in one of its threads, deaf to a client that
        went away and holding up shutdown; here the poll is sent with ``WaitTimeSeconds`` 0
        and repeated when something was published or released (or each second, for messages
        whose visibility timeout ran out), until messages come or the time is up.
        """
        if request.header("x-amz-target") != _RECEIVE_TARGET:
            response = await backend.handle(request)
            self._changed.set()  # a release may have made messages visible
            return response
        try:
            document = json.loads(request.body)
            wait = int(document.get("WaitTimeSeconds") or 0)
        except (ValueError, TypeError, AttributeError):
            return await backend.handle(request)
        if wait <= 0:
            return await backend.handle(request)
        document["WaitTimeSeconds"] = 0
        once = dataclasses.replace(request, body=json.dumps(document).encode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, 20)
        while True:
            self._changed.clear()
            response = await backend.handle(once)
            remaining = deadline - loop.time()
            if response.status != 200 or remaining <= 0 or _has_messages(response.body):
                return response
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(1.0, remaining))


_RECEIVE_TARGET = b"AmazonSQS.ReceiveMessage"


def _check_retention_cheaply(backend: Any) -> None:
    """Make moto's per-message retention check read one attribute, not all of them.

    moto's ``receive_message`` checks every message it returns against the queue's
    retention period through ``get_queue_attributes``, which builds the whole attribute
    map three times, counting the queue's visible, delayed and in-flight messages with
    two clock reads each: a receive of 10 messages from a queue 10,000 deep took about a
    second, and the notifications of a busy endpoint arrived a minute late. The same rule,
    from the queue's own ``message_retention_period``; if moto has no such attribute (an
    other version), its own check stays.
    """
    cls = type(backend)
    original = getattr(cls, "is_message_valid_based_on_retention_period", None)
    if original is None or getattr(backend, "_sagemaker_async_cheap_retention", False):
        return

    def is_valid(queue_name: str, message: Any) -> bool:
        queue = backend.get_queue(queue_name)
        period = getattr(queue, "message_retention_period", None)
        sent = getattr(message, "sent_timestamp", None)
        if period is None or sent is None:
            return bool(original(backend, queue_name, message))
        return bool(int(period) + sent / 1000 > time.time())

    backend.is_message_valid_based_on_retention_period = is_valid
    backend._sagemaker_async_cheap_retention = True


def is_sqs(request: Request) -> bool:
    target = request.header("x-amz-target")
    return target is not None and target.startswith(b"AmazonSQS.")


def is_long_poll(request: Request) -> bool:
    """ReceiveMessage: answered only after waiting, so abandoned if the client goes away."""
    return request.header("x-amz-target") == _RECEIVE_TARGET


def _has_messages(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return True  # not ours to judge: hand it back
    return not isinstance(document, dict) or bool(document.get("Messages"))


class NotifyingStorage:
    """A ``Storage`` that tells the notifier about every object it wrote."""

    def __init__(self, inner: Storage, notifier: Notifier) -> None:
        self._inner = inner
        self._notifier = notifier

    async def read(self, uri: str) -> bytes:
        return await self._inner.read(uri)

    async def write(self, uri: str, data: bytes, content_type: str) -> None:
        await self._inner.write(uri, data, content_type)
        self._notifier.written(uri, data, content_type)

    async def ensure_bucket(self, bucket: str) -> None:
        await self._inner.ensure_bucket(bucket)

    async def aclose(self) -> None:
        await self._inner.aclose()
