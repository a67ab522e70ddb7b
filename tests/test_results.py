"""Waiting for results, and the S3 requests behind it, through the client's transport seam.

Two layers: the pure decisions (``decide``, ``PollSchedule``, argument checks) and the
waiter's loop driven by a fake S3 and a fake clock; then the client itself, sending through
``httpx.MockTransport`` (respx, strict) with a fake clock for signatures and recorded sleeps
for both the retry backoff and the poll delays. Nothing here sleeps for real.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import io
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from botocore_oracle import boto3_s3, botocore_request, header
from helpers import FAILURE, OUTPUT, make_client, new_router
from sagemaker_async import (
    AccessDeniedError,
    AsyncInvocation,
    InferenceFailedError,
    InferenceResult,
    ParamValidationError,
    ServiceError,
    ThrottlingError,
    WaitTimeoutError,
)
from sagemaker_async._io import results as _results
from sagemaker_async._io.payloads import CHUNK_SIZE
from sagemaker_async._io.results import (
    MAX_POLL_INTERVAL,
    Outcome,
    PollSchedule,
    ResultWaiter,
    check_wait_arguments,
    decide,
    gather_or_cancel,
)
from sagemaker_async._protocol.s3 import S3Location

# helpers' OUTPUT / FAILURE live in bucket my-bucket; the client's region is us-east-1,
# whose S3 host is the legacy global one.
S3 = "https://my-bucket.s3.amazonaws.com"
OUTPUT_URL = f"{S3}/out/inf-1.out"
FAILURE_URL = f"{S3}/failures/inf-1-error.out"
INVOCATION = AsyncInvocation("inf-1", OUTPUT, FAILURE, "req-1")


class FakeTime:
    """A monotonic clock that only moves when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def fake_waiter(objects: Any, fake: FakeTime, rng: float = 0.0) -> ResultWaiter:
    return ResultWaiter(objects, clock=fake.clock, sleep=fake.sleep, rng=lambda: rng)


class FakeS3:
    """Objects appear after a number of HEADs; records what was asked."""

    def __init__(self, appear_after: dict[str, int], bodies: dict[str, bytes]) -> None:
        self.appear_after = appear_after
        self.bodies = bodies
        self.heads: list[str] = []
        self.gets: list[str] = []

    async def head_object(self, location: S3Location, *, retries: bool = True) -> bool:
        self.heads.append(location.uri)
        return self.heads.count(location.uri) > self.appear_after.get(location.uri, 10**9)

    async def open_object(self, location: S3Location) -> httpx.Response:
        self.gets.append(location.uri)
        return httpx.Response(
            200, content=self.bodies[location.uri], headers={"Content-Type": "application/json"}
        )


# -- pure decisions -------------------------------------------------------------------------


def test_decide() -> None:
    assert decide(False, False) is Outcome.PENDING
    assert decide(True, False) is Outcome.OUTPUT
    assert decide(False, True) is Outcome.FAILURE
    assert decide(True, True) is Outcome.OUTPUT  # the answer the caller asked for wins


def test_schedule_backs_off_to_the_cap() -> None:
    first = list(itertools.islice(PollSchedule(1.0, rng=lambda: 0.0), 12))
    assert first[:4] == [1.0, 1.5, 2.25, 3.375]
    assert first[-1] == MAX_POLL_INTERVAL
    assert max(first) == MAX_POLL_INTERVAL


def test_schedule_jitter_only_shortens() -> None:
    delays = list(itertools.islice(PollSchedule(10.0, rng=lambda: 1.0), 3))
    assert delays == pytest.approx([8.0, 12.0, 18.0])


def test_schedule_cap_is_at_least_the_interval() -> None:
    delays = list(itertools.islice(PollSchedule(60.0, rng=lambda: 0.0), 3))
    assert delays == [60.0, 60.0, 60.0]


@pytest.mark.parametrize(
    ("timeout", "poll_interval", "param"),
    [
        (-1, 1.0, "timeout"),
        (float("nan"), 1.0, "timeout"),
        ("10", 1.0, "timeout"),
        (True, 1.0, "timeout"),
        (None, 0, "poll_interval"),
        (None, -0.5, "poll_interval"),
        (None, float("inf"), "poll_interval"),
        (None, None, "poll_interval"),
    ],
)
def test_wait_arguments(timeout: Any, poll_interval: Any, param: str) -> None:
    with pytest.raises(ParamValidationError) as caught:
        check_wait_arguments(timeout, poll_interval)
    assert caught.value.param == param


