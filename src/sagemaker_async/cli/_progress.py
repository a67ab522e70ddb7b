"""Progress of a batch on standard error, without a progress-bar dependency.

On a terminal: one line redrawn in place (carriage return, erase to end of line) at most
ten times a second. Elsewhere (a log file, CI): a plain line every ``interval`` seconds and
one at the end, so logs stay readable and small. Both show done/total, the rate, errors,
the current concurrency and an ETA. Rendering is pure (``render``); the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import TextIO

__all__ = ["Counters", "Progress", "format_duration", "render"]

_REDRAW = 0.1


@dataclass(slots=True)
class Counters:
    """What a batch has done so far; ``skipped`` were done by an earlier run."""

    total: int = 0
    skipped: int = 0
    carried: int = 0  # submitted by an earlier run, waited for in this one
    submitted: int = 0
    errors: int = 0
    throttled: int = 0
    succeeded: int = 0
    failed: int = 0
    timeouts: int = 0
    concurrency: int = 0
    waiting: bool = False  # --wait: "done" means an outcome, not a submission

    @property
    def done(self) -> int:
        """Items finished for good in this run or before (errors are retried next run)."""
        if self.waiting:
            return self.skipped + self.succeeded + self.failed + self.timeouts
        return self.skipped + self.submitted


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, rest = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def render(counters: Counters, elapsed: float) -> str:
    """One line: ``batch: 40/100 submitted | 12.5/s | errors 0 | concurrency 8 | ETA 0:05``."""
    c = counters
    finished_here = c.done - c.skipped
    rate = finished_here / elapsed if elapsed > 0 else 0.0
    verb = "done" if c.waiting else "submitted"
    parts = [f"batch: {c.done}/{c.total} {verb}"]
    if c.waiting:
        parts.append(f"submitted {c.skipped + c.carried + c.submitted}")
        parts.append(f"failed {c.failed}, timeout {c.timeouts}")
    parts.append(f"{rate:.1f}/s")
    parts.append(f"errors {c.errors}")
    if c.throttled:
        parts.append(f"throttled {c.throttled}")
    parts.append(f"concurrency {c.concurrency}")
    remaining = c.total - c.done
    if remaining <= 0:
        parts.append(f"took {format_duration(elapsed)}")
    elif rate > 0:
        parts.append(f"ETA {format_duration(remaining / rate)}")
    else:
        parts.append("ETA --")
    return " | ".join(parts)


class Progress:
    """Shows ``Counters`` on a stream; call ``update`` after each change, ``close`` once."""

    def __init__(
        self,
        stream: TextIO,
        counters: Counters,
        *,
        interactive: bool,
        interval: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self._stream = stream
        self._interactive = interactive
        self._interval = interval
        self._enabled = enabled
        self._clock = clock
        self._started = clock()
        self._last_shown: float | None = None
        self._width = 0
        self._shown: tuple[object, ...] | None = None

    def update(self) -> None:
        if not self._enabled:
            return
        now = self._clock()
        gap = _REDRAW if self._interactive else self._interval
        if self._last_shown is not None and now - self._last_shown < gap:
            return
        self._show(now)

    def close(self) -> None:
        """The final state, shown unless the last line already showed it; ends the line."""
        if not self._enabled:
            return
        if self._shown != astuple(self.counters):
            self._show(self._clock())
        if self._interactive:
            self._stream.write("\n")
            self._stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a warning) that does not garble the redrawn line."""
        if self._interactive and self._width:
            self._stream.write("\r\x1b[K")
            self._width = 0
            self._last_shown = None
            self._shown = None
        self._stream.write(text + "\n")
        self._stream.flush()

    def _show(self, now: float) -> None:
        self._last_shown = now
        self._shown = astuple(self.counters)
        line = render(self.counters, now - self._started)
        if self._interactive:
            self._stream.write("\r" + line + "\x1b[K")
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
