"""Uploads streamed into a key's storage, never held whole in memory: one of the places the
local endpoint reaches into moto's internals (with ``_moto_complete``, ``_notify`` and
``_fast_head``).

moto's S3 takes a request body as ``bytes`` at every step — werkzeug's ``request.data``,
then ``FakeKey(value=...)`` — although a key keeps its value in a
``SpooledTemporaryFile`` of its own (``FakeKey._value_buffer``, on disk past a few MB). A
200 MB PutObject therefore cost the server several times 200 MB of memory.

The seam is the setter of ``FakeKey.value``, the single place a key's bytes are written.
For a large PutObject or UploadPart, ``MotoBackend`` hands moto the request with an empty
body and, on the same thread, a *pending source*: the spooled body the HTTP server already
holds. When moto then creates the key with the empty value, the patched setter copies the
source into the key's own buffer chunk by chunk instead, and sets its size. Everything
else — routing, metadata, ACLs, tags, versioning, checksums, the response — stays moto's
own code. The copy also computes the MD5 and sets it as the key's ETag (``_etag``), which
moto would otherwise compute lazily by reading the value back in 16 MB blocks.

The source is taken at most once, by the first empty value set on that thread while it is
pending, and ``streamed_into_moto`` reports whether it was: a request that moto answered
200 without taking it must be treated as an error, never as a stored empty object.
``check_seam`` fails loudly if a moto release moves these internals (a test calls it).

A pending value can also be a ready buffer (``adopt_next_empty_value``): the key takes it as
its own storage, with no copy and its ETag left as moto set it. ``_moto_complete`` assembles
a multipart upload's object that way.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import IO, Any

__all__ = [
    "SeamMissing",
    "adopt_next_empty_value",
    "check_seam",
    "clear_pending",
    "install",
    "streamed_into_moto",
]

_COPY_SIZE = 1024 * 1024
_ABC_MD5 = "900150983cd24fb0d6963f7d28e17f72"
_local = threading.local()
_installed = False
_install_lock = threading.Lock()


class SeamMissing(RuntimeError):
    """moto no longer has the internals this module relies on."""


class _Pending:
    __slots__ = ("buffer", "size", "source", "taken")

    def __init__(self, source: IO[bytes] | None, size: int, buffer: Any = None) -> None:
        self.source = source
        self.size = size
        self.buffer = buffer  # a ready SpooledTemporaryFile the key adopts as its storage
        self.taken = False


def check_seam() -> Any:
    """moto's ``FakeKey`` with the internals streaming needs; raise ``SeamMissing`` if not."""
    try:
        from moto.s3.models import FakeKey
    except ImportError as exc:
        raise SeamMissing(f"moto.s3.models.FakeKey cannot be imported: {exc}") from exc
    value = FakeKey.__dict__.get("value")
    if not isinstance(value, property) or value.fset is None:
        raise SeamMissing("moto's FakeKey.value is no longer a property with a setter")
    probe = FakeKey("probe", b"abc", account_id="123456789012", region_name="us-east-1")
    try:
        buffer = getattr(probe, "_value_buffer", None)
        if buffer is None or not hasattr(buffer, "write") or getattr(probe, "size", None) != 3:
            raise SeamMissing("moto's FakeKey no longer keeps its value in _value_buffer")
        if probe.__dict__.get("_etag", 0) is not None or probe.etag != f'"{_ABC_MD5}"':
            raise SeamMissing("moto's FakeKey no longer computes its ETag lazily into _etag")
    finally:
        with contextlib.suppress(Exception):
            probe.dispose()
    return FakeKey


def install() -> None:
    """Patch ``FakeKey.value``'s setter (once per process); raises ``SeamMissing``."""
    global _installed
    with _install_lock:
        if _installed:
            return
        fake_key = check_seam()
        original = fake_key.__dict__["value"]
        setter = original.fset

        def set_value(key: Any, new_value: Any) -> None:
            pending: _Pending | None = getattr(_local, "pending", None)
            if pending is None or pending.taken or new_value != b"":
                setter(key, new_value)
                return
            pending.taken = True
            if pending.buffer is not None:
                # A ready buffer becomes the key's storage; moto set the ETag already.
                previous, key._value_buffer = key._value_buffer, pending.buffer
                pending.buffer = None
                previous.close()
                key.contentsize = pending.size
                return
            buffer = key._value_buffer
            buffer.seek(0)
            buffer.truncate()
            source = pending.source
            assert source is not None
            source.seek(0)
            copied = 0
            md5 = hashlib.md5(usedforsecurity=False)
            while chunk := source.read(_COPY_SIZE):
                buffer.write(chunk)
                md5.update(chunk)
                copied += len(chunk)
            if copied != pending.size:
                raise OSError(f"the spooled body has {copied} bytes, not {pending.size}")
            key.contentsize = copied
            # moto would compute this lazily, reading the value back in 16 MB blocks.
            key._etag = md5.hexdigest()

        fake_key.value = property(original.fget, set_value, original.fdel, original.__doc__)
        _installed = True


@contextlib.contextmanager
def streamed_into_moto(source: IO[bytes], size: int) -> Iterator[_Pending]:
    """While moto handles one request on this thread, the next empty key value is
    ``source`` instead; ``.taken`` says afterwards whether moto stored it."""
    install()
    pending = _Pending(source, size)
    _local.pending = pending
    try:
        yield pending
    finally:
        _local.pending = None


def adopt_next_empty_value(buffer: Any, size: int) -> _Pending:
    """The next empty key value set on this thread is ``buffer`` (``size`` bytes), adopted
    as the key's own storage. The caller clears it (``clear_pending``) after the request."""
    install()
    pending = _Pending(None, size, buffer=buffer)
    _local.pending = pending
    return pending


def clear_pending() -> None:
    """Nothing pending on this thread any more; a buffer nobody adopted is closed."""
    pending: _Pending | None = getattr(_local, "pending", None)
    _local.pending = None
    if pending is not None and pending.buffer is not None:
        pending.buffer.close()
        pending.buffer = None
