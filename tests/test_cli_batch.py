"""``sagemaker-async batch`` as a subprocess against a local endpoint.

The endpoint counts the invocations it accepted, which is how "never submitted twice" is
checked. The interrupted run is made deterministic with a named pipe: one manifest item is
a FIFO, and the child blocks reading it while the test holds the writing end — so the test
knows exactly which items were sent before it presses Ctrl-C, and nothing is timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from cli_support import (
    WAIT,
    assert_one_error_line,
    cli_env,
    finish,
    interrupt,
    read_line_containing,
    run_cli,
    start_cli,
)
from sagemaker_async.local import LocalEndpoint
from test_local_support import client_for, get_object, warm_moto

__all__ = ["warm_moto"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.usefixtures("warm_moto")

PROGRESS = re.compile(
    r"batch: (\d+)/(\d+) (submitted|done) \| .*\d+\.\d/s \| errors (\d+) \| "
    r"concurrency (\d+) \| (ETA [-0-9:]+|took \d+:\d\d)"
)


@dataclass
class Local:
    endpoint: LocalEndpoint
    env: dict[str, str]


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Local]:
    def model(payload: bytes) -> bytes:
        if payload.startswith(b"fail"):
            raise ValueError("this input makes the model fail")
        return payload.upper()

    async with LocalEndpoint({"model": model}) as endpoint:
        yield Local(endpoint, cli_env(endpoint, tmp_path))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def submitted_keys(path: Path) -> list[str]:
    return [
        entry["key"] for entry in records(path) if entry.get("submitted") and "outcome" not in entry
    ]


def write_manifest(folder: Path, lines: list[object]) -> Path:
    manifest = folder / "manifest.jsonl"
    manifest.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return manifest


async def test_a_manifest_batch_with_progress_lines_and_a_record(
    local: Local, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for number in range(1, 5):
        (data / f"{number}.txt").write_text(f"item {number}")
    (data / "big.bin").write_bytes(b"b" * 200_000)  # too large to go inline: uploaded
    in_s3 = f"s3://{local.endpoint.bucket}/already/there.txt"
    async with client_for(local.endpoint) as client:
        await client.upload_input(b"from s3", in_s3)
    manifest = write_manifest(
        tmp_path,
        [
            {"input": "data/1.txt", "custom_attributes": "manifest-secret-attribute"},
            '"data/2.txt"',
            "data/3.txt",
            "# a comment, and a blank line",
            "",
            {"input": "data/4.txt", "inference_id": "item-four", "filename": "four.out"},
            {"input": "data/big.bin"},
            {"input": in_s3, "s3_output_path_extension": "from-s3"},
        ],
    )
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "model", "--manifest", str(manifest),
        "--record", str(record), "--concurrency", "3", "--progress-interval", "0",
        "--input-location-prefix", f"s3://{local.endpoint.bucket}/uploads/",
        env=local.env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {
        "total": 6,
        "skipped": 0,
        "submitted": 6,
        "errors": 0,
        "throttled": 0,
        "record": str(record),
    }
    assert local.endpoint.invocation_count("model") == 6

    # Progress to a pipe: plain lines, one per change with --progress-interval 0.
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr
    assert all(PROGRESS.fullmatch(line) for line in lines), lines
    done = [int(PROGRESS.fullmatch(line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert done[0] == 0
    assert done[-1] == 6
    assert done == sorted(done)
    assert " | took " in lines[-1]

    entries = records(record)
    by_key = {entry["key"]: entry for entry in entries}
    assert set(by_key) == {
        "1:data/1.txt", "2:data/2.txt", "3:data/3.txt", "6:data/4.txt", "7:data/big.bin",
        f"8:{in_s3}",
    }  # fmt: skip
    for entry in entries:
        assert entry["submitted"] is True
        assert entry["endpoint"] == "model"
        assert entry["output_location"].startswith(local.endpoint.output_path)
        assert entry["failure_location"].startswith(local.endpoint.failure_path)
    assert by_key["6:data/4.txt"]["inference_id"] == "item-four"
    assert by_key["6:data/4.txt"]["output_location"] == f"{local.endpoint.output_path}/four.out"
    assert "/from-s3/" in by_key[f"8:{in_s3}"]["output_location"]
    uploaded = f"s3://{local.endpoint.bucket}/uploads/000007-big.bin"
    assert by_key["7:data/big.bin"]["input_location"] == uploaded
    assert (await get_object(local.endpoint, uploaded)).body == b"b" * 200_000

    await local.endpoint.wait_idle(5)
    out = await get_object(local.endpoint, by_key["2:data/2.txt"]["output_location"])
    assert out.body == b"ITEM 2"
    shown = record.read_text() + result.stderr + result.text
    assert "manifest-secret-attribute" not in shown  # custom attributes are never written


async def test_batch_wait_records_each_outcome_and_exits_1_on_a_failure(
    local: Local, tmp_path: Path
) -> None:
    for name, text in (("ok.txt", "fine"), ("bad.txt", "fail please")):
        (tmp_path / name).write_text(text)
    manifest = write_manifest(tmp_path, ["ok.txt", "bad.txt"])
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "model", "--manifest", str(manifest), "--record", str(record),
        "--wait", "--poll-interval", "0.02", "--quiet",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""  # --quiet: no progress; the outcome is in the record
    summary = json.loads(result.stdout)
    assert (summary["submitted"], summary["succeeded"], summary["failed"]) == (2, 1, 1)
    outcomes = {e["key"]: e for e in records(record) if "outcome" in e}
    assert outcomes["1:ok.txt"]["outcome"] == "succeeded"
    assert outcomes["1:ok.txt"]["result_location"] == outcomes["1:ok.txt"]["output_location"]
    assert outcomes["2:bad.txt"]["outcome"] == "failed"
    assert "this input makes the model fail" in outcomes["2:bad.txt"]["error"]


async def _open_for_writing(fifo: Path) -> BinaryIO:
    """Returns once the child has opened the pipe to read it: it is now on that item."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fifo.open, "wb"), WAIT)
    except asyncio.TimeoutError:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # free the waiting thread
        raise


