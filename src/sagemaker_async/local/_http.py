"""A small asyncio HTTP/1.1 server on h11, enough for AWS SDKs to talk to.

h11 ships with httpx, so the local endpoint needs no web framework. h11 does the parsing and
framing (keep-alive, chunked bodies, ``Expect: 100-continue``, which botocore sends for S3
uploads and otherwise waits a second for); this module only moves bytes between sockets and
h11, and hands each complete request to one async callable. Requests on one connection are
answered in order; connections are independent tasks, so slow requests never block others.

It defends itself, since anything on the machine can connect: before any body byte is read
(and before ``100 Continue``) the head goes to ``admit``, which answers early (too large,
not authenticated) or says how much body the route takes and who must see each byte; bodies
over a threshold are spooled to a temporary file, never held whole in memory; the head, the
body (per gap, and a minimum average rate) and an idle keep-alive connection each have a
deadline; past the connection cap a new connection gets a 503 and is closed;
``Content-Length`` together with ``Transfer-Encoding`` (a request-smuggling trick h11
tolerates) is refused, connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import IO, NoReturn

import h11

__all__ = ["Admission", "BodyRejected", "Head", "HttpServer", "Limits", "Request", "Response"]

logger = logging.getLogger("sagemaker_async.local")

_READ_SIZE = 65536
# Framing is h11's job: whatever the application says about it is replaced. (Connection
# passes: "Connection: close" is how a response asks h11 to end the connection.)
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "keep-alive"})


class _Parts:
    """What a head and a request share: the raw target and headers, and views of them."""

    __slots__ = ()
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    @property
    def path(self) -> str:
        return self.target.partition(b"?")[0].decode("latin-1")

    @property
    def query(self) -> str:
        return self.target.partition(b"?")[2].decode("latin-1")

    def header(self, name: str) -> bytes | None:
        """The first value of a header (``name`` lower-case), or None."""
        key = name.encode("ascii")
        for header_name, value in self.headers:
            if header_name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Head(_Parts):
    """A request line and headers, before any body byte is read."""

    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    content_length: int | None
    """None for a chunked body: its size is known only at its end."""


@dataclass(frozen=True, slots=True)
class Request(_Parts):
    """One complete request, exactly as received (the SigV4 check needs the raw parts)."""

    method: str
    target: bytes
    """Path and query as on the wire, still percent-encoded."""
    headers: tuple[tuple[bytes, bytes], ...]
    """Names lower-cased (h11 does that), values as sent, in order, repeats kept."""
    body: bytes = field(repr=False)
    """The body, or ``b""`` when it was spooled to ``body_file``."""
    body_file: IO[bytes] | None = field(default=None, repr=False, compare=False)
    """A large body, spooled (memory up to a threshold, then a temporary file), at 0."""
    body_size: int = 0

    def read_body(self) -> bytes:
        """The whole body, for the few routes that need it in memory (they are small)."""
        if self.body_file is None:
            return self.body
        self.body_file.seek(0)
        data = self.body_file.read()
        self.body_file.seek(0)
        return data


@dataclass(frozen=True, slots=True)
class Response:
    """What the application answers; the server adds Content-Length and Date."""

    status: int
    headers: Sequence[tuple[str, str | bytes]] = ()
    body: bytes = field(default=b"", repr=False)


Application = Callable[[Request], Awaitable[Response]]


class BodyRejected(Exception):
    """Raised by an ``Admission.on_body`` check: answer ``response`` and close."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True, slots=True)
class Admission:
    """How a route takes its body: at most ``max_body`` bytes, each shown to ``on_body``."""

    max_body: int
    too_large: Response
    """The answer when the body is larger (decided on Content-Length, or while reading)."""
    on_body: Callable[[bytes], bytes | None] | None = None
    """Sees every body byte in order; raises ``BodyRejected`` to stop the request. What it
    returns, if not None, is kept instead of the bytes received (a decoded body)."""
    on_end: Callable[[], None] | None = None
    """Called once the whole body is read; may raise ``BodyRejected`` too."""
    final_headers: Callable[[], tuple[tuple[bytes, bytes], ...]] | None = None
    """The headers the application sees instead of the received ones (after ``on_end``):
    those that described a body ``on_body`` decoded no longer do."""


