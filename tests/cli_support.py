"""Helpers for the command-line tests (``test_cli*``); holds no tests itself.

The CLI runs as a real subprocess (``python -m sagemaker_async``) against a
``LocalEndpoint`` started in the test's own event loop, so the test can count the
invocations the endpoint accepted and hold a model's answer back on purpose. The child's
environment is built from nothing: dummy keys, the local URLs, no shared files, no IMDS.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sagemaker_async.local import LocalEndpoint

SECRET_KEY = "cli-test-secret-key-0123456789abcdef"
SESSION_TOKEN = "cli-test-session-token-FQoGZXIvYXdzEXAMPLE"
WAIT = 20.0  # an upper bound for a child process; a healthy one takes well under a second


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8")


def cli_env(
    local: LocalEndpoint | None, tmp_path: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A child environment with nothing of the developer's AWS setup."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    if local is not None:
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = local.endpoint_url
        env["AWS_ENDPOINT_URL_S3"] = local.s3_endpoint_url
    env.update(extra or {})
    return env


async def start_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: bool = False,
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagemaker_async",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )


async def finish(process: asyncio.subprocess.Process, stdin: bytes | None = None) -> Completed:
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), WAIT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, out, (err or b"").decode("utf-8", errors="replace"))


async def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: bytes | None = None,
) -> Completed:
    """Run ``python -m sagemaker_async ARGS`` to the end, serving the endpoint meanwhile."""
    process = await start_cli(*args, env=env, cwd=cwd, stdin=stdin is not None)
    return await finish(process, stdin)


async def read_line_containing(
    stream: asyncio.StreamReader, needle: str, seen: list[str] | None = None
) -> str:
    """Read a child's stream until a line holds ``needle`` (what it said is kept in ``seen``)."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), WAIT)
        if not raw:
            raise AssertionError(f"the stream ended before a line with {needle!r}: {seen}")
        line = raw.decode("utf-8", errors="replace")
        if seen is not None:
            seen.append(line)
        if needle in line:
            return line


def interrupt(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGINT)


def queued_then(stderr: str, inference_id: str | None = None) -> str:
    """``invoke-endpoint-async --wait`` says the inference id first: check it, return the rest."""
    first, _, rest = stderr.partition("\n")
    assert first.startswith("sagemaker-async: queued inference "), stderr
    if inference_id is not None:
        assert f" {inference_id};" in first, stderr
    return rest


def assert_one_error_line(stderr: str, *needles: str) -> str:
    """Exactly one line, ``sagemaker-async: error: ...``, holding every needle; no traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sagemaker-async: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], stderr
    return lines[0]