async def test_invocation_must_be_an_async_invocation() -> None:
    waiter = fake_waiter(FakeS3({}, {}), FakeTime())
    with pytest.raises(ParamValidationError, match="get_result"):
        await waiter.wait(OUTPUT)  # type: ignore[arg-type]
    with pytest.raises(ParamValidationError, match="no output location"):
        await waiter.wait(AsyncInvocation("x", None, FAILURE))
    with pytest.raises(ParamValidationError) as caught:
        await waiter.poll(AsyncInvocation("x", "s3://my-bucket", None))
    assert caught.value.param == "invocation.output_location"


# -- gather_or_cancel -------------------------------------------------------------------------


async def test_gather_or_cancel_cancels_and_awaits_the_sibling_on_error() -> None:
    finished: list[str] = []

    async def slow() -> bool:
        try:
            await asyncio.Event().wait()
        finally:
            finished.append("slow cleaned up")
        return True

    async def fails() -> bool:
        raise AccessDeniedError("denied", code="Forbidden", status_code=403)

    with pytest.raises(AccessDeniedError):
        await gather_or_cancel(slow(), fails())
    assert finished == ["slow cleaned up"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_gather_or_cancel_propagates_cancellation_after_cleanup() -> None:
    started = asyncio.Event()
    cleaned: list[int] = []

    async def blocked(n: int) -> bool:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(n)
        return False

    task = asyncio.ensure_future(gather_or_cancel(blocked(1), blocked(2)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cleaned) == [1, 2]
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- the waiter's loop, on a fake S3 and a fake clock -------------------------------------------


async def test_wait_polls_both_objects_until_the_output_appears() -> None:
    s3 = FakeS3({OUTPUT: 3}, {OUTPUT: b'{"ok": true}'})
    fake = FakeTime()
    result = await fake_waiter(s3, fake).wait(INVOCATION, timeout=60, poll_interval=1.0)
    assert result == InferenceResult(b'{"ok": true}', OUTPUT, "application/json")
    assert s3.heads == [OUTPUT, FAILURE] * 4
    assert s3.gets == [OUTPUT]
    assert fake.sleeps == [1.0, 1.5, 2.25]


async def test_failure_object_raises_with_its_text_and_location() -> None:
    s3 = FakeS3({FAILURE: 1}, {FAILURE: "model said: out of memory ✗".encode()})
    fake = FakeTime()
    with pytest.raises(InferenceFailedError) as caught:
        await fake_waiter(s3, fake).wait(INVOCATION, timeout=60)
    assert caught.value.message == "model said: out of memory ✗"
    assert caught.value.failure_location == FAILURE
    assert s3.gets == [FAILURE]


async def test_without_failure_location_only_the_output_is_watched() -> None:
    s3 = FakeS3({OUTPUT: 2}, {OUTPUT: b"x"})
    invocation = AsyncInvocation("inf-1", OUTPUT, None)
    await fake_waiter(s3, FakeTime()).wait(invocation)
    assert s3.heads == [OUTPUT] * 3


async def test_deadline_cuts_the_last_sleep_and_polls_once_more() -> None:
    s3 = FakeS3({}, {})
    fake = FakeTime()
    with pytest.raises(WaitTimeoutError) as caught:
        await fake_waiter(s3, fake).wait(INVOCATION, timeout=5.0, poll_interval=1.0)
    assert caught.value.timeout == 5.0
    # 1 + 1.5 + 2.25 = 4.75, then only 0.25 s are left: one last poll at the deadline.
    assert fake.sleeps == [1.0, 1.5, 2.25, 0.25]
    assert fake.now == 1005.0
    assert len(s3.heads) == 2 * 5
    assert "inf-1" in str(caught.value)
    assert OUTPUT in str(caught.value)


async def test_zero_timeout_is_a_single_look() -> None:
    s3 = FakeS3({}, {})
    fake = FakeTime()
    with pytest.raises(WaitTimeoutError):
        await fake_waiter(s3, fake).wait(INVOCATION, timeout=0)
    assert fake.sleeps == []
    assert len(s3.heads) == 2


async def test_no_timeout_waits_as_long_as_it_takes_at_the_capped_pace() -> None:
    s3 = FakeS3({OUTPUT: 200}, {OUTPUT: b"late"})
    fake = FakeTime()
    result = await fake_waiter(s3, fake).wait(INVOCATION, timeout=None, poll_interval=0.5)
    assert result.body == b"late"
    assert len(fake.sleeps) == 200
    assert max(fake.sleeps) == MAX_POLL_INTERVAL
    assert fake.sleeps[-1] == MAX_POLL_INTERVAL


async def test_access_denied_is_raised_at_once_not_as_a_timeout() -> None:
    class Denied(FakeS3):
        async def head_object(self, location: S3Location, *, retries: bool = True) -> bool:
            self.heads.append(location.uri)
            if location.uri == FAILURE:
                raise AccessDeniedError("denied", code="Forbidden", status_code=403)
            return False

    s3 = Denied({}, {})
    fake = FakeTime()
    with pytest.raises(AccessDeniedError):
        await fake_waiter(s3, fake).wait(INVOCATION, timeout=60)
    assert fake.sleeps == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_poll_is_one_look() -> None:
    s3 = FakeS3({OUTPUT: 1}, {OUTPUT: b"done"})
    waiter = fake_waiter(s3, FakeTime())
    assert await waiter.poll(INVOCATION) is None
    result = await waiter.poll(INVOCATION)
    assert result is not None
    assert result.body == b"done"


# -- through the client: S3 requests on the mock transport ------------------------------------


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """Strict both ways: an unmatched request fails at once, an uncalled route at the end."""
    router = new_router()
    yield router
    router.assert_all_called()


def s3_client(
    router: respx.MockRouter, **kwargs: Any
) -> tuple[Any, Any, FakeTime]:  # (client, retry sleeps, poll time)
    """A client whose ``Runtime`` polls on fake time without jitter, backoff recorded."""
    fake = FakeTime()
    client, sleeps = make_client(
        router, poll_sleep=fake.sleep, monotonic=fake.clock, random=lambda: 0.0, **kwargs
    )
    return client, sleeps, fake


NO_SUCH_KEY = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code>"
    b"<Message>The specified key does not exist.</Message><RequestId>RID</RequestId></Error>"
)


async def test_wait_for_result_through_the_client(router: respx.MockRouter) -> None:
    output_head = router.head(OUTPUT_URL).mock(
        side_effect=[httpx.Response(404), httpx.Response(404), httpx.Response(200)]
    )
    failure_head = router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(200, content=b"[1, 2]", headers={"Content-Type": "a/b"})
    )
    client, retry_sleeps, fake = s3_client(router)
    async with client:
        result = await client.wait_for_result(INVOCATION, timeout=30, poll_interval=2)
    assert result == InferenceResult(b"[1, 2]", OUTPUT, "a/b")
    assert fake.sleeps == [2.0, 3.0]
    assert retry_sleeps.delays == []
    assert output_head.call_count == 3
    assert failure_head.call_count == 3
    sent = output_head.calls.last.request
    assert sent.headers["x-amz-content-sha256"] == hashlib.sha256(b"").hexdigest()
    assert "/us-east-1/s3/aws4_request" in sent.headers["authorization"]
    assert "x-amz-content-sha256" in sent.headers["authorization"]


