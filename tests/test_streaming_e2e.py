"""Streaming over real sockets: moto's server for the happy paths, a hostile one for cuts.

Every transport a client may use: ours (the default), httpx's own ``AsyncHTTPTransport``
and an ``httpx.AsyncClient``. A body cut mid-way is a ``TransportError`` on all of them;
a gzip object comes back as stored.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from sagemaker_async import (
    AsyncInferenceClient,
    AsyncInvocation,
    ResultTooLargeError,
    TransportError,
)

if TYPE_CHECKING:
    from moto_server import MotoServer

pytest_plugins = ["moto_server"]

BUCKET = "outputs"

TRANSPORTS: dict[str, Callable[[], dict[str, Any]]] = {
    "lean": dict,
    "httpx-transport": lambda: {"transport": httpx.AsyncHTTPTransport()},
    "httpx-client": lambda: {"http_client": httpx.AsyncClient(trust_env=False)},
}


@pytest.fixture
def server(moto_server: MotoServer) -> MotoServer:
    moto_server.boto3_s3().create_bucket(Bucket=BUCKET)
    return moto_server


@pytest.mark.parametrize("kind", list(TRANSPORTS))
async def test_stream_and_download_a_large_object(
    server: MotoServer, kind: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    server.boto3_s3().put_object(Bucket=BUCKET, Key="big.bin", Body=data, ContentType="x/y")
    uri = f"s3://{BUCKET}/big.bin"
    options = TRANSPORTS[kind]()
    async with server.client(**options) as client:
        async with client.stream_result(uri) as stream:
            assert (stream.content_length, stream.content_type) == (len(data), "x/y")
            chunks = [chunk async for chunk in stream]
        assert b"".join(chunks) == data
        assert max(map(len, chunks)) < len(data)  # it arrived in pieces
        downloaded = await client.download_result(
            AsyncInvocation("i", uri, None), tmp_path / "big.bin", timeout=5
        )
        assert downloaded.size == len(data)
        assert (tmp_path / "big.bin").read_bytes() == data
        with pytest.raises(ResultTooLargeError) as caught:
            await client.get_result(uri, max_bytes=len(data) - 1)
        assert caught.value.size == len(data)
        # The connection given up on is not reused with unread bytes on it.
        assert (await client.get_result(uri, max_bytes=len(data))).body == data
    http_client = options.get("http_client")
    if http_client is not None:
        await http_client.aclose()


@pytest.mark.parametrize("kind", list(TRANSPORTS))
async def test_gzip_object_is_returned_as_stored(server: MotoServer, kind: str) -> None:
    stored = gzip.compress(b'{"answer": 42}' * 100)
    server.boto3_s3().put_object(Bucket=BUCKET, Key="z.json", Body=stored, ContentEncoding="gzip")
    options = TRANSPORTS[kind]()
    async with server.client(**options) as client:
        result = await client.get_result(f"s3://{BUCKET}/z.json")
    assert (result.body, result.content_encoding) == (stored, "gzip")
    http_client = options.get("http_client")
    if http_client is not None:
        await http_client.aclose()


class CuttingServer:
    """Answers every request with a 200 that promises ``length`` bytes, sends ``sent``, hangs up."""

    def __init__(self, length: int, sent: int) -> None:
        self.length = length
        self.sent = sent
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % self.length
            )
            writer.write(b"x" * self.sent)
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def cut_client(url: str, kind: str) -> tuple[AsyncInferenceClient, dict[str, Any]]:
    options = TRANSPORTS[kind]()
    client = AsyncInferenceClient(
        "us-east-1",
        s3_endpoint_url=url,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        max_attempts=1,
        **options,
    )
    return client, options


async def collect(stream: AsyncIterator[bytes]) -> int:
    total = 0
    async for chunk in stream:
        total += len(chunk)
    return total


@pytest.mark.parametrize("kind", list(TRANSPORTS))
async def test_a_cut_connection_is_an_error_on_every_transport(kind: str, tmp_path: Path) -> None:
    async with CuttingServer(length=2_000_000, sent=700_000) as url:
        client, options = cut_client(url, kind)
        uri = "s3://bucket/out.bin"
        async with client:
            with pytest.raises(TransportError):
                await client.get_result(uri)
            async with client.stream_result(uri) as stream:
                with pytest.raises(TransportError, match="of 2,000,000 bytes"):
                    await collect(stream)
            with pytest.raises(TransportError):
                await client.download_result(AsyncInvocation("i", uri, None), tmp_path / "o")
        assert os.listdir(tmp_path) == []
        http_client = options.get("http_client")
        if http_client is not None:
            await http_client.aclose()
