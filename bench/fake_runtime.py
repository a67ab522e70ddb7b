"""A fast fake SageMaker Runtime for the benchmark: hand-written HTTP/1.1 on asyncio.

Run it in its own process::

    python -m bench.fake_runtime [--host 127.0.0.1] [--port 0] [--no-require-auth]

It prints the port it listens on (one line on stdout) once it accepts connections.

It answers ``POST /endpoints/{name}/async-invocations`` the way the service does
(see shared/docs/wire-format.md): ``202 Accepted`` with ``x-amzn-RequestId``,
``X-Amzn-SageMaker-OutputLocation``, ``X-Amzn-SageMaker-FailureLocation``,
``Content-Type: application/json`` and the body ``{"InferenceId": "..."}``, echoing the
request's ``X-Amzn-SageMaker-Inference-Id`` (or a generated id when there is none) so a
client can check that every answer is the answer to its own request.

It does not verify signatures; by default it does insist that an ``Authorization``
header is present (``403`` otherwise). ``GET /_stats`` returns its counters as JSON
(requests answered, connections accepted, requests refused, the server's CPU time),
which the orchestrator reads between runs to see how many connections each client opened
and how much CPU the server spent per request.

The server is deliberately lean so that it is not the bottleneck: one ``data_received``
parses the head with ``bytes.find`` on a lower-cased copy, no per-request allocation
beyond the response bytes. Keep-alive is the default; ``Connection: close`` is honoured.
Request bodies are read by ``Content-Length`` (and ``Transfer-Encoding: chunked`` is
understood, for completeness) and discarded. Requests may arrive back to back in one
read (pipelining is not expected, but it is handled in order).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from email.utils import formatdate

ASYNC_SUFFIX = b"/async-invocations"
ENDPOINTS_PREFIX = b"/endpoints/"
H_CONTENT_LENGTH = b"\r\ncontent-length:"
H_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
H_CONNECTION = b"\r\nconnection:"
H_AUTHORIZATION = b"\r\nauthorization:"
H_INFERENCE_ID = b"\r\nx-amzn-sagemaker-inference-id:"
SAFE_ID_BYTES = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}

MAX_HEAD = 64 * 1024


class Stats:
    """Counters shared by all connections of the server."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.open_connections = 0
        self.refused = 0
        self.generated_ids = 0

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "connections": self.connections,
                "open_connections": self.open_connections,
                "refused": self.refused,
                "generated_ids": self.generated_ids,
                "cpu_s": time.process_time(),
            }
        ).encode()


