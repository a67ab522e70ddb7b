"""client.listen() end to end: the local endpoint publishes, SQS (moto) carries, we wait.

Everything runs on real sockets on 127.0.0.1: the local endpoint with ``notify=True``
serves the runtime API, S3 and SQS on its one port, and puts the notification SageMaker
would publish (SNS-wrapped, or raw) on its queue after each output or failure object. The
fallback interval and the hold time are shortened where a test exercises them; no test
sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from sagemaker_async import (
    AccessDeniedError,
    AsyncInferenceClient,
    AsyncInvocation,
    InferenceFailedError,
    ParamValidationError,
    ServiceError,
    WaitTimeoutError,
)
from sagemaker_async.local import LocalEndpoint
from test_local_support import client_for, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

WAIT = 10.0  # an upper bound for things expected at once


async def upper(payload: bytes) -> tuple[bytes, str]:
    return payload.upper(), "text/plain"


def fail(payload: bytes) -> bytes:
    raise RuntimeError(f"no good: {payload.decode()}")


@pytest.fixture
async def local(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalEndpoint]:
    async with LocalEndpoint({"ep": upper, "bad": fail}, notify=True, concurrency=64) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint.endpoint_url)
        yield endpoint


class CountingTransport(httpx.AsyncBaseTransport):
    """Real HTTP on 127.0.0.1, counting requests by method and SQS operation."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.counts: collections.Counter[str] = collections.Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = request.headers.get("x-amz-target")
        if target:
            self.counts[target.split(".")[-1]] += 1
        elif request.method == "GET" and request.url.params.get("list-type") == "2":
            self.counts["ListObjectsV2"] += 1
        else:
            self.counts[request.method] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def on_message(listener: Any) -> asyncio.Event:
    """An event set each time the listener has dealt with a received message."""
    seen = asyncio.Event()
    handle = listener._on_message

    def spy(message: Any) -> None:
        handle(message)
        seen.set()

    listener._on_message = spy
    return seen


def queue_depth(local: LocalEndpoint) -> tuple[int, int]:
    """(visible, in flight) messages on the local queue, from moto's own state."""
    notifier = local._notifier
    assert notifier is not None
    queue = notifier._backend.get_queue(notifier._queue_name)
    return queue.approximate_number_of_messages, queue.approximate_number_of_messages_not_visible


def send_raw(local: LocalEndpoint, body: str) -> None:
    notifier = local._notifier
    assert notifier is not None
    notifier._backend.send_message(notifier._queue_name, body)


@pytest.mark.slow  # about 2-4 s on a shared machine: 400 requests to moto
async def test_200_concurrent_waits_on_one_listener(local: LocalEndpoint) -> None:
    spy = CountingTransport()
    async with (
        spy,
        client_for(local, transport=spy) as client,
        client.listen(local.queue_url) as listener,  # type: ignore[arg-type]
    ):
        invocations = await asyncio.gather(
            *(client.invoke_endpoint_async("ep", body=b"item %d" % i) for i in range(200))
        )
        results = await asyncio.gather(*(listener.wait(i, timeout=WAIT) for i in invocations))
        assert [r.body for r in results] == [b"ITEM %d" % i for i in range(200)]
        assert all(
            r.location == i.output_location for r, i in zip(results, invocations, strict=True)
        )
        # Without included bodies each result is one GET, and S3 was never polled.
        assert spy.counts["GET"] == 200
        assert spy.counts["HEAD"] == 0
        assert spy.counts["ReceiveMessage"] == listener.requests["ReceiveMessage"] < 200
        assert listener.requests["DeleteMessageBatch"] < 200  # batched
    await local.wait_idle(WAIT)
    assert queue_depth(local) == (0, 0)  # every delivered notification was deleted


