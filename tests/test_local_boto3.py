"""boto3 pointed at the local endpoint gets the same answers as our client.

boto3 is the reference users compare against, so the same calls go through both (boto3 in
a thread, as it blocks) and the answers — locations, error codes and messages, the objects
written — must match. Also the ``serve`` story: with only the two environment variables set,
both SDKs find the endpoint and its S3 by themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sagemaker_async import AccessDeniedError, AsyncInferenceClient, ValidationError
from sagemaker_async.local import InvocationAttributes, LocalEndpoint
from test_local_support import KEY, REGION, SECRET, client_for, get_object, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

CREDENTIALS = f"{KEY}:{SECRET}"


_SESSION: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    # One session for the module: its loader caches the service models, which makes every
    # client after the first cheap to create.
    if not _SESSION:
        _SESSION.append(boto3.session.Session(region_name=REGION))
    return _SESSION[0]


def _client(service: str, url: str, secret: str = SECRET) -> Any:
    return _session().client(
        service, endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=secret
    )


def _runtime(local: LocalEndpoint, secret: str = SECRET) -> Any:
    return _client("sagemaker-runtime", local.endpoint_url, secret)


def _s3(local: LocalEndpoint) -> Any:
    return _client("s3", local.s3_endpoint_url)


def _describe(attributes: InvocationAttributes) -> str:
    return f"{attributes.content_type}|{attributes.accept}|{attributes.custom_attributes}"


def handler(payload: bytes, attributes: InvocationAttributes) -> tuple[bytes, str]:
    return payload.upper() + b" " + _describe(attributes).encode(), "text/x-echo"


async def test_the_same_invocation_from_both_sdks() -> None:
    params = {
        "content_type": "text/plain",
        "accept": "text/x-echo",
        "custom_attributes": "k=v",
        "s3_output_path_extension": "run-1",
    }
    local = LocalEndpoint({"ep": handler}, credentials=CREDENTIALS)
    async with local, client_for(local) as client:
        ours = await client.invoke_endpoint_async(
            "ep", body=b"hello", inference_id="from-ours", **params
        )
        theirs = await asyncio.to_thread(
            _runtime(local).invoke_endpoint_async,
            EndpointName="ep",
            Body=b"hello",
            InferenceId="from-boto3",
            ContentType="text/plain",
            Accept="text/x-echo",
            CustomAttributes="k=v",
            S3OutputPathExtension="run-1",
        )
        assert theirs["InferenceId"] == "from-boto3"
        assert ours.output_location == theirs["OutputLocation"].replace("from-boto3", "from-ours")
        assert ours.failure_location == theirs["FailureLocation"].replace("from-boto3", "from-ours")
        assert theirs["ResponseMetadata"]["HTTPStatusCode"] == 202
        await local.wait_idle(5)

        # Each SDK reads the object the other's invocation produced.
        mine = await client.get_result(theirs["OutputLocation"])
        bucket, key = ours.output_location.removeprefix("s3://").split("/", 1)
        other = await asyncio.to_thread(_s3(local).get_object, Bucket=bucket, Key=key)
        assert mine.body == other["Body"].read() == b"HELLO text/plain|text/x-echo|k=v"
        assert mine.content_type == other["ContentType"] == "text/x-echo"
        assert (await client.wait_for_result(ours, timeout=5)).body == mine.body


async def test_an_input_uploaded_with_boto3_is_read_by_the_endpoint() -> None:
    async with LocalEndpoint({"ep": handler}) as local, client_for(local) as client:
        s3 = _s3(local)
        key = "inputs/ünïcode name+1.txt"
        # put_object sends Expect: 100-continue; the server must answer it, not stall.
        await asyncio.to_thread(s3.put_object, Bucket=local.bucket, Key=key, Body=b"x" * 70_000)
        inv = await client.invoke_endpoint_async("ep", f"s3://{local.bucket}/{key}")
        await local.wait_idle(5)
        assert (await get_object(local, inv.output_location)).body.startswith(b"X" * 70_000)
        listing = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert {o["Key"] for o in listing["Contents"]} >= {
            key,
            inv.output_location.split("/", 3)[3],
        }


def _boto3_error(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value


async def test_the_same_errors_from_both_sdks() -> None:
    local = LocalEndpoint({"ep": handler}, credentials=CREDENTIALS)
    async with local, client_for(local) as client:
        with pytest.raises(ValidationError) as ours:
            await client.invoke_endpoint_async("missing", body=b"x")
        theirs = await asyncio.to_thread(
            _boto3_error, _runtime(local).invoke_endpoint_async, EndpointName="missing", Body=b"x"
        )
        assert theirs.response["Error"]["Code"] == ours.value.code == "ValidationError"
        assert theirs.response["Error"]["Message"] == ours.value.message
        assert theirs.response["ResponseMetadata"]["HTTPStatusCode"] == 400

        async with client_for(local, aws_access_key_id=KEY, aws_secret_access_key="bad") as bad:
            with pytest.raises(AccessDeniedError) as denied:
                await bad.invoke_endpoint_async("ep", body=b"x")
        refused = await asyncio.to_thread(
            _boto3_error, _runtime(local, "bad").invoke_endpoint_async, EndpointName="ep", Body=b"x"
        )
        assert refused.response["Error"]["Code"] == denied.value.code
        assert refused.response["Error"]["Message"] == denied.value.message
        assert refused.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        # botocore does not know Body and InputLocation exclude each other; the service does.
        both = await asyncio.to_thread(
            _boto3_error,
            _runtime(local).invoke_endpoint_async,
            EndpointName="ep",
            Body=b"x",
            InputLocation="s3://bucket/key",
        )
        assert both.response["Error"]["Code"] == "ValidationError"
        assert "mutually exclusive" in both.response["Error"]["Message"]
        assert local.invocation_count("ep") == 0


async def test_both_sdks_find_the_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with LocalEndpoint({"ep": handler}) as local:
        # Exactly what `serve` prints.
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", local.s3_endpoint_url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

        async with AsyncInferenceClient() as client:
            assert client.endpoint_url == local.endpoint_url
            ours = await client.invoke_endpoint_async("ep", body=b"env")

        def with_boto3() -> bytes:
            runtime = boto3.client("sagemaker-runtime")
            theirs = runtime.invoke_endpoint_async(EndpointName="ep", Body=b"env")
            return theirs["OutputLocation"].rsplit("/", 1)[0].encode()

        prefix = await asyncio.to_thread(with_boto3)
        assert (ours.output_location or "").rsplit("/", 1)[0].encode() == prefix
        assert local.invocation_count("ep") == 2
