"""The version has one source (``_version.py``, which hatchling reads): the installed
metadata, the package, the CLI and the User-Agent all say the same."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

import sagemaker_async
from helpers import ENDPOINT, INPUT, INVOKE_URL, accepted, make_client, new_router
from sagemaker_async._version import __version__

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None


def test_the_installed_metadata_is_the_source_version() -> None:
    assert importlib.metadata.version("sagemaker-async") == __version__
    assert sagemaker_async.__version__ == __version__


def test_the_version_is_read_from_one_file() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if tomllib is not None:
        project = tomllib.loads(text)
        assert "version" not in project["project"]
        assert "version" in project["project"]["dynamic"]
        assert project["tool"]["hatch"]["version"]["path"] == "src/sagemaker_async/_version.py"
    source = (ROOT / "src" / "sagemaker_async" / "_version.py").read_text(encoding="utf-8")
    assert re.fullmatch(r'__version__ = "\d+\.\d+\.\d+(?:\.?(?:a|b|rc|dev)\d+)?"\n', source)


async def test_the_user_agent_carries_the_version() -> None:
    router = new_router()
    route = router.post(INVOKE_URL).mock(return_value=accepted())
    client, _ = make_client(router)
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT)
    agent = route.calls.last.request.headers["user-agent"]
    assert agent.startswith(f"sagemaker-async/{__version__} ")


def test_the_command_line_reports_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sagemaker_async.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sagemaker-async {__version__}\n"
