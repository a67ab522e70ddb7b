"""One HTTP/1.1 connection as an ``asyncio.BufferedProtocol``, and a response body read off it.

The connection holds a buffer, a few flags and at most one future to wait on: no tasks, no
locks. The grammar is :mod:`.codec`'s; this module only moves bytes and turns the codec's
verdicts into httpx's exceptions (each with the request attached).

A body is never handed back short: a connection that ends before the framing says the
body is complete is an error, and a body delimited by the connection's close ends only at
a clean close (a reset is an error).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import httpx

from .codec import (
    MAX_HEAD,
    BodyReader,
    ChunkedReader,
    CloseDelimitedReader,
    Head,
    LengthReader,
    ProtocolViolation,
    head_end,
    obviously_not_a_response,
    parse_head,
)

if TYPE_CHECKING:
    from .pool import Pool, Timeouts

__all__ = ["Connection", "ResponseStream", "Stale", "complete_response", "make_headers"]

PREREAD_LIMIT: Final = 64 * 1024  # Content-Length bodies up to this are read eagerly
_HIGH_WATER: Final = 256 * 1024  # pause reading from the socket above this many bytes
_LOW_WATER: Final = 64 * 1024  # ... and resume below this
MAX_INTERIM: Final = 32  # 1xx responses skipped before the answer; more is an error


def _fast_headers_work() -> bool:
    probe = httpx.Headers([(b"X-A", b"b")])
    return getattr(probe, "_list", None) == [(b"X-A", b"x-a", b"b")]


# httpx.Headers keeps (raw name, lowercased name, value) triples in ``_list``; building
# one from our triples skips its per-header normalization (about 1 µs a header). Checked
# once at import: if httpx ever changes this, we hand it plain pairs instead.
_FAST_HEADERS: Final = _fast_headers_work()


def make_headers(fields: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    if _FAST_HEADERS:
        headers = httpx.Headers()
        headers._list = fields
        return headers
    return httpx.Headers([(name, value) for name, _, value in fields])


def complete_response(head: Head, content: bytes, request: httpx.Request) -> httpx.Response:
    """An ``httpx.Response`` whose body has been read, as ``Response(content=...)`` makes.

    ``Response(content=...)`` runs the body through httpx's decoder machinery on the spot
    (about 25 µs); for an identity-encoded body that is a copy, so we set the read content
    directly. (``_content`` is httpx's attribute: should it ever change, ``aread()`` still
    reads the body from the ``ByteStream``, a little slower.) Encoded bodies take the normal
    path, so that an ``httpx.AsyncClient`` over this transport decodes them as httpx's own
    would; ``aiter_raw()`` always gives the bytes as they came.
    """
    response = httpx.Response(
        head.status,
        headers=make_headers(head.headers),
        stream=httpx.ByteStream(content),
        request=request,
        extensions={"http_version": head.version, "reason_phrase": head.reason},
    )
    if not head.encoded:
        response._content = content
    return response


class Stale(Exception):
    """The connection was found dead before any byte of the request was written to it:
    the request may be sent on another connection without anyone having seen it."""


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


class Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection: a buffer, flags, and a future to wait on. No tasks.

    A buffered protocol: the socket is read into the pool's one receive buffer
    (``get_buffer``/``buffer_updated``) and the bytes read are appended to ``buf``. A plain
    protocol gets a fresh 256 KiB ``bytes`` from every ``recv`` (an mmap, a page fault, an
    mremap and a munmap each time, for an answer of a few hundred bytes).
    """

    __slots__ = (
        "buf",
        "deadline",
        "drain_waiter",
        "eof",
        "error",
        "idle",
        "idle_since",
        "loop",
        "pool",
        "read_paused",
        "timer",
        "transport",
        "used",
        "waiter",
        "write_paused",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[bool] | None = None
        self.drain_waiter: asyncio.Future[bool] | None = None
        self.eof = False  # the peer closed, or the connection is gone
        self.error: BaseException | None = None  # why the connection was lost, if abnormal
        self.read_paused = False
        self.write_paused = False
        self.idle = False  # sitting in the pool's idle list
        self.idle_since = 0.0
        self.used = 0  # responses completed on this connection
        self.deadline: float | None = None  # when the current read wait times out
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio protocol callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        # The pool's buffer is shared by its connections: asyncio calls buffer_updated
        # right after filling it, in the same callback, so no two reads overlap.
        return self.pool.recv_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.pool.recv_view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        buf = self.buf
        buf += data
        if self.idle:  # unsolicited bytes on an idle connection: it can't be trusted
            self.pool.discard_idle(self)
            return
        if len(buf) > _HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def eof_received(self) -> bool:
        self._gone(None)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        self._gone(exc)
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()

    # -- helpers -----------------------------------------------------------------------

    def _gone(self, exc: BaseException | None) -> None:
        self.eof = True
        if self.idle:
            self.pool.discard_idle(self)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(True)
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def usable(self) -> bool:
        """Idle-clean: open, no EOF seen, nothing unread."""
        return self.transport is not None and not self.eof and not self.buf

    def abort(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.abort()
        self.eof = True

    def forget(self) -> None:
        """Close a connection whose event loop is not the running one.

        If that loop is alive it finishes the close when it next runs. If it is closed (an
        ``asyncio.run`` has returned), ``abort()`` cannot schedule the rest of its work, so
        the socket is closed here through asyncio's own finishing step; without it the
        socket would stay open until garbage collection (with a ResourceWarning).
        """
        transport = self.transport
        self.transport = None
        self.eof = True
        self.idle = False
        if transport is None:
            return
        with contextlib.suppress(RuntimeError):
            transport.abort()
        if not self.loop.is_closed():
            return
        # Python 3.10's SSL transport marks itself closed only after abort() got past the
        # loop, which is gone: mark it here, or it warns of an unclosed transport when
        # collected (3.11's new SSL layer marks itself first).
        app: Any = transport
        if getattr(app, "_closed", True) is False:
            app._closed = True
        raw: Any = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
        raw = raw or transport
        finish = getattr(raw, "_call_connection_lost", None)
        if finish is not None and getattr(raw, "_sock", None) is not None:
            with contextlib.suppress(Exception):  # a protocol callback needing the loop
                finish(None)

    def readable(self, timeout: float | None) -> asyncio.Future[bool]:
        """A future that becomes True on bytes or EOF, False if ``timeout`` passes first.

        Synchronous on purpose: awaiting the future directly saves a coroutine frame on
        the hot path.
        """
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        fut: asyncio.Future[bool] = self.loop.create_future()
        self.waiter = fut
        if timeout is None:
            self.deadline = None
        else:
            self._arm(self.loop.time() + timeout)
        return fut

    def _arm(self, deadline: float) -> None:
        # One lazy timer per connection instead of a call_later per wait: with the same
        # read timeout on every request, the armed timer is nearly always earlier than
        # the new deadline and stays; when it fires it re-arms for the current deadline.
        self.deadline = deadline
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        waiter = self.waiter
        deadline = self.deadline
        if waiter is None or waiter.done() or deadline is None:
            return  # nothing is waiting under a deadline; the next wait re-arms
        if self.loop.time() >= deadline:
            self.waiter = None
            waiter.set_result(False)
        else:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    async def drain(self, timeout: float | None, request: httpx.Request) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self.write_paused and not self.eof:
            fut: asyncio.Future[bool] = self.loop.create_future()
            self.drain_waiter = fut
            handle = None if timeout is None else self.loop.call_later(timeout, _expire, fut)
            try:
                ok = await fut
            finally:
                if handle is not None:
                    handle.cancel()
            if not ok:
                raise httpx.WriteTimeout("Timed out while sending the request", request=request)

    def take_body(self, reader: BodyReader) -> bytes:
        data = reader.take(self.buf)
        if self.read_paused and len(self.buf) <= _LOW_WATER and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        return data

    def read_failure(self, request: httpx.Request, what: str) -> httpx.TransportError:
        """The exception for a connection that ended while we were reading ``what``."""
        if self.error is not None:
            return httpx.ReadError(f"{what}: {self.error!r}", request=request)
        return httpx.RemoteProtocolError(what, request=request)

    # -- one request/response exchange -------------------------------------------------

    async def exchange(
        self,
        request: httpx.Request,
        data: bytes,
        body: bytes | None,
        stream: AsyncIterable[bytes] | None,
        framing: int | None,
        timeouts: Timeouts,
    ) -> httpx.Response:
        """Send ``data`` (+ ``body`` or ``stream``, whose framing is ``framing``: a length,
        or None for chunked), read the response.

        On success the connection is back in the pool, or owned by the returned response's
        stream. On any exception the caller still owns it (and must drop it). Raises
        :class:`Stale` only when the connection is known dead and nothing has been written
        to it: once a byte of the request may have reached the server, a failure is a
        transport error for the caller's retry policy to judge, never a silent resend.
        """
        transport = self.transport
        if transport is None or self.eof or self.buf:
            raise Stale
        transport.write(data)
        if body is not None:
            transport.write(body)
        if stream is not None:
            await self._send_stream(request, stream, framing, timeouts.write)
        elif self.write_paused:
            await self._drain_or_answer(request, timeouts.write)

        read_timeout = timeouts.read
        buf = self.buf
        start = interim = 0
        while True:  # read the head, skipping 1xx interim responses
            end = head_end(buf, start)
            if end < 0:
                if buf and obviously_not_a_response(buf):
                    raise httpx.RemoteProtocolError(
                        f"the server's answer is not HTTP/1.x: {bytes(buf[:16])!r}",
                        request=request,
                    )
                if len(buf) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("response head too large", request=request)
                if self.eof:
                    if not buf:
                        raise self.read_failure(
                            request, "Server disconnected without sending a response."
                        )
                    raise self.read_failure(
                        request, "peer closed connection in the middle of the response head"
                    )
                start = max(0, len(buf) - 2)
                if not await self.readable(read_timeout):
                    raise httpx.ReadTimeout("Timed out reading the response", request=request)
                continue
            raw_head = bytes(buf[:end])
            del buf[:end]
            try:
                head = parse_head(raw_head)
            except ProtocolViolation as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if head.status >= 200:
                break
            if head.status == 101:
                raise httpx.RemoteProtocolError(
                    "unexpected 101 Switching Protocols", request=request
                )
            interim += 1
            if interim > MAX_INTERIM:  # a peer that never gets to the answer
                raise httpx.RemoteProtocolError(
                    f"more than {MAX_INTERIM} interim (1xx) responses", request=request
                )
            start = 0

        reader: BodyReader
        if request.method == "HEAD":
            self.finish(head.keep_alive)
            return complete_response(head, b"", request)
        length = head.content_length
        if length is not None:
            if length <= PREREAD_LIMIT:
                while len(buf) < length:
                    if self.eof:
                        raise self.read_failure(
                            request,
                            "peer closed connection without sending complete message body: "
                            f"received {len(buf)} bytes, expected {length}",
                        )
                    if not await self.readable(read_timeout):
                        raise httpx.ReadTimeout("Timed out reading the response", request=request)
                if len(buf) == length:
                    content = bytes(buf)
                    buf.clear()
                else:
                    content = bytes(buf[:length])
                    del buf[:length]
                self.finish(head.keep_alive)
                return complete_response(head, content, request)
            reader = LengthReader(length)
            first = b""
        elif head.chunked:
            reader = ChunkedReader()
            try:
                first = self.take_body(reader)
            except ProtocolViolation as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if reader.done:  # the whole (small) chunked body was already here
                self.finish(head.keep_alive)
                return complete_response(head, first, request)
        else:
            reader = CloseDelimitedReader()
            first = b""
        body_stream = ResponseStream(self, reader, request, read_timeout, head.keep_alive, first)
        return httpx.Response(
            head.status,
            headers=make_headers(head.headers),
            stream=body_stream,
            request=request,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )

    def finish(self, keep_alive: bool) -> None:
        """The response is complete: back to the pool if the connection can be reused."""
        self.used += 1
        if keep_alive and self.usable():
            self.pool.release(self)
        else:
            self.pool.drop(self)

    async def _send_stream(
        self,
        request: httpx.Request,
        stream: AsyncIterable[bytes],
        framing: int | None,
        timeout: float | None,
    ) -> None:
        chunked = framing is None
        sent = 0
        transport = self.transport
        assert transport is not None
        async for chunk in stream:
            if not chunk:
                continue
            if self.eof:
                break  # the server hung up, perhaps with an early answer: go read it
            sent += len(chunk)
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                if framing is not None and sent > framing:
                    raise httpx.LocalProtocolError(
                        "Too much data for declared Content-Length", request=request
                    )
                transport.write(chunk)
            if self.write_paused:
                await self._drain_or_answer(request, timeout)
        else:
            if chunked:
                transport.write(b"0\r\n\r\n")
            elif framing is not None and sent != framing:
                raise httpx.LocalProtocolError(
                    "Too little data for declared Content-Length", request=request
                )
        if self.eof and not self.buf:
            raise httpx.WriteError(
                f"Connection lost while sending the request body: {self.error!r}",
                request=request,
            )

    async def _drain_or_answer(self, request: httpx.Request, timeout: float | None) -> None:
        await self.drain(timeout, request)
        if self.eof and not self.buf and not self.used:
            raise httpx.WriteError(
                f"Connection lost while sending the request: {self.error!r}", request=request
            )


# --------------------------------------------------------------------------------------
# Streaming response bodies


class ResponseStream(httpx.AsyncByteStream):
    """A response body read off its connection as the caller iterates.

    The connection goes back to the pool as soon as the body's last byte is read (and
    keep-alive allows it); ``aclose()`` before that closes the connection instead.
    """

    def __init__(
        self,
        conn: Connection,
        reader: BodyReader,
        request: httpx.Request,
        read_timeout: float | None,
        keep_alive: bool,
        first: bytes,
    ) -> None:
        self._conn: Connection | None = conn
        self._reader = reader
        self._request = request
        self._read_timeout = read_timeout
        self._keep_alive = keep_alive
        self._pending = first

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            data = await self._read(conn)
        except BaseException:
            self._conn = None
            conn.pool.drop(conn)
            raise
        if self._reader.done:
            self._conn = None
            conn.finish(self._keep_alive)
        if data:
            return data
        raise StopAsyncIteration

    async def _read(self, conn: Connection) -> bytes:
        reader = self._reader
        request = self._request
        while True:
            try:
                data = conn.take_body(reader)
                if data or reader.done:
                    return data
                if conn.eof:
                    reader.at_eof(conn.error is None)
                    return b""
            except ProtocolViolation as exc:
                if conn.error is not None:
                    raise httpx.ReadError(f"{exc}: {conn.error!r}", request=request) from None
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if not await conn.readable(self._read_timeout):
                raise httpx.ReadTimeout("Timed out reading the response body", request=request)

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            if self._reader.done:
                conn.finish(self._keep_alive)
            else:
                conn.pool.drop(conn)


#
