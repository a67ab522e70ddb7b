"""The local endpoint's HTTP/1.1 server at the byte level: what SDKs rely on from a server.

Raw sockets on 127.0.0.1, so nothing between the test and the server hides a protocol bug:
keep-alive, ``Expect: 100-continue`` (botocore's S3 uploads wait for it), chunked bodies,
HEAD, malformed input, an application error, and a close that drops idle connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sagemaker_async.local._http import HttpServer, Request, Response

seen: list[Request] = []


async def app(request: Request) -> Response:
    seen.append(request)
    if request.path == "/boom":
        raise RuntimeError("application bug")
    if request.method == "HEAD":
        return Response(200, [("Content-Length", "1234"), ("ETag", '"x"')])
    return Response(200, [("Content-Type", "text/plain")], b"echo:" + request.body)


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    seen.clear()
    http = HttpServer(app)
    await http.start()
    yield http
    await http.aclose()


async def open_to(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    body = await reader.readexactly(length) if length and not status.startswith(b"HEAD") else b""
    return status, headers, body


async def test_keep_alive_serves_several_requests_on_one_connection(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    for body in (b"one", b"two"):
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        status, headers, answer = await read_response(reader)
        assert status == b"HTTP/1.1 200 OK"
        assert answer == b"echo:" + body
        assert b"date" in headers
    writer.close()
    await writer.wait_closed()


async def test_expect_100_continue_is_answered_before_the_body(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(
        b"PUT /bucket/key HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(b"data")
    _, _, body = await read_response(reader)
    assert body == b"echo:data"
    writer.close()
    await writer.wait_closed()


async def test_a_chunked_body_arrives_whole(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    _, _, body = await read_response(reader)
    assert body == b"echo:abcde"
    assert seen[-1].body == b"abcde"
    writer.close()
    await writer.wait_closed()


async def test_head_keeps_the_length_of_the_body_it_would_have(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(b"HEAD /bucket/key HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"Content-Length: 1234" in head
    # No body follows: the next request on the connection is answered normally.
    writer.write(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, body = await read_response(reader)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"echo:")
    writer.close()
    await writer.wait_closed()


async def test_the_raw_request_is_handed_over_unchanged(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(
        b"POST /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: h\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
        b"X-Utf8: s3://b/\xc3\xbc\r\nContent-Length: 0\r\n\r\n"
    )
    await read_response(reader)
    request = seen[-1]
    assert (request.method, request.target) == ("POST", b"/a%20b/c?x=1&y=%2F")
    assert (request.path, request.query) == ("/a%20b/c", "x=1&y=%2F")
    assert [v for n, v in request.headers if n == b"x-twice"] == [b"1", b"2"]
    assert request.header("x-utf8") == "s3://b/ü".encode()
    writer.close()
    await writer.wait_closed()


async def test_malformed_requests_get_400_and_a_closed_connection(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status.startswith(b"HTTP/1.1 400")
    assert headers[b"connection"] == b"close"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()


async def test_an_application_error_is_a_500_in_the_service_shape(server: HttpServer) -> None:
    reader, writer = await open_to(server)
    writer.write(b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert headers[b"x-amzn-errortype"] == b"InternalFailure"
    assert b"internal error" in body
    writer.close()
    await writer.wait_closed()


async def test_close_drops_idle_keep_alive_connections() -> None:
    server = HttpServer(app)
    await server.start()
    reader, writer = await open_to(server)
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    await read_response(reader)  # the connection now idles, kept alive
    await server.aclose()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
