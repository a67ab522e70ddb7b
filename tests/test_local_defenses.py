"""The local endpoint against hostile HTTP, on raw sockets: limits decided on the head
(before any body byte and before ``100 Continue``), deadlines, the connection cap, framing
tricks, and paths no operation serves — each answered cheaply and in the service's shape."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from sagemaker_async.local import LocalEndpoint
from sagemaker_async.local._http import Limits
from test_local_support import s3_request, warm_moto

__all__ = ["warm_moto"]

pytestmark = pytest.mark.usefixtures("warm_moto")

INVOKE = b"/endpoints/e/async-invocations"


@pytest.fixture
async def local() -> AsyncIterator[LocalEndpoint]:
    limits = Limits(max_connections=8, header_timeout=0.3, idle_timeout=0.3, body_timeout=0.3,
                    spool_threshold=64 * 1024)  # fmt: skip
    async with LocalEndpoint({"e": bytes.upper}, limits=limits) as endpoint:
        yield endpoint


@pytest.fixture
async def authenticated() -> AsyncIterator[LocalEndpoint]:
    async with LocalEndpoint({"e": bytes.upper}, credentials="AKID:SECRET") as endpoint:
        yield endpoint


async def _connect(local: LocalEndpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", local.port)


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(status_line.split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_an_oversized_invocation_is_refused_on_its_head_without_100_continue(
    local: LocalEndpoint,
) -> None:
    reader, writer = await _connect(local)
    writer.write(
        b"POST " + INVOKE + b" HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        b"Content-Length: 500000000\r\n\r\n"
    )
    status, headers, body = await _response(reader)  # the first answer: not a 100
    assert status == 400
    assert headers[b"x-amzn-errortype"].startswith(b"ValidationError:")
    assert b"less than or equal to 128000" in body
    assert await _closed(reader)
    writer.close()


async def test_an_s3_put_over_5_gb_is_refused_on_its_head(local: LocalEndpoint) -> None:
    reader, writer = await _connect(local)
    writer.write(
        f"PUT /{local.bucket}/big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
        f"Content-Length: {5 * 1024**3 + 1}\r\n\r\n".encode()
    )
    status, _, body = await _response(reader)
    assert status == 400
    assert b"<Code>EntityTooLarge</Code>" in body
    assert await _closed(reader)
    writer.close()


async def test_unauthenticated_uploads_get_no_100_continue(authenticated: LocalEndpoint) -> None:
    for target in (INVOKE, f"/{authenticated.bucket}/k".encode()):
        method = b"POST" if target == INVOKE else b"PUT"
        reader, writer = await _connect(authenticated)
        writer.write(
            method + b" " + target + b" HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        status, _, _ = await _response(reader)
        assert status == 403
        assert await _closed(reader)
        writer.close()


async def test_a_chunked_body_past_the_limit_is_cut_off(local: LocalEndpoint) -> None:
    reader, writer = await _connect(local)
    writer.write(b"POST " + INVOKE + b" HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(3):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, _, body = await _response(reader)
    assert status == 400
    assert b"128000" in body
    assert await _closed(reader)
    writer.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
)
async def test_framing_tricks_are_refused_and_the_connection_closed(
    local: LocalEndpoint, head: bytes
) -> None:
    reader, writer = await _connect(local)
    writer.write(head + b"hello0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, _ = await _response(reader)
    assert status in (400, 501)  # 501: a transfer coding it does not implement (RFC 9112)
    assert await _closed(reader)  # the smuggled second request is never answered
    writer.close()


async def test_a_slow_head_gets_408_and_is_closed(local: LocalEndpoint) -> None:
    reader, writer = await _connect(local)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")  # and never the blank line
    status, _, _ = await _response(reader)
    assert status == 408
    assert await _closed(reader)
    writer.close()


async def test_an_idle_connection_is_closed(local: LocalEndpoint) -> None:
    reader, writer = await _connect(local)
    assert await _closed(reader)
    writer.close()


async def test_a_stalled_body_gets_408_and_is_closed(local: LocalEndpoint) -> None:
    reader, writer = await _connect(local)
    writer.write(b"POST " + INVOKE + b" HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    status, _, _ = await _response(reader)
    assert status == 408
    assert await _closed(reader)
    writer.close()


async def test_past_the_connection_cap_a_clean_503_then_service_resumes() -> None:
    async with LocalEndpoint({"e": bytes.upper}, limits=Limits(max_connections=4)) as local:
        # Silent connections: the server holds each until its idle deadline.
        held = [await _connect(local) for _ in range(4)]
        reader, writer = await _connect(local)
        status, headers, _ = await _response(reader)
        assert (status, headers[b"connection"]) == (503, b"close")
        assert await _closed(reader)
        writer.close()
        for _, w in held:
            w.close()
            await w.wait_closed()
        for _ in range(100):  # the server sees the closes as they arrive
            response = await s3_request(local, "GET", f"s3://{local.bucket}/missing")
            if response.status == 404:
                break
        assert response.status == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        (b"POST", b"/endpoints/e/invocations", 400, b"ValidationError"),
        (b"POST", b"/endpoints/e/async-invocations/", 404, b"UnknownOperationException"),
        (b"GET", b"/endpoints/e/async-invocations", 404, b"UnknownOperationException"),
        (b"POST", b"/endpoints/e", 404, b"UnknownOperationException"),
        (b"POST", b"/endpoints/", 404, b"UnknownOperationException"),
    ],
)
async def test_runtime_paths_without_an_operation_answer_in_the_services_shape(
    local: LocalEndpoint, method: bytes, path: bytes, status: int, code: bytes
) -> None:
    reader, writer = await _connect(local)
    writer.write(method + b" " + path + b" HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}")
    got, headers, body = await _response(reader)
    assert got == status
    assert headers[b"x-amzn-errortype"].split(b":")[0] == code
    assert "message" in json.loads(body)
    writer.close()


async def test_odd_s3_requests_are_client_errors_never_500(local: LocalEndpoint) -> None:
    for request in (
        b"POST /"
        + local.bucket.encode()
        + b"/k?nonsense HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        b"PATCH /x/y HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    ):
        reader, writer = await _connect(local)
        writer.write(request)
        status, _, _ = await _response(reader)
        assert 400 <= status < 500, request
        writer.close()


async def test_a_large_put_is_spooled_and_stored_intact(local: LocalEndpoint) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: past the 64 KiB spool threshold set above
    put = await s3_request(local, "PUT", f"s3://{local.bucket}/big", data)
    assert put.status == 200
    got = await s3_request(local, "GET", f"s3://{local.bucket}/big")
    assert hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()


def test_the_connection_cap_stays_within_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    from sagemaker_async.local._http import HttpServer, Response

    async def app(request: object) -> Response:
        return Response(200)

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    assert HttpServer(app)._max_connections == 128
    assert HttpServer(app, limits=Limits(max_connections=8))._max_connections == 8
