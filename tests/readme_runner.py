"""Runs one README section's blocks as a reader would: ``python readme_runner.py < blocks.json``.

The input is ``{"blocks": [{"line": N, "kind": "python"|"sh", "code": ..., "file": ...}]}``;
the working directory is the section's folder and the environment its shell's. Python
blocks share one namespace (top-level ``await`` runs on one loop for the section); shell
blocks run in bash one after the other, each starting with the variables the previous one
exported. The first block that fails ends the run: exit 1, naming its README line.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

_STATE = ".readme-shell-state"


def _run_python(code: str, line: int, namespace: dict[str, Any], loops: list[Any]) -> None:
    # Line numbers in a traceback are the README's.
    source = "\n" * (line) + code
    compiled = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:
        if not loops:
            loops.append(asyncio.new_event_loop())
        loops[0].run_until_complete(eval(compiled, namespace))
    else:
        exec(compiled, namespace)


def _run_shell(code: str) -> int:
    state = Path(_STATE).resolve()
    prelude = (
        "set -eo pipefail\n"
        f'if [ -f "{state}" ]; then source "{state}"; fi\n'
        f"trap 'export -p > \"{state}\"' EXIT\n"
    )
    return subprocess.run(["bash", "-c", prelude + code], check=False).returncode


def main() -> int:
    blocks = json.load(sys.stdin)["blocks"]
    # As at a Python prompt: modules in the working folder import, not this script's own.
    sys.path[0] = ""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    loops: list[Any] = []
    try:
        for block in blocks:
            where = f"README.md line {block['line']}"
            print(f"--- {where} ({block['kind']})", flush=True)
            if block.get("file"):
                Path(block["file"]).write_text(block["code"], encoding="utf-8")
                continue
            if block["kind"] == "python":
                try:
                    _run_python(block["code"], block["line"], namespace, loops)
                except BaseException:
                    traceback.print_exc()
                    print(f"--- {where}: the Python block failed", file=sys.stderr)
                    return 1
                finally:
                    sys.stdout.flush()
            else:
                status = _run_shell(block["code"])
                if status != 0:
                    print(f"--- {where}: the shell block exited {status}", file=sys.stderr)
                    return 1
    finally:
        for loop in loops:
            loop.close()
        if os.path.exists(_STATE):
            os.remove(_STATE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
