"""The Market data page, driven with AppTest on the demo database with holdings (what `msm demo` loads).

The holdings example stores prices of BTC, ETH (USD) and SOL (EUR) and an EUR/USD rate, all on
2026-06-02; each test runs the real router against its own copy of the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from app_harness import assert_clean, build_demo, copy_db, messages, open_page, page_links, table

import msm
from msm_examples import holdings_and_drift

MARKET = "2026-06-02T00:00:00Z"


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_demo(tmp_path_factory.mktemp("app-marketdata") / "demo.duckdb")
    store = msm.Store(path)
    holdings_and_drift.run(store)
    msm.import_prices(store, [{"asset": "BTC", "time": "2026-06-03T00:00:00Z", "price": 0.00001234, "currency": "USD"}])
    return path


def rows(frame: Any, *columns: str) -> list[tuple]:
    """A shown table's ``columns``, row by row."""
    return list(frame[list(columns)].itertuples(index=False, name=None))


@pytest.fixture
def book(tmp_path: Path, book_template: Path) -> Path:
    return copy_db(book_template, tmp_path / "msm.duckdb")


def test_the_latest_price_of_each_asset_and_rate_of_each_pair(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "marketdata")
    assert_clean(at)
    assert rows(table(at, "asset", "price", "currency"), "asset", "price", "currency") == [
        ("BTC", 0.00001234, "USD"),
        ("ETH", 3000.0, "USD"),
        ("SOL", 140.0, "EUR"),
    ]
    price = json.loads(at.dataframe[0].proto.columns)["price"]
    assert price["type_config"]["format"] == "%.10g"  # a small price never reads 0 (3 decimals by default)
    assert rows(table(at, "pair", "rate"), "pair", "rate") == [("EUR/USD", 1.08)]
    assert any("The latest price of each asset at or before" in c.value for c in at.caption)
    assert "at" in at.query_params  # the address is a link to this view


def test_a_link_at_a_time_and_every_one_stored(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "marketdata", query={"at": MARKET})
    assert_clean(at)
    assert table(at, "asset", "price")["price"].to_list() == [60_000.0, 3_000.0, 140.0]
    at.checkbox(key="marketdata_history").check().run()
    assert table(at, "asset")["asset"].to_list() == ["BTC", "ETH", "SOL"]  # the 3 June price is after the link's time
    at.date_input(key="marketdata_date").set_value(datetime(2026, 6, 4, tzinfo=UTC).date()).run()
    assert table(at, "asset")["asset"].to_list() == ["BTC", "BTC", "ETH", "SOL"]
    at.multiselect(key="marketdata_assets").set_value(["BTC", "SOL"]).run()
    assert table(at, "asset")["asset"].to_list() == ["BTC", "BTC", "SOL"]
    before = open_page(monkeypatch, book, "marketdata", query={"at": "2026-05-01T00:00:00Z"})
    assert any("No price is stored at or before 2026-05-01 00:00 UTC" in m for m in messages(before, "info"))
    assert any("No rate is stored" in m for m in messages(before, "info"))


