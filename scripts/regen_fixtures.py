"""Regenerate fixtures/invoke/: the InvokeEndpointAsync requests botocore itself sends.

For each scenario a botocore ``sagemaker-runtime`` client (fixed keys, region and flags)
makes the call with its signing clock fixed at 2026-11-26T00:18:21Z; a ``before-send``
handler records the prepared request and answers with a canned response, so nothing
leaves the process. Each scenario becomes one folder:

    fixtures/invoke/<scenario>/scenario.json   the call, the client's settings, and what
                                               botocore made of the response
    fixtures/invoke/<scenario>/request.json    method, URL, headers (in order), body
    fixtures/invoke/<scenario>/response.json   the canned response

Two header values differ between any two SDKs by design and are stored as placeholders:
``User-Agent`` and ``amz-sdk-invocation-id`` (a fresh UUID per call). Everything else,
``Authorization`` included, is botocore's byte for byte.

    .venv/bin/python scripts/regen_fixtures.py          # rewrite the fixtures
    .venv/bin/python scripts/regen_fixtures.py --check  # exit 1 if they are stale

tests/test_wire_fixtures.py replays every folder through our client and re-runs this
capture in-process, so the fixtures cannot drift from the installed botocore.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import functools
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "invoke"

FIXED_TIME = datetime.datetime(2026, 11, 26, 0, 18, 21)
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # noqa: S105 (AWS's example key)
# The example session token of AWS's documentation.
SESSION_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwA"  # noqa: S105
    "eMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8p"
    "hUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT"
    "38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabI"
    "Qwj2ICCR/oLxBA=="
)
USER_AGENT = "<user agent: differs by design>"
INVOCATION_ID = "<uuid4: differs per call>"
FIXED_HEADERS_PLACEHOLDERS = {"user-agent": USER_AGENT, "amz-sdk-invocation-id": INVOCATION_ID}


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def accepted(inference_id: str, *, prefix: str = "s3://my-bucket/async-out") -> Response:
    return Response(
        202,
        [
            ("Date", "Thu, 26 Nov 2026 00:18:22 GMT"),
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", "5b1f0d9e-8a2c-4c3b-9d65-0f1e2d3c4b5a"),
            ("X-Amzn-SageMaker-OutputLocation", f"{prefix}/{inference_id}.out"),
            ("X-Amzn-SageMaker-FailureLocation", f"{prefix}-failures/{inference_id}-error.out"),
        ],
        json.dumps({"InferenceId": inference_id}).encode(),
    )


def aws_error(status: int, code: str, message: str, *, type_: str | None = None) -> Response:
    document: dict[str, str] = {"message": message}
    if type_ is not None:
        document = {"__type": type_, **document}
    return Response(
        status,
        [
            ("Date", "Thu, 26 Nov 2026 00:18:22 GMT"),
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", "0c9e2f7a-1b3d-4e5f-8a9b-c0d1e2f3a4b5"),
            *(
                [("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/coral/com.amazon.coral/")]
                if type_ is None
                else []
            ),
        ],
        json.dumps(document).encode(),
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # botocore's parameters, in the model's member order (botocore writes headers in the
    # order of the caller's keyword arguments; we write them in the model's).
    call: dict[str, Any]
    response: Response
    region: str = "us-east-1"
    use_fips: bool = False
    use_dualstack: bool = False
    token: str | None = None
    # The contract's class for an error answer (botocore has only ClientError).
    error_class: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)


MINIMAL = {"EndpointName": "my-endpoint", "InputLocation": "s3://my-bucket/requests/0001.json"}
ODD_INFERENCE_ID = "~id with  two spaces, !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ and 64 chars"[:64]

SCENARIOS = [
    Scenario(
        "input-location-minimal",
        "The smallest call: a name and an S3 input.",
        MINIMAL,
        accepted("a1b2c3d4-0000-4000-8000-000000000001"),
    ),
    Scenario(
        "all-parameters",
        "Every parameter of the operation, the payload in S3.",
        {
            "EndpointName": "fraud-detector-v2",
            "ContentType": "application/json",
            "Accept": "application/json",
            "CustomAttributes": "trace_id=abc123,tenant=acme",
            "InferenceId": "order-42",
            "InputLocation": "s3://my-bucket/requests/order-42.json",
            "S3OutputPathExtension": "daily/2026-11-26",
            "Filename": "order-42.json",
            "RequestTTLSeconds": 600,
            "InvocationTimeoutSeconds": 300,
        },
        accepted("order-42"),
    ),
    Scenario(
        "inline-body-json",
        "The payload inline as JSON: no HTTP Content-Type, the body signed.",
        {
            "EndpointName": "my-endpoint",
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps({"inputs": "A sentence to classify.", "top_k": 3}).encode(),
        },
        accepted("a1b2c3d4-0000-4000-8000-000000000002"),
    ),
    Scenario(
        "inline-body-binary",
        "Every byte value inline, 4 KiB of binary.",
        {
            "EndpointName": "image-model",
            "ContentType": "application/x-image",
            "Body": bytes(range(256)) * 16,
        },
        accepted("a1b2c3d4-0000-4000-8000-000000000003"),
    ),
    Scenario(
        "odd-but-valid",
        "Max-length names and ids, spaces and tabs, a UTF-8 S3 key, one-dot filename.",
        {
            "EndpointName": "a-" + "b" * 59 + "-c",
            "ContentType": "text/csv; charset=utf-8",
            "Accept": "*/*",
            "CustomAttributes": 'a=1;\tb = 2  \t c="x y"',
            "InferenceId": ODD_INFERENCE_ID,
            "InputLocation": "s3://my-bucket/入力/données/ключ 1+2=3&x.json",
            "S3OutputPathExtension": "!_.*'()/-" + "x" * 503,
            "Filename": "f" * 27 + ".json",
            "RequestTTLSeconds": 21600,
            "InvocationTimeoutSeconds": 3600,
        },
        accepted("~id-odd"),
    ),
    Scenario(
        "session-token",
        "Temporary credentials: X-Amz-Security-Token is sent and signed.",
        {**MINIMAL, "ContentType": "application/json", "RequestTTLSeconds": 3600},
        accepted("a1b2c3d4-0000-4000-8000-000000000004"),
        region="us-west-2",
        token=SESSION_TOKEN,
    ),
    Scenario(
        "region-cn-north-1",
        "China: amazonaws.com.cn.",
        MINIMAL,
        accepted("cn-1"),
        region="cn-north-1",
    ),
    Scenario(
        "region-us-gov-west-1-fips",
        "GovCloud FIPS: the plain host.",
        MINIMAL,
        accepted("gov-1"),
        region="us-gov-west-1",
        use_fips=True,
    ),
    Scenario(
        "region-us-east-1-fips",
        "FIPS in aws: runtime-fips.sagemaker.",
        MINIMAL,
        accepted("fips-1"),
        use_fips=True,
    ),
    Scenario(
        "region-eu-west-1-dualstack",
        "Dual-stack: api.aws.",
        MINIMAL,
        accepted("eu-1"),
        region="eu-west-1",
        use_dualstack=True,
    ),
    Scenario(
        "region-ap-southeast-2-fips-dualstack",
        "FIPS and dual-stack together.",
        MINIMAL,
        accepted("ap-1"),
        region="ap-southeast-2",
        use_fips=True,
        use_dualstack=True,
    ),
    Scenario(
        "region-us-iso-east-1",
        "ISO: c2s.ic.gov.",
        MINIMAL,
        accepted("iso-1"),
        region="us-iso-east-1",
    ),
    Scenario(
        "error-validation",
        "An unknown endpoint: 400 ValidationError, code in x-amzn-ErrorType.",
        MINIMAL,
        aws_error(
            400, "ValidationError", "Endpoint my-endpoint of account 123456789012 not found."
        ),
        error_class="ValidationError",
    ),
    Scenario(
        "error-throttling",
        "Throttled: 400 ThrottlingException (retried by both SDKs).",
        MINIMAL,
        aws_error(400, "ThrottlingException", "Rate exceeded"),
        error_class="ThrottlingError",
    ),
    Scenario(
        "error-internal-namespaced",
        "500 with the code only in the body's __type, namespace and all.",
        MINIMAL,
        aws_error(
            500,
            "InternalFailure",
            "An internal error occurred.",
            type_="com.amazonaws.sagemaker.runtime#InternalFailure",
        ),
        error_class="InternalFailure",
    ),
    Scenario(
        "error-html-502",
        "A proxy's HTML page: the status is the code, its reason the message.",
        MINIMAL,
        Response(
            502,
            [("Content-Type", "text/html"), ("Server", "awselb/2.0")],
            b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
            b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
        ),
        error_class="ServiceError",
    ),
]


# -- capture ---------------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_environment() -> Iterator[None]:
    """No developer setting may leak into botocore: AWS_* cleared, shared files empty."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                del os.environ[name]
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def fixed_signing_clock() -> Iterator[None]:
    import botocore.auth

    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED_TIME):
        yield


