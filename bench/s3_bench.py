"""The S3 side of the benchmark: many waits, and 1 GiB up and down (issue 11).

    bench/.venv/bin/python -m bench.s3_bench [--quick]      (or: make bench, which runs it too)

Against one moto server on 127.0.0.1, in the same run:

- **waits**: 10,000 ``wait_for_result`` on one client while a separate process writes their
  output objects spread over 60 s. Per wait, lateness = finished − (appeared + the poll
  interval in effect when it appeared; the schedule is 1 s × 1.5ⁿ capped at 30 s);
  the event loop's lag (a 10 ms ticker) and the client's CPU per completed wait, against
  the CPU of one ``get_result`` of a small object. Targets: lateness ≤ 1 s (p99), lag p99
  < 50 ms, CPU per wait ≤ 3× one GetObject.
- **upload** of a 1 GiB file: ours (``upload_input``: multipart, concurrent parts) vs
  boto3 ``upload_file`` (s3transfer, its defaults) vs aiobotocore ``PutObject``. Target:
  ours at least as fast as the fastest, peak RSS < 100 MB.
- **download** of that object: ours (``download_result``) vs boto3 ``download_file``.
  Same targets.

Each measurement runs in a fresh process (its peak RSS is its own). Uploads run in rounds
(5 by default), each round in another order with the object deleted in between, and the
median decides: one moto server on a shared machine varies by ±15% run to run, more than
the clients differ. ``--quick`` shrinks
everything (1,000 waits over 10 s, 128 MiB) for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
MIB = 1024 * 1024
BUCKET = "bench"


@dataclass
class S3Plan:
    waits: int
    appear_over_s: float
    poll_interval: float
    size: int
    get_calls: int
    timeout_s: float
    rounds: int = 1


FULL = S3Plan(
    waits=10_000, appear_over_s=60.0, poll_interval=1.0, size=1024 * MIB, get_calls=2000,
    timeout_s=900.0, rounds=5,
)  # fmt: skip
QUICK = S3Plan(
    waits=1_000, appear_over_s=10.0, poll_interval=1.0, size=128 * MIB, get_calls=300,
    timeout_s=300.0,
)  # fmt: skip


def log(message: str) -> None:
    print(f"[s3 bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Moto:
    def __init__(self, env: dict[str, str]) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import urllib.request

        # No proxy, whatever the environment says: the server is on 127.0.0.1.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 30
        while True:
            try:
                opener.open(f"{self.url}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def child(env: dict[str, str], timeout: float, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.s3_child", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    try:
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": proc.stderr.strip()[-1500:]}
    return out


def nominal_interval(started: float, at: float, first: float) -> float:
    """The poll interval in effect at ``at`` for a wait that started at ``started``."""
    t, interval = started, first
    while t + interval < at:
        t += interval
        interval = min(30.0, interval * 1.5)
    return interval


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def boto3_s3(url: str, env: dict[str, str]) -> Any:
    """The parent's own S3 client, with the children's fake credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(proxies={}),
    )


