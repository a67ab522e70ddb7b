"""Watched prefixes end to end against moto's server: listings replace HEADs, bodies right.

Requests are counted at the transport (the client's own, wrapped). The watcher's sleeps are
stepped by the test, so each listing is a step it controls: nothing sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sagemaker_async import AsyncInvocation, InferenceFailedError
from sagemaker_async._io.http11.transport import LeanTransport
from sagemaker_async._io.looks import WatchedPrefixes
from sagemaker_async._io.runtime import Runtime

if TYPE_CHECKING:
    from moto_server import MotoServer

pytest_plugins = ["moto_server"]

BUCKET = "batched"
WAITS = 24


class CountingTransport(httpx.AsyncBaseTransport):
    """Our transport, counting requests: listings, HEADs and GETs of objects."""

    def __init__(self) -> None:
        self._inner = LeanTransport()
        self.counts: collections.Counter[str] = collections.Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.params.get("list-type") == "2":
            self.counts["LIST"] += 1
        else:
            self.counts[request.method] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Ticks:
    """The watcher's sleep and clock, stepped by the test: a tick ends the sleep begun and
    moves the watcher's clock to its end."""

    def __init__(self) -> None:
        self.now = 0.0
        self._asleep = asyncio.Event()
        self._go = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self._asleep.set()
        start = self.now
        try:
            await self._go.wait()
        finally:
            self._go.clear()
        self.now = max(self.now, start + delay)

    async def listed(self) -> None:
        await self._asleep.wait()
        self._asleep.clear()

    def tick(self) -> None:
        self._go.set()


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    moto_server.boto3_s3().create_bucket(Bucket=BUCKET)
    return moto_server


def invocations(submitted: datetime.datetime) -> list[AsyncInvocation]:
    return [
        AsyncInvocation(
            f"i{n}",
            f"s3://{BUCKET}/out/{n}.out",
            f"s3://{BUCKET}/out/{n}-error.out",
            submitted_at=submitted,
        )
        for n in range(WAITS)
    ]


def put(server: MotoServer, key: str, body: bytes) -> None:
    server.boto3_s3().put_object(Bucket=BUCKET, Key=key, Body=body)


def watch_with(c: Any, ticks: Ticks, **kwargs: Any) -> None:
    waiter = c._results
    waiter.looks = WatchedPrefixes(
        c._s3, waiter.scheduler, sleep=ticks.sleep, monotonic=ticks.clock, **kwargs
    )


async def test_many_waits_on_one_prefix_are_answered_by_listings(server: MotoServer) -> None:
    submitted = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    for n in range(0, WAITS, 2):  # half are there at the first look
        put(server, f"out/{n}.out", f"body {n}".encode())
    transport = CountingTransport()
    ticks = Ticks()
    async with server.client(transport=transport) as c:
        watch_with(c, ticks)
        tasks = [
            asyncio.ensure_future(c.wait_for_result(inv, timeout=60, poll_interval=0.01))
            for inv in invocations(submitted)
        ]
        await ticks.listed()  # the first listing: half found, half wait
        for n in range(1, WAITS, 2):
            if n == 5:
                put(server, "out/5-error.out", b"model crashed")
            else:
                put(server, f"out/{n}.out", f"body {n}".encode())
        ticks.tick()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for n, result in enumerate(results):
        if n == 5:
            assert isinstance(result, InferenceFailedError)
            assert "model crashed" in str(result)
        else:
            assert not isinstance(result, BaseException), result
            assert result.body == f"body {n}".encode()
    # Two listings of out/ instead of 2 HEADs per wait per look, then the GET of each
    # object found (and of the failure object).
    assert transport.counts["LIST"] == 2
    assert transport.counts["HEAD"] == 0
    assert transport.counts["GET"] == WAITS


class Rounds:
    """The waits' poll sleep, released by the test; short sleeps count as a round of looks
    (a watched wait's sleep until its deadline does not)."""

    def __init__(self) -> None:
        self.sleeping = 0
        self.changed = asyncio.Event()
        self.release = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        short = delay < 1
        self.sleeping += short
        self.changed.set()
        try:
            await self.release.wait()
        finally:
            self.sleeping -= short

    async def until_sleeping(self, count: int) -> None:
        while self.sleeping < count:
            self.changed.clear()
            await self.changed.wait()


async def test_a_prefix_full_of_old_objects_falls_back_to_heads(server: MotoServer) -> None:
    for n in range(30):  # an old run's outputs, unrelated to the waits
        put(server, f"out/old-{n}.out", b"old")
    submitted = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    transport = CountingTransport()
    rounds = Rounds()
    async with server.client(transport=transport, _runtime=Runtime(poll_sleep=rounds.sleep)) as c:
        # The guards scaled down (1,000 old objects would make a slow test): a listing of
        # more than max(10, 1 × 10 keys looked for) keys is not repeated; HEADs look.
        waiter = c._results
        waiter.looks = WatchedPrefixes(c._s3, waiter.scheduler, min_page_keys=10, keys_factor=1)
        tasks = [
            asyncio.ensure_future(c.wait_for_result(inv, timeout=60, poll_interval=0.01))
            for inv in invocations(submitted)[:10]
        ]
        await rounds.until_sleeping(10)  # listed once, then a round of HEADs: nothing yet
        assert (transport.counts["LIST"], transport.counts["HEAD"]) == (1, 20)
        for n in range(10):
            put(server, f"out/{n}.out", f"body {n}".encode())
        rounds.release.set()
        results: list[Any] = await asyncio.gather(*tasks)
    assert [result.body for result in results] == [f"body {n}".encode() for n in range(10)]
    assert transport.counts["LIST"] == 1  # not listed again: the prefix is cooling down
    assert transport.counts["HEAD"] == 40  # output and failure HEADs of each wait, twice
    assert transport.counts["GET"] == 10
