"""Helpers for the Streamlit tests: a demo database template and an AppTest opened on a page.

The app reads ``$MSM_DB``; each test points it at its own copy of a demo database (built once per
session) under ``tmp_path``, so tests never share a file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import msm
import msm_portfolios
from msm_examples import account_portfolio_workflow as account_example

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = {
    "overview": "msm_app/pages/overview.py",
    "builder": "msm_app/pages/builder.py",
    "snapshots": "msm_app/pages/snapshots.py",
    "lookthrough": "msm_app/pages/lookthrough.py",
    "reference": "msm_app/pages/reference.py",
    "export": "msm_app/pages/export.py",
}
TITLES = {
    "overview": "Overview",
    "builder": "Target set builder",
    "snapshots": "Snapshots",
    "lookthrough": "Look-through",
    "reference": "Reference data",
    "export": "Export",
}


def build_demo(path: Path) -> Path:
    """A migrated database with the chained example (what `msm demo` loads)."""
    store = msm_portfolios.init_store(path)
    account_example.run(store)
    return path


def copy_db(template: Path, target: Path) -> Path:
    shutil.copyfile(template, target)
    wal = template.with_name(template.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target


def open_page(monkeypatch: pytest.MonkeyPatch, db: Path, page: str, *, timeout: float = 60) -> AppTest:
    """An AppTest of the whole app (router included) on ``page``, run once, with ``$MSM_DB`` = ``db``."""
    monkeypatch.setenv("MSM_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.switch_page(PAGES[page])
    at.run()
    return at


def unescape(text: str) -> str:
    """Markdown text as a reader sees it (the app escapes user text with backslashes)."""
    return re.sub(r"\\(.)", r"\1", text).replace("  \n", "\n")


def messages(at: AppTest, kind: str) -> list[str]:
    return [unescape(e.value) for e in getattr(at, kind)]


def assert_clean(at: AppTest) -> None:
    """No exception element and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, messages(at, "error")


def label(store: msm.Store, identifier: str, kind: str) -> str:
    """The builder's option label of a target."""
    results = msm.search_candidates(store, identifier, target_type=kind).results
    hit = results.filter(results["unique_identifier"] == identifier).row(0, named=True)
    name = hit["display_label"]
    return f"{identifier} — {name} · {kind}" if name and name != identifier else f"{identifier} · {kind}"


def table(at: AppTest, *columns: str):
    """The first table (st.dataframe / st.table) on the page holding all ``columns``."""
    for element in at.dataframe:
        value = element.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}: {[list(e.value.columns) for e in at.dataframe]}")


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database, built once per test module (import this fixture with ``demo``)."""
    return build_demo(tmp_path_factory.mktemp("app") / "demo.duckdb")


@pytest.fixture
def demo(tmp_path: Path, demo_template: Path) -> Path:
    """A fresh copy of the demo database for one test."""
    return copy_db(demo_template, tmp_path / "msm.duckdb")