async def test_403_on_head_is_an_access_error_at_once(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(404))
    router.head(FAILURE_URL).mock(
        return_value=httpx.Response(403, headers={"x-amz-request-id": "DENIED-1"})
    )
    client, retry_sleeps, fake = s3_client(router)
    async with client:
        with pytest.raises(AccessDeniedError) as caught:
            await client.wait_for_result(INVOCATION, timeout=900)
    error = caught.value
    assert (error.code, error.status_code, error.request_id) == ("Forbidden", 403, "DENIED-1")
    assert "s3:ListBucket" in str(error)
    assert FAILURE in str(error)
    assert fake.sleeps == []  # not one poll delay: no waiting for a permission to appear
    assert retry_sleeps.delays == []  # and no retries: a 403 will not heal
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_failure_through_the_client(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(404))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(200))
    router.get(FAILURE_URL).mock(return_value=httpx.Response(200, content=b"boom"))
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(InferenceFailedError, match="boom") as caught:
            await client.wait_for_result(INVOCATION)
        assert caught.value.failure_location == FAILURE


async def test_poll_result_and_get_result_on_the_mock(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(side_effect=[httpx.Response(404), httpx.Response(200)])
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(200, content=b"ok"))
    client, _, _ = s3_client(router)
    async with client:
        assert await client.poll_result(INVOCATION) is None
        result = await client.poll_result(INVOCATION)
        assert result is not None
        assert result.body == b"ok"
        assert (await client.get_result(OUTPUT)).body == b"ok"


