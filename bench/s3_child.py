"""One measurement of the S3-side benchmark, in a process of its own (see ``s3_bench``).

    python -m bench.s3_child upload   CLIENT URL BUCKET KEY FILE
    python -m bench.s3_child download CLIENT URL BUCKET KEY FILE
    python -m bench.s3_child get-cpu  URL BUCKET KEY CALLS
    python -m bench.s3_child waits    URL BUCKET PREFIX COUNT POLL_INTERVAL TIMEOUT
    python -m bench.s3_child writer   URL BUCKET PREFIX SCHEDULE_JSON

Prints one JSON line: the operation's seconds, the process's peak RSS and what it checked.
Clients: ``sagemaker_async`` (ours), ``boto3`` (``upload_file``/``download_file``, i.e.
s3transfer with its defaults) and ``aiobotocore`` (one ``PutObject`` of the open file).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import statistics
import sys
import time
from typing import Any

REGION = "us-east-1"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ours(url: str) -> Any:
    from sagemaker_async import AsyncInferenceClient

    return AsyncInferenceClient(REGION, endpoint_url=url, s3_endpoint_url=url)


def boto3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=REGION, endpoint_url=url, config=Config(proxies={}))


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


async def upload(client: str, url: str, bucket: str, key: str, path: str) -> dict[str, Any]:
    if client == "sagemaker_async":
        async with ours(url) as s3:
            started, cpu = time.perf_counter(), cpu_seconds()
            await s3.upload_input(path, f"s3://{bucket}/{key}")
            return {"seconds": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu}
    if client == "boto3":
        s3 = boto3_client(url)
        started, cpu = time.perf_counter(), cpu_seconds()
        await asyncio.to_thread(s3.upload_file, path, bucket, key)
        return {"seconds": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu}
    if client == "aiobotocore":
        from aiobotocore.session import get_session

        async with get_session().create_client("s3", region_name=REGION, endpoint_url=url) as s3:
            started, cpu = time.perf_counter(), cpu_seconds()
            with open(path, "rb") as handle:  # noqa: ASYNC230 - what its users write
                await s3.put_object(Bucket=bucket, Key=key, Body=handle)
            return {"seconds": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu}
    raise SystemExit(f"unknown client {client}")


async def download(client: str, url: str, bucket: str, key: str, path: str) -> dict[str, Any]:
    if client == "sagemaker_async":
        from sagemaker_async import AsyncInvocation

        async with ours(url) as s3:
            started = time.perf_counter()
            await s3.download_result(AsyncInvocation(key, f"s3://{bucket}/{key}", None), path)
            seconds = time.perf_counter() - started
    elif client == "boto3":
        s3 = boto3_client(url)
        started = time.perf_counter()
        await asyncio.to_thread(s3.download_file, bucket, key, path)
        seconds = time.perf_counter() - started
    else:
        raise SystemExit(f"unknown client {client}")
    return {"seconds": seconds, "sha256": sha256_file(path)}


async def get_cpu(url: str, bucket: str, key: str, calls: int) -> dict[str, Any]:
    """CPU of one GetObject of a small object: the unit the waits are measured in."""
    async with ours(url) as s3:
        uri = f"s3://{bucket}/{key}"
        for _ in range(20):
            await s3.get_result(uri)
        before = cpu_seconds()
        for _ in range(calls):
            await s3.get_result(uri)
        return {"cpu_us_per_get": (cpu_seconds() - before) / calls * 1e6}


async def waits(
    url: str, bucket: str, prefix: str, count: int, poll_interval: float, timeout: float
) -> dict[str, Any]:
    """``count`` waits on one client; when each finished, the loop's lag, and the CPU."""
    from datetime import datetime, timezone

    from sagemaker_async import AsyncInvocation

    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def lag_monitor() -> None:
        while not stop.is_set():
            expected = loop.time() + 0.01
            await asyncio.sleep(0.01)
            lags.append(max(0.0, loop.time() - expected))

    done: dict[str, float] = {}
    errors: list[str] = []
    async with ours(url) as s3:
        submitted = datetime.now(timezone.utc)

        async def one(n: int) -> None:
            invocation = AsyncInvocation(
                str(n),
                f"s3://{bucket}/{prefix}/{n}.out",
                f"s3://{bucket}/{prefix}/{n}-error.out",
                submitted_at=submitted,
            )
            try:
                result = await s3.wait_for_result(
                    invocation, timeout=timeout, poll_interval=poll_interval
                )
            except Exception as exc:  # counted, reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            if result.body != str(n).encode():
                errors.append(f"wrong body for {n}")
                return
            done[str(n)] = time.time()

        monitor = asyncio.ensure_future(lag_monitor())
        cpu_before = cpu_seconds()
        started = time.time()
        tasks = [asyncio.ensure_future(one(n)) for n in range(count)]
        print(json.dumps({"ready": started}), flush=True)
        await asyncio.gather(*tasks)
        cpu = cpu_seconds() - cpu_before
        looks = s3._results.looks
        listings = looks.listings if looks is not None else 0
        stop.set()
        await monitor
    lags.sort()
    return {
        "started": started,
        "done": done,
        "errors": errors[:20],
        "error_count": len(errors),
        "cpu_s": cpu,
        "listings": listings,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1e3 if lags else None,
        "lag_max_ms": lags[-1] * 1e3 if lags else None,
        "lag_median_ms": statistics.median(lags) * 1e3 if lags else None,
    }


def writer(url: str, bucket: str, prefix: str, schedule_path: str) -> dict[str, Any]:
    """PUT each object at its scheduled wall-clock time; record when each was stored."""
    from concurrent.futures import ThreadPoolExecutor

    with open(schedule_path) as handle:
        schedule: list[tuple[float, int]] = sorted(
            (float(at), int(n)) for n, at in json.load(handle).items()
        )
    s3 = boto3_client(url)
    appeared: dict[str, float] = {}

    def put(n: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{n}.out", Body=str(n).encode())
        appeared[str(n)] = time.time()

    with ThreadPoolExecutor(8) as pool:
        for at, n in schedule:
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(put, n)
    return {"appeared": appeared}


def main(argv: list[str]) -> None:
    mode, *rest = argv
    if mode == "upload":
        out = asyncio.run(upload(*rest))
    elif mode == "download":
        out = asyncio.run(download(*rest))
    elif mode == "get-cpu":
        url, bucket, key, calls = rest
        out = asyncio.run(get_cpu(url, bucket, key, int(calls)))
    elif mode == "waits":
        url, bucket, prefix, count, poll, timeout = rest
        out = asyncio.run(waits(url, bucket, prefix, int(count), float(poll), float(timeout)))
    elif mode == "writer":
        out = writer(*rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["peak_rss_mb"] = peak_rss_mb()
    out["ok"] = True
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
