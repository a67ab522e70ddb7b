"""Waiting on results: S3 polling against SNS → SQS notifications, on the local endpoint.

The local endpoint runs in its own process (``local serve --notify``) with a model that
answers when its payload says, so the answers of many invocations in flight appear evenly
over ``--spread`` seconds, as on a busy endpoint. The same workload runs three times, a
fresh endpoint each time:

- ``s3-polling (HEADs)``: ``client.wait_for_result`` per invocation with HEAD polling
  only (each wait its own looks, with backoff), as a client without ``s3:ListBucket``
  polls, and as other SDKs' waiters do;
- ``s3-polling (watched prefix)``: ``client.wait_for_result`` as it runs by default: the
  output prefix is watched (listed on a cadence, each listing answering every wait);
- ``notifications``: ``listener.wait`` per invocation on one ``client.listen`` listener,
  each result then read with one GET;
- ``notifications + bodies``: the same, the endpoint including responses in the
  notifications (``IncludeInferenceResponseIn``), so no GET.

Measured: the requests the client sent other than the invocations themselves (counted at
its send seam, by method or SQS operation), and for each invocation the time from its model
answering (the answer carries the time; the output object is written right after) to its
wait returning: p50, p99 and max. Written to ``bench/results/notify.md`` and ``notify.json``.

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

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results"
HEADS_ONLY = "s3-polling (HEADs)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def start_endpoint(invocations: int, include_response: bool) -> tuple[Any, dict[str, str]]:
    """``local serve --notify`` in its own process; returns it and its export lines."""
    args = [
        sys.executable, "-m", "sagemaker_async.local", "serve",
        "--endpoint", "bench=bench.notify_model:answer_at",
        "--concurrency", str(invocations), "--isolation", "in-process", "--notify", "--quiet",
    ]  # fmt: skip
    if include_response:
        args.append("--include-response")
    process = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    while "SAGEMAKER_ASYNC_QUEUE_URL" not in exports:
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError("the local endpoint did not start")
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
    return process, exports


async def run_mode(
    mode: str,
    invocations: int,
    spread: float,
    *,
    include_response: bool = False,
    lead: float = 10.0,
) -> dict[str, Any]:
    from sagemaker_async import AsyncInferenceClient

    process, exports = await start_endpoint(invocations, include_response)
    url = exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]
    os.environ["AWS_ENDPOINT_URL_SQS"] = exports["AWS_ENDPOINT_URL_SQS"]
    try:
        async with AsyncInferenceClient(
            "us-east-1",
            endpoint_url=url,
            s3_endpoint_url=exports["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        ) as client:
            counts: Counter[str] = Counter()
            sender = client._sender  # the one place every request goes through
            send_once = sender._send_once

            async def counted(request: Any, *args: Any, **kwargs: Any) -> Any:
                target = request.headers.get("x-amz-target")
                if target:
                    counts[target.split(".")[-1]] += 1
                elif request.method == "GET" and "list-type=2" in str(request.url):
                    counts["ListObjectsV2"] += 1
                else:
                    counts[request.method] += 1
                return await send_once(request, *args, **kwargs)

            sender._send_once = counted  # type: ignore[method-assign]
            if mode == HEADS_ONLY:
                client._results.looks = None  # as without s3:ListBucket: HEADs only
            listener = None
            if not mode.startswith("s3-polling"):
                listener = client.listen(exports["SAGEMAKER_ASYNC_QUEUE_URL"])
                await listener.__aenter__()
            try:
                # Every answer is due between `lead` s and `lead` + spread from now: by then
                # every invocation is in flight and waited for (checked: `invoked_s`).
                start = time.time() + lead
                step = spread / max(1, invocations - 1)
                latencies: list[float] = []
                failures: Counter[str] = Counter()
                invoked: list[float] = []

                async def one(i: int) -> None:
                    invocation = await client.invoke_endpoint_async(
                        "bench", body=f"{start + i * step:.6f}".encode(), content_type="text/plain"
                    )
                    invoked.append(time.time())
                    try:
                        if listener is not None:
                            result = await listener.wait(invocation, timeout=spread + 300)
                        else:
                            result = await client.wait_for_result(invocation, timeout=spread + 300)
                    except Exception as exc:  # counted and reported: a row, not a crash
                        failures[type(exc).__name__] += 1
                        return
                    latencies.append(time.time() - float(result.body))

                began = time.monotonic()
                await asyncio.gather(*(one(i) for i in range(invocations)))
                elapsed = time.monotonic() - began
            finally:
                if listener is not None:
                    await listener.__aexit__(None, None, None)
    finally:
        del os.environ["AWS_ENDPOINT_URL_SQS"]
        process.terminate()
        await process.wait()
    invokes = counts.pop("POST", 0)  # InvokeEndpointAsync: the same in every mode
    return {
        "mode": mode,
        "invocations": invocations,
        "spread_s": spread,
        "run_s": round(elapsed, 3),
        "invokes": invokes,
        "requests": sum(counts.values()),
        "requests_by_kind": dict(sorted(counts.items())),
        "completed": len(latencies),
        "lead_s": lead,
        "all_invoked_after_s": round(max(invoked) - (start - lead), 3) if invoked else None,
        "failed": dict(failures),
        "latency_p50_s": round(percentile(latencies, 0.50), 4),
        "latency_p99_s": round(percentile(latencies, 0.99), 4),
        "latency_max_s": round(max(latencies, default=float("nan")), 4),
        "latency_mean_s": round(statistics.fmean(latencies), 4) if latencies else None,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| waiting by | invocations | outputs over | completed | requests while waiting "
        "| per invocation | answer → wait returned p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mode']} | {row['invocations']:,} | {row['spread_s']:g} s "
            f"| {row['completed']:,}{' (' + str(row['failed']) + ')' if row['failed'] else ''} "
            f"| {row['requests']:,} | {row['requests'] / row['invocations']:.2f} "
            f"| {row['latency_p50_s'] * 1000:.0f} ms | {row['latency_p99_s'] * 1000:.0f} ms "
            f"| {row['latency_max_s'] * 1000:.0f} ms |"
        )
    lines.append("")
    polling = [row for row in rows if row["mode"].startswith("s3-polling")]
    for row in rows:
        if row["mode"].startswith("s3-polling") or not row["requests"] or not polling:
            continue
        ratios = ", ".join(
            f"1/{p['requests'] / row['requests']:.0f} of {p['mode']}'s"
            if p["requests"] >= row["requests"]
            else f"{row['requests'] / p['requests']:.1f}× {p['mode']}'s"
            for p in polling
        )
        lines.append(f"- {row['mode']}: {ratios} requests.")
    lines.append(
        "- requests by kind: " + "; ".join(f"{r['mode']}: {r['requests_by_kind']}" for r in rows)
    )
    lines.append("- notifications + bodies: the endpoint's IncludeInferenceResponseIn, so no GET.")
    lines.append(
        "- all invocations in flight after (s): "
        + "; ".join(f"{r['mode']}: {r.get('all_invoked_after_s')}" for r in rows)
        + f"; the first answer is due after {rows[0].get('lead_s')} s."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds outputs appear over")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--lead", type=float, default=10.0, help="seconds before the first answer is due"
    )
    parser.add_argument("--modes", help="comma-separated subset of the modes to run")
    args = parser.parse_args(argv)
    rows = []
    for mode, include in (
        (HEADS_ONLY, False),
        ("s3-polling (watched prefix)", False),
        ("notifications", False),
        ("notifications + bodies", True),
    ):
        if args.modes and mode not in args.modes.split(","):
            continue
        print(f"{mode}: {args.invocations} invocations over {args.spread:g} s ...", flush=True)
        row = asyncio.run(
            run_mode(mode, args.invocations, args.spread, include_response=include, lead=args.lead)
        )
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
