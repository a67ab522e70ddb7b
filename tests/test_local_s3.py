"""The S3 half of the port: moto in-process by default, or an S3 endpoint the user names.

Awkward keys (spaces, '+', '%', non-ASCII, an encoded slash) must reach S3 as the same key
either way, HEAD must keep its Content-Length, and an endpoint with a named S3 must keep
working with every object stored there, not in its own moto.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._storage import StorageError, parse_s3_uri
from test_local_support import KEY, REGION, SECRET, client_for, get_object, put_object, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

AWKWARD_KEYS = ["a b+c%d.json", "dir/ünï/códe.txt", "x%2Fy", "tilde~and(paren)*!.bin"]


def _s3(url: str) -> Any:
    return boto3.session.Session(region_name=REGION).client(
        "s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )


@pytest.mark.parametrize("key", AWKWARD_KEYS)
async def test_awkward_keys_round_trip_through_moto(key: str) -> None:
    async with LocalEndpoint({"ep": lambda payload: payload}) as local:
        uri = f"s3://{local.bucket}/{key}"
        await put_object(local, uri, b"data", "application/x-test")
        got = await get_object(local, uri)
        assert (got.status, got.body, got.content_type) == (200, b"data", "application/x-test")

        s3 = _s3(local.s3_endpoint_url)
        head = await asyncio.to_thread(s3.head_object, Bucket=local.bucket, Key=key)
        assert head["ContentLength"] == 4
        listed = await asyncio.to_thread(s3.list_objects_v2, Bucket=local.bucket)
        assert key in {o["Key"] for o in listed["Contents"]}


async def test_a_named_s3_endpoint_stores_everything() -> None:
    # The "user's S3" is another local endpoint's moto; the endpoint under test proxies to it.
    async with LocalEndpoint({"unused": lambda payload: payload}) as storage:
        local = LocalEndpoint(
            {"ep": lambda payload: payload[::-1]},
            s3_endpoint_url=storage.s3_endpoint_url,
            bucket="named-s3-bucket",
        )
        async with local, client_for(local) as client:
            source = f"s3://{local.bucket}/in/a b+c.txt"
            await put_object(local, source, b"abc")
            inv = await client.invoke_endpoint_async("ep", source)
            inline = await client.invoke_endpoint_async("ep", body=b"xyz")
            await local.wait_idle(5)
            via_proxy = await get_object(local, inv.output_location)
            assert via_proxy.body == b"cba"
            assert (await get_object(local, inline.output_location)).body == b"zyx"
            # The same objects, read from the named S3 directly.
            assert (await get_object(storage, inv.output_location)).body == b"cba"
            assert (await get_object(storage, source)).body == b"abc"
            missing = await get_object(local, f"s3://{local.bucket}/no/such")
            assert missing.status == 404


async def test_an_unreachable_named_s3_fails_the_start() -> None:
    local = LocalEndpoint({"ep": lambda payload: payload}, s3_endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StorageError, match="CreateBucket"):
        await local.start()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.json", ("bucket", "a/b.json")),
        ("s3://bucket", ("bucket", "")),
        ("https://bucket.s3.us-west-2.amazonaws.com/k/ey", ("bucket", "k/ey")),
        ("https://s3.us-west-2.amazonaws.com/bucket/k", ("bucket", "k")),
    ],
)
def test_s3_uris(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["ftp://bucket/k", "s3:///key"])
def test_bad_s3_uris(uri: str) -> None:
    with pytest.raises(StorageError):
        parse_s3_uri(uri)
