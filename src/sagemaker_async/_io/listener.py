"""Waiting on the endpoint's SNS → SQS notifications instead of polling S3.

One listener serves all its waiters with one long poll at a time, so 10,000 waits cost one
ReceiveMessage every 20 s (plus what arrives) instead of thousands of HEAD requests. What
happens to each message received:

- a SageMaker notification for an inference a waiter of this listener expects (same id,
  fresh for that waiter's submission, same output location): the waiter gets it and the
  message is deleted (batched);
- one nobody here expects: held back briefly (its waiter may register a moment later), then
  released to the queue with visibility 0, never deleted: other processes sharing the queue
  may be waiting for it. With an ``async for`` consumer running, it is yielded to it instead
  and deleted once yielded;
- a duplicate of one already delivered (SQS is at-least-once): deleted;
- anything else (not a SageMaker notification, truncated, malformed): left alone (it comes
  back after its visibility timeout for whoever understands it) and logged once.

S3 stays the source of truth: each waiter still checks it every ``fallback_poll_interval``
seconds, at its deadline, and on the normal polling schedule while SQS is failing. No task
outlives the listener, and nothing it holds stays invisible beyond the visibility timeout
given on receive: closing releases what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from .._models import AsyncInvocation, InferenceResult
from .._protocol.endpoints import resolve_sqs_url
from .._protocol.notifications import InferenceEvent, is_fresh, parse_notification
from .._protocol.requests import Request
from .._protocol.s3 import parse_s3_uri
from .._protocol.sigv4 import SigV4Signer
from .looks import Interest
from .results import (
    DEFAULT_POLL_INTERVAL,
    PollSchedule,
    ResultWaiter,
    _timeout,
    check_wait_arguments,
    is_weather,
    locations_of,
)

if TYPE_CHECKING:
    from .sender import SignedSender
from .._protocol.sqs import (
    MAX_BATCH,
    MAX_WAIT_SECONDS,
    BatchResult,
    SqsMessage,
    batch_body,
    get_queue_attributes_body,
    parse_batch,
    parse_queue_attributes,
    parse_receive,
    parse_sqs_error,
    receive_body,
    sqs_headers,
)
from ..errors import (
    AccessDeniedError,
    InferenceFailedError,
    ParamValidationError,
    SageMakerAsyncError,
    ServiceError,
)

__all__ = ["DEFAULT_FALLBACK_POLL_INTERVAL", "Listener", "SqsQueue", "check_queue_url"]

logger = logging.getLogger("sagemaker_async")

DEFAULT_FALLBACK_POLL_INTERVAL = 60.0
VISIBILITY_TIMEOUT = 30  # seconds a received message stays ours before SQS shows it again
HOLD_SECONDS = 2.0  # how long a message nobody here expects is held before its release
GATHER_SECONDS = 0.1  # pause after a partial batch, so the next receive takes more at once
_MEMORY = 10_000  # delivered notifications remembered to recognise duplicates
_FOREIGN_MEMORY = 1024
_MAX_TROUBLE_BACKOFF = 20.0
_JITTER = 0.2


def check_queue_url(queue_url: object) -> str:
    if not isinstance(queue_url, str) or not queue_url.startswith(("https://", "http://")):
        raise ParamValidationError(
            "queue_url must be an SQS queue URL such as "
            "'https://sqs.us-east-1.amazonaws.com/123456789012/my-queue', "
            f"got {queue_url!r}",
            param="queue_url",
        )
    if any(char.isspace() or not char.isprintable() for char in queue_url):
        raise ParamValidationError(
            "queue_url contains whitespace or control characters", param="queue_url"
        )
    return queue_url


def _check_interval(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ParamValidationError(
            f"fallback_poll_interval must be a positive number of seconds, got {value!r}",
            param="fallback_poll_interval",
        )
    return float(value)


def _parse_failure(response: httpx.Response) -> ServiceError:
    return parse_sqs_error(response.status_code, response.headers, response.content)


class SqsQueue:
    """The four SQS operations on one queue, through the client's signed, retried send."""

    __slots__ = ("_host", "_path", "_sender", "_signer", "_url", "queue_url")

    def __init__(
        self,
        sender: SignedSender,
        queue_url: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        use_fips: bool = False,
        use_dualstack: bool = False,
    ) -> None:
        base = endpoint_url or resolve_sqs_url(
            region, use_fips=use_fips, use_dualstack=use_dualstack
        )
        # botocore posts to the endpoint's path, "/" when it has none.
        url = httpx.URL(base if httpx.URL(base).path not in ("", "/") else base.rstrip("/") + "/")
        self._url = str(url)
        self._host = url.netloc.decode("ascii")
        self._path = url.raw_path.decode("ascii").partition("?")[0]
        self._signer = SigV4Signer(region, "sqs")
        self._sender = sender
        self.queue_url = queue_url

    async def _call(self, operation: str, body: bytes) -> httpx.Response:
        request = Request(
            operation,
            "POST",
            self._url,
            self._host,
            sqs_headers(operation),
            hashlib.sha256(body).hexdigest(),
            self._path,
        )
        return await self._sender.send(
            request, signer=self._signer, parse_failure=_parse_failure, content=body
        )

    async def attributes(self) -> dict[str, str]:
        response = await self._call("GetQueueAttributes", get_queue_attributes_body(self.queue_url))
        return parse_queue_attributes(response.status_code, response.headers, response.content)

    async def receive(self, *, wait_seconds: int, visibility_timeout: int) -> list[SqsMessage]:
        response = await self._call(
            "ReceiveMessage",
            receive_body(
                self.queue_url, wait_seconds=wait_seconds, visibility_timeout=visibility_timeout
            ),
        )
        messages, unusable = parse_receive(response.status_code, response.headers, response.content)
        if unusable:
            logger.warning("SQS %s: %d unusable message entries ignored", self.queue_url, unusable)
        return messages

    async def delete(self, handles: list[str]) -> BatchResult:
        response = await self._call("DeleteMessageBatch", batch_body(self.queue_url, handles))
        return parse_batch(response.status_code, response.headers, response.content)

    async def release(self, handles: list[str]) -> BatchResult:
        response = await self._call(
            "ChangeMessageVisibilityBatch",
            batch_body(self.queue_url, handles, visibility_timeout=0),
        )
        return parse_batch(response.status_code, response.headers, response.content)


