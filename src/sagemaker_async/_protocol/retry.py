"""Standard-mode retries, with our own semantics whatever the installed botocore defaults to.

The rules are those of the AWS SDKs' "standard" retry mode: a shared retry quota that
throttling storms drain (so a struggling service is not hammered by every caller at once),
full-jitter exponential backoff with a slower base for throttling, ``x-amz-retry-after``
honoured, and only faults that can heal retried. Pure: the caller passes the random source
and does the sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from ..errors import ServiceError
from .invoke import THROTTLING_CODES, TRANSIENT_CODES

__all__ = ["DEFAULT_MAX_ATTEMPTS", "RetryDecision", "RetryPolicy", "RetryQuota"]

DEFAULT_MAX_ATTEMPTS = 3
BASE_DELAY = 0.05
THROTTLING_BASE_DELAY = 1.0
MAX_BACKOFF = 20.0
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


class RetryQuota:
    """The token bucket shared by every call of one client (standard mode's costs)."""

    __slots__ = ("available", "capacity")

    INITIAL = 500
    RETRY_COST = 5
    TIMEOUT_RETRY_COST = 10
    NO_RETRY_INCREMENT = 1

    def __init__(self, capacity: int = INITIAL) -> None:
        self.capacity = capacity
        self.available = capacity

    def acquire(self, *, timeout: bool) -> int:
        """Take the cost of one retry; 0 when the quota cannot pay (do not retry)."""
        cost = self.TIMEOUT_RETRY_COST if timeout else self.RETRY_COST
        if cost > self.available:
            return 0
        self.available -= cost
        return cost

    def release(self, amount: int) -> None:
        """Give back what a call that finally succeeded took (or the small no-retry bonus)."""
        self.available = min(self.capacity, self.available + amount)

    def on_success(self, spent: int) -> None:
        self.release(spent if spent else self.NO_RETRY_INCREMENT)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether and how to retry one failed attempt."""

    retry: bool
    throttled: bool = False
    timeout: bool = False


class RetryPolicy:
    """Decides about one failed attempt and how long to wait before the next."""

    __slots__ = ("_random", "max_attempts", "quota")

    def __init__(
        self,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        *,
        quota: RetryQuota | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.max_attempts = max_attempts
        self.quota = quota if quota is not None else RetryQuota()
        self._random = rng

    @staticmethod
    def classify_error(error: ServiceError) -> RetryDecision:
        """Retry throttling and faults that can heal; never a client error such as 400."""
        if error.code in THROTTLING_CODES or error.status_code == 429:
            return RetryDecision(retry=True, throttled=True)
        if error.code in TRANSIENT_CODES or error.status_code in _TRANSIENT_STATUS:
            return RetryDecision(retry=True)
        return RetryDecision(retry=False)

    @staticmethod
    def classify_exception(exc: BaseException) -> RetryDecision:
        """Connection, read and timeout failures are worth another attempt.

        A request the HTTP stack refuses to send (``LocalProtocolError``) or cannot send
        (``UnsupportedProtocol``) would fail the same way again: not retried.
        """
        if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
            return RetryDecision(retry=False)
        if isinstance(exc, httpx.TimeoutException):
            return RetryDecision(retry=True, timeout=True)
        if isinstance(exc, httpx.TransportError):
            return RetryDecision(retry=True)
        return RetryDecision(retry=False)

    def backoff(self, attempt: int, *, throttled: bool, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_BACKOFF)
        base = THROTTLING_BASE_DELAY if throttled else BASE_DELAY
        return self._random() * min(MAX_BACKOFF, base * 2.0 ** (attempt - 1))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``x-amz-retry-after`` (milliseconds) as seconds, if present and sane."""
    raw = headers.get("x-amz-retry-after")
    if raw is None:
        return None
    try:
        millis = int(raw)
    except ValueError:
        return None
    return millis / 1000.0 if millis >= 0 else None