async def test_s3_xml_errors_through_the_client(router: respx.MockRouter) -> None:
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(404, content=NO_SUCH_KEY, headers={"x-amz-request-id": "H"})
    )
    slow_down = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    router.get(FAILURE_URL).mock(return_value=httpx.Response(503, content=slow_down))
    client, retry_sleeps, _ = s3_client(router)
    async with client:
        with pytest.raises(ServiceError) as missing:
            await client.get_result(OUTPUT)
        with pytest.raises(ThrottlingError) as throttled:
            await client.get_result(FAILURE)
    assert (missing.value.code, missing.value.request_id) == ("NoSuchKey", "H")
    assert missing.value.message == "The specified key does not exist."
    assert throttled.value.code == "SlowDown"
    assert len(retry_sleeps.delays) == 2  # SlowDown is throttling: retried, then raised


async def test_transient_s3_errors_are_retried(router: respx.MockRouter) -> None:
    router.get(OUTPUT_URL).mock(
        side_effect=[
            httpx.Response(500, content=b"<Error><Code>InternalError</Code></Error>"),
            httpx.Response(200, content=b"second time lucky"),
        ]
    )
    client, retry_sleeps, _ = s3_client(router)
    async with client:
        assert (await client.get_result(OUTPUT)).body == b"second time lucky"
    assert len(retry_sleeps.delays) == 1


# -- the client signs what botocore signs ----------------------------------------------------------

ODD_KEY = "dir with spaces/ünï/a+b=c&d~e!'()*.json"


def _epoch(amz_date: str) -> float:
    parsed = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()


@pytest.mark.parametrize("token", [None, "SESSION/TOKEN+=="])
async def test_client_s3_requests_equal_botocores(
    router: respx.MockRouter, token: str | None
) -> None:
    boto = boto3_s3("us-west-2", token=token)
    host = "my-bucket.s3.us-west-2.amazonaws.com"
    head = router.head(host=host).mock(return_value=httpx.Response(404))
    get = router.get(host=host).mock(return_value=httpx.Response(200, content=b"x"))
    put = router.put(host=host).mock(return_value=httpx.Response(200))
    now = [0.0]
    client, _, _ = s3_client(
        router, region_name="us-west-2", aws_session_token=token, clock=lambda: now[0]
    )
    uri = f"s3://my-bucket/{ODD_KEY}"
    async with client:
        for operation, route, call in (
            ("head_object", head, lambda: client.poll_result(AsyncInvocation("i", uri, None))),
            ("get_object", get, lambda: client.get_result(uri)),
            ("put_object", put, lambda: client.upload_input(b"{}", uri, content_type="a/b")),
        ):
            extra: dict[str, Any] = {}
            if operation == "put_object":  # botocore with its SHA-256 checksum, as we send it
                extra = {
                    "Body": b"{}",
                    "ContentType": "a/b",
                    "ChecksumAlgorithm": "SHA256",
                    "ChecksumSHA256": base64.b64encode(hashlib.sha256(b"{}").digest()).decode(),
                }
            theirs = botocore_request(boto, operation, Bucket="my-bucket", Key=ODD_KEY, **extra)
            now[0] = _epoch(header(theirs, "X-Amz-Date"))
            await call()
            ours = route.calls.last.request
            assert str(ours.url) == theirs.url
            for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256"):
                assert ours.headers[name] == header(theirs, name), name
            for name in ("x-amz-checksum-sha256", "x-amz-sdk-checksum-algorithm"):
                assert ours.headers.get(name) == (
                    header(theirs, name) if name in theirs.headers else None
                ), name
            if token:
                assert ours.headers["X-Amz-Security-Token"] == token


# -- region redirects ---------------------------------------------------------------------------


