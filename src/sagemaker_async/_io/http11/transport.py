"""The httpx transport over our pools: ``httpx.Request`` in, ``httpx.Response`` out.

Errors are httpx's (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
``PoolTimeout``, ``RemoteProtocolError``, ``ReadError``, ``WriteError``,
``LocalProtocolError``), each with the request attached, so retry logic written against
``httpx.TransportError`` works the same whichever transport is used.

Resends are honest: a request is sent again by the transport only when the connection it
was about to use is known dead and not one byte of the request was written to it. Any
failure after that is raised, for the caller's retry policy to count, log and charge.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable
from typing import Any, Final

import httpx

from .codec import LocalViolation, serialize_request_head
from .connection import Stale
from .pool import Pool, PoolStats, Timeouts
from .tls import default_ssl_context

__all__ = ["LeanTransport"]

_JOIN_BODY_LIMIT: Final = 64 * 1024  # bytes bodies up to this go out in the head's write


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio with a keep-alive pool per origin (scheme, host, port).

    Timeouts in ``request.extensions["timeout"]`` (what ``httpx.AsyncClient`` sets) take
    precedence over the constructor's defaults; ``None`` means no limit. Limits are per
    origin. ``ssl_context=None`` uses :func:`default_ssl_context` (one per process). A
    user-supplied context is used as given; if it lets the server pick a protocol other
    than ``http/1.1`` by ALPN, the connection fails with ``httpx.ConnectError``.

    Usable from any event loop, one at a time: when a request arrives on a loop other than
    the one the pools were made in (a second ``asyncio.run``, a test's fresh loop), the old
    pools' connections are closed and new ones are made. It does not do proxies or HTTP/2
    (see :func:`proxy_configured`).
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
        self._defaults = Timeouts(connect_timeout, read_timeout, write_timeout, pool_timeout)
        self._ssl_context = ssl_context
        self._local_addr = None if local_address is None else (local_address, 0)
        self._pools: dict[tuple[bytes, bytes, int | None], Pool] = {}
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
        if pool is None or pool.loop is not asyncio.get_running_loop():
            pool = self._new_pool(key, request)

        timeouts = self._defaults
        overrides = request.extensions.get("timeout")
        if overrides:
            timeouts = Timeouts(
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
            content = b""
            length = None
        else:
            length = len(content)
        try:
            # httpcore's "target" extension: the request target exactly as given, which a
            # URL cannot always hold (httpx.URL removes dot segments).
            target = request.extensions.get("target") or request.url.raw_path
            data, framing = serialize_request_head(
                request.method.encode("ascii"), target, request.headers.raw, length
            )
        except (LocalViolation, UnicodeEncodeError) as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        if content:
            if framing is None:  # the caller asked for chunked framing of a bytes body
                content = b"%x\r\n%b\r\n0\r\n\r\n" % (len(content), content)
            if len(content) <= _JOIN_BODY_LIMIT:
                data += content
            else:
                body = content
        elif framing is None and stream is None:
            data += b"0\r\n\r\n"

        conn = pool.take_idle() or await pool.acquire(timeouts, request)
        retried = False
        while True:
            try:
                return await conn.exchange(request, data, body, stream, framing, timeouts)
            except Stale:
                pass
            except BaseException:
                pool.drop(conn)
                raise
            # The connection was dead before we wrote a byte: nobody has seen this request,
            # so it may go out on a fresh connection, in the same pool slot. Once only.
            if retried:
                pool.drop(conn)
                raise httpx.ConnectError(
                    "the server closed each new connection before the request was sent",
                    request=request,
                )
            retried = True
            conn.abort()
            pool.conns.discard(conn)
            conn = await pool.connect(timeouts.connect, request)

    def _new_pool(self, key: tuple[bytes, bytes, int | None], request: httpx.Request) -> Pool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop: the connections of the old one cannot be used from here.
            for old in self._pools.values():
                old.abandon()
            self._pools.clear()
            self._loop = loop
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
        pool = Pool(
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
        loop = asyncio.get_running_loop()
        for pool in self._pools.values():
            if pool.loop is loop:
                pool.close()
            else:
                pool.abandon()


def _request_stream(request: httpx.Request) -> AsyncIterable[bytes]:
    stream: Any = request.stream
    if not isinstance(stream, AsyncIterable):
        raise TypeError("LeanTransport needs an async request stream (httpx.AsyncClient)")
    return stream
