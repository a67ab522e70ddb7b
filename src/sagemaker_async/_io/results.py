"""Waiting for an async inference's result: there is no status API, only S3 objects.

The service writes the output object at OutputLocation, or the failure object at
FailureLocation; polling S3 well is the whole job. So:

- one task watches both objects, HEAD requests sent together, and nothing else runs in
  the background: cancelling the caller cancels (and awaits) the in-flight requests;
- 404 means "not yet", and so does an object older than the invocation (the freshness
  rule of ``_protocol.freshness``: a reused InferenceId or Filename leaves the last run's objects
  at the same keys);
- weather does not end a wait: 5xx, throttling, refused or reset connections and
  timeouts are answered like "not yet", with the schedule's backoff, until the deadline.
  The HEADs are sent once each (no per-request retries, no retry quota: the quota is for
  invokes and uploads). A 403 is raised at once as ``AccessDeniedError`` (never turned
  into a timeout: the SageMaker SDK's "inference could still be running" for a missing
  permission is the mistake this avoids), and so is any other 4xx;
- all waits of a client sleep on one timer heap and share a bounded number of looks in
  flight (``.schedule``), so thousands of waits neither flood the pool nor starve invokes;
- when many waits look on one S3 prefix, the prefix is watched (``.looks``): listed on
  its own cadence, each listing answering every wait on it, so those waits send nothing
  and are woken when their object appears, not at their next scheduled look;
- the delay grows from ``poll_interval`` by half each time up to a cap, with jitter so a
  fleet of waiters started together does not poll in lockstep; the last sleep is cut to end
  at the deadline and one last poll made there.

Decisions (``decide``, ``PollSchedule``) are pure; ``ResultWaiter`` is the small loop of I/O
around them, with its clock, sleep and random source injectable for tests.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx

from .._models import AsyncInvocation, InferenceResult
from .._protocol.freshness import Outcome, decide_fresh
from .._protocol.retry import RetryPolicy
from .._protocol.s3 import S3Location, parse_s3_uri
from ..errors import (
    AccessDeniedError,
    InferenceFailedError,
    ParamValidationError,
    ResultTooLargeError,
    ServiceError,
    TransportError,
    WaitTimeoutError,
)
from .looks import Interest, Lister, WatchedPrefixes
from .s3_objects import ObjectHead, object_head
from .schedule import PollScheduler, nap, resolve
from .streams import read_body, too_large

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "MAX_POLL_INTERVAL",
    "ObjectReader",
    "Outcome",
    "PollSchedule",
    "ResultWaiter",
    "decide",
    "gather_or_cancel",
    "is_weather",
]

DEFAULT_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 30.0
BACKOFF_FACTOR = 1.5
JITTER = 0.2  # each delay is drawn from (1 - JITTER, 1] times the nominal delay
# How long the poll in flight at the deadline may still take before it is abandoned.
_DEADLINE_GRACE = 1.0
# A failure object is a message for people: more than this is not read whole.
_MAX_FAILURE_BYTES = 1024 * 1024

logger = logging.getLogger("sagemaker_async")

_T = TypeVar("_T")


class ObjectReader(Protocol):
    """The two S3 reads waiting needs (``S3Objects`` in the client, fakes in tests).

    ``head_object`` answers None (no such object), or the object's metadata (``True``
    from a fake: it exists, age unknown); ``open_object`` a GET whose body is unread.
    """

    async def head_object(
        self, location: S3Location, *, retries: bool = True
    ) -> ObjectHead | bool | None: ...

    async def open_object(self, location: S3Location) -> httpx.Response: ...


def decide(output_exists: bool, failure_exists: bool) -> Outcome:
    """The output wins if both exist: it is the answer the caller asked for."""
    return decide_fresh(None, output_exists, failure_exists)


def _seen(head: ObjectHead | bool | None) -> datetime | bool:
    """A HEAD's answer as ``decide_fresh`` takes it: False, True or a Last-Modified."""
    if head is None or head is False:
        return False
    if head is True:
        return True
    return head.last_modified or True


def is_weather(exc: BaseException) -> bool:
    """Whether a failed look should be retried by the wait rather than end it."""
    if isinstance(exc, TransportError):
        cause = exc.__cause__
        return cause is None or RetryPolicy.classify_exception(cause).retry
    if isinstance(exc, ServiceError):
        if isinstance(exc, AccessDeniedError) or exc.status_code == 403:
            return False
        return RetryPolicy.classify_error(exc).retry
    return False


