"""Watched prefixes: listings of a prefix answer every wait on it, due or not.

First ``WatchedPrefixes`` alone over a scripted lister and a watcher sleep the test steps
(what a listing answers, the cadence, the guards, the fallbacks, cancellation, pacing),
then whole waits through the client on the mock transport (the listing equals botocore's;
freshness and ``max_bytes`` read from it; no HEAD sent; the deadline's last look).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Container, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import respx

from botocore_oracle import boto3_s3, botocore_request, header
from helpers import make_client, new_router
from sagemaker_async import (
    AsyncInvocation,
    InferenceResult,
    ResultTooLargeError,
    ServiceError,
    TransportError,
    WaitTimeoutError,
)
from sagemaker_async._io.looks import Interest, WatchedPrefixes, prefix_of
from sagemaker_async._io.s3_objects import ObjectHead
from sagemaker_async._io.schedule import PollScheduler
from sagemaker_async._protocol.freshness import Outcome
from sagemaker_async._protocol.s3 import ListEntry, S3Location

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def loc(key: str, bucket: str = "bkt") -> S3Location:
    return S3Location(bucket, key)


def entry(key: str, size: int = 3, at: datetime.datetime = T0) -> ListEntry:
    return ListEntry(key, at, size)


class ScriptedLister:
    """Answers ``list_wanted`` from a dict of keys, ``page`` keys a page, or raises."""

    def __init__(self, keys: dict[str, ListEntry] | None = None, page: int = 1000) -> None:
        self.keys = keys or {}
        self.page = page
        self.calls: list[tuple[str, str, str | None]] = []
        self.raises: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.called = asyncio.Event()
        self.pace_free: list[int] = []
        self.scheduler: PollScheduler | None = None

    async def list_wanted(
        self, bucket: str, prefix: str, token: str | None, wanted: Container[str]
    ) -> tuple[list[ListEntry], int, str | None]:
        self.calls.append((bucket, prefix, token))
        self.called.set()
        if self.scheduler is not None:
            self.pace_free.append(self.scheduler.pace._value)
        if self.gate is not None:
            await self.gate.wait()
        if self.raises is not None:
            raise self.raises
        names = sorted(k for k in self.keys if k.startswith(prefix))
        start = int(token or 0)
        chunk = names[start : start + self.page]
        more = start + self.page < len(names)
        found = [self.keys[k] for k in chunk if k in wanted]
        return found, len(chunk), str(start + self.page) if more else None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Ticks:
    """The watcher's sleep, stepped by the test: a tick ends the sleeps begun so far, and
    moves the clock to their end."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.delays: list[float] = []
        self._seen = 0
        self._changed = asyncio.Event()
        self._go = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self._changed.set()
        start = self.clock.now
        await self._go.wait()
        self.clock.now = max(self.clock.now, start + delay)

    async def listed(self) -> None:
        """Until one more watcher sleep began (a listing ended) than seen before."""
        while len(self.delays) <= self._seen:
            self._changed.clear()
            await self._changed.wait()
        self._seen += 1

    def tick(self) -> None:
        self._go.set()
        self._go = asyncio.Event()


def watches(lister: ScriptedLister, ticks: Ticks, **kwargs: Any) -> WatchedPrefixes:
    scheduler = PollScheduler()
    lister.scheduler = scheduler
    return WatchedPrefixes(lister, scheduler, sleep=ticks.sleep, monotonic=ticks.clock, **kwargs)


def register(
    watched: WatchedPrefixes,
    count: int,
    *,
    out: str = "out/",
    fail: str | None = "out/",
    submitted: datetime.datetime | None = None,
    poll_interval: float = 1.0,
) -> list[Interest]:
    return [
        watched.register(
            loc(f"{out}{n}.out"),
            None if fail is None else loc(f"{fail}{n}-error.out"),
            submitted,
            poll_interval,
        )
        for n in range(count)
    ]


def waker(interest: Interest) -> list[None]:
    """The wait's wake-up, recorded: a listing's answer or a release calls it."""
    calls: list[None] = []
    interest.wake = lambda: calls.append(None)
    return calls


def head(size: int = 3, at: datetime.datetime = T0) -> ObjectHead:
    return ObjectHead(last_modified=at, content_length=size)


def test_prefix_of() -> None:
    assert prefix_of("out/a/x.out") == "out/a/"
    assert prefix_of("x.out") == ""
    assert prefix_of("out//x") == "out//"


