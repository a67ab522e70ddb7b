"""The fixture folders both wire tests read (fixtures/invoke/, fixtures/sqs/), and the
regen scripts that write them: one reader, so the two suites cannot read them differently.

Each scenario folder holds ``scenario.json`` (the call), ``request.json`` (what botocore
sent) and ``response.json`` (the canned answer); bodies are ``{"text": ...}`` or
``{"base64": ...}``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Headers that differ from botocore's by design: only their shape is checked.
BY_DESIGN = {"user-agent", "amz-sdk-invocation-id"}


def load_script(name: str) -> Any:
    """``scripts/<name>.py`` as a module, loaded once (the regen scripts import each other)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scenario_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_dir())


def read(folder: Path, name: str, filename: str) -> Any:
    return json.loads((folder / name / filename).read_text(encoding="utf-8"))


def body_bytes(body: dict[str, str]) -> bytes:
    if "base64" in body:
        return base64.b64decode(body["base64"])
    return body["text"].encode("utf-8")


def canned_response(folder: Path, name: str) -> httpx.Response:
    response = read(folder, name, "response.json")
    return httpx.Response(
        response["status"],
        headers=[tuple(pair) for pair in response["headers"]],
        content=body_bytes(response["body"]),
    )
