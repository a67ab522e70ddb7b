"""The README's code blocks, and the rules that say which run (holds no tests itself).

The rules, also stated in the README's "Development" section:

- Every fenced block has a language (or a not-run marker). ``python`` and ``sh`` (or
  ``bash``) blocks run; any other (``text`` for output and file contents, ``json``,
  ``toml``, ...) never does. A block without a language is an error, and so is a ``text``
  block holding a shell session (lines starting with ``$ ``): write it as ``sh``, or
  mark it.
- A block that must not run (it installs, runs until Ctrl-C, needs AWS, ...) is preceded
  by the line ``<!-- not-run: <reason> -->``, with a reason.
- A section is the text under one heading, of any level. Its blocks run in order, in one
  fresh folder, the way a reader pastes them: Python blocks share their names (one
  interpreter; top-level ``await`` works, on one event loop per section, as in
  ``python -m asyncio``), shell blocks share their exported variables and the folder.
- A Python block whose first line is a file name comment (``# test_service.py``) is saved
  as that file in the folder instead of run, as a reader would save it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NOT_RUN", "Block", "Problem", "parse", "runnable_sections"]

# The marker is a line of its own; quoted in prose (as the README's rules quote it) it is
# just text.
NOT_RUN = re.compile(r"\s*<!--\s*not-run:(.*?)-->\s*")
RUNNABLE = {"python": "python", "sh": "sh", "bash": "sh"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_HEADING = re.compile(r"^#{1,6} +(?P<title>.+?) *#*$")
FILE_BLOCK = re.compile(r"#\s*(?P<name>[\w.-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    section: str
    section_line: int  # of its heading (0 before the first): two "Configuration"s differ
    language: str
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def runs(self) -> bool:
        return self.not_run is None and self.language in RUNNABLE

    @property
    def kind(self) -> str:
        return RUNNABLE.get(self.language, "")

    @property
    def file_name(self) -> str | None:
        """The file a Python block is saved as, if it names one on its first line."""
        if self.kind != "python":
            return None
        first = self.code.split("\n", 1)[0]
        match = FILE_BLOCK.fullmatch(first)
        return match["name"] if match else None


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.message}"


def parse(text: str) -> tuple[list[Block], list[Problem]]:
    """Every fenced block with its section and marker, and every breach of the rules."""
    blocks: list[Block] = []
    problems: list[Problem] = []
    lines = text.split("\n")
    section, section_line = "(top)", 0
    marker: tuple[int, str] | None = None  # (line, reason) of a pending not-run marker
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        heading = _HEADING.match(line)
        fence = _FENCE.match(line)
        found = NOT_RUN.fullmatch(line)
        if found is not None:
            if marker is not None:
                problems.append(Problem(marker[0], "a not-run marker with no block after it"))
            reason = found.group(1).strip()
            if not reason:
                problems.append(Problem(number, "a not-run marker needs a reason"))
            marker = (number, reason)
        elif fence is not None:
            closing = fence["fence"]
            language = fence["info"].strip().split(" ")[0].lower()
            body: list[str] = []
            index += 1
            while index < len(lines) and not (
                lines[index].strip().startswith(closing)
                and lines[index].strip().strip(closing[0]) == ""
            ):
                body.append(lines[index][len(fence["indent"]) :])
                index += 1
            if index == len(lines):
                problems.append(Problem(number, "a code block is never closed"))
            code = "\n".join(body) + "\n"
            not_run = marker[1] if marker is not None else None
            marker = None
            block = Block(number, section, section_line, language, code, not_run)
            blocks.append(block)
            problems.extend(_check(block))
        elif heading is not None:
            section, section_line = heading["title"], number
            if marker is not None:
                problems.append(Problem(marker[0], "a not-run marker with no block after it"))
                marker = None
        elif line.strip() and marker is not None:
            problems.append(
                Problem(marker[0], "a not-run marker must be the line just before its block")
            )
            marker = None
        index += 1
    if marker is not None:
        problems.append(Problem(marker[0], "a not-run marker with no block after it"))
    return blocks, problems


def _check(block: Block) -> list[Problem]:
    if block.not_run is not None:  # said not to run, and why: whatever it holds
        return []
    if not block.language:
        return [
            Problem(
                block.line,
                "a code block without a language: `python` or `sh` run (or mark it "
                "`<!-- not-run: reason -->`), `text` is for output and file contents",
            )
        ]
    if block.language == "text" and any(line.startswith("$ ") for line in block.code.splitlines()):
        return [
            Problem(
                block.line,
                "a `text` block holding a shell session (`$ ...`): write the commands as an "
                "`sh` block, the output as `text`, or mark it `<!-- not-run: reason -->`",
            )
        ]
    return []


def runnable_sections(blocks: list[Block]) -> dict[tuple[int, str], list[Block]]:
    """(heading line, title) to the section's blocks that run, in README order."""
    sections: dict[tuple[int, str], list[Block]] = {}
    for block in blocks:
        if block.runs:
            sections.setdefault((block.section_line, block.section), []).append(block)
    return sections


def read(path: Path) -> tuple[list[Block], list[Problem]]:
    return parse(path.read_text(encoding="utf-8"))
