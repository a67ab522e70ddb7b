"""Waiting on results: S3 polling against SNS → SQS notifications, on the local endpoint.

Many invocations are put in flight at once on a local endpoint with ``notify=True``; each
one's model answers at its own moment, spread evenly over ``--spread`` seconds, so outputs
appear over time as on a busy endpoint. The same workload is then waited for twice, in the
same process:

- ``s3-polling``: ``client.wait_for_result`` per invocation (HEAD polling with backoff);
- ``notifications``: ``listener.wait`` per invocation on one ``client.listen`` listener.

Measured while waiting (after the last invocation was accepted): the requests the client
sent (counted at its send seam, by method or SQS operation), and for each invocation the
time from its output object being written (timestamped by the endpoint right after the
write) to its wait returning: p50, p99 and max. Written to ``bench/results/notify.md`` and
``notify.json``.

    make bench-notify                                  # 10,000 invocations over 60 s
    make bench-notify BENCH_ARGS="--invocations 200 --spread 3"   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_mode(
    mode: str, invocations: int, spread: float, *, include_response: bool = False
) -> dict[str, Any]:
    from sagemaker_async import AsyncInferenceClient
    from sagemaker_async.local import LocalEndpoint

    start_at: list[float] = [0.0]

    async def model(payload: bytes) -> bytes:
        # The payload says when (seconds after the workload started) to answer.
        await asyncio.sleep(max(0.0, start_at[0] + float(payload) - time.monotonic()))
        return b"done " + payload

    async with LocalEndpoint(
        {"bench": model},
        notify=True,
        include_response=include_response,
        concurrency=invocations,
        bucket="sagemaker-async-bench",
    ) as local:
        assert local._notifier is not None
        written: dict[str, float] = {}
        announce = local._notifier.written

        def stamp(uri: str, data: bytes, content_type: str) -> None:
            written[uri] = time.monotonic()
            announce(uri, data, content_type)

        local._notifier.written = stamp  # type: ignore[method-assign]
        os.environ["AWS_ENDPOINT_URL_SQS"] = local.endpoint_url
        async with AsyncInferenceClient(
            "us-east-1",
            endpoint_url=local.endpoint_url,
            s3_endpoint_url=local.s3_endpoint_url,
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        ) as client:
            counts: Counter[str] = Counter()
            counting = [False]
            send_once = client._send_once

            async def counted(request: Any) -> Any:
                if counting[0]:
                    target = request.headers.get("x-amz-target")
                    counts[target.split(".")[-1] if target else request.method] += 1
                return await send_once(request)

            client._send_once = counted  # type: ignore[method-assign]
            listener = None if mode == "s3-polling" else client.listen(local.queue_url)  # type: ignore[arg-type]
            if listener is not None:
                await listener.__aenter__()
            try:
                start_at[0] = time.monotonic() + 1.0  # answers begin a second from now
                step = spread / max(1, invocations - 1)
                submitted = await asyncio.gather(
                    *(
                        client.invoke_endpoint_async(
                            "bench",
                            body=f"{1.0 + i * step:.6f}".encode(),
                            content_type="text/plain",
                        )
                        for i in range(invocations)
                    )
                )
                counting[0] = True
                returned: dict[str, float] = {}

                async def wait(invocation: Any) -> None:
                    if listener is not None:
                        await listener.wait(invocation, timeout=spread + 120)
                    else:
                        await client.wait_for_result(invocation, timeout=spread + 120)
                    returned[invocation.output_location] = time.monotonic()

                began = time.monotonic()
                await asyncio.gather(*(wait(i) for i in submitted))
                elapsed = time.monotonic() - began
                counting[0] = False
            finally:
                if listener is not None:
                    await listener.__aexit__(None, None, None)
        del os.environ["AWS_ENDPOINT_URL_SQS"]
    latencies = [returned[uri] - written[uri] for uri in returned]
    return {
        "mode": mode,
        "invocations": invocations,
        "spread_s": spread,
        "wait_phase_s": round(elapsed, 3),
        "requests": sum(counts.values()),
        "requests_by_kind": dict(sorted(counts.items())),
        "latency_p50_s": round(percentile(latencies, 0.50), 4),
        "latency_p99_s": round(percentile(latencies, 0.99), 4),
        "latency_max_s": round(max(latencies), 4),
        "latency_mean_s": round(statistics.fmean(latencies), 4),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| waiting by | invocations | outputs over | requests while waiting | per invocation "
        "| output → wait returned p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mode']} | {row['invocations']:,} | {row['spread_s']:g} s "
            f"| {row['requests']:,} | {row['requests'] / row['invocations']:.2f} "
            f"| {row['latency_p50_s'] * 1000:.0f} ms | {row['latency_p99_s'] * 1000:.0f} ms "
            f"| {row['latency_max_s'] * 1000:.0f} ms |"
        )
    lines.append("")
    polling = rows[0]["requests"]
    for row in rows[1:]:
        if row["requests"]:
            lines.append(
                f"- {row['mode']}: 1/{polling / row['requests']:.0f} of polling's requests."
            )
    lines.append(
        "- requests by kind: " + "; ".join(f"{r['mode']}: {r['requests_by_kind']}" for r in rows)
    )
    lines.append("- notifications + bodies: the endpoint's IncludeInferenceResponseIn, so no GET.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds outputs appear over")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    rows = []
    for mode, include in (
        ("s3-polling", False),
        ("notifications", False),
        ("notifications + bodies", True),
    ):
        print(f"{mode}: {args.invocations} invocations over {args.spread:g} s ...", flush=True)
        row = asyncio.run(run_mode(mode, args.invocations, args.spread, include_response=include))
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = markdown(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "notify.md").write_text(text)
    (args.out / "notify.json").write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}/notify.md, notify.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
