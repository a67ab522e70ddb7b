"""Reading an S3 object's body: whole (with a size cap), as a stream, or into a file.

Built on httpx's public streaming shape only (a response whose body is unread,
``aiter_raw``, ``aclose``), so any httpx transport serves: ours, httpx's own, a mock.

Three rules, whatever the transport:

- the bytes are the stored object's: ``aiter_raw``, never the decoded body, so an object
  stored with ``Content-Encoding: gzip`` comes back gzipped (and its encoding reported);
- a size cap is decided from ``Content-Length`` before the first body byte is read, and
  enforced while reading when the length is unknown;
- a body shorter than its ``Content-Length``, or a connection lost mid-body, is a
  ``TransportError``: never a short result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import cast

import httpx

from ..errors import ParamValidationError, ResultTooLargeError, TransportError
from .s3_objects import ObjectHead, object_head
from .threads import run_to_end

__all__ = [
    "MAX_BUFFERED_BODY",
    "ResultStream",
    "StreamContext",
    "check_download_path",
    "check_max_bytes",
    "read_body",
    "write_file",
]

# Disk writes are batched to this size, each one a worker-thread hop.
_WRITE_BATCH = 1024 * 1024


# The most a body read into memory may hold when the caller set no max_bytes: a server
# that never ends a body must not grow the process until it dies.
MAX_BUFFERED_BODY = 2 * 1024**3


def check_max_bytes(max_bytes: object) -> int | None:
    """``max_bytes``: None (no cap) or a positive int; before any I/O."""
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ParamValidationError(
            f"max_bytes must be None (no limit) or a positive number of bytes, got {max_bytes!r}",
            param="max_bytes",
        )
    return max_bytes


def too_large(uri: str, size: int, max_bytes: int, *, exact: bool = True) -> ResultTooLargeError:
    amount = f"{size:,} bytes" if exact else f"more than {size - 1:,} bytes"
    return ResultTooLargeError(
        f"the result at {uri} is {amount}, over max_bytes={max_bytes:,}: read it with "
        "stream_result() or download_result(), or raise max_bytes",
        location=uri,
        size=size,
    )


def _lost(
    uri: str, received: int, expected: int | None, exc: BaseException | None
) -> TransportError:
    of = f" of {expected:,}" if expected is not None else ""
    why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return TransportError(
        f"GetObject of {uri} ended after {received:,}{of} bytes{why}; nothing was returned "
        "(read it again)"
    )


def raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body exactly as it came off the wire (or as a mock stored it).

    The response's own stream rather than ``aiter_raw``: a response built from bytes
    (``httpx.Response(content=...)``, what mock transports return) is already read, and
    decoded, by the time we see it; its stream still holds the stored bytes.
    """
    stream = response.stream
    if not isinstance(stream, AsyncIterable):
        raise TypeError("the transport returned a response without an async body stream")
    return aiter(cast(AsyncIterable[bytes], stream))


def check_length(uri: str, head: ObjectHead, received: int) -> None:
    """A body that stopped short of its declared length is an error, not a result."""
    expected = head.content_length
    if expected is not None and received != expected:
        raise _lost(uri, received, expected, None)


