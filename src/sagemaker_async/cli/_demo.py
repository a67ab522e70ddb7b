"""``demo``: the whole job on a fresh machine — no AWS account, no network, no setup.

It starts the local endpoint (SageMaker async inference and S3 on one port of 127.0.0.1)
with the bundled toy ``sentiment`` model, one request at a time so a queue forms, and then
does what a user of the library does: three requests — inline, through S3 with
``upload_input``, and one the model fails on — each watched with ``poll_result`` as it
moves from queued to done or failed, and the results printed. A fourth is waited for the
way a service at scale would: on the SNS → SQS notification the endpoint publishes.

The demo's own process is cut off from any AWS configuration of the machine (environment
variables, shared files): it signs with dummy keys that only the local endpoint sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._common import Streams
from ._local import require_local_extra

if TYPE_CHECKING:
    from .. import AsyncInvocation, InferenceResult

__all__ = ["run_demo"]

_ENDPOINT = "sentiment"
_BUCKET = "sagemaker-async-demo"
_POLL_INTERVAL = 0.05


@dataclass
class _Request:
    number: int
    how: str
    payload: bytes
    content_type: str
    delay: float  # the toy model's think time (custom attribute delay=...)
    expect_failure: bool = False
    invocation: AsyncInvocation | None = None
    submitted_at: float = 0.0
    state: str = "queued"
    result: InferenceResult | None = None
    error: str | None = None
    took: float = 0.0
    notes: list[str] = field(default_factory=list)


def _isolate_environment() -> None:
    """Nothing of the machine's AWS setup may reach the demo (or break it)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _requests() -> list[_Request]:
    return [
        _Request(
            1,
            "inline body",
            b"I love this library: it is fast, and the docs are great.",
            "text/plain",
            0.3,
        ),
        _Request(
            2,
            "through S3",
            json.dumps(
                {"text": "The queue was slow and the first try was a terrible fail."}
            ).encode("utf-8"),
            "application/json",
            0.3,
        ),
        _Request(3, "empty text", b"   ", "text/plain", 0.1, expect_failure=True),
    ]


