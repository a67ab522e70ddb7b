"""Results you can trust: freshness, weather, size caps, streaming and downloads.

The pure freshness rule first, then the client on the mock seam (respx, strict) with a
fake clock for polls and recorded sleeps, and a few hostile bodies (short, cut mid-way,
gzip that must not be decoded). Nothing sleeps for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import os
import pickle
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from helpers import FAILURE, OUTPUT, make_client, new_router
from sagemaker_async import (
    AccessDeniedError,
    AsyncInvocation,
    DownloadedResult,
    InferenceFailedError,
    ParamValidationError,
    ResultStream,
    ResultTooLargeError,
    SageMakerAsyncError,
    ServiceError,
    TransportError,
    WaitTimeoutError,
)
from sagemaker_async._io.schedule import PollScheduler
from sagemaker_async._protocol.freshness import Outcome, decide_fresh, is_fresh, parse_http_date
from sagemaker_async._protocol.invoke import parse_invoke_response

S3 = "https://my-bucket.s3.amazonaws.com"
OUTPUT_URL = f"{S3}/out/inf-1.out"
FAILURE_URL = f"{S3}/failures/inf-1-error.out"

SUBMITTED = datetime(2026, 11, 26, 0, 18, 21, 750000, tzinfo=timezone.utc)
SUBMITTED_HTTP = "Thu, 26 Nov 2026 00:18:21 GMT"


def http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


OLD = http_date(SUBMITTED - timedelta(hours=1))
SAME_SECOND = http_date(SUBMITTED)  # 00:18:21, earlier than 00:18:21.75 but the same second
LATER = http_date(SUBMITTED + timedelta(seconds=5))
LATEST = http_date(SUBMITTED + timedelta(seconds=9))

INVOCATION = AsyncInvocation("inf-1", OUTPUT, FAILURE, "req-1", SUBMITTED)


# -- the pure rule ------------------------------------------


def test_parse_http_date() -> None:
    assert parse_http_date(SUBMITTED_HTTP) == SUBMITTED.replace(microsecond=0)
    assert parse_http_date("Thu, 26 Nov 2026 01:18:21 +0100") == SUBMITTED.replace(microsecond=0)
    parsed = parse_http_date(SUBMITTED_HTTP)
    assert parsed is not None
    assert parsed.tzinfo is not None
    for bad in (None, "", "yesterday", "Thu, 99 Nov 2026 00:18:21 GMT"):
        assert parse_http_date(bad) is None


def test_freshness_truncates_to_the_second() -> None:
    cutoff = SUBMITTED.replace(microsecond=0)
    assert is_fresh(SUBMITTED, cutoff)
    assert not is_fresh(SUBMITTED, cutoff - timedelta(seconds=1))
    assert is_fresh(None, cutoff - timedelta(days=9))  # no submitted_at: anything counts
    assert is_fresh(SUBMITTED, None)  # no Last-Modified: nothing to compare


@pytest.mark.parametrize(
    ("output", "failure", "expected"),
    [
        (False, False, Outcome.PENDING),
        ("old", False, Outcome.PENDING),
        (False, "old", Outcome.PENDING),
        ("old", "old", Outcome.PENDING),
        ("same", False, Outcome.OUTPUT),
        ("old", "later", Outcome.FAILURE),  # a reused id: the old output hides nothing
        ("later", "old", Outcome.OUTPUT),
        ("later", "latest", Outcome.FAILURE),  # both fresh: the later wins
        ("latest", "later", Outcome.OUTPUT),
        ("later", "later", Outcome.OUTPUT),  # a tie: the output
        (True, "later", Outcome.OUTPUT),  # age unknown counts, and wins a tie
    ],
)
def test_decide_fresh(output: Any, failure: Any, expected: Outcome) -> None:
    times = {
        "old": parse_http_date(OLD),
        "same": parse_http_date(SAME_SECOND),
        "later": parse_http_date(LATER),
        "latest": parse_http_date(LATEST),
    }
    assert decide_fresh(SUBMITTED, times.get(output, output), times.get(failure, failure)) is (
        expected
    )


def test_without_submitted_at_any_object_counts_and_later_still_wins() -> None:
    old, later = parse_http_date(OLD), parse_http_date(LATER)
    assert decide_fresh(None, old, False) is Outcome.OUTPUT
    assert decide_fresh(None, old, later) is Outcome.FAILURE


def test_submitted_at_comes_from_the_202_date() -> None:
    headers = httpx.Headers({"Date": SUBMITTED_HTTP, "x-amzn-RequestId": "r"})
    invocation = parse_invoke_response(202, headers, b'{"InferenceId": "x"}')
    assert invocation.submitted_at == SUBMITTED.replace(microsecond=0)
    assert invocation.submitted_at.tzinfo is not None
    bare = parse_invoke_response(202, httpx.Headers({}), b'{"InferenceId": "x"}')
    assert bare.submitted_at is None
    garbled = parse_invoke_response(202, httpx.Headers({"Date": "soon"}), b'{"InferenceId": "x"}')
    assert garbled.submitted_at is None


def test_models_keep_their_positional_fields() -> None:
    assert AsyncInvocation("i", OUTPUT, FAILURE, "r").submitted_at is None
    assert list(AsyncInvocation.__dataclass_fields__)[-1] == "submitted_at"
    from sagemaker_async import InferenceResult

    assert list(InferenceResult.__dataclass_fields__)[-1] == "content_encoding"
    assert "content_encoding=None" in repr(InferenceResult(b"x", OUTPUT))


def test_result_too_large_error() -> None:
    error = ResultTooLargeError("too big", location=OUTPUT, size=10)
    assert isinstance(error, SageMakerAsyncError)
    assert (error.location, error.size) == (OUTPUT, 10)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.location, copy.size, str(copy)) == (OUTPUT, 10, "too big")


# -- the client on the mock seam ------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    router = new_router()
    yield router
    router.assert_all_called()


def s3_client(router: respx.MockRouter, **kwargs: Any) -> tuple[Any, Any, FakeTime]:
    fake = FakeTime()
    client, sleeps = make_client(
        router, poll_sleep=fake.sleep, monotonic=fake.clock, random=lambda: 0.0, **kwargs
    )
    return client, sleeps, fake


def found(last_modified: str, **headers: str) -> httpx.Response:
    return httpx.Response(200, headers={"Last-Modified": last_modified, **headers})


async def test_a_stale_output_is_ignored_until_the_fresh_one_lands(
    router: respx.MockRouter,
) -> None:
    router.head(OUTPUT_URL).mock(side_effect=[found(OLD), found(OLD), found(LATER)])
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(200, content=b"new run"))
    client, _, fake = s3_client(router)
    async with client:
        result = await client.wait_for_result(INVOCATION, timeout=60)
    assert result.body == b"new run"
    assert len(fake.sleeps) == 2


async def test_a_new_failure_is_not_hidden_behind_an_old_output(
    router: respx.MockRouter,
) -> None:
    router.head(OUTPUT_URL).mock(return_value=found(OLD))
    router.head(FAILURE_URL).mock(side_effect=[httpx.Response(404), found(SAME_SECOND)])
    router.get(FAILURE_URL).mock(return_value=httpx.Response(200, content=b"new failure"))
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(InferenceFailedError, match="new failure"):
            await client.wait_for_result(INVOCATION, timeout=60)


async def test_poll_result_applies_the_rule_and_the_later_object_wins(
    router: respx.MockRouter,
) -> None:
    router.head(OUTPUT_URL).mock(side_effect=[found(OLD), found(LATER)])
    router.head(FAILURE_URL).mock(side_effect=[found(OLD), found(LATEST)])
    router.get(FAILURE_URL).mock(return_value=httpx.Response(200, content=b"failed later"))
    client, _, _ = s3_client(router)
    async with client:
        assert await client.poll_result(INVOCATION) is None
        with pytest.raises(InferenceFailedError, match="failed later"):
            await client.poll_result(INVOCATION)


async def test_stale_objects_time_out_rather_than_answer(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=found(OLD))
    router.head(FAILURE_URL).mock(return_value=found(OLD))
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_result(INVOCATION, timeout=5)


WEATHER: list[httpx.Response | Exception] = [
    httpx.Response(500, headers={"x-amz-request-id": "A"}),
    httpx.Response(503),
    httpx.Response(503, content=b"<Error><Code>SlowDown</Code></Error>"),
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
    httpx.RemoteProtocolError("reset"),
    httpx.PoolTimeout("no slot"),
    httpx.Response(429),
    httpx.Response(502),
]


async def test_weather_does_not_end_a_wait_and_spends_no_retry_quota(
    router: respx.MockRouter,
) -> None:
    router.head(OUTPUT_URL).mock(side_effect=[*WEATHER, found(LATER)])
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(200, content=b"made it"))
    client, retry_sleeps, fake = s3_client(router)
    quota = client._sender.retry.quota
    before = quota.available
    async with client:
        result = await client.wait_for_result(INVOCATION, timeout=3600, poll_interval=1)
    assert result.body == b"made it"
    assert retry_sleeps.delays == []  # no per-request retries: the wait's own schedule
    assert len(fake.sleeps) == len(WEATHER)
    assert fake.sleeps[:3] == [1.0, 1.5, 2.25]  # with backoff
    assert quota.available == before
    sent = router.routes[0].calls.last.request
    assert sent.headers["amz-sdk-request"] == "attempt=1; max=1"


async def test_weather_until_the_deadline_is_a_timeout(router: respx.MockRouter) -> None:
    # The output answers 503 and 404 in turn; when it answers, the failure's HEAD is refused.
    flaky = itertools.cycle([httpx.Response(503), httpx.Response(404)])
    router.head(OUTPUT_URL).mock(side_effect=lambda request: next(flaky))
    router.head(FAILURE_URL).mock(side_effect=httpx.ConnectError("refused"))
    client, _, fake = s3_client(router)
    async with client:
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_result(INVOCATION, timeout=10, poll_interval=1)
    assert fake.now == 1010.0


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, AccessDeniedError), (400, ServiceError), (405, ServiceError), (409, ServiceError)],
)
async def test_permanent_4xx_ends_a_wait_at_once(
    router: respx.MockRouter, status: int, error: type[Exception]
) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(404))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(status))
    client, retry_sleeps, fake = s3_client(router)
    async with client:
        with pytest.raises(error) as caught:
            await client.wait_for_result(INVOCATION, timeout=3600)
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert fake.sleeps == []
    assert retry_sleeps.delays == []


async def test_get_result_keeps_its_request_retries(router: respx.MockRouter) -> None:
    router.get(OUTPUT_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, content=b"x")]
    )
    client, retry_sleeps, _ = s3_client(router)
    async with client:
        assert (await client.get_result(OUTPUT)).body == b"x"
    assert len(retry_sleeps.delays) == 1


# -- stored bytes and size ------------------------------------------


async def test_content_encoding_is_reported_not_decoded(router: respx.MockRouter) -> None:
    stored = gzip.compress(b'{"answer": 42}')
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(200, content=stored, headers=headers))
    client, _, _ = s3_client(router)
    async with client:
        result = await client.get_result(OUTPUT)
        async with client.stream_result(OUTPUT) as stream:
            streamed = b"".join([chunk async for chunk in stream])
    assert result.body == stored
    assert result.content_encoding == "gzip"
    assert result.content_type == "application/json"
    assert streamed == stored
    assert stream.content_encoding == "gzip"


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, "10", True])
async def test_bad_max_bytes_before_any_request(max_bytes: Any) -> None:
    client, _ = make_client(new_router())
    async with client:
        with pytest.raises(ParamValidationError) as caught:
            await client.get_result(OUTPUT, max_bytes=max_bytes)
        assert caught.value.param == "max_bytes"
        with pytest.raises(ParamValidationError):
            await client.wait_for_result(INVOCATION, max_bytes=max_bytes)


class Untouchable(httpx.AsyncByteStream):
    """A body that fails the test if anyone reads it."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    async def aclose(self) -> None:
        self.closed = True


