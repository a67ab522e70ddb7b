"""Helpers shared by the local-endpoint tests (``test_local_*``); holds no tests itself.

Every test starts its own ``LocalEndpoint`` on a free port (start and stop take a few ms
once moto is loaded); ``warm_moto`` loads moto's S3 application once per session so that
cost is paid in setup, not inside the first test. Objects are read back with signed S3
requests of our own, so a test sees exactly what any SDK would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sagemaker_async import AsyncInferenceClient
from sagemaker_async._protocol.sigv4 import FrozenCredentials, SigV4Signer, format_amz_date
from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._http import Request
from sagemaker_async.local._s3backend import MotoBackend
from sagemaker_async.local._storage import parse_s3_uri

KEY = "test"
SECRET = "test"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def warm_moto() -> None:
    """Import moto and build its S3 app once, outside any test's own time."""

    async def warm() -> None:
        backend = MotoBackend()
        await backend.start()
        # The first request builds moto's S3 app: ListBuckets, unsigned, as moto's default.
        await backend.handle(Request("GET", b"/", ((b"host", b"127.0.0.1"),), b""))
        await backend.aclose()

    asyncio.run(warm())


@pytest.fixture(name="backend")
async def backend_fixture() -> AsyncIterator[MotoBackend]:
    """A started ``MotoBackend`` (moto's S3 in-process), closed after the test."""
    backend = MotoBackend()
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()


def client_for(local: LocalEndpoint, **kwargs: Any) -> AsyncInferenceClient:
    """Our client pointed at the local endpoint, as the README tells users to do."""
    kwargs.setdefault("aws_access_key_id", KEY)
    kwargs.setdefault("aws_secret_access_key", SECRET)
    return AsyncInferenceClient(
        REGION,
        endpoint_url=local.endpoint_url,
        s3_endpoint_url=local.s3_endpoint_url,
        **kwargs,
    )


@dataclass(frozen=True)
class S3Object:
    status: int
    body: bytes
    content_type: str | None


async def s3_request(
    local: LocalEndpoint, method: str, uri: str, body: bytes = b"", content_type: str | None = None
) -> S3Object:
    """One signed, path-style S3 request to the local endpoint's port."""
    bucket, key = parse_s3_uri(uri)
    path = f"/{bucket}/{quote(key, safe='/-_.~')}"
    headers = {"Content-Type": content_type} if content_type else {}
    request = httpx.Request(method, local.s3_endpoint_url + path, headers=headers, content=body)
    SigV4Signer(REGION, "s3").sign_request(
        request,
        FrozenCredentials(KEY, SECRET),
        amz_date=format_amz_date(time.time()),
        payload_hash=hashlib.sha256(body).hexdigest(),
    )
    # Plain HTTP to 127.0.0.1: no CA bundle to load (that alone costs ~0.1 s per client).
    async with httpx.AsyncClient(verify=False) as http:
        response = await http.send(request)
    return S3Object(response.status_code, response.content, response.headers.get("content-type"))


async def get_object(local: LocalEndpoint, uri: str) -> S3Object:
    return await s3_request(local, "GET", uri)


async def put_object(
    local: LocalEndpoint, uri: str, data: bytes, content_type: str | None = None
) -> None:
    result = await s3_request(local, "PUT", uri, data, content_type)
    assert result.status == 200, result
