"""Waiting for an async inference's result: there is no status API, only S3 objects.

The service writes the output object at OutputLocation, or the failure object at
FailureLocation; polling S3 well is the whole job. So:

- one task watches both objects, HEAD requests sent together, and nothing else runs in
  the background: cancelling the caller cancels (and awaits) the in-flight requests;
- 404 means "not yet"; a 403 is raised at once as ``AccessDeniedError`` (never turned
  into a timeout: the SageMaker SDK's "inference could still be running" for a missing
  permission is the mistake this avoids);
- the delay grows from ``poll_interval`` by half each time up to a cap, with jitter so a
  fleet of waiters started together does not poll in lockstep; the last sleep is cut to end
  at the deadline and one last poll made there.

Decisions (``decide``, ``PollSchedule``) are pure; ``ResultWaiter`` is the small loop of I/O
around them, with its clock, sleep and random source injectable for tests.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from ._models import AsyncInvocation, InferenceResult
from ._s3 import S3Location, parse_s3_uri
from .errors import InferenceFailedError, ParamValidationError, WaitTimeoutError

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "MAX_POLL_INTERVAL",
    "ObjectReader",
    "Outcome",
    "PollSchedule",
    "ResultWaiter",
    "decide",
    "gather_or_cancel",
]

DEFAULT_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 30.0
BACKOFF_FACTOR = 1.5
JITTER = 0.2  # each delay is drawn from (1 - JITTER, 1] times the nominal delay
# How long the poll in flight at the deadline may still take before it is abandoned.
_DEADLINE_GRACE = 1.0

_T = TypeVar("_T")


class ObjectReader(Protocol):
    """The two S3 reads waiting needs (``S3Objects`` in the client, fakes in tests)."""

    async def head_object(self, location: S3Location) -> bool: ...

    async def get_object(self, location: S3Location) -> tuple[bytes, str | None]: ...


class Outcome(enum.Enum):
    PENDING = "pending"
    OUTPUT = "output"
    FAILURE = "failure"


def decide(output_exists: bool, failure_exists: bool) -> Outcome:
    """The output wins if both exist: it is the answer the caller asked for."""
    if output_exists:
        return Outcome.OUTPUT
    if failure_exists:
        return Outcome.FAILURE
    return Outcome.PENDING


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


class ResultWaiter:
    """Polls S3 for an invocation's output or failure; its seams are attributes."""

    __slots__ = ("clock", "objects", "random", "sleep")

    def __init__(
        self,
        objects: ObjectReader,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.objects = objects
        self.clock = clock
        self.sleep = sleep
        self.random = rng

    async def get(self, location: S3Location, uri: str) -> InferenceResult:
        body, content_type = await self.objects.get_object(location)
        return InferenceResult(body=body, location=uri, content_type=content_type)

    async def poll(self, invocation: AsyncInvocation) -> InferenceResult | None:
        """One look: the result, ``InferenceFailedError``, or None while pending."""
        output, failure = locations_of(invocation)
        return await self._fetch(invocation, await self._look(output, failure), output, failure)

    async def _look(self, output: S3Location, failure: S3Location | None) -> Outcome:
        """HEAD the output and (when there is one) the failure object, together."""
        if failure is None:
            return decide(await self.objects.head_object(output), False)
        output_exists, failure_exists = await gather_or_cancel(
            self.objects.head_object(output), self.objects.head_object(failure)
        )
        return decide(output_exists, failure_exists)

    async def _fetch(
        self,
        invocation: AsyncInvocation,
        outcome: Outcome,
        output: S3Location,
        failure: S3Location | None,
    ) -> InferenceResult | None:
        """GET what the look found: the result, the failure raised, or None."""
        if outcome is Outcome.OUTPUT:
            assert invocation.output_location is not None
            return await self.get(output, invocation.output_location)
        if outcome is Outcome.FAILURE:
            assert failure is not None
            body, _ = await self.objects.get_object(failure)
            raise InferenceFailedError(
                body.decode("utf-8", errors="replace"),
                failure_location=invocation.failure_location,
            )
        return None

    async def wait(
        self,
        invocation: AsyncInvocation,
        *,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> InferenceResult:
        """Poll until the output or the failure exists, or the deadline passes.

        The deadline bounds the looking, not the reading: once an object is found it is
        read in full (within the client's HTTP timeout), even past the deadline.
        """
        check_wait_arguments(timeout, poll_interval)
        output, failure = locations_of(invocation)
        deadline = None if timeout is None else self.clock() + timeout
        for delay in PollSchedule(poll_interval, rng=self.random):
            look = self._look(output, failure)
            if deadline is None:
                outcome = await look
            else:
                outcome = await self._bounded(look, deadline, timeout, invocation)
            result = await self._fetch(invocation, outcome, output, failure)
            if result is not None:
                return result
            now = self.clock()
            if deadline is not None:
                if now >= deadline:
                    raise _timeout(timeout, invocation)
                delay = min(delay, deadline - now)
            await self.sleep(delay)
        raise AssertionError("unreachable: the poll schedule never ends")  # pragma: no cover

    async def _bounded(
        self,
        look: Awaitable[Outcome],
        deadline: float,
        timeout: float | None,
        invocation: AsyncInvocation,
    ) -> Outcome:
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