Admit = Callable[[Head], "Admission | Response"]


def _default_admit(head: Head) -> Admission:
    return Admission(_DEFAULT_MAX_BODY, Response(413, [("Connection", "close")]))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one peer may cost the server. Timeouts are seconds without progress."""

    max_connections: int = 512
    header_timeout: float = 30.0
    """From a request's first byte (or the connection's start) to the end of its head."""
    body_timeout: float = 60.0
    """The longest wait for the next body bytes."""
    body_min_rate: float = 500.0
    """Bytes per second a body must average (0: no floor), as Apache's mod_reqtimeout
    ``body=20,MinRate=500``: the body's deadline starts ``body_rate_grace`` seconds after
    its first wait and moves 1 s later per ``body_min_rate`` bytes received. 500 B/s is
    far below any real client (a 1 Mbit/s uplink sends 250 times that, loopback a million
    times), yet a sender of a byte every 59 s, which the per-gap timeout alone lets hold a
    connection forever, is cut off after 20 s."""
    body_rate_grace: float = 20.0
    """Seconds a body gets before the rate counts (a slow start, a client computing a hash)."""
    body_max_seconds: float | None = None
    """The most any one body may take, however fast it averages; None: no cap (Apache's
    default)."""
    idle_timeout: float = 30.0
    """How long a kept-alive connection may wait for its next request."""
    max_head_bytes: int = 64 * 1024
    spool_threshold: int = 1024 * 1024
    """Bodies larger than this go to a temporary file, not memory."""


_DEFAULT_MAX_BODY = 1024 * 1024
_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 45\r\n\r\n"
    b"Too many connections to the local endpoint.\r\n"
)


def _fd_budget() -> int:
    """Connections this process can hold: half its descriptor limit, the rest for files,
    worker pipes and the store."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 1 << 30
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(16, soft // 2)


class _BodyRate:
    """mod_reqtimeout's MinRate: a body deadline that moves later as bytes arrive."""

    __slots__ = ("_cap", "_clock", "_rate", "_start")

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        start = clock()
        self._clock = clock
        self._rate = limits.body_min_rate
        self._start = start + limits.body_rate_grace
        maximum = limits.body_max_seconds
        self._cap = None if maximum is None else start + maximum

    def left(self, received: int) -> float:
        """Seconds until the deadline for a body of which ``received`` bytes are in."""
        deadline = self._start + received / self._rate
        if self._cap is not None:
            deadline = min(deadline, self._cap)
        return deadline - self._clock()


class _Closed(Exception):
    """End the connection now (a deadline passed, or the peer is gone)."""


def _internal_error() -> Response:
    body = json.dumps({"message": "An internal error occurred in the local endpoint."})
    return Response(
        500,
        [("x-amzn-ErrorType", "InternalFailure"), ("Content-Type", "application/json")],
        body.encode(),
    )


class HttpServer:
    """Serve ``application`` on ``host:port`` (port 0: a free one) until ``aclose``."""

    def __init__(
        self,
        application: Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admit: Admit = _default_admit,
        limits: Limits | None = None,
        cancel_if_gone: Callable[[Request], bool] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self._application = application
        # Requests (long polls) whose answer is abandoned when the client goes away.
        self._cancel_if_gone = cancel_if_gone
        self._admit = admit
        self._limits = limits or Limits()
        # What the body rate is measured on (the loop's clock); a seam for tests.
        self._clock = clock
        # Never more connections than file descriptors allow: past that, accept() fails
        # and asyncio logs a traceback per attempt instead of our clean 503.
        self._max_connections = min(self._limits.max_connections, _fd_budget())
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.refused_connections = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._port, backlog=1024
        )

    async def aclose(self) -> None:
        """Stop listening, drop every connection (idle or not) and wait for them to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            # Degrade cleanly: one short answer, then close; no reading, no traceback.
            self.refused_connections += 1
            with contextlib.suppress(Exception):
                writer.write(_SERVICE_UNAVAILABLE)
                writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, _Closed):
            pass  # the peer went away, or took too long; nothing to answer
        except asyncio.CancelledError:
            # aclose() cancels us. Ending quietly (not re-raising) matters: asyncio's stream
            # callback calls exception() on a cancelled connection task and logs the error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes)
        while True:
            try:
                event = await self._read_head(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                await self._refuse(conn, writer, Response(exc.error_status_hint))
                return
            if event is None:
                return
            head = Head(
                method=event.method.decode("ascii"),
                target=bytes(event.target),
                headers=tuple((bytes(n), bytes(v)) for n, v in event.headers),
                content_length=None,
            )
            lengths = [v for n, v in head.headers if n == b"content-length"]
            chunked = any(n == b"transfer-encoding" for n, _ in head.headers)
            if lengths and chunked:
                # Which one frames the body? Peers disagree, and that is how requests are
                # smuggled: refuse, and close, since the body's end is unknown.
                await self._refuse(conn, writer, Response(400))
                return
            head = Head(
                head.method, head.target, head.headers, int(lengths[0]) if lengths else None
            )
            if not chunked and not lengths:
                head = Head(head.method, head.target, head.headers, 0)
            try:
                decision = self._admit(head)
            except Exception:
                logger.exception("local endpoint: admitting %s %s failed", head.method, head.path)
                decision = _internal_error()
            if isinstance(decision, Response):
                await self._answer_unread(conn, writer, head, decision)
                return
            if head.content_length is not None and head.content_length > decision.max_body:
                await self._answer_unread(conn, writer, head, decision.too_large)
                return
            try:
                request = await self._read_body(conn, reader, writer, head, decision)
            except h11.RemoteProtocolError as exc:
                await self._refuse(conn, writer, Response(exc.error_status_hint))
                return
            except BodyRejected as rejected:
                await self._answer_unread(conn, writer, head, rejected.response)
                return
            if request is None:
                return
            answer: Response | None
            try:
                if self._cancel_if_gone is not None and self._cancel_if_gone(request):
                    answer = await self._unless_gone(request, conn, reader)
                else:
                    answer = await self._application(request)
            except Exception:
                logger.exception("local endpoint: %s %s failed", request.method, request.path)
                answer = _internal_error()
            finally:
                if request.body_file is not None:
                    request.body_file.close()
            if answer is None:
                return  # the client went away while we waited for the answer
            response = answer
            await self._write(conn, writer, request.method, response)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # one side asked to close, or the request body was not read
            conn.start_next_cycle()

    async def _unless_gone(
        self, request: Request, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> Response | None:
        """The application's answer, or None (cancelled) if the client closes first.

        A long poll (SQS ReceiveMessage) that nobody will read must not go on and take
        messages off the queue for a dead socket.
        """
        answer = asyncio.ensure_future(self._application(request))
        watch = asyncio.ensure_future(reader.read(_READ_SIZE))
        try:
            await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done():
                data = watch.result()
                if data:
                    conn.receive_data(data)  # a pipelined next request: h11 keeps it
                elif not answer.done():
                    return None
            return await answer
        finally:
            watch.cancel()
            answer.cancel()
            await asyncio.gather(answer, watch, return_exceptions=True)

    async def _answer_unread(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, head: Head, response: Response
    ) -> None:
        """Answer before (all of) the body was read; the connection cannot be reused."""
        headers = [*response.headers, ("Connection", "close")]
        answer = Response(response.status, headers, response.body)
        await self._write(conn, writer, head.method, answer)

    async def _refuse(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: Response
    ) -> None:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            headers = [*response.headers, ("Connection", "close")]
            with contextlib.suppress(h11.LocalProtocolError):
                await self._write(
                    conn, writer, "GET", Response(response.status, headers, response.body)
                )

    async def _receive(
        self, conn: h11.Connection, reader: asyncio.StreamReader, timeout: float
    ) -> int:
        try:
            data = await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
        except asyncio.TimeoutError:
            raise _Closed from None
        conn.receive_data(data)
        return len(data)

    async def _read_head(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> h11.Request | None:
        limits = self._limits
        loop = asyncio.get_running_loop()
        # Idle until the first byte, then the head must be complete within its deadline.
        deadline: float | None = None
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.Request):
                    return event
                return None  # ConnectionClosed: the client is done with this connection
            if deadline is None and conn.trailing_data[0]:
                deadline = loop.time() + limits.header_timeout
            if deadline is None:
                timeout = limits.idle_timeout
            else:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    await self._refuse(conn, writer, Response(408))
                    raise _Closed
            try:
                await self._receive(conn, reader, timeout)
            except _Closed:
                if deadline is not None:
                    await self._refuse(conn, writer, Response(408))
                raise
            if deadline is None:
                deadline = loop.time() + limits.header_timeout

    async def _read_body(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: Head,
        admission: Admission,
    ) -> Request | None:
        limits = self._limits
        clock = self._clock or asyncio.get_running_loop().time
        rate = _BodyRate(limits, clock) if limits.body_min_rate > 0 else None
        size = 0  # body bytes as framed by HTTP: what the limit counts
        stored = 0  # what is kept: the body, or what on_body decoded it to
        # Bytes off the socket (framing included, and what came with the head): the rate.
        received = len(conn.trailing_data[0])
        chunks: list[bytes] = []
        spool: IO[bytes] | None = None
        on_body = admission.on_body
        try:
            while True:
                part = conn.next_event()
                if part is h11.NEED_DATA:
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(
                            conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                        )
                        await writer.drain()
                    timeout = limits.body_timeout
                    if rate is not None:
                        left = rate.left(received)
                        if left <= 0:
                            await self._too_slow(conn, writer, head, received)
                        timeout = min(timeout, left)
                    try:
                        received += await self._receive(conn, reader, timeout)
                    except _Closed:
                        if rate is not None and rate.left(received) <= 0:
                            await self._too_slow(conn, writer, head, received)
                        await self._refuse(conn, writer, Response(408))
                        raise
                    if rate is not None and rate.left(received) <= 0:
                        await self._too_slow(conn, writer, head, received)
                    continue
                if isinstance(part, h11.Data):
                    data = bytes(part.data)
                    size += len(data)
                    if size > admission.max_body:
                        raise BodyRejected(admission.too_large)
                    if on_body is not None:
                        kept = on_body(data)
                        if kept is not None:
                            data = kept
                    stored += len(data)
                    if spool is not None:
                        spool.write(data)
                    elif stored > limits.spool_threshold:
                        # Closed by the server once the application has answered.
                        spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                            max_size=limits.spool_threshold
                        )
                        for chunk in chunks:
                            spool.write(chunk)
                        spool.write(data)
                        chunks = []
                    else:
                        chunks.append(data)
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    raise _Closed  # closed half-way through the body
            if admission.on_end is not None:
                admission.on_end()
            headers = head.headers
            if admission.final_headers is not None:
                headers = admission.final_headers()
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        if spool is not None:
            spool.seek(0)
        return Request(
            method=head.method,
            target=head.target,
            headers=headers,
            body=b"".join(chunks),
            body_file=spool,
            body_size=stored,
        )

    async def _too_slow(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, head: Head, size: int
    ) -> NoReturn:
        """A body below the minimum rate: 408, closed, one line in the log."""
        logger.warning(
            "local endpoint: %s %s: the request body came slower than %g bytes/s on average "
            "(%d bytes so far); answered 408 and closed the connection",
            head.method,
            head.path,
            self._limits.body_min_rate,
            size,
        )
        await self._refuse(conn, writer, Response(408))
        raise _Closed

    @staticmethod
    async def _write(
        conn: h11.Connection, writer: asyncio.StreamWriter, method: str, response: Response
    ) -> None:
        headers: list[tuple[bytes, bytes]] = []
        head = method == "HEAD"
        for name, value in response.headers:
            lname = name.lower()
            # A HEAD answer keeps the length of the body it would have had.
            if lname in _FRAMING_HEADERS and not (head and lname == "content-length"):
                continue
            raw = value if isinstance(value, bytes) else value.encode("utf-8")
            headers.append((name.encode("latin-1"), raw))
        if not head:
            headers.append((b"Content-Length", str(len(response.body)).encode("ascii")))
        headers.append((b"Date", formatdate(usegmt=True).encode("ascii")))
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        out = [conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))]
        if response.body and not head:
            out.append(conn.send(h11.Data(data=response.body)))
        out.append(conn.send(h11.EndOfMessage()))
        writer.write(b"".join(chunk for chunk in out if chunk))
        await writer.drain()
