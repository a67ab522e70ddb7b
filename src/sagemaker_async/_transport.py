"""A lean HTTP/1.1 transport for httpx, written for the hot path.

Why this exists: at 64 requests in flight, httpx's default transport (httpcore) spends
about 45% of its time in connection-pool bookkeeping, so an ``httpx.AsyncClient`` does half
of aiobotocore's throughput. This module keeps httpx as the *interface* (``httpx.Request``
in, ``httpx.Response`` out, usable as ``httpx.AsyncClient(transport=LeanTransport())``) and
replaces only the engine underneath:

* connections are ``asyncio.Protocol`` objects, not streams: one future per wait, no
  reader/writer tasks, no locks;
* the request head is serialized with one ``bytes.join``; the response head is parsed with
  ``bytes.find``/``partition`` (no h11, no C extension: zero extra dependencies);
* the pool is a LIFO list of idle connections per origin plus a deque of waiter futures.
  A released connection is handed straight to the oldest waiter; nothing runs in the
  background (idle expiry is checked lazily on acquire);
* small ``Content-Length`` bodies (<= 64 KiB) are read before returning, so the response
  comes back complete; larger or unknown-length bodies stream with read flow control.

Measured on the project's 2-core machine: h11 costs about 86 µs per exchange (reused
connection) against about 8 µs here for serializing the request and parsing the response
head; ``bench/transport_micro.py`` compares the whole transport with httpx's. Two shortcuts
touch httpx internals, each with a fallback should httpx change: a read body is stored as
``Response._content`` (skipping a decoder pass), and headers go in as the
``Headers._list`` triples the parser already built.

What it does not do: proxies and HTTP/2. :func:`proxy_configured` tells the caller when the
environment asks for a proxy, so it can fall back to httpx's own transport.

Errors are httpx's (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
``PoolTimeout``, ``RemoteProtocolError``, ``ReadError``, ``WriteError``,
``LocalProtocolError``), each with the request attached, so retry logic written against
``httpx.TransportError`` works the same whichever transport is used.

A pooled connection that the server closed while idle is discarded; a request written on a
reused connection that sees EOF or a reset before any response byte is retried once on a
fresh connection when its body can be replayed (bytes, not a consumed stream), as browsers
and urllib3 do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = ["LeanTransport", "PoolStats", "default_ssl_context", "proxy_configured"]

# --------------------------------------------------------------------------------------
# Tunables (module constants, not options: nothing here needs tuning per client).

_PREREAD_LIMIT: Final = 64 * 1024  # Content-Length bodies up to this are read eagerly
_HIGH_WATER: Final = 256 * 1024  # pause reading from the socket above this many bytes
_LOW_WATER: Final = 64 * 1024  # ... and resume below this
_MAX_HEAD: Final = 64 * 1024  # a response head (status line + headers) larger is an error
_MAX_CHUNK_LINE: Final = 4096  # a chunk-size line (with extensions) larger is an error
_JOIN_BODY_LIMIT: Final = 64 * 1024  # bytes bodies up to this go out in the head's write

_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
_NO_BODY_STATUS: Final = frozenset({204, 304})


# --------------------------------------------------------------------------------------
# TLS


_default_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The process-wide TLS context used when no ``ssl_context`` is given.

    Built once, lazily: ``ssl.create_default_context()`` costs about 18 ms and 1 MB, so a
    context per client (what httpx does by default) is waste. It trusts the system's CA
    store (which honours ``SSL_CERT_FILE``/``SSL_CERT_DIR``); only when the system offers
    no CA certificates at all does it load certifi's bundle (certifi comes with httpx).
    ALPN offers ``http/1.1`` only.
    """
    global _default_context
    if _default_context is None:
        context = ssl.create_default_context()
        if not _system_has_ca_certs(context):
            import certifi  # httpx depends on it; imported only in this rare case

            context.load_verify_locations(cafile=certifi.where())
        context.set_alpn_protocols(["http/1.1"])
        _default_context = context
    return _default_context


