"""The listener against a scripted SQS (respx): what it sends, and hostile answers.

Every SQS answer is scripted: after the scripted ones, a ReceiveMessage blocks (as a long
poll with nothing to say), so nothing spins. S3 is scripted too. These tests pin the
requests the listener makes — deletes and releases in batches, with the right handles —
and that garbage from SQS can cost a fallback to S3, never a wrong or lost result.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from helpers import FAILURE, OUTPUT, make_client, new_router
from sagemaker_async import AsyncInvocation, InferenceFailedError, ParamValidationError

SQS_URL = "https://sqs.us-east-1.amazonaws.com/"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/results"
OUTPUT_URL = "https://my-bucket.s3.amazonaws.com/out/inf-1.out"
FAILURE_URL = "https://my-bucket.s3.amazonaws.com/failures/inf-1-error.out"
WAIT = 5.0
INVOCATION = AsyncInvocation("inf-1", OUTPUT, FAILURE)


def notification(inference_id: str = "inf-1", **changes: Any) -> str:
    document: dict[str, Any] = {
        "eventTime": "2026-11-26T00:18:25.123Z",
        "invocationStatus": "Completed",
        "requestParameters": {"endpointName": "my-endpoint"},
        "responseParameters": {
            "contentType": "text/plain",
            "outputLocation": OUTPUT.replace("inf-1", inference_id),
        },
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    document.update(changes)
    return json.dumps({"Type": "Notification", "Message": json.dumps(document)})


def message(number: int, body: str) -> dict[str, Any]:
    return {"MessageId": f"m-{number}", "ReceiptHandle": f"h-{number}", "Body": body}


class ScriptedSqs:
    """Answers SQS calls; ReceiveMessage takes its answers from ``receives`` in order."""

    def __init__(self, receives: list[httpx.Response]) -> None:
        self.receives = receives
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        operation = request.headers["x-amz-target"].split(".")[1]
        body = json.loads(request.content)
        self.calls.append((operation, body))
        self.changed.set()
        if operation == "GetQueueAttributes":
            return httpx.Response(200, json={"Attributes": {"VisibilityTimeout": "30"}})
        if operation == "ReceiveMessage":
            if self.receives:
                return self.receives.pop(0)
            await asyncio.Event().wait()  # a long poll that never ends: nothing to say
        entries = body["Entries"]
        return httpx.Response(200, json={"Successful": [{"Id": e["Id"]} for e in entries]})

    def handles(self, operation: str) -> list[list[str]]:
        return [
            [entry["ReceiptHandle"] for entry in body["Entries"]]
            for name, body in self.calls
            if name == operation
        ]

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), WAIT)


def received(*messages: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"Messages": list(messages)})


def scripted(receives: list[httpx.Response]) -> tuple[Any, ScriptedSqs]:
    router = new_router()
    sqs = ScriptedSqs(receives)
    router.post(SQS_URL).mock(side_effect=sqs)
    return router, sqs


async def test_a_notification_serves_the_wait_and_is_deleted_with_the_others_in_one_batch() -> None:
    router, sqs = scripted(
        [
            received(
                message(1, "not json at all"),
                message(2, notification()),
                message(3, notification(responseBody={"content": "x"})[:40]),  # truncated
            )
        ]
    )
    router.get(OUTPUT_URL).respond(200, content=b"the answer", headers={"Content-Type": "a/b"})
    client, _ = make_client(router)
    async with client, client.listen(QUEUE) as listener:
        result = await listener.wait(INVOCATION, timeout=WAIT)
        assert (result.body, result.location, result.content_type) == (
            b"the answer",
            OUTPUT,
            "a/b",
        )
        await sqs.until(lambda: bool(sqs.handles("DeleteMessageBatch")))
    # Only ours is deleted; the two that are not notifications are left alone (no release).
    assert sqs.handles("DeleteMessageBatch") == [["h-2"]]
    assert sqs.handles("ChangeMessageVisibilityBatch") == []
    receive = next(body for name, body in sqs.calls if name == "ReceiveMessage")
    assert receive == {
        "QueueUrl": QUEUE,
        "MessageSystemAttributeNames": ["SentTimestamp"],
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": 30,
        "WaitTimeSeconds": 20,
    }


async def test_others_results_are_held_then_released_in_one_batch_never_deleted() -> None:
    others = [message(n, notification(f"other-{n}")) for n in range(12)]
    router, sqs = scripted([received(*others[:10]), received(*others[10:])])
    client, _ = make_client(router)
    async with client, client.listen(QUEUE) as listener:
        listener._hold_seconds = 0.0
        listener._gather_seconds = 0.0
        await sqs.until(lambda: sum(map(len, sqs.handles("ChangeMessageVisibilityBatch"))) == 12)
    released = sqs.handles("ChangeMessageVisibilityBatch")
    assert sorted(h for batch in released for h in batch) == sorted(f"h-{n}" for n in range(12))
    assert all(len(batch) <= 10 for batch in released)
    assert sqs.handles("DeleteMessageBatch") == []
    assert all(
        entry["VisibilityTimeout"] == 0
        for name, body in sqs.calls
        if name == "ChangeMessageVisibilityBatch"
        for entry in body["Entries"]
    )


async def test_closing_releases_what_is_held() -> None:
    router, sqs = scripted([received(message(1, notification("someone-else")))])
    client, _ = make_client(router)
    async with client:
        async with client.listen(QUEUE) as listener:
            listener._hold_seconds = 3600.0
            await sqs.until(lambda: len(listener._held) == 1)
        assert sqs.handles("ChangeMessageVisibilityBatch") == [["h-1"]]


async def test_a_duplicate_of_a_delivered_notification_is_deleted_not_released() -> None:
    router, sqs = scripted([received(message(1, notification()))])
    router.get(OUTPUT_URL).respond(200, content=b"ok")
    client, _ = make_client(router)
    async with client, client.listen(QUEUE) as listener:
        assert (await listener.wait(INVOCATION, timeout=WAIT)).body == b"ok"
        sqs.receives.append(received(message(2, notification())))  # SQS delivers it again
        listener._hold_seconds = 0.0
        await sqs.until(lambda: len(sqs.handles("DeleteMessageBatch")) == 2)
    assert sqs.handles("DeleteMessageBatch") == [["h-1"], ["h-2"]]
    assert sqs.handles("ChangeMessageVisibilityBatch") == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"<html>a captive portal</html>"),
        httpx.Response(200, json={"Messages": "nope"}),
        httpx.Response(503, content=b""),
        httpx.Response(
            400,
            headers={"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
            json={"__type": "com.amazonaws.sqs#QueueDoesNotExist"},
        ),
    ],
    ids=["html", "malformed", "503", "queue-deleted"],
)
async def test_garbage_from_sqs_falls_back_to_s3_and_still_gets_the_result(
    answer: httpx.Response,
) -> None:
    router, _ = scripted([answer] * 50)
    router.head(OUTPUT_URL).respond(200)
    router.head(FAILURE_URL).respond(404)
    router.get(OUTPUT_URL).respond(200, content=b"from s3")
    client, _ = make_client(router)
    async with client, client.listen(QUEUE, fallback_poll_interval=0.01) as listener:
        listener._sleep = lambda _: asyncio.sleep(0)  # the poll loop's pause after trouble
        assert (await listener.wait(INVOCATION, timeout=WAIT)).body == b"from s3"
        assert listener._degraded


async def test_a_failure_notification_reads_the_failure_object() -> None:
    failed = notification(
        invocationStatus="Failed",
        failureReason="ClientError: the model returned 500",
        responseParameters={"failureLocation": FAILURE},
    )
    router, _ = scripted([received(message(1, failed))])
    router.get(FAILURE_URL).respond(200, content=b"Traceback: the model broke")
    client, _ = make_client(router)
    async with client, client.listen(QUEUE) as listener:
        with pytest.raises(InferenceFailedError) as caught:
            await listener.wait(INVOCATION, timeout=WAIT)
    assert caught.value.message == "Traceback: the model broke"
    assert caught.value.failure_location == FAILURE


async def test_a_failure_notification_with_the_body_included_needs_no_s3() -> None:
    failed = notification(
        invocationStatus="Failed",
        failureReason="ClientError",
        responseParameters={"failureLocation": FAILURE},
        responseBody={"content": "bad input", "encoding": "TEXT"},
    )
    router, _ = scripted([received(message(1, failed))])
    client, _ = make_client(router)
    async with client, client.listen(QUEUE) as listener:
        with pytest.raises(InferenceFailedError, match="bad input"):
            await listener.wait(INVOCATION, timeout=WAIT)


def test_sqs_endpoint_from_the_environment_as_botocore_finds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def sqs_url() -> str:
        client, _ = make_client(new_router())
        return str(client.listen(QUEUE)._queue._url)

    assert sqs_url() == SQS_URL
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert sqs_url() == "http://127.0.0.1:4566/"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9324/")
    assert sqs_url() == "http://127.0.0.1:9324/"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert sqs_url() == SQS_URL


def test_a_bad_sqs_endpoint_variable_fails_listen_not_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "ftp://queue")
    client, _ = make_client(new_router())  # a client that never listens is not refused
    with pytest.raises(ParamValidationError, match="AWS_ENDPOINT_URL_SQS"):
        client.listen(QUEUE)
    fips, _ = make_client(new_router(), use_fips_endpoint=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9324")
    with pytest.raises(ParamValidationError, match="FIPS"):
        fips.listen(QUEUE)


async def test_a_result_unreadable_after_its_notification_is_read_from_s3_again() -> None:
    router, _ = scripted([received(message(1, notification()))])
    unavailable = httpx.Response(503, content=b"")
    router.get(OUTPUT_URL).mock(
        side_effect=[unavailable, unavailable, unavailable, httpx.Response(200, content=b"ok")]
    )
    router.head(OUTPUT_URL).respond(200)
    router.head(FAILURE_URL).respond(404)
    client, _ = make_client(router)
    async with client, client.listen(QUEUE, fallback_poll_interval=0.01) as listener:
        assert (await listener.wait(INVOCATION, timeout=WAIT)).body == b"ok"
