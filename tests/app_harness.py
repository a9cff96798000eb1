"""Helpers for the Streamlit tests: a demo database template and an AppTest opened on a page.

The app reads ``$MSM_DB``; each test points it at its own copy of a demo database (built once per
session) under ``tmp_path``, so tests never share a file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

import msm
import msm_portfolios
from msm_app import links
from msm_examples import account_portfolio_workflow as account_example

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
#: Each page's file, as the router registers it (declared once, in msm_app.links).
PAGES = {name: page.script for name, page in links.PAGES.items()}
TITLES = {name: page.title for name, page in links.PAGES.items()}


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


def open_page(
    monkeypatch: pytest.MonkeyPatch, db: Path, page: str, *, timeout: float = 60, query: dict[str, str] | None = None
) -> AppTest:
    """An AppTest of the whole app (router included) on ``page``, run once, with ``$MSM_DB`` = ``db``.

    ``query``: the address's query parameters (what a shared link carries).
    """
    monkeypatch.setenv("MSM_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.switch_page(PAGES[page])
    at.query_params = dict(query or {})
    at.run()
    return at


def page_links(at: AppTest) -> dict[str, tuple[str, dict[str, str]]]:
    """Each page link on the page: label -> (the page it opens, its query parameters)."""
    return {p.proto.label: (p.proto.page, dict(parse_qsl(p.proto.query_string))) for p in at.get("page_link")}


def follow(at: AppTest, label: str) -> AppTest:
    """Click the page link ``label`` (AppTest cannot): open its page with its query parameters."""
    url_path, query = page_links(at)[label]
    name = next(n for n, p in links.PAGES.items() if p.url_path == url_path)
    at.switch_page(PAGES[name])
    at.query_params = query
    return at.run()


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