def _system_has_ca_certs(context: ssl.SSLContext) -> bool:
    if context.cert_store_stats()["x509_ca"]:
        return True
    # A CA *directory* is loaded lazily by OpenSSL, so the store may look empty.
    paths = ssl.get_default_verify_paths()
    capath = paths.capath
    return bool(capath and os.path.isdir(capath) and os.listdir(capath))


# --------------------------------------------------------------------------------------
# Proxies (we don't do them; we say when the environment wants one)


def proxy_configured(url: httpx.URL, env: Mapping[str, str]) -> bool:
    """Whether ``httpx.AsyncClient(trust_env=True)`` would send ``url`` through a proxy.

    The caller falls back to httpx's own transport when this is true, so it mirrors httpx
    0.28 exactly rather than any other reading of these variables: the environment is
    read as ``urllib.request.getproxies_environment`` reads it (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; lowercase names win; an empty lowercase
    value unsets; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set, as under CGI),
    then turned into httpx's mount patterns and matched most specific first. So in
    ``NO_PROXY``: ``*`` disables proxies; ``example.com`` covers it and its subdomains;
    ``.example.com`` only subdomains; IP addresses and ``localhost`` match exactly (no
    CIDR ranges); ``http://example.com`` matches that scheme and host only.
    """
    proxies = _env_proxies(env)
    mounts: dict[str, bool] = {}  # httpx mount pattern -> goes through a proxy
    for scheme in ("http", "https", "all"):
        if proxies.get(scheme):
            mounts[f"{scheme}://"] = True
    for entry in proxies.get("no", "").split(","):
        host = entry.strip()
        if host == "*":
            return False
        if not host:
            continue
        if "://" in host:
            mounts[host] = False
        elif _is_ip_literal(host, 4):
            mounts[f"all://{host}"] = False
        elif _is_ip_literal(host, 6):
            mounts[f"all://[{host}]"] = False
        elif host.lower() == "localhost":
            mounts[f"all://{host}"] = False
        else:
            mounts[f"all://*{host}"] = False
    patterns = sorted((_MountPattern(key), proxied) for key, proxied in mounts.items())
    for pattern, proxied in patterns:
        if pattern.matches(url):
            return proxied
    return False


def _env_proxies(env: Mapping[str, str]) -> dict[str, str]:
    proxies: dict[str, str] = {}
    for name, value in env.items():
        lname = name.lower()
        if value and lname.endswith("_proxy"):
            proxies[lname[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):
            lname = name.lower()
            if value:
                proxies[lname[:-6]] = value
            else:
                proxies.pop(lname[:-6], None)
    return proxies


def _is_ip_literal(text: str, version: int) -> bool:
    address = text.split("/")[0]
    try:
        if version == 4:
            ipaddress.IPv4Address(address)
        else:
            ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


class _MountPattern:
    """httpx's ``URLPattern`` (a private class there), re-stated: scheme, host, port."""

    def __init__(self, pattern: str) -> None:
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        if not self.host:
            self.regex: re.Pattern[str] | None = None
        elif self.host.startswith("*."):
            self.regex = re.compile(f"^.+\\.{re.escape(self.host[2:])}$")
        elif self.host.startswith("*"):
            self.regex = re.compile(f"^(.+\\.)?{re.escape(self.host[1:])}$")
        else:
            self.regex = re.compile(f"^{re.escape(self.host)}$")

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.regex is not None and not self.regex.match(url.host):
            return False
        return self.port is None or self.port == url.port

    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def __lt__(self, other: _MountPattern) -> bool:
        return self.priority() < other.priority()


# --------------------------------------------------------------------------------------
# Wire format: pure functions, no I/O


class _ProtocolViolation(Exception):
    """The peer sent something that is not HTTP/1.1; becomes httpx.RemoteProtocolError."""


@dataclass(slots=True)
class _Head:
    """A parsed response head and the framing it implies."""

    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes, bytes]]  # (name, lowercased name, value)
    content_length: int | None
    chunked: bool
    close_delimited: bool  # Transfer-Encoding other than chunked: body runs to EOF
    keep_alive: bool
    encoded: bool  # a Content-Encoding other than identity: httpx must decode the body


