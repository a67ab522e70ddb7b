"""Uploads above the multipart threshold: parts in parallel, bounded memory, never half-stored.

- A part is read twice, in 1 MiB chunks in a worker thread (``os.pread`` for paths, so
  readers never share a file position): once to hash it (the SHA-256 is both the signed
  payload hash and the ``x-amz-checksum-sha256`` S3 verifies), then to send it. Memory
  is about one chunk per part in flight, whatever the part size or the file's size (the
  second read comes from the page cache).
- Each part is retried on its own by the client's retry policy; a failure of one part
  costs that part, not the upload.
- The file must not change while it is uploaded: its size and modification time are
  checked after every part and before completing. A change, any error, or cancellation
  aborts the upload (AbortMultipartUpload, awaited even when cancelled), so no parts are
  left behind and nothing is stored under the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .._protocol.s3 import S3Location
from .._protocol.s3_multipart import MAX_PARTS, MIN_PART_SIZE, CompletedPart, sha256_base64
from ..errors import ParamValidationError, ServiceError
from .results import gather_or_cancel
from .threads import run_to_end

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "DEFAULT_THRESHOLD",
    "MultipartObjects",
    "PartSource",
    "open_source",
    "upload_multipart",
]

logger = logging.getLogger("sagemaker_async")

DEFAULT_THRESHOLD = 64 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_CONCURRENCY = 10  # s3transfer's default
CHUNK = 1024 * 1024
# What S3 answers when the bytes sent do not match the signed hash or the checksum.
_DIGEST_CODES = frozenset(
    {"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest", "InvalidChecksum"}
)


class MultipartObjects(Protocol):
    async def create_multipart_upload(
        self, location: S3Location, *, content_type: str | None = None
    ) -> str: ...

    async def upload_part(
        self,
        location: S3Location,
        *,
        upload_id: str,
        part_number: int,
        data: bytes | Callable[[], AsyncIterator[bytes]],
        payload_hash: str,
        content_length: int | None = None,
    ) -> str: ...

    async def complete_multipart_upload(
        self, location: S3Location, *, upload_id: str, parts: list[CompletedPart]
    ) -> None: ...

    async def abort_multipart_upload(self, location: S3Location, *, upload_id: str) -> None: ...


def changed_error(name: str) -> ParamValidationError:
    return ParamValidationError(
        f"{name} changed while it was being uploaded; the upload was abandoned and nothing "
        "was stored. Upload a file nobody is writing to.",
        param="data",
    )


@dataclass
class PartSource:
    """``size`` bytes to upload, read part by part from memory, a path or a file object."""

    name: str
    size: int
    read: Callable[[int, int], bytes]  # (offset, length) -> bytes; blocking
    unchanged: Callable[[], bool]  # blocking
    close: Callable[[], None]


def _stat_key(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns


def open_source(data: object) -> PartSource | None:
    """A multipart source for ``data``, or None for kinds not read in parts (validated later).

    Blocking (an ``open`` and a ``stat``): call it in a worker thread.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")

        def read_memory(offset: int, length: int) -> bytes:
            return bytes(view[offset : offset + length])

        return PartSource("data", len(view), read_memory, lambda: True, lambda: None)
    if isinstance(data, (str, os.PathLike)):
        path = Path(os.fsdecode(data))
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError:
            return None  # the single-PUT path reports a missing file as it always has
        try:
            stat = os.fstat(fd)
            if not os.path.isfile(path):
                os.close(fd)
                return None
        except OSError:
            os.close(fd)
            raise
        before = _stat_key(stat)

        def read_path(offset: int, length: int) -> bytes:
            return os.pread(fd, length, offset)

        def path_unchanged() -> bool:
            return _stat_key(os.fstat(fd)) == before

        def close_path() -> None:
            os.close(fd)

        return PartSource(str(path), stat.st_size, read_path, path_unchanged, close_path)
    if callable(getattr(data, "read", None)) and callable(getattr(data, "seek", None)):
        stream: BinaryIO = data  # type: ignore[assignment]
        try:
            if not stream.seekable() or not isinstance(stream.read(0), bytes):
                return None  # the single-PUT path explains what is wrong, before any I/O
            start = stream.tell()
            end = stream.seek(0, os.SEEK_END)
            stream.seek(start)
        except (OSError, ValueError):
            return None
        lock = threading.Lock()
        name = str(getattr(stream, "name", None) or "the file object")

        def read_stream(offset: int, length: int) -> bytes:
            with lock:
                stream.seek(start + offset)
                chunk = stream.read(length)
            if not isinstance(chunk, bytes):
                raise ParamValidationError(
                    "data is a text file object; open the file in binary mode ('rb')",
                    param="data",
                )
            return chunk

        def stream_unchanged() -> bool:
            with lock:
                here = stream.tell()
                size = stream.seek(0, os.SEEK_END)
                stream.seek(here)
            return size == end

        return PartSource(name, end - start, read_stream, stream_unchanged, lambda: None)
    return None


