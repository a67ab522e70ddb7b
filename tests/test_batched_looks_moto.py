"""Batched looks end to end against moto's server: listings replace HEADs, bodies are right.

Requests are counted at the transport (the client's own, wrapped). The waits' poll sleeps
are gated by the test, so each round of looks is a step it controls: nothing sleeps.
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
from sagemaker_async._io.looks import BatchedLooks
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


class Rounds:
    """A poll sleep the test releases: the waits sleeping count as one finished round."""

    def __init__(self) -> None:
        self.sleeping = 0
        self.changed = asyncio.Event()
        self.release = asyncio.Event()

    async def sleep(self, delay: float) -> None:
        self.sleeping += 1
        self.changed.set()
        try:
            await self.release.wait()
        finally:
            self.sleeping -= 1

    async def until_sleeping(self, count: int) -> None:
        while self.sleeping < count:
            self.changed.clear()
            await self.changed.wait()


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


async def test_many_waits_on_one_prefix_are_answered_by_listings(server: MotoServer) -> None:
    submitted = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    for n in range(0, WAITS, 2):  # half are there at the first look
        put(server, f"out/{n}.out", f"body {n}".encode())
    transport = CountingTransport()
    rounds = Rounds()
    async with server.client(transport=transport, _runtime=Runtime(poll_sleep=rounds.sleep)) as c:
        tasks = [
            asyncio.ensure_future(c.wait_for_result(inv, timeout=60, poll_interval=0.01))
            for inv in invocations(submitted)
        ]
        await rounds.until_sleeping(WAITS // 2)  # the first round: half found, half wait
        for n in range(1, WAITS, 2):
            if n == 5:
                put(server, "out/5-error.out", b"model crashed")
            else:
                put(server, f"out/{n}.out", f"body {n}".encode())
        rounds.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for n, result in enumerate(results):
        if n == 5:
            assert isinstance(result, InferenceFailedError)
            assert "model crashed" in str(result)
        else:
            assert not isinstance(result, BaseException), result
            assert result.body == f"body {n}".encode()
    # Two rounds of looks: each one listing of out/ instead of 2 HEADs per waiting wait
    # (24 + 12 waits: 72 HEADs), then the GET of each object found.
    assert transport.counts["LIST"] == 2
    assert transport.counts["HEAD"] == 0
    assert transport.counts["GET"] == WAITS


async def test_a_prefix_full_of_old_objects_falls_back_to_heads(server: MotoServer) -> None:
    for n in range(30):  # an old run's outputs, unrelated to the waits
        put(server, f"out/old-{n}.out", b"old")
    submitted = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    transport = CountingTransport()
    rounds = Rounds()
    async with server.client(transport=transport, _runtime=Runtime(poll_sleep=rounds.sleep)) as c:
        waiter = c._results
        # The guards scaled down (1,000 old objects would make a slow test): a listing of
        # more than max(20, 1 × due) keys is not repeated; the next looks are HEADs.
        waiter.looks = BatchedLooks(c._s3, waiter.scheduler, min_page_keys=20, keys_factor=1)
        tasks = [
            asyncio.ensure_future(c.wait_for_result(inv, timeout=60, poll_interval=0.01))
            for inv in invocations(submitted)[:10]
        ]
        await rounds.until_sleeping(10)
        assert (transport.counts["LIST"], transport.counts["HEAD"]) == (1, 0)
        for n in range(10):
            put(server, f"out/{n}.out", f"body {n}".encode())
        rounds.release.set()
        results: list[Any] = await asyncio.gather(*tasks)
    assert [result.body for result in results] == [f"body {n}".encode() for n in range(10)]
    assert transport.counts["LIST"] == 1  # not listed again: the prefix is cooling down
    assert transport.counts["HEAD"] == 20  # output and failure HEADs of each wait
    assert transport.counts["GET"] == 10