_FRAMING_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"content-encoding", b"connection"}
)


def _parse_head(data: bytes) -> _Head:
    """Parse ``status-line CRLF *(field-line CRLF)`` (the blank line already removed).

    Written for speed (about 0.5 µs a header): one pass builds the (name, lowercased
    name, value) triples httpx keeps and sets aside the few fields that decide framing.
    """
    lines = data.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        raise _ProtocolViolation(f"unsupported HTTP version {version[:16]!r}")
    if len(code) != 3 or not code.isdigit():
        raise _ProtocolViolation(f"malformed status line {lines[0][:64]!r}")
    del lines[0]
    fields: list[tuple[bytes, bytes, bytes]] = []
    append = fields.append
    framing: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        # No colon, an empty name, or whitespace around the name (which includes
        # obsolete line folding): all refused, as h11 does.
        if not sep or not name or name[-1] in b" \t" or name[0] in b" \t":
            raise _ProtocolViolation(f"malformed header line {line[:64]!r}")
        lname = name.lower()
        value = value.strip(b" \t")
        append((name, lname, value))
        if lname in _FRAMING_FIELDS:
            framing.append((lname, value))

    keep_alive = version == b"HTTP/1.1"
    content_length: int | None = None
    chunked = close_delimited = encoded = False
    for lname, value in framing:
        if lname == b"content-length":
            length = _parse_content_length(value)
            if content_length is not None and length != content_length:
                raise _ProtocolViolation("conflicting Content-Length headers")
            content_length = length
        elif lname == b"transfer-encoding":
            chunked = value.lower().rpartition(b",")[2].strip(b" \t") == b"chunked"
            close_delimited = not chunked
        elif lname == b"content-encoding":
            encoded = encoded or value.lower() not in (b"identity", b"")
        elif b"close" in [token.strip(b" \t") for token in value.lower().split(b",")]:
            keep_alive = False
    if chunked or close_delimited:
        # RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and such a message
        # may be an attack: don't reuse the connection after it.
        if content_length is not None or close_delimited:
            keep_alive = False
        content_length = None
    return _Head(
        version,
        int(code),
        reason,
        fields,
        content_length,
        chunked,
        close_delimited,
        keep_alive,
        encoded,
    )


def _fast_headers_work() -> bool:
    probe = httpx.Headers([(b"X-A", b"b")])
    return getattr(probe, "_list", None) == [(b"X-A", b"x-a", b"b")]


# httpx.Headers keeps (raw name, lowercased name, value) triples in ``_list``; building
# one from our triples skips its per-header normalization (about 1 µs a header). Checked
# once at import: if httpx ever changes this, we hand it plain pairs instead.
_FAST_HEADERS: Final = _fast_headers_work()


