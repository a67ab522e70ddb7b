"""The client's view of time and chance, in one object passed to its constructor.

Signatures need the wall clock, deadlines and credential checks a monotonic one, backoff a
sleep and jitter a random source. Tests hand the client a ``Runtime`` of fakes
(``AsyncInferenceClient(..., _runtime=Runtime(clock=lambda: 0.0))``) instead of setting
private attributes after construction.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    clock: Callable[[], float] = time.time  # X-Amz-Date of each attempt
    monotonic: Callable[[], float] = time.monotonic  # wait deadlines
    sleep: Callable[[float], Awaitable[Any]] | None = None  # retry backoff (asyncio.sleep)
    poll_sleep: Callable[[float], Awaitable[Any]] | None = None  # polls (the timer heap)
    random: Callable[[], float] = _random.random  # retry and polling jitter