@dataclass(slots=True)
class _Waiter:
    invocation: AsyncInvocation
    wake: asyncio.Event
    event: InferenceEvent | None = None
    closed: bool = False

    def accepts(self, event: InferenceEvent) -> bool:
        """The event is this run's outcome: fresh, and for the locations it waits on."""
        if not is_fresh(event, self.invocation.submitted_at):
            return False
        if event.succeeded:
            return event.output_location == self.invocation.output_location
        if event.failure_location is not None and self.invocation.failure_location is not None:
            return event.failure_location == self.invocation.failure_location
        return event.inference_id == self.invocation.inference_id

    def filed_under(self) -> list[str]:
        """Where the listener files it: by inference id and by the objects it waits on
        (an invocation named only by its locations has no real id to go by)."""
        invocation = self.invocation
        keys = [f"id:{invocation.inference_id}", f"at:{invocation.output_location}"]
        if invocation.failure_location is not None:
            keys.append(f"at:{invocation.failure_location}")
        return keys


def _event_keys(event: InferenceEvent) -> list[str]:
    keys = [f"id:{event.inference_id}"]
    keys += [f"at:{at}" for at in (event.output_location, event.failure_location) if at]
    return keys


@dataclass(slots=True)
class _Held:
    message: SqsMessage
    event: InferenceEvent
    timer: asyncio.TimerHandle | None = None


_CLOSED: Any = object()


