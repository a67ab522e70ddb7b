"""One benchmark run of one client, in a fresh process; prints one JSON object on stdout.

    python -m bench.run_client --client NAME --port P --mode MODE [options]

Clients:

- ``sagemaker_async``: ``sagemaker_async.AsyncInferenceClient`` (the client under test).
- ``aiobotocore``: ``get_session().create_client("sagemaker-runtime", ...)``.
- ``boto3``: a boto3 client called through ``asyncio.to_thread``, with
  ``max_pool_connections`` raised to the concurrency and the loop's default thread pool
  sized to the concurrency of each phase.
- ``raw``: an ``asyncio.Protocol`` HTTP/1.1 client sending precomputed request bytes (a
  fixed, unsigned ``Authorization`` header), one connection per call in flight: the limit.

Modes:

- ``startup``: time the import of the client library (asyncio is already imported, as in
  any asyncio program), then build the client from the environment's credentials
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_DEFAULT_REGION``) and make one
  call. Reports ``t_first_done``, the ``CLOCK_MONOTONIC`` time the first call completed,
  which the parent subtracts from its own spawn time (the clock is system-wide).
- ``latency``: explicit credentials; warm-up calls, then ``--calls`` calls one at a time:
  per-call latency (median, p99) and client CPU per call (``time.process_time`` of the
  whole process, all threads, divided by the calls).
- ``throughput``: explicit credentials; for each concurrency in ``--concurrency`` (with the
  matching count in ``--calls``): warm-up calls, then the fixed number of calls with that
  many in flight: requests per second and CPU per call. Reports the peak RSS
  (``ru_maxrss``) at the end, so a run with only ``--concurrency 256`` measures the peak
  RSS after that many calls at 256 in flight.

Every call passes a unique inference id and checks that the answer's InferenceId is that
id: wrong answers and failed calls are counted and reported (both must be 0).

This module imports nothing beyond the standard library until the client is loaded, so
that the import time it measures is the client library's own; and it keeps its own
imports few (argparse, asyncio, json, dataclasses), since they count in every client's
spawn → first call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ENDPOINT = "bench-endpoint"
INPUT_LOCATION = "s3://bench-input/requests/0001.json"
CLIENTS = ("sagemaker_async", "aiobotocore", "boto3", "raw")
MODES = ("startup", "latency", "throughput")
# Unique per process, so that ids are unique across processes too.
TOKEN = os.urandom(3).hex()

Call = Callable[[str], Awaitable[str]]


def _no_prepare(concurrency: int) -> None:
    return None


@dataclass
class Runner:
    """What a client offers the driver: one call, and a hook run before each phase."""

    call: Call
    prepare: Callable[[int], None] = _no_prepare


@dataclass
class Settings:
    url: str
    host: str
    port: int
    explicit_credentials: bool
    max_concurrency: int
    aiobotocore_pool: str


Factory = Callable[[Settings], contextlib.AbstractAsyncContextManager[Runner]]


def _credentials() -> dict[str, str]:
    return {
        "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


# --------------------------------------------------------------------------- clients
# Each loader imports its library (that is what the import time measures) and returns
# a factory: an async context manager that opens the client and yields a Runner.


def load_sagemaker_async() -> Factory:
    from sagemaker_async import AsyncInferenceClient

    @contextlib.asynccontextmanager
    async def factory(s: Settings) -> AsyncIterator[Runner]:
        kwargs: dict[str, Any] = {"endpoint_url": s.url}
        if s.explicit_credentials:
            kwargs.update(_credentials())
        async with AsyncInferenceClient(**kwargs) as client:
            invoke = client.invoke_endpoint_async

            async def call(iid: str) -> str:
                inv = await invoke(ENDPOINT, INPUT_LOCATION, inference_id=iid)
                return str(inv.inference_id)

            yield Runner(call)

    return factory


def load_aiobotocore() -> Factory:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    @contextlib.asynccontextmanager
    async def factory(s: Settings) -> AsyncIterator[Runner]:
        kwargs: dict[str, Any] = {"endpoint_url": s.url}
        if s.explicit_credentials:
            kwargs.update(_credentials())
        if s.aiobotocore_pool == "concurrency":
            kwargs["config"] = AioConfig(max_pool_connections=max(s.max_concurrency, 10))
        session = get_session()
        async with session.create_client("sagemaker-runtime", **kwargs) as client:
            invoke = client.invoke_endpoint_async

            async def call(iid: str) -> str:
                resp = await invoke(
                    EndpointName=ENDPOINT, InputLocation=INPUT_LOCATION, InferenceId=iid
                )
                return str(resp["InferenceId"])

            yield Runner(call)

    return factory


def load_boto3() -> Factory:
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    @contextlib.asynccontextmanager
    async def factory(s: Settings) -> AsyncIterator[Runner]:
        kwargs: dict[str, Any] = {
            "endpoint_url": s.url,
            "config": Config(max_pool_connections=max(s.max_concurrency, 10)),
        }
        if s.explicit_credentials:
            kwargs.update(_credentials())
        client = boto3.session.Session().client("sagemaker-runtime", **kwargs)
        loop = asyncio.get_running_loop()
        executors: list[ThreadPoolExecutor] = []

        def prepare(concurrency: int) -> None:
            # Size the default pool (used by asyncio.to_thread) to the calls in flight.
            executor = ThreadPoolExecutor(max_workers=concurrency)
            loop.set_default_executor(executor)
            if executors:
                executors.pop().shutdown(wait=False)
            executors.append(executor)

        invoke = client.invoke_endpoint_async

        async def call(iid: str) -> str:
            resp = await asyncio.to_thread(
                invoke, EndpointName=ENDPOINT, InputLocation=INPUT_LOCATION, InferenceId=iid
            )
            return str(resp["InferenceId"])

        try:
            yield Runner(call, prepare)
        finally:
            client.close()

    return factory


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        lower = buf[:end].lower()
        i = lower.find(b"\r\ncontent-length:")
        length = 0
        if i >= 0:
            j = lower.find(b"\r\n", i + 17)
            length = int(lower[i + 17 : j if j >= 0 else end])
        total = end + 4 + length
        if len(buf) < total:
            self.buf = buf
            return
        self.buf = buf[total:]
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((int(buf[9:12]), buf[end + 4 : total]))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


def load_raw() -> Factory:
    @contextlib.asynccontextmanager
    async def factory(s: Settings) -> AsyncIterator[Runner]:
        loop = asyncio.get_running_loop()
        amz_date = "20260101T000000Z"
        prefix = (
            f"POST /endpoints/{ENDPOINT}/async-invocations HTTP/1.1\r\n"
            f"Host: {s.host}:{s.port}\r\n"
            f"X-Amzn-SageMaker-InputLocation: {INPUT_LOCATION}\r\n"
            f"X-Amz-Date: {amz_date}\r\n"
            "Authorization: AWS4-HMAC-SHA256 "
            "Credential=AKIDEXAMPLEBENCH0000/20260101/us-east-1/sagemaker/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amzn-sagemaker-inference-id;"
            "x-amzn-sagemaker-inputlocation, "
            f"Signature={'0' * 64}\r\n"
            "Content-Length: 0\r\n"
            "X-Amzn-SageMaker-Inference-Id: "
        ).encode()
        idle: list[_RawConnection] = []
        everyone: list[_RawConnection] = []

        async def call(iid: str) -> str:
            conn = None
            while idle:
                candidate = idle.pop()
                if candidate.transport is not None:
                    conn = candidate
                    break
            if conn is None:
                _, conn = await loop.create_connection(_RawConnection, s.host, s.port)
                everyone.append(conn)
            status, body = await conn.request(prefix + iid.encode() + b"\r\n\r\n")
            idle.append(conn)
            if status != 202:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            return str(json.loads(body)["InferenceId"])

        try:
            yield Runner(call)
        finally:
            for conn in everyone:
                if conn.transport is not None:
                    conn.transport.close()

    return factory


LOADERS: dict[str, Callable[[], Factory]] = {
    "sagemaker_async": load_sagemaker_async,
    "aiobotocore": load_aiobotocore,
    "boto3": load_boto3,
    "raw": load_raw,
}


# --------------------------------------------------------------------------- driver


@dataclass
class Phase:
    tag: str
    concurrency: int
    calls: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    wrong: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ns: list[int] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        import statistics

        out = asdict(self)
        out.pop("latencies_ns")
        done = max(self.calls, 1)
        out["req_per_s"] = self.calls / self.wall_s if self.wall_s > 0 else 0.0
        out["cpu_us_per_call"] = self.cpu_s / done * 1e6
        if self.latencies_ns:
            lat = sorted(self.latencies_ns)
            out["latency_median_us"] = statistics.median(lat) / 1e3
            out["latency_p99_us"] = lat[max(0, -(-99 * len(lat) // 100) - 1)] / 1e3
            out["latency_mean_us"] = statistics.fmean(lat) / 1e3
        return out


async def drive(call: Call, tag: str, calls: int, concurrency: int, record: bool) -> Phase:
    """Make ``calls`` calls with ``concurrency`` in flight; count wrong answers and errors."""
    phase = Phase(tag, concurrency, calls, latencies_ns=[] if record else None)
    ids = iter(range(calls))
    prefix = f"{TOKEN}-{tag}-"
    perf_ns = time.perf_counter_ns

    async def worker() -> None:
        for i in ids:
            iid = prefix + str(i)
            t0 = perf_ns()
            try:
                got = await call(iid)
            except Exception as exc:
                phase.errors += 1
                if phase.first_error is None:
                    phase.first_error = f"{type(exc).__name__}: {exc}"[:500]
                continue
            if phase.latencies_ns is not None:
                phase.latencies_ns.append(perf_ns() - t0)
            if got != iid:
                phase.wrong += 1

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    phase.wall_s = time.perf_counter() - t0
    phase.cpu_s = time.process_time() - cpu0
    return phase


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run_startup(factory: Factory, s: Settings) -> dict[str, Any]:
    t0 = time.perf_counter()
    out: dict[str, Any] = {"wrong": 0, "errors": 0, "calls_checked": 1}
    async with factory(s) as runner:
        iid = f"{TOKEN}-first"
        try:
            got = await runner.call(iid)
        except Exception as exc:
            out["errors"] = 1
            out["first_error"] = f"{type(exc).__name__}: {exc}"[:500]
        else:
            out["wrong"] = int(got != iid)
        out["t_first_done"] = time.clock_gettime(time.CLOCK_MONOTONIC)
        out["create_to_first_ms"] = (time.perf_counter() - t0) * 1e3
    out["rss_mib"] = peak_rss_mib()
    return out


async def run_latency(factory: Factory, s: Settings, calls: int, warmup: int) -> dict[str, Any]:
    async with factory(s) as runner:
        runner.prepare(1)
        warm = await drive(runner.call, "w1", warmup, 1, record=False)
        phase = await drive(runner.call, "l1", calls, 1, record=True)
    return {
        "warmup": warm.summary(),
        "phases": [phase.summary()],
        "wrong": warm.wrong + phase.wrong,
        "errors": warm.errors + phase.errors,
        "calls_checked": warm.calls + phase.calls,
        "rss_mib": peak_rss_mib(),
    }


async def run_throughput(
    factory: Factory, s: Settings, concurrency: list[int], calls: list[int], warmup: int
) -> dict[str, Any]:
    phases: list[dict[str, Any]] = []
    wrong = errors = checked = 0
    async with factory(s) as runner:
        for c, n in zip(concurrency, calls, strict=True):
            runner.prepare(c)
            warm = await drive(runner.call, f"w{c}", max(warmup, c), c, record=False)
            phase = await drive(runner.call, f"m{c}", n, c, record=False)
            summary = phase.summary()
            summary["warmup_calls"] = warm.calls
            phases.append(summary)
            wrong += warm.wrong + phase.wrong
            errors += warm.errors + phase.errors
            checked += warm.calls + phase.calls
            if warm.first_error and not summary["first_error"]:
                summary["first_error"] = warm.first_error
    return {
        "phases": phases,
        "wrong": wrong,
        "errors": errors,
        "calls_checked": checked,
        "rss_mib": peak_rss_mib(),
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark client run (JSON on stdout).")
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--calls", default="2000", help="calls per phase, comma-separated")
    parser.add_argument("--concurrency", default="1", help="calls in flight, comma-separated")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up calls per phase")
    parser.add_argument(
        "--aiobotocore-pool",
        choices=("default", "concurrency"),
        default="default",
        help="aiobotocore's max_pool_connections: its default (10; measured faster here) "
        "or the concurrency",
    )
    args = parser.parse_args(argv)

    out: dict[str, Any] = {"client": args.client, "mode": args.mode, "pid": os.getpid()}
    try:
        t0 = time.perf_counter()
        factory = LOADERS[args.client]()
        out["import_ms"] = (time.perf_counter() - t0) * 1e3
        concurrency = _ints(args.concurrency)
        calls = _ints(args.calls)
        if len(calls) == 1:
            calls = calls * len(concurrency)
        if len(calls) != len(concurrency):
            parser.error("--calls needs one count, or one per --concurrency value")
        settings = Settings(
            url=f"http://{args.host}:{args.port}",
            host=args.host,
            port=args.port,
            explicit_credentials=args.mode != "startup",
            max_concurrency=max(concurrency),
            aiobotocore_pool=args.aiobotocore_pool,
        )
        if args.mode == "startup":
            out.update(asyncio.run(run_startup(factory, settings)))
        elif args.mode == "latency":
            out.update(asyncio.run(run_latency(factory, settings, calls[0], args.warmup)))
        else:
            out.update(
                asyncio.run(run_throughput(factory, settings, concurrency, calls, args.warmup))
            )
        out["ok"] = out["wrong"] == 0 and out["errors"] == 0
    except Exception as exc:
        out["ok"] = False
        out["fatal"] = f"{type(exc).__name__}: {exc}"
        import traceback

        traceback.print_exc()
    print(json.dumps(out), flush=True)
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