async def test_fewer_waits_than_the_threshold_are_not_watched() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 7)
    # another bucket's prefix is its own watch: 7 + 7 waits are not 8 on one prefix
    others = [watched.register(loc(f"out/{n}.out", "other"), None, None, 1.0) for n in range(7)]
    await asyncio.sleep(0)
    assert not any(watched.watched(i) for i in interests + others)
    assert lister.calls == []


async def test_one_listing_answers_every_wait_on_the_prefix_due_or_not() -> None:
    lister = ScriptedLister({"out/3.out": entry("out/3.out", 7), "out/x": entry("out/x")})
    ticks = Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    assert all(watched.watched(i) for i in interests)  # from the 8th on: no HEADs
    await ticks.listed()
    assert lister.calls == [("bkt", "out/", None)]  # one page
    assert interests[3].answer == (Outcome.OUTPUT, head(7))
    assert [i.answer for n, i in enumerate(interests) if n != 3] == [None] * 7
    # the next listing finds more, for waits that were not due for a look at all
    lister.keys["out/5-error.out"] = entry("out/5-error.out")
    ticks.tick()
    await ticks.listed()
    assert interests[5].answer == (Outcome.FAILURE, None)
    for interest in interests:
        watched.unregister(interest)


async def test_output_and_failure_prefixes_are_watched_each() -> None:
    lister = ScriptedLister({"fail/2-error.out": entry("fail/2-error.out")})
    ticks = Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8, fail="fail/")
    await ticks.listed()
    await ticks.listed()
    assert sorted(call[1] for call in lister.calls) == ["fail/", "out/"]
    assert interests[2].answer == (Outcome.FAILURE, None)
    for interest in interests:
        watched.unregister(interest)


async def test_a_listing_applies_the_freshness_rule() -> None:
    submitted = datetime.datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)
    before, after = submitted - datetime.timedelta(seconds=1), submitted
    later = submitted + datetime.timedelta(seconds=1)
    lister = ScriptedLister(
        {
            "out/0.out": entry("out/0.out", at=before),  # a previous run's: ignored
            "out/1.out": entry("out/1.out", at=before),
            "out/1-error.out": entry("out/1-error.out", at=after),  # the fresh failure
            "out/2.out": entry("out/2.out", at=after),
            "out/2-error.out": entry("out/2-error.out", at=later),  # the later one wins
        }
    )
    ticks = Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8, submitted=submitted)
    await ticks.listed()
    assert interests[0].answer is None
    assert interests[1].answer == (Outcome.FAILURE, head(at=before))
    assert interests[2].answer == (Outcome.FAILURE, head(at=after))
    lister.keys["out/0.out"] = entry("out/0.out", 9, at=later)  # this run's output, now
    ticks.tick()
    await ticks.listed()
    assert interests[0].answer == (Outcome.OUTPUT, head(9, at=later))
    for interest in interests:
        watched.unregister(interest)


async def test_an_answer_wakes_the_sleeping_wait() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    woken = waker(interests[4])
    await ticks.listed()
    assert not woken
    lister.keys["out/4.out"] = entry("out/4.out")
    ticks.tick()
    await ticks.listed()
    assert woken
    for interest in interests:
        watched.unregister(interest)


@pytest.mark.parametrize(
    ("waits", "page", "objects", "interval", "expected"),
    [
        (8, 1000, 0, 1.0, 30 * 1 / 8),  # one page for 8 waits: as many pages as HEADs at 30 s
        (40, 1000, 0, 1.0, 1.0),  # 30 × 1 / 40 < 1 s: the waits' poll interval
        (40, 1000, 0, 2.5, 2.5),
        (40, 10, 100, 1.0, 30 * 10 / 40),  # 10 pages
    ],
)
async def test_the_cadence_is_the_poll_interval_never_more_pages_than_heads(
    waits: int, page: int, objects: int, interval: float, expected: float
) -> None:
    keys = {f"out/old-{n:03}": entry(f"out/old-{n:03}") for n in range(objects)}
    lister, ticks = ScriptedLister(keys, page=page), Ticks()
    watched = watches(lister, ticks, keys_factor=100)
    interests = register(watched, waits, poll_interval=interval)
    await ticks.listed()
    assert ticks.delays == [pytest.approx(expected)]
    for interest in interests:
        watched.unregister(interest)


