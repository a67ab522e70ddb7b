"""The minimum body rate (mod_reqtimeout's ``body=20,MinRate=500``) on raw sockets.

The server measures the rate on an injected clock that the test moves, and the test knows
what the server has read through ``Admission.on_body``: no waiting on wall time anywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._http import Admission, Head, HttpServer, Limits, Request, Response


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """An HttpServer whose body bytes are announced to the test as they are read."""

    def __init__(self, limits: Limits) -> None:
        self.clock = FakeClock()
        self.read = 0
        self.progress = asyncio.Event()
        self.answered: list[int] = []
        self.http = HttpServer(self.app, admit=self.admit, limits=limits, clock=self.clock)

    async def app(self, request: Request) -> Response:
        self.answered.append(request.body_size)
        return Response(200, [], b"stored %d" % request.body_size)

    def admit(self, head: Head) -> Admission:
        def on_body(data: bytes) -> None:
            self.read += len(data)
            self.progress.set()

        return Admission(10**9, Response(413), on_body=on_body)

    async def until_read(self, total: int) -> None:
        while self.read < total:
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), 5)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    # The per-gap timeout is far away: only the rate can end these bodies.
    server = Server(Limits(body_timeout=600, body_min_rate=500, body_rate_grace=20))
    await server.http.start()
    yield server
    await server.http.aclose()


async def _status(reader: asyncio.StreamReader) -> int:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return int(head.split(b" ", 2)[1])


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


def _head(length: int) -> bytes:
    return b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % length


async def test_a_body_slower_than_the_floor_gets_408_logged_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
    writer.write(_head(100_000) + b"x" * 1000)  # 1,000 bytes: the deadline is at 20 + 2 s
    await server.until_read(1000)
    server.clock.now += 21.0  # still inside: one more byte is welcome
    writer.write(b"x")
    await server.until_read(1001)
    server.clock.now += 1.5  # 22.5 s for 1,001 bytes: below 500 B/s after the grace
    with caplog.at_level(logging.INFO, logger="sagemaker_async.local"):
        writer.write(b"x")
        assert await _status(reader) == 408
        assert await _closed(reader)
    writer.close()
    assert server.answered == []  # the application never saw the request
    lines = [r for r in caplog.records if "slower than 500 bytes/s" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is None
    assert "PUT /b/k" in lines[0].getMessage()


async def test_a_sender_at_the_floor_is_never_cut_off(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
    total = 60_000
    writer.write(_head(total))
    sent = 0
    while sent < total:  # 5,000 bytes every 10 s: exactly 500 B/s, for 2 minutes
        writer.write(b"y" * 5000)
        sent += 5000
        await server.until_read(sent)
        server.clock.now += 10.0
    assert await _status(reader) == 200
    assert server.answered == [total]
    writer.close()


async def test_the_deadline_only_moves_with_bytes(server: Server) -> None:
    # Nothing after the head: the grace alone. The check is made when the next bytes come.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
    writer.write(_head(10) + b"a")
    await server.until_read(1)
    server.clock.now += 20.01
    writer.write(b"b")
    assert await _status(reader) == 408
    writer.close()


async def test_the_maximum_caps_even_a_fast_body() -> None:
    server = Server(Limits(body_min_rate=500, body_rate_grace=20, body_max_seconds=30))
    await server.http.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
        writer.write(_head(10**7) + b"z" * 1_000_000)  # 2,000 s of credit, capped at 30
        await server.until_read(1_000_000)
        server.clock.now += 31
        writer.write(b"z")
        assert await _status(reader) == 408
        writer.close()
    finally:
        await server.http.aclose()


async def test_no_floor_when_the_rate_is_zero() -> None:
    server = Server(Limits(body_min_rate=0))
    await server.http.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.http.port)
        writer.write(_head(2) + b"a")
        await server.until_read(1)
        server.clock.now += 10**6
        writer.write(b"b")
        assert await _status(reader) == 200
        writer.close()
    finally:
        await server.http.aclose()


def test_the_default_floor_is_mod_reqtimeouts() -> None:
    limits = Limits()
    assert (limits.body_min_rate, limits.body_rate_grace, limits.body_max_seconds) == (
        500.0,
        20.0,
        None,
    )


async def test_the_local_endpoint_applies_its_limits_rate() -> None:
    # No grace and a body that has not started: its deadline has passed before the first
    # wait, so the answer comes at once, whatever the wall clock does.
    limits = Limits(body_rate_grace=0.0, body_min_rate=500)
    async with LocalEndpoint({"e": bytes.upper}, limits=limits) as local:
        reader, writer = await asyncio.open_connection("127.0.0.1", local.port)
        writer.write(
            f"PUT /{local.bucket}/slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n".encode()
        )
        assert await _status(reader) == 408
        assert await _closed(reader)
        writer.close()
