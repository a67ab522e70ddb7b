"""The HTTP/1.1 codec on literal bytes: no sockets, no event loop.

Each refused case here used to be accepted (or hung) by the transport on the first
release, and handed back wrong bytes; each accepted case is one h11 accepts too.
"""

from __future__ import annotations

import pytest

from sagemaker_async._io.http11.codec import (
    MAX_CHUNK_LINE,
    MAX_HEAD,
    MAX_TRAILERS,
    ChunkedReader,
    CloseDelimitedReader,
    LengthReader,
    LocalViolation,
    ProtocolViolation,
    head_end,
    obviously_not_a_response,
    parse_head,
    serialize_request_head,
)

# -- the end of a head ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buf", "end"),
    [
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", 25),
        (b"HTTP/1.1 200 OK\nA: b\n\nbody", 22),  # bare LF throughout: found, not waited for
        (b"HTTP/1.1 200 OK\r\nA: b\n\r\nbody", 24),  # found (then refused by parse_head)
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\nbody", 24),
        (b"HTTP/1.1 200 OK\nA: b\n\n\r\n\r\n", 22),  # the first blank line ends it
        (b"HTTP/1.1 200 OK\r\nA: b\r\n", -1),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r", -1),
    ],
)
def test_head_end_finds_the_blank_line_as_h11_does(buf: bytes, end: int) -> None:
    assert head_end(buf) == end


def test_head_end_resumes_where_it_stopped() -> None:
    buf = bytearray(b"HTTP/1.1 200 OK\r\n\r")
    assert head_end(buf) == -1
    start = len(buf) - 2
    buf += b"\n"
    assert head_end(buf, start) == len(buf)


@pytest.mark.parametrize("buf", [b"\r\n", b"\n", b"SSH-2", b"http/", b"<html>", b"\x16\x03\x01"])
def test_an_answer_that_cannot_be_http_is_known_at_once(buf: bytes) -> None:
    assert obviously_not_a_response(buf)


@pytest.mark.parametrize("buf", [b"H", b"HTTP", b"HTTP/", b"HTTP/1.1 2"])
def test_a_partial_status_line_is_waited_for(buf: bytes) -> None:
    assert not obviously_not_a_response(buf)


