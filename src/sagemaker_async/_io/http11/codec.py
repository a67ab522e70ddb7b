"""HTTP/1.1 messages as bytes: the request head we write, the response head and body framing
we read. Pure: no sockets, no asyncio, no clock, no httpx, so every rule is tested on literal
bytes and checked against h11 by a property test.

The grammar is RFC 9112's, held to h11's verdicts, with these deliberate differences, each
stricter than h11 (an error is always better than a wrong body):

* a head must use one line ending throughout: all CRLF, or all bare LF (which h11 and
  RFC 9112 2.2 accept). A bare CR, or a bare LF inside a CRLF head, is an error: h11 splits
  lines at a bare LF, which lets ``X-A: b\\nContent-Length: 5`` smuggle a header;
* the status code must be 100-599 and the version ``HTTP/1.x`` (h11 takes any ``d.d`` and
  codes up to 999);
* ``Transfer-Encoding`` together with ``Content-Length`` is an error (RFC 9112 6.3 calls it
  a likely smuggling attempt; h11 lets chunked win);
* chunked framing (size lines, chunk ends, trailers) must use CRLF, and trailers may not be
  folded.

One difference goes the other way, with RFC 9112 7.1.1: whitespace between a chunk size and
its extension (``5 ;ext``, "BWS" in the RFC) is accepted; h11 refuses it.

Obsolete line folding (RFC 9112 5.2) in a response head is unfolded, as h11 does and as
RFC 9112 requires of a user agent: a line that starts with SP or HTAB continues the previous
field's value; the leading whitespace of the continuation is replaced by one SP. A
continuation right after the status line is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_HEAD",
    "ChunkedReader",
    "CloseDelimitedReader",
    "Head",
    "LengthReader",
    "LocalViolation",
    "ProtocolViolation",
    "head_end",
    "obviously_not_a_response",
    "parse_head",
    "serialize_request_head",
]

MAX_HEAD: Final = 64 * 1024  # a response head (status line + fields) larger is an error
MAX_CHUNK_LINE: Final = 4096  # a chunk-size line (with extensions) larger is an error
MAX_TRAILERS: Final = 16 * 1024  # the trailer section of a chunked body, in bytes
MAX_LENGTH_DIGITS: Final = 20  # Content-Length digits (h11's limit)
MAX_CHUNK_DIGITS: Final = 20  # chunk-size hex digits (h11's limit)

# RFC 9110 5.6.2 tchar: what a token (a method or a field name) is made of.
_TOKEN_CHARS: Final = (
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# In a response head, besides CR and LF (checked by counting line breaks): NUL, and the two
# whitespace controls h11 refuses (VT, FF). Other controls are retained, as RFC 9110 5.5
# allows and h11 does.
_BAD_IN_HEAD: Final = b"\x00\x0b\x0c"
# What we send is held to the strict rule: no control character but HTAB.
_CTL: Final = bytes([*range(9), 11, 12, *range(14, 32), 127])
# A request target: visible ASCII only (httpx has percent-encoded the rest).
_BAD_TARGET: Final = re.compile(rb"[\x00-\x20\x7f-\xff]")
# chunk-size BWS [ ";" chunk-ext ]: an extension is skipped (anything but CR/LF).
_CHUNK_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,%d})[ \t]*(?:;[^\r\n]*)?" % MAX_CHUNK_DIGITS)
_NO_BODY_STATUS: Final = frozenset({204, 304})


class ProtocolViolation(Exception):
    """The peer sent something that is not HTTP/1.1 (becomes ``RemoteProtocolError``)."""


class LocalViolation(Exception):
    """We were asked to send something HTTP/1.1 cannot carry (``LocalProtocolError``)."""


# --------------------------------------------------------------------------------------
# Response head


@dataclass(slots=True)
class Head:
    """A parsed response head and the framing it implies."""

    version: bytes  # b"HTTP/1.1"
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes, bytes]]  # (name, lowercased name, value)
    content_length: int | None  # None: chunked, or delimited by the connection's close
    chunked: bool
    keep_alive: bool
    encoded: bool  # a Content-Encoding other than identity


def obviously_not_a_response(buf: bytes | bytearray) -> bool:
    """Whether the first bytes already rule out a status line (so we need not wait for more).

    Catches a peer that speaks something else, or sends an empty line first, at once rather
    than at the read timeout.
    """
    n = min(len(buf), 5)
    return buf[:n] != b"HTTP/"[:n]


def head_end(buf: bytes | bytearray, start: int = 0) -> int:
    """The index just past the blank line that ends a head (``\\n\\r?\\n``, as h11 finds it),
    or -1 if it has not arrived yet. ``start`` skips bytes already searched."""
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return -1


_FRAMING_FIELDS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"content-encoding", b"connection"}
)


def parse_head(data: bytes) -> Head:
    """Parse one response head: ``data`` runs from the status line to the blank line
    (included), as :func:`head_end` delimits it.

    Written for speed (a typical head of ten fields in a few microseconds): the line-ending
    and control-character rules are checked once over the whole head with C-level scans,
    and only the few fields that decide framing are looked at twice.
    """
    if len(data) > MAX_HEAD:
        raise ProtocolViolation("response head too large")
    if data.endswith(b"\r\n\r\n"):
        text = data[:-4]
        lines = text.split(b"\r\n")
        breaks = len(lines) - 1
        if text.count(b"\n") != breaks or text.count(b"\r") != breaks:
            raise ProtocolViolation("bare CR or LF in the response head")
    elif b"\r" not in data:  # a head written with bare LF throughout (RFC 9112 2.2)
        lines = data[:-2].split(b"\n")
    else:
        raise ProtocolViolation("bare CR or LF in the response head")
    if len(data.translate(None, _BAD_IN_HEAD)) != len(data):
        raise ProtocolViolation("NUL or another forbidden control character in the response head")

    status_line = lines[0]
    if status_line[:7] != b"HTTP/1.":
        raise ProtocolViolation(f"unsupported HTTP version {status_line[:16]!r}")
    if len(status_line) < 12 or status_line[8:9] != b" " or status_line[12:13] not in (b"", b" "):
        raise ProtocolViolation(f"malformed status line {status_line[:64]!r}")
    minor = status_line[7:8]
    code = status_line[9:12]
    if not minor.isdigit() or not code.isdigit() or not 100 <= int(code) <= 599:
        raise ProtocolViolation(f"malformed status line {status_line[:64]!r}")
    version = status_line[:8]
    reason = status_line[13:]

    del lines[0]
    try:
        fields, framing = _fields(lines)
    except ProtocolViolation:
        # A folded line (starting with SP or HTAB) never passes as a field of its own, so
        # folding is looked for only here, off the common path.
        if b"\n " not in data and b"\n\t" not in data:
            raise
        fields, framing = _fields(_unfold(lines))
    return _framing(version, int(code), reason, fields, framing)


def _fields(
    lines: list[bytes],
) -> tuple[list[tuple[bytes, bytes, bytes]], list[tuple[bytes, bytes]]]:
    """The (name, lowercased name, value) triples httpx keeps, and the framing fields."""
    fields: list[tuple[bytes, bytes, bytes]] = []
    append = fields.append
    names: list[bytes] = []
    add_name = names.append
    framing: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or not name:
            raise ProtocolViolation(f"malformed header line {line[:64]!r}")
        add_name(name)
        lname = name.lower()
        value = value.strip(b" \t")
        append((name, lname, value))
        if lname in _FRAMING_FIELDS:
            framing.append((lname, value))
    # Names are tokens (which rules out whitespace before the colon, as h11 does): one
    # C-level pass over all of them; the culprit is looked for only on failure.
    if b"".join(names).translate(None, _TOKEN_CHARS):
        bad = next(name for name in names if name.translate(None, _TOKEN_CHARS))
        raise ProtocolViolation(f"malformed header name {bad[:64]!r}")
    return fields, framing


def _unfold(lines: list[bytes]) -> list[bytes]:
    """Obsolete line folding, unfolded as h11 does (see the module docstring)."""
    out: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not out:
                raise ProtocolViolation("continuation line at the start of the header fields")
            out[-1] = out[-1] + b" " + line.lstrip(b" \t")
        else:
            out.append(line)
    return out


def _framing(
    version: bytes,
    status: int,
    reason: bytes,
    fields: list[tuple[bytes, bytes, bytes]],
    framing: list[tuple[bytes, bytes]],
) -> Head:
    keep_alive = version != b"HTTP/1.0"
    length_text: bytes | None = None
    chunked = encoded = False
    for lname, value in framing:
        if lname == b"content-length":
            # h11's reading: a list of equal values is one value; different spellings of
            # the same number ("5" and "05") conflict.
            if value.isdigit():
                text = value
            else:
                values = {v.strip(b" \t") for v in value.split(b",")}
                if len(values) != 1:
                    raise ProtocolViolation("conflicting Content-Length headers")
                (text,) = values
            if not text.isdigit() or len(text) > MAX_LENGTH_DIGITS:
                raise ProtocolViolation(f"invalid Content-Length {value[:32]!r}")
            if length_text is not None and text != length_text:
                raise ProtocolViolation("conflicting Content-Length headers")
            length_text = text
        elif lname == b"transfer-encoding":
            # Exactly one transfer coding, chunked: anything else (gzip, "gzip, chunked",
            # "chunked, chunked", a second header) would hand back coded bytes as the body.
            if chunked:
                raise ProtocolViolation("more than one Transfer-Encoding header")
            if value.lower() != b"chunked":
                raise ProtocolViolation(f"unsupported Transfer-Encoding {value[:32]!r}")
            chunked = True
        elif lname == b"content-encoding":
            encoded = encoded or value.lower() not in (b"identity", b"")
        elif b"close" in [token.strip(b" \t") for token in value.lower().split(b",")]:
            keep_alive = False
    if chunked and length_text is not None:
        raise ProtocolViolation("both Transfer-Encoding and Content-Length in a response")
    content_length = None if length_text is None else int(length_text)
    if status in _NO_BODY_STATUS or status < 200:
        content_length = 0
        chunked = False
    elif content_length is None and not chunked:
        keep_alive = False  # the body runs to the connection's close
    return Head(version, status, reason, fields, content_length, chunked, keep_alive, encoded)


# --------------------------------------------------------------------------------------
# Response bodies


class BodyReader:
    """Takes body bytes out of a connection's buffer according to the message framing."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def take(self, buf: bytearray) -> bytes:
        """Consume what is available of the body from ``buf``; set ``done`` at its end."""
        raise NotImplementedError

    def at_eof(self, clean: bool) -> None:
        """The connection ended (``clean``: a FIN, not a reset or an error): finish, or
        raise if the body is incomplete."""
        raise ProtocolViolation("peer closed connection without sending complete message body")


