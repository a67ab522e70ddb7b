"""Toy models for the demo and for trying the local endpoint: no ML, no downloads.

- ``echo_upper``: the payload in upper case (sync, bytes in, bytes out).
- ``sentiment``: a word-list "sentiment" score as JSON (async; reads the attributes).
  Custom attribute ``delay=SECONDS`` (at most 10) makes it take that long, so the pending
  state is visible; an empty text, or one that is not UTF-8, makes it fail.
- ``always_fails``: raises, to show a failure object.

Serve them with ``python -m sagemaker_async.local serve --endpoint
sentiment=sagemaker_async.local.demo_models:sentiment``.
"""

from __future__ import annotations

import asyncio
import json
import re

from ._handlers import InvocationAttributes

__all__ = ["always_fails", "echo_upper", "sentiment"]

_POSITIVE = frozenset(
    {"good", "great", "love", "excellent", "happy", "nice", "wonderful", "fast", "amazing"}
    | {"like", "best", "fine", "enjoy"}
)
_NEGATIVE = frozenset(
    {"bad", "terrible", "hate", "awful", "sad", "slow", "poor", "worst", "broken", "angry"}
    | {"dislike", "boring", "fail"}
)
_WORD = re.compile(r"[a-z']+")
_DELAY = re.compile(r"(?:^|[;,\s])delay=([0-9]*\.?[0-9]+)")
_MAX_DELAY = 10.0


def echo_upper(payload: bytes) -> bytes:
    """The payload, upper-cased."""
    return payload.upper()


def _text(payload: bytes, content_type: str | None) -> str:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("sentiment needs UTF-8 text") from None
    if content_type and "json" in content_type:
        document = json.loads(text)
        text = document.get("text", "") if isinstance(document, dict) else str(document)
    if not text.strip():
        raise ValueError("sentiment needs a non-empty text")
    return text


async def sentiment(payload: bytes, attributes: InvocationAttributes) -> tuple[bytes, str]:
    """``{"label": "positive"|"negative"|"neutral", "score": -1..1}`` for a text."""
    match = _DELAY.search(attributes.custom_attributes or "")
    if match is not None:
        await asyncio.sleep(min(float(match.group(1)), _MAX_DELAY))
    words = _WORD.findall(_text(payload, attributes.content_type).lower())
    positive = sum(word in _POSITIVE for word in words)
    negative = sum(word in _NEGATIVE for word in words)
    total = positive + negative
    score = 0.0 if total == 0 else round((positive - negative) / total, 3)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    body = json.dumps({"label": label, "score": score, "words": len(words)})
    return body.encode("utf-8"), "application/json"


def always_fails(payload: bytes) -> bytes:
    """Raise, like a model that cannot handle its input."""
    raise RuntimeError(f"this model always fails (got {len(payload)} bytes)")
