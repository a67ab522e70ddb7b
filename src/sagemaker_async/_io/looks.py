"""Batched looks: one ListObjectsV2 of a prefix answers many waits' HEADs at once.

Async inference writes every output of an endpoint under one S3OutputPath and every
failure under one S3FailurePath, so the waits of a busy client look for many keys in few
"directories". Two HEADs per wait per look (output and failure) are most of a wait's cost;
when enough waits are due on one prefix, one listing (a page per 1,000 keys) tells each of
them what a HEAD would: whether its key exists, its ``LastModified`` (the freshness rule
applies unchanged) and its ``Size`` (``max_bytes`` is decided before the GET, as before).

Guards, so a listing is never worse than the HEADs it replaces:

- a prefix is listed only when at least ``min_due`` keys are looked for on it within the
  gathering window; fewer go back to HEADs at once;
- a listing stops after ``max(min_page_keys, keys_factor × due)`` keys: a prefix holding far
  more objects than waits (a million old outputs) is left to HEADs for ``cooldown`` seconds
  instead of being listed on every tick (a last page that went past the cap still answers
  its batch: it is already read);
- a 403 or other 4xx, or a malformed page, sends the prefix back to HEADs for ``cooldown``
  (the HEADs then answer, or raise, as they always did); weather (5xx, throttling, a cut
  connection) is raised to every wait of the batch, which treats it as "not yet";
- one listing holds one look slot of the client's pacing, like one wait's HEADs.

Waits never hold a look slot while gathered. Cancelling a wait cancels only its own
interest; the listing is cancelled when no wait of its batch is still interested.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from .._protocol.s3 import ListEntry, S3Location
from ..errors import AccessDeniedError, ServiceError, TransportError
from .s3_objects import ObjectHead
from .schedule import PollScheduler

__all__ = ["FALLBACK", "BatchedLooks", "Lister", "prefix_of"]

logger = logging.getLogger("sagemaker_async")

# At least this many keys due on one prefix within the window, or HEADs are cheaper.
MIN_DUE = 8
# Keys due on a prefix are gathered this long before it is listed (or HEADs sent).
WINDOW = 0.1
# A listing stops (and the prefix goes back to HEADs) past max(MIN_PAGE_KEYS, FACTOR × due).
MIN_PAGE_KEYS = 1000
KEYS_FACTOR = 4
# How long a prefix that could not be listed cheaply (or at all) is left to HEADs.
COOLDOWN = 60.0


class _Fallback:
    """The answer "look with a HEAD": the prefix is not listed (now)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FALLBACK"


FALLBACK = _Fallback()

_Answer = ObjectHead | None | _Fallback


class Lister(Protocol):
    """One ListObjectsV2 page (``S3Objects.list_page``)."""

    async def list_page(
        self, bucket: str, prefix: str, token: str | None, *, retries: bool = True
    ) -> tuple[list[ListEntry], str | None]: ...


def prefix_of(key: str) -> str:
    """The "directory" of a key: everything up to and including its last ``/``."""
    directory, slash, _ = key.rpartition("/")
    return directory + slash


