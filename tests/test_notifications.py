"""SageMaker notifications parsed from SQS message bodies: raw, SNS-wrapped, and hostile."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sagemaker_async import AsyncInvocation, InferenceEvent
from sagemaker_async._io.listener import _Waiter
from sagemaker_async._protocol.notifications import is_fresh, parse_notification
from sagemaker_async._protocol.sqs import parse_receive, parse_sqs_error
from sagemaker_async.errors import AccessDeniedError, ServiceError, ThrottlingError

OUTPUT = "s3://bucket/out/inf-1.out"
FAILURE = "s3://bucket/failures/inf-1-error.out"

# As the SageMaker guide shows a success notification.
SUCCESS: dict[str, Any] = {
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-26T00:18:25.123Z",
    "receivedTime": "2026-11-26T00:18:22.001Z",
    "invocationStatus": "Completed",
    "requestParameters": {"contentType": "text/csv", "endpointName": "my-endpoint"},
    "responseParameters": {"contentType": "text/csv; charset=utf-8", "outputLocation": OUTPUT},
    "inferenceId": "inf-1",
    "eventVersion": "1.0",
    "eventSource": "aws:sagemaker",
    "eventName": "InferenceResult",
}
FAILED: dict[str, Any] = {
    **SUCCESS,
    "invocationStatus": "Failed",
    "failureReason": "ClientError: Received server error (500) from model.",
    "responseParameters": {"contentType": "text/plain", "failureLocation": FAILURE},
}


def sns(document: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "b6f1c5a2",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:SuccessTopic",
            "Message": json.dumps(document),
            "Timestamp": "2026-11-26T00:18:25.200Z",
        }
    )


@pytest.mark.parametrize("wrap", [json.dumps, sns], ids=["raw", "sns"])
def test_success_raw_and_sns_wrapped_read_the_same(wrap: Any) -> None:
    event = parse_notification(wrap(SUCCESS), "m-1")
    assert event == InferenceEvent(
        inference_id="inf-1",
        succeeded=True,
        endpoint_name="my-endpoint",
        output_location=OUTPUT,
        failure_location=None,
        failure_reason=None,
        event_time=datetime(2026, 11, 26, 0, 18, 25, 123000, tzinfo=timezone.utc),
        content_type="text/csv; charset=utf-8",
        body=None,
        message_id="m-1",
    )


def test_failure_carries_reason_and_location() -> None:
    event = parse_notification(sns(FAILED), "m-2")
    assert event is not None
    assert not event.succeeded
    assert event.failure_reason == "ClientError: Received server error (500) from model."
    assert event.failure_location == FAILURE
    assert event.output_location is None


@pytest.mark.parametrize(
    ("response_body", "expected"),
    [
        ({"content": '{"label": "cat"}', "encoding": "JSON"}, b'{"label": "cat"}'),
        ({"content": "héllo", "encoding": "TEXT"}, "héllo".encode()),
        (
            {"content": base64.b64encode(bytes(range(256))).decode(), "encoding": "BASE64"},
            bytes(range(256)),
        ),
        ({"content": "héllo"}, "héllo".encode()),  # no encoding: the text as it is
        ({"content": "AAA", "encoding": "GZIP"}, None),  # unknown: read S3 instead
        ({"content": "not base64!", "encoding": "BASE64"}, None),
        ({"encoding": "TEXT"}, None),
        ("a string", None),
    ],
)
def test_included_response_is_decoded_or_left_to_s3(response_body: Any, expected: Any) -> None:
    event = parse_notification(json.dumps({**SUCCESS, "responseBody": response_body}), "m")
    assert event is not None
    assert event.body == expected


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        json.dumps(SUCCESS)[:-20],  # truncated
        sns(SUCCESS)[:-5],
        json.dumps([SUCCESS]),
        "null",
        json.dumps({"Type": "Notification", "Message": "{broken"}),
        json.dumps({"Type": "Notification", "Message": json.dumps(["x"])}),
        json.dumps({"Records": [{"eventSource": "aws:s3"}]}),  # an S3 event, not ours
        json.dumps({**SUCCESS, "eventSource": "aws:s3"}),
        json.dumps({**SUCCESS, "eventName": "Other"}),
        json.dumps({**SUCCESS, "inferenceId": ""}),
        json.dumps({**SUCCESS, "inferenceId": 7}),
        json.dumps({**SUCCESS, "invocationStatus": "InProgress"}),
        json.dumps({**SUCCESS, "eventTime": "yesterday"}),
        json.dumps({k: v for k, v in SUCCESS.items() if k != "eventTime"}),
        json.dumps({**SUCCESS, "responseParameters": {}}),  # success without its output
        json.dumps({**SUCCESS, "responseParameters": "x"}),
        "[" * 100_000,  # deeply nested: no RecursionError escapes
    ],
)
def test_anything_else_is_not_a_notification(body: str) -> None:
    assert parse_notification(body, "m") is None


def test_event_repr_hides_the_body() -> None:
    event = parse_notification(
        json.dumps({**SUCCESS, "responseBody": {"content": "secret", "encoding": "TEXT"}}), "m"
    )
    assert "secret" not in repr(event)
    assert "<6 bytes>" in repr(event)


def test_freshness_compares_event_time_with_submission_to_the_second() -> None:
    event = parse_notification(json.dumps(SUCCESS), "m")
    assert event is not None
    at = event.event_time
    assert is_fresh(event, None)
    assert is_fresh(event, at)
    # Submitted later in the same second: the event still counts (S3's whole seconds).
    assert is_fresh(event, at + timedelta(milliseconds=500))
    assert not is_fresh(event, at + timedelta(seconds=1))
    naive = (at + timedelta(seconds=2)).replace(tzinfo=None)
    assert not is_fresh(event, naive)


def test_a_waiter_takes_only_its_own_fresh_run_at_its_own_location() -> None:
    event = parse_notification(json.dumps(SUCCESS), "m")
    assert event is not None

    def waiter(**changes: Any) -> _Waiter:
        fields: dict[str, Any] = {
            "inference_id": "inf-1",
            "output_location": OUTPUT,
            "failure_location": FAILURE,
        }
        fields.update(changes)
        return _Waiter(AsyncInvocation(**fields), asyncio.Event())

    assert waiter().accepts(event)
    assert not waiter(output_location="s3://bucket/other/inf-1.out").accepts(event)
    later = event.event_time + timedelta(seconds=5)
    assert not waiter(submitted_at=later).accepts(event)  # an older run of a reused id
    assert waiter(submitted_at=event.event_time - timedelta(seconds=5)).accepts(event)
    failed = parse_notification(json.dumps(FAILED), "m")
    assert failed is not None
    assert waiter().accepts(failed)
    assert not waiter(failure_location="s3://bucket/f/other-error.out").accepts(failed)


# -- SQS answers, hostile ones included ---------------------------------------------------------


def test_receive_skips_entries_it_cannot_act_on() -> None:
    body = json.dumps(
        {
            "Messages": [
                {"MessageId": "a", "ReceiptHandle": "h", "Body": "x"},
                {"MessageId": "b"},  # no handle: cannot be deleted or released
                "junk",
                {"MessageId": "c", "ReceiptHandle": "h2", "Body": 5, "Attributes": "x"},
            ]
        }
    ).encode()
    messages, unusable = parse_receive(200, {}, body)
    assert [(m.message_id, m.body) for m in messages] == [("a", "x"), ("c", "")]
    assert unusable == 2


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"Messages": 5}'])
def test_a_malformed_receive_answer_is_an_error_not_an_empty_queue(body: bytes) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_receive(200, {"x-amzn-requestid": "r"}, body)
    assert caught.value.code == "MalformedResponse"


@pytest.mark.parametrize(
    ("status", "headers", "body", "cls", "code"),
    [
        (
            400,
            {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
            b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist"}',
            ServiceError,
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
        (
            403,
            {"x-amzn-query-error": "AccessDenied;Sender"},
            b"{}",
            AccessDeniedError,
            "AccessDenied",
        ),
        (
            400,
            {},
            b'{"__type": "com.amazonaws.sqs#ThrottlingException"}',
            ThrottlingError,
            "ThrottlingException",
        ),
        (502, {}, b"<html>bad gateway</html>", ServiceError, "502"),
    ],
)
def test_sqs_errors_are_typed(
    status: int, headers: dict[str, str], body: bytes, cls: type[ServiceError], code: str
) -> None:
    error = parse_sqs_error(status, headers, body)
    assert type(error) is cls
    assert error.code == code


def test_inference_event_is_public_and_imported_only_when_needed() -> None:
    code = (
        "import sys, sagemaker_async\n"
        "assert 'sagemaker_async._protocol.notifications' not in sys.modules\n"
        "assert 'sagemaker_async._io.listener' not in sys.modules\n"
        "from sagemaker_async import InferenceEvent\n"
        "assert InferenceEvent.__module__ == 'sagemaker_async'\n"
        "assert 'InferenceEvent' in sagemaker_async.__all__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-11-26T00:18:25.123Z",
            datetime(2026, 11, 26, 0, 18, 25, 123000, tzinfo=timezone.utc),
        ),
        ("2026-11-26T00:18:25Z", datetime(2026, 11, 26, 0, 18, 25, tzinfo=timezone.utc)),
        (
            "2026-11-26T00:18:25.123456789Z",
            datetime(2026, 11, 26, 0, 18, 25, 123456, tzinfo=timezone.utc),
        ),
        (
            "2026-11-26T01:18:25.5+01:00",
            datetime(2026, 11, 26, 0, 18, 25, 500000, tzinfo=timezone.utc),
        ),
        ("2026-11-26T00:18:25", datetime(2026, 11, 26, 0, 18, 25, tzinfo=timezone.utc)),
        ("2026-13-40T00:00:00Z", None),
        ("2026-11-26T00:18:2\u0665Z", None),  # an Arabic-Indic digit
        ("26/11/2026 00:18", None),
    ],
)
def test_event_times_as_aws_writes_them_on_every_python(text: str, expected: Any) -> None:
    event = parse_notification(json.dumps({**SUCCESS, "eventTime": text}), "m")
    assert (event and event.event_time) == expected