async def test_a_prefix_with_far_more_keys_than_waits_goes_back_to_heads() -> None:
    old = {f"out/old-{n:04}": entry(f"out/old-{n:04}") for n in range(50)}
    lister, ticks = ScriptedLister(old, page=10), Ticks()
    watched = watches(lister, ticks, min_page_keys=20, keys_factor=1, cooldown=60.0)
    interests = register(watched, 8, fail=None)
    woken = waker(interests[0])
    await lister.called.wait()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(lister.calls) == 2  # 20 keys seen of a cap of max(20, 1 × 8 keys): stop
    assert woken  # the waits are woken to look with HEADs
    assert not any(watched.watched(i) for i in interests)
    # Within the cooldown the prefix is not watched again, however many wait on it.
    more = register(watched, 100, out="out/more-", fail=None)
    await asyncio.sleep(0)
    assert len(lister.calls) == 2
    assert not any(watched.watched(i) for i in more)
    ticks.clock.now = 61.0
    late = watched.register(loc("out/late.out"), None, None, 1.0)
    assert watched.watched(late)  # cooled down: watched again
    for interest in [*interests, *more, late]:
        watched.unregister(interest)


async def test_more_pages_than_waits_goes_back_to_heads() -> None:
    old = {f"out/old-{n:04}": entry(f"out/old-{n:04}") for n in range(50)}
    lister, ticks = ScriptedLister(old, page=5), Ticks()
    watched = watches(lister, ticks, keys_factor=1000)
    interests = register(watched, 8, fail=None)
    task = next(iter(watched._watches.values())).task
    assert task is not None
    await task  # 10 pages for 8 waits: the watch ends after answering what it read
    assert len(lister.calls) == 10
    assert ticks.delays == []
    assert not any(watched.watched(i) for i in interests)
    for interest in interests:
        watched.unregister(interest)


