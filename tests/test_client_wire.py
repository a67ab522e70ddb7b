"""The client over real loopback servers: honest resends, one error tree, any event loop,
stored bytes as stored, a bound on what a body may grow to."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sagemaker_async import AsyncInferenceClient, TransportError
from sagemaker_async._io import streams as streams_module
from sagemaker_async._io.http11 import LeanTransport
from sagemaker_async._io.runtime import Runtime
from sagemaker_async._protocol.retry import RetryQuota
from test_transport import certificate

__all__ = ["certificate"]  # the fixture, imported so pytest finds it here

ANSWER = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"x-amzn-RequestId: rid-1\r\nContent-Length: 20\r\n\r\n"
    b'{"InferenceId":"i1"}'
)
INPUT = "s3://bucket/in.json"


def make_client(port: int, **options: object) -> AsyncInferenceClient:
    return AsyncInferenceClient(
        "us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="SECRET",
        endpoint_url=f"http://127.0.0.1:{port}",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        **options,  # type: ignore[arg-type]
    )


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@dataclass
class HangsUpAfterReading:
    """Follows ``script``, one entry per request received (on any connection): True answers,
    False reads the request and hangs up without a word (the keep-alive race, where the
    request may or may not have been seen). Past the script, it answers."""

    script: list[bool] = field(default_factory=lambda: [True, False])
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.requests.append(await read_request(reader))
                n = len(self.requests) - 1
                if n < len(self.script) and not self.script[n]:
                    break
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def attempts_header(self) -> list[bytes]:
        return [
            line.split(b": ", 1)[1]
            for request in self.requests
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"amz-sdk-request:")
        ]


@pytest.fixture
async def hangs_up() -> AsyncIterator[HangsUpAfterReading]:
    server_state = HangsUpAfterReading()
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_state


async def test_with_max_attempts_1_the_server_sees_a_request_at_most_once(
    hangs_up: HangsUpAfterReading,
) -> None:
    """The first release resent the read request silently: the service got it twice."""
    async with make_client(hangs_up.port, max_attempts=1) as client:
        await client.invoke_endpoint_async("ep", INPUT)
        with pytest.raises(TransportError, match="after 1 attempt") as caught:
            await client.invoke_endpoint_async("ep", INPUT)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert len(hangs_up.requests) == 2
    assert hangs_up.attempts_header() == [b"attempt=1; max=1", b"attempt=1; max=1"]


class SpyQuota(RetryQuota):
    """The retry quota, recording its charges as they are made."""

    __slots__ = ("charges",)

    def __init__(self) -> None:
        super().__init__()
        self.charges: list[int] = []

    def acquire(self, *, timeout: bool) -> int:
        cost = super().acquire(timeout=timeout)
        self.charges.append(cost)
        return cost


def spy_on_quota(client: AsyncInferenceClient) -> list[int]:
    quota = client._sender.retry.quota = SpyQuota()
    return quota.charges


async def test_a_resend_is_an_attempt_counted_charged_backed_off_and_logged(
    hangs_up: HangsUpAfterReading, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    no_backoff = Runtime(sleep=no_sleep)
    async with make_client(hangs_up.port, max_attempts=3, _runtime=no_backoff) as client:
        charges = spy_on_quota(client)
        await client.invoke_endpoint_async("ep", INPUT)
        with caplog.at_level(logging.DEBUG, logger="sagemaker_async"):
            invocation = await client.invoke_endpoint_async("ep", INPUT)
    assert invocation.inference_id == "i1"
    assert hangs_up.attempts_header() == [
        b"attempt=1; max=3",
        b"attempt=1; max=3",
        b"attempt=2; max=3",
    ]
    assert len(charges) == 1
    assert charges[0] > 0
    assert len(sleeps) == 1
    assert any(
        "attempt=1/3 error=RemoteProtocolError" in record.getMessage() for record in caplog.records
    )


async def test_resends_stop_at_max_attempts() -> None:
    state = HangsUpAfterReading(script=[False, False, False, False])
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)

    async def no_sleep(seconds: float) -> None:
        pass

    port = server.sockets[0].getsockname()[1]
    no_backoff = Runtime(sleep=no_sleep)
    async with server, make_client(port, max_attempts=3, _runtime=no_backoff) as client:
        charges = spy_on_quota(client)
        with pytest.raises(TransportError, match="after 3 attempt"):
            await client.invoke_endpoint_async("ep", INPUT)
    assert len(state.requests) == 3
    assert len(charges) == 2
    assert state.attempts_header() == [b"attempt=%d; max=3" % n for n in (1, 2, 3)]


# -- one error tree ----------------------------------------------------------------------------


class Raises(httpx.AsyncBaseTransport):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("LeanTransport is closed"),
        RuntimeError("bound to the event loop it was first used in"),
        httpx.DecodingError("bad gzip"),
        OSError("odd"),
    ],
)
async def test_foreign_errors_become_transport_errors_with_the_cause(exc: BaseException) -> None:
    client = AsyncInferenceClient(
        "us-east-1", aws_access_key_id="AKID", aws_secret_access_key="SECRET", transport=Raises(exc)
    )
    async with client:
        with pytest.raises(TransportError) as caught:
            await client.invoke_endpoint_async("ep", INPUT)
    assert caught.value.__cause__ is exc


async def test_a_closed_transport_is_a_transport_error(hangs_up: HangsUpAfterReading) -> None:
    transport = LeanTransport()
    await transport.aclose()
    async with make_client(hangs_up.port, transport=transport) as client:
        with pytest.raises(TransportError, match="closed") as caught:
            await client.invoke_endpoint_async("ep", INPUT)
    assert isinstance(caught.value.__cause__, RuntimeError)


# -- stored bytes, bounded -----------------------------------------------------------------------


@dataclass
class Stores:
    """An S3 stand-in answering every GET with one stored object, as stored."""

    reply: bytes
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                writer.write(self.reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def stores() -> AsyncIterator[Callable[[bytes], asyncio.Future[Stores]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: bytes) -> Stores:
        state = Stores(reply)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


NOT_GZIP = b"these bytes are not gzip"
ENCODED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(NOT_GZIP), NOT_GZIP)
)


@pytest.mark.parametrize("via", ["default", "http_client"])
async def test_a_result_body_is_never_content_decoded(stores, via: str) -> None:
    """An object stored with Content-Encoding: gzip (here not even gzip) comes back as
    stored; httpx.DecodingError used to escape instead."""
    server = await stores(ENCODED)
    options = {"http_client": httpx.AsyncClient()} if via == "http_client" else {}
    async with make_client(server.port, **options) as client:
        result = await client.get_result("s3://bucket/out.json")
    if via == "http_client":
        await options["http_client"].aclose()
    assert result.body == NOT_GZIP


async def test_a_large_streamed_encoded_body_is_not_decoded_either(stores) -> None:
    payload = bytes(range(256)) * 1024  # over the transport's eager-read size
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(payload)
        + payload
    )
    server = await stores(reply)
    async with make_client(server.port) as client:
        result = await client.get_result("s3://bucket/out.bin")
    assert result.body == payload


async def test_an_endless_body_ends_in_an_error_at_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first release grew its buffer without bound (450 MB in 8 s)."""
    monkeypatch.setattr(streams_module, "MAX_BUFFERED_BODY", 1024 * 1024)

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    async with server, make_client(server.sockets[0].getsockname()[1]) as client:
        with pytest.raises(TransportError, match="larger than 1,048,576 bytes"):
            await client.get_result("s3://bucket/endless")