def _read(source: PartSource, offset: int, length: int) -> bytes:
    data = source.read(offset, length)
    if len(data) != length:
        raise changed_error(source.name)
    return data


def _hash_part(source: PartSource, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    end = offset + length
    while offset < end:
        size = min(CHUNK, end - offset)
        digest.update(_read(source, offset, size))
        offset += size
    if not source.unchanged():
        raise changed_error(source.name)
    return digest.hexdigest()


class _PartStream:
    """One part's bytes, read chunk by chunk as they are sent (a fresh one per attempt).

    A plain async iterator, not a generator: nothing for the loop to finalize later.
    """

    def __init__(self, source: PartSource, offset: int, length: int) -> None:
        self._source = source
        self._offset = offset
        self._end = offset + length

    def __aiter__(self) -> _PartStream:
        return self

    async def __anext__(self) -> bytes:
        if self._offset >= self._end:
            raise StopAsyncIteration
        size = min(CHUNK, self._end - self._offset)
        chunk = await run_to_end(_read, self._source, self._offset, size)
        self._offset += size
        return chunk

    async def aclose(self) -> None:
        self._offset = self._end


def part_size_for(size: int, part_size: int) -> int:
    """The part size: as asked, but never so small that S3's 10,000-part limit is passed."""
    needed = -(-size // MAX_PARTS)
    return max(part_size, needed, MIN_PART_SIZE)


async def upload_multipart(
    objects: MultipartObjects,
    location: S3Location,
    source: PartSource,
    *,
    content_type: str | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> None:
    """Upload ``source`` in parts; abort (and wait for the abort) on any failure."""
    size = part_size_for(source.size, part_size)
    count = max(1, -(-source.size // size))
    upload_id = await _create(objects, location, content_type)
    try:
        completed: list[CompletedPart] = []
        numbers = iter(range(1, count + 1))

        async def worker() -> None:
            for number in numbers:  # shared: each part is taken by exactly one worker
                offset = (number - 1) * size
                length = min(size, source.size - offset)
                digest = await run_to_end(_hash_part, source, offset, length)

                def stream(offset: int = offset, length: int = length) -> AsyncIterator[bytes]:
                    return _PartStream(source, offset, length)

                try:
                    etag = await objects.upload_part(
                        location,
                        upload_id=upload_id,
                        part_number=number,
                        data=stream,
                        payload_hash=digest,
                        content_length=length,
                    )
                except ServiceError as exc:
                    if exc.code in _DIGEST_CODES:  # the bytes changed after they were hashed
                        raise changed_error(source.name) from exc
                    raise
                if not await run_to_end(source.unchanged):
                    raise changed_error(source.name)
                completed.append(CompletedPart(number, etag, sha256_base64(digest)))

        await gather_or_cancel(*(worker() for _ in range(min(concurrency, count))))
        if not await run_to_end(source.unchanged):
            raise changed_error(source.name)
        await objects.complete_multipart_upload(location, upload_id=upload_id, parts=completed)
    except BaseException:
        await _abort(objects, location, upload_id)
        raise


async def _create(objects: MultipartObjects, location: S3Location, content_type: str | None) -> str:
    """CreateMultipartUpload that a cancellation cannot turn into an orphaned upload.

    Once the request is sent, S3 may have created the upload: if we are cancelled, we wait
    for its id and abort it before the cancellation propagates.
    """
    task = asyncio.ensure_future(
        objects.create_multipart_upload(location, content_type=content_type)
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue
        if not task.cancelled() and task.exception() is None:
            await _abort(objects, location, task.result())
        raise


async def _abort(objects: MultipartObjects, location: S3Location, upload_id: str) -> None:
    """Abort the upload and wait for it, even if our caller is cancelled meanwhile."""
    task = asyncio.ensure_future(objects.abort_multipart_upload(location, upload_id=upload_id))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True  # the abort still runs: no parts may be left behind
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        logger.warning(
            "AbortMultipartUpload of %s (upload id %s) failed: %s; its parts may remain "
            "until a lifecycle rule removes them",
            location.uri,
            upload_id,
            task.exception(),
        )
    if cancelled:
        raise asyncio.CancelledError