@pytest.mark.slow  # three runs of the CLI
async def test_an_interrupted_batch_resumes_without_submitting_anything_twice(
    local: Local, tmp_path: Path
) -> None:
    for number in (1, 2, 3, 4, 5, 7, 8):
        (tmp_path / f"{number}.txt").write_text(f"payload {number}")
    fifo = tmp_path / "6.txt"
    os.mkfifo(fifo)
    manifest = write_manifest(tmp_path, [f"{number}.txt" for number in range(1, 9)])
    record = tmp_path / "record.jsonl"
    args = [
        "batch", "--endpoint-name", "model", "--manifest", str(manifest),
        "--record", str(record), "--concurrency", "1", "--progress-interval", "0",
    ]  # fmt: skip

    process = await start_cli(*args, env=local.env)
    writer = await _open_for_writing(fifo)  # items 1-5 are sent; item 6 is being read
    interrupt(process)
    assert process.stderr is not None
    await read_line_containing(process.stderr, "stopping")
    with writer:  # let the read finish: the item must still not be sent
        writer.write(b"payload 6")
    first = await finish(process)

    assert first.returncode == 130, first.stderr
    assert "run the same command again to resume" in first.stderr
    assert "Traceback" not in first.stderr
    assert json.loads(first.stdout)["submitted"] == 5
    assert submitted_keys(record) == [f"{n}:{n}.txt" for n in range(1, 6)]
    assert local.endpoint.invocation_count("model") == 5  # every request sent is recorded

    fifo.unlink()
    fifo.write_text("payload 6")
    second = await run_cli(*args, env=local.env)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["skipped"], summary["submitted"]) == (5, 3)
    assert local.endpoint.invocation_count("model") == 8
    keys = submitted_keys(record)
    assert sorted(keys) == sorted(f"{n}:{n}.txt" for n in range(1, 9))
    assert len(keys) == len(set(keys))  # no item recorded (or sent) twice

    third = await run_cli(*args, env=local.env)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["submitted"] == 0
    assert local.endpoint.invocation_count("model") == 8


async def test_a_batch_over_an_s3_prefix(local: Local, tmp_path: Path) -> None:
    prefix = f"s3://{local.endpoint.bucket}/reviews/"
    async with client_for(local.endpoint) as client:
        for name in ("a.txt", "b.txt", "sub/c.txt", "sub/"):
            await client.upload_input(b"x" if name.endswith("/") else name.encode(), prefix + name)
        await client.upload_input(b"not under the prefix", f"s3://{local.endpoint.bucket}/other")
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "model", "--input-prefix", prefix, "--record", str(record),
        "--content-type", "text/plain", "--wait", "--poll-interval", "0.02", "--quiet",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["succeeded"] == 3
    keys = sorted(submitted_keys(record))  # recorded as each returns: any order
    assert keys == [prefix + "a.txt", prefix + "b.txt", prefix + "sub/c.txt"]  # not the folder
    assert local.endpoint.invocation_count("model") == 3


