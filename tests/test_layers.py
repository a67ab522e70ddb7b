"""The import contract (``scripts/check_layers.py``, also run by ``make lint``).

The real tree must pass; synthetic trees, one deliberate violation each, must fail with the
file and line named, so the checker is known to catch what it claims to.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import sagemaker_async

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_layers.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


check_layers = _load()


def test_the_source_tree_keeps_the_contract() -> None:
    root = Path(sagemaker_async.__file__).parent
    assert [str(v) for v in check_layers.check(root)] == []


def test_every_pure_module_exists() -> None:
    """A renamed module must not silently leave the pure set (and its checks) behind."""
    root = Path(sagemaker_async.__file__).parent
    for name in check_layers.PURE:
        path = root.joinpath(*name.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name


def make_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``sagemaker_async`` with a little of each layer, plus ``files``."""
    base = {
        "__init__.py": '__all__ = ["Client", "__version__"]\n'
        "from ._client import Client\n__version__ = '0'\n",
        "_client.py": "import asyncio\nfrom ._params import check\nclass Client: ...\n",
        "_params.py": "import re\ndef check() -> None: ...\n",
        "_protocol.py": "import json\nfrom ._params import check\n",
        "errors.py": '__all__ = ["Error"]\nclass Error(Exception): ...\n_hidden = 1\n',
        "cli/__init__.py": "from .. import Client\nfrom ..errors import Error\n",
        "cli/_main.py": "from ._other import x\nfrom ..local import serve\n",
        "cli/_other.py": "x = 1\n",
        "local/__init__.py": '__all__ = ["serve"]\nfrom ._serve import serve\n',
        "local/_serve.py": "from .. import Client, __version__\ndef serve() -> None: ...\n",
    }
    base.update(files)
    root = tmp_path / "sagemaker_async"
    for name, text in base.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_synthetic_base_tree_is_clean(tmp_path: Path) -> None:
    assert check_layers.check(make_tree(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("files", "where", "words"),
    [
        ({"cli/_x.py": "from .._client import Client\n"}, "cli/_x.py:1", "private module"),
        ({"cli/_x.py": "from ..errors import _hidden\n"}, "cli/_x.py:1", "private name"),
        (
            {"local/_x.py": "from sagemaker_async.errors import Exception\n"},
            "local/_x.py:1",
            "not in its __all__",
        ),
        ({"cli/_x.py": "import sagemaker_async._params\n"}, "cli/_x.py:1", "private module"),
        ({"cli/_x.py": "from ..local import _serve\n"}, "cli/_x.py:1", "private module"),
        (
            {"_results.py": "x = 1\n\n\nfrom .cli import main\n"},
            "_results.py:4",
            "the core (sagemaker_async._results) imports the front end",
        ),
        (
            {"_objects.py": "def f():\n    from .local._serve import serve\n"},
            "_objects.py:2",
            "imports the front end",
        ),
        ({"_protocol.py": "import socket\n"}, "_protocol.py:1", "I/O module socket"),
        ({"_params.py": "from asyncio import sleep\n"}, "_params.py:1", "I/O module asyncio"),
        (
            {"_http11/__init__.py": "", "_http11/codec.py": "import re\nimport socket\n"},
            "_http11/codec.py:2",
            "I/O module socket",
        ),
        (
            {"_protocol.py": "from ._client import Client\n"},
            "_protocol.py:1",
            "which is not pure",
        ),
    ],
    ids=[
        "cli-private-module",
        "cli-private-name",
        "local-name-not-exported",
        "cli-absolute-private",
        "front-end-to-front-end-private",
        "core-imports-cli",
        "core-imports-local-lazily",
        "pure-imports-socket",
        "pure-imports-asyncio",
        "pure-submodule-imports-socket",
        "pure-imports-io-module",
    ],
)
def test_each_kind_of_violation_is_caught(
    tmp_path: Path, files: dict[str, str], where: str, words: str
) -> None:
    root = make_tree(tmp_path, files)
    found = [str(v) for v in check_layers.check(root)]
    assert len(found) == 1, found
    file, _, line = where.partition(":")
    assert found[0].startswith(f"{root / file}:{line}: ")
    assert words in found[0]


def test_the_command_fails_on_a_violation_and_names_it(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"cli/_x.py": "from .._client import Client\n"})
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "cli/_x.py:1: sagemaker_async.cli._x imports the private module" in result.stderr
    clean = subprocess.run(
        [sys.executable, str(SCRIPT), str(make_tree(tmp_path / "ok", {}))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (clean.returncode, clean.stderr) == (0, "")
