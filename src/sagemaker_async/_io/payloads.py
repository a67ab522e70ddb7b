"""Payloads for upload: bytes, a file path or a binary file object, never held whole.

S3 needs the SHA-256 of the body in a signed header before the first byte is sent, and the
exact length (it refuses chunked uploads). So a file is read twice: once in a worker thread
to hash and measure it, then in chunks while it is sent; each retry reads it again from the
start. Memory stays at one chunk however large the file (the service allows 1 GB), and the
event loop never waits on the disk or on hashing.

If the file changes between the two reads, the second read's running SHA-256 differs
from the signed one: the stream raises before its last byte is sent, so the request is
cut short and S3 stores nothing (S3 would refuse the body anyway, with a less helpful
error). If it shrinks, the upload stops with an error instead of hanging.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias, TypeVar, cast

from .._protocol.params import MAX_INLINE_BODY
from ..errors import ParamValidationError
from .threads import run_to_end

__all__ = ["CHUNK_SIZE", "Payload", "UploadBody", "prepare_upload", "read_small"]

CHUNK_SIZE = 1024 * 1024
# Hashing this much in the event loop costs well under a millisecond; more goes to a thread.
_INLINE_HASH_LIMIT = 256 * 1024

# What upload_input and submit accept: bytes in memory, a file path, or a binary file object.
Payload: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

_T = TypeVar("_T")
StreamFactory = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True, slots=True)
class UploadBody:
    """What PutObject needs: the length, the SHA-256 and the bytes (or a fresh stream)."""

    length: int
    payload_hash: str
    content: bytes | StreamFactory = field(repr=False)


def _type_error(data: object) -> ParamValidationError:
    return ParamValidationError(
        "data must be bytes, a file path (str or os.PathLike) or a binary file object "
        f"opened with 'rb', not {type(data).__name__}",
        param="data",
    )


async def _in_thread(func: Callable[[threading.Event], _T]) -> _T:
    """Run blocking work in a thread; if we are cancelled, tell it to stop early."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(func, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _hash_stream(stream: BinaryIO, stop: threading.Event) -> tuple[int, str]:
    digest = hashlib.sha256()
    length = 0
    while not stop.is_set():
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            break
        if not isinstance(chunk, bytes):
            raise _type_error(stream)
        digest.update(chunk)
        length += len(chunk)
    return length, digest.hexdigest()


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ParamValidationError(
            f"data names no readable file: {path} ({exc.strerror}). A str is taken as a file "
            "path; pass bytes (e.g. text.encode()) to upload a payload held in memory.",
            param="data",
        ) from exc


def _hash_path(path: Path, stop: threading.Event) -> tuple[int, str]:
    with _open(path) as stream:
        return _hash_stream(stream, stop)


def _check_binary_seekable(stream: BinaryIO) -> int:
    """The stream's position, after checking it yields bytes and can be re-read."""
    if not isinstance(stream.read(0), bytes):
        raise ParamValidationError(
            "data is a text file object; open the file in binary mode ('rb')", param="data"
        )
    seekable = getattr(stream, "seekable", None)
    if not callable(seekable) or not seekable():
        raise ParamValidationError(
            "data is a file object that cannot seek: the upload must be hashed before it is "
            "sent and re-read on retries. Pass a regular file, a path, or bytes.",
            param="data",
        )
    return stream.tell()


def _hash_file_object(stream: BinaryIO, stop: threading.Event) -> tuple[int, int, str]:
    start = _check_binary_seekable(stream)
    length, digest = _hash_stream(stream, stop)
    return start, length, digest


def _changed(name: str) -> ParamValidationError:
    return ParamValidationError(
        f"{name} changed while it was being uploaded; the upload was abandoned and nothing "
        "was stored. Upload a file nobody is writing to.",
        param="data",
    )


def _read_and_hash(stream: BinaryIO, size: int, digest: Any) -> bytes:
    chunk = stream.read(size)
    digest.update(chunk)
    return chunk