async def read_body(response: httpx.Response, uri: str, max_bytes: int | None) -> bytes:
    """The whole stored body of a streamed response (the caller closes the response)."""
    head = object_head(response.headers)
    if (
        max_bytes is not None
        and head.content_length is not None
        and head.content_length > max_bytes
    ):
        raise too_large(uri, head.content_length, max_bytes)
    parts: list[bytes] = []
    received = 0
    try:
        async for chunk in raw_chunks(response):
            received += len(chunk)
            if max_bytes is not None and received > max_bytes:
                raise too_large(uri, received, max_bytes, exact=False)
            if received > MAX_BUFFERED_BODY:  # no max_bytes: still never without bound
                raise TransportError(
                    f"the body of {uri} is larger than {MAX_BUFFERED_BODY:,} bytes, too much "
                    "to hold in memory: read it with stream_result() or download_result()"
                )
            parts.append(chunk)
    except httpx.TransportError as exc:
        raise _lost(uri, received, head.content_length, exc) from exc
    check_length(uri, head, received)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class ResultStream:
    """A stored result, read as it arrives: ``async for chunk in stream``.

    Memory stays at what the transport buffers, whatever the object's size. The chunks
    are the stored bytes (``content_encoding`` says how they are encoded). A connection
    lost mid-body, or a body that ends short of ``content_length``, raises
    ``TransportError`` from the iteration.
    """

    __slots__ = (
        "_chunks",
        "_received",
        "_response",
        "content_encoding",
        "content_length",
        "content_type",
        "location",
    )

    def __init__(self, response: httpx.Response, location: str) -> None:
        head = object_head(response.headers)
        self.location = location
        self.content_type = head.content_type
        self.content_encoding = head.content_encoding
        self.content_length = head.content_length
        self._response = response
        self._chunks: AsyncIterator[bytes] | None = None
        self._received = 0

    def __repr__(self) -> str:
        return (
            f"ResultStream(location={self.location!r}, content_type={self.content_type!r}, "
            f"content_encoding={self.content_encoding!r}, content_length={self.content_length!r})"
        )

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = raw_chunks(self._response)
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            if self.content_length is not None and self._received != self.content_length:
                raise _lost(self.location, self._received, self.content_length, None) from None
            raise
        except httpx.TransportError as exc:
            raise _lost(self.location, self._received, self.content_length, exc) from exc
        self._received += len(chunk)
        return chunk

    async def aclose(self) -> None:
        """Release the connection (closed, if the body was not read to its end)."""
        chunks, self._chunks = self._chunks, None
        if chunks is not None:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._response.aclose()


class StreamContext:
    """What ``stream_result`` returns: opens the GET on enter, closes it on exit."""

    __slots__ = ("_open", "_stream")

    def __init__(self, open_: Callable[[], Awaitable[ResultStream]]) -> None:
        self._open = open_
        self._stream: ResultStream | None = None

    async def __aenter__(self) -> ResultStream:
        self._stream = await self._open()
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()


def check_download_path(path: object) -> Path:
    """A file path we can create a temporary file beside; before any request."""
    if not isinstance(path, (str, os.PathLike)):
        raise ParamValidationError(
            f"path must be a file path (str or os.PathLike), not {type(path).__name__}",
            param="path",
        )
    target = Path(os.fsdecode(path))
    if target.is_dir():
        raise ParamValidationError(
            f"path {str(target)!r} is a directory; name a file", param="path"
        )
    parent = target.parent
    if not parent.is_dir():
        raise ParamValidationError(
            f"cannot write {str(target)!r}: its directory {str(parent)!r} does not exist",
            param="path",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ParamValidationError(
            f"cannot write {str(target)!r}: its directory {str(parent)!r} is not writable",
            param="path",
        )
    if target.exists() and not os.access(target, os.W_OK):
        raise ParamValidationError(f"cannot write {str(target)!r}: it is read-only", param="path")
    # Permission bits do not tell everything (root, read-only mounts, /sys): try it.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise ParamValidationError(
            f"cannot write {str(target)!r}: its directory {str(parent)!r} is not writable "
            f"({exc.strerror})",
            param="path",
        ) from None
    os.close(fd)
    os.unlink(probe)
    return target


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def write_file(stream: ResultStream, target: Path) -> int:
    """Stream into a temporary file beside ``target``, then rename it into place.

    ``target`` is either untouched or complete: on any error or cancellation the
    temporary file is removed. Returns the number of bytes written.
    """
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    size = 0
    try:
        try:
            batch: list[bytes] = []
            pending = 0
            async for chunk in stream:
                batch.append(chunk)
                pending += len(chunk)
                if pending >= _WRITE_BATCH:
                    data = b"".join(batch)
                    batch.clear()
                    pending = 0
                    await run_to_end(_write_all, fd, data)
                    size += len(data)
            if batch:
                data = b"".join(batch)
                await run_to_end(_write_all, fd, data)
                size += len(data)
        finally:
            os.close(fd)
        await asyncio.to_thread(os.replace, temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return size
