"""A hostile HTTP server on loopback: responses scripted byte for byte, resets with SO_LINGER 0.

Every case runs against our transport; where httpx's own transport (httpcore + h11) gets it
right, against that too, as the oracle: both must agree. The cases marked ``ours`` are
those where httpx hands back wrong bytes or waits for its timeout; there we hold our
transport to the stricter verdict alone. Bodies are read with ``aiter_raw`` (the bytes as
they came), so content decoding never blurs the comparison.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from sagemaker_async._io.http11 import LeanTransport

# -- the server ----------------------------------------------------------------------------


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class Hostile:
    """Answers each request on a connection with the next scripted reply."""

    replies: list[bytes]
    then: str = "close"  # after the replies: "close" (FIN), "reset" (RST) or "hold"
    go: asyncio.Event | None = None  # if set, wait for it before the final action
    requests: list[bytes] = field(default_factory=list)
    accepted: int = 0
    port: int = 0
    held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            for reply in self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append(head + await reader.readexactly(length))
                writer.write(reply)
                await writer.drain()
            if self.go is not None:
                await self.go.wait()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if self.then == "reset":
            reset(writer)
        elif self.then == "hold":
            self.held.append(writer)
        else:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/x"


Serve = Callable[..., Awaitable[Hostile]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[tuple[asyncio.Server, Hostile]] = []

    async def start(replies: list[bytes] | bytes, **options: object) -> Hostile:
        if isinstance(replies, bytes):
            replies = [replies]
        hostile = Hostile(replies, **options)  # type: ignore[arg-type]
        server = await asyncio.start_server(hostile.handle, "127.0.0.1", 0)
        hostile.port = server.sockets[0].getsockname()[1]
        servers.append((server, hostile))
        return hostile

    yield start
    for server, hostile in servers:
        for writer in hostile.held:
            writer.close()
        server.close()
        await server.wait_closed()


def make_transport(kind: str) -> httpx.AsyncBaseTransport:
    if kind == "ours":
        return LeanTransport(read_timeout=30.0)
    return httpx.AsyncHTTPTransport(retries=0)


@pytest.fixture(params=["ours", "httpx"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncBaseTransport]:
    transport = make_transport(request.param)
    yield transport
    await transport.aclose()


@pytest.fixture
async def ours() -> AsyncIterator[httpx.AsyncBaseTransport]:
    transport = make_transport("ours")
    yield transport
    await transport.aclose()


async def fetch(
    transport: httpx.AsyncBaseTransport, url: str, method: str = "GET", **kwargs: object
) -> tuple[int, httpx.Headers, bytes]:
    request = httpx.Request(method, url, **kwargs)  # type: ignore[arg-type]
    response = await transport.handle_async_request(request)
    try:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return response.status_code, response.headers, body


# -- what both transports accept, and read the same ----------------------------------------

GOOD = [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", id="length"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n",
        b"hello",
        id="chunked",
    ),
    pytest.param(b"HTTP/1.1 200 OK\r\n\r\nhello", b"hello", id="to-a-clean-close"),
    pytest.param(b"HTTP/1.0 200 OK\r\n\r\nhello", b"hello", id="http-1.0-to-close"),
    pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", b"hello", id="bare-lf-head"),
    pytest.param(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"hello",
        id="interim-100",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
        b"notgz",
        id="encoded-not-decoded",
    ),
    pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b"", id="204"),
    pytest.param(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", b"ok", id="no-reason"),
]


@pytest.mark.parametrize(("reply", "body"), GOOD)
async def test_accepted_alike(
    serve: Serve, either: httpx.AsyncBaseTransport, reply: bytes, body: bytes
) -> None:
    server = await serve(reply)
    status, _, got = await fetch(either, server.url)
    assert got == body
    assert status in (200, 204)


async def test_obsolete_folding_is_unfolded_alike(
    serve: Serve, either: httpx.AsyncBaseTransport
) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok")
    _, headers, body = await fetch(either, server.url)
    assert (headers["x-a"], body) == ("one two", b"ok")


# -- what both refuse ---------------------------------------------------------------------

BAD = [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", id="length-cut-by-fin"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", id="chunked-cut-by-fin"
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00", id="te-gzip"
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        id="te-gzip-chunked",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        id="te-chunked-chunked",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        id="two-te-headers",
    ),
    pytest.param(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", id="four-digit-status"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", id="space-in-name"
    ),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", id="nul-in-value"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhelloo",
        id="conflicting-lengths",
    ),
    pytest.param(b"HTTP/1.1 200 OK\r\n\tX-A: b\r\nContent-Length: 0\r\n\r\n", id="fold-first"),
    pytest.param(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", id="empty-line-first"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="head-cut-by-fin"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
        id="chunk-overrun",
    ),
]


@pytest.mark.parametrize("reply", BAD)
async def test_refused_alike(serve: Serve, either: httpx.AsyncBaseTransport, reply: bytes) -> None:
    server = await serve(reply)
    with pytest.raises(httpx.TransportError):
        await fetch(either, server.url)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\nhello", id="to-close"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nhello", id="length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", id="chunked"
        ),
    ],
)
async def test_a_reset_mid_body_is_an_error_never_a_short_body(
    serve: Serve, either: httpx.AsyncBaseTransport, reply: bytes
) -> None:
    """The first release returned a body without a length, cut by a reset, as complete."""
    go = asyncio.Event()
    server = await serve(reply, then="reset", go=go)
    response = await either.handle_async_request(httpx.Request("GET", server.url))
    go.set()  # the head is read: now the server resets the connection
    with pytest.raises(httpx.TransportError):
        async for _ in response.aiter_raw():
            pass
    await response.aclose()


async def test_an_endless_head_is_refused_by_size(
    serve: Serve, either: httpx.AsyncBaseTransport
) -> None:
    """Never a wait for the read timeout: the head limit holds however the bytes arrive."""
    server = await serve(b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * (256 * 1024), then="hold")
    with pytest.raises(httpx.RemoteProtocolError):
        await fetch(either, server.url)


async def test_endless_interim_responses_are_refused(
    serve: Serve, ours: httpx.AsyncBaseTransport
) -> None:
    server = await serve(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000, then="hold")
    with pytest.raises(httpx.RemoteProtocolError, match="interim"):
        await fetch(ours, server.url)


# -- where httpx hands back wrong bytes, or waits: ours alone ----------------------------------

OURS_BAD = [
    # h11 splits at the bare LF and reads a Content-Length the first release did not see:
    # the two disagree about the body; the only safe verdict is an error.
    pytest.param(
        b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 5\r\n\r\nhelloJUNK", id="bare-lf-in-crlf-head"
    ),
    pytest.param(b"HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n", id="bare-cr"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        id="te-and-length",
    ),
    pytest.param(b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n", id="status-600"),
    pytest.param(b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", id="http-2.0"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\n\nok", id="mixed-end"),
]


@pytest.mark.parametrize("reply", OURS_BAD)
async def test_refused_by_ours(serve: Serve, ours: httpx.AsyncBaseTransport, reply: bytes) -> None:
    server = await serve(reply)
    with pytest.raises(httpx.RemoteProtocolError):
        await fetch(ours, server.url)


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.6\r\n", b"\x16\x03\x01\x02\x00", b"<html>", b"\r\n"],
    ids=["ssh", "tls", "html", "blank"],
)
async def test_an_answer_that_is_not_http_fails_at_once(
    serve: Serve, ours: httpx.AsyncBaseTransport, reply: bytes
) -> None:
    """The server holds the connection open: only the first bytes can end the wait (the
    read timeout is 30 s; a ReadTimeout here would mean we waited for it)."""
    server = await serve(reply, then="hold")
    with pytest.raises(httpx.RemoteProtocolError, match="not HTTP"):
        await fetch(ours, server.url)


async def test_stale_bytes_after_a_response_never_answer_the_next_request(
    ours: httpx.AsyncBaseTransport,
) -> None:
    """httpx's pool reuses such a connection, and returned b'STALE' as the next body."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        first = len(accepted) == 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            if first:  # an answer, then an unasked-for one right behind it
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTALE")
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nreuse")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    async with server:
        assert (await fetch(ours, url))[2] == b"first"
        assert (await fetch(ours, url))[2] == b"fresh"
    assert len(accepted) == 2


# -- the request side ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": "2"},  # the other 3 bytes were read as a second request
        {"Content-Length": "9"},
        {"Transfer-Encoding": "gzip"},
        {"Transfer-Encoding": "chunked", "Content-Length": "5"},
    ],
)
async def test_framing_that_disagrees_with_the_body_is_never_sent(
    serve: Serve, ours: httpx.AsyncBaseTransport, headers: dict[str, str]
) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    request = httpx.Request("POST", server.url, content=b"hello")
    for name, value in headers.items():
        request.headers[name] = value
    with pytest.raises(httpx.LocalProtocolError):
        await ours.handle_async_request(request)
    assert server.accepted == 0


async def test_a_header_value_with_a_line_break_is_never_sent(
    serve: Serve, ours: httpx.AsyncBaseTransport
) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    request = httpx.Request("GET", server.url)
    request.headers["X-A"] = "b"
    request.headers._list[-1] = (b"X-A", b"x-a", b"b\r\nX-Injected: 1")
    with pytest.raises(httpx.LocalProtocolError):
        await ours.handle_async_request(request)
    assert server.accepted == 0