async def test_max_bytes_is_decided_from_the_response_head(router: respx.MockRouter) -> None:
    body = Untouchable()
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, headers={"Content-Length": "1000"}, stream=body)
    )
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ResultTooLargeError) as caught:
            await client.get_result(OUTPUT, max_bytes=999)
    assert (caught.value.location, caught.value.size) == (OUTPUT, 1000)
    assert body.closed


async def test_max_bytes_from_the_head_skips_the_get(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=found(LATER, **{"Content-Length": "5000"}))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ResultTooLargeError) as caught:
            await client.wait_for_result(INVOCATION, max_bytes=4096)
    assert caught.value.size == 5000


class Chunks(httpx.AsyncByteStream):
    def __init__(self, *chunks: bytes, then: Exception | None = None) -> None:
        self.chunks = chunks
        self.then = then
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.then is not None:
            raise self.then

    async def aclose(self) -> None:
        self.closed = True


async def test_max_bytes_without_a_length_stops_reading(router: respx.MockRouter) -> None:
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, stream=Chunks(b"a" * 10, b"b" * 10, b"c" * 10))
    )
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ResultTooLargeError):
            await client.get_result(OUTPUT, max_bytes=15)
        assert (
            await client.get_result(OUTPUT, max_bytes=30)
        ).body == b"a" * 10 + b"b" * 10 + b"c" * 10


