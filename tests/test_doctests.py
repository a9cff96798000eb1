"""Every docstring example of every package runs and prints what it shows.

Modules are discovered on disk at collection time, so a new module is covered without editing this file.
``msm_app.pages`` is left out: a page module runs Streamlit when it is imported (its examples would be
AppTest tests, in ``tests/test_app*.py``). ``msm_spark`` imports pyspark but starts no Spark session,
so its modules are covered whenever the ``spark`` extra is installed.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGES = ("msm", "msm_portfolios", "msm_cli", "msm_app", "msm_spark")
#: Modules (and everything below them) whose import runs something: never imported here.
EXCLUDED = ("msm_app.pages",)


def _modules(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    names = []
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join([package, *parts]))
    return sorted(set(names))


def _excluded(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in EXCLUDED)


MODULES = [name for package in PACKAGES for name in _modules(package) if not _excluded(name)]


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.delenv("MSM_DB", raising=False)
    if module_name.startswith("msm_spark."):
        pytest.importorskip("pyspark")
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, report=True, verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} doctest examples failed in {module_name} (see the output above)"
    )


def test_msm_has_doctests_and_all_its_modules_are_found() -> None:
    assert {"msm", "msm.validation", "msm.timeutil", "msm.store.connection", "msm.services.candidates"} <= set(MODULES)
    attempted = 0
    for name in ("msm", "msm.validation", "msm.timeutil", "msm.store.connection", "msm.services.candidates"):
        finder = doctest.DocTestFinder()
        attempted += sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert attempted >= 5


def test_every_package_is_covered_and_the_surfaces_have_examples() -> None:
    assert {"msm_cli.output", "msm_app.links", "msm_app.ui", "msm_spark.job"} <= set(MODULES)
    assert not [name for name in MODULES if name.startswith("msm_app.pages")]
    for name in ("msm_cli.output", "msm_app.links", "msm_app.ui"):
        examples = sum(len(t.examples) for t in doctest.DocTestFinder().find(importlib.import_module(name)))
        assert examples >= 2, name
