"""The local HTTP server abandons a long poll whose client went away (raw sockets).

SQS long polls on the local endpoint wait on the event loop; if the client closes the
connection meanwhile, the wait must be cancelled, or it would go on to take messages off the
queue for a dead socket (hidden from every other consumer for their visibility timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sagemaker_async.local._http import HttpServer, Request, Response

WAIT = 5.0


class Poll:
    """An application whose /poll waits until released; it records how each one ended."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        if request.path != "/poll":
            return Response(200, [], b"quick:" + request.path.encode())
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Response(200, [], b"polled")


@pytest.fixture
async def served() -> AsyncIterator[tuple[HttpServer, Poll]]:
    poll = Poll()
    server = HttpServer(poll, cancel_if_gone=lambda request: request.path == "/poll")
    await server.start()
    yield server, poll
    await server.aclose()


async def read_body(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def test_a_client_that_goes_away_cancels_its_long_poll(
    served: tuple[HttpServer, Poll],
) -> None:
    server, poll = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.wait_for(poll.started.wait(), WAIT)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(poll.cancelled.wait(), WAIT)
    assert await reader.read() == b""


async def test_a_long_poll_still_answers_a_client_that_stays(
    served: tuple[HttpServer, Poll],
) -> None:
    server, poll = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.wait_for(poll.started.wait(), WAIT)
    # A pipelined request arrives while the poll waits: it is kept, and served next.
    writer.write(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    await writer.drain()
    poll.release.set()
    assert await read_body(reader) == b"polled"
    assert await read_body(reader) == b"quick:/next"
    assert not poll.cancelled.is_set()
    writer.close()
    await writer.wait_closed()


async def test_other_requests_are_not_watched(served: tuple[HttpServer, Poll]) -> None:
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await read_body(reader) == b"quick:/a"
    assert await read_body(reader) == b"quick:/b"
    writer.close()
    await writer.wait_closed()
