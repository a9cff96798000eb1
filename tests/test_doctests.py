"""Every docstring example of ``msm`` (and of ``msm_portfolios`` once it exists) runs and prints what it shows.

Modules are discovered on disk at collection time, so a new module is covered without editing this file.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

PACKAGES = ("msm", "msm_portfolios")


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


MODULES = [name for package in PACKAGES for name in _modules(package)]


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.delenv("MSM_DB", raising=False)
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
