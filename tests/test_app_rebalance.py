"""The Rebalance page (AppTest): one account or a set, options as widgets, chart, orders, metrics, download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_harness import assert_clean, build_demo, copy_db, messages, open_page, table

import msm

ALPHA = "example-account-alpha"
BETA = "example-account-beta"
IDLE = "idle-account"
DAY = "2026-06-01T00:00:00Z"


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database plus a USD cash asset, prices, holdings for both example accounts, and an idle account."""
    path = build_demo(tmp_path_factory.mktemp("app-rebalance") / "book.duckdb")
    store = msm.Store(path)
    if "USD" not in set(msm.list_assets(store)["unique_identifier"]):
        msm.add_asset(store, "USD", name="US dollar", asset_type="cash", currency="USD")
    prices = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}
    msm.import_prices(store, [{"asset": a, "time": DAY, "price": p, "currency": "USD"} for a, p in prices.items()])
    held = [(ALPHA, "BTC", 1.0), (ALPHA, "ETH", 5.0), (ALPHA, "USD", 2_000.0), (BETA, "ETH", 10.0)]
    msm.import_holdings(store, [{"account": a, "asset": s, "quantity": q} for a, s, q in held], at=DAY, overwrite=True)
    msm.add_account(store, IDLE, account_name="No holdings")
    return path


@pytest.fixture
def book(tmp_path: Path, book_template: Path) -> Path:
    """A fresh copy of the book for one test."""
    return copy_db(book_template, tmp_path / "msm.duckdb")


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_one_account_shows_metrics_chart_orders_and_the_download(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "rebalance", query={"account": ALPHA})
    assert_clean(at)
    metrics = _metrics(at)
    assert metrics["NAV"] == "77,000.00 USD"  # 60,000 + 15,000 + 2,000
    assert metrics["Leftover cash"].endswith(" USD") and metrics["Turnover"].endswith("%")
    orders = table(at, "asset", "side", "quantity", "value", "projected_weight", "reason")
    assert "USD" not in orders["asset"].to_list()  # the cash asset is never an order
    assert set(orders["reason"]) <= {"to_target"}
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    (button,) = at.get("download_button")
    assert "Download orders CSV" in button.proto.label
    assert at.query_params["account"] == [ALPHA] or at.query_params["account"] == ALPHA


def test_the_options_change_the_proposal_and_buy_only_never_sells(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "rebalance", query={"account": ALPHA})
    at.selectbox(key="rebalance_mode").select("Buy-only: no sells").run()
    assert_clean(at)
    orders = table(at, "asset", "side", "reason")
    assert "sell" not in orders["side"].to_list()
    assert "buy_only" in orders["reason"].to_list()  # BTC is overweight and kept
    at.number_input(key="rebalance_flow").set_value(-1_000.0).run()
    assert any("cash_flow" in m and "a withdrawal (< 0) needs sells" in m for m in messages(at, "error"))


def test_the_bands_are_asked_as_on_the_drift_page(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Points and percent, empty for none (as on the Drift page); a band of 0 is refused by name."""
    at = open_page(monkeypatch, book, "rebalance", query={"account": ALPHA})
    band_abs, band_rel = at.number_input(key="rebalance_band_abs"), at.number_input(key="rebalance_band_rel")
    assert (band_abs.label, band_abs.value) == ("Absolute band (pp)", 5.0)
    assert (band_rel.label, band_rel.value) == ("Relative band (%)", None)  # empty: not checked
    drift = open_page(monkeypatch, book, "drift", query={"account": ALPHA})
    assert [(w.label, w.value) for w in drift.number_input] == [(band_abs.label, 5.0), (band_rel.label, None)]
    at.selectbox(key="rebalance_mode").select("Bands: only breaches").run()
    at.number_input(key="rebalance_band_rel").set_value(10.0).run()
    assert_clean(at)
    assert set(table(at, "asset", "reason")["reason"]) <= {"to_target", "within_band", "cash_limited"}
    at.number_input(key="rebalance_band_abs").set_value(0.0).run()
    assert any("band_abs" in m and "a band must be a finite number > 0" in m for m in messages(at, "error"))


def test_bands_to_the_edge_with_whole_units_report_their_reasons(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "rebalance", query={"account": ALPHA})
    at.selectbox(key="rebalance_mode").select("Bands: only breaches").run()
    at.radio(key="rebalance_to").set_value("the band edge").run()
    at.checkbox(key="rebalance_whole").check().run()
    assert_clean(at)
    orders = table(at, "asset", "side", "quantity", "reason")
    assert set(orders["reason"]) <= {"to_band_edge", "within_band", "rounded_to_zero", "cash_limited"}
    assert all(q == int(q) for q in orders["quantity"].to_list())


def test_a_set_of_accounts_leaves_out_and_names_the_one_without_holdings(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, book, "rebalance")
    at.radio(key="rebalance_scope").set_value("A set of accounts").run()
    assert_clean(at)
    assert any(IDLE in m and "has neither holdings nor a target snapshot" in m for m in messages(at, "info"))
    accounts = table(at, "account", "nav", "cash_after", "leftover_cash", "turnover", "status")
    assert accounts["account"].to_list() == [ALPHA, BETA]
    orders = table(at, "account", "asset", "side", "reason")
    assert set(orders["account"]) == {ALPHA, BETA}
    assert _metrics(at)["Accounts"] == "2"
    assert _metrics(at)["Without a proposal"] == "1"  # the idle account, left out and named


def test_one_account_without_holdings_is_named_not_an_error(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "rebalance", query={"account": IDLE})
    assert_clean(at)
    assert any(IDLE in m and "has neither holdings nor a target snapshot" in m for m in messages(at, "info"))
    assert not at.get("download_button")


def test_a_set_of_accounts_shows_drift_before_and_after_in_percentage_points(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = open_page(monkeypatch, book, "rebalance", query={"account": ALPHA})
    (drift,) = [m for m in one.metric if m.label == "Max |drift|"]
    at = open_page(monkeypatch, book, "rebalance")
    at.radio(key="rebalance_scope").set_value("A set of accounts").run()
    assert_clean(at)
    (element,) = [e for e in at.dataframe if "max_abs_drift_before" in e.value.columns]  # the accounts table
    accounts = element.value
    alpha = accounts.set_index("account").loc[ALPHA]
    assert f"{alpha['max_abs_drift_before']:,.2f} pp" == drift.help.removeprefix("before: ")  # as the one account shows
    assert f"{alpha['max_abs_drift_after']:,.2f} pp" == drift.value
    config = json.loads(element.proto.columns)  # the column formats the browser applies
    assert {config[c]["type_config"]["format"] for c in ("max_abs_drift_before", "max_abs_drift_after")} == {"%.2f pp"}