# -- status line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "status", "reason", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK", 200, b"OK", True),
        (b"HTTP/1.1 200", 200, b"", True),
        (b"HTTP/1.1 200 ", 200, b"", True),
        (b"HTTP/1.1 404 Not\tFound here", 404, b"Not\tFound here", True),
        (b"HTTP/1.0 200 OK", 200, b"OK", False),
        (b"HTTP/1.2 200 OK", 200, b"OK", True),  # RFC 9110 2.5: treat as 1.1
        (b"HTTP/1.1 599 Odd", 599, b"Odd", True),
        (b"HTTP/1.1 200 \xe9t\xe9", 200, b"\xe9t\xe9", True),  # obs-text
    ],
)
def test_status_lines_accepted(line: bytes, status: int, reason: bytes, keep_alive: bool) -> None:
    head = parse_head(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert (head.status, head.reason, head.keep_alive) == (status, reason, keep_alive)


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/2 200 OK",
        b"HTTP/2.0 200 OK",
        b"HTTP/0.9 200 OK",
        b"HTTP/1.x 200 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2x0 OK",
        b"HTTP/1.1 099 Low",
        b"HTTP/1.1 600 High",
        b"HTTP/1.1 999 High",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1\t200 OK",
        b"HTTP/1.1 200\tOK",
        b"http/1.1 200 OK",
        b" HTTP/1.1 200 OK",
        b"",
    ],
)
def test_status_lines_refused(line: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_head(line + b"\r\nContent-Length: 0\r\n\r\n")


# -- line endings and characters ---------------------------------------------------------------


def test_a_head_in_bare_lf_throughout_is_read() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\nContent-Length: 3\nX-A: b\n\n")
    assert head.content_length == 3
    assert head.headers == [(b"Content-Length", b"content-length", b"3"), (b"X-A", b"x-a", b"b")]


@pytest.mark.parametrize(
    "raw",
    [
        # A bare LF inside a CRLF head hid a Content-Length line: the body came back with
        # trailing junk. (h11 splits there and reads two fields; we refuse.)
        b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\nX-A: b\r\nContent-Length: 5\n\n",
        b"HTTP/1.1 200 OK\r\nX-A: b\rContent-Length: 5\r\n\r\n",  # bare CR
        b"HTTP/1.1 200 OK\r\nX-A: b\r\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n\n",  # CRLF head ending in a bare LF
        b"HTTP/1.1 200 OK\nX-A: b\n\r\n",  # LF head ending in a CRLF
        b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\n\r\n",  # NUL
        b"HTTP/1.1 200 OK\r\nX-A: b\x0bc\r\n\r\n",  # VT
        b"HTTP/1.1 200 OK\r\nX-A: b\x0cc\r\n\r\n",  # FF
        b"HTTP/1.1 200 O\x00K\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX A: b\r\n\r\n",  # a space in a name
        b"HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",  # space before the colon
        b"HTTP/1.1 200 OK\r\n\tX-A: b\r\n\r\n",  # a continuation at the start
        b"HTTP/1.1 200 OK\r\n: b\r\n\r\n",  # empty name
        b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-\xe9: b\r\n\r\n",  # a name that is not a token
        b"HTTP/1.1 200 OK\r\nX(A): b\r\n\r\n",
    ],
)
def test_heads_refused(raw: bytes) -> None:
    assert head_end(raw) == len(raw)
    with pytest.raises(ProtocolViolation):
        parse_head(raw)


def test_other_control_characters_in_values_are_kept_as_h11_keeps_them() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-A: b\x01c\x7f\r\n\r\n")
    assert head.headers == [(b"X-A", b"x-a", b"b\x01c\x7f")]


def test_values_lose_surrounding_whitespace_and_keep_inner() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nX-E2:  \r\n\r\n")
    assert [value for _, _, value in head.headers] == [b"a \t b", b"", b""]


def test_obsolete_line_folding_is_unfolded_as_h11_does() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree\r\nX-B: c\r\n\r\n")
    assert head.headers == [(b"X-A", b"x-a", b"one two three"), (b"X-B", b"x-b", b"c")]


def test_a_folded_content_length_is_still_checked() -> None:
    with pytest.raises(ProtocolViolation, match="Content-Length"):
        parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n 5\r\n\r\n")


def test_the_head_size_limit_does_not_depend_on_how_the_bytes_arrived() -> None:
    big = b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * MAX_HEAD + b"\r\n\r\n"
    with pytest.raises(ProtocolViolation, match="too large"):
        parse_head(big)  # the whole head in one read: still refused
    fits = b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * (MAX_HEAD - 100) + b"\r\n\r\n"
    assert parse_head(fits).status == 200


# -- framing ------------------------------------------------------------------------------------


def framing(*fields: bytes, status: bytes = b"200 OK", version: bytes = b"HTTP/1.1") -> tuple:
    head = parse_head(
        version + b" " + status + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    )
    return head.content_length, head.chunked, head.keep_alive


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((b"Content-Length: 5",), (5, False, True)),
        ((b"Content-Length: 5", b"content-length: 5"), (5, False, True)),
        ((b"Content-Length: 5, 5",), (5, False, True)),
        ((b"Content-Length: " + b"9" * 20,), (int(b"9" * 20), False, True)),
        ((b"Transfer-Encoding: chunked",), (None, True, True)),
        ((b"Transfer-Encoding: Chunked",), (None, True, True)),
        ((), (None, False, False)),  # to the close: never reused
        ((b"Content-Length: 5", b"Connection: close"), (5, False, False)),
        ((b"Content-Length: 5", b"Connection: keep-alive, Close"), (5, False, False)),
    ],
)
def test_framing(fields: tuple[bytes, ...], expected: tuple) -> None:
    assert framing(*fields) == expected


