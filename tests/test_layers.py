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


def test_every_named_module_exists() -> None:
    """A renamed module must not silently leave the pure set (and its checks) behind."""
    root = Path(sagemaker_async.__file__).parent
    layers = {check_layers.PURE_PACKAGE, check_layers.IO_PACKAGE}
    for name in check_layers.PURE | check_layers.TOP | layers | {check_layers.FACADE}:
        path = root.joinpath(*name.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name


def _readme_tree() -> set[str]:
    """The paths the README's layout block names, rebuilt from its two-space indentation."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```text\nsrc/sagemaker_async/\n", 1)[1].split("```", 1)[0]
    paths: set[str] = set()
    folders: list[str] = []
    for line in block.splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2 - 1
        name = line.split()[0]
        del folders[depth:]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
            paths.add("/".join(folders))
        else:
            paths.add("/".join([*folders, name]))
    return paths


def test_the_readme_layout_is_the_tree() -> None:
    """Every module and folder of the core, and the front ends' folders, as the README has
    them (the front ends' own files are theirs to describe)."""
    root = Path(sagemaker_async.__file__).parent
    listed = {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if (path.suffix == ".py" or path.is_dir())
        and "__pycache__" not in path.parts
        and Path(path.relative_to(root).parts[0]).stem not in check_layers.FRONT_ENDS
    }
    for name in check_layers.FRONT_ENDS:  # a folder, or a module at the top
        listed.add(name if (root / name).is_dir() else f"{name}.py")
    assert _readme_tree() == listed


def make_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``sagemaker_async`` with a little of each layer, plus ``files``."""
    base = {
        "__init__.py": '__all__ = ["Client", "__version__"]\n'
        "from ._client import Client\n__version__ = '0'\n",
        "_client.py": "import asyncio\nfrom ._io.sender import Sender\n"
        "from ._protocol.params import check\nclass Client: ...\n",
        "_protocol/__init__.py": "",
        "_protocol/params.py": "import re\ndef check() -> None: ...\n",
        "_protocol/invoke.py": "import json\nfrom .params import check\n"
        "from ..errors import Error\n",
        "_io/__init__.py": "",
        "_io/sender.py": "import asyncio\nfrom ..errors import Error\n"
        "from .._protocol.invoke import check\nfrom .http11.codec import parse\n"
        "class Sender: ...\n",
        "_io/http11/__init__.py": "from .codec import parse\n",
        "_io/http11/codec.py": "import re\ndef parse() -> None: ...\n",
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
        (
            {"cli/_x.py": "import sagemaker_async._protocol.params\n"},
            "cli/_x.py:1",
            "private module",
        ),
        ({"cli/_x.py": "from ..local import _serve\n"}, "cli/_x.py:1", "private module"),
        (
            {"_io/results.py": "x = 1\n\n\nfrom ..cli import main\n"},
            "_io/results.py:4",
            "the core (sagemaker_async._io.results) imports the front end",
        ),
        (
            {"_io/s3_objects.py": "def f():\n    from ..local._serve import serve\n"},
            "_io/s3_objects.py:2",
            "imports the front end",
        ),
        ({"_protocol/invoke.py": "import socket\n"}, "_protocol/invoke.py:1", "I/O module socket"),
        (
            {"_protocol/params.py": "from asyncio import sleep\n"},
            "_protocol/params.py:1",
            "I/O module asyncio",
        ),
        (
            {"_io/http11/codec.py": "import re\nimport socket\n"},
            "_io/http11/codec.py:2",
            "I/O module socket",
        ),
        (
            {"_protocol/invoke.py": "from .._client import Client\n"},
            "_protocol/invoke.py:1",
            "which is not pure",
        ),
        (
            {"_protocol/invoke.py": "from .._io.sender import Sender\n"},
            "_protocol/invoke.py:1",
            "from the I/O package",
        ),
        (
            # Pure itself, but kept with its transport: the pure package still may not reach it.
            {"_protocol/invoke.py": "import sagemaker_async._io.http11.codec\n"},
            "_protocol/invoke.py:1",
            "from the I/O package",
        ),
        (
            {"_io/sender.py": "import asyncio\n\nfrom .._client import Client\n"},
            "_io/sender.py:3",
            "climbs back up to sagemaker_async._client",
        ),
        (
            {"_io/sender.py": "def f():\n    from .. import Client\n"},
            "_io/sender.py:2",
            "climbs back up to sagemaker_async",
        ),
        (
            {"_results.py": "import asyncio\n"},
            "_results.py:1",
            "outside the layers",
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
        "pure-package-imports-io-package",
        "pure-package-imports-pure-codec-in-io-package",
        "io-imports-facade",
        "io-imports-package-root-lazily",
        "flat-module-outside-the-layers",
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