class PollSchedule:
    """Delays between polls: ``poll_interval`` × 1.5ⁿ, capped, each shortened by jitter."""

    __slots__ = ("_cap", "_first", "_random")

    def __init__(
        self,
        poll_interval: float,
        *,
        max_interval: float = MAX_POLL_INTERVAL,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._first = poll_interval
        self._cap = max(max_interval, poll_interval)
        self._random = rng

    def __iter__(self) -> Iterator[float]:
        nominal = self._first
        while True:
            yield nominal * (1.0 - JITTER * self._random())
            nominal = min(self._cap, nominal * BACKOFF_FACTOR)


def check_wait_arguments(timeout: object, poll_interval: object) -> None:
    """``timeout`` None or >= 0 seconds, ``poll_interval`` > 0 seconds: before any I/O."""
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise ParamValidationError(
            f"timeout must be None (wait forever) or a number of seconds >= 0, got {timeout!r}",
            param="timeout",
        )
    if (
        isinstance(poll_interval, bool)
        or not isinstance(poll_interval, (int, float))
        or not math.isfinite(poll_interval)
        or poll_interval <= 0
    ):
        raise ParamValidationError(
            f"poll_interval must be a positive number of seconds, got {poll_interval!r}",
            param="poll_interval",
        )


def locations_of(invocation: object) -> tuple[S3Location, S3Location | None]:
    """The output and failure objects of an ``AsyncInvocation``, validated."""
    if not isinstance(invocation, AsyncInvocation):
        raise ParamValidationError(
            "invocation must be the AsyncInvocation returned by invoke_endpoint_async() or "
            f"submit(), not {type(invocation).__name__}; to read an output by its location "
            "use get_result()",
            param="invocation",
        )
    if invocation.output_location is None:
        raise ParamValidationError(
            f"invocation {invocation.inference_id!r} has no output location to wait for",
            param="invocation",
        )
    output = parse_s3_uri(invocation.output_location, param="invocation.output_location")
    failure = (
        None
        if invocation.failure_location is None
        else parse_s3_uri(invocation.failure_location, param="invocation.failure_location")
    )
    return output, failure


async def gather_or_cancel(*awaitables: Awaitable[_T]) -> list[_T]:
    """``asyncio.gather`` that never leaves a child running (a TaskGroup for Python 3.10).

    On the first error, or when the caller is cancelled, the other children are cancelled
    and awaited before the error propagates: no orphaned request keeps a connection busy.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        pending = {task for task in tasks if not task.done()}
        while pending:
            try:
                _, pending = await asyncio.wait(pending)
            except asyncio.CancelledError:
                # Cancelled again while cleaning up: finish cleaning up, then propagate.
                continue
        for task in tasks:  # mark every outcome as retrieved; the first error propagates
            if not task.cancelled():
                task.exception()
        raise


_A = TypeVar("_A")
_B = TypeVar("_B")


async def _both(first: Awaitable[_A], second: Coroutine[Any, Any, _B]) -> tuple[_A, _B]:
    """``gather_or_cancel`` of two, with the first run in the caller's own task.

    One task fewer per look (a look is two HEADs): with thousands of waits, that is a
    measurable share of the client's CPU. The same guarantee: on an error or a
    cancellation, the other request is cancelled and awaited before it propagates.
    """
    task = asyncio.ensure_future(second)
    try:
        result = await first
    except BaseException:
        task.cancel()
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue  # finish cleaning up, then propagate
        if not task.cancelled():
            task.exception()  # retrieved: the first error is the one that propagates
        raise
    return result, await task


class ResultWaiter:
    """Polls S3 for an invocation's output or failure; its seams are attributes."""

    __slots__ = ("clock", "looks", "objects", "random", "scheduler", "sleep")

    def __init__(
        self,
        objects: ObjectReader,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        rng: Callable[[], float] = random.random,
        scheduler: PollScheduler | None = None,
        batched: Lister | None = None,
    ) -> None:
        self.objects = objects
        self.clock = clock
        self.scheduler = scheduler if scheduler is not None else PollScheduler()
        self.sleep = sleep if sleep is not None else self.scheduler.sleep
        self.random = rng
        # Watched prefixes when the reader can list (the client's S3Objects), HEADs otherwise.
        self.looks = (
            None
            if batched is None
            else WatchedPrefixes(batched, self.scheduler, sleep=sleep, monotonic=clock)
        )

    async def get(
        self, location: S3Location, uri: str, max_bytes: int | None = None
    ) -> InferenceResult:
        """The stored object, whole: its bytes as stored, never decoded."""
        response = await self.objects.open_object(location)
        try:
            body = await read_body(response, uri, max_bytes)
        finally:
            await response.aclose()
        head = object_head(response.headers)
        return InferenceResult(
            body=body,
            location=uri,
            content_type=head.content_type,
            content_encoding=head.content_encoding,
        )

    async def poll(
        self, invocation: AsyncInvocation, *, max_bytes: int | None = None
    ) -> InferenceResult | None:
        """One look: the result, ``InferenceFailedError``, or None while pending."""
        output, failure = locations_of(invocation)
        outcome, output_head = await self._look(invocation, output, failure, retries=True)
        if outcome is Outcome.PENDING:
            return None
        await self._raise_failure(invocation, outcome, failure)
        return await self._read_output(invocation, output, output_head, max_bytes)

    async def _look(
        self,
        invocation: AsyncInvocation,
        output: S3Location,
        failure: S3Location | None,
        *,
        retries: bool,
    ) -> tuple[Outcome, ObjectHead | bool | None]:
        """HEAD the output and (when there is one) the failure object, together."""
        head = self.objects.head_object
        if failure is None:
            output_head = await head(output, retries=retries)
            failure_head: ObjectHead | bool | None = None
        else:
            output_head, failure_head = await _both(
                head(output, retries=retries), head(failure, retries=retries)
            )
        outcome = decide_fresh(invocation.submitted_at, _seen(output_head), _seen(failure_head))
        return outcome, output_head

    async def settle(
        self,
        invocation: AsyncInvocation,
        outcome: Outcome,
        output_head: ObjectHead | bool | None,
        max_bytes: int | None = None,
    ) -> InferenceResult:
        """The result a found outcome (a watch's answer) stands for: read, or raised."""
        output, failure = locations_of(invocation)
        await self._raise_failure(invocation, outcome, failure)
        return await self._read_output(invocation, output, output_head, max_bytes)

    async def _raise_failure(
        self, invocation: AsyncInvocation, outcome: Outcome, failure: S3Location | None
    ) -> None:
        """Read the failure object and raise it, when that is the outcome."""
        if outcome is not Outcome.FAILURE:
            return
        assert failure is not None
        assert invocation.failure_location is not None
        response = await self.objects.open_object(failure)
        try:
            body = await read_body(response, invocation.failure_location, _MAX_FAILURE_BYTES)
            text = body.decode("utf-8", errors="replace")
        except ResultTooLargeError as exc:
            text = f"(a failure object of {exc.size:,} bytes or more: read it from S3)"
        finally:
            await response.aclose()
        raise InferenceFailedError(text, failure_location=invocation.failure_location)

    async def _read_output(
        self,
        invocation: AsyncInvocation,
        output: S3Location,
        output_head: ObjectHead | bool | None,
        max_bytes: int | None,
    ) -> InferenceResult:
        uri = invocation.output_location
        assert uri is not None
        if (
            max_bytes is not None
            and isinstance(output_head, ObjectHead)
            and output_head.content_length is not None
            and output_head.content_length > max_bytes
        ):
            raise too_large(uri, output_head.content_length, max_bytes)  # no GET at all
        return await self.get(output, uri, max_bytes)

    async def wait(
        self,
        invocation: AsyncInvocation,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_bytes: int | None = None,
    ) -> InferenceResult:
        """Poll until the output or the failure exists, or the deadline passes.

        The deadline bounds the looking, not the reading: once an object is found it is
        read in full (within the client's HTTP timeout), even past the deadline.
        """
        output_head = await self.wait_for_output(
            invocation, timeout=timeout, poll_interval=poll_interval
        )
        output, _ = locations_of(invocation)
        return await self._read_output(invocation, output, output_head, max_bytes)

    async def wait_for_output(
        self,
        invocation: AsyncInvocation,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> ObjectHead | bool | None:
        """Poll until the output is there (its HEAD returned) or the failure is raised."""
        check_wait_arguments(timeout, poll_interval)
        output, failure = locations_of(invocation)
        deadline = None if timeout is None else self.clock() + timeout
        looks = self.looks
        interest = (
            None
            if looks is None
            else looks.register(output, failure, invocation.submitted_at, poll_interval)
        )
        try:
            return await self._poll_until(
                invocation, output, failure, deadline, timeout, poll_interval, interest
            )
        finally:
            if interest is not None:
                assert looks is not None
                looks.unregister(interest)

    async def _poll_until(
        self,
        invocation: AsyncInvocation,
        output: S3Location,
        failure: S3Location | None,
        deadline: float | None,
        timeout: float | None,
        poll_interval: float,
        interest: Interest | None,
    ) -> ObjectHead | bool | None:
        looks = self.looks
        if interest is not None:
            # Once round the loop first: the waits started with this one register too, and
            # a prefix that many waits look on is watched before any of them sends a HEAD.
            await asyncio.sleep(0)
        output_head: ObjectHead | bool | None
        for delay in PollSchedule(poll_interval, rng=self.random):
            watched = False
            if interest is not None and interest.answer is not None:
                outcome, output_head = interest.answer  # a listing found it
            elif (
                interest is not None
                and looks is not None
                and looks.watched(interest)
                and (deadline is None or self.clock() < deadline)
            ):
                watched = True  # the prefix's listings look for this wait
                outcome, output_head = Outcome.PENDING, None
            else:
                outcome, output_head = await self._own_look(
                    invocation, output, failure, deadline, timeout
                )
                if (
                    outcome is Outcome.PENDING
                    and interest is not None
                    and interest.answer is not None
                ):
                    outcome, output_head = interest.answer  # found while the HEADs flew
            if outcome is Outcome.OUTPUT:
                return output_head
            await self._raise_failure(invocation, outcome, failure)
            now = self.clock()
            if deadline is not None:
                if now >= deadline:
                    raise _timeout(timeout, invocation)
                delay = deadline - now if watched else min(delay, deadline - now)
            elif watched:
                delay = math.inf
            await self._nap(interest, delay)
        raise AssertionError("unreachable: the poll schedule never ends")  # pragma: no cover

    async def _own_look(
        self,
        invocation: AsyncInvocation,
        output: S3Location,
        failure: S3Location | None,
        deadline: float | None,
        timeout: float | None,
    ) -> tuple[Outcome, ObjectHead | bool | None]:
        """The wait's own HEADs, paced; weather is "not yet"."""
        look = self._paced_look(invocation, output, failure)
        try:
            if deadline is None:
                return await look
            return await self._bounded(look, deadline, timeout, invocation)
        except (TransportError, ServiceError) as exc:
            if not is_weather(exc):
                raise
            logger.debug("wait for %s: %s; looking again later", invocation.inference_id, exc)
            return Outcome.PENDING, None

    async def _nap(self, interest: Interest | None, delay: float) -> None:
        """Sleep ``delay`` seconds, or until a listing (or the end of a watch) wakes us."""
        if interest is None:
            await self.sleep(delay)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        interest.wake = functools.partial(resolve, wake)
        injected = None if self.sleep == self.scheduler.sleep else self.sleep
        try:
            await nap(delay, wake, self.scheduler, injected)
        finally:
            interest.wake = None

    async def _paced_look(
        self, invocation: AsyncInvocation, output: S3Location, failure: S3Location | None
    ) -> tuple[Outcome, ObjectHead | bool | None]:
        async with self.scheduler.pace:
            return await self._look(invocation, output, failure, retries=False)

    async def _bounded(
        self,
        look: Awaitable[tuple[Outcome, ObjectHead | bool | None]],
        deadline: float,
        timeout: float | None,
        invocation: AsyncInvocation,
    ) -> tuple[Outcome, ObjectHead | bool | None]:
        """A look that may not outlive the deadline by more than a grace period."""
        budget = max(0.0, deadline - self.clock()) + _DEADLINE_GRACE
        try:
            return await asyncio.wait_for(look, budget)
        except asyncio.TimeoutError:
            raise _timeout(timeout, invocation) from None


def _timeout(timeout: float | None, invocation: AsyncInvocation) -> WaitTimeoutError:
    where = invocation.output_location
    if invocation.failure_location:
        where = f"{where} or {invocation.failure_location}"
    return WaitTimeoutError(
        f"no result for inference {invocation.inference_id!r} after {timeout} s: nothing at "
        f"{where} yet. The inference may still be queued or running: wait again, or raise "
        "timeout (the endpoint's InvocationTimeoutSeconds and RequestTTLSeconds bound it).",
        timeout=timeout,
    )