@pytest.mark.parametrize("how", ["cut", "short"])
async def test_a_short_body_is_an_error_never_a_result(router: respx.MockRouter, how: str) -> None:
    then = httpx.ReadError("connection reset") if how == "cut" else None
    router.get(OUTPUT_URL).mock(
        side_effect=lambda request: httpx.Response(
            200, headers={"Content-Length": "30"}, stream=Chunks(b"x" * 10, then=then)
        )
    )
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(TransportError, match="after 10 of 30 bytes"):
            await client.get_result(OUTPUT)
        async with client.stream_result(OUTPUT) as stream:
            assert stream.content_length == 30
            with pytest.raises(TransportError, match="after 10 of 30 bytes"):
                await drain(stream)


async def drain(stream: ResultStream) -> None:
    async for _ in stream:
        pass


async def test_stream_result_yields_the_chunks_and_closes(router: respx.MockRouter) -> None:
    body = Chunks(b"one ", b"two ", b"three")
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/plain"}, stream=body)
    )
    client, _, _ = s3_client(router)
    async with client, client.stream_result(OUTPUT) as stream:
        assert isinstance(stream, ResultStream)
        assert (stream.location, stream.content_type) == (OUTPUT, "text/plain")
        assert stream.content_length is None
        assert [chunk async for chunk in stream] == [b"one ", b"two ", b"three"]
    assert body.closed