async def test_included_bodies_need_no_s3_read(monkeypatch: pytest.MonkeyPatch) -> None:
    async with LocalEndpoint({"ep": upper}, notify=True, include_response=True) as local:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", local.endpoint_url)
        spy = CountingTransport()
        async with (
            spy,
            client_for(local, transport=spy) as client,
            client.listen(local.queue_url) as listener,  # type: ignore[arg-type]
        ):
            invocation = await client.invoke_endpoint_async("ep", body=b"inline")
            result = await listener.wait(invocation, timeout=WAIT)
            assert (result.body, result.content_type) == (b"INLINE", "text/plain")
            assert spy.counts["GET"] == 0
            assert spy.counts["HEAD"] == 0


async def test_a_failure_raises_with_the_failure_objects_text(local: LocalEndpoint) -> None:
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        invocation = await client.invoke_endpoint_async("bad", body=b"x")
        with pytest.raises(InferenceFailedError) as caught:
            await listener.wait(invocation, timeout=WAIT)
        assert "no good: x" in caught.value.message
        assert caught.value.failure_location == invocation.failure_location


async def test_raw_deliveries_are_understood_too(local: LocalEndpoint) -> None:
    assert local._notifier is not None
    local._notifier._wrap = False
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        invocation = await client.invoke_endpoint_async("ep", body=b"raw")
        assert (await listener.wait(invocation, timeout=WAIT)).body == b"RAW"


async def test_two_listeners_sharing_a_queue_each_get_only_their_own(
    local: LocalEndpoint,
) -> None:
    async with (
        client_for(local) as one,
        client_for(local) as two,
        one.listen(local.queue_url) as first,  # type: ignore[arg-type]
        two.listen(local.queue_url) as second,  # type: ignore[arg-type]
    ):
        first._hold_seconds = second._hold_seconds = 0.05  # hand back the other's quickly
        mine = [await one.invoke_endpoint_async("ep", body=b"one %d" % i) for i in range(20)]
        theirs = [await two.invoke_endpoint_async("ep", body=b"two %d" % i) for i in range(20)]
        got_one, got_two = await asyncio.gather(
            asyncio.gather(*(first.wait(i, timeout=WAIT) for i in mine)),
            asyncio.gather(*(second.wait(i, timeout=WAIT) for i in theirs)),
        )
        assert [r.body for r in got_one] == [b"ONE %d" % i for i in range(20)]
        assert [r.body for r in got_two] == [b"TWO %d" % i for i in range(20)]
    assert queue_depth(local) == (0, 0)


async def test_a_lost_notification_costs_time_never_the_result(local: LocalEndpoint) -> None:
    assert local._notifier is not None
    local._notifier.publish = lambda notification: None  # type: ignore[method-assign]
    async with (
        client_for(local) as client,
        client.listen(local.queue_url, fallback_poll_interval=0.2) as listener,  # type: ignore[arg-type]
    ):
        invocation = await client.invoke_endpoint_async("ep", body=b"lost")
        assert (await listener.wait(invocation, timeout=WAIT)).body == b"LOST"


async def test_lost_notifications_of_many_waits_are_found_by_listing_the_prefix(
    local: LocalEndpoint,
) -> None:
    assert local._notifier is not None
    local._notifier.publish = lambda notification: None  # type: ignore[method-assign]
    spy = CountingTransport()
    async with (
        spy,
        client_for(local, transport=spy) as client,
        client.listen(local.queue_url, fallback_poll_interval=0.2) as listener,  # type: ignore[arg-type]
    ):
        invocations = await asyncio.gather(
            *(client.invoke_endpoint_async("ep", body=b"lost %d" % i) for i in range(20))
        )
        results = await asyncio.gather(*(listener.wait(i, timeout=WAIT) for i in invocations))
    assert [r.body for r in results] == [b"LOST %d" % i for i in range(20)]
    # The fallback checks of 20 waits on one output prefix: listings of it, not 40 HEADs.
    assert spy.counts["HEAD"] == 0
    assert 1 <= spy.counts["ListObjectsV2"] <= 3
    assert spy.counts["GET"] == 20


async def test_an_unfinished_inference_times_out_after_one_last_s3_look(
    local: LocalEndpoint,
) -> None:
    never = AsyncInvocation(
        "nobody", f"{local.output_path}/nobody.out", f"{local.failure_path}/nobody-error.out"
    )
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        with pytest.raises(WaitTimeoutError):
            await listener.wait(never, timeout=0.1)
        assert not listener._waiters


