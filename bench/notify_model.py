"""The bench's model for the notification rows: it answers when its payload says.

The payload is a wall-clock time (seconds since the epoch, as text); the handler waits
until then and answers with the time it answered, which the bench compares with the time
the wait for it returned.
"""

from __future__ import annotations

import asyncio
import time


async def answer_at(payload: bytes) -> tuple[bytes, str]:
    await asyncio.sleep(max(0.0, float(payload) - time.time()))
    return f"{time.time():.6f}".encode(), "text/plain"
