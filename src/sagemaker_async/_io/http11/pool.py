"""Connections to one origin: an idle LIFO list, a count of open slots, a waiter queue.

A released connection is handed straight to the oldest waiter; nothing runs in the
background (idle expiry is checked lazily on acquire). A pool belongs to one event loop:
:meth:`Pool.abandon` lets go of one whose loop has ended.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Final

import httpx

from .connection import Connection
from .tls import check_alpn

__all__ = ["Pool", "PoolStats", "Timeouts"]


class _Slot:
    """Handed to a pool waiter instead of a connection: 'you may open one'."""


_SLOT: Final = _Slot()


class Timeouts:
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


class Pool:
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
        self.idle: list[Connection] = []
        self.conns: set[Connection] = set()
        self.n_open = 0
        self.waiters: deque[asyncio.Future[Connection | _Slot | None]] = deque()
        self.closed = False

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl is not None else 'http'}://{host}:{self.port}"

    def stats(self) -> PoolStats:
        return PoolStats(self.n_open, len(self.idle), len(self.waiters))

    def take_idle(self) -> Connection | None:
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

    async def acquire(self, timeouts: Timeouts, request: httpx.Request) -> Connection:
        """A connection, when there is no idle one: open one, or wait for one."""
        conn = self.take_idle()
        if conn is not None:
            return conn
        if self.n_open < self.max_connections:
            self.n_open += 1
            return await self.connect(timeouts.connect, request)
        got = await self._wait(timeouts.pool, request)
        if isinstance(got, Connection):
            return got
        return await self.connect(timeouts.connect, request)

    async def _wait(self, timeout: float | None, request: httpx.Request) -> Connection | _Slot:
        fut: asyncio.Future[Connection | _Slot | None] = self.loop.create_future()
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

    def _expire_waiter(self, fut: asyncio.Future[Connection | _Slot | None]) -> None:
        if not fut.done():
            self._forget(fut)
            fut.set_result(None)

    def _forget(self, fut: asyncio.Future[Connection | _Slot | None]) -> None:
        if fut in self.waiters:
            self.waiters.remove(fut)

    def _give_back(self, got: Connection | _Slot) -> None:
        if isinstance(got, Connection):
            self.release(got)
        else:
            self._release_slot()

    async def connect(self, timeout: float | None, request: httpx.Request) -> Connection:
        """Open a connection in a slot already counted in ``n_open``."""
        conn = Connection(self)
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
                check_alpn(conn.transport)
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

    def release(self, conn: Connection) -> None:
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

    def drop(self, conn: Connection) -> None:
        """Close a connection that is in use (not idle) and free its slot."""
        conn.abort()
        self.conns.discard(conn)
        self._release_slot()

    def discard_idle(self, conn: Connection) -> None:
        """The server closed (or spoke on) an idle connection."""
        conn.idle = False
        try:
            self.idle.remove(conn)
        except ValueError:
            return
        self._close_popped(conn)

    def _close_popped(self, conn: Connection) -> None:
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

    def abandon(self) -> None:
        """Let go of a pool whose event loop is no longer the running one: its connections
        are closed without that loop, its waiters (tasks of that loop) are left alone."""
        self.closed = True
        for conn in list(self.conns):
            conn.forget()
        self.conns.clear()
        self.idle.clear()
        self.waiters.clear()
        self.n_open = 0