async def test_stream_result_validates_before_any_request() -> None:
    client, _ = make_client(new_router())
    async with client:
        with pytest.raises(ParamValidationError):
            client.stream_result("not-a-uri")


# -- download_result ------------------------------------------


async def test_download_result_writes_through_a_temporary_file(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    router.head(OUTPUT_URL).mock(side_effect=[httpx.Response(404), found(LATER)])
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    chunks = [bytes([n]) * 700_000 for n in range(4)]
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, headers={"Content-Type": "a/b"}, stream=Chunks(*chunks))
    )
    target = tmp_path / "result.bin"
    target.write_bytes(b"previous content")
    client, _, _ = s3_client(router)
    async with client:
        downloaded = await client.download_result(INVOCATION, target, timeout=60)
    assert downloaded == DownloadedResult(target, OUTPUT, "a/b", 2_800_000)
    assert target.read_bytes() == b"".join(chunks)
    assert os.listdir(tmp_path) == ["result.bin"]


async def test_a_failed_download_leaves_the_target_untouched(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    router.head(OUTPUT_URL).mock(return_value=found(LATER))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(
            200,
            headers={"Content-Length": "3000000"},
            stream=Chunks(b"x" * 1_500_000, then=httpx.ReadError("reset")),
        )
    )
    target = tmp_path / "result.bin"
    target.write_bytes(b"previous content")
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(TransportError):
            await client.download_result(INVOCATION, target)
    assert target.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["result.bin"]


