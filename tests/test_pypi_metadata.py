"""What PyPI shows and ships: metadata, the short description page, the license, the changelog.

``make dist`` builds the distributions and runs ``twine check`` (CI does); these tests keep
the sources of that metadata honest without building anything.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from readme_blocks import parse

ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|<(https?://[^>\s]+)>")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+; CI's main run reads the metadata")
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)["project"]
    return data


def test_a_classifier_for_every_python_version_claimed(project: dict[str, Any]) -> None:
    oldest = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert oldest is not None
    claimed = {
        int(match.group(1))
        for classifier in project["classifiers"]
        if (match := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", classifier))
    }
    assert min(claimed) == int(oldest.group(1))
    assert claimed == set(range(min(claimed), max(claimed) + 1))
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639


def test_project_urls_and_license(project: dict[str, Any]) -> None:
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_plugin_entry_point_is_declared(project: dict[str, Any]) -> None:
    assert project["entry-points"]["pytest11"] == {
        "sagemaker_async": "sagemaker_async.pytest_plugin"
    }


def test_the_pypi_page_is_short_absolute_and_installs_first(project: dict[str, Any]) -> None:
    assert project["readme"] == "README.pypi.md"
    text = (ROOT / "README.pypi.md").read_text(encoding="utf-8")
    links = [a or b for a, b in _LINK.findall(text)]
    assert links
    assert all(link.startswith("https://") for link in links), links
    assert "make " not in text
    blocks, problems = parse(text)
    assert problems == []
    assert blocks[0].code.startswith("pip install sagemaker-async")
    # Its Python examples are the README's, which CI runs.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in blocks:
        if block.kind == "python":
            assert block.code in readme


def test_the_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    from sagemaker_async import __version__

    assert __version__ in released
