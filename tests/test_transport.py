"""LeanTransport against real servers on 127.0.0.1 (asyncio servers in the test's loop).

No mocks of the transport: every test speaks HTTP/1.1 over a real socket. Servers count
the connections they accept, so keep-alive reuse and leaks are checked from the other end.
Waiting is done on events and futures, never on sleeps; where a test must wait for the
event loop to process a socket event, it yields (``asyncio.sleep(0)``) a bounded number of
times until a condition holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import hashlib
import ipaddress
import os
import socket
import ssl
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_async._io.http11 import LeanTransport, PoolStats, proxy_configured
from sagemaker_async._io.http11.codec import ChunkedReader
from sagemaker_async._io.http11.connection import Connection, ResponseStream
from sagemaker_async._io.http11.pool import Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --------------------------------------------------------------------------------------
# A small server kit


@dataclass
class Request:
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request off the wire (Content-Length or chunked body); None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head[:-4].split(b"\r\n")
    method, target, _ = lines[0].split(b" ")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            assert await reader.readexactly(2) == b"\r\n"
        body = b"".join(parts)
    else:
        body = b""
    return Request(method, target, headers, body)


def response(status: int = 200, body: bytes = b"", *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {httpx.codes.get_reason_phrase(status)}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Server:
    """An asyncio server whose every connection runs ``handler``; counts connections."""

    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    accepted: int = 0
    open: int = 0
    requests: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    all_closed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> Server:
        self._server = await asyncio.start_server(
            self._on_connect, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.all_closed.clear()
        self.writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.writers.discard(writer)
            self.open -= 1
            if not self.open:
                self.all_closed.set()

    async def stop(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        server = await Server(handler, ssl_context).start()
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[LeanTransport]:
    t = LeanTransport()
    yield t
    await t.aclose()


def echo_handler(server_state: dict[str, int] | None = None) -> Handler:
    """Keep-alive server: answers each request with its method, target and body length."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await read_request(reader)) is not None:
            body = b"%s %s %d" % (req.method, req.target, len(req.body))
            writer.write(response(200, body, "Content-Type: text/plain"))
            await writer.drain()

    return handler