class _Raw:
    """The raw stream of a canned ``AWSResponse``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@functools.cache
def _session() -> Any:
    """One botocore session for every capture: it loads the service model once."""
    import botocore.session

    return botocore.session.Session()


@functools.cache
def _member_order() -> list[str]:
    model = _session().get_service_model("sagemaker-runtime")
    return list(model.operation_model("InvokeEndpointAsync").input_shape.members)


def in_model_order(call: dict[str, Any]) -> dict[str, Any]:
    """botocore writes headers in the order of the caller's keyword arguments; we write
    them in the model's member order, so botocore is called with that order."""
    order = _member_order()
    return dict(sorted(call.items(), key=lambda item: order.index(item[0])))


def botocore_client(service: str, scenario: Any, *, max_attempts: int) -> Any:
    """botocore's client for ``service`` as a scenario sets it up (region, token, flags)."""
    from botocore.config import Config

    return _session().create_client(
        service,
        region_name=scenario.region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=scenario.token,
        config=Config(
            use_fips_endpoint=scenario.use_fips,
            use_dualstack_endpoint=scenario.use_dualstack,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
        ),
    )


def botocore_call(
    service: str,
    operation: str,
    call: dict[str, Any],
    scenario: Any,
    response: Any,
    *,
    max_attempts: int,
) -> tuple[Any, Any]:
    """Make the call through botocore, answered by ``response`` (status, headers, body);
    returns (the first prepared request, the result or the error)."""
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ClientError

    requests: list[Any] = []

    def before_send(request: Any, **_: Any) -> AWSResponse:
        requests.append(request)
        # A plain dict, as the fixtures were made with: botocore reads headers as a mapping.
        headers: Any = dict(response.headers)
        return AWSResponse(request.url, response.status, headers, _Raw(response.body))

    client = botocore_client(service, scenario, max_attempts=max_attempts)
    client.meta.events.register(f"before-send.{service}", before_send)
    try:
        outcome: Any = getattr(client, operation)(**call)
    except ClientError as error:
        outcome = error
    finally:
        client.close()
    return requests[0], outcome


