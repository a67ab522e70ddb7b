"""The soak: a ``local serve`` process under 200 concurrent clients, 2,000 invocations of
which 5% hang, 5% raise and 2% exit their worker. Every request ends with exactly one
object, the server stays small, and it stops within 5 s afterwards."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from sagemaker_async import AsyncInferenceClient

TESTS = str(Path(__file__).resolve().parent)
KEY = SECRET = "soak"
TOTAL, CLIENTS = 2000, 200
RSS_LIMIT_KB = 300 * 1024


def _rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _list(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key -> first 40 bytes of the body, for every object under prefix."""
    keys: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys[item["Key"]] = ""
    for key in keys:
        if prefix.endswith("failure/"):
            keys[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()[:60].decode()
    return keys


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_soak(tmp_path: Path) -> None:
    rng = random.Random(12)
    kinds = ["hang"] * 100 + ["rais"] * 100 + ["exit"] * 40 + ["okay"] * (TOTAL - 240)
    rng.shuffle(kinds)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sagemaker_async.local", "serve",
        "--endpoint", "soak=handler_modules.misbehaving:by_payload",
        "--concurrency", "24",
        "--credentials", f"{KEY}:{SECRET}",
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": TESTS},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split("=", 1)[1]
        url = url.strip()
        finished: set[str] = set()
        all_done = asyncio.Event()

        async def read_log() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                line = raw.decode("utf-8", "replace")
                if " done -> " in line or " failed -> " in line:
                    finished.add(line.split(": ", 2)[1].split(" ", 1)[0])
                    if len(finished) == TOTAL:
                        all_done.set()

        log_reader = asyncio.create_task(read_log())
        expected: dict[str, str] = {}
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for number, kind in enumerate(kinds):
            queue.put_nowait((number, kind))

        async with AsyncInferenceClient(
            "us-east-1", endpoint_url=url, s3_endpoint_url=url, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        ) as client:  # fmt: skip

            async def one_client() -> None:
                while not queue.empty():
                    number, kind = queue.get_nowait()
                    inv = await client.invoke_endpoint_async(
                        "soak",
                        body=kind.encode() + b"-%d" % number,
                        inference_id=f"soak-{number}",
                        invocation_timeout_seconds=1,
                    )
                    expected[inv.inference_id] = kind

            await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        assert len(expected) == TOTAL
        await asyncio.wait_for(all_done.wait(), 120)

        def check_objects() -> tuple[dict[str, str], dict[str, str]]:
            s3 = boto3.client(
                "s3", region_name="us-east-1", endpoint_url=url, aws_access_key_id=KEY,
                aws_secret_access_key=SECRET,
            )  # fmt: skip
            bucket = "sagemaker-async-local"
            return _list(s3, bucket, "output/"), _list(s3, bucket, "failure/")

        outputs, failures = await asyncio.to_thread(check_objects)
        output_ids = {key.removeprefix("output/").removesuffix(".out") for key in outputs}
        failure_ids = {
            key.removeprefix("failure/").removesuffix("-error.out"): text
            for key, text in failures.items()
        }
        assert len(outputs) + len(failures) == TOTAL
        assert output_ids.isdisjoint(failure_ids)
        assert output_ids | set(failure_ids) == set(expected)
        wanted = {
            "hang": "Inference timed out",
            "rais": "Model error: RuntimeError: asked to raise",
            "exit": "Model error: the worker process exited with status 1",
        }
        for inference_id, kind in expected.items():
            if kind == "okay":
                assert inference_id in output_ids, failure_ids.get(inference_id)
            else:
                assert failure_ids[inference_id].startswith(wanted[kind]), failure_ids[inference_id]

        assert _rss_peak_kb(process.pid) < RSS_LIMIT_KB
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 5)
        assert process.returncode == 0
        await log_reader
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