class Listener:
    """``async with client.listen(queue_url) as listener``: waits served by notifications."""

    def __init__(
        self,
        queue: SqsQueue,
        results: ResultWaiter,
        *,
        fallback_poll_interval: float = DEFAULT_FALLBACK_POLL_INTERVAL,
        wait_seconds: int = MAX_WAIT_SECONDS,
        check_open: Callable[[], None] = lambda: None,
    ) -> None:
        self._queue = queue
        self._results = results
        self._fallback = _check_interval(fallback_poll_interval)
        self._wait_seconds = wait_seconds
        self._check_open = check_open
        # Seams for tests.
        self._hold_seconds = HOLD_SECONDS
        self._gather_seconds = GATHER_SECONDS
        self._visibility_timeout = VISIBILITY_TIMEOUT
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self._random: Callable[[], float] = random.random

        self._state = "new"
        self._waiters: dict[str, list[_Waiter]] = {}
        self._held: dict[str, _Held] = {}  # by message id
        self._held_under: dict[str, set[str]] = {}  # event key -> ids of held messages
        self._delivered: OrderedDict[tuple[str, str, bool], None] = OrderedDict()
        self._foreign_logged: set[str] = set()
        self._to_delete: list[str] = []
        self._to_release: list[str] = []
        self._events: asyncio.Queue[tuple[InferenceEvent, SqsMessage]] = asyncio.Queue()
        self._iterators = 0
        self._degraded = False
        self._poller: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Requests sent, by operation: for benchmarks and tests.
        self.requests: dict[str, int] = {}

    @property
    def queue_url(self) -> str:
        return self._queue.queue_url

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Listener:
        if self._state != "new":
            raise RuntimeError("a listener can be entered once; call client.listen() again")
        self._check_open()
        self._state = "starting"
        await self._count(self._queue.attributes(), "GetQueueAttributes")
        self._state = "open"
        self._poller = asyncio.ensure_future(self._poll_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop polling, release what is held, delete what was delivered; no task is left."""
        if self._state == "closed":
            return
        self._state = "closed"
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        for message_id in list(self._held):
            held = self._unhold(message_id)
            assert held is not None
            self._to_release.append(held.message.receipt_handle)
        while not self._events.empty():
            _, message = self._events.get_nowait()
            if message is not _CLOSED:
                self._to_release.append(message.receipt_handle)
        for _ in range(self._iterators):
            self._events.put_nowait((_CLOSED, _CLOSED))
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.closed = True
                waiter.wake.set()
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            await asyncio.gather(flusher, return_exceptions=True)
        await self._flush()

    # -- the one long poll -------------------------------------------------------------------

    async def _count(self, call: Awaitable[Any], operation: str) -> Any:
        self.requests[operation] = self.requests.get(operation, 0) + 1
        return await call

    async def _poll_loop(self) -> None:
        failures = 0
        while True:
            try:
                messages = await self._count(
                    self._queue.receive(
                        wait_seconds=self._wait_seconds,
                        visibility_timeout=self._visibility_timeout,
                    ),
                    "ReceiveMessage",
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not self._degraded:
                    logger.warning(
                        "SQS %s: ReceiveMessage failed (%s); waits fall back to polling S3 "
                        "until the queue answers again",
                        self.queue_url,
                        exc,
                    )
                    self._set_degraded(True)
                delay = min(_MAX_TROUBLE_BACKOFF, 0.5 * 2 ** min(failures, 10))
                await self._sleep(delay * (0.5 + 0.5 * self._random()))
                continue
            if self._degraded:
                logger.warning("SQS %s: answering again; waits use notifications", self.queue_url)
                self._set_degraded(False)
            failures = 0
            for message in messages:
                try:
                    self._on_message(message)
                except Exception:  # a bug of ours must not end the listening for everyone
                    logger.exception(
                        "SQS %s: message %s could not be handled; left on the queue",
                        self.queue_url,
                        message.message_id,
                    )
            if 0 < len(messages) < MAX_BATCH and self._gather_seconds:
                # Results are trickling in: let a few more gather, so one receive (and one
                # delete) serves ten of them rather than one; a tenth of a second of latency
                # for a tenth of the requests. A full batch or an empty poll goes on at once.
                await self._sleep(self._gather_seconds)

    def _set_degraded(self, degraded: bool) -> None:
        self._degraded = degraded
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake.set()

    def _on_message(self, message: SqsMessage) -> None:
        event = parse_notification(message.body, message.message_id)
        if event is None:
            if message.message_id not in self._foreign_logged:
                if len(self._foreign_logged) >= _FOREIGN_MEMORY:
                    self._foreign_logged.clear()
                self._foreign_logged.add(message.message_id)
                logger.warning(
                    "SQS %s: message %s is not a SageMaker async-inference notification; "
                    "left on the queue",
                    self.queue_url,
                    message.message_id,
                )
            return
        if _key(event) in self._delivered:
            self._delete(message)  # a duplicate of what was delivered already
            return
        self._unhold(message.message_id)  # received again: the new receipt handle counts
        if self._deliver(event, message):
            return
        held = _Held(message, event)
        held.timer = asyncio.get_running_loop().call_later(
            self._hold_seconds, self._expire, message.message_id, message.receipt_handle
        )
        self._held[message.message_id] = held
        for key in _event_keys(event):
            self._held_under.setdefault(key, set()).add(message.message_id)

    def _unhold(self, message_id: str) -> _Held | None:
        """Take a held message back (its timer stopped), or None."""
        held = self._held.pop(message_id, None)
        if held is None:
            return None
        if held.timer is not None:
            held.timer.cancel()
        for key in _event_keys(held.event):
            ids = self._held_under.get(key)
            if ids is not None:
                ids.discard(message_id)
                if not ids:
                    del self._held_under[key]
        return held

    def _deliver(self, event: InferenceEvent, message: SqsMessage) -> bool:
        candidates = {id(w): w for key in _event_keys(event) for w in self._waiters.get(key, ())}
        waiters = [w for w in candidates.values() if w.accepts(event)]
        if waiters:
            for waiter in waiters:
                waiter.event = event
                waiter.wake.set()
            self._remember(event)
            self._delete(message)
            return True
        if self._iterators:
            self._events.put_nowait((event, message))
            return True
        return False

    def _expire(self, message_id: str, receipt_handle: str) -> None:
        held = self._held.get(message_id)
        if held is not None and held.message.receipt_handle == receipt_handle:
            self._unhold(message_id)
            self._release(held.message)

    def _remember(self, event: InferenceEvent) -> None:
        self._delivered[_key(event)] = None
        if len(self._delivered) > _MEMORY:
            self._delivered.popitem(last=False)

    # -- deletes and releases, batched -------------------------------------------------------

    def _delete(self, message: SqsMessage) -> None:
        self._to_delete.append(message.receipt_handle)
        self._kick()

    def _release(self, message: SqsMessage) -> None:
        self._to_release.append(message.receipt_handle)
        self._kick()

    def _kick(self) -> None:
        if self._state == "closed":
            return  # aclose flushes
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Send the pending deletes and releases, ten to a request; failures only logged:
        a message not deleted comes back and is recognised as a duplicate, one not released
        shows again after its visibility timeout."""
        await asyncio.sleep(0)  # let the rest of this batch of messages join the requests
        while self._to_delete or self._to_release:
            for pending, operation in (
                (self._to_delete, "DeleteMessageBatch"),
                (self._to_release, "ChangeMessageVisibilityBatch"),
            ):
                if not pending:
                    continue
                handles = pending[:MAX_BATCH]
                del pending[:MAX_BATCH]
                call = (
                    self._queue.delete(handles)
                    if operation == "DeleteMessageBatch"
                    else self._queue.release(handles)
                )
                try:
                    result = await self._count(call, operation)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("SQS %s: %s failed: %s", self.queue_url, operation, exc)
                    continue
                for entry_id, code, _ in result.failed:
                    logger.debug(
                        "SQS %s: %s entry %s failed: %s", self.queue_url, operation, entry_id, code
                    )

    # -- waiting -----------------------------------------------------------------------------

    async def wait(
        self, invocation: AsyncInvocation, *, timeout: float | None = None
    ) -> InferenceResult:
        """The result of ``invocation``, as ``wait_for_result`` gives it, from its notification.

        The body comes from the notification when the endpoint included it, else from one
        GET of the output. S3 is checked every ``fallback_poll_interval`` seconds, at the
        deadline, and on the usual polling schedule while SQS is failing, so a lost
        notification costs time, never the result. Cancelling it leaves nothing behind.
        """
        check_wait_arguments(timeout, DEFAULT_POLL_INTERVAL)
        output, failure = locations_of(invocation)  # validated before anything else
        if self._state != "open":
            raise RuntimeError("use the listener inside 'async with client.listen(...)'")
        deadline = None if timeout is None else self._clock() + timeout
        waiter = _Waiter(invocation, asyncio.Event())
        self._register(waiter)
        # Jittered, so thousands of waits started together do not check S3 in one burst.
        first_check = self._fallback * (1.0 - _JITTER * self._random())
        next_check = self._clock() + first_check
        # The fallback checks join the client's watched prefixes: with thousands of waits
        # on one output prefix, one listing per fallback interval checks them all.
        looks = self._results.looks
        interest: Interest | None = None
        if looks is not None:
            interest = looks.register(
                output, failure, invocation.submitted_at, self._fallback, first_check
            )
            interest.wake = waiter.wake.set
        registered = interest
        schedule = iter(PollSchedule(DEFAULT_POLL_INTERVAL, rng=self._random))
        polling = False  # True once the notification was spent: S3 is where to look
        try:
            while True:
                if waiter.event is not None:
                    try:
                        return await self._outcome(invocation, waiter.event)
                    except SageMakerAsyncError as exc:
                        if not is_weather(exc):
                            raise
                        # The notification is spent; S3 still has the answer: look there.
                        logger.info(
                            "reading the result of %s failed (%s); looking in S3 again",
                            invocation.inference_id,
                            exc,
                        )
                        waiter.event = None
                        polling = True
                        next_check = self._clock() + min(next(schedule), self._fallback)
                if waiter.closed:
                    raise RuntimeError("the listener was closed while waiting")
                if interest is not None and interest.answer is not None:
                    result = await self._settle(invocation, interest)  # a listing found it
                    if result is not None:
                        return result
                    interest = None  # weather while reading it: S3 checks of our own
                now = self._clock()
                if deadline is not None and now >= deadline:
                    result = await self._check_s3(invocation)
                    if result is not None:
                        return result
                    raise _timeout(timeout, invocation)
                if now >= next_check:
                    watched = (
                        interest is not None
                        and looks is not None
                        and not (self._degraded or polling)
                        and looks.watched(interest)
                    )
                    # A watched prefix is listed for us at least every fallback interval.
                    result = None if watched else await self._check_s3(invocation)
                    if result is not None:
                        return result
                    now = self._clock()
                    next_check = now + (
                        min(next(schedule), self._fallback)
                        if self._degraded or polling
                        else self._fallback
                    )
                elif self._degraded and not polling:
                    next_check = min(next_check, now + min(next(schedule), self._fallback))
                until = next_check if deadline is None else min(next_check, deadline)
                waiter.wake.clear()
                if (
                    waiter.event is not None
                    or waiter.closed
                    or (interest is not None and interest.answer is not None)
                ):
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter.wake.wait(), max(0.0, until - now))
        finally:
            self._unregister(waiter)
            if registered is not None:
                assert looks is not None
                looks.unregister(registered)

    def _register(self, waiter: _Waiter) -> None:
        for key in waiter.filed_under():
            self._waiters.setdefault(key, []).append(waiter)
        # Only held messages filed under one of its keys can be its (an index, not a scan:
        # thousands of waits may register while thousands of messages are held).
        message_ids = {m for key in waiter.filed_under() for m in self._held_under.get(key, ())}
        for message_id in message_ids:
            held = self._held[message_id]
            if waiter.accepts(held.event):
                self._unhold(message_id)
                self._deliver(held.event, held.message)

    def _unregister(self, waiter: _Waiter) -> None:
        for key in waiter.filed_under():
            waiters = self._waiters.get(key)
            if waiters is None:
                continue
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                del self._waiters[key]

    async def _settle(
        self, invocation: AsyncInvocation, interest: Interest
    ) -> InferenceResult | None:
        """The result a watch's listing found, read (or raised); None on weather."""
        assert interest.answer is not None
        try:
            return await self._results.settle(invocation, *interest.answer)
        except SageMakerAsyncError as exc:
            if not is_weather(exc):
                raise
            logger.info(
                "reading the result of %s failed (%s); looking in S3 again",
                invocation.inference_id,
                exc,
            )
            return None

    async def _check_s3(self, invocation: AsyncInvocation) -> InferenceResult | None:
        try:
            return await self._results.poll(invocation)
        except SageMakerAsyncError as exc:
            if not is_weather(exc):  # a 403, another 4xx, the failure itself: the outcome
                raise
            logger.info(
                "S3 check for inference %s failed (%s); trying again later",
                invocation.inference_id,
                exc,
            )
            return None

    async def _outcome(self, invocation: AsyncInvocation, event: InferenceEvent) -> InferenceResult:
        if event.succeeded:
            uri = invocation.output_location
            assert uri is not None  # locations_of checked it
            if event.body is not None:
                return InferenceResult(
                    body=event.body, location=uri, content_type=event.content_type
                )
            return await self._results.get(parse_s3_uri(uri), uri)
        text: str | None = None
        if event.body is not None:
            text = event.body.decode("utf-8", errors="replace")
        elif invocation.failure_location is not None:
            try:
                failure = await self._results.get(
                    parse_s3_uri(invocation.failure_location), invocation.failure_location
                )
                text = failure.body.decode("utf-8", errors="replace")
            except AccessDeniedError:
                raise
            except SageMakerAsyncError as exc:
                logger.info("reading failure object of %s failed: %s", invocation.inference_id, exc)
        if text is None:
            text = event.failure_reason or "the inference failed (no reason was given)"
        raise InferenceFailedError(text, failure_location=invocation.failure_location)

    # -- every notification ------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[InferenceEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[InferenceEvent]:
        if self._state != "open":
            raise RuntimeError("iterate the listener inside 'async with client.listen(...)'")
        self._iterators += 1
        for message_id in list(self._held):
            held = self._unhold(message_id)
            assert held is not None
            self._events.put_nowait((held.event, held.message))
        try:
            while True:
                event, message = await self._events.get()
                if event is _CLOSED:
                    return
                if _key(event) in self._delivered:
                    self._delete(message)
                    continue
                self._remember(event)
                self._delete(message)
                yield event
        finally:
            self._iterators -= 1
            if not self._iterators:
                while not self._events.empty():
                    _, message = self._events.get_nowait()
                    if message is not _CLOSED:
                        self._release(message)


def _key(event: InferenceEvent) -> tuple[str, str, bool]:
    return (event.inference_id, event.event_time.isoformat(), event.succeeded)