@pytest.mark.parametrize(
    "error",
    [
        ServiceError("denied", code="AccessDenied", status_code=403),
        ServiceError("no", code="InvalidArgument", status_code=400),
        ServiceError("not XML", code="MalformedResponse", status_code=200),
        RuntimeError("a bug"),
    ],
)
async def test_a_denied_malformed_or_failed_listing_goes_back_to_heads(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    lister, ticks = ScriptedLister(), Ticks()
    lister.raises = error
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    woken = waker(interests[0])
    task = next(iter(watched._watches.values())).task
    assert task is not None
    await task  # ends without raising: the waits' own HEADs answer, or raise, instead
    assert woken
    assert not any(watched.watched(i) for i in interests)
    assert all(i.answer is None for i in interests)
    more = register(watched, 8, out="out/more-")
    assert not any(watched.watched(i) for i in more)  # cooling down
    assert len(lister.calls) == 1
    for interest in interests + more:
        watched.unregister(interest)


@pytest.mark.parametrize(
    "error",
    [
        ServiceError("slow down", code="SlowDown", status_code=503),
        ServiceError("oops", code="InternalError", status_code=500),
        TransportError("reset"),
    ],
)
async def test_weather_skips_a_round_and_the_watch_goes_on(error: Exception) -> None:
    lister, ticks = ScriptedLister({"out/1.out": entry("out/1.out")}), Ticks()
    lister.raises = error
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    await ticks.listed()
    assert all(watched.watched(i) for i in interests)
    assert interests[1].answer is None
    lister.raises = None
    ticks.tick()
    await ticks.listed()
    assert interests[1].answer == (Outcome.OUTPUT, head())
    for interest in interests:
        watched.unregister(interest)


async def test_a_listing_holds_one_look_slot() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    await ticks.listed()
    assert lister.pace_free == [63]  # of MAX_LOOKS_IN_FLIGHT = 64
    for interest in interests:
        watched.unregister(interest)


async def test_the_last_wait_leaving_cancels_the_watch() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    lister.gate = asyncio.Event()
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    await lister.called.wait()  # a listing in flight
    task = next(iter(watched._watches.values())).task
    assert task is not None
    for interest in interests:
        watched.unregister(interest)
    await asyncio.wait({task})
    assert task.cancelled()
    assert watched._watches == {}
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_the_watch_ends_when_fewer_than_half_the_threshold_remain() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    watched = watches(lister, ticks)
    interests = register(watched, 8)
    await ticks.listed()
    for interest in interests[:4]:
        watched.unregister(interest)
    ticks.tick()
    await ticks.listed()  # 4 of a threshold of 8: still watched
    assert len(lister.calls) == 2
    woken = waker(interests[7])
    watched.unregister(interests[4])
    task = next(iter(watched._watches.values())).task
    assert task is not None
    ticks.tick()
    await task
    assert len(lister.calls) == 2  # 3 left: not listed again
    assert woken  # woken to poll with HEADs
    assert not watched.watched(interests[7])
    for interest in interests[5:]:
        watched.unregister(interest)


# -- whole waits through the client, on the mock transport --------------------------------

S3 = "https://my-bucket.s3.amazonaws.com"
SUBMITTED = datetime.datetime(2026, 11, 26, 0, 18, 21, tzinfo=UTC)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    router = new_router()
    yield router
    router.assert_all_called()


def listing(entries: list[tuple[str, str, int]]) -> bytes:
    contents = "".join(
        f"<Contents><Key>{quote(key)}</Key><LastModified>{at}</LastModified>"
        f"<ETag>&quot;x&quot;</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>"
        for key, at, size in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>my-bucket</Name><Prefix>out/</Prefix><KeyCount>1</KeyCount>"
        "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
        f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


def invocations(count: int) -> list[AsyncInvocation]:
    return [
        AsyncInvocation(
            f"i{n}",
            f"s3://my-bucket/out/{n}.out",
            f"s3://my-bucket/out/{n}-error.out",
            submitted_at=SUBMITTED,
        )
        for n in range(count)
    ]


async def test_waits_are_answered_by_a_listing_equal_to_botocores(
    router: respx.MockRouter,
) -> None:
    fresh, stale = "2026-11-26T00:18:21.000Z", "2026-11-26T00:18:20.000Z"
    page = listing(
        [
            ("out/0.out", fresh, 2),  # fresh output
            ("out/1.out", stale, 2),  # a previous run's output: ignored...
            ("out/1-error.out", fresh, 4),  # ...the fresh failure answers
            ("out/2.out", fresh, 50),  # too large for max_bytes: no GET
            ("out/3.out", fresh, 2),
            ("out/3-error.out", "2026-11-26T00:18:22.000Z", 4),  # later failure wins
            *((f"out/{n}.out", fresh, 2) for n in range(4, 8)),
        ]
    )
    lists = router.get(S3, params={"list-type": "2"}).mock(
        return_value=httpx.Response(200, content=page)
    )
    router.get(f"{S3}/out/0.out").mock(return_value=httpx.Response(200, content=b"ok"))
    router.get(f"{S3}/out/1-error.out").mock(return_value=httpx.Response(200, content=b"boom"))
    router.get(f"{S3}/out/3-error.out").mock(return_value=httpx.Response(200, content=b"late"))
    router.get(url__regex=rf"{S3}/out/[4-7]\.out").mock(
        return_value=httpx.Response(200, content=b"ok")
    )
    theirs = botocore_request(
        boto3_s3("us-east-1"), "list_objects_v2", Bucket="my-bucket", Prefix="out/", MaxKeys=1000
    )
    amz_date = datetime.datetime.strptime(header(theirs, "X-Amz-Date"), "%Y%m%dT%H%M%SZ")
    signed_at = amz_date.replace(tzinfo=UTC).timestamp()
    client, _ = make_client(router, random=lambda: 0.0, clock=lambda: signed_at)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=60, max_bytes=10) for inv in invocations(8)),
            return_exceptions=True,
        )
    assert results[0] == InferenceResult(b"ok", "s3://my-bucket/out/0.out", None)
    assert "boom" in str(results[1])
    assert isinstance(results[2], ResultTooLargeError)
    assert "late" in str(results[3])
    assert [r.body for r in results[4:] if isinstance(r, InferenceResult)] == [b"ok"] * 4
    assert lists.call_count == 1  # and not one HEAD (the router is strict)
    ours = lists.calls.last.request
    assert str(ours.url) == theirs.url
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
        assert ours.headers[name] == header(theirs, name), name