def run_waits(plan: S3Plan, env: dict[str, str], url: str, workdir: Path) -> dict[str, Any]:
    s3 = boto3_s3(url, env)
    s3.put_object(Bucket=BUCKET, Key="small.json", Body=b'{"ok": true}')
    get = child(env, plan.timeout_s, "get-cpu", url, BUCKET, "small.json", str(plan.get_calls))
    log(f"GetObject CPU: {get.get('cpu_us_per_get', 0):.0f} µs")

    waits = subprocess.Popen(
        [
            sys.executable, "-m", "bench.s3_child", "waits", url, BUCKET, "waits",
            str(plan.waits), str(plan.poll_interval), str(plan.appear_over_s + 120),
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert waits.stdout is not None
    ready = json.loads(waits.stdout.readline())["ready"]
    start = ready + 1.0
    schedule = {n: start + plan.appear_over_s * n / plan.waits for n in range(plan.waits)}
    schedule_path = workdir / "schedule.json"
    schedule_path.write_text(json.dumps(schedule))
    writer = child(env, plan.timeout_s, "writer", url, BUCKET, "waits", str(schedule_path))
    out_text, err_text = waits.communicate(timeout=plan.timeout_s)
    try:
        result: dict[str, Any] = json.loads(out_text.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"ok": False, "error": err_text[-1500:]}
    appeared: dict[str, float] = writer.get("appeared", {})
    lateness = [
        done - appeared[n] - nominal_interval(result["started"], appeared[n], plan.poll_interval)
        for n, done in result["done"].items()
        if n in appeared
    ]
    since_appeared = [done - appeared[n] for n, done in result["done"].items() if n in appeared]
    completed = len(result["done"])
    cpu_per_wait_us = result["cpu_s"] / completed * 1e6 if completed else None
    get_us = get.get("cpu_us_per_get")
    return {
        "ok": result["error_count"] == 0 and completed == plan.waits,
        "waits": plan.waits,
        "completed": completed,
        "errors": result["error_count"],
        "error_samples": result["errors"],
        "lateness_p50_s": percentile(lateness, 0.5),
        "lateness_p99_s": percentile(lateness, 0.99),
        "lateness_max_s": max(lateness) if lateness else None,
        "appeared_to_done_p50_s": percentile(since_appeared, 0.5),
        "appeared_to_done_p99_s": percentile(since_appeared, 0.99),
        "lag_p99_ms": result["lag_p99_ms"],
        "lag_max_ms": result["lag_max_ms"],
        "cpu_s": result["cpu_s"],
        "cpu_us_per_wait": cpu_per_wait_us,
        "cpu_us_per_get": get_us,
        "cpu_ratio": cpu_per_wait_us / get_us if cpu_per_wait_us and get_us else None,
        "peak_rss_mb": result["peak_rss_mb"],
        "listings": result.get("listings"),
    }


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for n in range(size // MIB):
            handle.write(block[n % 7 :] + block[: n % 7])  # distinct parts, cheaply
        handle.write(os.urandom(size % MIB))


def run_transfers(plan: S3Plan, env: dict[str, str], url: str, workdir: Path) -> dict[str, Any]:
    import hashlib

    source = workdir / "input.bin"
    make_file(source, plan.size)
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    expected = digest.hexdigest()
    rows: dict[str, Any] = {"upload": {}, "download": {}, "size": plan.size}
    uploaders = ("sagemaker_async", "boto3", "aiobotocore")
    runs: dict[str, list[dict[str, Any]]] = {client: [] for client in uploaders}
    s3 = boto3_s3(url, env)
    for round_ in range(plan.rounds):
        # Each round in another order, each client first once in three: the moto server's
        # speed drifts over a run (page cache, its own memory), and that must not favour one.
        for client in uploaders[round_ % 3 :] + uploaders[: round_ % 3]:
            key = f"upload-{client}.bin"
            out = child(env, plan.timeout_s, "upload", client, url, BUCKET, key, str(source))
            runs[client].append(out)
            log(f"upload {client} ({round_ + 1}/{plan.rounds}): {out.get('seconds', 0):.2f} s, "
                f"{out.get('peak_rss_mb', 0):.0f} MB")  # fmt: skip
            if round_ < plan.rounds - 1:
                s3.delete_object(Bucket=BUCKET, Key=key)  # every round starts from one store
    for client, outs in runs.items():
        rows["upload"][client] = median_run(outs)
    for client in ("sagemaker_async", "boto3"):
        target = workdir / f"download-{client}.bin"
        out = child(
            env, plan.timeout_s, "download", client, url, BUCKET, "upload-boto3.bin", str(target)
        )
        out["correct"] = out.get("sha256") == expected
        rows["download"][client] = out
        target.unlink(missing_ok=True)
        log(f"download {client}: {out.get('seconds', 0):.2f} s, {out.get('peak_rss_mb', 0):.0f} MB")
    return rows


def median_run(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """One client's uploads: the median seconds, every run's seconds, the highest RSS."""
    import statistics

    seconds = [out["seconds"] for out in outs if out.get("ok")]
    return {
        "ok": bool(outs) and len(seconds) == len(outs),
        "seconds": statistics.median(seconds) if seconds else None,
        "runs": [out.get("seconds") for out in outs],
        "peak_rss_mb": max((out.get("peak_rss_mb") or 0) for out in outs) if outs else None,
        "cpu_s": statistics.median(out["cpu_s"] for out in outs if "cpu_s" in out)
        if any("cpu_s" in out for out in outs)
        else None,
    }


def fmt(value: float | None, decimals: int = 2) -> str:
    return "—" if value is None else f"{value:,.{decimals}f}"


def targets(waits: dict[str, Any], transfers: dict[str, Any]) -> list[dict[str, str]]:
    out = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        status = "?" if ok is None else ("PASS" if ok else "MISS")
        out.append({"target": name, "status": status, "detail": detail})

    late = waits.get("lateness_p99_s")
    check("waits finish ≤ 1 s after appearance + poll interval (p99)",
          None if late is None else late <= 1.0, f"p99 {fmt(late)} s")  # fmt: skip
    lag = waits.get("lag_p99_ms")
    check("event-loop lag p99 < 50 ms", None if lag is None else lag < 50, f"{fmt(lag, 1)} ms")
    ratio = waits.get("cpu_ratio")
    check("CPU per completed wait ≤ 3× one GetObject",
          None if ratio is None else ratio <= 3, f"{fmt(ratio)}×")  # fmt: skip
    for kind in ("upload", "download"):
        rows = transfers.get(kind, {})
        ours = rows.get("sagemaker_async", {})
        others = [r["seconds"] for c, r in rows.items() if c != "sagemaker_async" and r.get("ok")]
        fastest = min(others) if others else None
        if ours.get("ok") and fastest is not None:
            check(f"{kind}: ours at least as fast as the fastest", ours["seconds"] <= fastest,
                  f"{ours['seconds']:.2f} s vs {fastest:.2f} s")  # fmt: skip
        rss = ours.get("peak_rss_mb")
        check(f"{kind}: peak RSS < 100 MB", None if rss is None else rss < 100, f"{fmt(rss, 0)} MB")
    return out


def markdown(waits: dict[str, Any], transfers: dict[str, Any], checks: list[dict[str, str]]) -> str:
    size_mib = transfers.get("size", 0) / MIB
    lines = [
        "## S3 results: many waits, big uploads and downloads",
        "",
        f"### {waits.get('waits', 0):,} waits on one client, objects appearing over the run",
        "",
        "| completed | errors | lateness p50 / p99 / max (s) | loop lag p99 / max (ms) "
        "| CPU per wait (µs) | one GetObject (µs) | ratio | peak RSS (MB) | list pages |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {waits.get('completed', 0):,} | {waits.get('errors', '—')} "
        f"| {fmt(waits.get('lateness_p50_s'))} / {fmt(waits.get('lateness_p99_s'))} / "
        f"{fmt(waits.get('lateness_max_s'))} | {fmt(waits.get('lag_p99_ms'), 1)} / "
        f"{fmt(waits.get('lag_max_ms'), 1)} | {fmt(waits.get('cpu_us_per_wait'), 0)} "
        f"| {fmt(waits.get('cpu_us_per_get'), 0)} | {fmt(waits.get('cpu_ratio'))}× "
        f"| {fmt(waits.get('peak_rss_mb'), 0)} | {waits.get('listings', '—')} |",
        "",
        "Lateness is measured against appearance + the poll interval a lone wait would be at "
        "(1 s × 1.5ⁿ, capped at 30 s). Straight from the object appearing to the wait "
        f"returning: p50 {fmt(waits.get('appeared_to_done_p50_s'))} s, "
        f"p99 {fmt(waits.get('appeared_to_done_p99_s'))} s.",
        "",
        f"### {size_mib:,.0f} MiB up and down",
        "",
        "| operation | client | seconds (median) | every run (s) | MiB/s | client CPU (s) "
        "| peak RSS (MB) | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("upload", "download"):
        for client, row in transfers.get(kind, {}).items():
            seconds = row.get("seconds")
            rate = size_mib / seconds if seconds else None
            ok = row.get("ok") and row.get("correct", True)
            runs = ", ".join(fmt(s) for s in row.get("runs", [seconds]))
            lines.append(
                f"| {kind} | {client} | {fmt(seconds)} | {runs} | {fmt(rate, 0)} "
                f"| {fmt(row.get('cpu_s'))} | {fmt(row.get('peak_rss_mb'), 0)} "
                f"| {'yes' if ok else 'NO'} |"
            )
    uploads: dict[str, dict[str, Any]] = transfers.get("upload", {})
    rounds = max((len(row.get("runs", [])) for row in uploads.values()), default=0)
    lines += [
        "",
        f"Uploads: {rounds} rounds, each in another order (each client first in turn), the "
        "object deleted between rounds; the median decides. Downloads: one run each.",
    ]
    lines += ["", "| target | status | measured |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['status']} | {c['detail']} |" for c in checks]
    return "\n".join(lines) + "\n"


def run(
    quick: bool, env: dict[str, str], parts: tuple[str, ...] = ("waits", "transfers")
) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    moto = Moto(env)
    try:
        boto3_s3(moto.url, env).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp:
            workdir = Path(tmp)
            waits = run_waits(plan, env, moto.url, workdir) if "waits" in parts else {}
            transfers = run_transfers(plan, env, moto.url, workdir) if "transfers" in parts else {}
    finally:
        moto.stop()
    checks = targets(waits, transfers)
    return {
        "plan": asdict(plan),
        "waits": waits,
        "transfers": transfers,
        "targets": checks,
        "markdown": markdown(waits, transfers, checks),
    }


def chart(result: dict[str, Any], path: Path) -> None:
    """Seconds and peak RSS of the transfers, per client (matplotlib, from the bench venv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transfers = result["transfers"]
    size_mib = transfers.get("size", 0) / MIB
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "seconds", "seconds (lower is better)"),
        (axes[1], "peak_rss_mb", "peak RSS, MB (lower is better)"),
    ):
        names, values = [], []
        for kind in ("upload", "download"):
            for client, row in transfers.get(kind, {}).items():
                if row.get("ok") and row.get(key) is not None:
                    names.append(f"{kind}\n{client}")
                    values.append(row[key])
        bars = ax.bar(
            names, values, color=["#1f77b4" if "sagemaker" in n else "#999" for n in names]
        )
        ax.bar_label(bars, fmt="%.1f")
        ax.set_title(label)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{size_mib:,.0f} MiB to and from moto's S3 on 127.0.0.1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--waits", type=int, help="override the number of waits")
    parser.add_argument("--size-mib", type=int, help="override the transfer size")
    parser.add_argument("--appear-over", type=float, help="override the seconds of appearances")
    parser.add_argument("--rounds", type=int, help="override the rounds of uploads")
    parser.add_argument("--only", choices=("waits", "transfers"))
    parser.add_argument("--out", type=Path, help="write s3.md and s3.json here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.waits:
        plan.waits = args.waits
    if args.size_mib:
        plan.size = args.size_mib * MIB
    if args.appear_over:
        plan.appear_over_s = args.appear_over
    if args.rounds:
        plan.rounds = args.rounds
    from bench.child_env import child_env

    parts = (args.only,) if args.only else ("waits", "transfers")
    result = run(args.quick, child_env(), parts)
    print(result["markdown"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "s3.md").write_text(result["markdown"])
        (args.out / "s3.json").write_text(json.dumps(result, indent=1, default=str))
        if result["transfers"]:
            chart(result, args.out / "s3_chart.png")
    return 0 if all(c["status"] != "MISS" for c in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
