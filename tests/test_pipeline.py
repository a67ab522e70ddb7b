"""One request pipeline: pure builders make a ``Request``, the one sender signs and sends it.

What is sent is what the builder said (URL, path and query as signed), the S3 listing goes
through the same sender as every other call, a hostile listing is an error and never a
short one, and an S3 error body is parsed once for both the error and the redirect.
"""

from __future__ import annotations

import calendar
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from botocore_oracle import boto3_s3, botocore_request, header
from helpers import ENDPOINT, INPUT, accepted, make_client, new_router
from sagemaker_async import ServiceError
from sagemaker_async._protocol.params import validate_invoke
from sagemaker_async._protocol.requests import RuntimeEndpoint, invoke_request
from sagemaker_async._protocol.s3 import parse_s3_failure

BUCKET_URL = "https://my-bucket.s3.amazonaws.com/"  # us-east-1: the global host


def page(keys: list[str], token: str | None) -> httpx.Response:
    contents = "".join(f"<Contents><Key>{key}</Key></Contents>" for key in keys)
    more = (
        f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        if token
        else "<IsTruncated>false</IsTruncated>"
    )
    body = (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>my-bucket</Name><EncodingType>url</EncodingType>{more}{contents}"
        "</ListBucketResult>"
    )
    return httpx.Response(200, content=body.encode())


def test_the_runtime_request_is_a_value_with_the_path_as_signed() -> None:
    endpoint = RuntimeEndpoint("https", "runtime.example.test:8443", "/prefix")
    params = validate_invoke("my-ep", INPUT, content_type="a/b")
    request = invoke_request(endpoint, params)
    assert (
        request.url == "https://runtime.example.test:8443/prefix/endpoints/my-ep/async-invocations"
    )
    assert (request.method, request.host, request.query) == (
        "POST",
        "runtime.example.test:8443",
        "",
    )
    assert request.path == "/prefix/endpoints/my-ep/async-invocations"
    assert request.headers == [
        ("X-Amzn-SageMaker-Content-Type", "a/b"),
        ("X-Amzn-SageMaker-InputLocation", INPUT),
    ]
    assert invoke_request(endpoint, params) == request  # pure: the same value every time


async def test_what_is_sent_is_what_was_built() -> None:
    router = new_router()
    route = router.post(url__regex=r".*/async-invocations$").mock(return_value=accepted())
    client, _ = make_client(router, endpoint_url="http://127.0.0.1:9/base/")
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    sent = route.calls.last.request
    assert sent.url.raw_path == f"/base/endpoints/{ENDPOINT}/async-invocations".encode()
    assert sent.headers["host"] == "127.0.0.1:9"


async def test_list_objects_pages_through_the_signed_sender() -> None:
    router = new_router()
    route = router.get(url__startswith=BUCKET_URL).mock(
        side_effect=[page(["in/a%20b", "in/dir/"], "tok+1="), page(["in/c"], None)]
    )
    client, _ = make_client(router)
    async with client:
        uris = await client.list_objects("s3://my-bucket/in/")
    assert uris == ["s3://my-bucket/in/a b", "s3://my-bucket/in/dir/", "s3://my-bucket/in/c"]
    first, second = (call.request for call in route.calls)
    assert first.url.params["prefix"] == "in/"
    assert "continuation-token" not in first.url.params
    assert second.url.params["continuation-token"] == "tok+1="
    assert "/us-east-1/s3/aws4_request" in second.headers["authorization"]


async def test_list_objects_is_signed_as_botocore_signs_it() -> None:
    """The query string is part of the signature: botocore is the oracle."""
    theirs = botocore_request(
        boto3_s3("us-east-1"),
        "list_objects_v2",
        Bucket="my-bucket",
        Prefix="in/a b",
        EncodingType="url",
        MaxKeys=1000,
    )
    router = new_router()
    route = router.get(url__startswith=BUCKET_URL).mock(return_value=page([], None))
    signed_at = calendar.timegm(time.strptime(header(theirs, "X-Amz-Date"), "%Y%m%dT%H%M%SZ"))
    client, _ = make_client(router, clock=lambda: float(signed_at))
    async with client:
        await client.list_objects("s3://my-bucket/in/a b")
    ours = route.calls.last.request
    assert sorted(ours.url.params.multi_items()) == sorted(
        httpx.URL(theirs.url).params.multi_items()
    )
    assert ours.headers["authorization"] == header(theirs, "Authorization")


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, content=b"<html>captive portal</html"),
        httpx.Response(200, content=b""),
        httpx.Response(200, content=b"\x00\xff garbage"),
    ],
    ids=["broken-xml", "empty", "binary"],
)
async def test_a_hostile_listing_is_an_error_never_a_short_list(answer: httpx.Response) -> None:
    router = new_router()
    router.get(url__startswith=BUCKET_URL).mock(side_effect=[page(["in/a"], "more"), answer])
    client, _ = make_client(router)
    async with client:
        with pytest.raises(ServiceError) as caught:
            await client.list_objects("s3://my-bucket/in/")
    assert caught.value.code == "MalformedResponse"


async def test_list_objects_refuses_a_bad_prefix_before_any_io() -> None:
    router = new_router()
    client, _ = make_client(router)
    async with client:
        for bad in ("https://my-bucket/in/", "s3://b/in/", "s3://my-bucket/" + "k" * 1100):
            with pytest.raises(ValueError, match="s3_prefix"):
                await client.list_objects(bad)
    assert not router.calls


def test_an_s3_error_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[Any] = []
    real = ET.fromstring

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(ET, "fromstring", counting)
    body = (
        b"<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message>"
        b"<Region>eu-west-1</Region></Error>"
    )
    error, redirect = parse_s3_failure(301, {}, body, head=False)
    assert (error.code, redirect and redirect.region) == ("PermanentRedirect", "eu-west-1")
    assert len(parsed) == 1


async def test_a_redirected_s3_error_is_parsed_once_through_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[Any] = []
    real = ET.fromstring

    def counting(text: Any, *args: Any) -> Any:
        parsed.append(text)
        return real(text, *args)

    monkeypatch.setattr(ET, "fromstring", counting)
    router = new_router()
    body = b"<Error><Code>PermanentRedirect</Code><Region>eu-west-1</Region></Error>"
    router.get(f"{BUCKET_URL}out/x").mock(return_value=httpx.Response(301, content=body))
    router.get("https://my-bucket.s3.eu-west-1.amazonaws.com/out/x").mock(
        return_value=httpx.Response(200, content=b"found")
    )
    client, _ = make_client(router)
    async with client:
        result = await client.get_result("s3://my-bucket/out/x")
    assert result.body == b"found"
    assert parsed == [body]
