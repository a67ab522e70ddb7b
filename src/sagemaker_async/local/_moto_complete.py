"""CompleteMultipartUpload in the built-in store without the object in memory.

moto's ``FakeMultipart.complete`` joins the parts' values in one ``bytearray``, copies it
to ``bytes`` and hands that to a new key, which writes it to its own temporary file: a
1 GiB upload raised the local endpoint's peak memory by over 2 GiB. While ``MotoBackend``
serves a CompleteMultipartUpload, ``complete`` is replaced by one that makes the same
checks in the same order (``InvalidPart``, ``EntityTooSmall``, ``MalformedXML``) and the
same ETag and checksum, but copies the parts a MiB at a time into the temporary file the
new key then adopts as its storage (``_moto_stream.adopt_next_empty_value``).

Checksums are moto's own where they can be: a composite one through moto's
``MultipartChecksumBuilder``, one part at a time. A full-object checksum is computed as the
object is copied, the way moto's ``compute_checksum`` would compute it whole: CRC32,
SHA-1, SHA-256, and CRC32C or CRC64NVME where moto itself falls back to CRC32 (without the
``crc32c`` package or the AWS CRT). With those libraries installed, a full-object CRC32C or
CRC64NVME upload is completed by moto's own code, in memory. A test compares both
completions, object, ETag and checksum, for every algorithm and checksum type.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import hashlib
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from . import _moto_stream

__all__ = ["Completion", "SeamMissing", "check_seam", "completion_streamed", "install"]

SeamMissing = _moto_stream.SeamMissing

_COPY_SIZE = 1024 * 1024
_local = threading.local()
_installed = False
_install_lock = threading.Lock()


class Completion:
    """What one streamed completion did: whether it assembled an object, and whether the
    key moto then created took it (else moto stored nothing from it)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: Any = None

    @property
    def assembled_but_not_stored(self) -> bool:
        return self.pending is not None and not self.pending.taken


def check_seam() -> dict[str, Any]:
    """moto's internals the streamed completion needs; ``SeamMissing`` if one moved."""
    try:
        from moto.s3 import exceptions, models
        from moto.s3 import utils as s3_utils
        from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size
    except ImportError as exc:
        raise SeamMissing(f"moto's multipart internals cannot be imported: {exc}") from exc
    needed = {
        "FakeMultipart.complete": getattr(models.FakeMultipart, "complete", None),
        "MultipartChecksumBuilder": getattr(models, "MultipartChecksumBuilder", None),
        "InvalidPart": getattr(exceptions, "InvalidPart", None),
        "EntityTooSmall": getattr(exceptions, "EntityTooSmall", None),
        "MalformedXML": getattr(exceptions, "MalformedXML", None),
        "HAS_CRT": getattr(s3_utils, "HAS_CRT", None),
    }
    missing = [name for name, value in needed.items() if value is None]
    if missing:
        raise SeamMissing(f"moto no longer has {', '.join(missing)}")
    builder = models.MultipartChecksumBuilder(None, None)
    if not {"checksum_algorithm", "checksum_type"} <= set(vars(builder)):
        raise SeamMissing("moto's MultipartChecksumBuilder no longer names its algorithm")
    _moto_stream.check_seam()
    return {
        "models": models,
        "exceptions": exceptions,
        "has_crt": needed["HAS_CRT"],
        "min_part_size": S3_UPLOAD_PART_MIN_SIZE,
        "buffer_size": get_s3_default_key_buffer_size,
    }


class _Running:
    """A full-object checksum computed piece by piece, equal to moto's over the whole."""

    __slots__ = ("_crc", "_hash")

    def __init__(self, hash_name: str | None) -> None:
        self._hash = None if hash_name is None else hashlib.new(hash_name)
        self._crc = 0

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)
        else:
            self._crc = binascii.crc32(chunk, self._crc)

    def base64(self) -> str:
        digest = self._crc.to_bytes(4, "big") if self._hash is None else self._hash.digest()
        return binascii.b2a_base64(digest, newline=False).decode()


