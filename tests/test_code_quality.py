"""Two habits of the code, checked on the syntax tree (not by grepping text).

Every public name a reader meets has a one-line docstring: module-level functions and classes
whose name has no leading underscore, and the public methods of those classes. No function (public
or private, nested or not) is longer than 80 lines. Both hold over every package and the scripts a
user runs; ``bench/`` and ``tests/`` are out of scope.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The packages and scripts covered (folders are walked for ``*.py``).
SOURCES = ("msm", "msm_portfolios", "msm_cli", "msm_app", "msm_spark", "examples", "app.py")
MAX_FUNCTION_LINES = 80

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def source_files() -> list[Path]:
    """Every Python file of :data:`SOURCES`, in a stable order."""
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _public(name: str) -> bool:
    return not name.startswith("_")


def public_definitions(tree: ast.Module) -> list[tuple[str, Definition]]:
    """``(qualified name, node)`` of public module-level functions and classes and of public classes' methods."""
    found: list[tuple[str, Definition]] = []
    for node in tree.body:
        if not isinstance(node, Definition) or not _public(node.name):
            continue
        found.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and _public(member.name):
                    found.append((f"{node.name}.{member.name}", member))
    return found


def missing_docstrings(path: Path) -> list[str]:
    """``file:line name`` of every public definition in ``path`` without a docstring."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT)
    return [f"{where}:{node.lineno} {name}" for name, node in public_definitions(tree) if not ast.get_docstring(node)]


def long_functions(path: Path) -> list[str]:
    """``file:line name (N lines)`` of every function in ``path`` longer than :data:`MAX_FUNCTION_LINES`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_every_public_definition_has_a_docstring() -> None:
    missing = [entry for path in source_files() for entry in missing_docstrings(path)]
    assert not missing, "public definitions without a docstring:\n" + "\n".join(missing)


def test_no_function_is_longer_than_80_lines() -> None:
    long = [entry for path in source_files() for entry in long_functions(path)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n" + "\n".join(long)


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("def f():\n    pass\n", ["f"]),
        ('def f():\n    """Does f."""\n', []),
        ("def _f():\n    pass\n", []),
        ('class C:\n    """A C."""\n    def m(self):\n        pass\n    def _p(self):\n        pass\n', ["C.m"]),
        ("class _C:\n    def m(self):\n        pass\n", []),
        ('def f():\n    """Does f."""\n    def inner():\n        pass\n', []),
    ],
)
def test_the_docstring_check_sees_what_it_should(source: str, missing: list[str]) -> None:
    tree = ast.parse(source)
    assert [name for name, node in public_definitions(tree) if not ast.get_docstring(node)] == missing


def test_the_sources_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in source_files()}
    assert {"msm/catalog.py", "msm_cli/main.py", "msm_app/links.py", "msm_spark/job.py", "app.py"} <= names
