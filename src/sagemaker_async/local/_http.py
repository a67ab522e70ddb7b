"""A small asyncio HTTP/1.1 server on h11, enough for AWS SDKs to talk to.

h11 ships with httpx, so the local endpoint needs no web framework. h11 does the parsing and
framing (keep-alive, chunked bodies, ``Expect: 100-continue``, which botocore sends for S3
uploads and otherwise waits a second for); this module only moves bytes between sockets and
h11, and hands each complete request to one async callable. Requests on one connection are
answered in order; connections are independent tasks, so slow requests never block others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

import h11

__all__ = ["HttpServer", "Request", "Response"]

logger = logging.getLogger("sagemaker_async.local")

_READ_SIZE = 65536
# Framing is h11's job: whatever the application says about it is replaced. (Connection
# passes: "Connection: close" is how a response asks h11 to end the connection.)
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "keep-alive"})


@dataclass(frozen=True, slots=True)
class Request:
    """One complete request, exactly as received (the SigV4 check needs the raw parts)."""

    method: str
    target: bytes
    """Path and query as on the wire, still percent-encoded."""
    headers: tuple[tuple[bytes, bytes], ...]
    """Names lower-cased (h11 does that), values as sent, in order, repeats kept."""
    body: bytes = field(repr=False)

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
class Response:
    """What the application answers; the server adds Content-Length and Date."""

    status: int
    headers: Sequence[tuple[str, str | bytes]] = ()
    body: bytes = field(default=b"", repr=False)


Application = Callable[[Request], Awaitable[Response]]


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
        cancel_if_gone: Callable[[Request], bool] | None = None,
    ):
        self._application = application
        # Requests (long polls) whose answer is abandoned when the client goes away.
        self._cancel_if_gone = cancel_if_gone
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self._host, self._port)

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
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away; nothing to answer
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
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                request = await self._read_request(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await self._write(
                        conn, writer, "GET", Response(status, [("Connection", "close")])
                    )
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

    @staticmethod
    async def _next_event(
        conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if conn.they_are_waiting_for_100_continue:
                writer.write(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                )
                await writer.drain()
            conn.receive_data(await reader.read(_READ_SIZE))

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        event = await self._next_event(conn, reader, writer)
        if not isinstance(event, h11.Request):
            return None  # ConnectionClosed: the client is done with this connection
        chunks: list[bytes] = []
        while True:
            part = await self._next_event(conn, reader, writer)
            if isinstance(part, h11.Data):
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None  # closed half-way through the body
        return Request(
            method=event.method.decode("ascii"),
            target=bytes(event.target),
            headers=tuple((bytes(n), bytes(v)) for n, v in event.headers),
            body=b"".join(chunks),
        )

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