async def test_head_redirect_is_followed_once_and_remembered(router: respx.MockRouter) -> None:
    wrong = router.head(OUTPUT_URL).mock(
        return_value=httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1"})
    )
    right_output = router.head("https://my-bucket.s3.eu-west-1.amazonaws.com/out/inf-1.out")
    right_output.mock(return_value=httpx.Response(200))
    right_get = router.get("https://my-bucket.s3.eu-west-1.amazonaws.com/out/inf-1.out")
    right_get.mock(return_value=httpx.Response(200, content=b"from eu"))
    client, retry_sleeps, _ = s3_client(router)
    invocation = AsyncInvocation("inf-1", OUTPUT, None)
    async with client:
        result = await client.wait_for_result(invocation)
    assert result.body == b"from eu"
    assert wrong.call_count == 1  # the GET went straight to eu-west-1: the region is cached
    assert "/eu-west-1/s3/aws4_request" in right_output.calls.last.request.headers["authorization"]
    assert "/eu-west-1/s3/aws4_request" in right_get.calls.last.request.headers["authorization"]
    assert retry_sleeps.delays == []


async def test_wrong_signing_region_in_the_error_body_is_followed(router: respx.MockRouter) -> None:
    malformed = (
        b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is "
        b"wrong; expecting 'ap-south-1'</Message><Region>ap-south-1</Region></Error>"
    )
    router.get(OUTPUT_URL).mock(return_value=httpx.Response(400, content=malformed))
    router.get("https://my-bucket.s3.ap-south-1.amazonaws.com/out/inf-1.out").mock(
        return_value=httpx.Response(200, content=b"ok")
    )
    client, _, _ = s3_client(router)
    async with client:
        assert (await client.get_result(OUTPUT)).body == b"ok"


async def test_redirect_without_a_region_asks_head_bucket(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(301))
    router.head(f"{S3}/").mock(
        return_value=httpx.Response(301, headers={"x-amz-bucket-region": "us-west-2"})
    )
    router.head("https://my-bucket.s3.us-west-2.amazonaws.com/out/inf-1.out").mock(
        return_value=httpx.Response(404)
    )
    client, _, _ = s3_client(router)
    async with client:
        assert await client.poll_result(AsyncInvocation("inf-1", OUTPUT, None)) is None


async def test_a_second_redirect_is_not_followed(router: respx.MockRouter) -> None:
    router.get(OUTPUT_URL).mock(
        return_value=httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-1"})
    )
    router.get("https://my-bucket.s3.eu-west-1.amazonaws.com/out/inf-1.out").mock(
        return_value=httpx.Response(301, headers={"x-amz-bucket-region": "eu-west-2"})
    )
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ServiceError) as caught:
            await client.get_result(OUTPUT)
    assert (caught.value.code, caught.value.status_code) == ("PermanentRedirect", 301)


async def test_fips_applies_to_s3(router: respx.MockRouter) -> None:
    fips = router.put("https://my-bucket.s3-fips.us-east-1.amazonaws.com/in/x.json").mock(
        return_value=httpx.Response(200)
    )
    client, _, _ = s3_client(router, use_fips_endpoint=True)
    async with client:
        assert await client.upload_input(b"{}", "s3://my-bucket/in/x.json") == (
            "s3://my-bucket/in/x.json"
        )
    assert fips.call_count == 1


async def test_custom_s3_endpoint_is_path_style(router: respx.MockRouter) -> None:
    route = router.put("http://127.0.0.1:9000/my.bucket/in/x.json").mock(
        return_value=httpx.Response(200)
    )
    client, _, _ = s3_client(router, s3_endpoint_url="http://127.0.0.1:9000")
    async with client:
        await client.upload_input(b"{}", "s3://my.bucket/in/x.json")
    assert route.calls.last.request.headers["host"] == "127.0.0.1:9000"


# -- uploads ------------------------------------------------------------------------------------


def put_route(router: respx.MockRouter, key: str = "in/x.bin") -> respx.Route:
    return router.put(f"{S3}/{key}")


async def test_upload_bytes_request(router: respx.MockRouter) -> None:
    route = put_route(router).mock(return_value=httpx.Response(200))
    client, _, _ = s3_client(router)
    payload = b'{"inputs": [1, 2, 3]}'
    async with client:
        uri = await client.upload_input(payload, "s3://my-bucket/in/x.bin", content_type="a/b")
    assert uri == "s3://my-bucket/in/x.bin"
    sent = route.calls.last.request
    assert sent.content == payload
    assert sent.headers["content-length"] == str(len(payload))
    assert sent.headers["content-type"] == "a/b"
    assert sent.headers["x-amz-content-sha256"] == hashlib.sha256(payload).hexdigest()
    assert (
        "SignedHeaders=content-type;host;x-amz-checksum-sha256;x-amz-content-sha256;x-amz-date;"
        "x-amz-sdk-checksum-algorithm," in (sent.headers["authorization"])
    )