class LengthReader(BodyReader):
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

    def at_eof(self, clean: bool) -> None:
        received = self.expected - self.remaining
        raise ProtocolViolation(
            "peer closed connection without sending complete message body: "
            f"received {received} bytes, expected {self.expected}"
        )


class CloseDelimitedReader(BodyReader):
    """A body with no length: it ends only at a clean close. A reset before it is an error,
    never a short body."""

    __slots__ = ()

    def take(self, buf: bytearray) -> bytes:
        data = bytes(buf)
        buf.clear()
        return data

    def at_eof(self, clean: bool) -> None:
        if not clean:
            raise ProtocolViolation(
                "connection lost before the end of a body delimited by the connection's close"
            )
        self.done = True


class ChunkedReader(BodyReader):
    """RFC 9112 7.1 chunked decoding; chunk extensions are skipped, trailers checked
    (as header fields, at most :data:`MAX_TRAILERS` bytes) and dropped."""

    __slots__ = ("remaining", "state", "trailer_bytes")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self.done = False
        self.state = self._SIZE
        self.remaining = 0
        self.trailer_bytes = 0

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
            if state == self._DATA_END:
                if buf[:2] != b"\r\n"[: len(buf)]:
                    raise ProtocolViolation("chunk data longer than its declared size")
                if len(buf) < 2:
                    break
                del buf[:2]
                self.state = self._SIZE
                continue
            limit = MAX_CHUNK_LINE if state == self._SIZE else MAX_TRAILERS - self.trailer_bytes
            end = buf.find(b"\n", 0, limit + 2)
            if end < 0:
                if len(buf) > limit:
                    if state == self._SIZE:
                        raise ProtocolViolation("chunk-size line too long")
                    raise ProtocolViolation("chunked trailer section too large")
                break
            if end == 0 or buf[end - 1] != 13:  # 13: CR
                raise ProtocolViolation("bare LF in chunked framing")
            line = bytes(buf[: end - 1])
            del buf[: end + 1]
            if state == self._SIZE:
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise ProtocolViolation(f"invalid chunk size line {line[:32]!r}")
                size = int(match.group(1), 16)
                if size:
                    self.remaining = size
                    self.state = self._DATA
                else:
                    self.state = self._TRAILER
            elif line:  # a trailer field: checked, then dropped (httpx has no place for it)
                self.trailer_bytes += len(line) + 2
                _check_trailer(line)
            else:
                self.done = True
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)