def _running_for(algorithm: str, has_crt: bool) -> _Running | None:
    """How moto's ``compute_checksum`` would checksum the whole object, or None when that
    takes a library whose result we do not reproduce (moto then completes in memory)."""
    if algorithm == "SHA1":
        return _Running("sha1")
    if algorithm == "CRC32":
        return _Running(None)
    if algorithm == "CRC32C":
        try:
            import crc32c  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            return _Running(None)  # moto falls back to CRC32
        return None
    if algorithm == "CRC64NVME":
        return None if has_crt else _Running(None)  # moto: the CRT, else CRC32
    return _Running("sha256")  # moto's default branch


def install() -> None:
    """Patch ``FakeMultipart.complete`` (once per process); raises ``SeamMissing``."""
    global _installed
    with _install_lock:
        if _installed:
            return
        seam = check_seam()
        models, exceptions = seam["models"], seam["exceptions"]
        original = models.FakeMultipart.complete
        min_part_size = seam["min_part_size"]
        decode_hex: Any = codecs.getdecoder("hex_codec")  # as moto decodes a part's ETag

        def complete(multipart: Any, body: Any) -> Any:
            completion: Completion | None = getattr(_local, "completion", None)
            if completion is None:
                return original(multipart, body)
            builder = models.MultipartChecksumBuilder(
                multipart.metadata.get("x-amz-checksum-algorithm"),
                multipart.metadata.get("x-amz-checksum-type"),
            )
            composite = builder.checksum_type == "COMPOSITE"
            running = None
            if not composite:
                running = _running_for(builder.checksum_algorithm, seam["has_crt"])
                if running is None:
                    return original(multipart, body)
            # Owned by the key that adopts it (or closed below, or by clear_pending).
            buffer = tempfile.SpooledTemporaryFile(seam["buffer_size"]())  # noqa: SIM115
            try:
                md5s = bytearray()
                last = None
                count = size = 0
                for number, etag in body:
                    part = multipart.parts.get(number)
                    part_etag = None
                    if part is not None:
                        part_etag = part.etag.replace('"', "")
                        etag = etag.replace('"', "")
                    if part is None or part_etag != etag:
                        raise exceptions.InvalidPart()
                    if last is not None and last.contentsize < min_part_size:
                        raise exceptions.EntityTooSmall()
                    md5s.extend(decode_hex(part_etag)[0])
                    size += _append(part, buffer, running)
                    if composite:
                        builder.addPart(part.value)  # moto's own, one part in memory
                    last = part
                    count += 1
                if count == 0:
                    raise exceptions.MalformedXML()
                checksum = (
                    builder.build()
                    if running is None
                    else (builder.checksum_type, running.base64(), 1)
                )
            except BaseException:
                buffer.close()
                raise
            completion.pending = _moto_stream.adopt_next_empty_value(buffer, size)
            full_etag = hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()
            return b"", f"{full_etag}-{count}", checksum

        models.FakeMultipart.complete = complete
        _installed = True


def _append(part: Any, buffer: Any, running: _Running | None) -> int:
    """Copy one part's stored value into ``buffer`` a MiB at a time; its size."""
    copied = 0
    with part.lock:
        source = part._value_buffer
        source.seek(0)
        while chunk := source.read(_COPY_SIZE):
            buffer.write(chunk)
            if running is not None:
                running.update(chunk)
            copied += len(chunk)
    return copied


@contextlib.contextmanager
def completion_streamed() -> Iterator[Completion]:
    """While moto serves one CompleteMultipartUpload on this thread, its ``complete``
    assembles the object into the new key's storage instead of memory."""
    install()
    completion = Completion()
    _local.completion = completion
    try:
        yield completion
    finally:
        _local.completion = None
        _moto_stream.clear_pending()
