"""Nested portfolios in the app (AppTest): the composition editor takes portfolios, the look-through
page and the builder's preview show each row's path and the lineage tree."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest
from app_harness import assert_clean, build_demo, copy_db, label, messages, open_page, table

import msm
import msm_portfolios
from msm_examples import nested_portfolios as nested_example

GAMMA = nested_example.ACCOUNT[0]
FOF = nested_example.FUND_OF_FUNDS


@pytest.fixture(scope="module")
def nested_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database plus the nested example (what `msm demo` loads)."""
    path = build_demo(tmp_path_factory.mktemp("app-nested") / "demo.duckdb")
    nested_example.build_nested_example(msm_portfolios.init_store(path))
    return path


@pytest.fixture
def book(tmp_path: Path, nested_template: Path) -> Path:
    return copy_db(nested_template, tmp_path / "msm.duckdb")


def test_lookthrough_shows_the_path_depth_and_tree_of_a_two_level_portfolio(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, book, "lookthrough", query={"account": GAMMA})
    assert_clean(at)
    rows = table(at, "source", "path", "depth")
    nested = rows[rows["source"] == FOF]
    assert set(nested["path"]) == {f"{FOF} > CRYPTO-MAJORS-EW", f"{FOF} > CRYPTO-LARGE-CAP"}
    assert set(nested["depth"]) == {2}
    direct = rows[rows["source"] == "SOL"]
    assert list(direct["depth"]) == [0]
    tree = table(at, "label", "kind")
    labels = [text.strip("\u2003") for text in tree["label"]]
    assert labels[:2] == [FOF, "CRYPTO-LARGE-CAP"]  # the target, then its first nested portfolio
    assert list(tree["kind"]).count("target") == 1 and list(tree["kind"]).count("portfolio") == 2
    top = tree[tree["kind"] == "target"]
    assert float(top["weight_notional_exposure"].iloc[0]) == pytest.approx(0.8)
    net = table(at, "asset", "direct")
    got = dict(zip(net["asset"], net["weight_notional_exposure"], strict=True))
    assert got["BTC"] == pytest.approx(0.8 * (0.6 * 0.5 + 0.4 * 0.6))


def test_composition_editor_stores_a_portfolio_of_portfolios(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "reference")
    at.selectbox(key="ref_comp_portfolio").set_value("CRYPTO-LARGE-CAP").run()
    at.date_input(key="ref_comp_date").set_value(date(2026, 7, 1))
    at.time_input(key="ref_comp_time").set_value(time(0, 0))
    at.session_state["ref_comp_grid"] = {
        "edited_rows": {0: {"portfolio": "CRYPTO-MAJORS-EW", "weight": 0.5}},
        "added_rows": [{"asset": "BTC", "weight": 0.5}],
        "deleted_rows": [],
    }
    at.run()
    at.button(key="ref_comp_save").click().run()
    assert_clean(at)
    stored = msm_portfolios.read_composition(store, "CRYPTO-LARGE-CAP", as_of="2026-07-01T00:00:00Z")
    assert stored.select("constituent_type", "asset", "constituent_portfolio", "weight").rows() == [
        ("asset", "BTC", None, 0.5),
        ("portfolio", None, "CRYPTO-MAJORS-EW", 0.5),
    ]
    assert any("2 constituents, 1 of them portfolios" in m for m in messages(at, "success"))


def test_composition_editor_refuses_a_loop_naming_the_path(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    before = msm_portfolios.composition_history(store, "CRYPTO-LARGE-CAP").height
    at = open_page(monkeypatch, book, "reference")
    at.selectbox(key="ref_comp_portfolio").set_value("CRYPTO-LARGE-CAP").run()
    at.date_input(key="ref_comp_date").set_value(date(2026, 7, 1))
    at.time_input(key="ref_comp_time").set_value(time(0, 0))
    at.session_state["ref_comp_grid"] = {
        "edited_rows": {0: {"portfolio": FOF, "weight": 1.0}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    at.button(key="ref_comp_save").click().run()
    assert not at.exception
    shown = " ".join(messages(at, "error"))
    assert f"would make portfolio 'CRYPTO-LARGE-CAP' contain itself: CRYPTO-LARGE-CAP -> {FOF} -> CRYPTO-LARGE-CAP" in (
        shown
    )
    assert msm_portfolios.composition_history(store, "CRYPTO-LARGE-CAP").height == before


def test_builder_preview_of_a_nested_portfolio_target(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "builder")
    at.selectbox(key="builder_account").set_value(GAMMA)
    at.date_input(key="builder_date").set_value(date(2026, 7, 1))
    at.time_input(key="builder_time").set_value(time(9, 30))
    at.run()
    key = f"builder_grid_{at.session_state['builder_version']}"
    row = {"target": label(store, FOF, "portfolio"), "weight_notional_exposure": 1.0}  # any portfolio is a target
    at.session_state[key] = {"edited_rows": {0: row}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    tree = table(at, "label", "kind")
    assert next(text.strip("\u2003") for text in tree["label"]) == FOF
    assert set(tree["kind"]) == {"target", "portfolio", "asset"}


def test_builder_names_a_nested_portfolio_without_composition(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm_portfolios.init_store(book)
    for ident in ("SHELL", "EMPTY-P"):
        msm.add_portfolio(store, ident)
    msm_portfolios.save_composition(store, "SHELL", "2026-01-01T00:00:00Z", [{"portfolio": "EMPTY-P", "weight": 1.0}])
    at = open_page(monkeypatch, book, "builder")
    at.selectbox(key="builder_account").set_value(GAMMA)
    at.date_input(key="builder_date").set_value(date(2026, 7, 1))
    at.time_input(key="builder_time").set_value(time(9, 30))
    at.run()
    key = f"builder_grid_{at.session_state['builder_version']}"
    rows = [
        {"target": label(store, "SHELL", "portfolio"), "weight_notional_exposure": 0.5},
        {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.5},
    ]
    at.session_state[key] = {"edited_rows": {0: rows[0]}, "added_rows": rows[1:], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert any("EMPTY-P (nested in SHELL) has no composition at or before" in w for w in messages(at, "warning"))