@pytest.mark.parametrize(
    "fields",
    [
        (b"Content-Length: 5", b"Content-Length: 6"),
        (b"Content-Length: 5, 6",),
        (b"Content-Length: 5,",),
        (b"Content-Length: 5", b"Content-Length: 05"),  # h11: different spellings conflict
        (b"Content-Length: -1",),
        (b"Content-Length: +5",),
        (b"Content-Length: 0x5",),
        (b"Content-Length: ",),
        (b"Content-Length: " + b"9" * 21,),
        # Exactly one transfer coding, chunked: these were passed through, and raw gzip or
        # raw chunk framing came back as the body.
        (b"Transfer-Encoding: gzip",),
        (b"Transfer-Encoding: gzip, chunked",),
        (b"Transfer-Encoding: chunked, chunked",),
        (b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"),
        (b"Transfer-Encoding: identity",),
        (b"Transfer-Encoding: ",),
        # Both: a smuggling pattern (RFC 9112 6.3), refused.
        (b"Transfer-Encoding: chunked", b"Content-Length: 5"),
    ],
)
def test_framing_refused(fields: tuple[bytes, ...]) -> None:
    with pytest.raises(ProtocolViolation):
        framing(*fields)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified", b"100 Continue"])
def test_statuses_without_a_body(status: bytes) -> None:
    assert framing(b"Content-Length: 5", status=status)[0] == 0


def test_http_1_0_is_never_kept_alive() -> None:
    assert framing(b"Content-Length: 5", version=b"HTTP/1.0") == (5, False, False)


def test_content_encoding_is_reported_not_acted_on() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n")
    assert head.encoded
    assert head.content_length == 3


# -- bodies -------------------------------------------------------------------------------------


def test_a_close_delimited_body_ends_only_at_a_clean_close() -> None:
    reader = CloseDelimitedReader()
    assert reader.take(bytearray(b"partial")) == b"partial"
    with pytest.raises(ProtocolViolation, match="connection lost"):
        reader.at_eof(clean=False)  # a reset: never a short body
    assert not reader.done
    reader.at_eof(clean=True)
    assert reader.done


def test_a_length_body_cut_short_is_an_error() -> None:
    reader = LengthReader(10)
    assert reader.take(bytearray(b"short")) == b"short"
    with pytest.raises(ProtocolViolation, match="received 5 bytes, expected 10"):
        reader.at_eof(clean=True)


def test_a_length_body_leaves_what_follows() -> None:
    reader = LengthReader(3)
    buf = bytearray(b"abcHTTP/1.1")
    assert reader.take(buf) == b"abc"
    assert reader.done
    assert buf == b"HTTP/1.1"


def decode(data: bytes, *, step: int | None = None) -> tuple[bytes, bytes]:
    """The chunked body in ``data`` and what is left after it; fed in pieces of ``step``."""
    reader = ChunkedReader()
    buf = bytearray()
    out = []
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for n, piece in enumerate(pieces):
        buf += piece
        out.append(reader.take(buf))
        if reader.done:
            buf += b"".join(pieces[n + 1 :])
            break
    assert reader.done, "the body did not end"
    return b"".join(out), bytes(buf)


@pytest.mark.parametrize(
    "raw",
    [
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b'5;name=value\r\nhello\r\n6;a;b="c"\r\n world\r\n0\r\n\r\n',
        b"5 ;ext\r\nhello\r\n6\t\r\n world\r\n0\r\n\r\n",  # BWS (RFC 9112 7.1.1)
        b"0005\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: a\r\nY: b\r\n\r\n",
    ],
)
def test_chunked_bodies(raw: bytes) -> None:
    assert decode(raw + b"NEXT") == (b"hello world", b"NEXT")
    assert decode(raw + b"NEXT", step=1) == (b"hello world", b"NEXT")


@pytest.mark.parametrize(
    "raw",
    [
        b"5\r\nhelloX\r\n0\r\n\r\n",  # data longer than its size
        b"5\r\nhello\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",  # bare LF ends a size line
        b"5\r\nhello\r\n0\n\n",
        b"zz\r\n",
        b"-5\r\n",
        b"\r\n",
        b" 5\r\n",
        b"5\rx\r\n",
        b"0x5\r\nhello\r\n",
        b"1" * 21 + b"\r\n",  # more than 20 hex digits
        b"0\r\nno colon\r\n\r\n",
        b"0\r\nBad Name: x\r\n\r\n",
        b"0\r\nX: a\x00b\r\n\r\n",
        b"0\r\nX: a\n\r\n",
        b"0\r\n folded: x\r\n\r\n",
    ],
)
def test_chunked_bodies_refused(raw: bytes) -> None:
    for step in (None, 1):
        with pytest.raises(ProtocolViolation):
            decode(raw, step=step)


def test_a_chunk_size_line_is_bounded() -> None:
    reader = ChunkedReader()
    with pytest.raises(ProtocolViolation, match="too long"):
        reader.take(bytearray(b"5;" + b"x" * MAX_CHUNK_LINE))
    # Byte by byte: the same verdict once the line passes the limit.
    reader = ChunkedReader()
    buf = bytearray(b"5;")
    while len(buf) <= MAX_CHUNK_LINE:
        assert reader.take(buf) == b""
        buf += b"x"
    with pytest.raises(ProtocolViolation, match="too long"):
        reader.take(buf)


def test_trailers_are_bounded() -> None:
    trailers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(MAX_TRAILERS // 100))
    with pytest.raises(ProtocolViolation, match="trailer section too large"):
        decode(b"0\r\n" + trailers + b"\r\n")
    with pytest.raises(ProtocolViolation, match="trailer section too large"):
        decode(b"0\r\n" + trailers + b"\r\n", step=1000)


def test_an_unfinished_chunked_body_is_an_error_at_eof() -> None:
    reader = ChunkedReader()
    reader.take(bytearray(b"5\r\nhel"))
    with pytest.raises(ProtocolViolation, match="complete message body"):
        reader.at_eof(clean=True)


# -- the request head -----------------------------------------------------------------------


def serialize(
    headers: list[tuple[bytes, bytes]], length: int | None = 0, *, method: bytes = b"POST"
) -> tuple[bytes, int | None]:
    return serialize_request_head(method, b"/a?b=c", headers, length)


def test_a_request_head_in_literal_bytes() -> None:
    head, framing = serialize([(b"Host", b"h"), (b"X-A", b"b\tc")], 3)
    assert head == b"POST /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: b\tc\r\nContent-Length: 3\r\n\r\n"
    assert framing == 3


def test_framing_we_add() -> None:
    assert serialize([(b"Host", b"h")], 0, method=b"GET") == (
        b"GET /a?b=c HTTP/1.1\r\nHost: h\r\n\r\n",
        0,
    )
    assert serialize([(b"Host", b"h")], None) == (
        b"POST /a?b=c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        None,
    )


@pytest.mark.parametrize(
    ("headers", "length", "framing"),
    [
        ([(b"Content-Length", b"3")], 3, 3),
        ([(b"content-length", b"3"), (b"Content-Length", b"3")], 3, 3),
        ([(b"Content-Length", b"7")], None, 7),  # a stream, its length declared
        ([(b"Transfer-Encoding", b"chunked")], None, None),
        ([(b"Transfer-Encoding", b"Chunked")], 3, None),  # bytes, sent chunked as asked
    ],
)
def test_a_callers_framing_that_agrees_with_the_body(
    headers: list[tuple[bytes, bytes]], length: int | None, framing: int | None
) -> None:
    head, got = serialize(headers, length)
    assert got == framing
    # Nothing added: the caller's own framing headers go out as given.
    lowered = head.lower()
    assert lowered.count(b"content-length") + lowered.count(b"transfer-encoding") == len(headers)


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        # The surplus bytes used to go out as a second request.
        ([(b"Content-Length", b"2")], 5),
        ([(b"Content-Length", b"9")], 5),
        ([(b"Content-Length", b"5"), (b"Content-Length", b"6")], 5),
        ([(b"Content-Length", b"5, 5")], 5),
        ([(b"Content-Length", b"-5")], 5),
        ([(b"Content-Length", b"")], 0),
        ([(b"Content-Length", b"x")], None),
        ([(b"Transfer-Encoding", b"gzip")], None),
        ([(b"Transfer-Encoding", b"gzip, chunked")], None),
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], None),
        ([(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")], 5),
    ],
)
def test_a_callers_framing_that_disagrees_is_refused(
    headers: list[tuple[bytes, bytes]], length: int | None
) -> None:
    with pytest.raises(LocalViolation):
        serialize(headers, length)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        (b"PO ST", []),
        (b"", []),
        (b"GET\r\nX: y", []),
        (b"POST", [(b"X A", b"b")]),
        (b"POST", [(b"", b"b")]),
        (b"POST", [(b"X:A", b"b")]),
        (b"POST", [(b"X-A\r\n", b"b")]),
        (b"POST", [(b"X-A", b"b\r\nContent-Length: 0")]),
        (b"POST", [(b"X-A", b"b\nc")]),
        (b"POST", [(b"X-A", b"b\rc")]),
        (b"POST", [(b"X-A", b"b\x00c")]),
        (b"POST", [(b"X-A", b"b\x1bc")]),
    ],
)
def test_illegal_request_heads_are_refused(
    method: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(LocalViolation):
        serialize_request_head(method, b"/", headers, 0)


@pytest.mark.parametrize("target", [b"/a b", b"/a\r\nb", b"/a\x00", b"", b"/\xe9"])
def test_illegal_request_targets_are_refused(target: bytes) -> None:
    with pytest.raises(LocalViolation, match="target"):
        serialize_request_head(b"GET", target, [], 0)
