"""How the local endpoint hands requests to moto: by kind, SQS on a thread of its own.

moto's dispatcher picks an application per request under one lock, matching every moto
service's URL patterns; the local endpoint recognises its S3 and SQS requests itself
(``_kind_of``, checked on requests botocore signs) and reuses the application the
dispatcher picked for the first of each kind. SQS runs on its own thread, so a long poll
never waits behind the S3 reads of thousands of results (a hostile test: the S3 pool
blocked, SQS still answers).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from botocore_oracle import ACCESS_KEY, SECRET_KEY, Captured, _capture, boto3_s3, botocore_request
from sagemaker_async.local._http import Request
from sagemaker_async.local._s3backend import MotoBackend, _kind_of
from test_local_support import warm_moto  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("warm_moto")

HOST = "127.0.0.1:4566"


def as_request(prepared: Any) -> Request:
    """botocore's prepared request as the local server parses it."""
    url = urlsplit(prepared.url)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [(b"host", HOST.encode())]
    for name, value in prepared.headers.items():
        raw = value if isinstance(value, bytes) else str(value).encode()
        headers.append((name.lower().encode(), raw))
    body = prepared.body or b""
    if hasattr(body, "read"):
        body = body.read()
    elif isinstance(body, str):
        body = body.encode()
    return Request(prepared.method, target.encode(), tuple(headers), bytes(body))


def botocore_client(service: str) -> Any:
    client = boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=f"http://{HOST}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    client.meta.events.register("before-send", _capture)
    return client


def captured(client: Any, operation: str, **params: Any) -> Request:
    with pytest.raises(Captured) as caught:
        getattr(client, operation)(**params)
    return as_request(caught.value.request)


def test_s3_requests_signed_by_botocore_are_s3() -> None:
    s3 = boto3_s3("us-east-1", endpoint_url=f"http://{HOST}")
    put = as_request(botocore_request(s3, "put_object", Bucket="b", Key="k", Body=b"x"))
    assert _kind_of(put) == "s3"
    listing = as_request(botocore_request(s3, "list_objects_v2", Bucket="b", Prefix="p/"))
    assert _kind_of(listing) == "s3"
    signer = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://{HOST}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(signature_version="s3v4"),
    )
    url = urlsplit(signer.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}))
    presigned = Request("GET", f"{url.path}?{url.query}".encode(), ((b"host", HOST.encode()),), b"")
    assert _kind_of(presigned) == "s3"
    anonymous = Request("GET", b"/b/k", ((b"host", HOST.encode()),), b"")
    assert _kind_of(anonymous) == "s3"


def test_sqs_requests_signed_by_botocore_are_sqs() -> None:
    sqs = botocore_client("sqs")
    request = captured(sqs, "receive_message", QueueUrl=f"http://{HOST}/123456789012/q")
    assert _kind_of(request) == "sqs"


def test_other_requests_are_left_to_the_dispatcher() -> None:
    sts = botocore_client("sts")
    assert _kind_of(captured(sts, "get_caller_identity")) is None  # signed for sts
    dynamodb = botocore_client("dynamodb")
    assert _kind_of(captured(dynamodb, "list_tables")) is None  # a target, not SQS's
    control = Request("GET", b"/v20180820/configuration", ((b"host", HOST.encode()),), b"")
    assert _kind_of(control) is None
    foreign = Request(
        "GET",
        b"/b/k?X-Amz-Credential=AK%2F20261126%2Fus-east-1%2Fsts%2Faws4_request",
        ((b"host", HOST.encode()),),
        b"",
    )
    assert _kind_of(foreign) is None


async def test_each_kind_reuses_the_application_the_dispatcher_chose() -> None:
    backend = MotoBackend()
    await backend.start()
    try:
        s3 = boto3_s3("us-east-1", endpoint_url=f"http://{HOST}")
        listing = as_request(botocore_request(s3, "list_buckets"))
        sqs = captured(botocore_client("sqs"), "list_queues")
        assert (await backend.handle(listing)).status == 200
        assert (await backend.handle(sqs)).status == 200
        assert set(backend._apps) == {"s3", "sqs"}
        dispatcher = backend._app
        assert backend._apps["s3"] is dispatcher.get_application({"PATH_INFO": "/"} | s3_environ())
        assert backend._apps["sqs"] is not backend._apps["s3"]
    finally:
        await backend.aclose()


def s3_environ() -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": (
            "AWS4-HMAC-SHA256 Credential=AK/20261126/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
        "HTTP_HOST": HOST,
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "",
    }


async def test_sqs_answers_while_every_s3_thread_is_busy() -> None:
    backend = MotoBackend(max_threads=1)
    await backend.start()
    release = threading.Event()
    call = backend._call

    def blocking(request: Request) -> Any:
        if _kind_of(request) == "s3":
            release.wait(10)
        return call(request)

    backend._call = blocking  # type: ignore[method-assign]
    try:
        s3 = boto3_s3("us-east-1", endpoint_url=f"http://{HOST}")
        stuck = asyncio.ensure_future(
            backend.handle(as_request(botocore_request(s3, "list_buckets")))
        )
        queued = asyncio.ensure_future(
            backend.handle(as_request(botocore_request(s3, "list_buckets")))
        )
        sqs = captured(botocore_client("sqs"), "list_queues")
        assert (await asyncio.wait_for(backend.handle(sqs), 10)).status == 200
        assert not stuck.done()  # S3 still waiting for its thread
        assert not queued.done()
        release.set()
        assert [r.status for r in await asyncio.gather(stuck, queued)] == [200, 200]
    finally:
        release.set()
        await backend.aclose()
