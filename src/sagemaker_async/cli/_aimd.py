"""How many invocations a batch keeps in flight: additive increase, multiplicative decrease.

TCP's answer to an unknown capacity, applied to a throttling service: each throttle halves
the limit (never below one), each success adds ``1/limit`` (one more slot per round of
successes), never above the ``--concurrency`` the user gave. A burst of throttles from
requests that were all sent under the old limit counts once: a throttle only lowers the
limit if its request started after the last decrease (the ``epoch`` on its slot), so one
overload does not collapse the limit to one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["AdaptiveLimit", "Slot"]


@dataclass(frozen=True, slots=True)
class Slot:
    """Permission to send one request, stamped with the limit's epoch when it was taken."""

    epoch: int


class AdaptiveLimit:
    """An asyncio semaphore whose size follows AIMD between 1 and ``maximum``.

    ``release`` is synchronous, so a slot is given back even from a ``finally`` of a
    cancelled task.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self._limit = float(maximum)
        self._in_flight = 0
        self._epoch = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.decreases = 0

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> Slot:
        while self._in_flight >= self.limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._in_flight += 1
        return Slot(self._epoch)

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        # Few ever wait (the submitting loop, throttled retries): wake all, each re-checks.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def on_success(self) -> None:
        """Additive increase: a full round of successes at this limit adds one slot."""
        before = self.limit
        self._limit = min(float(self.maximum), self._limit + 1.0 / self._limit)
        if self.limit > before:
            self._wake()

    def on_throttle(self, slot: Slot) -> bool:
        """Multiplicative decrease, once per epoch; True when the limit went down."""
        if slot.epoch != self._epoch or self._limit <= 1.0:
            return False
        self._limit = max(1.0, self._limit / 2.0)
        self._epoch += 1
        self.decreases += 1
        return True