def _make_headers(fields: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    if _FAST_HEADERS:
        headers = httpx.Headers()
        headers._list = fields
        return headers
    return httpx.Headers([(name, value) for name, _, value in fields])


def _complete_response(head: _Head, content: bytes, request: httpx.Request) -> httpx.Response:
    """An ``httpx.Response`` whose body has been read, as ``Response(content=...)`` makes.

    ``Response(content=...)`` runs the body through httpx's decoder machinery on the spot
    (about 25 µs); for an identity-encoded body that is a copy, so we set the read content
    directly. (``_content`` is httpx's attribute: should it ever change, ``aread()`` still
    reads the body from the ``ByteStream``, a little slower.) Encoded bodies take the normal
    path so that httpx decodes them.
    """
    response = httpx.Response(
        head.status,
        headers=_make_headers(head.headers),
        stream=httpx.ByteStream(content),
        request=request,
        extensions={"http_version": head.version, "reason_phrase": head.reason},
    )
    if not head.encoded:
        response._content = content
    return response


def _parse_content_length(value: bytes) -> int:
    if value.isdigit():
        return int(value)
    values = {v.strip() for v in value.split(b",")}
    if len(values) == 1:
        (single,) = values
        if single.isdigit():
            return int(single)
    raise _ProtocolViolation(f"invalid Content-Length {value[:32]!r}")


def _serialize_head(request: httpx.Request, extra: bytes | None = None) -> bytes:
    """The request line and the request's headers (plus ``extra``, one more header line
    without its CRLF), each ending in CRLF, then the empty line."""
    lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
    append = lines.append
    for name, value in request.headers.raw:
        append(name + b": " + value)
    if extra is not None:
        append(extra)
    append(b"\r\n")
    head = b"\r\n".join(lines)
    # One C-level count instead of a check per header: a CR or LF inside a name or value
    # (header injection) shows up as extra line breaks.
    breaks = len(lines)  # the separators, plus the final bare CRLF
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise httpx.LocalProtocolError("Illegal header name or value", request=request)
    return head


class _BodyReader:
    """Takes body bytes out of a connection's buffer according to the message framing."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def take(self, buf: bytearray) -> bytes:
        """Consume what is available of the body from ``buf``; set ``done`` at its end."""
        raise NotImplementedError

    def at_eof(self) -> None:
        """The peer closed the connection: finish, or raise if the body is incomplete."""
        raise _ProtocolViolation("peer closed connection without sending complete message body")


class _LengthReader(_BodyReader):
    __slots__ = ("expected", "remaining")

    def __init__(self, length: int) -> None:
        self.done = length == 0
        self.expected = length
        self.remaining = length

    def take(self, buf: bytearray) -> bytes:
        remaining = self.remaining
        if len(buf) <= remaining:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:remaining])
            del buf[:remaining]
        self.remaining = remaining = remaining - len(data)
        if not remaining:
            self.done = True
        return data

    def at_eof(self) -> None:
        received = self.expected - self.remaining
        raise _ProtocolViolation(
            "peer closed connection without sending complete message body: "
            f"received {received} bytes, expected {self.expected}"
        )


class _CloseDelimitedReader(_BodyReader):
    __slots__ = ()

    def take(self, buf: bytearray) -> bytes:
        data = bytes(buf)
        buf.clear()
        return data

    def at_eof(self) -> None:
        self.done = True


class _ChunkedReader(_BodyReader):
    """RFC 9112 7.1 chunked decoding; chunk extensions and trailers are read and dropped."""

    __slots__ = ("remaining", "state")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self.done = False
        self.state = self._SIZE
        self.remaining = 0

    def take(self, buf: bytearray) -> bytes:
        out: list[bytes] = []
        while not self.done:
            state = self.state
            if state == self._DATA:
                n = self.remaining
                if len(buf) <= n:
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = bytes(buf[:n])
                    del buf[:n]
                if data:
                    out.append(data)
                self.remaining = n = n - len(data)
                if n:
                    break  # need more bytes
                self.state = self._DATA_END
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > _MAX_CHUNK_LINE or (state == self._DATA_END and len(buf) >= 2):
                    raise _ProtocolViolation("malformed chunked encoding")
                break
            line = bytes(buf[:end])
            del buf[: end + 2]
            if state == self._DATA_END:
                if line:
                    raise _ProtocolViolation("chunk data longer than its declared size")
                self.state = self._SIZE
            elif state == self._SIZE:
                size_text = line.partition(b";")[0].strip(b" \t")
                if not size_text or not _HEX_DIGITS.issuperset(size_text):
                    raise _ProtocolViolation(f"invalid chunk size line {line[:32]!r}")
                size = int(size_text, 16)
                if size:
                    self.remaining = size
                    self.state = self._DATA
                else:
                    self.state = self._TRAILER
            elif line:  # a trailer field: checked, then dropped (httpx has no place for it)
                if b":" not in line:
                    raise _ProtocolViolation(f"malformed trailer line {line[:32]!r}")
            else:
                self.done = True
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)


# --------------------------------------------------------------------------------------
# Connections


class _Stale(Exception):
    """A reused connection died before any response byte; the request may be resent."""


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a buffer, flags, and a future to wait on. No tasks."""

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

    def __init__(self, pool: _Pool) -> None:
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

    # -- asyncio.Protocol callbacks --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
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

    def take_body(self, reader: _BodyReader) -> bytes:
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
        timeouts: _Timeouts,
    ) -> httpx.Response:
        """Send ``data`` (+ ``body`` or ``stream``), read the response.

        On success the connection is back in the pool, or owned by the returned response's
        stream. On any exception the caller still owns it (and must drop it). Raises
        :class:`_Stale` only when the connection was reused, saw no response byte, and the
        request can be resent.
        """
        transport = self.transport
        if transport is None or self.eof or self.buf:
            if self.used:
                raise _Stale
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        transport.write(data)
        if body is not None:
            transport.write(body)
        if stream is not None:
            await self._send_stream(request, stream, timeouts.write)
        elif self.write_paused:
            await self._drain_or_answer(request, timeouts.write)

        read_timeout = timeouts.read
        buf = self.buf
        start = 0
        while True:  # read the head, skipping 1xx interim responses
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if self.eof:
                    if not buf:
                        if self.used and stream is None:
                            raise _Stale
                        raise self.read_failure(
                            request, "Server disconnected without sending a response."
                        )
                    raise httpx.RemoteProtocolError(
                        "peer closed connection in the middle of the response head",
                        request=request,
                    )
                if len(buf) > _MAX_HEAD:
                    raise httpx.RemoteProtocolError("response head too large", request=request)
                start = max(0, len(buf) - 3)
                if not await self.readable(read_timeout):
                    raise httpx.ReadTimeout("Timed out reading the response", request=request)
                continue
            raw_head = bytes(buf[:end])
            del buf[: end + 4]
            try:
                head = _parse_head(raw_head)
            except _ProtocolViolation as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if head.status >= 200:
                break
            if head.status == 101:
                raise httpx.RemoteProtocolError(
                    "unexpected 101 Switching Protocols", request=request
                )
            start = 0

        status = head.status
        reader: _BodyReader
        if status in _NO_BODY_STATUS or request.method == "HEAD":
            self.finish(head.keep_alive)
            return _complete_response(head, b"", request)
        length = head.content_length
        if length is not None:
            if length <= _PREREAD_LIMIT:
                while len(buf) < length:
                    if self.eof:
                        raise httpx.RemoteProtocolError(
                            "peer closed connection without sending complete message body: "
                            f"received {len(buf)} bytes, expected {length}",
                            request=request,
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
                return _complete_response(head, content, request)
            reader = _LengthReader(length)
            first = b""
        elif head.chunked:
            reader = _ChunkedReader()
            try:
                first = self.take_body(reader)
            except _ProtocolViolation as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from None
            if reader.done:  # the whole (small) chunked body was already here
                self.finish(head.keep_alive)
                return _complete_response(head, first, request)
        else:
            reader = _CloseDelimitedReader()
            first = b""
        body_stream = _ResponseStream(self, reader, request, read_timeout, head.keep_alive, first)
        return httpx.Response(
            status,
            headers=_make_headers(head.headers),
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
        self, request: httpx.Request, stream: AsyncIterable[bytes], timeout: float | None
    ) -> None:
        chunked = "content-length" not in request.headers
        expected = None if chunked else int(request.headers["content-length"])
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
                if expected is not None and sent > expected:
                    raise httpx.LocalProtocolError(
                        "Too much data for declared Content-Length", request=request
                    )
                transport.write(chunk)
            if self.write_paused:
                await self._drain_or_answer(request, timeout)
        else:
            if chunked:
                transport.write(b"0\r\n\r\n")
            elif expected is not None and sent != expected:
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


class _ResponseStream(httpx.AsyncByteStream):
    """A response body read off its connection as the caller iterates.

    The connection goes back to the pool as soon as the body's last byte is read (and
    keep-alive allows it); ``aclose()`` before that closes the connection instead.
    """

    def __init__(
        self,
        conn: _Connection,
        reader: _BodyReader,
        request: httpx.Request,
        read_timeout: float | None,
        keep_alive: bool,
        first: bytes,
    ) -> None:
        self._conn: _Connection | None = conn
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

    async def _read(self, conn: _Connection) -> bytes:
        reader = self._reader
        request = self._request
        while True:
            try:
                data = conn.take_body(reader)
                if data or reader.done:
                    return data
                if conn.eof:
                    reader.at_eof()
                    return b""
            except _ProtocolViolation as exc:
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


# --------------------------------------------------------------------------------------
# Pool


class _Slot:
    """Handed to a pool waiter instead of a connection: 'you may open one'."""


_SLOT: Final = _Slot()


class _Timeouts:
    """Connect/read/write/pool limits for one request (``None``: no limit)."""

    __slots__ = ("connect", "pool", "read", "write")

    def __init__(
        self, connect: float | None, read: float | None, write: float | None, pool: float | None
    ) -> None:
        self.connect = connect
        self.read = read
        self.write = write
        self.pool = pool


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of one origin's pool: connections open (or opening), idle, waiters."""

    open: int
    idle: int
    waiting: int


class _Pool:
    """Connections to one origin: an idle LIFO, a count of open slots, a waiter queue.

    Invariant: ``n_open`` counts every connection that is open or being opened and not yet
    given back; each one is given back exactly once (``release``, ``drop``, or
    ``discard_idle`` when the server closes it while idle).
    """

    __slots__ = (
        "closed",
        "conns",
        "host",
        "idle",
        "keepalive_expiry",
        "local_addr",
        "loop",
        "max_connections",
        "max_keepalive",
        "n_open",
        "port",
        "ssl",
        "waiters",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
        local_addr: tuple[str, int] | None,
    ) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self.local_addr = local_addr
        self.idle: list[_Connection] = []
        self.conns: set[_Connection] = set()
        self.n_open = 0
        self.waiters: deque[asyncio.Future[_Connection | _Slot | None]] = deque()
        self.closed = False

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl is not None else 'http'}://{host}:{self.port}"

    def stats(self) -> PoolStats:
        return PoolStats(self.n_open, len(self.idle), len(self.waiters))

    def take_idle(self) -> _Connection | None:
        """The most recently used idle connection that is still good, if any."""
        idle = self.idle
        if not idle:
            return None
        expired = self.loop.time() - self.keepalive_expiry
        while idle and idle[0].idle_since <= expired:  # the oldest first
            self._close_popped(idle.pop(0))
        while idle:
            conn = idle.pop()
            conn.idle = False
            if conn.usable():
                return conn
            self._close_popped(conn)
        return None

    async def acquire(self, timeouts: _Timeouts, request: httpx.Request) -> _Connection:
        """A connection, when there is no idle one: open one, or wait for one."""
        conn = self.take_idle()
        if conn is not None:
            return conn
        if self.n_open < self.max_connections:
            self.n_open += 1
            return await self.connect(timeouts.connect, request)
        got = await self._wait(timeouts.pool, request)
        if isinstance(got, _Connection):
            return got
        return await self.connect(timeouts.connect, request)

    async def _wait(self, timeout: float | None, request: httpx.Request) -> _Connection | _Slot:
        fut: asyncio.Future[_Connection | _Slot | None] = self.loop.create_future()
        self.waiters.append(fut)
        handle = None
        if timeout is not None:
            handle = self.loop.call_later(timeout, self._expire_waiter, fut)
        try:
            got = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                got = fut.result()  # handed over just as we were cancelled: pass it on
                if got is not None:
                    self._give_back(got)
            else:
                self._forget(fut)
            raise
        finally:
            if handle is not None:
                handle.cancel()
        if got is None:
            raise httpx.PoolTimeout(
                "Timed out waiting for a connection from the pool", request=request
            )
        return got

    def _expire_waiter(self, fut: asyncio.Future[_Connection | _Slot | None]) -> None:
        if not fut.done():
            self._forget(fut)
            fut.set_result(None)

    def _forget(self, fut: asyncio.Future[_Connection | _Slot | None]) -> None:
        if fut in self.waiters:
            self.waiters.remove(fut)

    def _give_back(self, got: _Connection | _Slot) -> None:
        if isinstance(got, _Connection):
            self.release(got)
        else:
            self._release_slot()

    async def connect(self, timeout: float | None, request: httpx.Request) -> _Connection:
        """Open a connection in a slot already counted in ``n_open``."""
        conn = _Connection(self)
        try:
            if self.closed:
                raise RuntimeError("LeanTransport is closed")
            coro = self.loop.create_connection(
                lambda: conn,
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None,
                local_addr=self.local_addr,
            )
            if timeout is None:
                await coro
            else:
                await asyncio.wait_for(coro, timeout)
            if self.ssl is not None:
                _check_alpn(conn)
        except BaseException as exc:
            conn.abort()
            self._release_slot()
            if isinstance(exc, asyncio.TimeoutError):
                raise httpx.ConnectTimeout(
                    f"Timed out connecting to {self.host}:{self.port}", request=request
                ) from None
            if isinstance(exc, OSError):
                raise httpx.ConnectError(
                    f"Cannot connect to {self.host}:{self.port}: {exc}", request=request
                ) from exc
            raise
        if self.closed:  # closed while we were connecting
            conn.abort()
            self._release_slot()
            raise RuntimeError("LeanTransport is closed")
        self.conns.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """A connection finished an exchange cleanly: hand it on, park it, or close it."""
        if self.closed:
            self.drop(conn)
            return
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        if len(self.idle) >= self.max_keepalive:
            self.drop(conn)
            return
        conn.idle = True
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    def drop(self, conn: _Connection) -> None:
        """Close a connection that is in use (not idle) and free its slot."""
        conn.abort()
        self.conns.discard(conn)
        self._release_slot()

    def discard_idle(self, conn: _Connection) -> None:
        """The server closed (or spoke on) an idle connection."""
        conn.idle = False
        try:
            self.idle.remove(conn)
        except ValueError:
            return
        self._close_popped(conn)

    def _close_popped(self, conn: _Connection) -> None:
        conn.idle = False
        conn.abort()
        self.conns.discard(conn)
        self._release_slot()

    def _release_slot(self) -> None:
        if self.closed:
            return  # close() already zeroed the count
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(_SLOT)  # the slot passes to the waiter: n_open unchanged
                return
        self.n_open -= 1

    def close(self) -> None:
        self.closed = True
        for conn in list(self.conns):
            conn.idle = False
            conn.error = ConnectionAbortedError("LeanTransport.aclose() closed the connection")
            conn.abort()
        self.conns.clear()
        self.idle.clear()
        for fut in self.waiters:
            if not fut.done():
                fut.set_exception(RuntimeError("LeanTransport is closed"))
        self.waiters.clear()
        self.n_open = 0