class FakeTime:
    """Monotonic time that a sleep moves forward to its own end (never back)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now = max(self.now, self.now + delay)
        await asyncio.sleep(0)


async def test_a_watched_wait_makes_one_look_of_its_own_at_its_deadline(
    router: respx.MockRouter,
) -> None:
    router.get(S3, params={"list-type": "2"}).mock(
        return_value=httpx.Response(200, content=listing([]))
    )
    heads = router.head(host="my-bucket.s3.amazonaws.com").mock(return_value=httpx.Response(404))
    fake = FakeTime()
    client, _ = make_client(router, monotonic=fake.monotonic, poll_sleep=fake.sleep)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=10) for inv in invocations(8)),
            return_exceptions=True,
        )
    assert all(isinstance(result, WaitTimeoutError) for result in results), results
    assert heads.call_count == 16  # the output and failure HEADs of each, at the deadline


async def test_a_malformed_listing_sends_the_waits_back_to_heads(
    router: respx.MockRouter,
) -> None:
    router.get(S3, params={"list-type": "2"}).mock(
        return_value=httpx.Response(200, content=b"<ListBucketResult><Contents>")
    )
    heads = router.head(url__regex=rf"{S3}/out/\d+\.out").mock(
        return_value=httpx.Response(200, headers={"Last-Modified": "Thu, 26 Nov 2026 00:18:21 GMT"})
    )
    router.head(url__regex=rf"{S3}/out/\d+-error\.out").mock(return_value=httpx.Response(404))
    router.get(url__regex=rf"{S3}/out/\d+\.out").mock(
        return_value=httpx.Response(200, content=b"ok")
    )
    client, _ = make_client(router)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=60) for inv in invocations(8))
        )
    assert [result.body for result in results] == [b"ok"] * 8
    assert heads.call_count == 8  # one look of each wait's own, as before


async def test_a_few_waits_send_heads_at_once_without_a_listing(
    router: respx.MockRouter,
) -> None:
    heads = router.head(host="my-bucket.s3.amazonaws.com").mock(return_value=httpx.Response(404))
    client, _ = make_client(router)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=0) for inv in invocations(3)),
            return_exceptions=True,
        )
    assert all("no result" in str(result) for result in results)
    assert heads.call_count == 6
    looks = client._results.looks
    assert looks is not None
    assert looks._watches == {}  # every interest dropped


async def test_a_watch_lists_first_when_its_earliest_wait_would_look() -> None:
    lister, ticks = ScriptedLister(), Ticks()
    watched = watches(lister, ticks)
    # A listener's fallback checks: the first one a minute away, each wait its own.
    interests = [
        watched.register(loc(f"out/{n}.out"), None, None, 60.0, first_look=60.0 - n)
        for n in range(8)
    ]
    await ticks.listed()
    assert ticks.delays == [53.0]  # until the earliest, not at once
    assert lister.calls == []
    ticks.tick()
    await ticks.listed()
    assert len(lister.calls) == 1
    for interest in interests:
        watched.unregister(interest)


async def test_a_wait_that_looks_sooner_brings_the_next_listing_forward() -> None:
    lister, ticks = ScriptedLister({"out/soon.out": entry("out/soon.out")}), Ticks()
    watched = watches(lister, ticks)
    slow = [
        watched.register(loc(f"out/{n}.out"), None, None, 60.0, first_look=60.0) for n in range(8)
    ]
    await ticks.listed()  # asleep for a minute
    assert lister.calls == []
    soon = watched.register(loc("out/soon.out"), None, None, 1.0)  # looks now
    await lister.called.wait()  # listed without a tick: the watch was woken
    await ticks.listed()
    assert soon.answer == (Outcome.OUTPUT, head())
    # Listed, the watch keeps the cadence of its quickest wait: 30 × 1 page / 9 waits.
    assert ticks.delays[-1] == pytest.approx(30 / 9)
    for interest in [*slow, soon]:
        watched.unregister(interest)


async def test_the_objects_of_answered_waits_do_not_stop_the_watch() -> None:
    keys = {f"out/{n}.out": entry(f"out/{n}.out") for n in range(10)}
    lister, ticks = ScriptedLister({**keys, "out/old": entry("out/old")}), Ticks()
    watched = watches(lister, ticks, min_watch=2, min_page_keys=10, keys_factor=1)
    interests = register(watched, 12, fail=None)
    await ticks.listed()
    assert all(interest.answer is not None for interest in interests[:10])
    for interest in interests[:10]:
        watched.unregister(interest)
    ticks.tick()
    await ticks.listed()  # 11 objects for 2 waits, but 10 are of waits it answered
    assert len(lister.calls) == 2
    assert all(watched.watched(interest) for interest in interests[10:])
    for interest in interests[10:]:
        watched.unregister(interest)
