"""The checksums S3 verifies on an upload (``x-amz-checksum-*``), computed as the body streams.

CRC32 and SHA come from the standard library. CRC32C and CRC64NVME come from the AWS CRT
(``awscrt``) when it is installed — botocore computes them only with it, so a client that
sends them usually brings it along — and are otherwise table-driven here, a byte at a
time: correct, but a few MB/s. Values are compared in S3's encoding: the base64 of the
big-endian digest. Pure: no I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ALGORITHMS", "Checksum", "new_checksum"]


class Checksum(Protocol):
    def update(self, data: bytes) -> None: ...

    def b64digest(self) -> str: ...


@functools.cache
def _reflected_table(polynomial: int) -> tuple[int, ...]:
    """Built on first use, not at import: most uploads never need one."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C = 0x82F63B78
_CRC64NVME = 0x9A6C9329AC4BC9B5


class _Crc32:
    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


class _TableCrc:
    """A reflected CRC with all-ones start and final xor (CRC-32C, CRC-64/NVME)."""

    def __init__(self, table: tuple[int, ...], width: int) -> None:
        self._table = table
        self._mask = (1 << width) - 1
        self._width = width
        self._crc = self._mask

    def update(self, data: bytes) -> None:
        crc, table = self._crc, self._table
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self._crc = crc

    def b64digest(self) -> str:
        value = self._crc ^ self._mask
        return base64.b64encode(value.to_bytes(self._width // 8, "big")).decode("ascii")


class _CrtCrc:
    """A CRC of the AWS CRT, which continues from the previous (final) value."""

    def __init__(self, function: Callable[[bytes, int], int], width: int) -> None:
        self._function = function
        self._width = width
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = self._function(data, self._crc)

    def b64digest(self) -> str:
        return base64.b64encode(self._crc.to_bytes(self._width // 8, "big")).decode("ascii")


@functools.lru_cache(maxsize=1)
def _crt_checksums() -> Any:
    try:
        from awscrt import checksums  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return checksums


class _Hash:
    def __init__(self, name: str) -> None:
        self._hash = hashlib.new(name)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def b64digest(self) -> str:
        return base64.b64encode(self._hash.digest()).decode("ascii")


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


def new_checksum(algorithm: str) -> Checksum:
    """A fresh checksum for an algorithm S3 names (``crc32``, ..., any case)."""
    name = algorithm.lower()
    if name == "crc32":
        return _Crc32()
    if name in ("crc32c", "crc64nvme"):
        crt = _crt_checksums()
        if name == "crc32c":
            return _CrtCrc(crt.crc32c, 32) if crt else _TableCrc(_reflected_table(_CRC32C), 32)
        if crt:
            return _CrtCrc(crt.crc64nvme, 64)
        return _TableCrc(_reflected_table(_CRC64NVME), 64)
    if name in ("sha1", "sha256"):
        return _Hash(name)
    raise ValueError(f"no checksum algorithm {algorithm!r}")
