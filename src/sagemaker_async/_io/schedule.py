"""One timer for every wait of a client, and a cap on the looks they send at once.

Ten thousand waits each sleeping on ``asyncio.sleep`` cost ten thousand timer handles in
the loop's heap and ten thousand wake-ups spread over time; here they share one heap of
futures and one armed loop timer, and every wait due within a few milliseconds of another
is woken by the same callback. The pacing semaphore keeps the polls of many waits to a
share of the connection pool, so ``invoke_endpoint_async`` and uploads on the same client
always find a connection.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["MAX_LOOKS_IN_FLIGHT", "PollScheduler", "nap", "resolve"]

# Looks (one or two HEADs each) in flight at once per client: at most 128 of the default
# pool's 256 connections, the rest stay free for invokes, uploads and reads.
MAX_LOOKS_IN_FLIGHT = 64
# Waits due within this many seconds of the timer are woken with it (one callback, not N).
_COALESCE = 0.005


class PollScheduler:
    """``sleep`` on a shared timer heap; ``pace`` bounds looks in flight."""

    __slots__ = ("_handle", "_handle_when", "_heap", "_loop", "_max", "_pace", "_seq")

    def __init__(self, max_in_flight: int = MAX_LOOKS_IN_FLIGHT) -> None:
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._handle_when = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max = max_in_flight
        self._pace = asyncio.Semaphore(max_in_flight)

    @property
    def pace(self) -> asyncio.Semaphore:
        """Held for the duration of one look (never while sleeping)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._reset(loop)
        return self._pace

    def __len__(self) -> int:
        return len(self._heap)

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.wake_at(fut, delay)
        await fut  # a cancelled sleeper's future stays in the heap until due: it is skipped

    def wake_at(self, fut: asyncio.Future[None], delay: float) -> None:
        """Resolve ``fut`` after ``delay`` seconds, unless something else resolves it first.

        A watched wait sleeps on a future that either its timer or the listing that finds
        its object resolves: one future, no task per sleep.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the client moved to a new loop
            self._reset(loop)
        due = loop.time() + max(0.0, delay)
        heapq.heappush(self._heap, (due, next(self._seq), fut))
        if self._handle is None or due < self._handle_when:
            self._arm(due)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop = loop
        self._heap = []
        self._handle = None
        self._pace = asyncio.Semaphore(self._max)

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._handle_when = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        assert self._loop is not None
        horizon = self._loop.time() + _COALESCE
        heap = self._heap
        while heap and heap[0][0] <= horizon:
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                fut.set_result(None)
        if heap:
            self._arm(heap[0][0])


def resolve(wake: asyncio.Future[None]) -> None:
    """Ring a ``nap``'s future (at most once; later rings are no-ops)."""
    if not wake.done():
        wake.set_result(None)


async def nap(
    delay: float,
    wake: asyncio.Future[None],
    scheduler: PollScheduler,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> None:
    """Until ``delay`` seconds pass (``inf``: never) or someone resolves ``wake``.

    On the scheduler's heap this is one future and no task; an injected ``sleep`` (tests,
    ``Runtime.poll_sleep``) runs as a task, cancelled when ``wake`` is rung first.
    """
    timer: asyncio.Future[Any] | None = None
    if math.isfinite(delay):
        if sleep is None:
            scheduler.wake_at(wake, delay)
        else:
            timer = asyncio.ensure_future(sleep(delay))
            timer.add_done_callback(lambda _: resolve(wake))
    try:
        await wake
    finally:
        if timer is not None and not timer.done():
            timer.cancel()