async def until(condition: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the event loop until ``condition()`` holds (bounded, no sleeping)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{what} never became true")


async def send(
    transport: httpx.AsyncBaseTransport, method: str, url: str, **kwargs: object
) -> httpx.Response:
    request = httpx.Request(method, url, **kwargs)  # type: ignore[arg-type]
    resp = await transport.handle_async_request(request)
    await resp.aread()
    await resp.aclose()
    return resp


def stats_of(transport: LeanTransport, server: Server) -> PoolStats:
    return transport.stats()[server.url.replace("https", "https")]


# --------------------------------------------------------------------------------------
# Keep-alive and connection reuse


async def test_keep_alive_reuses_one_connection(serve, transport: LeanTransport) -> None:
    server = await serve(echo_handler())
    for i in range(5):
        resp = await send(transport, "GET", f"{server.url}/path/{i}?q=1")
        assert resp.status_code == 200
        assert resp.content == f"GET /path/{i}?q=1 0".encode()
        assert resp.headers["content-type"] == "text/plain"
        assert resp.http_version == "HTTP/1.1"
        assert resp.reason_phrase == "OK"
    assert server.accepted == 1
    assert stats_of(transport, server) == PoolStats(open=1, idle=1, waiting=0)


async def test_small_body_is_already_read(serve, transport: LeanTransport) -> None:
    server = await serve(echo_handler())
    request = httpx.Request("POST", f"{server.url}/x", content=b"abc")
    resp = await transport.handle_async_request(request)
    assert resp.content == b"POST /x 3"  # no aread() needed
    assert resp.request is request


async def test_server_closing_idle_connection_is_discarded(serve, transport) -> None:
    async def answer_once_then_close(reader, writer) -> None:
        await read_request(reader)
        writer.write(response(200, b"once"))
        await writer.drain()

    server = await serve(answer_once_then_close)
    assert (await send(transport, "GET", server.url)).content == b"once"
    await until(lambda: stats_of(transport, server).open == 0, "idle connection discarded")
    assert (await send(transport, "GET", server.url)).content == b"once"
    assert server.accepted == 2


async def test_a_request_the_server_read_is_never_resent_silently(serve, transport) -> None:
    """The race a keep-alive client cannot avoid: the server closes as we send. The request
    may have been read (here it was), so the transport raises for the caller's retry policy
    to judge instead of resending it behind its back (it used to)."""
    seen: list[int] = []

    async def handler(reader, writer) -> None:
        n = len(seen)
        seen.append(n)
        if n == 0:  # first connection: answer one request, read the second, hang up
            await read_request(reader)
            writer.write(response(200, b"first"))
            await writer.drain()
            await read_request(reader)
            return
        while await read_request(reader) is not None:
            writer.write(response(200, b"fresh"))
            await writer.drain()

    server = await serve(handler)
    assert (await send(transport, "GET", server.url)).content == b"first"
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await send(transport, "POST", server.url, content=b"replayable")
    assert server.accepted == 1
    # The next request goes out on a fresh connection.
    assert (await send(transport, "GET", server.url)).content == b"fresh"


async def test_a_connection_known_dead_before_writing_is_replaced_silently(
    serve, transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one silent resend: nothing of the request was written to the dead connection."""
    seen: list[bytes] = []

    async def handler(reader, writer) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request.body)
            writer.write(response(200, b"ok"))
            await writer.drain()
        writer.close()

    server = await serve(handler)
    await send(transport, "GET", server.url)
    (pool,) = transport._pools.values()
    (conn,) = pool.idle
    conn.eof = True  # as if the FIN had been seen after the pool handed it out
    monkeypatch.setattr(Pool, "take_idle", lambda self: self.idle.pop() if self.idle else None)
    assert (await send(transport, "POST", server.url, content=b"once")).content == b"ok"
    assert seen == [b"", b"once"]
    assert server.accepted == 2


async def test_stale_connection_with_a_streamed_body_is_not_resent(serve, transport) -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(response(200, b"first"))
        await writer.drain()
        await read_request(reader)  # then hang up without answering

    async def body() -> AsyncIterator[bytes]:
        yield b"not replayable"

    server = await serve(handler)
    await send(transport, "GET", server.url)
    with pytest.raises(httpx.RemoteProtocolError):
        await send(transport, "POST", server.url, content=body())
    assert server.accepted == 1


async def test_no_answer_on_a_fresh_connection_is_an_error_not_a_retry(serve, transport) -> None:
    async def hang_up(reader, writer) -> None:
        await read_request(reader)

    server = await serve(hang_up)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response") as info:
        await send(transport, "GET", server.url)
    assert info.value.request.url == server.url
    assert server.accepted == 1
    assert stats_of(transport, server).open == 0


@pytest.mark.parametrize(
    "raw",
    [
        response(200, b"bye", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_connection_not_reused_when_server_says_so(serve, transport, raw: bytes) -> None:
    async def handler(reader, writer) -> None:
        if await read_request(reader) is not None:
            writer.write(raw)
            await writer.drain()
        await reader.read()  # wait for the client to close

    server = await serve(handler)
    for _ in range(2):
        assert (await send(transport, "GET", server.url)).content == b"bye"
    assert server.accepted == 2
    await server.all_closed.wait()


async def test_keepalive_expiry_and_keepalive_limit(serve) -> None:
    server = await serve(echo_handler())
    for kwargs in ({"keepalive_expiry": 0.0}, {"max_keepalive_connections": 0}):
        transport = LeanTransport(**kwargs)  # type: ignore[arg-type]
        before = server.accepted
        for _ in range(3):
            await send(transport, "GET", server.url)
        assert server.accepted - before == 3, kwargs
        await transport.aclose()


# --------------------------------------------------------------------------------------
# Response framing


def canned(*answers: bytes, close_after: bool = False) -> Handler:
    """Answers the n-th request on a connection with ``answers[n]`` (raw bytes)."""

    async def handler(reader, writer) -> None:
        for answer in answers:
            if await read_request(reader) is None:
                return
            writer.write(answer)
            await writer.drain()
        if not close_after:
            await reader.read()

    return handler


async def test_chunked_response_with_extensions_and_trailers(serve, transport) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    server = await serve(canned(raw, raw))
    for _ in range(2):
        resp = await send(transport, "GET", server.url)
        assert resp.content == b"hello world"
    assert server.accepted == 1  # reused after a complete chunked body


async def test_large_chunked_response_streams(serve, transport) -> None:
    chunk = bytes(range(256)) * 400
    body = b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for _ in range(20))
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
    server = await serve(canned(raw, response(200, b"next")))
    request = httpx.Request("GET", server.url)
    resp = await transport.handle_async_request(request)
    assert isinstance(resp.stream, ResponseStream)
    assert await resp.aread() == chunk * 20
    await resp.aclose()
    assert (await send(transport, "GET", server.url)).content == b"next"
    assert server.accepted == 1


async def test_content_length_response_larger_than_preread(serve, transport) -> None:
    body = b"x" * 300_000
    server = await serve(canned(response(200, body), response(200, b"after")))
    resp = await transport.handle_async_request(httpx.Request("GET", server.url))
    assert resp.headers["content-length"] == "300000"
    assert await resp.aread() == body
    await resp.aclose()
    assert (await send(transport, "GET", server.url)).content == b"after"
    assert server.accepted == 1


async def test_close_delimited_body(serve, transport) -> None:
    async def handler(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    server = await serve(handler)
    resp = await send(transport, "GET", server.url)
    assert resp.content == b"until the end"
    assert stats_of(transport, server).open == 0


async def test_head_with_content_length_has_no_body(serve, transport) -> None:
    server = await serve(canned(response(200, b"", "Content-Length: 1234"), response(200, b"ok")))
    resp = await send(transport, "HEAD", server.url)
    assert resp.headers["content-length"] == "1234"
    assert resp.content == b""
    assert (await send(transport, "GET", server.url)).content == b"ok"
    assert server.accepted == 1


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(serve, transport, status: int) -> None:
    raw = f"HTTP/1.1 {status} X\r\nETag: x\r\n\r\n".encode()
    server = await serve(canned(raw, response(200, b"ok")))
    resp = await send(transport, "GET", server.url)
    assert (resp.status_code, resp.content) == (status, b"")
    assert (await send(transport, "GET", server.url)).content == b"ok"
    assert server.accepted == 1


async def test_interim_1xx_responses_are_skipped(serve, transport) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    server = await serve(canned(raw + response(201, b"made")))
    resp = await send(transport, "POST", server.url, content=b"x")
    assert (resp.status_code, resp.content) == (201, b"made")


async def test_response_split_across_many_packets(serve, transport) -> None:
    raw = response(200, b"0123456789" * 10, "X-Long: " + "v" * 500)

    async def dribble(reader, writer) -> None:
        await read_request(reader)
        for i in range(0, len(raw), 7):
            writer.write(raw[i : i + 7])
            await writer.drain()
        await reader.read()

    server = await serve(dribble)
    resp = await send(transport, "GET", server.url)
    assert resp.content == b"0123456789" * 10
    assert resp.headers["x-long"] == "v" * 500


async def test_gzip_body_is_decoded(serve) -> None:
    payload = gzip.compress(b'{"ok": true}')
    server = await serve(canned(response(200, payload, "Content-Encoding: gzip")))
    async with httpx.AsyncClient(transport=LeanTransport()) as client:
        resp = await client.get(server.url)
    assert resp.json() == {"ok": True}


@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    extension=st.sampled_from([b"", b";a=1", b" ; name"]),
    trailers=st.sampled_from([b"", b"X-Sum: 1\r\n", b"A: b\r\nC: d\r\n"]),
)
def test_chunked_decoding_is_independent_of_packet_boundaries(
    chunks: list[bytes], cuts: list[int], extension: bytes, trailers: bytes
) -> None:
    wire = b"".join(b"%x%b\r\n%b\r\n" % (len(c), extension, c) for c in chunks)
    wire += b"0\r\n" + trailers + b"\r\nNEXT"
    reader = ChunkedReader()
    buf = bytearray()
    out = []
    position = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        buf += wire[position:cut]
        position = max(position, cut)
        out.append(reader.take(buf))
        if reader.done:
            break
    assert reader.done
    assert b"".join(out) == b"".join(chunks)
    assert bytes(buf) + wire[position:] == b"NEXT"  # not a byte past the message


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "unsupported HTTP version"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nBad : name\r\nContent-Length: 0\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "continuation line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "received 5 bytes, expected 10"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "complete message"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "middle of the response head"),
    ],
)
async def test_malformed_responses(serve, transport, raw: bytes, match: str) -> None:
    server = await serve(canned(raw, close_after=True))
    with pytest.raises(httpx.RemoteProtocolError, match=match):
        await send(transport, "GET", server.url)
    assert stats_of(transport, server).open == 0


async def test_duplicate_equal_content_lengths_are_accepted(serve, transport) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    server = await serve(canned(raw))
    assert (await send(transport, "GET", server.url)).content == b"ok"


# --------------------------------------------------------------------------------------
# Large bodies, both ways


def pattern(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    block = hashlib.sha256(b"seed").digest() * (size // 32)
    for sent in range(0, total, size):
        yield block[: min(size, total - sent)]


async def test_large_streamed_get_keeps_client_buffer_bounded(serve, transport) -> None:
    total = 20 * 1024 * 1024
    expected = hashlib.sha256(b"".join(pattern(total))).hexdigest()

    async def big(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for block in pattern(total):
            writer.write(block)
            await writer.drain()
        await reader.read()

    server = await serve(big)
    resp = await transport.handle_async_request(httpx.Request("GET", server.url))
    stream = resp.stream
    assert isinstance(stream, ResponseStream)
    conn = stream._conn
    assert conn is not None
    # Don't read: the connection must stop reading from the socket at its high-water mark.
    await until(lambda: conn.read_paused, "reading paused")
    bound = 256 * 1024 + 256 * 1024  # high-water mark + one socket read
    assert len(conn.buf) <= bound
    digest = hashlib.sha256()
    received = peak = 0
    async for chunk in resp.aiter_bytes():
        digest.update(chunk)
        received += len(chunk)
        peak = max(peak, len(conn.buf))
    await resp.aclose()
    assert received == total
    assert digest.hexdigest() == expected
    assert peak <= bound
    assert stats_of(transport, server) == PoolStats(open=1, idle=1, waiting=0)


async def test_abandoned_stream_closes_the_connection(serve, transport) -> None:
    server = await serve(canned(response(200, b"y" * 1_000_000)))
    resp = await transport.handle_async_request(httpx.Request("GET", server.url))
    async for _ in resp.aiter_raw():
        break
    await resp.aclose()
    assert stats_of(transport, server).open == 0
    await server.all_closed.wait()


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_streamed_request_body(serve, transport, with_length: bool) -> None:
    total = 6 * 1024 * 1024 + 123
    expected = hashlib.sha256(b"".join(pattern(total, 64 * 1024))).hexdigest()

    async def verify(reader, writer) -> None:
        while (req := await read_request(reader)) is not None:
            framing = b"length" if b"content-length" in req.headers else b"chunked"
            answer = b"%d %s %s" % (len(req.body), hashlib.sha256(req.body).hexdigest().encode(),
                                    framing)  # fmt: skip
            writer.write(response(200, answer))
            await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        for block in pattern(total, 64 * 1024):
            yield block

    server = await serve(verify)
    headers = {"Content-Length": str(total)} if with_length else {}
    resp = await send(transport, "PUT", server.url, content=body(), headers=headers)
    framing = "length" if with_length else "chunked"
    assert resp.text == f"{total} {expected} {framing}"
    assert server.accepted == 1
    # and the connection is still good for the next request
    assert (await send(transport, "PUT", server.url, content=b"abc")).text.startswith("3 ")
    assert server.accepted == 1


async def test_large_bytes_body(serve, transport) -> None:
    server = await serve(echo_handler())
    resp = await send(transport, "POST", server.url, content=b"z" * 3_000_000)
    assert resp.content == b"POST / 3000000"


async def test_stream_shorter_than_content_length_is_a_local_error(serve, transport) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"abc"

    server = await serve(echo_handler())
    with pytest.raises(httpx.LocalProtocolError, match="Too little data"):
        await send(transport, "PUT", server.url, content=body(), headers={"Content-Length": "10"})
    assert stats_of(transport, server).open == 0


async def test_header_injection_is_refused(serve, transport) -> None:
    server = await serve(echo_handler())
    with pytest.raises(httpx.LocalProtocolError):
        await send(transport, "GET", server.url, headers={"X-A": "b\r\nX-Injected: 1"})
    assert server.accepted == 0


# --------------------------------------------------------------------------------------
# Timeouts and connection errors


def silent() -> Handler:
    async def handler(reader, writer) -> None:
        await reader.read()  # never answers

    return handler


async def test_read_timeout(serve) -> None:
    server = await serve(silent())
    transport = LeanTransport(read_timeout=0.05)
    with pytest.raises(httpx.ReadTimeout) as info:
        await send(transport, "GET", server.url)
    assert info.value.request.url == server.url
    assert stats_of(transport, server).open == 0
    await transport.aclose()


async def test_per_request_timeout_extension_wins(serve, transport) -> None:
    server = await serve(silent())
    timeout = {"connect": 5.0, "read": 0.05, "write": 5.0, "pool": 5.0}
    with pytest.raises(httpx.ReadTimeout):
        await send(transport, "GET", server.url, extensions={"timeout": timeout})


async def test_read_timeout_through_async_client(serve) -> None:
    server = await serve(silent())
    async with httpx.AsyncClient(transport=LeanTransport(), timeout=0.05) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url)


async def test_read_timeout_while_streaming_a_body(serve, transport) -> None:
    async def stall(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")
        await writer.drain()
        await reader.read()

    server = await serve(stall)
    timeout = {"connect": 5.0, "read": 0.05, "write": 5.0, "pool": 5.0}
    request = httpx.Request("GET", server.url, extensions={"timeout": timeout})
    resp = await transport.handle_async_request(request)
    with pytest.raises(httpx.ReadTimeout):
        await resp.aread()
    await resp.aclose()
    assert stats_of(transport, server).open == 0


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "stream"])
async def test_write_timeout(serve, streamed: bool) -> None:
    never = asyncio.Event()

    async def never_reads(reader, writer) -> None:
        await never.wait()

    async def body() -> AsyncIterator[bytes]:
        for block in pattern(64 * 1024 * 1024):
            yield block

    server = await serve(never_reads)
    transport = LeanTransport(write_timeout=0.05)
    content = body() if streamed else b"w" * (32 * 1024 * 1024)
    with pytest.raises(httpx.WriteTimeout):
        await send(transport, "PUT", server.url, content=content)
    assert stats_of(transport, server).open == 0
    await transport.aclose()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full, so that connecting to it hangs.

    Linux drops a SYN when the listener's accept queue is full; the queue of a socket
    listening with backlog 0 holds one connection. Nobody accepts, so after a filler
    connection or two a connect neither succeeds nor fails: a connect timeout, produced
    on the loopback without sleeping. Skipped where the kernel behaves otherwise.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.05)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # this one hangs: the queue is full
        else:
            pytest.skip("this kernel does not leave connects to a full backlog hanging")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_timeout(full_backlog: int) -> None:
    transport = LeanTransport(connect_timeout=0.1)
    with pytest.raises(httpx.ConnectTimeout) as info:
        await send(transport, "GET", f"http://127.0.0.1:{full_backlog}/")
    assert info.value.request is not None
    assert transport.stats()[f"http://127.0.0.1:{full_backlog}"].open == 0
    await transport.aclose()


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it's closed
    transport = LeanTransport()
    with pytest.raises(httpx.ConnectError):
        await send(transport, "GET", f"http://127.0.0.1:{port}/")
    assert transport.stats()[f"http://127.0.0.1:{port}"].open == 0
    await transport.aclose()


async def test_local_address(serve) -> None:
    server = await serve(echo_handler())
    transport = LeanTransport(local_address="127.0.0.1")
    assert (await send(transport, "GET", server.url)).status_code == 200
    await transport.aclose()
    # An address this host doesn't have fails at bind(): a ConnectError, like DNS failures
    # (not tested here: resolving a name would leave the loopback).
    transport = LeanTransport(local_address="192.0.2.1")
    with pytest.raises(httpx.ConnectError):
        await send(transport, "GET", server.url)
    await transport.aclose()


async def test_reset_while_reading_is_a_read_error(serve, transport) -> None:
    async def reset(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()  # RST

    server = await serve(reset)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await send(transport, "GET", server.url)


# --------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sagemaker-async test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(certificate: tuple[Path, Path], alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


async def test_tls_with_a_trusted_self_signed_certificate(serve, certificate) -> None:
    server = await serve(echo_handler(), server_context(certificate, ["http/1.1"]))
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    transport = LeanTransport(ssl_context=client_context)
    for _ in range(3):
        resp = await send(transport, "POST", f"{server.url}/tls", content=b"secret")
        assert resp.content == b"POST /tls 6"
    assert server.accepted == 1
    await transport.aclose()


async def test_tls_default_context_rejects_self_signed(serve, certificate, transport) -> None:
    server = await serve(echo_handler(), server_context(certificate))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await send(transport, "GET", server.url)
    assert stats_of(transport, server).open == 0


async def test_tls_server_choosing_h2_is_refused(serve, certificate) -> None:
    server = await serve(echo_handler(), server_context(certificate, ["h2"]))
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    client_context.set_alpn_protocols(["h2", "http/1.1"])
    transport = LeanTransport(ssl_context=client_context)
    with pytest.raises(httpx.ConnectError, match="ALPN"):
        await send(transport, "GET", server.url)
    await transport.aclose()


# --------------------------------------------------------------------------------------
# Pool limits, concurrency, cancellation, lifecycle


async def test_many_concurrent_requests_on_a_small_pool(serve) -> None:
    server = await serve(echo_handler())
    transport = LeanTransport(max_connections=4)
    peak = 0

    async def one(i: int) -> bytes:
        nonlocal peak
        peak = max(peak, server.open)
        resp = await send(transport, "POST", f"{server.url}/{i}", content=b"x" * i)
        return resp.content

    bodies = await asyncio.gather(*(one(i) for i in range(200)))
    assert bodies == [b"POST /%d %d" % (i, i) for i in range(200)]
    assert server.accepted <= 4
    assert peak <= 4
    stats = stats_of(transport, server)
    assert stats.waiting == 0
    assert stats.open == stats.idle == server.open
    await transport.aclose()
    assert stats_of(transport, server) == PoolStats(open=0, idle=0, waiting=0)
    await server.all_closed.wait()


def gated() -> tuple[Handler, asyncio.Event, asyncio.Event]:
    """A server that signals when a request arrived and answers when released."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handler(reader, writer) -> None:
        while await read_request(reader) is not None:
            arrived.set()
            released = asyncio.ensure_future(release.wait())
            hung_up = asyncio.ensure_future(reader.read(1))
            await asyncio.wait({released, hung_up}, return_when=asyncio.FIRST_COMPLETED)
            hung_up.cancel()
            released.cancel()
            await asyncio.gather(hung_up, released, return_exceptions=True)
            if released.cancelled():
                return  # the client went away first
            writer.write(response(200, b"released"))
            await writer.drain()

    return handler, arrived, release


async def test_cancel_while_awaiting_the_response_closes_the_connection(serve, transport) -> None:
    handler, arrived, release = gated()
    server = await serve(handler)
    task = asyncio.create_task(send(transport, "GET", server.url))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stats_of(transport, server).open == 0
    await server.all_closed.wait()  # the half-done connection was closed, not pooled
    release.set()
    assert (await send(transport, "GET", server.url)).content == b"released"


async def test_cancel_while_waiting_for_the_pool_leaves_no_waiter(serve) -> None:
    handler, arrived, release = gated()
    server = await serve(handler)
    transport = LeanTransport(max_connections=1)
    first = asyncio.create_task(send(transport, "GET", server.url))
    await arrived.wait()
    second = asyncio.create_task(send(transport, "GET", server.url))
    await until(lambda: stats_of(transport, server).waiting == 1, "second request waits")
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert stats_of(transport, server) == PoolStats(open=1, idle=0, waiting=0)
    release.set()
    assert (await first).content == b"released"
    assert (await send(transport, "GET", server.url)).content == b"released"
    assert server.accepted == 1
    await transport.aclose()


async def test_cancel_while_connecting(full_backlog: int) -> None:
    transport = LeanTransport()
    task = asyncio.create_task(send(transport, "GET", f"http://127.0.0.1:{full_backlog}/"))
    await until(lambda: bool(transport.stats()), "connect started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.stats()[f"http://127.0.0.1:{full_backlog}"].open == 0
    await transport.aclose()


async def test_connection_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    """The race a waiter queue must get right: handed a connection, then cancelled."""
    transport = LeanTransport(max_connections=1)
    request = httpx.Request("GET", "http://127.0.0.1:9/")
    pool = transport._new_pool((b"http", b"127.0.0.1", 9), request)
    pool.n_open = 1  # the only slot is taken
    waiting = asyncio.create_task(pool.acquire(transport._defaults, request))
    await until(lambda: len(pool.waiters) == 1, "waiting for the pool")
    conn = Connection(pool)
    pool.release(conn)  # handed over...
    waiting.cancel()  # ...and cancelled before the waiter could run
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.idle == [conn]  # given back, not lost
    assert pool.stats() == PoolStats(open=1, idle=1, waiting=0)


async def test_pool_timeout(serve) -> None:
    handler, arrived, release = gated()
    server = await serve(handler)
    transport = LeanTransport(max_connections=1, pool_timeout=0.05)
    first = asyncio.create_task(send(transport, "GET", server.url))
    await arrived.wait()
    with pytest.raises(httpx.PoolTimeout) as info:
        await send(transport, "GET", server.url)
    assert info.value.request.url == server.url
    assert stats_of(transport, server).waiting == 0
    release.set()
    assert (await first).content == b"released"
    await transport.aclose()


async def test_waiter_gets_the_released_connection(serve) -> None:
    handler, arrived, release = gated()
    server = await serve(handler)
    transport = LeanTransport(max_connections=1)
    tasks = [asyncio.create_task(send(transport, "GET", server.url)) for _ in range(5)]
    await arrived.wait()
    release.set()
    assert [(await t).content for t in tasks] == [b"released"] * 5
    assert server.accepted == 1
    await transport.aclose()


async def test_closed_transport_refuses_requests(serve) -> None:
    server = await serve(echo_handler())
    transport = LeanTransport()
    await send(transport, "GET", server.url)
    await transport.aclose()
    await server.all_closed.wait()
    with pytest.raises(RuntimeError, match="closed"):
        await send(transport, "GET", server.url)


async def test_aclose_fails_requests_in_flight(serve) -> None:
    handler, arrived, _release = gated()
    server = await serve(handler)
    transport = LeanTransport()
    task = asyncio.create_task(send(transport, "POST", server.url, content=b"x"))
    await arrived.wait()
    await transport.aclose()
    with pytest.raises((httpx.ReadError, RuntimeError)):
        await task
    await server.all_closed.wait()


async def test_unsupported_scheme(transport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await send(transport, "GET", "ftp://127.0.0.1/")


_SUBPROCESS_SERVER = r"""
import asyncio, sys

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, bytearray()

    def data_received(self, data):
        self.buf += data
        out = []
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            target = bytes(self.buf[: end]).split(b" ", 2)[1]
            del self.buf[: end + 4]
            out.append(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
        self.transport.write(b"".join(out))

async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


async def test_many_requests_against_a_server_in_another_process() -> None:
    """No answer goes to the wrong caller when a separate process serves 64 at a time."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUBPROCESS_SERVER, stdin=PIPE, stdout=PIPE
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(await server.stdout.readline())
    transport = LeanTransport(max_connections=16)
    queue = iter(range(640))

    async def worker() -> list[tuple[int, bytes]]:
        done = []
        for i in queue:
            resp = await send(transport, "GET", f"http://127.0.0.1:{port}/call/{i}")
            done.append((i, resp.content))
        return done

    try:
        results = [pair for batch in await asyncio.gather(*(worker() for _ in range(64)))
                   for pair in batch]  # fmt: skip
    finally:
        await transport.aclose()
        server.stdin.close()
        await server.wait()
    assert len(results) == 640
    assert all(body == b"/call/%d" % i for i, body in results)
    assert transport.stats()[f"http://127.0.0.1:{port}"] == PoolStats(open=0, idle=0, waiting=0)


# --------------------------------------------------------------------------------------
# Through httpx.AsyncClient


async def test_async_client_get_and_post(serve) -> None:
    server = await serve(echo_handler())
    async with httpx.AsyncClient(transport=LeanTransport(), base_url=server.url) as client:
        got = await client.get("/items", params={"a": "1 2"})
        assert got.text == "GET /items?a=1+2 0"
        posted = await client.post("/items", json={"k": "v"})
        assert posted.text == "POST /items 9"  # {"k":"v"}
        async with client.stream("GET", "/streamed") as streamed:
            assert await streamed.aread() == b"GET /streamed 0"
    assert server.accepted == 1


# --------------------------------------------------------------------------------------
# Proxies from the environment


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("https://runtime.sagemaker.us-east-1.amazonaws.com/", {}, False),
        ("https://a.example.com/", {"HTTPS_PROXY": "http://proxy:3128"}, True),
        ("https://a.example.com/", {"https_proxy": "proxy:3128"}, True),
        ("http://a.example.com/", {"HTTPS_PROXY": "http://proxy:3128"}, False),
        ("http://a.example.com/", {"HTTP_PROXY": "http://proxy:3128"}, True),
        ("http://a.example.com/", {"ALL_PROXY": "http://proxy:1080"}, True),
        (
            "https://a.example.com/",
            {"all_proxy": "http://proxy:1080", "NO_PROXY": "a.example.com"},
            False,
        ),
        (
            "http://example.com:8080/",
            {"HTTP_PROXY": "http://p", "NO_PROXY": "example.com:8080"},
            False,
        ),
        (
            "http://example.com:8081/",
            {"HTTP_PROXY": "http://p", "NO_PROXY": "example.com:8080"},
            True,
        ),
        ("http://10.1.2.3/", {"HTTP_PROXY": "http://p", "NO_PROXY": "10.0.0.0/8"}, True),
        # httpx reads "*.example.com" as the host pattern "**.example.com": no match.
        ("https://a.example.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "*.example.com"}, True),
        (
            "http://a.example.com/",
            {"HTTP_PROXY": "http://p", "NO_PROXY": " , a.example.com "},
            False,
        ),
        ("http://a.example.com/", {"HTTP_PROXY": "http://p", "REQUEST_METHOD": "GET"}, False),
        ("http://a.example.com/", {"http_proxy": "http://p", "REQUEST_METHOD": "GET"}, True),
        ("https://a.example.com/", {"HTTPS_PROXY": "http://p", "https_proxy": ""}, False),
        ("https://a.example.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "*"}, False),
        ("https://a.example.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "example.com"}, False),
        ("https://example.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "example.com"}, False),
        ("https://badexample.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "example.com"}, True),
        ("https://example.com/", {"HTTPS_PROXY": "http://p", "no_proxy": ".example.com"}, True),
        ("https://a.example.com/", {"HTTPS_PROXY": "http://p", "no_proxy": ".example.com"}, False),
        (
            "http://127.0.0.1:9/",
            {"HTTP_PROXY": "http://p", "NO_PROXY": "localhost,127.0.0.1"},
            False,
        ),
        ("http://localhost:9/", {"HTTP_PROXY": "http://p", "NO_PROXY": "localhost"}, False),
        ("http://[::1]:9/", {"HTTP_PROXY": "http://p", "NO_PROXY": "::1"}, False),
        ("http://10.0.0.1/", {"HTTP_PROXY": "http://p", "NO_PROXY": "127.0.0.1"}, True),
        ("http://a.b.com/", {"HTTP_PROXY": "http://p", "NO_PROXY": "http://a.b.com"}, False),
        ("http://x.a.b.com/", {"HTTP_PROXY": "http://p", "NO_PROXY": "http://a.b.com"}, True),
        ("https://a.b.com/", {"HTTPS_PROXY": "http://p", "NO_PROXY": "http://a.b.com"}, True),
    ],
)
def test_proxy_configured(
    url: str, env: dict[str, str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert proxy_configured(httpx.URL(url), env) is expected
    # httpx itself is the oracle: the client falls back to its transport when we say so.
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with httpx.Client(verify=False) as client:
        routed = client._transport_for_url(httpx.URL(url)) is not client._transport
    assert routed is expected
