"""The Holdings and Drift pages, driven with AppTest on a demo database with holdings (what `msm demo` loads).

Each test runs the real router (``app.py``) against its own copy of the database file: the account
example plus the holdings example (a USD cash asset, prices with SOL in EUR, an EUR/USD rate, both
accounts' holdings on 2026-06-02).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
from app_harness import assert_clean, build_demo, copy_db, follow, messages, open_page, page_links, table

import msm
from msm_examples import holdings_and_drift

ALPHA = "example-account-alpha"
BETA = "example-account-beta"
MARKET = "2026-06-02T00:00:00Z"
MARKET_AT = datetime(2026, 6, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_demo(tmp_path_factory.mktemp("app-drift") / "demo.duckdb")
    holdings_and_drift.run(msm.Store(path))
    return path


@pytest.fixture
def book(tmp_path: Path, book_template: Path) -> Path:
    return copy_db(book_template, tmp_path / "msm.duckdb")


# -- holdings --------------------------------------------------------------------------------------------------
def test_holdings_page_shows_an_accounts_set_and_links_to_its_drift(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, book, "holdings", query={"account": ALPHA})
    assert_clean(at)
    positions = table(at, "asset", "quantity")
    assert dict(zip(positions["asset"], positions["quantity"], strict=True)) == {
        "BTC": 5.0,
        "ETH": 40.0,
        "SOL": 500.0,
        "USD": 20_000.0,
    }
    assert at.query_params["account"] == ALPHA and at.query_params["at"] == MARKET
    assert page_links(at)["Drift of this account"] == ("drift", {"account": ALPHA})


def test_holdings_import_previews_then_writes(book: Path, monkeypatch: pytest.MonkeyPatch, db_contents) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "holdings")
    at.date_input(key="holdings_date").set_value(date(2026, 6, 3)).run()
    good = f"account,asset,quantity\n{ALPHA},BTC,6\n{BETA},ETH,25\n"
    before = db_contents(store)
    at.file_uploader(key="holdings_upload").upload("holdings.csv", good.encode(), "text/csv").run()
    assert_clean(at)
    assert any("2 rows for 2 accounts pass every check" in m for m in messages(at, "success"))
    assert db_contents(store) == before  # the preview writes nothing
    at.button(key="holdings_write").click().run()
    assert_clean(at)
    assert any("Imported 2 rows for 2 accounts" in m for m in messages(at, "success"))
    at.file_uploader(key="holdings_upload").upload("again.csv", good.encode(), "text/csv").run()
    assert "holdings set exists at 2026-06-03" in " ".join(messages(at, "error"))
    assert any("Tick **Replace a set that exists at that time**" in m for m in messages(at, "info"))
    assert msm.read_holdings(store, ALPHA).positions["quantity"].to_list() == [6.0]
    bad = f"account,asset,quantity\n{ALPHA},NOPE,-1\n"
    at.file_uploader(key="holdings_upload").upload("bad.csv", bad.encode(), "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "NOPE" in refused and "no asset has this" in refused and "long-only" in refused


# -- drift ----------------------------------------------------------------------------------------------------
def test_drift_queue_is_sorted_by_largest_drift_and_links_each_account(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, book, "drift", query={"at": MARKET})
    assert_clean(at)
    queue = table(at, "link", "max_pp")
    accounts = [dict(parse_qsl(urlparse(u).query))["account"] for u in queue["link"]]
    assert accounts == [BETA, ALPHA]  # beta holds 25% cash against a 0% target: the larger drift
    assert list(queue["max_pp"]) == sorted(queue["max_pp"], reverse=True)
    assert all(dict(parse_qsl(urlparse(u).query))["at"] == MARKET for u in queue["link"])
    assert list(queue["nav_text"]) == ["400,000.00 USD", "515,600.00 USD"]
    # the account shown first is the one with the largest drift; its positions and the breach flags
    assert at.selectbox(key="drift_account").value == BETA
    positions = table(at, "drift_pp", "breach")
    assert set(positions["asset"]) == {"BTC", "ETH", "SOL", "USD"}
    assert positions.loc[positions["asset"] == "USD", "breach"].item()
    assert {m.label: m.value for m in at.metric}["NAV"] == "400,000.00 USD"


def test_drift_link_opens_that_account_and_the_band_filter_applies(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "drift", query={"account": ALPHA, "at": MARKET})
    assert_clean(at)
    assert at.selectbox(key="drift_account").value == ALPHA
    assert at.date_input(key="drift_date").value == date(2026, 6, 2)
    positions = table(at, "drift_pp", "breach")
    assert positions.loc[positions["asset"] == "SOL", "price_currency"].item() == "EUR"
    assert positions.loc[positions["asset"] == "SOL", "fx_rate"].item() == pytest.approx(1.08)
    at.number_input(key="drift_band_abs").set_value(50.0).run()  # a 50-point band: nothing is in breach
    at.checkbox(key="drift_only_breaches").check().run()
    assert_clean(at)
    assert table(at, "link", "max_pp").shape[0] == 0
    assert page_links(at)["Holdings of this account"] == ("holdings", {"account": ALPHA})
    assert page_links(at)["Rebalance this account"] == ("rebalance", {"account": ALPHA})
    follow(at, "Holdings of this account")
    assert at.selectbox(key="holdings_account").value == ALPHA


def test_drift_before_any_holdings_says_so(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "drift", query={"at": "2026-05-01T00:00:00Z"})
    assert_clean(at)
    assert any("No account has both holdings and a target snapshot" in m for m in messages(at, "info"))


def test_drift_with_a_missing_price_names_it(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msm.Store(book).execute("DELETE FROM asset_price WHERE price = 140")  # SOL's only price
    at = open_page(monkeypatch, book, "drift", query={"at": MARKET})
    assert not at.exception
    assert any("no price at or before 2026-06-02T00:00:00Z for 1 asset: 'SOL'" in m for m in messages(at, "error"))
