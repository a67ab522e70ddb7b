"""Benchmark sagemaker-async against aiobotocore, boto3 and the raw-asyncio limit.

    bash bench/setup_venv.sh && bench/.venv/bin/python -m bench.run [--quick] [options]

What it does (see issue 3, part 1):

1. starts the fake SageMaker runtime (``bench/fake_runtime.py``) in its own process on
   127.0.0.1;
2. runs every measurement of every client in a fresh process (``bench/run_client.py``),
   interleaved round by round (A B C D A B C D ...), so that drift on this shared,
   noisy machine hits every client alike; each round runs, for each client in turn:
   ``startup`` (import time and spawn → first call, environment credentials; repeated),
   ``latency`` (1 in flight), ``throughput`` at 16 and 64 in flight, and ``throughput`` at
   256 in flight in a process of its own, whose peak RSS is the one reported;
3. takes the median of each metric over the rounds, prints a Markdown table with ratios to
   aiobotocore and to the raw limit, checks the issue's targets (PASS/MISS), and writes
   ``results.md``, ``results.json`` and ``chart.png`` to ``bench/results/``, with a
   description of the machine.

Every call carries a unique inference id and every answer is checked against it; wrong
answers and failed calls are counted for every run.

Children get a clean environment: no ``AWS_*`` variables from outside, no proxies, and
fake credentials in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_DEFAULT_REGION``
(with the shared config and credentials files pointed at ``/dev/null`` and IMDS off), so
no client can reach a real credential source or a real endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.child_env import child_env

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results"

# Run order (A B C D); display order is the same, the limit last.
CLIENTS = ("sagemaker_async", "baseline", "aiobotocore", "boto3", "raw")
LABELS = {
    "sagemaker_async": "sagemaker-async",
    "baseline": "sagemaker-async, baseline (--baseline-src)",
    "aiobotocore": "aiobotocore",
    "boto3": "boto3 in asyncio.to_thread",
    "raw": "raw asyncio protocol (the limit)",
}
BASELINE = "aiobotocore"
LIMIT = "raw"
SUBJECT = "sagemaker_async"
LIBRARIES = (
    "sagemaker-async",
    "httpx",
    "httpcore",
    "h11",
    "botocore",
    "aiobotocore",
    "aiohttp",
    "boto3",
    "matplotlib",
)


@dataclass
class Plan:
    rounds: int
    startup_repeats: int
    latency_calls: int
    latency_warmup: int
    concurrency: list[int]
    calls: list[int]
    warmup: int
    timeout_s: float
    aiobotocore_pool: str


# Counts are tuned so that a full run takes about 3-5 minutes on the 2-core machine
# (the slow baselines dominate: aiobotocore and boto3 do a few hundred to ~2,000 req/s).
# 10,000 calls at 256 in flight is what the RSS target names.
FULL = Plan(
    rounds=4,
    startup_repeats=2,
    latency_calls=1000,
    latency_warmup=100,
    concurrency=[16, 64, 256],
    calls=[1500, 3000, 10000],
    warmup=200,
    timeout_s=600.0,
    aiobotocore_pool="default",
)
QUICK = Plan(
    rounds=1,
    startup_repeats=1,
    latency_calls=300,
    latency_warmup=50,
    concurrency=[16, 64, 256],
    calls=[1000, 2000, 2000],
    warmup=200,
    timeout_s=300.0,
    aiobotocore_pool="default",
)


# --------------------------------------------------------------------------- processes


def monotonic() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class Server:
    """The fake runtime in its own process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_runtime", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"fake runtime did not start (said {line!r})")
        self.port = int(line)

    def stats(self) -> dict[str, float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/_stats")
            data: dict[str, float] = json.loads(conn.getresponse().read())
            return data
        finally:
            conn.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# The source tree of an earlier sagemaker-async (``--baseline-src``): measured in the same
# run, interleaved with today's, so a before/after ratio does not compare two machines' moods.
BASELINE_SRC: Path | None = None


def run_child(
    server: Server, env: dict[str, str], plan: Plan, client: str, mode: str, args: list[str]
) -> dict[str, Any]:
    if client == "baseline":
        assert BASELINE_SRC is not None
        env = {**env, "PYTHONPATH": str(BASELINE_SRC)}
    cmd = [
        sys.executable,
        "-m",
        "bench.run_client",
        "--client",
        "sagemaker_async" if client == "baseline" else client,
        "--mode",
        mode,
        "--port",
        str(server.port),
        "--aiobotocore-pool",
        plan.aiobotocore_pool,
        *args,
    ]
    before = server.stats()
    t_spawn = monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=plan.timeout_s
        )
    except subprocess.TimeoutExpired:
        return {"client": client, "mode": mode, "ok": False, "fatal": "timed out"}
    t_exit = monotonic()
    lines = proc.stdout.strip().splitlines()
    try:
        out: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        out = {"client": client, "mode": mode, "ok": False}
        out["fatal"] = f"exit {proc.returncode}, no JSON: {proc.stderr.strip()[-800:]}"
    out["client"] = client  # the baseline runs as sagemaker_async but is reported as itself
    if not out.get("ok") and proc.stderr.strip():
        out.setdefault("stderr", proc.stderr.strip()[-2000:])
    if "t_first_done" in out:
        out["spawn_to_first_ms"] = (out["t_first_done"] - t_spawn) * 1e3
    out["process_s"] = t_exit - t_spawn
    after = server.stats()
    # The stats request itself opens one connection.
    out["connections"] = int(after["connections"] - before["connections"] - 1)
    requests = after["requests"] - before["requests"]
    if requests:
        out["server_cpu_us_per_request"] = (after["cpu_s"] - before["cpu_s"]) / requests * 1e6
    return out


