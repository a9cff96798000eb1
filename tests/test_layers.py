"""One-way layers, checked on the import graph (not by grepping text).

Core ``msm`` never imports ``msm_portfolios``, ``msm_cli``, ``msm_spark``, streamlit or pyspark;
``msm_portfolios`` never imports ``msm_cli``, ``msm_spark``, streamlit or pyspark; ``msm_spark`` (a
surface) never imports the other surfaces. Every module of a package is parsed with ``ast``; every import
(``import X``, ``from X import Y``, relative imports resolved against the module's package, and
``importlib.import_module("X")`` / ``__import__("X")`` with a literal name) is collected.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "msm": ("msm_portfolios", "msm_cli", "msm_app", "msm_spark", "streamlit", "pyspark", "py4j"),
    "msm_portfolios": ("msm_cli", "msm_app", "msm_spark", "streamlit", "pyspark", "py4j"),
    "msm_spark": ("msm_cli", "msm_app", "streamlit"),
}


def package_modules(package: str) -> dict[str, Path]:
    """Every module of ``package`` (dotted name -> file), found on disk from the package's own location."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return {}
    modules: dict[str, Path] = {}
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a relative import names (PEP 328)."""
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        raise ImportError(f"relative import beyond the top package in {module}")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name ``source`` imports (``from X import Y`` yields X and X.Y: Y may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module) if node.level else node.module
            assert base is not None
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return found


def _is_under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def import_graph(package: str) -> dict[str, set[str]]:
    return {
        module: imported_names(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py")
        for module, path in package_modules(package).items()
    }


# -- the checker itself ------------------------------------------------------------------------------------
def test_the_import_collector_resolves_every_form() -> None:
    source = """
import os, msm_cli.main as cli
from msm.store import Store
from . import errors
from .services import snapshots as s
from ..store.connection import fetch
from .. import timeutil
import importlib
importlib.import_module("streamlit")
__import__("msm_portfolios.compositions")
def f():
    from msm_portfolios import weights  # a late import still counts
"""
    found = imported_names(source, "msm.services.candidates")
    assert {
        "os",
        "msm_cli.main",
        "msm.store",
        "msm.store.Store",
        "msm.services",
        "msm.services.errors",
        "msm.services.services",
        "msm.services.services.snapshots",
        "msm.store.connection",
        "msm.store.connection.fetch",
        "msm",
        "msm.timeutil",
        "importlib",
        "streamlit",
        "msm_portfolios.compositions",
        "msm_portfolios",
        "msm_portfolios.weights",
    } <= found
    # in a package's __init__, "." is the package itself
    assert "msm.store.connection" in imported_names("from .connection import Store", "msm.store", is_package=True)
    assert "msm.store.connection" in imported_names("from .connection import Store", "msm.store.migrations")


def test_the_collector_finds_the_real_imports_of_msm() -> None:
    graph = import_graph("msm")
    assert "msm" in graph and "msm.services.snapshots" in graph and "msm.store.connection" in graph
    assert {"msm.errors", "msm.validation", "msm.store.connection"} <= graph["msm.services.snapshots"]
    assert "duckdb" in graph["msm.store.connection"]


@pytest.mark.parametrize(
    "name, roots, under",
    [
        ("streamlit", ("streamlit",), True),
        ("streamlit.components.v1", ("streamlit",), True),
        ("streamlit_aggrid", ("streamlit",), False),
        ("msm_cli", ("msm_cli",), True),
        ("msm", ("msm_cli",), False),
    ],
)
def test_prefix_rule(name: str, roots: tuple[str, ...], under: bool) -> None:
    assert _is_under(name, roots) is under


# -- the layers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_no_module_imports_an_upper_layer(package: str) -> None:
    graph = import_graph(package)
    if not graph:  # msm_portfolios may not exist yet; msm must
        assert package != "msm", "package msm not found"
        return
    offending = {
        module: sorted(name for name in names if _is_under(name, FORBIDDEN[package])) for module, names in graph.items()
    }
    offending = {m: names for m, names in offending.items() if names}
    assert offending == {}, f"{package} must not import {', '.join(FORBIDDEN[package])}: {offending}"


def test_msm_is_parsed_module_by_module() -> None:
    modules = package_modules("msm")
    assert {"msm", "msm.errors", "msm.validation", "msm.services.snapshots", "msm.store.migrations"} <= set(modules)


_RUNTIME = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
roots = tuple(sys.argv[2:])
print(json.dumps(sorted(m for m in sys.modules if any(m == r or m.startswith(r + ".") for r in roots))))
"""


def test_importing_msm_loads_no_upper_layer() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import msm, sys; print([m for m in sys.modules"
            " if m.startswith(('msm_portfolios', 'streamlit', 'msm_cli', 'msm_spark', 'pyspark'))])",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_importing_every_module_of_a_package_loads_no_upper_layer(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        assert package != "msm"
        return
    proc = subprocess.run(
        [sys.executable, "-c", _RUNTIME, package, *FORBIDDEN[package]], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


# -- the app's pages call services; they never hold SQL ---------------------------------------------------------
_SQL = re.compile(
    r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|DROP\s+TABLE)\b",
    re.IGNORECASE,
)
_APP_FILES = sorted([ROOT / "app.py", *(ROOT / "msm_app").rglob("*.py")])


@pytest.mark.parametrize("path", _APP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_app_holds_no_sql_and_no_connection(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not _SQL.search(source), f"{path.name} contains SQL: pages call msm / msm_portfolios services"
    names = imported_names(source, path.stem)
    assert not {n for n in names if _is_under(n, ("duckdb", "msm.store.connection"))}, (
        f"{path.name} reaches the database directly"
    )
    assert ".query(" not in source and ".execute(" not in source and ".transaction(" not in source
    # the one exception: ui.guard opens the file once for a whole rerun (and releases it at its end)
    assert source.count(".connect(") == (1 if path.name == "ui.py" else 0)


def test_the_app_imports_only_the_layers_below_it() -> None:
    imported = set().union(*(imported_names(p.read_text(encoding="utf-8"), p.stem) for p in _APP_FILES))
    assert not {n for n in imported if _is_under(n, ("msm_cli",))}


# -- a read command imports only what it uses (issue 7: a fast CLI) ---------------------------------------------
_READ_COMMAND = """
import io, contextlib, json, sys
from msm_cli.main import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(["--db", sys.argv[1], "targets", "show", "example-account-alpha", "--format", "json"])
heavy = ["pydantic", "pyarrow", "pandas", "numpy", "msm.models", "msm.services.export", "msm_portfolios.compositions",
         "msm_examples"]
rows = len(json.loads(out.getvalue())["positions"])
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules], "rows": rows}))
"""


def test_a_read_command_loads_no_heavy_module(tmp_path: Path) -> None:
    """`msm targets show` pays for duckdb and polars only: not pydantic, pyarrow, pandas or the export."""
    from msm_cli.main import main

    db = tmp_path / "demo.duckdb"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--db", str(db), "demo"]) == 0
    proc = subprocess.run([sys.executable, "-c", _READ_COMMAND, str(db)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"code": 0, "loaded": [], "rows": 2}


def test_registry_columns_are_the_records_fields() -> None:
    import msm.models
    from msm.services.registry import ENTITIES

    for entity in ENTITIES:
        assert entity.columns == tuple(getattr(msm.models, entity.model).model_fields), entity.table