@dataclass(slots=True)
class _Batch:
    keys: dict[str, list[asyncio.Future[_Answer]]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def interested(self) -> bool:
        return any(not fut.done() for futs in self.keys.values() for fut in futs)


class BatchedLooks:
    """Gathers the keys waits look for, per (bucket, prefix), and answers them by listing."""

    __slots__ = (
        "_batches",
        "_cooldown",
        "_cooling",
        "_keys_factor",
        "_lister",
        "_loop",
        "_min_due",
        "_min_page_keys",
        "_scheduler",
        "_tasks",
        "_window",
        "listings",
    )

    def __init__(
        self,
        lister: Lister,
        scheduler: PollScheduler,
        *,
        min_due: int = MIN_DUE,
        window: float = WINDOW,
        min_page_keys: int = MIN_PAGE_KEYS,
        keys_factor: int = KEYS_FACTOR,
        cooldown: float = COOLDOWN,
    ) -> None:
        self._lister = lister
        self._scheduler = scheduler
        self._min_due = min_due
        self._window = window
        self._min_page_keys = min_page_keys
        self._keys_factor = keys_factor
        self._cooldown = cooldown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._cooling: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.listings = 0  # pages listed, for tests and benchmarks

    @property
    def min_waits(self) -> int:
        """Fewer waits in flight on the client than this cannot fill a batch: HEADs at once
        (no gathering window for a lone wait). Each wait looks for up to two keys."""
        return max(1, -(-self._min_due // 2))

    async def find(
        self, output: S3Location, failure: S3Location | None
    ) -> tuple[ObjectHead | None, ObjectHead | None] | None:
        """What HEADs of ``output`` and ``failure`` would answer, or None: send the HEADs.

        Raises the listing's weather (``TransportError``, a 5xx ``ServiceError``) for the
        wait to treat as "not yet".
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the client moved to a new loop
            self._loop = loop
            self._batches = {}
            self._cooling = {}
        futures = [self._join(loop, output)]
        if failure is not None:
            futures.append(self._join(loop, failure))
        try:
            answers = [await fut for fut in futures]
        except BaseException:
            for fut in futures:
                fut.cancel()  # our interest only: the listing goes on for the others
                if not fut.cancelled():
                    fut.exception()  # retrieved: the first error is the one raised
            raise
        if any(answer is FALLBACK for answer in answers):
            return None
        output_head = answers[0]
        failure_head = answers[1] if len(answers) > 1 else None
        assert not isinstance(output_head, _Fallback)
        assert not isinstance(failure_head, _Fallback)
        return output_head, failure_head

    def _join(
        self, loop: asyncio.AbstractEventLoop, location: S3Location
    ) -> asyncio.Future[_Answer]:
        fut: asyncio.Future[_Answer] = loop.create_future()
        group = (location.bucket, prefix_of(location.key))
        until = self._cooling.get(group)
        if until is not None:
            if loop.time() < until:
                fut.set_result(FALLBACK)
                return fut
            del self._cooling[group]
        batch = self._batches.get(group)
        if batch is None:
            batch = self._batches[group] = _Batch()
            loop.call_later(self._window, self._close, group, batch)
        batch.keys.setdefault(location.key, []).append(fut)
        fut.add_done_callback(lambda _: self._dropped(batch))
        return fut

    def _close(self, group: tuple[str, str], batch: _Batch) -> None:
        """The window is over: list the prefix, or send its waits back to HEADs."""
        if self._batches.get(group) is batch:
            del self._batches[group]
        due = sum(1 for futs in batch.keys.values() for fut in futs if not fut.done())
        if due < self._min_due:
            _answer_all(batch, FALLBACK)
            return
        task = asyncio.ensure_future(self._list(group, batch, due))
        batch.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dropped(self, batch: _Batch) -> None:
        """A wait lost interest (answered or cancelled): stop a listing nobody awaits."""
        if batch.task is not None and not batch.task.done() and not batch.interested():
            batch.task.cancel()

    async def _list(self, group: tuple[str, str], batch: _Batch, due: int) -> None:
        try:
            found = await self._listed(group, batch, due)
        except (TransportError, ServiceError) as exc:
            if _is_weather(exc):
                _fail_all(batch, exc)
                return
            logger.debug(
                "cannot list s3://%s/%s (%s): HEADs for the next %.0f s",
                group[0], group[1], exc, self._cooldown,
            )  # fmt: skip
            self._cool(group)
            _answer_all(batch, FALLBACK)
            return
        except Exception as exc:  # never leave a wait hanging: it raises what a HEAD would
            _fail_all(batch, exc)
            return
        except asyncio.CancelledError:  # no wait is interested any more (or the loop ends)
            for futs in batch.keys.values():
                for fut in futs:
                    fut.cancel()
            raise
        if found is None:
            _answer_all(batch, FALLBACK)
            return
        for key, futs in batch.keys.items():
            listed = found.get(key)
            answer: _Answer = (
                None
                if listed is None
                else ObjectHead(last_modified=listed.last_modified, content_length=listed.size)
            )
            for fut in futs:
                if not fut.done():
                    fut.set_result(answer)

    async def _listed(
        self, group: tuple[str, str], batch: _Batch, due: int
    ) -> dict[str, ListEntry] | None:
        """The batch's keys found under the prefix, or None: too many keys to list."""
        bucket, prefix = group
        cap = max(self._min_page_keys, self._keys_factor * due)
        found: dict[str, ListEntry] = {}
        seen = 0
        token: str | None = None
        async with self._scheduler.pace:
            while True:
                entries, token = await self._lister.list_page(bucket, prefix, token, retries=False)
                self.listings += 1
                seen += len(entries)
                for entry in entries:
                    if entry.key in batch.keys:
                        found[entry.key] = entry
                if token is None:
                    break
                if seen >= cap:  # more pages to come: HEADs are cheaper
                    logger.debug(
                        "s3://%s/%s holds more than %d objects for %d looks: "
                        "HEADs for the next %.0f s",
                        bucket, prefix, seen, due, self._cooldown,
                    )  # fmt: skip
                    self._cool(group)
                    return None
        if seen > cap:  # answered (the page is here), but not worth listing again soon
            self._cool(group)
        return found

    def _cool(self, group: tuple[str, str]) -> None:
        assert self._loop is not None
        self._cooling[group] = self._loop.time() + self._cooldown


def _is_weather(exc: BaseException) -> bool:
    # Here, not at the top: .results builds on this module.
    from .results import is_weather

    return not isinstance(exc, AccessDeniedError) and is_weather(exc)


def _answer_all(batch: _Batch, answer: _Answer) -> None:
    for futs in batch.keys.values():
        for fut in futs:
            if not fut.done():
                fut.set_result(answer)


def _fail_all(batch: _Batch, exc: BaseException) -> None:
    for futs in batch.keys.values():
        for fut in futs:
            if not fut.done():
                fut.set_exception(exc)
