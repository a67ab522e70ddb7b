"""Watched prefixes: one ListObjectsV2 of a prefix answers every wait on it, due or not.

Async inference writes every output of an endpoint under one S3OutputPath and every
failure under one S3FailurePath, so the waits of a busy client look for many keys in few
"directories". HEAD polling costs two requests per wait per look, and its backoff (up to
30 s between looks) is what makes a late wait late. So when enough waits look on one
prefix, the prefix is *watched*: listed on its own cadence, and each listing answers every
wait on it — not only the ones whose next look is due. A watched wait sends nothing: it
sleeps until the listing that finds its object wakes it, or until its deadline (where it
makes one last look of its own, as every wait does). The rules stay those of a HEAD: the
freshness rule (``_protocol.freshness``) on the listing's ``LastModified``, ``max_bytes``
decided on its ``Size`` before any GET.

The cadence: every ``poll_interval`` of the waits (the shortest among them), but never
more pages a second than HEAD polling of those waits at its slowest (one look per wait per
30 s) would send, so a listing is never the more expensive way to look.

Guards, so a watch is never worse than the HEADs it replaces:

- a prefix is watched only while at least ``min_watch`` waits look on it (hysteresis:
  the watch goes on until fewer than half that many remain); fewer wait with HEADs;
- a listing stops after ``max(min_page_keys, keys_factor × keys)`` keys, the keys being
  those looked for and those of the waits the watch answered: a prefix holding far more
  objects than waits (a million old outputs) goes back to HEADs for ``cooldown`` seconds;
- a 403 (ListObjectsV2 needs ``s3:ListBucket``, HEADs do not) or other 4xx, a malformed
  page, or any unexpected error sends the prefix back to HEADs for ``cooldown``: its waits
  are woken and poll with HEADs, which answer, or raise, as they always did;
- weather (5xx, throttling, a cut connection) only skips a round: the watch lists again
  at its next tick, and waits keep their own deadlines;
- one listing holds one look slot of the client's pacing, like one wait's HEADs.

A wait's interest is dropped when it ends (answered, failed, timed out or cancelled); a
watch with no interest left ends, and no task outlives the waits that needed it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .._protocol.freshness import Outcome, decide_fresh
from .._protocol.s3 import ListEntry, S3Location
from ..errors import AccessDeniedError, ServiceError, TransportError
from .s3_objects import ObjectHead
from .schedule import PollScheduler, nap, resolve

__all__ = ["Interest", "Lister", "WatchedPrefixes", "prefix_of"]

logger = logging.getLogger("sagemaker_async")

# Waits looking on one prefix before it is watched; the watch ends below half of it.
MIN_WATCH = 8
# A listing stops (and the prefix goes back to HEADs) past max(MIN_PAGE_KEYS, FACTOR × keys).
MIN_PAGE_KEYS = 1000
KEYS_FACTOR = 4
# How long a prefix that could not be listed cheaply (or at all) is left to HEADs.
COOLDOWN = 60.0
# The slowest HEAD polling (results.MAX_POLL_INTERVAL): a watch lists no more pages a
# second than its waits would send HEADs at that pace.
HEAD_PACE = 30.0

_Group = tuple[str, str]  # (bucket, prefix)


class Lister(Protocol):
    """One ListObjectsV2 page, the wanted entries of it (``S3Objects.list_wanted``)."""

    async def list_wanted(
        self, bucket: str, prefix: str, token: str | None, wanted: Container[str]
    ) -> tuple[list[ListEntry], int, str | None]: ...


def prefix_of(key: str) -> str:
    """The "directory" of a key: everything up to and including its last ``/``."""
    directory, slash, _ = key.rpartition("/")
    return directory + slash


class Interest:
    """One wait's stake in the watches: what it looks for, and how to wake it."""

    __slots__ = (
        "answer",
        "failure",
        "failure_seen",
        "first_at",
        "output",
        "output_seen",
        "poll_interval",
        "submitted_at",
        "wake",
    )

    def __init__(
        self,
        output: S3Location,
        failure: S3Location | None,
        submitted_at: datetime | None,
        poll_interval: float,
        first_at: float,
    ) -> None:
        self.output = output
        self.failure = failure
        self.submitted_at = submitted_at
        self.poll_interval = poll_interval
        self.first_at = first_at  # when the wait would look first on its own (monotonic)
        self.output_seen: ListEntry | None = None
        self.failure_seen: ListEntry | None = None
        # Set once a listing found the wait's answer: (outcome, the output's head or None).
        self.answer: tuple[Outcome, ObjectHead | None] | None = None
        # How to wake the wait, while it sleeps: a listing's answer or a release calls it.
        self.wake: Callable[[], object] | None = None

    def groups(self) -> list[_Group]:
        groups = [(self.output.bucket, prefix_of(self.output.key))]
        if self.failure is not None:
            failure_group = (self.failure.bucket, prefix_of(self.failure.key))
            if failure_group != groups[0]:
                groups.append(failure_group)
        return groups

    def rouse(self) -> None:
        if self.wake is not None:
            self.wake()

    def saw(self, key: str, entry: ListEntry, bucket: str) -> None:
        """A listing found one of this wait's objects (decided once the listing ends)."""
        if bucket == self.output.bucket and key == self.output.key:
            self.output_seen = entry
        if self.failure is not None and bucket == self.failure.bucket and key == self.failure.key:
            self.failure_seen = entry

    def decide(self) -> bool:
        """After a whole listing: answer (and wake) the wait as HEADs of both would.

        True if this listing answered it.
        """
        if self.answer is not None:
            return False
        outcome = decide_fresh(self.submitted_at, _seen(self.output_seen), _seen(self.failure_seen))
        if outcome is Outcome.PENDING:
            return False
        output = self.output_seen
        head = (
            None
            if output is None
            else ObjectHead(last_modified=output.last_modified, content_length=output.size)
        )
        self.answer = (outcome, head)
        self.rouse()
        return True


