"""Blocking work in a worker thread that a cancelled caller still waits for.

``asyncio.to_thread`` returns at once when its caller is cancelled, while the thread runs
on. For reads and writes on a file descriptor that the caller closes right after, that is
a use-after-close (or worse, a read of another file that reused the number): these helpers
let the thread finish first, then propagate the cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_to_end"]

_T = TypeVar("_T")


async def run_to_end(func: Callable[..., _T], *args: object) -> _T:
    task = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what propagates
        raise
