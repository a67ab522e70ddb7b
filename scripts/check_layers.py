"""The import contract of sagemaker_async, checked from the source with ``ast`` (no imports run).

The folders are the layers: ``_protocol/`` is the pure layer, ``_io/`` the I/O layer on top
of it, ``_client.py`` the facade on top of both, ``cli/``, ``local/`` and ``pytest_plugin``
the front ends. Five rules, so the layers stay what the README says they are:

1. The core never imports the front ends (``cli/``, ``local/``, ``pytest_plugin``;
   ``__main__`` belongs to the command line).
2. A front end imports only public names of the core or of another front end: no module
   whose dotted path has a segment starting with ``_``, no name starting with ``_``, and,
   where the module lists ``__all__``, only names in it (or public submodules).
3. The pure layer (``PURE``: the ``_protocol`` package, the HTTP/1.1 codec, errors, models,
   options, signing) imports nothing from the project outside ``PURE``, and none of the I/O
   modules of the standard library (``IO_STDLIB``). httpx is allowed there for its value
   types (``httpx.Request``, ``httpx.URL``, its exception classes); sending is the sender's
   job. The pure package (``PURE_PACKAGE``) imports nothing from the I/O package
   (``IO_PACKAGE``) at all, not even the pure codec kept inside it with its transport.
4. The I/O package never climbs back up to the facade (``_client``) or the package's
   ``__init__``: it is handed what it needs.
5. Every module of the core is in a layer's package or is one of the few modules kept at
   the top (``TOP``: the facade, the public modules, the value types): a new flat
   ``_thing.py`` has to say which layer it belongs to.

Run ``python scripts/check_layers.py [src/sagemaker_async]``: it prints each violation with
its file and line and exits 1, or exits 0 in silence. ``make lint`` runs it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FACADE",
    "FRONT_ENDS",
    "IO_PACKAGE",
    "IO_STDLIB",
    "PURE",
    "PURE_PACKAGE",
    "TOP",
    "Violation",
    "check",
]

# pytest_plugin: the fixtures over the local endpoint, loaded by pytest, never by the core.
FRONT_ENDS = frozenset({"cli", "local", "pytest_plugin"})
# The layers' packages, and the facade above them (dotted names under the package).
PURE_PACKAGE = "_protocol"
IO_PACKAGE = "_io"
FACADE = "_client"
# The sans-I/O modules of the core (dotted names under the package; a package name
# covers all of it): the pure package, the pure codec the transport package keeps beside
# its sockets, and the public value modules at the top.
PURE = frozenset(
    {
        PURE_PACKAGE,
        f"{IO_PACKAGE}.http11.codec",
        "_models",
        "_version",
        "errors",
        "options",
        "signing",
    }
)
# The modules of the core outside the layers' packages.
TOP = frozenset({"__main__", FACADE, "_models", "_version", "errors", "options", "signing"})
IO_STDLIB = frozenset(
    {
        "asyncio",
        "concurrent",
        "http.client",
        "multiprocessing",
        "selectors",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "urllib.request",
        "botocore",
        "aiohttp",
    }
)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class _Module:
    name: str  # dotted, from the package: "sagemaker_async.cli._batch"
    path: Path
    is_package: bool


def _modules(root: Path) -> dict[str, _Module]:
    package = root.name
    found: dict[str, _Module] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join([package, *parts])
        found[name] = _Module(name, path, is_package)
    return found


def _all_of(module: _Module) -> frozenset[str] | None:
    """The literal ``__all__`` of a module, or None when it has none."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                return frozenset(ast.literal_eval(node.value))
            except ValueError:
                return None
    return None


def _imports(module: _Module) -> Iterator[tuple[int, str, str | None]]:
    """(line, absolute module, imported name or None) of every import of ``module``."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"))
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, target, alias.name


def _component(name: str, package: str) -> str | None:
    """ "core", a front end's name, or None outside the package."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    if len(parts) > 1 and parts[1] in FRONT_ENDS:
        return parts[1]
    if parts[1:] == ["__main__"]:  # ``python -m sagemaker_async``: the command line
        return "cli"
    return "core"


def _private(dotted: str, package: str) -> bool:
    parts = dotted.split(".")[1:] if dotted.split(".")[0] == package else dotted.split(".")
    return any(part.startswith("_") and part not in ("__init__",) for part in parts)


def _under(name: str, package: str) -> bool:
    """Whether a dotted module name (``sagemaker_async._io.sender``) is in the sub-package
    ``package`` (``_io``) of the project."""
    parts = name.split(".")[1:]
    return ".".join(parts[: package.count(".") + 1]) == package


def _in_pure(name: str) -> bool:
    """Whether a dotted module name (``sagemaker_async._io.http11.codec``) is in ``PURE``."""
    parts = name.split(".")[1:]
    return any(".".join(parts[:n]) in PURE for n in range(1, len(parts) + 1))


def check(root: Path) -> list[Violation]:
    """Every violation of the contract in the package at ``root`` (``src/sagemaker_async``)."""
    package = root.name
    modules = _modules(root)
    exported = {name: _all_of(module) for name, module in modules.items()}
    violations: list[Violation] = []
    for module in modules.values():
        own = _component(module.name, package)
        pure = own == "core" and _in_pure(module.name)
        in_pure_package = own == "core" and _under(module.name, PURE_PACKAGE)
        in_io_package = own == "core" and _under(module.name, IO_PACKAGE)
        top = module.name.split(".")[1:]
        if (
            own == "core"
            and len(top) == 1
            and top[0] not in TOP
            and not (module.is_package and top[0] in (PURE_PACKAGE, IO_PACKAGE))
        ):
            violations.append(
                Violation(
                    module.path,
                    1,
                    f"{module.name} is outside the layers: move it into "
                    f"{PURE_PACKAGE}/ or {IO_PACKAGE}/, or list it in TOP",
                )
            )
        for line, target, name in _imports(module):
            full = f"{target}.{name}" if name and f"{target}.{name}" in modules else target
            theirs = _component(full, package)

            def fail(message: str, path: Path = module.path, line: int = line) -> None:
                violations.append(Violation(path, line, message))

            if theirs is None:
                if pure and (full in IO_STDLIB or full.split(".")[0] in IO_STDLIB):
                    fail(f"pure module {module.name} imports the I/O module {full}")
                continue
            if own == "core" and theirs in FRONT_ENDS:
                fail(f"the core ({module.name}) imports the front end {full}")
                continue
            if in_pure_package and _under(full, IO_PACKAGE):
                fail(f"pure module {module.name} imports {full} from the I/O package")
            elif pure and theirs == "core" and "." in full and not _in_pure(full):
                fail(f"pure module {module.name} imports {full}, which is not pure")
            if in_io_package and theirs == "core" and (full == package or _under(full, FACADE)):
                fail(f"I/O module {module.name} climbs back up to {full}")
            if own == theirs:
                continue
            # Crossing into another component: public names only.
            if _private(full, package):
                fail(f"{module.name} imports the private module {full}")
            elif name is not None and full == target:
                listed = exported.get(target)
                if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                    fail(f"{module.name} imports the private name {target}.{name}")
                elif listed is not None and name not in listed and name != "*":
                    fail(f"{module.name} imports {target}.{name}, which is not in its __all__")
    return violations


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(args[0]) if args else Path(__file__).parent.parent / "src" / "sagemaker_async"
    violations = check(root)
    for violation in violations:
        print(violation, file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