async def test_file_upload_is_streamed_with_a_length_and_retried_from_the_start(
    router: respx.MockRouter,
    tmp_path: Path,
) -> None:
    payload = bytes(range(256)) * (CHUNK_SIZE // 256 * 2 + 3)  # more than two chunks
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    bodies: list[bytes] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(await request.aread())
        assert request.headers["content-length"] == str(len(payload))
        assert "transfer-encoding" not in request.headers
        return httpx.Response(500 if len(bodies) == 1 else 200)

    put_route(router).mock(side_effect=handler)
    client, retry_sleeps, _ = s3_client(router)
    async with client:
        await client.upload_input(str(path), "s3://my-bucket/in/x.bin")
    assert bodies == [payload, payload]
    assert len(retry_sleeps.delays) == 1
    digest = hashlib.sha256(payload).hexdigest()
    assert router.calls.last.request.headers["x-amz-content-sha256"] == digest


async def test_file_object_upload_from_its_position(router: respx.MockRouter) -> None:
    route = put_route(router).mock(return_value=httpx.Response(200))
    client, _, _ = s3_client(router)
    stream = io.BytesIO(b"header|payload")
    stream.seek(7)
    async with client:
        await client.upload_input(stream, "s3://my-bucket/in/x.bin")
    assert route.calls.last.request.content == b"payload"
    assert not stream.closed


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (io.StringIO("text"), "binary mode"),
        (12345, "not int"),
        ("/no/such/file.json", "no readable file"),
    ],
)
async def test_bad_upload_data_sends_nothing(
    router: respx.MockRouter, data: Any, match: str
) -> None:
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ParamValidationError, match=match) as caught:
            await client.upload_input(data, "s3://my-bucket/in/x.bin")
    assert caught.value.param == "data"


async def test_unseekable_file_object_is_refused(router: respx.MockRouter) -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return 0

    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ParamValidationError, match="cannot seek"):
            await client.upload_input(Pipe(), "s3://my-bucket/in/x.bin")


async def test_bad_uri_and_content_type_send_nothing(router: respx.MockRouter) -> None:
    client, _, _ = s3_client(router)
    async with client:
        with pytest.raises(ParamValidationError) as bad_uri:
            await client.upload_input(b"x", "my-bucket/in/x.bin")
        with pytest.raises(ParamValidationError) as bad_type:
            await client.upload_input(b"x", "s3://my-bucket/x", content_type="a\nb")
    assert bad_uri.value.param == "s3_uri"
    assert bad_type.value.param == "content_type"


# -- submit ---------------------------------------------------------------------------------------

INVOKE_URL = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/ep/async-invocations"


def accepted() -> httpx.Response:
    return httpx.Response(
        202,
        json={"InferenceId": "inf-1"},
        headers={
            "X-Amzn-SageMaker-OutputLocation": OUTPUT,
            "X-Amzn-SageMaker-FailureLocation": FAILURE,
        },
    )


async def test_submit_inline(router: respx.MockRouter, tmp_path: Path) -> None:
    invoke = router.post(INVOKE_URL).mock(return_value=accepted())
    path = tmp_path / "small.json"
    path.write_bytes(b'{"small": true}')
    client, _, _ = s3_client(router)
    async with client:
        invocation = await client.submit("ep", path, content_type="application/json")
    assert invocation == AsyncInvocation("inf-1", OUTPUT, FAILURE, None)
    sent = invoke.calls.last.request
    assert sent.content == b'{"small": true}'
    assert sent.headers["x-amzn-sagemaker-content-type"] == "application/json"
    assert "x-amzn-sagemaker-inputlocation" not in sent.headers