def _call(scenario: Scenario, response: Response, *, max_attempts: int) -> tuple[Any, Any]:
    return botocore_call(
        "sagemaker-runtime",
        "invoke_endpoint_async",
        in_model_order(scenario.call),
        scenario,
        response,
        max_attempts=max_attempts,
    )


def _text_or_base64(data: bytes | None) -> dict[str, str]:
    """Readable text stays text; anything else (binary, control bytes) is base64."""
    data = data or b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return {"text": text}
    return {"base64": base64.b64encode(data).decode("ascii")}


def _header_text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def capture(scenario: Scenario) -> dict[str, Any]:
    """The three files of a scenario, as JSON-ready objects, from botocore itself."""
    with isolated_environment(), fixed_signing_clock():
        if scenario.error_class is None:
            request, result = _call(scenario, scenario.response, max_attempts=3)
            metadata = result["ResponseMetadata"]
            expect: dict[str, Any] = {
                "invocation": {
                    "inference_id": result["InferenceId"],
                    "output_location": result.get("OutputLocation"),
                    "failure_location": result.get("FailureLocation"),
                    "request_id": metadata.get("RequestId"),
                }
            }
        else:
            # The request, captured on a first attempt that succeeds (so botocore does not
            # retry, and sleep); then the error as botocore reads it, in one attempt.
            request, _ = _call(scenario, accepted("unused"), max_attempts=3)
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
    headers = []
    for name, value in request.headers.items():
        text = FIXED_HEADERS_PLACEHOLDERS.get(name.lower(), _header_text(value))
        headers.append([name, text])
    call = {
        key: {"base64": base64.b64encode(value).decode("ascii")} if key == "Body" else value
        for key, value in in_model_order(scenario.call).items()
    }
    return {
        "scenario.json": {
            "description": scenario.description,
            "client": {
                "region_name": scenario.region,
                "use_fips_endpoint": scenario.use_fips,
                "use_dualstack_endpoint": scenario.use_dualstack,
                "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY,
                "aws_session_token": scenario.token,
                "max_attempts": 3,
            },
            "call": call,
            "expect": expect,
        },
        "request.json": {
            "method": request.method,
            "url": request.url,
            "headers": headers,
            "body": _text_or_base64(request.body),
        },
        "response.json": {
            "status": scenario.response.status,
            "headers": [list(item) for item in scenario.response.headers],
            "body": _text_or_base64(scenario.response.body),
        },
    }


_PAIR = re.compile(r'\[\n\s+("(?:[^"\\]|\\.)*"),\n\s+("(?:[^"\\]|\\.)*")\n\s+\]')


def render(document: dict[str, Any]) -> str:
    """Indented JSON with one ``[name, value]`` header per line."""
    return _PAIR.sub(r"[\1, \2]", json.dumps(document, indent=2, ensure_ascii=False)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale fixtures")
    args = parser.parse_args(argv)
    stale = []
    for scenario in SCENARIOS:
        folder = FIXTURES / scenario.name
        for filename, document in capture(scenario).items():
            path = folder / filename
            text = render(document)
            if path.exists() and path.read_text(encoding="utf-8") == text:
                continue
            stale.append(path.relative_to(ROOT))
            if not args.check:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    known = {scenario.name for scenario in SCENARIOS}
    extra = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name not in known)
    for name in extra:
        print(f"not a scenario any more, remove it: fixtures/invoke/{name}", file=sys.stderr)
    verb = "stale" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and (stale or extra) else 0


if __name__ == "__main__":
    sys.exit(main())