class DateCache:
    """An HTTP ``Date`` header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


STATS = Stats()
DATE = DateCache()
# Request ids look like UUIDs: a random per-process prefix and a counter.
_RID_PREFIX = str(uuid.uuid4())[:24].encode()


def _header_value(head: bytes, lower: bytes, name: bytes) -> bytes | None:
    """The value of the first header ``name`` (given as b"\\r\\nname:"), stripped."""
    i = lower.find(name)
    if i < 0:
        return None
    start = i + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def _json_id(value: bytes) -> bytes:
    if all(b in SAFE_ID_BYTES for b in value):
        return b'"' + value + b'"'
    return json.dumps(value.decode("utf-8", "replace")).encode()


def _response(status: bytes, headers: list[tuple[bytes, bytes]], body: bytes, close: bool) -> bytes:
    lines = [b"HTTP/1.1 " + status, b"Date: " + DATE.get()]
    lines.extend(k + b": " + v for k, v in headers)
    lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _error(status: bytes, code: bytes, message: str, close: bool) -> bytes:
    STATS.refused += 1
    body = json.dumps({"__type": code.decode(), "message": message}).encode()
    headers = [(b"x-amzn-ErrorType", code), (b"Content-Type", b"application/json")]
    return _response(status, headers, body, close)


def answer(head: bytes, lower: bytes, require_auth: bool, close: bool) -> bytes:
    """The response bytes for one request (``head`` without the final CRLFCRLF)."""
    sp1 = head.find(b" ")
    sp2 = head.find(b" ", sp1 + 1)
    eol = head.find(b"\r\n")
    if sp1 < 0 or sp2 < 0 or (0 <= eol < sp2):
        return _error(b"400 Bad Request", b"BadRequest", "malformed request line", True)
    method = head[:sp1]
    path = head[sp1 + 1 : sp2]
    if method == b"POST" and path.startswith(ENDPOINTS_PREFIX) and path.endswith(ASYNC_SUFFIX):
        if require_auth and H_AUTHORIZATION not in lower:
            return _error(
                b"403 Forbidden",
                b"MissingAuthenticationTokenException",
                "Missing Authentication Token",
                close,
            )
        STATS.requests += 1
        iid = _header_value(head, lower, H_INFERENCE_ID)
        if not iid:
            STATS.generated_ids += 1
            iid = str(uuid.uuid4()).encode()
        rid = _RID_PREFIX + b"%012x" % STATS.requests
        body = b'{"InferenceId": ' + _json_id(iid) + b"}"
        # The output keys use a hash-free, printable form of the id (it is only echoed).
        key = iid if all(b in SAFE_ID_BYTES for b in iid) else rid
        headers = [
            (b"x-amzn-RequestId", rid),
            (b"X-Amzn-SageMaker-OutputLocation", b"s3://bench-output/results/" + key + b".out"),
            (
                b"X-Amzn-SageMaker-FailureLocation",
                b"s3://bench-output/failures/" + key + b"-error.out",
            ),
            (b"Content-Type", b"application/json"),
        ]
        return _response(b"202 Accepted", headers, body, close)
    if method == b"GET" and path == b"/_stats":
        return _response(
            b"200 OK", [(b"Content-Type", b"application/json")], STATS.as_json(), close
        )
    return _error(b"404 Not Found", b"UnknownOperationException", "unknown operation", close)


class _NeedMore(Exception):
    pass


def _chunked_length(buf: bytes, start: int) -> int:
    """The number of bytes a chunked body starting at ``start`` takes (raises _NeedMore)."""
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            raise _NeedMore
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            # Trailers (usually none), then an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise _NeedMore
                if eol == pos:
                    return eol + 2 - start
                pos = eol + 2
        pos += size + 2
        if pos > len(buf):
            raise _NeedMore


class RuntimeProtocol(asyncio.Protocol):
    """One client connection: parse requests as they arrive, answer each in order."""

    def __init__(self, require_auth: bool) -> None:
        self.require_auth = require_auth
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        STATS.connections += 1
        STATS.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        STATS.open_connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        close = False
        while buf:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    out.append(_error(b"431 Too Large", b"BadRequest", "head too large", True))
                    close = True
                    buf = b""
                break
            head = buf[:end]
            lower = head.lower()
            body_start = end + 4
            try:
                te = _header_value(head, lower, H_TRANSFER_ENCODING)
                if te is not None and te.lower() == b"chunked":
                    total = body_start + _chunked_length(buf, body_start)
                else:
                    cl = _header_value(head, lower, H_CONTENT_LENGTH)
                    total = body_start + (int(cl) if cl else 0)
                    if total > len(buf):
                        raise _NeedMore
            except _NeedMore:
                break
            except ValueError:
                out.append(_error(b"400 Bad Request", b"BadRequest", "bad body framing", True))
                close = True
                buf = b""
                break
            buf = buf[total:]
            conn = _header_value(head, lower, H_CONNECTION)
            close = conn is not None and conn.lower() == b"close"
            out.append(answer(head, lower, self.require_auth, close))
            if close:
                buf = b""
                break
        self.buf = buf
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()


async def serve(host: str, port: int, require_auth: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RuntimeProtocol(require_auth), host, port, backlog=4096, reuse_address=True
    )
    sock_port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(sock_port, flush=True)
    async with server:
        await stop.wait()
    print(f"fake_runtime: {STATS.as_json().decode()}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--no-require-auth",
        dest="require_auth",
        action="store_false",
        help="accept requests without an Authorization header",
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.require_auth))


if __name__ == "__main__":
    main()