async def run_demo(args: argparse.Namespace, streams: Streams) -> int:
    """Exit 0 when the three good requests succeed and the bad one fails, as they should."""
    require_local_extra()
    _isolate_environment()
    from .. import AsyncInferenceClient, InferenceFailedError
    from ..local import LocalEndpoint
    from ..local.demo_models import sentiment

    def say(text: str = "") -> None:
        streams.stdout.write(text.encode("utf-8") + b"\n")
        streams.stdout.flush()

    requests = _requests()
    say("sagemaker-async demo: SageMaker Asynchronous Inference, locally, no AWS account needed")
    # One request at a time, as one instance with MaxConcurrentInvocationsPerInstance=1:
    # the later requests visibly wait in the queue.
    local = LocalEndpoint(
        {_ENDPOINT: sentiment},
        concurrency=1,
        bucket=_BUCKET,
        notify=True,
        include_response=True,
    )
    notified: InferenceResult | None = None
    async with local:
        # The client finds SQS where the AWS SDKs look: AWS_ENDPOINT_URL_SQS.
        os.environ["AWS_ENDPOINT_URL_SQS"] = local.endpoint_url
        say(f"  local endpoint  {local.endpoint_url}  (SageMaker Runtime, S3, SQS on one port)")
        say(f"  model           {_ENDPOINT}: sagemaker_async.local.demo_models:sentiment")
        say(f"  outputs         {local.output_path}/   failures {local.failure_path}/")
        say(f"  notifications   {local.queue_url}  (SNS-wrapped, as SageMaker publishes)")
        say()
        async with AsyncInferenceClient(
            "us-east-1",
            endpoint_url=local.endpoint_url,
            s3_endpoint_url=local.s3_endpoint_url,
            aws_access_key_id="demo",
            aws_secret_access_key="demo-secret",  # noqa: S106  (dummy keys for the local endpoint)
            max_attempts=3,
        ) as client:
            started = time.monotonic()

            def stamp() -> str:
                return f"{time.monotonic() - started:5.2f}s"

            for request in requests:
                attributes = f"delay={request.delay}"
                if request.how == "through S3":
                    location = await client.upload_input(
                        request.payload,
                        f"s3://{_BUCKET}/demo/inputs/review-{request.number}.json",
                        content_type=request.content_type,
                    )
                    say(f"{stamp()}  #{request.number} uploaded the input to {location}")
                    request.invocation = await client.invoke_endpoint_async(
                        _ENDPOINT,
                        location,
                        content_type=request.content_type,
                        custom_attributes=attributes,
                    )
                else:
                    request.invocation = await client.invoke_endpoint_async(
                        _ENDPOINT,
                        body=request.payload,
                        content_type=request.content_type,
                        custom_attributes=attributes,
                    )
                request.submitted_at = time.monotonic()
                note = " (the model will fail on it)" if request.expect_failure else ""
                say(
                    f"{stamp()}  #{request.number} {request.how:<12} queued   "
                    f"inference id {request.invocation.inference_id}{note}"
                )

            pending = list(requests)
            while pending:
                for request in list(pending):
                    assert request.invocation is not None
                    try:
                        result = await client.poll_result(request.invocation)
                    except InferenceFailedError as exc:
                        request.state, request.error = "failed", exc.message.strip()
                    else:
                        if result is None:
                            continue
                        request.state, request.result = "done", result
                    request.took = time.monotonic() - request.submitted_at
                    pending.remove(request)
                    say(
                        f"{stamp()}  #{request.number} {request.how:<12} queued -> "
                        f"{request.state} after {request.took:.2f}s"
                    )
                if pending:
                    await asyncio.sleep(_POLL_INTERVAL)

            say()
            say("waiting on the notification (SNS -> SQS) instead of polling S3")
            assert local.queue_url is not None
            async with client.listen(local.queue_url) as listener:
                invocation = await client.invoke_endpoint_async(
                    _ENDPOINT,
                    body=b"Notifications beat polling: one long poll serves every wait.",
                    content_type="text/plain",
                    custom_attributes="delay=0.3",
                )
                submitted = time.monotonic()
                say(f"{stamp()}  #4 notified     queued   inference id {invocation.inference_id}")
                notified = await listener.wait(invocation, timeout=60)
                sqs = sum(listener.requests.values())
                say(
                    f"{stamp()}  #4 notified     queued -> done after "
                    f"{time.monotonic() - submitted:.2f}s: {sqs} SQS request(s), no S3 polling"
                )

    say()
    say("results")
    for request in requests:
        assert request.invocation is not None
        if request.result is not None:
            body = request.result.body.decode("utf-8", errors="replace")
            say(f"  #{request.number} done    {request.result.location}")
            say(f"               {body}")
        else:
            say(f"  #{request.number} failed  {request.invocation.failure_location}")
            say(f"               {_last_line(request.error)}")
    if notified is not None:
        say(f"  #4 done    {notified.location}  (the body came in the notification)")
        say(f"               {notified.body.decode('utf-8', errors='replace')}")
    as_expected = all((r.state == "failed") == r.expect_failure for r in requests)
    as_expected = as_expected and notified is not None
    # Every request that ran is counted, the notified one (#4) included.
    ran = len(requests) + 1
    done = sum(r.state == "done" for r in requests) + (notified is not None)
    failed = ran - done
    say()
    verdict = "as expected" if as_expected else "NOT as expected"
    say(f"{ran} requests: {done} done, {failed} failed ({verdict}).")
    say(
        "Next: sagemaker-async local serve --endpoint "
        "sentiment=sagemaker_async.local.demo_models:sentiment  (then point any SDK at it)"
    )
    return 0 if as_expected else 1


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no failure text)"