async def test_submit_through_s3_uploads_then_invokes(router: respx.MockRouter) -> None:
    order: list[str] = []

    def record(name: str, response: httpx.Response) -> Callable[[httpx.Request], Any]:
        def side_effect(request: httpx.Request) -> httpx.Response:
            order.append(name)
            return response

        return side_effect

    put = put_route(router, "in/big.bin").mock(side_effect=record("put", httpx.Response(200)))
    invoke = router.post(INVOKE_URL).mock(side_effect=record("invoke", accepted()))
    client, _, _ = s3_client(router)
    payload = b"x" * 200_000
    async with client:
        await client.submit(
            "ep", payload, input_location="s3://my-bucket/in/big.bin", content_type="c/t"
        )
    assert order == ["put", "invoke"]
    assert put.calls.last.request.content == payload
    assert put.calls.last.request.headers["content-type"] == "c/t"
    sent = invoke.calls.last.request
    assert sent.headers["x-amzn-sagemaker-inputlocation"] == "s3://my-bucket/in/big.bin"
    assert sent.content == b""


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"data": b"x" * 128_001}, "data"),
        ({"data": io.BytesIO(b"x" * 200_000)}, "data"),
        ({"data": b"x", "request_ttl_seconds": 5}, "request_ttl_seconds"),
        ({"data": b"x", "input_location": "s3://my-bucket/k", "filename": "a.b.c"}, "filename"),
        ({"data": b"x", "input_location": "not-a-uri"}, "input_location"),
        ({"data": b"x", "endpoint_name": "bad name"}, "endpoint_name"),
    ],
)
async def test_submit_checks_everything_before_sending(
    router: respx.MockRouter, kwargs: dict[str, Any], param: str
) -> None:
    client, _, _ = s3_client(router)  # no routes: any request fails the test
    endpoint = kwargs.pop("endpoint_name", "ep")
    async with client:
        with pytest.raises(ParamValidationError) as caught:
            await client.submit(endpoint, **kwargs)
    assert caught.value.param == param


# -- cancellation ---------------------------------------------------------------------------------


class BlockingTransport(httpx.AsyncBaseTransport):
    """Every request hangs until cancelled; counts the requests still in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.started = 0
        self.all_started = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.started += 1
        if self.started == 2:
            self.all_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.in_flight -= 1
        raise AssertionError("unreachable")  # pragma: no cover


async def test_cancelling_mid_request_leaves_no_task_and_no_request_in_flight(
    router: respx.MockRouter,
) -> None:
    transport = BlockingTransport()
    client, _, _ = s3_client(router, transport=transport)
    async with client:
        waiter = asyncio.ensure_future(client.wait_for_result(INVOCATION, timeout=60))
        await transport.all_started.wait()  # both HEADs are on the wire
        assert transport.in_flight == 2
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert transport.in_flight == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_during_the_poll_delay(router: respx.MockRouter) -> None:
    router.head(OUTPUT_URL).mock(return_value=httpx.Response(404))
    router.head(FAILURE_URL).mock(return_value=httpx.Response(404))
    sleeping = asyncio.Event()

    async def sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    client, _ = make_client(router, poll_sleep=sleep)
    async with client:
        waiter = asyncio.ensure_future(client.wait_for_result(INVOCATION))
        await sleeping.wait()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_hung_poll_does_not_outlive_the_deadline_by_more_than_the_grace(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real time, but short: with timeout=0 only the grace remains, shrunk to 10 ms here.
    monkeypatch.setattr(_results, "_DEADLINE_GRACE", 0.01)
    transport = BlockingTransport()
    client, _, _ = s3_client(router, transport=transport)
    async with client:
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_result(INVOCATION, timeout=0)
    assert transport.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_the_deadline_bounds_looking_not_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    # An output found just in time is read in full, even when reading outlasts the deadline:
    # the waiter's read (open_object, then the body) runs outside the bound put on each look,
    # and the clock passing the deadline while it reads ends nothing.
    fake = FakeTime()
    bounded = False
    real_bounded = ResultWaiter._bounded

    async def spy(waiter: ResultWaiter, *args: Any) -> Any:
        nonlocal bounded
        bounded = True
        try:
            return await real_bounded(waiter, *args)
        finally:
            bounded = False

    monkeypatch.setattr(ResultWaiter, "_bounded", spy)
    reads: list[bool] = []  # for each read: was it under the look's bound?

    class SlowRead(FakeS3):
        async def open_object(self, location: S3Location) -> httpx.Response:
            reads.append(bounded)
            fake.now += 3600.0  # the read takes an hour past the deadline
            await asyncio.sleep(0)  # and yields, as a real read does
            return await super().open_object(location)

    s3 = SlowRead({OUTPUT: 0}, {OUTPUT: b"worth the wait"})
    result = await fake_waiter(s3, fake).wait(AsyncInvocation("i", OUTPUT, None), timeout=0)
    assert result.body == b"worth the wait"
    assert (s3.heads, s3.gets) == ([OUTPUT], [OUTPUT])  # one look, then one read
    assert reads == [False]