async def test_sqs_trouble_falls_back_to_s3_and_keeps_the_deadline(
    local: LocalEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = local._notifier
    assert notifier is not None
    async with (
        client_for(local) as client,
        client.listen(local.queue_url, fallback_poll_interval=0.2) as listener,  # type: ignore[arg-type]
    ):
        with caplog.at_level(logging.WARNING, logger="sagemaker_async"):
            # The queue goes away under the listener: every ReceiveMessage now fails.
            notifier._backend.delete_queue(notifier._queue_name)
            notifier._changed.set()
            invocation = await client.invoke_endpoint_async("ep", body=b"s3 it is")
            assert (await listener.wait(invocation, timeout=WAIT)).body == b"S3 IT IS"
            never = AsyncInvocation("nobody", f"{local.output_path}/nobody.out", None)
            with pytest.raises(WaitTimeoutError):
                await listener.wait(never, timeout=0.3)
            assert listener._degraded
    warnings = [r.getMessage() for r in caplog.records if "fall back" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not once per failed poll
    assert "NonExistentQueue" in warnings[0]


async def test_duplicates_and_foreign_messages_are_harmless(
    local: LocalEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    assert local._notifier is not None
    notifier = local._notifier
    sent: list[dict[str, Any]] = []
    publish = notifier.publish

    def twice(notification: dict[str, Any]) -> None:
        sent.append(notification)
        publish(notification)
        publish(notification)  # SQS is at-least-once

    notifier.publish = twice  # type: ignore[method-assign]
    send_raw(local, "this is not json")
    send_raw(local, json.dumps({"Records": [{"eventSource": "aws:s3"}]}))
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        listener._hold_seconds = 0.05
        with caplog.at_level(logging.WARNING, logger="sagemaker_async"):
            invocation = await client.invoke_endpoint_async("ep", body=b"dup")
            assert (await listener.wait(invocation, timeout=WAIT)).body == b"DUP"
            again = await client.invoke_endpoint_async("ep", body=b"next")
            assert (await listener.wait(again, timeout=WAIT)).body == b"NEXT"
    foreign = [r for r in caplog.records if "not a SageMaker" in r.getMessage()]
    assert len(foreign) == 2  # each foreign message logged once
    visible, in_flight = queue_depth(local)
    assert visible + in_flight == 2  # the foreign ones are left on the queue, nothing else


async def test_an_older_run_of_a_reused_id_does_not_satisfy_a_newer_wait(
    local: LocalEndpoint,
) -> None:
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        listener._hold_seconds = 0.05
        old = await client.invoke_endpoint_async("ep", body=b"old", inference_id="reused")
        await local.wait_idle(WAIT)
        # A newer submission of the same id, whose own run has not happened yet.
        newer = AsyncInvocation(
            old.inference_id,
            old.output_location,
            old.failure_location,
            submitted_at=datetime.now(timezone.utc) + timedelta(hours=1),
        )
        # Only the old event is on the queue: the newer wait must not take it (and its S3
        # fallback is far off: S3 freshness is the results module's business).
        listener._fallback = 3600.0
        handled = on_message(listener)
        waiter = asyncio.ensure_future(listener.wait(newer, timeout=None))
        await asyncio.wait_for(handled.wait(), WAIT)
        await asyncio.sleep(0)
        assert not waiter.done()
        assert [h.event.inference_id for h in listener._held.values()] == ["reused"]
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert not listener._waiters
        assert (await listener.wait(old, timeout=WAIT)).body == b"OLD"


async def test_async_for_yields_every_notification_and_deletes_it(local: LocalEndpoint) -> None:
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        ids = {
            (await client.invoke_endpoint_async("ep", body=b"%d" % i)).inference_id
            for i in range(5)
        }
        failed = await client.invoke_endpoint_async("bad", body=b"f")
        seen = {}
        async for event in listener:
            seen[event.inference_id] = event
            if len(seen) == 6:
                break
        assert set(seen) == ids | {failed.inference_id}
        assert not seen[failed.inference_id].succeeded
        assert seen[failed.inference_id].failure_location == failed.failure_location
        assert all(seen[i].succeeded and seen[i].endpoint_name == "ep" for i in ids)
    assert queue_depth(local) == (0, 0)


class OneReceive:
    """The listener's queue, but after the first ReceiveMessage the next one never returns
    (and sends nothing): no long poll is in flight when the listener closes."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.queue_url = queue.queue_url
        self._received = False

    async def receive(self, **kwargs: Any) -> Any:
        if self._received:
            await asyncio.Event().wait()
        self._received = True
        return await self._queue.receive(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


async def test_closing_releases_what_it_held(local: LocalEndpoint) -> None:
    async with client_for(local) as client:
        invocation = await client.invoke_endpoint_async("ep", body=b"held")
        await local.wait_idle(WAIT)
        listener = client.listen(local.queue_url)  # type: ignore[arg-type]
        listener._queue = OneReceive(listener._queue)  # type: ignore[assignment]
        listener._hold_seconds = 3600.0  # held until the listener closes
        handled = on_message(listener)
        async with listener:
            await asyncio.wait_for(handled.wait(), WAIT)
            assert len(listener._held) == 1
            assert queue_depth(local) == (0, 1)
        assert queue_depth(local) == (1, 0)  # released: visible again at once
        async with client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
            listener._fallback = 3600.0  # from the queue, not from S3
            assert (await listener.wait(invocation, timeout=WAIT)).body == b"HELD"


def listener_tasks() -> list[str]:
    return sorted(
        task.get_coro().__qualname__  # type: ignore[union-attr]
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__.startswith("Listener.")  # type: ignore[union-attr]
    )


async def test_cancelling_a_wait_leaves_no_waiter_and_no_task(local: LocalEndpoint) -> None:
    never = AsyncInvocation("nobody", f"{local.output_path}/nobody.out", None)
    async with client_for(local) as client:
        async with client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
            waiter = asyncio.ensure_future(listener.wait(never))
            await asyncio.sleep(0)
            assert listener._waiters
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert not listener._waiters
            assert listener_tasks() == ["Listener._poll_loop"]  # the one long poll, no more
        assert listener_tasks() == []
        assert listener._poller is None
        assert listener._flusher is None


async def test_listen_on_a_missing_queue_is_a_typed_error(local: LocalEndpoint) -> None:
    async with client_for(local) as client:
        with pytest.raises(ServiceError) as caught:
            async with client.listen(f"{local.endpoint_url}/123456789012/no-such-queue"):
                pass
        assert caught.value.code == "AWS.SimpleQueueService.NonExistentQueue"


async def test_listen_without_permission_is_access_denied() -> None:
    router = respx.MockRouter(assert_all_called=True, assert_all_mocked=True)
    router.post("https://sqs.us-east-1.amazonaws.com/").respond(
        403,
        headers={"x-amzn-query-error": "AccessDenied;Sender", "x-amzn-RequestId": "r-1"},
        json={"__type": "com.amazon.coral.service#AccessDeniedException", "message": "no"},
    )
    async with AsyncInferenceClient(
        "us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        transport=httpx.MockTransport(router.async_handler),
    ) as client:
        with pytest.raises(AccessDeniedError) as caught:
            async with client.listen("https://sqs.us-east-1.amazonaws.com/1/q"):
                pass
    assert caught.value.request_id == "r-1"


async def test_bad_arguments_before_any_io() -> None:
    client = AsyncInferenceClient(
        "us-east-1", aws_access_key_id="k", aws_secret_access_key="s", transport=None
    )
    with pytest.raises(ParamValidationError):
        client.listen("sqs/my-queue")
    with pytest.raises(ParamValidationError):
        client.listen("https://sqs.us-east-1.amazonaws.com/1/q", fallback_poll_interval=0)
    listener = client.listen("https://sqs.us-east-1.amazonaws.com/1/q")
    with pytest.raises(RuntimeError):
        await listener.wait(AsyncInvocation("i", "s3://bucket/o", None))
    with pytest.raises(ParamValidationError):
        await listener.wait("not an invocation")  # type: ignore[arg-type]
    await client.aclose()


async def test_boto3_reads_the_same_notification_from_the_local_queue(
    local: LocalEndpoint,
) -> None:
    """The oracle: a standard SDK receives what SageMaker would have put on the queue."""
    import boto3

    from sagemaker_async._protocol.notifications import parse_notification

    async with client_for(local) as client:
        invocation = await client.invoke_endpoint_async("ep", body=b"boto3")
        await local.wait_idle(WAIT)
    sqs = boto3.session.Session(region_name="us-east-1").client(
        "sqs",
        endpoint_url=local.endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    answer = await asyncio.to_thread(
        sqs.receive_message, QueueUrl=local.queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10
    )
    (message,) = answer["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["TopicArn"].endswith(":SuccessTopic")
    event = parse_notification(message["Body"], message["MessageId"])
    assert event is not None
    assert (event.inference_id, event.succeeded, event.output_location, event.endpoint_name) == (
        invocation.inference_id,
        True,
        invocation.output_location,
        "ep",
    )
    assert invocation.submitted_at is not None
    assert event.event_time >= invocation.submitted_at.replace(microsecond=0)
    await asyncio.to_thread(
        sqs.delete_message, QueueUrl=local.queue_url, ReceiptHandle=message["ReceiptHandle"]
    )
    sqs.close()
    assert queue_depth(local) == (0, 0)


async def test_a_served_region_other_than_us_east_1_carries_the_notifications(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto keeps a queue per region and answers each request from the region its
    # signature is scoped to: the queue must be made in (and published to) the served one.
    region = "eu-west-1"
    async with LocalEndpoint({"ep": upper}, notify=True, region=region) as local:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", local.endpoint_url)
        async with (
            AsyncInferenceClient(
                region,
                endpoint_url=local.endpoint_url,
                s3_endpoint_url=local.s3_endpoint_url,
                aws_access_key_id="AKIDLOCAL",
                aws_secret_access_key="not-a-secret",
            ) as client,
            client.listen(local.queue_url, fallback_poll_interval=60) as listener,  # type: ignore[arg-type]
        ):
            seen = on_message(listener)
            invocation = await client.invoke_endpoint_async("ep", body=b"far away")
            result = await listener.wait(invocation, timeout=WAIT)
            assert result.body == b"FAR AWAY"
            assert seen.is_set()  # answered by the notification, not by the S3 fallback
            notifier = local._notifier
            assert notifier is not None
            assert notifier.published == 1


async def test_publishing_and_receiving_do_not_read_the_whole_queue(
    local: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's send_message counts the queue's visible messages on every send, and its
    receive_message reads every attribute for each message it returns: at 10,000 deep,
    minutes of the server's loop, and notifications a minute late."""
    notifier = local._notifier
    assert notifier is not None
    queue = notifier._backend.get_queue(notifier._queue_name)

    cls = type(queue)
    reads: list[str] = []

    def counting(name: str) -> property:
        original = getattr(cls, name)

        def read(self: Any) -> Any:
            reads.append(name)
            return original.fget(self)

        return property(read)

    with monkeypatch.context() as patched:
        patched.setattr(cls, "attributes", counting("attributes"))
        patched.setattr(cls, "messages", counting("messages"))
        async with client_for(local) as client:
            invocations = [
                await client.invoke_endpoint_async("ep", body=b"x%d" % i) for i in range(3)
            ]
            await local.wait_idle(WAIT)
    assert notifier.published == 3
    assert reads == []  # published without counting the queue
    async with client_for(local) as client, client.listen(local.queue_url) as listener:  # type: ignore[arg-type]
        with monkeypatch.context() as patched:
            patched.setattr(cls, "attributes", counting("attributes"))
            results = [await listener.wait(i, timeout=WAIT) for i in invocations]
    assert reads == []  # received without reading every attribute per message
    assert [r.body for r in results] == [b"X0", b"X1", b"X2"]
