"""Every Python and shell block of README.md runs, as written, against the local endpoint.

The rules (which blocks run, the ``<!-- not-run: reason -->`` marker, what a section
shares) are in ``readme_blocks``. The setting is a reader's: a clean environment (no AWS
variables, an empty home), ``sagemaker-async local serve`` started with the command the
README shows, and only the ``export`` lines it prints. Each section runs in a fresh folder,
in one child process (``readme_runner``), blocks in order.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from readme_blocks import Block, parse, runnable_sections

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUNNER = Path(__file__).resolve().parent / "readme_runner.py"
# The command the README tells readers to start (its "Try the examples" section); the
# test below checks that the README still shows it, word for word.
SERVE = (
    "sagemaker-async local serve "
    "--endpoint my-endpoint=sagemaker_async.local.demo_models:sentiment "
    "--output-path s3://my-bucket/output --failure-path s3://my-bucket/failure"
)
_SECTION_TIMEOUT = 120

_BLOCKS, _PROBLEMS = parse(README.read_text(encoding="utf-8"))
_SECTIONS = runnable_sections(_BLOCKS)


def _bin_dir() -> str:
    return str(Path(sys.executable).parent)


def _clean_env(home: Path) -> dict[str, str]:
    """A new shell's environment: this venv's commands first, nothing of AWS, no home files."""
    return {
        "PATH": os.pathsep.join([_bin_dir(), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # A reader's shell has no pager problem; the AWS CLI v1 never pages anyway.
        "AWS_PAGER": "",
    }


def _exports(lines: list[str]) -> dict[str, str]:
    """What pasting the banner's ``export`` lines into a shell sets."""
    variables: dict[str, str] = {}
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[:1] != ["export"]:
            continue
        for word in words[1:]:
            name, _, value = word.partition("=")
            variables[name] = value
    return variables


@pytest.fixture(scope="module")
def reader_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The local endpoint as the README starts it; the environment its banner sets."""
    home = tmp_path_factory.mktemp("home")
    env = _clean_env(home)
    process = subprocess.Popen(
        [*shlex.split(SERVE), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        cwd=home,
    )
    try:
        banner: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("# Ctrl-C"):
                break
        else:
            raise AssertionError(f"local serve ended before its banner: {banner}")
        yield {**env, **_exports(banner)}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            process.kill()
            process.communicate()


def test_every_block_follows_the_rules() -> None:
    assert not _PROBLEMS, "\n".join(str(problem) for problem in _PROBLEMS)


def test_the_readme_starts_the_endpoint_the_tests_start() -> None:
    flat = " ".join(README.read_text(encoding="utf-8").replace("\\\n", " ").split())
    assert SERVE in flat


def test_the_banner_alone_is_enough_for_every_sdk(reader_env: dict[str, str]) -> None:
    assert reader_env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert reader_env["AWS_ACCESS_KEY_ID"]
    assert reader_env["AWS_SECRET_ACCESS_KEY"]
    assert reader_env["AWS_ENDPOINT_URL_S3"] == reader_env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]


def _uses_aws(blocks: list[Block]) -> bool:
    return any(
        block.kind == "sh"
        and any(line.lstrip().startswith("aws ") for line in block.code.split("\n"))
        for block in blocks
    )


@pytest.mark.parametrize(
    "section",
    [pytest.param(key, id=key[1]) for key in _SECTIONS],
)
@pytest.mark.slow  # each section is a child process running real commands: 1 to 5 s
def test_section_runs_as_written(
    section: tuple[int, str], reader_env: dict[str, str], tmp_path: Path
) -> None:
    blocks = _SECTIONS[section]
    if _uses_aws(blocks) and shutil.which("aws", path=reader_env["PATH"]) is None:
        pytest.skip("the AWS CLI (`aws`) is not installed here: its walkthrough cannot run")
    payload = {
        "blocks": [
            {"line": block.line, "kind": block.kind, "code": block.code, "file": block.file_name}
            for block in blocks
        ]
    }
    result = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=reader_env,
        cwd=tmp_path,
        timeout=_SECTION_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def _documented(pattern: str) -> str:
    flat = " ".join(README.read_text(encoding="utf-8").split())
    match = re.search(pattern, flat)
    assert match is not None, pattern
    return match.group(1)


def test_the_documented_local_endpoint_signature_is_the_real_one() -> None:
    from sagemaker_async.local import LocalEndpoint

    documented = _documented(r"`LocalEndpoint\(endpoints, \*, (.*?)\)` starts")
    names = [part.split("=", 1)[0].strip() for part in documented.split(", ")]
    parameters = inspect.signature(LocalEndpoint).parameters
    assert names == [name for name in parameters if name != "endpoints"]
    for part in documented.split(", "):
        name, _, default = part.partition("=")
        actual = parameters[name.strip()].default
        if actual is time.monotonic:
            shown = "time.monotonic"
        else:
            shown = json.dumps(actual) if isinstance(actual, str) else repr(actual)
        assert default.strip() == shown, name


async def test_the_documented_stats_keys_are_the_real_ones() -> None:
    from sagemaker_async.local import LocalEndpoint

    documented = _documented(r"`stats\(name\)`, a dict with (.*?)\.")
    keys = re.findall(r"`(\w+)`", documented)
    async with LocalEndpoint({"e": lambda payload: payload}) as local:
        assert keys == list(local.stats("e"))