def _seen(entry: ListEntry | None) -> datetime | bool:
    if entry is None:
        return False
    return entry.last_modified or True


@dataclass(slots=True, eq=False)
class _Watch:
    """The waits looking on one (bucket, prefix), and the task listing it, if any."""

    keys: dict[str, list[Interest]] = field(default_factory=dict)
    interests: set[Interest] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    next_at: float = 0.0  # when the next listing starts (monotonic)
    answered: int = 0  # waits this watch answered: their objects are on the prefix too
    alarm: Callable[[], None] | None = None  # ends the watch's sleep early


class WatchedPrefixes:
    """The client's watches, one per (bucket, prefix) that enough waits look on."""

    __slots__ = (
        "_cooldown",
        "_cooling",
        "_custom_sleep",
        "_keys_factor",
        "_lister",
        "_loop",
        "_min_page_keys",
        "_min_watch",
        "_monotonic",
        "_scheduler",
        "_watches",
        "listings",
    )

    def __init__(
        self,
        lister: Lister,
        scheduler: PollScheduler,
        *,
        min_watch: int = MIN_WATCH,
        min_page_keys: int = MIN_PAGE_KEYS,
        keys_factor: int = KEYS_FACTOR,
        cooldown: float = COOLDOWN,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._lister = lister
        self._scheduler = scheduler
        self._min_watch = max(1, min_watch)
        self._min_page_keys = min_page_keys
        self._keys_factor = keys_factor
        self._cooldown = cooldown
        self._custom_sleep = sleep  # None: the scheduler's heap
        self._monotonic = monotonic
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: dict[_Group, _Watch] = {}
        self._cooling: dict[_Group, float] = {}
        self.listings = 0  # pages listed, for tests and benchmarks

    def register(
        self,
        output: S3Location,
        failure: S3Location | None,
        submitted_at: datetime | None,
        poll_interval: float,
        first_look: float = 0.0,
    ) -> Interest:
        """A wait begins: its keys join the watches of their prefixes (starting them).

        ``first_look``: in how many seconds the wait would look first on its own (a
        listener's fallback check is a minute away; a wait's first look is now).
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or the client moved to a new loop
            self._loop = loop
            self._watches = {}
            self._cooling = {}
        interest = Interest(
            output, failure, submitted_at, poll_interval, self._now() + max(0.0, first_look)
        )
        locations = [output] if failure is None else [output, failure]
        for group in interest.groups():
            watch = self._watches.get(group)
            if watch is None:
                watch = self._watches[group] = _Watch()
            watch.interests.add(interest)
            for location in locations:
                if (location.bucket, prefix_of(location.key)) == group:
                    watch.keys.setdefault(location.key, []).append(interest)
            if watch.task is None:
                if len(watch.interests) >= self._min_watch:
                    self._start(group, watch)
            elif watch.next_at > interest.first_at + interest.poll_interval:
                # A wait that looks sooner than the watch's cadence: list for it earlier.
                watch.next_at = interest.first_at
                if watch.alarm is not None:
                    watch.alarm()
        return interest

    def unregister(self, interest: Interest) -> None:
        """A wait ended: drop its interest; a watch nobody needs stops at its next tick."""
        interest.wake = None
        for group in interest.groups():
            watch = self._watches.get(group)
            if watch is None or interest not in watch.interests:
                continue
            watch.interests.discard(interest)
            for location in (interest.output, interest.failure):
                if location is None:
                    continue
                waiting = watch.keys.get(location.key)
                if waiting is not None and interest in waiting:
                    waiting.remove(interest)
                    if not waiting:
                        del watch.keys[location.key]
            if not watch.interests:
                if watch.task is not None:
                    watch.task.cancel()
                del self._watches[group]

    def watched(self, interest: Interest) -> bool:
        """Whether every prefix the wait looks on is watched: it need not look itself."""
        for group in interest.groups():
            watch = self._watches.get(group)
            if watch is None or watch.task is None:
                return False
        return True

    def _now(self) -> float:
        if self._monotonic is not None:
            return self._monotonic()
        assert self._loop is not None
        return self._loop.time()

    def _start(self, group: _Group, watch: _Watch) -> None:
        until = self._cooling.get(group)
        if until is not None:
            if self._now() < until:
                return
            del self._cooling[group]
        watch.next_at = min(interest.first_at for interest in watch.interests)
        watch.task = asyncio.ensure_future(self._watch(group, watch))

    async def _watch(self, group: _Group, watch: _Watch) -> None:
        """List the prefix on its cadence until too few waits need it, or it cannot be."""
        bucket, prefix = group
        try:
            while len(watch.interests) * 2 >= self._min_watch:
                if watch.next_at > self._now():
                    await self._nap(watch, watch.next_at - self._now())
                    continue  # the waits may have changed while it slept
                started = self._now()
                try:
                    pages = await self._list(group, watch)
                except (TransportError, ServiceError) as exc:
                    if not _is_weather(exc):
                        logger.debug(
                            "cannot list s3://%s/%s (%s): HEADs for the next %.0f s",
                            bucket, prefix, exc, self._cooldown,
                        )  # fmt: skip
                        self._cool(group)
                        return
                    logger.debug("listing s3://%s/%s: %s; again next tick", bucket, prefix, exc)
                    pages = 1
                if pages is None:  # more keys than a listing is worth
                    self._cool(group)
                    return
                if pages > len(watch.interests):  # a page per wait: HEADs are as cheap
                    self._cool(group)
                    return
                period = max(
                    min(interest.poll_interval for interest in watch.interests),
                    pages * HEAD_PACE / len(watch.interests),
                )
                watch.next_at = started + period
        except asyncio.CancelledError:
            raise
        except Exception:  # never leave a wait hanging on a watch that died
            logger.warning(
                "watching s3://%s/%s failed; HEADs instead", bucket, prefix, exc_info=True
            )
            self._cool(group)
        finally:
            if self._watches.get(group) is watch:
                watch.task = None
                for interest in list(watch.interests):
                    interest.rouse()  # back to its own HEADs (or answered meanwhile)

    async def _nap(self, watch: _Watch, delay: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch.alarm = functools.partial(resolve, wake)
        try:
            await nap(delay, wake, self._scheduler, self._custom_sleep)
        finally:
            watch.alarm = None

    async def _list(self, group: _Group, watch: _Watch) -> int | None:
        """One listing of the prefix, answering its waits: the pages read, or None when
        the prefix holds more keys than a listing is worth (stopped at the cap, or a last
        page past it, which still answers: it is read)."""
        bucket, prefix = group
        # The objects of waits it answered count as the watch's own: a batch of 10,000
        # fills its prefix with them, which is no reason to stop listing for the rest.
        cap = max(self._min_page_keys, self._keys_factor * (len(watch.keys) + watch.answered))
        seen = 0
        pages = 0
        token: str | None = None
        touched: set[Interest] = set()
        async with self._scheduler.pace:
            while True:
                entries, count, token = await self._lister.list_wanted(
                    bucket, prefix, token, watch.keys
                )
                self.listings += 1
                pages += 1
                seen += count
                for entry in entries:
                    for interest in watch.keys.get(entry.key, ()):
                        interest.saw(entry.key, entry, bucket)
                        touched.add(interest)
                if token is None:
                    # Decided on the whole listing: a wait's output and failure may be on
                    # different pages, and the later of the two wins.
                    for interest in touched:
                        watch.answered += interest.decide()
                    if seen > cap:  # answered (it is read), but not worth listing again
                        return None
                    return pages
                if seen >= cap:
                    logger.debug(
                        "s3://%s/%s holds more than %d objects for %d keys looked for: "
                        "HEADs for the next %.0f s",
                        bucket, prefix, seen, len(watch.keys), self._cooldown,
                    )  # fmt: skip
                    return None

    def _cool(self, group: _Group) -> None:
        self._cooling[group] = self._now() + self._cooldown


def _is_weather(exc: BaseException) -> bool:
    # Here, not at the top: .results builds on this module.
    from .results import is_weather

    return not isinstance(exc, AccessDeniedError) and is_weather(exc)