def test_an_import_previews_every_row_then_writes(book: Path, monkeypatch: pytest.MonkeyPatch, db_contents) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "marketdata")
    bad = "asset,time,price,currency\nBTC,2026-07-01,0,usd\n"
    at.file_uploader(key="marketdata_upload").upload("bad.csv", bad.encode(), "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "has no UTC offset" in refused and "must be > 0" in refused and "three-letter" in refused
    before = db_contents(store)
    good = f"asset,time,price,currency\nBTC,2026-07-01T00:00:00Z,65000,USD\nSOL,{MARKET},141,EUR\n"
    at.file_uploader(key="marketdata_upload").upload("good.csv", good.encode(), "text/csv").run()
    assert "a price of this asset at this time is stored already" in " ".join(messages(at, "error"))
    assert any("Tick **Replace values stored at the same time**" in m for m in messages(at, "info"))
    at.checkbox(key="marketdata_upsert").check().run()
    assert_clean(at)
    assert any("1 added, 1 updated, 0 unchanged. Nothing is written" in m for m in messages(at, "success"))
    assert db_contents(store) == before  # the preview writes nothing
    at.text_input(key="marketdata_reason").input("July marks").run()
    at.button(key="marketdata_write").click().run()
    assert_clean(at)
    assert any("Imported prices: 1 added, 1 updated" in m for m in messages(at, "success"))
    stored = msm.read_prices(store, ["SOL"], history=True)
    assert stored.select("price", "source").rows() == [(141.0, "app")]
    (event,) = msm.audit_events(store, action="import", entity_type="price", limit=1).to_dicts()
    assert event["reason"] == "July marks"


def test_fx_rates_import(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "marketdata")
    at.radio(key="marketdata_kind").set_value("FX rates").run()
    rows = "base,quote,time,rate\nGBP,USD,2026-06-02T00:00:00Z,1.27\n"
    at.file_uploader(key="marketdata_upload").upload("fx.csv", rows.encode(), "text/csv").run()
    at.button(key="marketdata_write").click().run()
    assert_clean(at)
    assert msm.read_fx_rates(msm.Store(book), ["GBP"])["rate"].to_list() == [1.27]


def test_drift_with_a_missing_price_links_to_market_data(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msm.Store(book).execute("DELETE FROM asset_price WHERE price = 140")  # SOL's only price
    for page in ("drift", "rebalance"):
        query = {"at": MARKET} if page == "drift" else {"account": "example-account-alpha"}
        at = open_page(monkeypatch, book, page, query=query)
        assert not at.exception
        assert any("'SOL'" in m for m in messages(at, "error"))
        target, params = page_links(at)["See and import prices and FX rates"]
        assert target == "marketdata" and "at" in params


def test_a_long_history_sends_the_newest_rows_only() -> None:
    from msm_app.pages import marketdata

    n = marketdata.LIMIT + 5
    frame = pl.DataFrame({"asset": ["B", "A"] * (n // 2) + ["A"] * (n % 2), "time": range(n)})
    shown = marketdata._newest(frame.sort("asset", "time"), "msm prices list")
    assert shown.height == marketdata.LIMIT and shown["time"].min() == 5
    assert shown["asset"].is_sorted() and marketdata._newest(frame.head(3), "msm fx list").height == 3


def test_deleting_a_wrong_price_and_a_rate(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "marketdata")
    picker = at.multiselect(key="marketdata_delete_prices")
    assert picker.options == [
        "BTC at 2026-06-03 00:00 UTC (0.00001234 USD)",
        "ETH at 2026-06-02 00:00 UTC (3000 USD)",
        "SOL at 2026-06-02 00:00 UTC (140 EUR)",
    ]
    picker.set_value(["BTC at 2026-06-03 00:00 UTC (0.00001234 USD)"]).run()
    at.text_input(key="marketdata_delete_prices_reason").input("a test price").run()
    at.button(key="marketdata_delete_prices_write").click().run()
    assert_clean(at)
    assert any("Deleted 1 price; the audit trail keeps it." in m for m in messages(at, "success"))
    assert table(at, "asset", "price")["price"].to_list() == [60_000.0, 3_000.0, 140.0]  # the table is re-read
    (event,) = msm.audit_events(store, action="delete").to_dicts()
    assert event["entity_type"] == "price" and event["reason"] == "a test price"
    at.multiselect(key="marketdata_delete_rates").set_value(["EUR/USD at 2026-06-02 00:00 UTC (1.08)"]).run()
    at.button(key="marketdata_delete_rates_write").click().run()
    assert_clean(at)
    assert msm.read_fx_rates(store).height == 0


def test_overview_says_how_fresh_the_market_data_is(book: Path, tmp_path: Path, monkeypatch) -> None:
    at = open_page(monkeypatch, book, "overview")
    assert_clean(at)
    assert any(
        "Market data: prices of 3 assets, the latest at 2026-06-03 00:00 UTC; FX rates of 1 pair, the latest at "
        "2026-06-02 00:00 UTC." == c.value
        for c in at.caption
    )
    assert page_links(at)["See and import prices and FX rates"] == ("marketdata", {})
    bare = build_demo(tmp_path / "bare.duckdb")  # the account example alone: no market data
    at = open_page(monkeypatch, bare, "overview")
    assert any(c.value.startswith("No price or FX rate is stored yet") for c in at.caption)
    assert msm.market_data_summary(msm.Store(bare)) == {
        "assets": 0,
        "latest_price": None,
        "pairs": 0,
        "latest_rate": None,
    }