def _check_alpn(conn: _Connection) -> None:
    transport = conn.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        protocol = ssl_object.selected_alpn_protocol()
        if protocol not in (None, "http/1.1"):
            raise ssl.SSLError(f"server chose ALPN protocol {protocol!r}; only http/1.1 is spoken")


# --------------------------------------------------------------------------------------
# The transport


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with a keep-alive pool per origin (scheme, host, port).

    Timeouts in ``request.extensions["timeout"]`` (what ``httpx.AsyncClient`` sets) take
    precedence over the constructor's defaults; ``None`` means no limit. Limits are per
    origin. ``ssl_context=None`` uses :func:`default_ssl_context` (one per process). A
    user-supplied context is used as given; if it lets the server pick a protocol other
    than ``http/1.1`` by ALPN, the connection fails with ``httpx.ConnectError``.

    The transport is bound to the event loop it is first used in. It does not do proxies
    or HTTP/2 (see :func:`proxy_configured`).
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_keepalive_connections: int = 256,
        keepalive_expiry: float = 30.0,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 60.0,
        write_timeout: float | None = 60.0,
        pool_timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        local_address: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_keepalive_connections < 0:
            raise ValueError("max_keepalive_connections must not be negative")
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._defaults = _Timeouts(connect_timeout, read_timeout, write_timeout, pool_timeout)
        self._ssl_context = ssl_context
        self._local_addr = None if local_address is None else (local_address, 0)
        self._pools: dict[tuple[bytes, bytes, int | None], _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def stats(self) -> dict[str, PoolStats]:
        """Per-origin pool counts, keyed ``"scheme://host:port"`` (for tests and debugging)."""
        return {pool.origin: pool.stats() for pool in self._pools.values()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("LeanTransport is closed; create a new transport to send more")
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._new_pool(key, request)
        elif pool.loop is not asyncio.get_running_loop():
            raise RuntimeError("LeanTransport is bound to the event loop it was first used in")

        timeouts = self._defaults
        overrides = request.extensions.get("timeout")
        if overrides:
            timeouts = _Timeouts(
                overrides.get("connect", timeouts.connect),
                overrides.get("read", timeouts.read),
                overrides.get("write", timeouts.write),
                overrides.get("pool", timeouts.pool),
            )

        # The request body: bytes (replayable) or a stream (sent once, never buffered).
        stream: AsyncIterable[bytes] | None = None
        body: bytes | None = None
        try:
            content = request.content
        except httpx.RequestNotRead:
            stream = _request_stream(request)
            extra = None if _has_framing(request) else b"Transfer-Encoding: chunked"
            data = _serialize_head(request, extra)
        else:
            if content and "content-length" not in request.headers:
                data = _serialize_head(request, b"Content-Length: %d" % len(content))
            else:
                data = _serialize_head(request)
            if len(content) <= _JOIN_BODY_LIMIT:
                if content:
                    data += content
            else:
                body = content

        conn = pool.take_idle() or await pool.acquire(timeouts, request)
        retried = False
        while True:
            try:
                return await conn.exchange(request, data, body, stream, timeouts)
            except _Stale:
                pass
            except BaseException:
                pool.drop(conn)
                raise
            # A reused connection died before answering: resend once on a fresh one,
            # in the same pool slot.
            if retried:  # pragma: no cover - a fresh connection never raises _Stale
                pool.drop(conn)
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
            retried = True
            conn.abort()
            pool.conns.discard(conn)
            conn = await pool.connect(timeouts.connect, request)

    def _new_pool(self, key: tuple[bytes, bytes, int | None], request: httpx.Request) -> _Pool:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("LeanTransport is bound to the event loop it was first used in")
        scheme, raw_host, port = key
        if scheme == b"https":
            context = self._ssl_context or default_ssl_context()
            default_port = 443
        elif scheme == b"http":
            context = None
            default_port = 80
        else:
            raise httpx.UnsupportedProtocol(
                f"LeanTransport speaks http and https, not {scheme.decode(errors='replace')!r}",
                request=request,
            )
        if not raw_host:
            raise httpx.UnsupportedProtocol("Request URL has no host", request=request)
        pool = _Pool(
            loop,
            raw_host.decode("ascii"),
            port or default_port,
            context,
            max_connections=self._max_connections,
            max_keepalive=self._max_keepalive,
            keepalive_expiry=self._keepalive_expiry,
            local_addr=self._local_addr,
        )
        self._pools[key] = pool
        return pool

    async def aclose(self) -> None:
        """Close every connection; later requests raise ``RuntimeError``."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()


def _has_framing(request: httpx.Request) -> bool:
    headers = request.headers
    return "content-length" in headers or "transfer-encoding" in headers


def _request_stream(request: httpx.Request) -> AsyncIterable[bytes]:
    stream: Any = request.stream
    if not isinstance(stream, AsyncIterable):
        raise TypeError("LeanTransport needs an async request stream (httpx.AsyncClient)")
    return stream