@pytest.mark.parametrize("where", ["under a file", "a folder"])
async def test_an_unwritable_record_is_exit_2_before_the_prefix_is_listed(
    tmp_path: Path, where: str
) -> None:
    # S3 is a closed port: had the prefix been listed first, the error would be a
    # connection error (exit 1), after retries, instead of the record's usage error.
    (tmp_path / "a-file").write_text("x")
    record = tmp_path / "a-file" / "record.jsonl" if where == "under a file" else tmp_path
    env = cli_env(None, tmp_path, {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"})
    result = await run_cli(
        "batch", "--endpoint-name", "model", "--input-prefix", "s3://bucket/inputs/",
        "--record", str(record),
        env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr, f"cannot write --record {record}")


@pytest.mark.parametrize(
    ("lines", "needles"),
    [
        ([{"input": "ok.txt"}, {"input": "ok.txt", "content_typ": "x"}], ["line 2", "content_typ"]),
        (["ok.txt", "{not json"], ["line 2", "not valid JSON"]),
        (["ok.txt", "missing.txt"], ["line 2", "missing.txt", "No such file"]),
        ([{"input": "ok.txt", "request_ttl_seconds": 5}], ["line 1", "request_ttl_seconds"]),
        ([{"input": "s3://bucket"}], ["line 1", "names no object"]),
        (["big.bin"], ["line 1", "--input-location-prefix"]),
    ],
)
async def test_a_bad_manifest_is_exit_2_and_sends_nothing(
    local: Local, tmp_path: Path, lines: list[object], needles: list[str]
) -> None:
    (tmp_path / "ok.txt").write_text("ok")
    (tmp_path / "big.bin").write_bytes(b"b" * 128_001)
    manifest = write_manifest(tmp_path, lines)
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "model", "--manifest", str(manifest), "--record", str(record),
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(manifest), *needles)
    assert local.endpoint.invocation_count("model") == 0
    assert not record.exists()


async def test_too_many_errors_stop_the_batch_with_exit_1(local: Local, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    manifest = write_manifest(tmp_path, ["x.txt"] * 10)
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "no-such-endpoint", "--manifest", str(manifest),
        "--record", str(record), "--concurrency", "1", "--max-errors", "2", "--quiet",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == 3
    assert_one_error_line(
        result.stderr,
        "stopped: more than 2 items could not be submitted",
        "errors in all: 3 ",
        "ValidationError (HTTP 400)",
        "no-such-endpoint",
    )
    entries = records(record)
    assert len(entries) == 3
    assert all(entry["submitted"] is False for entry in entries)
    assert "no-such-endpoint" in entries[0]["error"]


async def test_the_stop_message_counts_the_errors_of_requests_still_in_flight(
    local: Local, tmp_path: Path
) -> None:
    # Four in flight at once: when the third error stops the batch, the others still end
    # in errors; the stop message, the summary and the record must agree on the count.
    (tmp_path / "x.txt").write_text("x")
    manifest = write_manifest(tmp_path, ["x.txt"] * 12)
    record = tmp_path / "record.jsonl"
    result = await run_cli(
        "batch", "--endpoint-name", "no-such-endpoint", "--manifest", str(manifest),
        "--record", str(record), "--concurrency", "4", "--max-errors", "2", "--quiet",
        env=local.env,
    )  # fmt: skip
    assert result.returncode == 1
    errors = json.loads(result.stdout)["errors"]
    assert errors >= 3
    assert_one_error_line(result.stderr, f"errors in all: {errors} (as in the summary)")
    assert len(records(record)) == errors


def _read_all(fd: int) -> bytes:
    """Everything the child writes to its terminal, until it closes it (EIO on Linux)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_on_a_terminal_progress_is_one_line_redrawn_in_place(
    local: Local, tmp_path: Path
) -> None:
    for number in range(1, 4):
        (tmp_path / f"{number}.txt").write_text(f"item {number}")
    manifest = write_manifest(tmp_path, [f"{number}.txt" for number in range(1, 4)])
    main_fd, child_fd = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sagemaker_async", "batch", "--endpoint-name", "model",
            "--manifest", str(manifest), "--record", str(tmp_path / "record.jsonl"),
            stdout=asyncio.subprocess.PIPE, stderr=child_fd, env=local.env,
        )  # fmt: skip
    finally:
        os.close(child_fd)  # the child holds its own copy
    try:
        reader = asyncio.ensure_future(asyncio.to_thread(_read_all, main_fd))
        result = await finish(process)
        shown = (await asyncio.wait_for(reader, WAIT)).decode()
    finally:
        os.close(main_fd)
    assert result.returncode == 0, shown
    assert shown.startswith("\rbatch: 0/3 submitted")
    assert "\x1b[K" in shown
    assert shown.count("\n") == 1  # only the end of the one line
    assert shown.endswith("\n")
    assert "\rbatch: 3/3 submitted" in shown
