"""The house keeps its shape (issue 17, docs/architecture.md): imports cross package lines only
through the packages' public faces, and the layers that speak the domain never reach the store."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import loop_server

ROOT = Path(loop_server.__file__).parent
#: Packages that speak the domain model (``loop_server.domain``) and never persist anything.
NO_STORE = ("api", "events", "protocols", "commands", "terminal")


def _imports() -> Iterator[tuple[str, int, str]]:
    """``(file relative to loop_server/, line, imported module)`` for every import."""
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield relative, node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield relative, node.lineno, node.module
                for alias in node.names:  # ``from loop_server.pkg import _module``
                    yield relative, node.lineno, f"{node.module}.{alias.name}"


def _home(relative: str) -> str:
    """The package (or top-level module) a file belongs to: ``api`` for ``api/_gateway.py``."""
    return relative.split("/", 1)[0].removesuffix(".py")


def test_the_scan_sees_the_code() -> None:
    seen = {module for _, _, module in _imports()}
    assert "loop_server.serving" in seen and "loop_server.store" in seen


def test_no_package_imports_another_packages_private_modules() -> None:
    wrong = []
    for relative, line, module in _imports():
        parts = module.split(".")
        if parts[0] != "loop_server" or len(parts) < 3:
            continue
        package = parts[1]
        private = any(part.startswith("_") and part != "__init__" for part in parts[2:])
        if private and _home(relative) != package:
            wrong.append(f"loop_server/{relative}:{line} imports {module}")
    assert wrong == []


def test_the_domain_layers_never_import_the_store() -> None:
    wrong = [
        f"loop_server/{relative}:{line} imports {module}"
        for relative, line, module in _imports()
        if _home(relative) in NO_STORE
        and (module == "loop_server.store" or module.startswith("loop_server.store."))
    ]
    assert wrong == []
