"""The client's own default sending path: LeanTransport, or httpx's client behind a proxy."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sagemaker_async import AsyncInferenceClient, ParamValidationError, TransportError
from sagemaker_async._io.http11 import LeanTransport
from test_client_wire import run_threaded_server
from test_transport import certificate

__all__ = ["certificate"]  # the fixture, imported so pytest finds it here

_ANSWER = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"x-amzn-RequestId: rid-1\r\nContent-Length: 20\r\n\r\n"
    b'{"InferenceId":"i1"}'
)


class _Recorder:
    """A one-answer HTTP/1.1 server on 127.0.0.1 that keeps the request lines it saw."""

    def __init__(self) -> None:
        self.request_lines: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_lines.append(head.split(b"\r\n", 1)[0])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(_ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[_Recorder]:
    rec = _Recorder()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = server.sockets[0].getsockname()[1]
    async with server:
        yield rec


def _client(endpoint_url: str) -> AsyncInferenceClient:
    return AsyncInferenceClient(
        "us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="SECRET",
        endpoint_url=endpoint_url,
    )


async def test_default_is_the_lean_transport(recorder: _Recorder) -> None:
    async with _client(f"http://127.0.0.1:{recorder.port}") as client:
        first = await client.invoke_endpoint_async("ep", "s3://b/k")
        second = await client.invoke_endpoint_async("ep", "s3://b/k")
        lean, proxy_client = client._sender.owned_pools
        assert isinstance(lean, LeanTransport)
        assert proxy_client is None
    assert first.inference_id == second.inference_id == "i1"
    assert first.request_id == "rid-1"
    # Origin-form request lines: sent directly, not through a proxy.
    assert recorder.request_lines == [b"POST /endpoints/ep/async-invocations HTTP/1.1"] * 2
    assert client._sender.owned_pools == (None, None)  # closed with the client


async def test_an_environment_proxy_routes_through_httpx(
    recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{recorder.port}")
    # The proxy receives the request for a host it alone can reach: absolute-form target.
    async with _client("http://runtime.example.test") as client:
        invocation = await client.invoke_endpoint_async("ep", "s3://b/k")
        lean, proxy_client = client._sender.owned_pools
        assert lean is None
        assert proxy_client is not None
    assert invocation.inference_id == "i1"
    assert recorder.request_lines == [
        b"POST http://runtime.example.test/endpoints/ep/async-invocations HTTP/1.1"
    ]
    assert client._sender.owned_pools == (None, None)


@pytest.fixture
async def tls_recorder(certificate: tuple[Path, Path]) -> AsyncIterator[_Recorder]:
    rec = _Recorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0, ssl=context)
    rec.port = server.sockets[0].getsockname()[1]
    async with server:
        yield rec


async def test_aws_ca_bundle_is_trusted_like_botocore_does(
    tls_recorder: _Recorder, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://127.0.0.1:{tls_recorder.port}"
    async with _client(url) as client:
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.invoke_endpoint_async("ep", "s3://b/k")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate[0]))
    async with _client(url) as client:
        invocation = await client.invoke_endpoint_async("ep", "s3://b/k")
    assert invocation.inference_id == "i1"


def test_an_unreadable_aws_ca_bundle_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    client = _client("https://127.0.0.1:1")
    with pytest.raises(ParamValidationError, match="AWS_CA_BUNDLE"):
        client._sender.default_transport(httpx.URL("https://127.0.0.1:1/"))


def test_a_proxied_client_works_across_successive_event_loops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx's client is bound to one loop: each loop gets its own, closed as that loop
    shuts down (a socket left to the garbage collector would warn, an error here). Before,
    the second ``asyncio.run``'s first request failed with "Event loop is closed"."""
    servers = run_threaded_server(None)
    port = next(servers)
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        client = _client("http://runtime.example.test")
        seen: list[httpx.AsyncClient] = []

        async def invoke() -> str:
            invocation = await client.invoke_endpoint_async("ep", "s3://b/k")
            proxy_client = client._sender.owned_pools[1]
            assert proxy_client is not None
            assert not proxy_client.is_closed
            seen.append(proxy_client)
            return invocation.inference_id

        assert [asyncio.run(invoke()) for _ in range(3)] == ["i1"] * 3
        assert len({id(c) for c in seen}) == 3  # one per loop
        assert all(c.is_closed for c in seen)  # each closed as its loop ended
        asyncio.run(client.aclose())
        gc.collect()
    finally:
        next(servers, None)


async def test_closing_the_client_closes_its_proxied_client(
    recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{recorder.port}")
    client = _client("http://runtime.example.test")
    await client.invoke_endpoint_async("ep", "s3://b/k")
    proxy_client = client._sender.owned_pools[1]
    assert proxy_client is not None
    await client.aclose()
    assert proxy_client.is_closed
    assert client._sender.owned_pools == (None, None)


# The hand-closed loop's sockets are left to the collector (with a ResourceWarning): the
# test collects them itself, so no later test sees them.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_loop_closed_without_finalising_still_lets_the_next_loop_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loop closed by hand (no ``shutdown_asyncgens``) cannot close httpx's connections;
    the next loop still gets a client of its own and its request goes through."""
    servers = run_threaded_server(None)
    port = next(servers)
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        client = _client("http://runtime.example.test")
        loop = asyncio.new_event_loop()
        first = loop.run_until_complete(client.invoke_endpoint_async("ep", "s3://b/k"))
        old = client._sender.owned_pools[1]
        loop.close()
        second = asyncio.run(client.invoke_endpoint_async("ep", "s3://b/k"))
        assert first.inference_id == second.inference_id == "i1"
        assert client._sender.owned_pools[1] is not old
        asyncio.run(client.aclose())
        del client, loop, old
        gc.collect()
    finally:
        next(servers, None)
