"""Micro-benchmark: LeanTransport against httpx's default transport (httpcore).

A tiny asyncio.Protocol HTTP/1.1 server runs in its own process on 127.0.0.1 and answers
every request with a canned InvokeEndpointAsync-like 202 response. Each client run is a
fresh process that calls ``transport.handle_async_request`` directly with prebuilt
``httpx.Request`` objects (no AsyncClient, no signing), reads each body, and reports
requests per second and its own CPU time per call (``time.process_time``). Rounds are
interleaved (A B C A B C ...) so machine noise hits all alike; medians are printed.
"httpx" runs with a stub ``sniffio`` module (httpx at its best); "httpx-nosniffio" as
installed here, where httpcore retries the failing ``import sniffio`` on every request.
"raw" is the floor for reference: a bare asyncio.Protocol client with the request bytes
built once and a minimal response parse (its "responses" are not httpx.Response objects).

    .venv/bin/python bench/transport_micro.py [--calls 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from typing import Any

import httpx

_BODY = (
    b'{"InferenceId":"00000000-0000-0000-0000-000000000000",'
    b'"OutputLocation":"s3://bucket/out/00000000.out"}'
)
_RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\n"
    b"x-amzn-RequestId: 6a2f1c1e-0000-4000-8000-000000000000\r\n"
    b"X-Amzn-SageMaker-OutputLocation: s3://bucket/out/00000000.out\r\n"
    b"Content-Type: application/json\r\n"
    b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class _Server(asyncio.Protocol):
    """Answers pipelined or sequential requests; skips Content-Length request bodies."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            if len(buf) < end + 4 + length:
                break
            del buf[: end + 4 + length]
            out.append(_RESPONSE)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


class _RawConnection(asyncio.Protocol):
    """The limit: precomputed request bytes, a minimal response parse, one future a call."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        at = buf.find(b"Content-Length: ", 0, end)
        length = int(buf[at + 16 : buf.find(b"\r\n", at)])
        if len(buf) >= end + 4 + length and self.waiter is not None:
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            self.waiter.set_result(body)

    async def call(self, data: bytes) -> bytes:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class _RawTransport(httpx.AsyncBaseTransport):
    """Not a real transport: one raw connection per task, request bytes built once."""

    def __init__(self, port: int, data: bytes) -> None:
        self._port = port
        self._data = data
        self._idle: list[_RawConnection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._idle:
            conn = self._idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_RawConnection, "127.0.0.1", self._port)
        body = await conn.call(self._data)
        self._idle.append(conn)
        return _RawResponse(body)  # type: ignore[return-value]

    async def aclose(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()


class _RawResponse:
    status_code = 202

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def aread(self) -> bytes:
        return self.body

    async def aclose(self) -> None:
        pass


def _make_transport(kind: str, port: int) -> httpx.AsyncBaseTransport:
    if kind == "raw":
        data = (
            b"POST /endpoints/my-endpoint/async-invocations HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        return _RawTransport(port, data)
    if kind == "lean":
        from sagemaker_async._io.http11 import LeanTransport

        return LeanTransport()
    if kind == "httpx":
        # httpcore imports sniffio on every request and, when the import fails (a fresh
        # `pip install httpx` no longer brings it), pays a sys.path search each time. A
        # stub stands in for the installed package so httpx is measured at its best.
        stub = types.ModuleType("sniffio")
        stub.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules.setdefault("sniffio", stub)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    return httpx.AsyncHTTPTransport(limits=limits)


async def _client(kind: str, port: int, calls: int, inflight: int) -> dict[str, Any]:
    transport = _make_transport(kind, port)
    url = f"http://127.0.0.1:{port}/endpoints/my-endpoint/async-invocations"
    headers = {
        "X-Amzn-SageMaker-InputLocation": "s3://bucket/in/0001.json",
        "Content-Type": "application/json",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/"
        "sagemaker/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    }
    requests = [httpx.Request("POST", url, headers=headers) for _ in range(calls)]
    warmup = [httpx.Request("POST", url, headers=headers) for _ in range(inflight * 4)]

    async def call(request: httpx.Request) -> None:
        response = await transport.handle_async_request(request)
        await response.aread()
        await response.aclose()
        assert response.status_code == 202

    async def run(batch: list[httpx.Request]) -> None:
        if inflight == 1:
            for request in batch:
                await call(request)
            return
        it = iter(batch)

        async def worker() -> None:
            for request in it:
                await call(request)

        await asyncio.gather(*(worker() for _ in range(inflight)))

    await run(warmup)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await run(requests)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await transport.aclose()
    return {"req_s": calls / wall, "cpu_us": cpu / calls * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inflight", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    if args.client:
        print(json.dumps(asyncio.run(_client(args.client, args.port, args.calls, args.inflight))))
        return

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdin is not None
    port = int(server.stdout.readline())
    kinds: tuple[str, ...] = ("raw", "lean", "httpx")
    if importlib.util.find_spec("sniffio") is None:
        kinds += ("httpx-nosniffio",)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for _ in range(args.rounds):
            for inflight in (1, 64):
                for kind in kinds:
                    # httpx without sniffio runs at ~150 req/s: fewer calls keep it short.
                    calls = min(args.calls, 2000) if kind == "httpx-nosniffio" else args.calls
                    out = subprocess.run(
                        [sys.executable, __file__, "--client", kind, "--port", str(port),
                         "--calls", str(calls), "--inflight", str(inflight)],
                        check=True, capture_output=True, text=True,
                    )  # fmt: skip
                    results.setdefault((kind, inflight), []).append(json.loads(out.stdout))
    finally:
        server.stdin.close()
        server.wait(timeout=10)

    print(f"{args.calls} calls per run, median of {args.rounds} interleaved rounds")
    print(f"{'transport':<18}{'in flight':>10}{'req/s':>10}{'CPU µs/call':>14}")
    table: dict[tuple[str, int], tuple[float, float]] = {}
    for (kind, inflight), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        req_s = statistics.median(r["req_s"] for r in runs)
        cpu_us = statistics.median(r["cpu_us"] for r in runs)
        table[kind, inflight] = (req_s, cpu_us)
        print(f"{kind:<18}{inflight:>10}{req_s:>10.0f}{cpu_us:>14.1f}")
    for inflight in (1, 64):
        lean = table["lean", inflight]
        for other in ("httpx", "httpx-nosniffio", "raw"):
            if (other, inflight) not in table:
                continue
            base = table[other, inflight]
            print(
                f"lean / {other} at {inflight} in flight: {lean[0] / base[0]:.2f}x req/s, "
                f"{lean[1] / base[1]:.2f}x CPU per call"
            )


if __name__ == "__main__":
    main()
