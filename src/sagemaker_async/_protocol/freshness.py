"""Which of an inference's two S3 objects answers it: the freshness rule, pure.

S3 keys are not unique per inference: a reused ``InferenceId`` or ``Filename`` (idempotent
request ids, fixed file names) points the new invocation at the previous run's objects.
Existence alone would then return the old output at once, and hide a new failure behind it.
So an object counts only if S3 last wrote it no earlier than the service accepted the
request: ``Last-Modified >= submitted_at`` truncated to the second (``Last-Modified`` has
one-second resolution; a run reused within the same second cannot be told apart, which is
the rule's one blind spot). When both objects are fresh, the later one is the answer; a
tie goes to the output, the answer the caller asked for.

No I/O and no clock: the waiter, the CLI and the SQS listener all call ``decide_fresh``.
"""

from __future__ import annotations

import enum
import functools
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["Outcome", "decide_fresh", "is_fresh", "parse_http_date"]


class Outcome(enum.Enum):
    PENDING = "pending"
    OUTPUT = "output"
    FAILURE = "failure"


@functools.lru_cache(maxsize=64)
def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Date``, ``Last-Modified``) as aware UTC; None if absent or unreadable.

    Cached: every answer within one second carries the same ``Date`` text, and parsing it
    costs more than the rest of reading a 202.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" and RFC 850 forms: HTTP dates are always GMT
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def is_fresh(submitted_at: datetime | None, last_modified: datetime | None) -> bool:
    """Whether an existing object belongs to the invocation submitted at ``submitted_at``.

    Without ``submitted_at`` (or an object without ``Last-Modified``) there is nothing to
    compare: the object counts, as before the rule existed.
    """
    if submitted_at is None or last_modified is None:
        return True
    return last_modified >= submitted_at.replace(microsecond=0)


def decide_fresh(
    submitted_at: datetime | None,
    output: datetime | bool | None,
    failure: datetime | bool | None,
) -> Outcome:
    """The outcome from what the two HEADs found.

    ``output`` and ``failure`` are each ``False`` (no such object), ``True`` (it exists,
    modification time unknown) or its ``Last-Modified``. ``None`` is read as absent.
    """
    out_time = None if isinstance(output, bool) else output
    fail_time = None if isinstance(failure, bool) else failure
    has_output = output is True or (out_time is not None and is_fresh(submitted_at, out_time))
    has_failure = failure is True or (fail_time is not None and is_fresh(submitted_at, fail_time))
    if has_output and has_failure:
        if out_time is not None and fail_time is not None and fail_time > out_time:
            return Outcome.FAILURE
        return Outcome.OUTPUT
    if has_output:
        return Outcome.OUTPUT
    if has_failure:
        return Outcome.FAILURE
    return Outcome.PENDING
