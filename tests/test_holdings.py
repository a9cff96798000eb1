"""Holdings, prices and FX imports: every file format, many accounts at once, all-or-nothing, every bad row named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import msm
from tests.cli_harness import contents, write_rows
from tests.conftest import Seeded

T0 = "2026-06-01T00:00:00Z"
T1 = "2026-06-02T00:00:00Z"


def add_cash(store: msm.Store, code: str) -> str:
    """A cash asset whose identifier is its currency code (raw SQL until `msm assets add --currency` exists)."""
    return store.query(
        "INSERT INTO asset (uid, unique_identifier, name, asset_type, currency) "
        "VALUES (gen_random_uuid(), ?, ?, 'cash', ?) RETURNING uid::VARCHAR AS uid",
        [code, f"{code} cash", code],
    )["uid"][0]


def _book(seeded: Seeded) -> dict[str, Any]:
    store = seeded.store
    msm.add_account(store, "beta", account_name="Beta Fund")
    return {"USD": add_cash(store, "USD"), "EUR": add_cash(store, "EUR")}


@pytest.fixture
def book(seeded_with) -> Seeded:
    seeded, _ = seeded_with("holdings_book", _book)
    return seeded


ROWS = [
    {"account": "alpha", "asset": "BTC", "quantity": 1.5},
    {"account": "alpha", "asset": "USD", "quantity": 2500},
    {"account": "beta", "asset": "ETH", "quantity": 0},
]


# -- holdings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet", ".xlsx"])
def test_holdings_import_from_every_file_format(book: Seeded, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"holdings{suffix}"
    if suffix == ".xlsx":
        pl.DataFrame(ROWS).write_excel(path)
    else:
        write_rows(path, ROWS)
    result = msm.import_holdings(book.store, path, at=T0)
    assert result.to_dict()["accounts"] == 2 and result.rows == 3
    alpha = msm.read_holdings(book.store, "alpha")
    assert alpha.holdings_time.isoformat() == "2026-06-01T00:00:00+00:00"
    assert dict(zip(alpha.positions["asset"], alpha.positions["quantity"], strict=True)) == {"BTC": 1.5, "USD": 2500.0}
    beta = msm.read_holdings(book.store, "beta").to_dict()
    assert [(p["asset"], p["quantity"]) for p in beta["positions"]] == [("ETH", 0.0)]


def test_holdings_read_latest_at_or_before(book: Seeded) -> None:
    msm.import_holdings(book.store, ROWS, at=T0)
    msm.import_holdings(book.store, [{"account": "alpha", "asset": "SOL", "quantity": 3}], at=T1)
    assert msm.read_holdings(book.store, "alpha").positions["asset"].to_list() == ["SOL"]
    assert msm.read_holdings(book.store, "alpha", as_of="2026-06-01T12:00:00Z").positions["asset"].to_list() == [
        "BTC",
        "USD",
    ]
    empty = msm.read_holdings(book.store, "alpha", as_of="2026-05-01T00:00:00Z")
    assert empty.is_empty and empty.to_dict()["positions"] == [] and empty.to_dict()["holdings_set_uid"] is None
    history = msm.holdings_history(book.store, "alpha")
    assert history["rows"].to_list() == [1, 2]


def test_an_existing_set_is_refused_unless_overwrite_which_replaces_it_whole(book: Seeded) -> None:
    msm.import_holdings(book.store, ROWS, at=T0)
    before = contents(book.store)
    with pytest.raises(
        msm.HoldingsSetExistsError,
        match=r"holdings set exists at 2026-06-01T00:00:00Z for account 'alpha'; pass overwrite \(--overwrite\)",
    ):
        msm.import_holdings(book.store, [{"account": "alpha", "asset": "SOL", "quantity": 1}], at=T0)
    assert contents(book.store) == before
    result = msm.import_holdings(
        book.store, [{"account": "alpha", "asset": "SOL", "quantity": 1}], at=T0, overwrite=True, source="test"
    )
    assert result.to_dict()["replaced"] == 1
    alpha = msm.read_holdings(book.store, "alpha")
    assert alpha.positions["asset"].to_list() == ["SOL"] and alpha.source == "test"
    assert msm.read_holdings(book.store, "beta").positions["asset"].to_list() == ["ETH"]  # not in the file: kept


BAD_HOLDINGS = [
    ([{"account": "ghost", "asset": "BTC", "quantity": 1}], r"row 1: `account` = 'ghost': no account has this"),
    ([{"account": "alpha", "asset": "NOPE", "quantity": 1}], r"row 1: `asset` = 'NOPE': no asset has this"),
    ([{"account": "alpha", "asset": "CRYPTO-EW", "quantity": 1}], r"row 1: `asset` = 'CRYPTO-EW': no asset has this"),
    (
        [{"account": "alpha", "asset": "BTC", "quantity": -1}],
        r"row 1: `quantity` = '-1': must be >= 0 \(holdings are long-only\)",
    ),
    ([{"account": "alpha", "asset": "BTC", "quantity": "NaN"}], r"row 1: `quantity` = 'NaN': must be finite"),
    ([{"account": "alpha", "asset": "BTC", "quantity": "inf"}], r"row 1: `quantity` = 'inf': must be finite"),
    ([{"account": "alpha", "asset": "BTC", "quantity": "lots"}], r"row 1: `quantity` = 'lots': must be a number"),
    ([{"account": "alpha", "asset": "BTC", "quantity": None}], r"row 1: `quantity`: must not be empty"),
    ([{"account": " ", "asset": "BTC", "quantity": 1}], r"row 1: `account`: must not be empty"),
    (
        [{"account": "alpha", "asset": "BTC", "quantity": 1}, {"account": "alpha", "asset": "BTC", "quantity": 2}],
        r"row 2: `asset` = 'BTC': duplicate asset for account 'alpha' in one file; first given at row 1",
    ),
    (
        [{"account": "alpha", "asset": "BTC", "quantity": 1}, {"account": "alpha", "asset": "@BTC", "quantity": 2}],
        r"row 2: `asset` = '.*': duplicate asset for account 'alpha' in one file; first given at row 1",
    ),
    (
        [{"account": "alpha", "asset": "BTC", "quantity": 1, "metadata_json": "[1]"}],
        r"row 1: `metadata_json`.*must be a JSON object",
    ),
    ([{"account": "alpha", "asset": "BTC", "qty": 1}], r"`qty`: is not a column of a holdings file"),
    ([{"account": "alpha", "asset": "BTC"}], r"`quantity`: column is missing \(required\)"),
    (
        [{"account": "alpha", "asset": "BTC", "quantity": 1, "time": T0}],
        r"`time`: is not a column of a holdings file; the holdings time is given once for the whole file",
    ),
    ([], r"`rows`: there are no rows"),
]


@pytest.mark.parametrize(("rows", "message"), BAD_HOLDINGS, ids=[m for _, m in BAD_HOLDINGS])
def test_bad_holdings_are_refused_and_nothing_is_stored(book: Seeded, rows: list[dict], message: str) -> None:
    rows = [
        {k: (book.uid(v[1:]) if isinstance(v, str) and v.startswith("@") else v) for k, v in r.items()} for r in rows
    ]
    before = contents(book.store)
    with pytest.raises(msm.ValidationError, match=message):
        msm.import_holdings(book.store, rows, at=T0)
    assert contents(book.store) == before


def test_every_bad_holdings_row_is_reported_at_once(book: Seeded) -> None:
    rows = [
        {"account": "alpha", "asset": "BTC", "quantity": "-2"},
        {"account": "alpha", "asset": "ETH", "quantity": "1"},
        {"account": "ghost", "asset": "NOPE", "quantity": "x"},
    ]
    with pytest.raises(msm.ValidationError) as info:
        msm.import_holdings(book.store, rows, at=T0)
    assert [(e.row, e.field) for e in info.value.errors] == [
        (1, "quantity"),
        (3, "account"),
        (3, "asset"),
        (3, "quantity"),
    ]
    assert str(info.value).startswith("holdings import: 4 problems found; nothing was stored")


@pytest.mark.parametrize("at", ["2026-06-01T00:00:00", "2026-06-01", "soon"])
def test_a_holdings_time_without_offset_is_refused(book: Seeded, at: str) -> None:
    with pytest.raises(msm.ValidationError, match=r"holdings_time"):
        msm.import_holdings(book.store, ROWS, at=at)


# -- prices ------------------------------------------------------------------------------------------------
PRICES = [
    {"asset": "BTC", "time": T0, "price": 60000, "currency": "USD"},
    {"asset": "ETH", "time": T0, "price": "3000", "currency": "EUR"},
]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_prices_import_and_upsert(book: Seeded, tmp_path: Path, suffix: str) -> None:
    path = write_rows(tmp_path / f"prices{suffix}", PRICES)
    assert msm.import_prices(book.store, path).to_dict() == {"added": 2, "updated": 0, "unchanged": 0}
    with pytest.raises(msm.ValidationError, match=r"row 1: `time` = '2026-06-01T00:00:00Z': a price of this asset"):
        msm.import_prices(book.store, path)
    changed = [{**PRICES[0], "price": 61000}, PRICES[1], {**PRICES[1], "time": T1}]
    result = msm.import_prices(book.store, changed, upsert=True)
    assert result.to_dict() == {"added": 1, "updated": 1, "unchanged": 1}
    stored = book.store.query("SELECT price FROM asset_price ORDER BY price")["price"].to_list()
    assert stored == [3000.0, 3000.0, 61000.0]


BAD_PRICES = [
    ({"price": 0}, r"`price` = '0': must be > 0"),
    ({"price": -5}, r"`price` = '-5': must be > 0"),
    ({"price": "NaN"}, r"`price` = 'NaN': must be finite"),
    ({"currency": "usd"}, r"`currency` = 'usd': must be a three-letter upper-case ISO 4217 currency code"),
    ({"currency": "US"}, r"`currency` = 'US': must be a three-letter"),
    ({"currency": None}, r"`currency`: must not be empty"),
    ({"asset": "NOPE"}, r"`asset` = 'NOPE': no asset has this"),
    ({"asset": "USD"}, r"`asset` = 'USD': is a cash asset, worth 1 USD by definition; it takes no price"),
    ({"time": "2026-06-01T00:00:00"}, r"`time` = '2026-06-01T00:00:00': has no UTC offset"),
    ({"time": "yesterday"}, r"`time` = 'yesterday': is not a time"),
]


@pytest.mark.parametrize(("change", "message"), BAD_PRICES, ids=[m for _, m in BAD_PRICES])
def test_bad_prices_are_refused(book: Seeded, change: dict, message: str) -> None:
    before = contents(book.store)
    with pytest.raises(msm.ValidationError, match=r"prices row 1: " + message):
        msm.import_prices(book.store, [{**PRICES[0], **change}])
    assert contents(book.store) == before


def test_a_price_twice_in_one_file_is_refused(book: Seeded) -> None:
    with pytest.raises(msm.ValidationError, match=r"row 2: `time` = '2026-06-01T00:00:00Z': duplicate price of 'BTC'"):
        msm.import_prices(book.store, [PRICES[0], PRICES[0]])


# -- FX rates ------------------------------------------------------------------------------------------------
FX = [{"base": "EUR", "quote": "USD", "time": T0, "rate": 1.08}]


def test_fx_import_and_upsert(book: Seeded) -> None:
    assert msm.import_fx_rates(book.store, FX).added == 1
    with pytest.raises(msm.ValidationError, match=r"a rate of this pair at this time is stored already"):
        msm.import_fx_rates(book.store, FX)
    assert msm.import_fx_rates(book.store, [{**FX[0], "rate": 1.1}], upsert=True).updated == 1
    assert book.store.query("SELECT rate FROM fx_rate")["rate"].to_list() == [1.1]


BAD_FX = [
    ({"rate": 0}, r"`rate` = '0': must be > 0"),
    ({"rate": "inf"}, r"`rate` = 'inf': must be finite"),
    ({"base": "eur"}, r"`base` = 'eur': must be a three-letter"),
    ({"quote": "EURO"}, r"`quote` = 'EURO': must be a three-letter"),
    ({"quote": "EUR"}, r"`quote` = 'EUR': must differ from base"),
    ({"time": "2026-06-01"}, r"`time` = '2026-06-01': has no UTC offset"),
]


@pytest.mark.parametrize(("change", "message"), BAD_FX, ids=[m for _, m in BAD_FX])
def test_bad_fx_rates_are_refused(book: Seeded, change: dict, message: str) -> None:
    before = contents(book.store)
    with pytest.raises(msm.ValidationError, match=r"fx rates row 1: " + message):
        msm.import_fx_rates(book.store, [{**FX[0], **change}])
    assert contents(book.store) == before


# -- reading market data --------------------------------------------------------------------------------------
def _market(store: msm.Store) -> None:
    msm.import_prices(store, [*PRICES, {**PRICES[0], "time": T1, "price": 61000, "source": "feed"}])
    msm.import_fx_rates(
        store, [*FX, {**FX[0], "time": T1, "rate": 1.1}, {"base": "GBP", "quote": "JPY", "time": T0, "rate": 190}]
    )


def test_read_prices_gives_the_latest_of_each_asset_or_every_one(book: Seeded) -> None:
    _market(book.store)
    latest = msm.read_prices(book.store)
    assert latest.columns == list(msm.services.marketdata.PRICE_LIST_COLUMNS)
    assert latest.select("asset", "price", "currency", "source").rows() == [
        ("BTC", 61000.0, "USD", "feed"),
        ("ETH", 3000.0, "EUR", None),
    ]
    assert latest["time"].dtype == pl.Datetime("us", "UTC")
    then = msm.read_prices(book.store, as_of=T0)
    assert then.select("asset", "price").rows() == [("BTC", 60000.0), ("ETH", 3000.0)]
    history = msm.read_prices(book.store, ["BTC"], history=True)
    assert history["price"].to_list() == [60000.0, 61000.0]
    uid = history["asset_uid"][0]
    assert msm.read_prices(book.store, [uid], history=True, as_of=T0)["price"].to_list() == [60000.0]
    assert msm.read_prices(book.store, as_of="2026-05-01T00:00:00Z").height == 0


def test_read_fx_rates_gives_the_latest_of_each_pair_or_every_one(book: Seeded) -> None:
    _market(book.store)
    latest = msm.read_fx_rates(book.store)
    assert latest.columns == list(msm.services.marketdata.FX_LIST_COLUMNS)
    assert latest.select("base", "quote", "rate").rows() == [("EUR", "USD", 1.1), ("GBP", "JPY", 190.0)]
    assert msm.read_fx_rates(book.store, ["USD"], history=True)["rate"].to_list() == [1.08, 1.1]
    assert msm.read_fx_rates(book.store, ["JPY", "CHF"], as_of=T0)["base"].to_list() == ["GBP"]


BAD_READS = [
    (lambda s: msm.read_prices(s, ["BTC", "NOPE", "GONE"]), msm.NotFoundError, r"'NOPE, GONE' does not exist"),
    (lambda s: msm.read_prices(s, as_of="2026-06-01T00:00:00"), msm.ValidationError, r"`as_of` .*no UTC offset"),
    (lambda s: msm.read_fx_rates(s, ["eur"]), msm.ValidationError, r"`currency` = 'eur': must be a three-letter"),
    (lambda s: msm.read_fx_rates(s, ["E1R"]), msm.ValidationError, r"`currency` = 'E1R': must be a three-letter"),
]


@pytest.mark.parametrize(("read", "error", "message"), BAD_READS, ids=[m for *_, m in BAD_READS])
def test_bad_market_data_reads_are_refused(book: Seeded, read: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        read(book.store)


def test_a_market_data_dry_run_checks_everything_and_writes_nothing(book: Seeded) -> None:
    _market(book.store)
    before = contents(book.store)
    plan = msm.import_prices(
        book.store, [{**PRICES[0], "price": 1}, {**PRICES[1], "time": T1}], upsert=True, dry_run=True
    )
    assert plan.dry_run and plan.to_dict() == {"added": 1, "updated": 1, "unchanged": 0}
    assert msm.import_fx_rates(book.store, FX, dry_run=True, upsert=True).to_dict()["unchanged"] == 1
    with pytest.raises(msm.ValidationError, match="a price of this asset at this time is stored already"):
        msm.import_prices(book.store, PRICES, dry_run=True)
    assert contents(book.store) == before


def test_deleting_prices_and_rates_keeps_them_in_the_audit_trail(book: Seeded) -> None:
    _market(book.store)
    assert msm.delete_prices(book.store, [{"asset": "BTC", "time": T1}], reason="wrong day") == 1
    assert msm.read_prices(book.store, ["BTC"], history=True)["price"].to_list() == [60000.0]
    keys = [{"base": "EUR", "quote": "USD", "time": t} for t in (T0, T1)]
    assert msm.delete_fx_rates(book.store, keys) == 2
    with pytest.raises(msm.ValidationError, match=r"fx rates delete: the columns do not fit; nothing was deleted"):
        msm.delete_fx_rates(book.store, FX)  # a delete names its keys only
    assert msm.read_fx_rates(book.store, ["EUR"]).height == 0
    events = msm.audit_events(book.store, action="delete")
    assert events["entity_type"].to_list() == ["fx_rate", "price"] and events["reason"].to_list() == [None, "wrong day"]
    assert msm.audit.event_labels(events).to_list() == ["2 deleted", "1 deleted"]
    (price,) = json.loads(events["before_json"][1])["rows"]
    assert price == {"asset": "BTC", "asset_uid": price["asset_uid"], "time": T1, "price": 61000.0,
                     "currency": "USD", "source": "feed"}  # fmt: skip


BAD_DELETES = [
    (
        {"asset": "BTC", "time": "2026-01-01T00:00:00Z"},
        r"row 2: `time` = '2026-01-01T00:00:00Z': no price of this asset",
    ),
    ({"asset": "NOPE", "time": T0}, r"row 2: `asset` = 'NOPE': no asset has this unique_identifier or uid"),
    ({"asset": "BTC", "time": "2026-06-01"}, r"row 2: `time` = '2026-06-01': has no UTC offset"),
]


@pytest.mark.parametrize(("row", "message"), BAD_DELETES, ids=[m for _, m in BAD_DELETES])
def test_a_bad_delete_deletes_nothing(book: Seeded, row: dict, message: str) -> None:
    _market(book.store)
    before = contents(book.store)
    with pytest.raises(
        msm.ValidationError, match=r"prices delete: 1 problem found; nothing was deleted:\n.*" + message
    ):
        msm.delete_prices(book.store, [{"asset": "ETH", "time": T0}, row])
    assert contents(book.store) == before


def test_a_delete_key_twice_or_a_rate_the_wrong_way_round_is_refused(book: Seeded) -> None:
    _market(book.store)
    with pytest.raises(
        msm.ValidationError, match=r"row 2: `time` = '2026-06-01T00:00:00Z': given twice; first at row 1"
    ):
        msm.delete_prices(book.store, [{"asset": "BTC", "time": T0}] * 2)
    with pytest.raises(msm.ValidationError, match=r"no rate of this pair is stored at this time"):
        msm.delete_fx_rates(book.store, [{"base": "USD", "quote": "EUR", "time": T0}])


def test_a_dry_run_checks_everything_and_writes_nothing(book: Seeded) -> None:
    msm.import_holdings(book.store, ROWS, at=T0)
    before = contents(book.store)
    plan = msm.import_holdings(book.store, ROWS[:1], at=T0, overwrite=True, dry_run=True)
    assert plan.dry_run and plan.rows == 1 and plan.to_dict()["replaced"] == 1
    with pytest.raises(msm.HoldingsSetExistsError):
        msm.import_holdings(book.store, ROWS[:1], at=T0, dry_run=True)
    with pytest.raises(msm.ValidationError, match="no asset has this"):
        msm.import_holdings(book.store, [{"account": "alpha", "asset": "NOPE", "quantity": 1}], at=T1, dry_run=True)
    assert contents(book.store) == before