class _ChunkStream:
    """``length`` bytes from ``start`` of a file, one chunk per thread hop.

    A plain async iterator rather than an async generator: an abandoned generator is
    finalized by a task the event loop schedules, and a cancelled upload must leave no task
    behind. A file this stream opened is closed at the end, on ``aclose()``, on an error,
    or when the stream is dropped.
    """

    def __init__(
        self,
        open_stream: Callable[[], BinaryIO],
        start: int,
        length: int,
        *,
        owned: bool,
        name: str,
        sha256: str,
    ) -> None:
        self._open_stream = open_stream
        self._start = start
        self._remaining = length
        self._length = length
        self._owned = owned
        self._stream: BinaryIO | None = None
        self._name = name
        self._expected = sha256
        self._digest = hashlib.sha256()

    def __aiter__(self) -> _ChunkStream:
        return self

    async def __anext__(self) -> bytes:
        stream = self._stream
        if stream is None:
            # Opening is one quick system call; the reads are what may wait on a disk.
            stream = self._stream = self._open_stream()
            try:
                await run_to_end(stream.seek, self._start)
            except BaseException:
                self.close()
                raise
        if not self._remaining:
            self.close()
            raise StopAsyncIteration
        try:
            chunk = await run_to_end(
                _read_and_hash, stream, min(CHUNK_SIZE, self._remaining), self._digest
            )
        except BaseException:
            self.close()
            raise
        if not chunk:
            self.close()
            raise _changed(self._name)
        self._remaining -= len(chunk)
        if not self._remaining and self._digest.hexdigest() != self._expected:
            # Before the last byte goes out: the request is cut, S3 stores nothing.
            self.close()
            raise _changed(self._name)
        return chunk

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and self._owned:
            stream.close()

    async def aclose(self) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _path_factory(path: Path, length: int, sha256: str) -> StreamFactory:
    def factory() -> AsyncIterator[bytes]:
        return _ChunkStream(
            lambda: _open(path), 0, length, owned=True, name=str(path), sha256=sha256
        )

    return factory


def _file_factory(stream: BinaryIO, start: int, length: int, sha256: str) -> StreamFactory:
    name = str(getattr(stream, "name", None) or "the file object")

    def factory() -> AsyncIterator[bytes]:
        return _ChunkStream(lambda: stream, start, length, owned=False, name=name, sha256=sha256)

    return factory


async def prepare_upload(data: object) -> UploadBody:
    """Measure and hash ``data`` without blocking the loop; files stay on disk.

    A file object is uploaded from its current position to its end and must be binary and
    seekable (it is read once to hash, then again to send, and again on a retry). The
    caller keeps ownership of it: it is not closed.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        body = bytes(data)
        if len(body) <= _INLINE_HASH_LIMIT:
            digest = hashlib.sha256(body).hexdigest()
        else:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        return UploadBody(len(body), digest, body)
    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fsdecode(data))
        length, digest = await _in_thread(lambda stop: _hash_path(path, stop))
        return UploadBody(length, digest, _path_factory(path, length, digest))
    if callable(getattr(data, "read", None)):
        stream = cast(BinaryIO, data)
        start, length, digest = await _in_thread(lambda stop: _hash_file_object(stream, stop))
        return UploadBody(length, digest, _file_factory(stream, start, length, digest))
    raise _type_error(data)


def _read_at_most(read: Callable[[int], object], limit: int) -> bytes:
    data = read(limit + 1)
    if not isinstance(data, bytes):
        raise ParamValidationError(
            "data is a text file object; open the file in binary mode ('rb')", param="data"
        )
    return data


def _too_large(size: str) -> ParamValidationError:
    return ParamValidationError(
        f"data is {size} bytes, more than the {MAX_INLINE_BODY:,} an inline invocation may "
        "carry: pass input_location='s3://bucket/key' to upload it to S3 first",
        param="data",
    )


def _read_small_path(path: Path) -> bytes:
    with _open(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > MAX_INLINE_BODY:
            raise _too_large(f"{size:,}")
        return _read_at_most(stream.read, MAX_INLINE_BODY)


async def read_small(data: object) -> bytes:
    """``data`` as bytes for an inline invocation, refusing anything over 128,000 bytes.

    A path is measured before it is read; a file object is read at most 128,001 bytes
    (enough to tell it is too large), so a large payload is never loaded.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > MAX_INLINE_BODY:
            raise _too_large(f"{len(data):,}")
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fsdecode(data))
        body = await asyncio.to_thread(_read_small_path, path)
    elif callable(getattr(data, "read", None)):
        read = cast(BinaryIO, data).read
        body = await asyncio.to_thread(_read_at_most, read, MAX_INLINE_BODY)
    else:
        raise _type_error(data)
    if len(body) > MAX_INLINE_BODY:
        raise _too_large("more than 128,000")
    return body