# --------------------------------------------------------------------------- jobs


@dataclass
class Job:
    mode: str
    args: list[str]
    name: str


def jobs_for(plan: Plan) -> list[Job]:
    jobs = [
        Job(
            "latency",
            ["--calls", str(plan.latency_calls), "--warmup", str(plan.latency_warmup)],
            "latency",
        )
    ]
    # The highest concurrency runs in a process of its own: its peak RSS is the one reported.
    groups = [
        (plan.concurrency[:-1], plan.calls[:-1]),
        (plan.concurrency[-1:], plan.calls[-1:]),
    ]
    for conc, calls in groups:
        if conc:
            jobs.append(
                Job(
                    "throughput",
                    [
                        "--concurrency",
                        ",".join(map(str, conc)),
                        "--calls",
                        ",".join(map(str, calls)),
                        "--warmup",
                        str(plan.warmup),
                    ],
                    "throughput@" + ",".join(map(str, conc)),
                )
            )
    return jobs


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def short(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        bad = f"wrong={result.get('wrong')} errors={result.get('errors')}"
        return f"FAILED ({result.get('fatal') or result.get('first_error') or bad})"
    if result["mode"] == "startup":
        imp, spawn = result["import_ms"], result["spawn_to_first_ms"]
        return f"import {imp:.0f} ms, spawn→first {spawn:.0f} ms"
    parts = []
    for p in result["phases"]:
        if "latency_median_us" in p:
            parts.append(
                f"median {p['latency_median_us']:.0f} µs, p99 {p['latency_p99_us']:.0f} µs, "
                f"CPU {p['cpu_us_per_call']:.0f} µs/call"
            )
        else:
            parts.append(f"@{p['concurrency']}: {p['req_per_s']:,.0f} req/s")
    if result["mode"] == "throughput":
        parts.append(f"RSS {result['rss_mib']:.0f} MiB, {result['connections']} conns")
    if "server_cpu_us_per_request" in result:
        parts.append(f"server {result['server_cpu_us_per_request']:.0f} µs/req")
    return "; ".join(parts)


def run_all(plan: Plan, clients: list[str], env: dict[str, str]) -> dict[str, Any]:
    server = Server(env)
    log(f"fake runtime on 127.0.0.1:{server.port}")
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    try:
        # One untimed start per client: compiles bytecode, warms the page cache, and
        # tells us whether the client is there at all.
        for client in clients:
            res = run_child(server, env, plan, client, "startup", [])
            if not res.get("ok"):
                reason = res.get("fatal") or res.get("first_error") or "failed"
                skipped[client] = str(reason)
                log(f"skipping {client}: {reason}")
        active = [c for c in clients if c not in skipped]
        jobs = jobs_for(plan)
        for rnd in range(1, plan.rounds + 1):
            for rep in range(plan.startup_repeats):
                for client in active:
                    res = run_child(server, env, plan, client, "startup", [])
                    res.update(round=rnd, job="startup")
                    runs.append(res)
                    log(f"[round {rnd}/{plan.rounds}] startup#{rep + 1} {client}: {short(res)}")
            for job in jobs:
                for client in active:
                    res = run_child(server, env, plan, client, job.mode, job.args)
                    res.update(round=rnd, job=job.name)
                    runs.append(res)
                    log(f"[round {rnd}/{plan.rounds}] {job.name} {client}: {short(res)}")
                    if not server.alive():
                        raise RuntimeError("the fake runtime died")
        server_stats = server.stats()
    finally:
        server.stop()
    return {"runs": runs, "skipped": skipped, "server": server_stats, "clients": active}


# --------------------------------------------------------------------------- summary

METRICS: list[tuple[str, str, str, int]] = [
    # key, column title, unit, decimals
    ("import_ms", "import", "ms", 0),
    ("spawn_ms", "spawn → first call", "ms", 0),
    ("latency_median_us", "latency median, 1 in flight", "µs", 0),
    ("latency_p99_us", "latency p99, 1 in flight", "µs", 0),
    ("cpu_us_1", "client CPU per call, 1 in flight", "µs", 0),
]


def samples(runs: list[dict[str, Any]], client: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(float(value))

    for r in runs:
        if r.get("client") != client:
            continue
        if r["mode"] == "startup" and "spawn_to_first_ms" in r:
            add("import_ms", r["import_ms"])
            add("spawn_ms", r["spawn_to_first_ms"])
        for p in r.get("phases", []):
            if r["mode"] == "latency":
                add("latency_median_us", p["latency_median_us"])
                add("latency_p99_us", p["latency_p99_us"])
                add("cpu_us_1", p["cpu_us_per_call"])
            else:
                add(f"rps_{p['concurrency']}", p["req_per_s"])
                add(f"cpu_us_{p['concurrency']}", p["cpu_us_per_call"])
        if r["mode"] == "throughput" and "rss_mib" in r and len(r.get("phases", [])) == 1:
            c = r["phases"][0]["concurrency"]
            add(f"rss_mib_{c}", r["rss_mib"])
            add(f"connections_{c}", r["connections"])
    return out


def summarize(data: dict[str, Any], plan: Plan) -> dict[str, Any]:
    runs = data["runs"]
    summary: dict[str, Any] = {}
    for client in data["clients"]:
        s = samples(runs, client)
        mine = [r for r in runs if r.get("client") == client]
        summary[client] = {
            "median": {k: statistics.median(v) for k, v in s.items()},
            "min": {k: min(v) for k, v in s.items()},
            "max": {k: max(v) for k, v in s.items()},
            "samples": s,
            "wrong": sum(int(r.get("wrong", 0)) for r in mine),
            "errors": sum(int(r.get("errors", 0)) for r in mine),
            "calls_checked": sum(int(r.get("calls_checked", 0)) for r in mine),
            "failed_runs": sum(1 for r in mine if not r.get("ok")),
        }
    return summary


def columns(plan: Plan) -> list[tuple[str, str, str, int]]:
    top = plan.concurrency[-1]
    cols = list(METRICS)
    cols += [(f"rps_{c}", f"throughput, {c} in flight", "req/s", 0) for c in plan.concurrency]
    cols.append((f"rss_mib_{top}", f"peak RSS, {top} in flight", "MiB", 1))
    return cols


def fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "—"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def markdown_tables(summary: dict[str, Any], plan: Plan, clients: list[str]) -> str:
    cols = columns(plan)
    out: list[str] = []
    head = "| client | " + " | ".join(f"{t} ({u})" for _, t, u, _ in cols) + " | wrong answers |"
    out += [head, "|---" + "|---:" * (len(cols) + 1) + "|"]
    for c in clients:
        med = summary[c]["median"]
        cells = [fmt(med.get(k), d) for k, _, _, d in cols]
        if c == LIMIT:
            cells[0] = "—"  # nothing to import beyond asyncio
        bad = summary[c]["wrong"] + summary[c]["errors"]
        checked = summary[c]["calls_checked"]
        out.append(f"| {LABELS[c]} | " + " | ".join(cells) + f" | {bad} of {checked:,} |")
    for ref, title in ((BASELINE, "aiobotocore"), (LIMIT, "the raw limit")):
        if ref not in summary:
            continue
        out += ["", f"Ratios to {title} (lower is better, except throughput):", ""]
        rcols = [col for col in cols if not (ref == LIMIT and col[0] == "import_ms")]
        out.append("| client | " + " | ".join(t for _, t, _, _ in rcols) + " |")
        out.append("|---" + "|---:" * len(rcols) + "|")
        base = summary[ref]["median"]
        for c in clients:
            if c == ref:
                continue
            med = summary[c]["median"]
            cells = [ratio(med.get(k), base.get(k)) for k, _, _, _ in rcols]
            out.append(f"| {LABELS[c]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def check_targets(summary: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    top = plan.concurrency[-1]
    subj = summary.get(SUBJECT, {}).get("median")
    base = summary.get(BASELINE, {}).get("median")
    lim = summary.get(LIMIT, {}).get("median")
    mid = 64 if 64 in plan.concurrency else plan.concurrency[len(plan.concurrency) // 2]

    def compare(
        name: str,
        a: dict[str, float] | None,
        b: dict[str, float] | None,
        key: str,
        op: str,
        factor: float,
    ) -> dict[str, Any]:
        if not a or not b or key not in a or key not in b:
            return {"target": name, "status": "n/a", "detail": "not measured"}
        value, ref = a[key], b[key]
        r = value / ref if ref else float("inf")
        ok = r >= factor if op == ">=" else r <= factor
        return {
            "target": name,
            "status": "PASS" if ok else "MISS",
            "detail": f"{value:,.1f} vs {ref:,.1f}: {r:.2f}× (needs {op} {factor:g}×)",
        }

    targets = [
        compare(f"req/s at {mid} in flight ≥ 4× aiobotocore's", subj, base, f"rps_{mid}", ">=", 4),
        compare(
            "client CPU per call at 1 in flight ≤ 3× the raw limit's",
            subj,
            lim,
            "cpu_us_1",
            "<=",
            3,
        ),
        compare(
            "spawn → first call (env credentials) ≤ ½ aiobotocore's",
            subj,
            base,
            "spawn_ms",
            "<=",
            0.5,
        ),
        compare(
            f"peak RSS after {plan.calls[-1]:,} calls at {top} in flight ≤ aiobotocore's",
            subj,
            base,
            f"rss_mib_{top}",
            "<=",
            1,
        ),
    ]
    if SUBJECT in summary:
        s = summary[SUBJECT]
        bad = s["wrong"] + s["errors"]
        targets.append(
            {
                "target": "no wrong answer (every call of every sagemaker-async run)",
                "status": "PASS" if bad == 0 and s["failed_runs"] == 0 else "MISS",
                "detail": f"{s['wrong']} wrong, {s['errors']} failed of {s['calls_checked']:,} "
                f"calls; {s['failed_runs']} failed runs",
            }
        )
    else:
        targets.append({"target": "no wrong answer", "status": "n/a", "detail": "not measured"})
    return targets


def server_load(runs: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[float | None, str]:
    """How busy the fake runtime was at the raw limit's pace: is the server the bottleneck?"""
    samples = [
        r["server_cpu_us_per_request"]
        for r in runs
        if r.get("client") == LIMIT
        and r["mode"] == "throughput"
        and "server_cpu_us_per_request" in r
    ]
    if not samples:
        return None, "The fake runtime's CPU per request was not measured (no raw runs)."
    us = statistics.median(samples)
    rates = [v for k, v in summary[LIMIT]["median"].items() if k.startswith("rps_")]
    share = us * max(rates) / 1e6 if rates else 0.0
    return us, (
        f"During the raw limit's throughput runs the fake runtime used a median {us:.0f} µs "
        f"of CPU per request: {share:.0%} of one core at the raw limit's best median rate."
    )


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes in src/)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": versions,
        "commit": commit,
    }


def machine_markdown(m: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    load = m.get("loadavg_before"), m.get("loadavg_after")
    return "\n".join(
        [
            f"- CPU: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
            f"{m['memory_gib']} GiB",
            f"- OS: {m['os']}; {m['python']}",
            f"- Libraries: {libs}",
            f"- Commit: {m['commit']}",
            f"- Load average (1 min) before / after: {load[0]} / {load[1]}",
        ]
    )


# --------------------------------------------------------------------------- output


def chart(summary: dict[str, Any], plan: Plan, clients: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "sagemaker_async": "#1f77b4",
        "baseline": "#aec7e8",
        "aiobotocore": "#ff7f0e",
        "boto3": "#2ca02c",
        "raw": "#7f7f7f",
    }
    names = [
        LABELS[c]
        .replace(" (the limit)", "\n(the limit)")
        .replace(" in ", "\nin ")
        .replace(", baseline (--baseline-src)", "\nbefore")
        for c in clients
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    width = 0.8 / max(len(clients), 1)
    xs = range(len(plan.concurrency))
    for i, c in enumerate(clients):
        med = summary[c]["median"]
        vals = [med.get(f"rps_{k}", 0.0) for k in plan.concurrency]
        pos = [x + (i - (len(clients) - 1) / 2) * width for x in xs]
        bars = ax.bar(pos, vals, width, label=LABELS[c], color=colors.get(c))
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=7, rotation=90, padding=2)
    ax.set_xticks(list(xs), [f"{k} in flight" for k in plan.concurrency])
    ax.set_ylabel("requests per second (higher is better)")
    ax.set_title("Throughput")
    ax.margins(y=0.2)
    ax.legend(fontsize=8)

    def single(ax: Any, key: str, label: str, title: str, decimals: int) -> None:
        vals = [summary[c]["median"].get(key, 0.0) for c in clients]
        bars = ax.bar(names, vals, color=[colors.get(c) for c in clients])
        ax.bar_label(bars, labels=[f"{v:,.{decimals}f}" for v in vals], fontsize=8, padding=2)
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.tick_params(axis="x", labelsize=8)

    single(
        axes[0][1],
        "cpu_us_1",
        "µs per call (lower is better)",
        "Client CPU per call, 1 in flight",
        0,
    )
    single(
        axes[1][0],
        "spawn_ms",
        "ms (lower is better)",
        "Spawn → first call done (environment credentials)",
        0,
    )
    top = plan.concurrency[-1]
    single(
        axes[1][1],
        f"rss_mib_{top}",
        "MiB (lower is better)",
        f"Peak RSS after {plan.calls[-1]:,} calls at {top} in flight",
        1,
    )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def report(
    plan: Plan,
    summary: dict[str, Any],
    targets: list[dict[str, Any]],
    m: dict[str, Any],
    clients: list[str],
    skipped: dict[str, str],
    quick: bool,
    elapsed_s: float,
    server_note: str,
) -> str:
    when = m["finished"]
    lines = [
        "# Benchmark: sagemaker-async vs aiobotocore, boto3 and the raw-asyncio limit",
        "",
        f"Run {when}{' (quick mode: indicative only)' if quick else ''}; medians of "
        f"{plan.rounds} interleaved round(s), {elapsed_s:.0f} s in all. "
        "Each measurement runs in a fresh process against a fake SageMaker runtime on "
        "127.0.0.1 (its own process); InvokeEndpointAsync with an S3 input location and a "
        "unique inference id per call, every answer checked.",
        "",
        markdown_tables(summary, plan, clients),
        "",
        "## Targets (issue 3)",
        "",
        *[f"- **{t['status']}** {t['target']}: {t['detail']}" for t in targets],
        "",
        "## How it was measured",
        "",
        f"- import: `import` of the client library in a fresh interpreter that already has "
        f"asyncio loaded; spawn → first call: from the parent's spawn of a fresh process to "
        f"the end of its first call, credentials from environment variables; median of "
        f"{plan.rounds * plan.startup_repeats} starts.",
        f"- latency and client CPU (`time.process_time` of the client process, all threads, "
        f"per call): {plan.latency_calls:,} calls one at a time after "
        f"{plan.latency_warmup:,} warm-up calls.",
        "- throughput: "
        + ", ".join(
            f"{n:,} calls at {c} in flight"
            for c, n in zip(plan.concurrency, plan.calls, strict=True)
        )
        + f", each after {plan.warmup:,} warm-up calls (at least as many as in flight); "
        f"{plan.concurrency[-1]} in flight runs in a process of its own, whose peak RSS "
        "(`ru_maxrss`) is reported.",
        "- boto3: `asyncio.to_thread`, `max_pool_connections` and the default thread pool "
        f"sized to the calls in flight. aiobotocore: pool `{plan.aiobotocore_pool}` "
        "(its default is 10 connections; raising it to the concurrency measured slower here). "
        "raw: a hand-written `asyncio.Protocol` client sending precomputed request bytes "
        "(unsigned), one connection per call in flight.",
        f"- {server_note}",
        "- The machine is shared and noisy: compare ratios within one run, not absolute "
        "numbers across runs.",
        "",
        "## Machine",
        "",
        machine_markdown(m),
    ]
    if skipped:
        lines += ["", "## Not measured", ""]
        lines += [f"- {c}: {why}" for c, why in skipped.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 round with small counts")
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="src/ folder of an earlier sagemaker-async checkout, run as the client 'baseline'",
    )
    parser.add_argument(
        "--clients",
        default=",".join(c for c in CLIENTS if c != "baseline"),
        help=f"comma-separated subset of {','.join(CLIENTS)}",
    )
    parser.add_argument("--startup-repeats", type=int, help="starts per client per round")
    parser.add_argument("--latency-calls", type=int)
    parser.add_argument("--concurrency", help="calls in flight, comma-separated (e.g. 16,64,256)")
    parser.add_argument("--calls", help="calls per concurrency, comma-separated")
    parser.add_argument("--warmup", type=int, help="warm-up calls per throughput phase")
    parser.add_argument("--aiobotocore-pool", choices=("default", "concurrency"))
    parser.add_argument("--timeout", type=float, help="seconds allowed per client process")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--no-s3", action="store_true", help="skip the S3 rows (waits, 1 GiB up/down)"
    )
    args = parser.parse_args(argv)

    plan = Plan(**asdict(QUICK if args.quick else FULL))
    for name in ("rounds", "startup_repeats", "latency_calls", "warmup", "aiobotocore_pool"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    if args.timeout is not None:
        plan.timeout_s = args.timeout
    if args.concurrency:
        plan.concurrency = [int(x) for x in args.concurrency.split(",")]
    if args.calls:
        plan.calls = [int(x) for x in args.calls.split(",")]
    if len(plan.calls) == 1:
        plan.calls = plan.calls * len(plan.concurrency)
    if len(plan.calls) != len(plan.concurrency):
        parser.error("--calls needs one count per --concurrency value")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    if args.baseline_src is not None:
        global BASELINE_SRC
        BASELINE_SRC = args.baseline_src.resolve()
        if not (BASELINE_SRC / "sagemaker_async" / "__init__.py").is_file():
            parser.error(f"--baseline-src: no sagemaker_async package in {BASELINE_SRC}")
        if "baseline" not in clients:
            clients.insert(1, "baseline")
    elif "baseline" in clients:
        parser.error("the client 'baseline' needs --baseline-src")

    m = machine()
    m["loadavg_before"] = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    data = run_all(plan, clients, child_env())
    elapsed = time.monotonic() - started
    m["loadavg_after"] = round(os.getloadavg()[0], 2)
    m["finished"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    active = [c for c in CLIENTS if c in data["clients"]]
    summary = summarize(data, plan)
    targets = check_targets(summary, plan)
    server_us, server_note = server_load(data["runs"], summary)
    text = report(
        plan, summary, targets, m, active, data["skipped"], args.quick, elapsed, server_note
    )

    s3: dict[str, Any] | None = None
    if not args.no_s3:
        from bench import s3_bench

        log("S3 rows: many waits, 1 GiB upload and download")
        s3 = s3_bench.run(args.quick, child_env())
        text += "\n" + s3["markdown"]
        targets += s3["targets"]

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    write_json(
        args.out / "results.json",
        {
            "plan": asdict(plan),
            "quick": args.quick,
            "machine": m,
            "elapsed_s": elapsed,
            "summary": summary,
            "targets": targets,
            "skipped": data["skipped"],
            "server": data["server"],
            "server_cpu_us_per_request_median": server_us,
            "runs": data["runs"],
            "s3": s3,
        },
    )
    if not args.no_chart:
        title = (
            f"sagemaker-async benchmark, {m['finished']}: {m['cpu']}, {m['usable_cores']} "
            f"cores, {m['python']}; medians of {plan.rounds} round(s)"
        )
        chart(summary, plan, active, args.out / "chart.png", title)
        if s3 is not None and s3["transfers"]:
            from bench import s3_bench

            s3_bench.chart(s3, args.out / "s3_chart.png")

    print(markdown_tables(summary, plan, active))
    if s3 is not None:
        print()
        print(s3["markdown"])
    print()
    for t in targets:
        print(f"{t['status']:4}  {t['target']}: {t['detail']}")
    print(f"\nwrote {args.out}/results.md, results.json" + ("" if args.no_chart else ", chart.png"))
    log(f"done in {elapsed:.0f} s")
    failed = [r for r in data["runs"] if not r.get("ok")]
    if s3 is not None and not all(
        row.get("ok")
        for rows in (s3["transfers"].get("upload", {}), s3["transfers"].get("download", {}))
        for row in rows.values()
    ):
        failed.append({"s3": "a transfer failed"})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
