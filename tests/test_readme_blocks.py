"""The README rules themselves (``readme_blocks``): what runs, what is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from readme_blocks import parse, runnable_sections

FENCE = "```"


def _doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_python_and_shell_run_text_does_not_and_sections_group_them() -> None:
    blocks, problems = parse(
        _doc(
            "# Title", "", f"{FENCE}python", "x = 1", FENCE,
            "## Shell", f"{FENCE}sh", "echo hi", FENCE, f"{FENCE}bash", "true", FENCE,
            f"{FENCE}text", "output", FENCE, f"{FENCE}json", "{}", FENCE,
        )
    )  # fmt: skip
    assert problems == []
    assert [(b.section, b.kind, b.runs) for b in blocks] == [
        ("Title", "python", True),
        ("Shell", "sh", True),
        ("Shell", "sh", True),
        ("Shell", "", False),
        ("Shell", "", False),
    ]
    assert list(runnable_sections(blocks)) == [(1, "Title"), (6, "Shell")]
    assert blocks[0].code == "x = 1\n"
    assert blocks[0].line == 3


def test_the_marker_keeps_the_next_block_from_running() -> None:
    blocks, problems = parse(
        _doc(
            "<!-- not-run: needs AWS -->", f"{FENCE}sh", "aws s3 ls", FENCE,
            f"{FENCE}sh", "ls", FENCE,
        )
    )  # fmt: skip
    assert problems == []
    assert [(b.not_run, b.runs) for b in blocks] == [("needs AWS", False), (None, True)]


def test_a_block_without_a_language_is_refused() -> None:
    _, problems = parse(_doc("text", FENCE, "$ sagemaker-async demo", FENCE))
    assert [p.line for p in problems] == [2]
    assert "without a language" in problems[0].message


def test_a_shell_session_hidden_in_a_text_block_is_refused() -> None:
    _, problems = parse(_doc(f"{FENCE}text", "$ aws s3 ls", "bucket", FENCE))
    assert "shell session" in problems[0].message
    _, problems = parse(_doc("<!-- not-run: output -->", f"{FENCE}text", "$ x", FENCE))
    assert problems == []
    _, problems = parse(_doc("<!-- not-run: a session -->", FENCE, "$ x", FENCE))
    assert problems == []


def test_a_marker_must_say_why_and_sit_just_before_its_block() -> None:
    _, problems = parse(_doc("<!-- not-run: -->", f"{FENCE}sh", "x", FENCE))
    assert "needs a reason" in problems[0].message
    _, problems = parse(_doc("<!-- not-run: why -->", "Some prose.", f"{FENCE}sh", "x", FENCE))
    assert "just before" in problems[0].message
    _, problems = parse(_doc("<!-- not-run: why -->", "## Next", "prose"))
    assert "no block after it" in problems[0].message


def test_an_unclosed_block_is_refused_and_a_file_block_is_named() -> None:
    _, problems = parse(_doc(f"{FENCE}python", "x = 1"))
    assert "never closed" in problems[0].message
    blocks, _ = parse(_doc(f"{FENCE}python", "# test_service.py", "def test(): pass", FENCE))
    assert blocks[0].file_name == "test_service.py"
    blocks, _ = parse(_doc(f"{FENCE}python", "# a comment", FENCE))
    assert blocks[0].file_name is None


def test_a_marker_quoted_in_prose_is_just_text() -> None:
    blocks, problems = parse(
        _doc("Mark it with `<!-- not-run: why -->` first.", f"{FENCE}sh", "ls", FENCE)
    )
    assert problems == []
    assert blocks[0].runs


def test_two_sections_of_the_same_title_stay_apart() -> None:
    blocks, _ = parse(
        _doc(
            "## Configuration", f"{FENCE}sh", "a", FENCE,
            "## Configuration", f"{FENCE}sh", "b", FENCE,
        )
    )  # fmt: skip
    assert [len(group) for group in runnable_sections(blocks).values()] == [1, 1]


# -- the runner: a section's blocks share what a reader's shell and prompt would ---------------

_RUNNER = Path(__file__).resolve().parent / "readme_runner.py"


def _run_section(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    blocks, problems = parse(text)
    assert problems == []
    payload = {
        "blocks": [
            {"line": b.line, "kind": b.kind, "code": b.code, "file": b.file_name}
            for b in blocks
            if b.runs
        ]
    }
    return subprocess.run(
        [sys.executable, str(_RUNNER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_blocks_share_names_a_loop_exports_and_files(tmp_path: Path) -> None:
    result = _run_section(
        tmp_path,
        _doc(
            f"{FENCE}python", "import asyncio",
            "async def later(): return asyncio.get_running_loop()", "first = await later()", FENCE,
            f"{FENCE}python", "assert await later() is first  # one loop for the section", FENCE,
            f"{FENCE}python", "# helper.py", "VALUE = 42", FENCE,
            f"{FENCE}sh", "export GREETING=hello", "echo written > note.txt", FENCE,
            f"{FENCE}sh", 'test "$GREETING" = hello', "grep -q written note.txt", FENCE,
            f"{FENCE}python", "import helper", "assert helper.VALUE == 42", FENCE,
        ),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_block_is_named_by_its_readme_line(tmp_path: Path) -> None:
    text = _doc("# T", "", f"{FENCE}python", "x = 1", "raise ValueError('boom')", FENCE)
    failed = _run_section(tmp_path, text)
    assert failed.returncode == 1
    assert 'File "README.md", line 5' in failed.stderr  # the README's own line number
    assert "README.md line 3: the Python block failed" in failed.stderr
    shell = _run_section(tmp_path, _doc(f"{FENCE}sh", "true", "exit 3", FENCE))
    assert shell.returncode == 1
    assert "README.md line 1: the shell block exited 3" in shell.stderr
    piped = _run_section(tmp_path, _doc(f"{FENCE}sh", "false | true", FENCE))
    assert piped.returncode == 1  # pipefail: a failure inside a pipe is not hidden
