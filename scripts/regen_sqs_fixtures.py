"""Regenerate fixtures/sqs/: the SQS requests botocore itself sends for the calls we make.

The same capture as scripts/regen_fixtures.py (fixed keys, a signing clock fixed at
2026-11-26T00:18:21Z, a ``before-send`` handler that records the request and answers with
a canned response), for an ``sqs`` client and the four operations waiting on notifications
uses. botocore writes the JSON body's members in the order of the caller's keyword
arguments, so it is called in the order our request builders use. Each scenario is one
folder: scenario.json (the call, the client's settings, what botocore made of the
response), request.json and response.json.

    .venv/bin/python scripts/regen_sqs_fixtures.py          # rewrite the fixtures
    .venv/bin/python scripts/regen_sqs_fixtures.py --check  # exit 1 if they are stale

tests/test_sqs_wire.py replays every folder through our SQS client and re-runs this capture.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "sqs"


def _load_invoke_regen() -> Any:
    spec = importlib.util.spec_from_file_location(
        "regen_fixtures", ROOT / "scripts" / "regen_fixtures.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get("regen_fixtures")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["regen_fixtures"] = module
        spec.loader.exec_module(module)
    return module


base = _load_invoke_regen()
Response = base.Response

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/sagemaker-results"
REQUEST_ID = "7a5f0c2e-3b1d-5e4f-9a8b-0c1d2e3f4a5b"

NOTIFICATION = {
    "awsRegion": "us-east-1",
    "eventTime": "2026-11-26T00:18:25.123Z",
    "receivedTime": "2026-11-26T00:18:22.001Z",
    "invocationStatus": "Completed",
    "requestParameters": {"contentType": "application/json", "endpointName": "my-endpoint"},
    "responseParameters": {
        "contentType": "application/json",
        "outputLocation": "s3://my-bucket/async-out/order-42.out",
    },
    "inferenceId": "order-42",
    "eventVersion": "1.0",
    "eventSource": "aws:sagemaker",
    "eventName": "InferenceResult",
}
SNS_ENVELOPE = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:SuccessTopic",
    "Message": json.dumps(NOTIFICATION),
    "Timestamp": "2026-11-26T00:18:25.200Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLE",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
}


def ok(document: dict[str, Any]) -> Any:
    return Response(
        200,
        [
            ("Date", "Thu, 26 Nov 2026 00:18:22 GMT"),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", REQUEST_ID),
        ],
        json.dumps(document).encode(),
    )


def sqs_error(status: int, query_code: str, type_: str, message: str) -> Any:
    return Response(
        status,
        [
            ("Date", "Thu, 26 Nov 2026 00:18:22 GMT"),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", REQUEST_ID),
            ("x-amzn-query-error", f"{query_code};Sender"),
        ],
        json.dumps({"__type": type_, "message": message}).encode(),
    )


def receive_call(queue_url: str = QUEUE_URL) -> dict[str, Any]:
    return {
        "QueueUrl": queue_url,
        "MessageSystemAttributeNames": ["SentTimestamp"],
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": 30,
        "WaitTimeSeconds": 20,
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    operation: str
    call: dict[str, Any]
    response: Any
    region: str = "us-east-1"
    use_fips: bool = False
    use_dualstack: bool = False
    token: str | None = None
    error_class: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)


TWO_MESSAGES = {
    "Messages": [
        {
            "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
            "ReceiptHandle": "MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw",
            "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
            "Body": json.dumps(SNS_ENVELOPE),
            "Attributes": {"SentTimestamp": "1795652305200"},
        },
        {
            "MessageId": "6a1b2c3d-0ea4-451a-a703-a558b933e275",
            "ReceiptHandle": "AQEBzbVv7xvJ0tQ+raw/handle==",
            "MD5OfBody": "0123456789abcdef0123456789abcdef",
            "Body": json.dumps({**NOTIFICATION, "inferenceId": "order-43"}),
            "Attributes": {"SentTimestamp": "1795652305300"},
        },
    ]
}

SCENARIOS = [
    Scenario(
        "receive-two-messages",
        "A long poll answered with an SNS-wrapped and a raw notification.",
        "ReceiveMessage",
        receive_call(),
        ok(TWO_MESSAGES),
    ),
    Scenario(
        "receive-empty",
        "A long poll that ends with nothing: no Messages member at all.",
        "ReceiveMessage",
        receive_call(),
        ok({}),
    ),
    Scenario(
        "receive-session-token",
        "Temporary credentials: X-Amz-Security-Token is sent and signed.",
        "ReceiveMessage",
        receive_call("https://sqs.us-west-2.amazonaws.com/123456789012/q"),
        ok({}),
        region="us-west-2",
        token=base.SESSION_TOKEN,
    ),
    Scenario(
        "receive-cn-north-1",
        "China: amazonaws.com.cn.",
        "ReceiveMessage",
        receive_call("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q"),
        ok({}),
        region="cn-north-1",
    ),
    Scenario(
        "receive-us-gov-west-1-fips",
        "GovCloud FIPS: the plain host.",
        "ReceiveMessage",
        receive_call("https://sqs.us-gov-west-1.amazonaws.com/123456789012/q"),
        ok({}),
        region="us-gov-west-1",
        use_fips=True,
    ),
    Scenario(
        "receive-eu-west-1-fips-dualstack",
        "FIPS and dual-stack together: sqs-fips on api.aws.",
        "ReceiveMessage",
        receive_call("https://sqs.eu-west-1.amazonaws.com/123456789012/q"),
        ok({}),
        region="eu-west-1",
        use_fips=True,
        use_dualstack=True,
    ),
    Scenario(
        "delete-batch-partial",
        "DeleteMessageBatch: one entry deleted, one refused.",
        "DeleteMessageBatch",
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [
                {"Id": "0", "ReceiptHandle": "handle-0"},
                {"Id": "1", "ReceiptHandle": "handle-1"},
            ],
        },
        ok(
            {
                "Successful": [{"Id": "0"}],
                "Failed": [
                    {
                        "Id": "1",
                        "SenderFault": True,
                        "Code": "ReceiptHandleIsInvalid",
                        "Message": "The input receipt handle is invalid.",
                    }
                ],
            }
        ),
    ),
    Scenario(
        "release-batch",
        "ChangeMessageVisibilityBatch to 0: messages handed back to the queue.",
        "ChangeMessageVisibilityBatch",
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [
                {"Id": "0", "ReceiptHandle": "handle-0", "VisibilityTimeout": 0},
                {"Id": "1", "ReceiptHandle": "handle-1", "VisibilityTimeout": 0},
                {"Id": "2", "ReceiptHandle": "handle-2", "VisibilityTimeout": 0},
            ],
        },
        ok({"Successful": [{"Id": "0"}, {"Id": "1"}, {"Id": "2"}]}),
    ),
    Scenario(
        "get-queue-attributes",
        "What listen() checks on entry: the queue exists and may be read.",
        "GetQueueAttributes",
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["VisibilityTimeout"]},
        ok({"Attributes": {"VisibilityTimeout": "30"}}),
    ),
    Scenario(
        "error-nonexistent-queue",
        "No such queue: the query-compatible code from x-amzn-query-error.",
        "GetQueueAttributes",
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["VisibilityTimeout"]},
        sqs_error(
            400,
            "AWS.SimpleQueueService.NonExistentQueue",
            "com.amazonaws.sqs#QueueDoesNotExist",
            "The specified queue does not exist.",
        ),
        error_class="ServiceError",
    ),
    Scenario(
        "error-access-denied",
        "No permission: AccessDenied.",
        "GetQueueAttributes",
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["VisibilityTimeout"]},
        sqs_error(
            403,
            "AccessDenied",
            "com.amazon.coral.service#AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/x is not authorized to perform: "
            "sqs:getqueueattributes on resource: arn:aws:sqs:us-east-1:123456789012:q",
        ),
        error_class="AccessDeniedError",
    ),
    Scenario(
        "error-throttled",
        "Throttled (retried by both SDKs).",
        "ReceiveMessage",
        receive_call(),
        sqs_error(400, "RequestThrottled", "com.amazonaws.sqs#RequestThrottled", "Rate exceeded"),
        error_class="ThrottlingError",
    ),
    Scenario(
        "error-internal",
        "500 with only __type in the body: InternalFailure by its status.",
        "ReceiveMessage",
        receive_call(),
        Response(
            500,
            [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", REQUEST_ID)],
            json.dumps(
                {"__type": "com.amazonaws.sqs#InternalError", "message": "internal"}
            ).encode(),
        ),
        error_class="InternalFailure",
    ),
]


def _call(scenario: Scenario, response: Any, *, max_attempts: int) -> tuple[Any, Any]:
    request, outcome = base.botocore_call(
        "sqs",
        _snake(scenario.operation),
        scenario.call,
        scenario,
        response,
        max_attempts=max_attempts,
    )
    return request, outcome


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _expect(scenario: Scenario, result: Any) -> dict[str, Any]:
    if scenario.operation == "ReceiveMessage":
        return {
            "messages": [
                {
                    "message_id": m["MessageId"],
                    "receipt_handle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "sent_timestamp": int(m["Attributes"]["SentTimestamp"]),
                }
                for m in result.get("Messages", [])
            ]
        }
    if scenario.operation == "GetQueueAttributes":
        return {"attributes": result.get("Attributes", {})}
    return {
        "successful": [entry["Id"] for entry in result.get("Successful", [])],
        "failed": [
            [entry["Id"], entry["Code"], entry.get("Message", "")]
            for entry in result.get("Failed", [])
        ],
    }


def capture(scenario: Scenario) -> dict[str, Any]:
    with base.isolated_environment(), base.fixed_signing_clock():
        if scenario.error_class is None:
            request, result = _call(scenario, scenario.response, max_attempts=3)
            expect: dict[str, Any] = {"result": _expect(scenario, result)}
        else:
            request, _ = _call(scenario, ok({}), max_attempts=3)
            _, error = _call(scenario, scenario.response, max_attempts=1)
            details = error.response
            expect = {
                "error": {
                    "class": scenario.error_class,
                    "code": details["Error"]["Code"],
                    "message": details["Error"]["Message"],
                    "status_code": details["ResponseMetadata"]["HTTPStatusCode"],
                    "request_id": details["ResponseMetadata"].get("RequestId"),
                }
            }
    headers = [
        [name, base.FIXED_HEADERS_PLACEHOLDERS.get(name.lower(), base._header_text(value))]
        for name, value in request.headers.items()
    ]
    return {
        "scenario.json": {
            "description": scenario.description,
            "client": {
                "region_name": scenario.region,
                "use_fips_endpoint": scenario.use_fips,
                "use_dualstack_endpoint": scenario.use_dualstack,
                "aws_access_key_id": base.ACCESS_KEY,
                "aws_secret_access_key": base.SECRET_KEY,
                "aws_session_token": scenario.token,
                "max_attempts": 3,
            },
            "operation": scenario.operation,
            "call": scenario.call,
            "expect": expect,
        },
        "request.json": {
            "method": request.method,
            "url": request.url,
            "headers": headers,
            "body": base._text_or_base64(request.body),
        },
        "response.json": {
            "status": scenario.response.status,
            "headers": [list(item) for item in scenario.response.headers],
            "body": base._text_or_base64(scenario.response.body),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale fixtures")
    args = parser.parse_args(argv)
    stale = []
    for scenario in SCENARIOS:
        folder = FIXTURES / scenario.name
        for filename, document in capture(scenario).items():
            path = folder / filename
            text = base.render(document)
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(path.relative_to(ROOT))
            if not args.check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    known = {scenario.name for scenario in SCENARIOS}
    extra = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name not in known)
    for name in extra:
        print(f"not a scenario any more, remove it: fixtures/sqs/{name}", file=sys.stderr)
    verb = "stale" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and (stale or extra) else 0


if __name__ == "__main__":
    sys.exit(main())
