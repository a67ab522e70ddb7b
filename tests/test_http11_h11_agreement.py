"""Our codec and h11 agree on generated and mutated responses: same verdict, same framing
(the same body), same header fields.

The only disagreements allowed are the codec's documented ones (see its module docstring),
each recognised here from the input by a rule of its own, not by asking our codec: a head
with mixed line endings or a bare CR, a status code of 600-999 or a version other than
HTTP/1.x, Transfer-Encoding with Content-Length, and chunked framing that is not CRLF
throughout (where we refuse and h11 accepts); whitespace before a chunk extension (where
we accept, as RFC 9112 does, and h11 refuses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h11
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sagemaker_async._io.http11.codec import (
    ChunkedReader,
    CloseDelimitedReader,
    LengthReader,
    ProtocolViolation,
    head_end,
    obviously_not_a_response,
    parse_head,
)

_FRAMING = {b"content-length", b"transfer-encoding"}


@dataclass(frozen=True)
class Outcome:
    status: int
    fields: tuple[tuple[bytes, bytes], ...]  # lowercased names; framing fields left out
    body: bytes


def h11_reads(data: bytes) -> Outcome | None:
    """What h11 makes of ``data`` followed by a clean close; None: an error."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "example.com")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    response = None
    body = []
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None
    assert response is not None
    fields = tuple((name, bytes(value)) for name, value in response.headers if name not in _FRAMING)
    return Outcome(response.status_code, fields, b"".join(body))


def ours_reads(data: bytes) -> Outcome | None:
    """What our codec makes of ``data`` followed by a clean close; None: an error."""
    buf = bytearray(data)
    try:
        while True:
            if buf and obviously_not_a_response(buf):
                return None
            end = head_end(buf)
            if end < 0:
                return None  # the connection closed inside the head
            head = parse_head(bytes(buf[:end]))
            del buf[:end]
            if head.status == 101:
                return None
            if head.status >= 200:
                break
        if head.content_length is not None:
            reader: LengthReader | ChunkedReader | CloseDelimitedReader
            reader = LengthReader(head.content_length)
        elif head.chunked:
            reader = ChunkedReader()
        else:
            reader = CloseDelimitedReader()
        body = reader.take(buf)
        if not reader.done:
            reader.at_eof(True)
    except ProtocolViolation:
        return None
    fields = tuple((lname, value) for _, lname, value in head.headers if lname not in _FRAMING)
    return Outcome(head.status, fields, body)


# -- the documented differences, recognised from the input ------------------------------------

_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS = re.compile(rb"HTTP/(\d)\.\d (\d{3})")


def _heads(data: bytes) -> list[bytes]:
    """The heads h11 would read (interim ones, then the final one), as raw bytes."""
    heads: list[bytes] = []
    rest = data
    while True:
        match = _HEAD_END.search(rest)
        if match is None:
            return heads
        head, rest = rest[: match.end()], rest[match.end() :]
        heads.append(head)
        status = _STATUS.match(head)
        if status is None or not head.startswith(b"HTTP/") or int(status.group(2)) >= 200:
            return heads


def _mixed_line_endings(head: bytes) -> bool:
    crlf = head.count(b"\r\n")
    all_crlf = head.endswith(b"\r\n\r\n") and head.count(b"\n") == crlf == head.count(b"\r")
    return not all_crlf and b"\r" in head


def we_refuse_what_h11_takes(data: bytes) -> bool:
    heads = _heads(data)
    for head in heads:
        if _mixed_line_endings(head):
            return True
        status = _STATUS.match(head)
        if status is not None and (status.group(1) != b"1" or int(status.group(2)) >= 600):
            return True
        lowered = head.lower()
        if b"\ntransfer-encoding:" in lowered and b"\ncontent-length:" in lowered:
            return True
    if heads and b"\ntransfer-encoding:" in heads[-1].lower():
        body = data[sum(map(len, heads)) :]
        if re.search(rb"(?<!\r)\n|\r(?!\n)|\r\n[ \t]", body):
            return True  # chunked framing that is not CRLF throughout, or a folded trailer
    return False


def we_take_what_h11_refuses(data: bytes) -> bool:
    return re.search(rb"(?:^|\n)[0-9A-Fa-f]+[ \t]+;", data) is not None  # BWS (RFC 9112)


# -- generated responses -----------------------------------------------------------------------

STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 200",
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 503 Slow Down",
        b"HTTP/1.1 599 Odd",
        b"HTTP/1.1 600 Odd",
        b"HTTP/2.0 200 OK",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
    ]
)
NAMES = st.sampled_from(
    [
        b"Content-Length",
        b"content-length",
        b"Transfer-Encoding",
        b"Connection",
        b"Content-Encoding",
        b"Content-Type",
        b"X-Amzn-RequestId",
        b"x-a",
        b"X-Amz-Id-2",
        b"ETag",
        b"Bad Name",
        b"X(a)",
        b"",
    ]
)
_ODD_VALUES = st.binary(max_size=8)
VALUES = st.one_of(
    st.sampled_from(
        [
            b"chunked",
            b"Chunked",
            b"gzip",
            b"gzip, chunked",
            b"chunked, chunked",
            b"identity",
            b"close",
            b"keep-alive",
            b"0",
            b"5",
            b"05",
            b"5, 5",
            b"5,6",
            b"-1",
            b" 7 ",
            b"",
            b"a \t b",
            b"\xe9t\xe9",
            b"1" * 21,
        ]
    ),
    st.sampled_from([b"text/plain", b"rid-1", b'"etag"', b"x"]),
    st.sampled_from([b"text/plain", b"rid-1", b'"etag"', b"x"]),
    _ODD_VALUES,
)
SPECIAL = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b"0", b"a", b";"]
)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [draw(STATUS_LINES)]
    lines += [
        name + b": " + value for name, value in draw(st.lists(st.tuples(NAMES, VALUES), max_size=5))
    ]
    if draw(st.booleans()):  # a folded continuation line
        lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from([b" more", b"\tmore"])))
    payload = draw(st.binary(max_size=24))
    style = draw(st.sampled_from(["raw", "chunked", "chunked-ext-trailer", "chunked-bws"]))
    if style == "raw":
        body = payload
    else:
        ext = {"chunked": b"", "chunked-ext-trailer": b";a=b", "chunked-bws": b" ;a"}[style]
        pieces = [payload[i : i + 7] for i in range(0, len(payload), 7)]
        body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces) + b"0\r\n"
        body += b"X-T: t\r\n\r\n" if style == "chunked-ext-trailer" else b"\r\n"
    data = bytearray(end.join(lines) + end + end + body)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):  # mutations, anywhere
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "delete":
            del data[at : at + 1]
        else:
            special = draw(SPECIAL)
            data[at : at + (action == "replace")] = special
    return bytes(data)


@given(responses())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 5\r\n\r\nhelloJUNK")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;x\r\nhello\r\n0\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok")
@example(b"HTTP/1.1 599 Odd\n\n\r\n\r\n")  # found by this test: the first blank line
@example(b"HTTP/1.1 200 OK\r\nConnection: \x01\r\n\r\n")  # ... and h11 keeps such controls
def test_our_codec_and_h11_agree(data: bytes) -> None:
    theirs = h11_reads(data)
    ours = ours_reads(data)
    if ours == theirs:
        return
    if ours is None and theirs is not None:
        assert we_refuse_what_h11_takes(data), (data, theirs)
    elif theirs is None and ours is not None:
        assert we_take_what_h11_refuses(data), (data, ours)
    else:  # both read it, differently: never allowed
        raise AssertionError((data, ours, theirs))