# -- any event loop ------------------------------------------------------------------------------


def run_threaded_server(tls: ssl.SSLContext | None) -> Iterator[int]:
    """A server on its own threads, so it outlives the event loops of the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            with conn:
                data = b""
                while not stop.is_set():
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    while b"\r\n\r\n" in data:  # our requests here have no body
                        _, _, data = data.partition(b"\r\n\r\n")
                        conn.sendall(ANSWER)
        except OSError:  # a client that went away mid-handshake or mid-read
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (close alone does not)
    thread.join()
    listener.close()


@pytest.fixture
def threaded_server() -> Iterator[int]:
    yield from run_threaded_server(None)


def test_a_client_works_across_successive_event_loops(threaded_server: int) -> None:
    """asyncio.run twice (or pytest's loop per test): the first release raised RuntimeError
    ("bound to the event loop it was first used in") forever after."""
    client = make_client(threaded_server)
    for _ in range(3):
        invocation = asyncio.run(client.invoke_endpoint_async("ep", INPUT))
        assert invocation.inference_id == "i1"
    asyncio.run(client.aclose())
    gc.collect()  # a socket left to the garbage collector would warn (an error here)


def test_tls_connections_of_an_ended_loop_are_closed_too(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    servers = run_threaded_server(tls)
    port = next(servers)
    try:
        client = AsyncInferenceClient(
            "us-east-1",
            aws_access_key_id="AKID",
            aws_secret_access_key="SECRET",
            endpoint_url=f"https://127.0.0.1:{port}",
        )
        for _ in range(3):
            invocation = asyncio.run(client.invoke_endpoint_async("ep", INPUT))
            assert invocation.inference_id == "i1"
        asyncio.run(client.aclose())
        gc.collect()
    finally:
        next(servers, None)