def _check_trailer(line: bytes) -> None:
    name, sep, _ = line.partition(b":")
    if (
        not sep
        or not name
        or name.translate(None, _TOKEN_CHARS)
        or b"\r" in line
        or len(line.translate(None, _BAD_IN_HEAD)) != len(line)
    ):
        raise ProtocolViolation(f"malformed trailer line {line[:32]!r}")


# --------------------------------------------------------------------------------------
# Request head


def serialize_request_head(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body_length: int | None,
) -> tuple[bytes, int | None]:
    """The request line, the headers and the blank line, each ending in CRLF.

    ``body_length`` is the length of a bytes body, or None for a streamed one. Returns the
    head and the framing of the body that follows: its length, or None for chunked. A
    caller's ``Content-Length`` or ``Transfer-Encoding`` must agree with the body (a
    disagreement would let the server read the surplus as a second request); without
    either, we add ``Content-Length`` for a bytes body (when it is not empty) and chunked
    framing for a stream.
    """
    if not method or method.translate(None, _TOKEN_CHARS):
        raise LocalViolation("Illegal method")
    if not target or _BAD_TARGET.search(target) is not None:
        raise LocalViolation("Illegal request target")
    lines = [method + b" " + target + b" HTTP/1.1"]
    append = lines.append
    declared: bytes | None = None
    coding: bytes | None = None
    names: list[bytes] = []
    add_name = names.append
    for name, value in headers:
        if not name:
            raise LocalViolation("Illegal header name")
        add_name(name)
        if len(name) in (14, 17):  # the lengths of content-length and transfer-encoding
            lname = name.lower()
            if lname == b"content-length":
                if declared is not None and value != declared:
                    raise LocalViolation("conflicting Content-Length headers")
                declared = value
            elif lname == b"transfer-encoding":
                if coding is not None:
                    raise LocalViolation("more than one Transfer-Encoding header")
                coding = value
        append(name + b": " + value)

    framing: int | None
    if coding is not None:
        if declared is not None:
            raise LocalViolation("both Content-Length and Transfer-Encoding given")
        if coding.lower() != b"chunked":
            raise LocalViolation("Transfer-Encoding must be chunked")
        framing = None
    elif declared is not None:
        if not declared.isdigit() or len(declared) > MAX_LENGTH_DIGITS:
            raise LocalViolation("invalid Content-Length")
        framing = int(declared)
        if body_length is not None and framing != body_length:
            raise LocalViolation(
                f"Content-Length {framing} does not match the body's {body_length} bytes"
            )
    elif body_length is None:
        append(b"Transfer-Encoding: chunked")
        framing = None
    else:
        if body_length:
            append(b"Content-Length: %d" % body_length)
        framing = body_length
    if b"".join(names).translate(None, _TOKEN_CHARS):
        raise LocalViolation("Illegal header name")
    append(b"\r\n")
    head = b"\r\n".join(lines)
    # One C-level count instead of a check per value: a CR or LF inside a name or value
    # (header injection) shows up as extra line breaks; other controls by one scan.
    breaks = len(lines)
    if (
        head.count(b"\n") != breaks
        or head.count(b"\r") != breaks
        or len(head.translate(None, _CTL)) != len(head)
    ):
        raise LocalViolation("Illegal header value")
    return head, framing