async def test_a_failure_object_raises_and_writes_nothing(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(404))
    router.head(FAILURE_URL).mock(return_value=found(LATER))
    router.get(FAILURE_URL).mock(return_value=httpx.Response(200, content=b"model crashed"))
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(InferenceFailedError, match="model crashed"):
            await client.download_result(INVOCATION, tmp_path / "out.bin")
    assert os.listdir(tmp_path) == []


def open_files() -> set[str]:
    """What this process has open (Linux), to prove no file handle is left behind."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    names = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            names.add(os.readlink(fd))
    return names


async def test_cancelling_a_download_leaves_nothing_behind(tmp_path: Path) -> None:
    started = asyncio.Event()

    class Endless(httpx.AsyncByteStream):
        closed = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield b"z" * 300_000
                started.set()
                await asyncio.sleep(0)

        async def aclose(self) -> None:
            Endless.closed = True

    router = new_router()
    router.head(OUTPUT_URL).mock(return_value=found(LATER))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(200, stream=Endless()))
    client, _, _ = s3_client(router)
    async with client:
        task = asyncio.ensure_future(client.download_result(INVOCATION, tmp_path / "big.bin"))
        await started.wait()
        for _ in range(20):  # let a few batches reach the disk
            await asyncio.sleep(0)
        assert any(str(tmp_path) in name for name in open_files())  # the temporary file
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert os.listdir(tmp_path) == []
    assert not any(str(tmp_path) in name for name in open_files())
    assert Endless.closed
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_download_path_is_checked_before_any_request(tmp_path: Path) -> None:
    client, _ = make_client(new_router())
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    async with client:
        for bad in (tmp_path, tmp_path / "missing" / "x.bin", 42):
            with pytest.raises(ParamValidationError) as caught:
                await client.download_result(INVOCATION, bad)  # type: ignore[arg-type]
            assert caught.value.param == "path"
        unwritable = [read_only / "x.bin"] if os.geteuid() != 0 else []  # root may write it
        if os.path.isdir("/sys"):  # noqa: ASYNC240 - one stat, in a test
            unwritable.append(Path("/sys/x.bin"))  # not even root may create files there
        assert unwritable
        for bad_path in unwritable:
            with pytest.raises(ParamValidationError, match="not writable"):
                await client.download_result(INVOCATION, bad_path)
    read_only.chmod(0o700)


# -- one timer heap for many waits ------------------------------------------


async def test_scheduler_wakes_sleepers_in_order_on_one_timer() -> None:
    scheduler = PollScheduler()
    loop = asyncio.get_running_loop()
    order: list[int] = []

    async def sleeper(n: int, delay: float) -> None:
        await scheduler.sleep(delay)
        order.append(n)

    def armed() -> int:
        return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]

    before = armed()
    tasks = [asyncio.ensure_future(sleeper(n, 0.001 * (5 - n))) for n in range(5)]
    await asyncio.sleep(0)
    assert armed() - before == 1  # five sleepers, one armed timer
    cancelled = asyncio.ensure_future(sleeper(99, 0.0005))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(*tasks)
    assert order == [4, 3, 2, 1, 0]
    assert cancelled.cancelled()


async def test_both_cancels_and_awaits_the_other_request() -> None:
    from sagemaker_async._io.results import _both

    cleaned: list[str] = []
    started = asyncio.Event()

    async def blocked(name: str) -> bool:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(name)
        return True

    async def fails() -> bool:
        await started.wait()
        raise AccessDeniedError("denied", code="Forbidden", status_code=403)

    with pytest.raises(AccessDeniedError):
        await _both(fails(), blocked("second"))
    assert cleaned == ["second"]

    task = asyncio.ensure_future(_both(blocked("first"), blocked("other")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cleaned) == ["first", "other", "second"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
