"""Batched looks: one ListObjectsV2 of a prefix in place of many waits' HEADs.

First ``BatchedLooks`` alone over a scripted lister (grouping, the guards, the fallbacks,
cancellation, pacing), then whole waits through the client on the mock transport (the
listing equals botocore's; freshness and ``max_bytes`` read from the listing; no HEAD
sent). The gathering window is 0 here: the looks of one loop iteration form a batch.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
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
)
from sagemaker_async._io.looks import BatchedLooks, prefix_of
from sagemaker_async._io.s3_objects import ObjectHead
from sagemaker_async._io.schedule import PollScheduler
from sagemaker_async._protocol.s3 import ListEntry, S3Location

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def loc(key: str, bucket: str = "bkt") -> S3Location:
    return S3Location(bucket, key)


class ScriptedLister:
    """Answers ``list_page`` from a dict of keys, ``page`` keys a page, or raises."""

    def __init__(self, keys: dict[str, ListEntry] | None = None, page: int = 1000) -> None:
        self.keys = keys or {}
        self.page = page
        self.calls: list[tuple[str, str, str | None, bool]] = []
        self.called = asyncio.Event()
        self.raises: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.pace_free: list[int] = []
        self.scheduler: PollScheduler | None = None

    async def list_page(
        self, bucket: str, prefix: str, token: str | None, *, retries: bool = True
    ) -> tuple[list[ListEntry], str | None]:
        self.calls.append((bucket, prefix, token, retries))
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
        return [self.keys[k] for k in chunk], str(start + self.page) if more else None


def entry(key: str, size: int = 3, at: datetime.datetime = T0) -> ListEntry:
    return ListEntry(key, at, size)


def looks(lister: ScriptedLister, **kwargs: Any) -> BatchedLooks:
    kwargs.setdefault("window", 0.0)
    scheduler = PollScheduler()
    lister.scheduler = scheduler
    return BatchedLooks(lister, scheduler, **kwargs)


def test_prefix_of() -> None:
    assert prefix_of("out/a/x.out") == "out/a/"
    assert prefix_of("x.out") == ""
    assert prefix_of("out//x") == "out//"


async def test_one_listing_answers_every_wait_due_on_a_prefix() -> None:
    lister = ScriptedLister({"out/3.out": entry("out/3.out", 7), "out/x": entry("out/x")})
    batcher = looks(lister)
    found = await asyncio.gather(
        *(batcher.find(loc(f"out/{n}.out"), loc(f"out/{n}-error.out")) for n in range(8))
    )
    assert lister.calls == [("bkt", "out/", None, False)]  # one page, no retry quota
    assert found[3] == (ObjectHead(last_modified=T0, content_length=7), None)
    assert all(answer == (None, None) for n, answer in enumerate(found) if n != 3)


async def test_output_and_failure_prefixes_are_listed_each_once() -> None:
    lister = ScriptedLister({"fail/2-error.out": entry("fail/2-error.out")})
    batcher = looks(lister)
    found = await asyncio.gather(
        *(batcher.find(loc(f"out/{n}.out"), loc(f"fail/{n}-error.out")) for n in range(8))
    )
    assert sorted(call[1] for call in lister.calls) == ["fail/", "out/"]
    assert found[2] == (None, ObjectHead(last_modified=T0, content_length=3))


async def test_too_few_due_go_back_to_heads_without_a_listing() -> None:
    lister = ScriptedLister()
    batcher = looks(lister)
    # 3 waits × 2 keys = 6 < 8 on one prefix; another bucket's prefix is its own group
    found = await asyncio.gather(
        *(batcher.find(loc(f"out/{n}.out"), loc(f"out/{n}.err")) for n in range(3)),
        *(batcher.find(loc(f"out/{n}.out", "other"), None) for n in range(7)),
    )
    assert found == [None] * 10
    assert lister.calls == []


async def test_a_prefix_holding_far_more_keys_than_looks_goes_back_to_heads() -> None:
    old = {f"out/old-{n:04}": entry(f"out/old-{n:04}") for n in range(50)}
    lister = ScriptedLister(old, page=10)
    batcher = looks(lister, min_page_keys=20, keys_factor=2, cooldown=60.0)
    due = [batcher.find(loc(f"out/{n}.out"), None) for n in range(8)]
    assert await asyncio.gather(*due) == [None] * 8
    assert len(lister.calls) == 2  # 20 keys seen of a cap of max(20, 2 × 8): stop
    # Within the cooldown the prefix is not listed again, however many are due.
    again = [batcher.find(loc(f"out/{n}.out"), None) for n in range(100)]
    assert await asyncio.gather(*again) == [None] * 100
    assert len(lister.calls) == 2


async def test_one_page_past_the_cap_answers_its_batch_then_heads() -> None:
    old = {f"out/old-{n:04}": entry(f"out/old-{n:04}") for n in range(50)}
    lister = ScriptedLister({**old, "out/1.out": entry("out/1.out")})
    batcher = looks(lister, min_page_keys=20, keys_factor=2)
    found = await asyncio.gather(*(batcher.find(loc(f"out/{n}.out"), None) for n in range(8)))
    assert found[1] == (ObjectHead(last_modified=T0, content_length=3), None)
    assert found[0] == (None, None)
    again = [batcher.find(loc(f"out/{n}.out"), None) for n in range(8)]
    assert await asyncio.gather(*again) == [None] * 8
    assert len(lister.calls) == 1


async def test_a_long_listing_within_the_cap_is_followed_to_its_end() -> None:
    keys = {f"out/{n}.out": entry(f"out/{n}.out") for n in range(0, 40, 2)}
    lister = ScriptedLister(keys, page=5)
    batcher = looks(lister, min_page_keys=1000)
    found = await asyncio.gather(*(batcher.find(loc(f"out/{n}.out"), None) for n in range(40)))
    assert len(lister.calls) == 4
    assert [answer is not None and answer[0] is not None for answer in found] == [
        n % 2 == 0 for n in range(40)
    ]


@pytest.mark.parametrize(
    "error",
    [
        ServiceError("denied", code="AccessDenied", status_code=403),
        ServiceError("no", code="InvalidArgument", status_code=400),
        ServiceError("not XML", code="MalformedResponse", status_code=200),
    ],
)
async def test_a_denied_or_malformed_listing_goes_back_to_heads(error: ServiceError) -> None:
    lister = ScriptedLister()
    lister.raises = error
    batcher = looks(lister)
    assert (
        await asyncio.gather(*(batcher.find(loc(f"o/{n}"), None) for n in range(8))) == [None] * 8
    )
    assert (
        await asyncio.gather(*(batcher.find(loc(f"o/{n}"), None) for n in range(8))) == [None] * 8
    )
    assert len(lister.calls) == 1  # cooling down: not listed again at once


@pytest.mark.parametrize(
    "error",
    [
        ServiceError("slow down", code="SlowDown", status_code=503),
        ServiceError("oops", code="InternalError", status_code=500),
        TransportError("reset"),
    ],
)
async def test_weather_during_a_listing_is_raised_to_every_wait(error: Exception) -> None:
    lister = ScriptedLister()
    lister.raises = error
    batcher = looks(lister)
    results = await asyncio.gather(
        *(batcher.find(loc(f"o/{n}"), loc(f"o/{n}.e")) for n in range(8)),
        return_exceptions=True,
    )
    assert all(result is error for result in results)
    lister.raises = None  # no cooldown for weather: the next look lists again
    await asyncio.gather(*(batcher.find(loc(f"o/{n}"), None) for n in range(8)))
    assert len(lister.calls) == 2


async def test_the_listing_holds_one_look_slot() -> None:
    lister = ScriptedLister()
    batcher = looks(lister)
    await asyncio.gather(*(batcher.find(loc(f"o/{n}"), None) for n in range(8)))
    assert lister.pace_free == [63]  # of MAX_LOOKS_IN_FLIGHT = 64


async def test_cancelling_one_wait_leaves_the_listing_for_the_others() -> None:
    lister = ScriptedLister({"o/1": entry("o/1")})
    lister.gate = asyncio.Event()
    batcher = looks(lister)
    tasks = [asyncio.ensure_future(batcher.find(loc(f"o/{n}"), None)) for n in range(8)]
    await lister.called.wait()
    tasks[0].cancel()
    lister.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1] == (ObjectHead(last_modified=T0, content_length=3), None)


async def test_cancelling_every_wait_cancels_the_listing() -> None:
    lister = ScriptedLister()
    lister.gate = asyncio.Event()
    batcher = looks(lister)
    tasks = [asyncio.ensure_future(batcher.find(loc(f"o/{n}"), None)) for n in range(8)]
    await lister.called.wait()
    listings = set(batcher._tasks)
    assert len(listings) == 1
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.wait(listings)
    assert all(listing.cancelled() for listing in listings)
    assert asyncio.all_tasks() == {asyncio.current_task()}


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


def batched_client(router: respx.MockRouter, window: float = 0.0, **kwargs: Any) -> Any:
    client, _ = make_client(router, random=lambda: 0.0, **kwargs)
    waiter = client._results
    waiter.looks = BatchedLooks(client._s3, waiter.scheduler, window=window)
    return client


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
        ]
    )
    lists = router.get(S3, params={"list-type": "2"}).mock(
        return_value=httpx.Response(200, content=page)
    )
    router.get(f"{S3}/out/0.out").mock(return_value=httpx.Response(200, content=b"ok"))
    router.get(f"{S3}/out/1-error.out").mock(return_value=httpx.Response(200, content=b"boom"))
    router.get(f"{S3}/out/3-error.out").mock(return_value=httpx.Response(200, content=b"late"))
    theirs = botocore_request(
        boto3_s3("us-east-1"), "list_objects_v2", Bucket="my-bucket", Prefix="out/", MaxKeys=1000
    )
    amz_date = datetime.datetime.strptime(header(theirs, "X-Amz-Date"), "%Y%m%dT%H%M%SZ")
    signed_at = amz_date.replace(tzinfo=UTC).timestamp()
    client = batched_client(router, clock=lambda: signed_at)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=0, max_bytes=10) for inv in invocations(8)),
            return_exceptions=True,
        )
    assert results[0] == InferenceResult(b"ok", "s3://my-bucket/out/0.out", None)
    assert "boom" in str(results[1])
    assert isinstance(results[2], ResultTooLargeError)
    assert "late" in str(results[3])
    assert all("no result" in str(result) for result in results[4:])  # timeout 0: one look
    assert lists.call_count == 1  # and not one HEAD (the router is strict)
    ours = lists.calls.last.request
    assert str(ours.url) == theirs.url
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
        assert ours.headers[name] == header(theirs, name), name


async def test_a_malformed_listing_sends_the_waits_back_to_heads(
    router: respx.MockRouter,
) -> None:
    router.get(S3, params={"list-type": "2"}).mock(
        return_value=httpx.Response(200, content=b"<ListBucketResult><Contents>")
    )
    heads = router.head(host="my-bucket.s3.amazonaws.com").mock(return_value=httpx.Response(404))
    client = batched_client(router)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=0) for inv in invocations(4)),
            return_exceptions=True,
        )
    assert all("no result" in str(result) for result in results)
    assert heads.call_count == 8  # the output and failure HEADs of each wait, as before


async def test_an_unexpected_error_of_a_listing_reaches_every_wait() -> None:
    lister = ScriptedLister()
    lister.raises = RuntimeError("a bug")
    batcher = looks(lister)
    results = await asyncio.gather(
        *(batcher.find(loc(f"o/{n}"), None) for n in range(8)), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)  # none left hanging


async def test_a_few_waits_send_heads_at_once_without_gathering(
    router: respx.MockRouter,
) -> None:
    heads = router.head(host="my-bucket.s3.amazonaws.com").mock(return_value=httpx.Response(404))
    # A window long enough to hang the test: 3 waits (6 keys < 8) never wait for it.
    client = batched_client(router, window=3600.0)
    async with client:
        results = await asyncio.gather(
            *(client.wait_for_result(inv, timeout=0) for inv in invocations(3)),
            return_exceptions=True,
        )
    assert all("no result" in str(result) for result in results)
    assert heads.call_count == 6
    assert client._results._waiting == 0
