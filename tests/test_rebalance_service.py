"""Rebalancing from the store: ``msm.rebalance`` and ``msm rebalance`` on real DuckDB files.

A small book (alpha: BTC, ETH and cash against 50% BTC + 40% CRYPTO-EW; beta: ETH against 100%
BTC; idle: nothing) pins the service, the JSON document, the formats and the orders file; a
parametrized table pins the bad options; property tests run over random books written to
database files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from tests.cli_harness import Cli
from tests.conftest import Seeded
from tests.test_holdings import add_cash
from tests.test_rebalance import check_invariants

AT = "2026-06-05T00:00:00Z"
DAY = "2026-06-01T00:00:00Z"
ACCOUNT_KEYS = [
    "account",
    "base_currency",
    "nav",
    "cash_before",
    "cash_after",
    "leftover_cash",
    "turnover",
    "max_abs_drift_before",
    "max_abs_drift_after",
    "orders",
]
ORDER_KEYS = [
    "asset",
    "asset_uid",
    "side",
    "quantity",
    "price",
    "price_currency",
    "value",
    "current_weight",
    "target_weight",
    "projected_weight",
    "reason",
]


def _book(seeded: Seeded) -> None:
    store = seeded.store
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    add_cash(store, "USD")
    for name in ("beta", "idle"):
        msm.add_account(store, name, account_name=name.title())
    msm.add_allocation(store, "beta-main", account="beta", model="balanced")
    msm_portfolios.save_composition(store, "CRYPTO-EW", "2026-01-01T00:00:00Z", {"ETH": 0.5, "SOL": 0.5})
    rows = [
        {"asset": "BTC", "weight_notional_exposure": 0.5},
        {"portfolio": "CRYPTO-EW", "weight_notional_exposure": 0.4},
    ]
    msm.save_snapshot(store, "alpha", "2026-05-01T00:00:00Z", rows)
    msm.save_snapshot(store, "beta", "2026-05-01T00:00:00Z", [{"asset": "BTC", "weight_notional_exposure": 1.0}])
    prices = (("BTC", 60_000), ("ETH", 3_000), ("SOL", 150))
    msm.import_prices(store, [{"asset": a, "time": DAY, "price": p, "currency": "USD"} for a, p in prices])
    held = [
        ("alpha", "BTC", 1),
        ("alpha", "ETH", 10),
        ("alpha", "USD", 10_000),
        ("beta", "ETH", 2),
        ("beta", "USD", 500),
    ]
    msm.import_holdings(store, [{"account": a, "asset": s, "quantity": q} for a, s, q in held], at=DAY)


@pytest.fixture
def book(seeded_with) -> Seeded:
    """A fresh copy of the small book (alpha, beta, idle)."""
    return seeded_with("rebalance_book", _book)[0]


@pytest.fixture
def cli(book: Seeded, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The ``msm`` runner on the book's database."""
    monkeypatch.delenv("MSM_DB", raising=False)
    return Cli(book.store.path)


def _rebalance(book: Seeded, accounts: list[str] | None = None, **options: Any) -> msm.Rebalance:
    weights = msm_portfolios.duckdb_weights_source(book.store)
    return msm.rebalance(book.store, accounts, weights=weights, as_of=AT, **options)


def _orders(result: msm.Rebalance, account: str) -> dict[str, dict[str, Any]]:
    return {o["asset"]: o for o in result.orders.filter(pl.col("account") == account).iter_rows(named=True)}


# -- the service ---------------------------------------------------------------------------------------------------
def test_full_mode_on_the_store_reaches_the_looked_through_targets(book: Seeded) -> None:
    result = _rebalance(book, ["alpha"])
    orders = _orders(result, "alpha")
    assert set(orders) == {"BTC", "ETH", "SOL"}  # USD, the cash asset, is never an order
    assert (orders["BTC"]["side"], orders["BTC"]["value"]) == ("sell", pytest.approx(10_000))
    assert (orders["ETH"]["side"], orders["ETH"]["quantity"]) == ("sell", pytest.approx(10 / 3))
    assert (orders["SOL"]["side"], orders["SOL"]["quantity"]) == ("buy", pytest.approx(400 / 3))
    (account,) = result.accounts.to_dicts()
    assert account["status"] == "ok" and account["nav"] == 100_000.0
    assert account["cash_before"] == 10_000.0 and account["cash_after"] == pytest.approx(10_000.0)
    assert account["turnover"] == pytest.approx(0.4) and account["max_abs_drift_after"] == pytest.approx(0, abs=1e-12)


def test_all_accounts_lists_the_ones_without_a_proposal_and_naming_them_is_an_error(book: Seeded) -> None:
    result = _rebalance(book)
    assert result.accounts.select("account", "status").rows() == [
        ("alpha", "ok"),
        ("beta", "ok"),
        ("idle", "no holdings and no targets"),
    ]
    idle = result.to_dict()["accounts"][2]
    assert idle["orders"] == [] and idle["nav"] is None and idle["cash_after"] is None
    with pytest.raises(msm.ValidationError, match=r"`account` = 'idle': has neither holdings nor a target snapshot"):
        _rebalance(book, ["alpha", "idle"])


def test_the_json_document_has_exactly_the_contract_fields(book: Seeded) -> None:
    document = _rebalance(book, mode="bands").to_dict()
    assert list(document) == ["valuation_time", "mode", "accounts"]
    assert document["valuation_time"] == AT and document["mode"] == "bands"
    for account in document["accounts"]:
        assert list(account) == ACCOUNT_KEYS
        for order in account["orders"]:
            assert list(order) == ORDER_KEYS
    beta = document["accounts"][1]
    assert [(o["asset"], o["side"], o["reason"]) for o in beta["orders"]] == [
        ("BTC", "buy", "to_target"),
        ("ETH", "sell", "to_target"),
    ]


def test_it_only_reads_even_when_it_refuses(book: Seeded, db_contents) -> None:
    before = db_contents(book.store)
    _rebalance(book, mode="bands", to="edge", cash_flow=1_000.0, whole_units=True, min_trade=100.0)
    with pytest.raises(msm.ValidationError):
        _rebalance(book, cash_flow=-1e9)
    with pytest.raises(msm.ValidationError):
        _rebalance(book, cash_reserve=-0.5)
    assert db_contents(book.store) == before


def test_missing_prices_name_the_asset(book: Seeded) -> None:
    book.store.execute("DELETE FROM asset_price WHERE price = 150")  # SOL: targeted, not held; drift values it at 0
    with pytest.raises(msm.ValidationError, match=r"account 'alpha': `price` = 'SOL': has no price to value and trade"):
        _rebalance(book, ["alpha"])
    book.store.execute("DELETE FROM asset_price WHERE price = 3000")  # ETH is held: drift itself cannot value it
    with pytest.raises(msm.MissingMarketDataError, match=r"no price at or before 2026-06-05T00:00:00Z .*'ETH'"):
        _rebalance(book, ["alpha"])


def test_bad_options_are_refused_before_the_store_is_read(tmp_path: Path) -> None:
    missing = msm.Store(tmp_path / "absent.duckdb")  # never opened: the options are checked first
    with pytest.raises(msm.ValidationError, match=r"`min_trade` = -1.0"):
        msm.rebalance(missing, weights=pl.DataFrame(), min_trade=-1.0)
    assert not (tmp_path / "absent.duckdb").exists()


# -- the command ---------------------------------------------------------------------------------------------------
def test_the_table_says_the_units_and_the_currency(cli: Cli) -> None:
    out = cli.ok("rebalance", "--all", "--as-of", AT, warnings=True)
    assert "quantity (units)" in out.out and "value (USD)" in out.out
    assert "account 'alpha': NAV 100,000.00 USD; cash 10,000.00 -> 10,000.00 USD, leftover 0.00 USD" in out.out
    assert "account 'idle': no proposal (no holdings and no targets)" in out.out
    assert out.err == "note: account 'idle' has no proposal: no holdings and no targets\n"


def test_json_and_csv_are_byte_identical_across_runs(cli: Cli) -> None:
    args = ("rebalance", "alpha", "beta", "--as-of", AT, "--mode", "bands", "--to", "edge", "--whole-units")
    first = cli.ok(*args, "--format", "json").out
    assert cli.ok(*args, "--format", "json").out == first
    assert json.loads(first)["accounts"][0]["orders"][0]["asset"] == "BTC"
    csv_text = cli.ok(*args, "--format", "csv").out
    assert cli.ok(*args, "--format", "csv").out == csv_text
    assert csv_text.splitlines()[0] == "account," + ",".join(ORDER_KEYS)
    assert len(csv_text.splitlines()) == 1 + 3 + 2  # alpha's three assets, beta's two


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "parquet"])
def test_the_orders_file_lists_what_trades(cli: Cli, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"orders.{fmt}"
    out = cli.ok("rebalance", "--all", "--as-of", AT, "--format", fmt, "--out", str(target), warnings=True).out
    kind = {"table": "csv"}.get(fmt, fmt)
    units = "quantities in units, values in each account's base currency"
    assert out == f"wrote 5 orders of 3 accounts ({kind}; {units}) to {target}\n"
    if kind == "parquet":
        frame = pl.read_parquet(target)
    elif kind == "json":
        frame = pl.DataFrame(json.loads(target.read_text())["orders"])
    else:
        frame = pl.read_csv(target)
    assert frame.columns == ["account", "asset", "side", "quantity", "price", "currency", "value"]
    assert frame.select("account", "asset", "side").rows() == [
        ("alpha", "BTC", "sell"),
        ("alpha", "ETH", "sell"),
        ("alpha", "SOL", "buy"),
        ("beta", "BTC", "buy"),
        ("beta", "ETH", "sell"),
    ]


BAD_CLI = [
    (("--cash-reserve", "-0.1"), r"`cash_reserve` = -0.1: must be a fraction of NAV' from 0 to 1 \(--cash-reserve\)"),
    (("--min-trade", "-5"), r"`min_trade` = -5.0: must be a finite base-currency value >= 0 \(--min-trade\)"),
    (("--mode", "bands", "--band-abs", "0"), r"`band_abs` = 0.0: a band must be a finite number > 0"),
    (("--band-rel", "-0.2"), r"`band_rel` = -0.2: a band must be a finite number > 0 \(--band-rel\)"),
    (("--mode", "buy-only", "--cash-flow", "-100"), r"`cash_flow` = -100.0: a withdrawal \(< 0\) needs sells"),
    (("--to", "edge"), r"`to` = 'edge': only applies to mode bands"),
    (("--mode", "bands", "--band-abs", "none"), r"mode bands needs a band"),
    (("--cash-flow=-1e6",), r"account 'alpha' can raise at most 100,000.00 USD \(cash 10,000.00 \+ sells 90,000.00"),
    (("--cash-flow", "nan"), r"`cash_flow` = nan: must be a finite amount"),
]


@pytest.mark.parametrize(("options", "message"), BAD_CLI)
def test_bad_options_exit_1_naming_the_option(
    cli: Cli, book: Seeded, db_contents, options: tuple, message: str
) -> None:
    before = db_contents(book.store)
    cli.fails("rebalance", "alpha", "--as-of", AT, *options, match=message)
    assert db_contents(book.store) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("rebalance",), "name one or more accounts, or give --all"),
        (("rebalance", "alpha", "--all"), "name one or more accounts, or give --all"),
        (("rebalance", "--all", "--format", "parquet"), "--format parquet writes a file: give --out F"),
        (("rebalance", "--all", "--mode", "raise-cash"), "invalid choice: 'raise-cash'"),
        (("rebalance", "--all", "--min-trade", "lots"), "invalid float value: 'lots'"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    result = cli(*argv)
    assert result.code == 2 and message in result.err


# -- properties over random books in database files -------------------------------------------------------------
ASSETS = ("BTC", "ETH", "SOL")


@pytest.fixture(scope="module")
def empty_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the assets, a USD cash asset, CRYPTO-EW's composition and the allocation model."""
    path = tmp_path_factory.mktemp("rebalance-books") / "empty.duckdb"
    store = msm.Store(path)
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    for asset in ASSETS:
        msm.add_asset(store, asset, asset_type="crypto")
    add_cash(store, "USD")
    msm.add_portfolio(store, "CRYPTO-EW")
    msm.add_allocation_model(store, "model")
    msm_portfolios.save_composition(store, "CRYPTO-EW", "2026-01-01T00:00:00Z", {"ETH": 0.5, "SOL": 0.5})
    return path


@st.composite
def store_books(draw: st.DrawFn) -> dict[str, Any]:
    """Accounts with holdings (some zero), weight targets (maybe through CRYPTO-EW) summing to <= 1, and prices."""
    prices = {a: draw(st.sampled_from([0.5, 3.0, 150.0, 60_000.0])) for a in ASSETS}
    accounts = {}
    for i in range(draw(st.integers(1, 4))):
        held = {a: draw(st.sampled_from([0.0, 1.0, 2.5, 10.0, 400.0])) for a in (*ASSETS, "USD")}
        if not any(held.values()):
            held["USD"] = 100.0
        raw = {t: draw(st.integers(0, 5)) for t in (*ASSETS, "CRYPTO-EW")}
        share = draw(st.sampled_from([1.0, 0.9, 0.5])) / (sum(raw.values()) or 1)
        accounts[f"acc{i}"] = {"held": held, "targets": {t: w * share for t, w in raw.items() if w}}
    return {"prices": prices, "accounts": accounts}


def _write_book(path: Path, book: dict[str, Any]) -> msm.Store:
    store = msm.Store(path)
    for name, account in book["accounts"].items():
        msm.add_account(store, name, account_name=name)
        msm.add_allocation(store, f"{name}-main", account=name, model="model")
        rows = [
            {"portfolio" if t == "CRYPTO-EW" else "asset": t, "weight_notional_exposure": w}
            for t, w in account["targets"].items()
        ]
        if rows:
            msm.save_snapshot(store, name, "2026-05-01T00:00:00Z", rows)
    msm.import_prices(
        store, [{"asset": a, "time": DAY, "price": p, "currency": "USD"} for a, p in book["prices"].items()]
    )
    held = [
        {"account": name, "asset": a, "quantity": q}
        for name, account in book["accounts"].items()
        for a, q in account["held"].items()
    ]
    msm.import_holdings(store, held, at=DAY)
    return store


options_st = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["full", "bands", "buy-only"]),
        "cash_flow": st.sampled_from([0.0, 1_000.0, -10.0]),
        "cash_reserve": st.sampled_from([0.0, 0.05]),
        "min_trade": st.sampled_from([0.0, 20.0]),
        "whole_units": st.booleans(),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store_books(), options_st)
def test_proposals_from_random_books_keep_the_invariants(empty_book: Path, book: dict, options: dict) -> None:
    if options["mode"] == "buy-only":
        options["cash_flow"] = max(options["cash_flow"], 0.0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "book.duckdb"
        shutil.copyfile(empty_book, path)
        store = _write_book(path, book)
        weights = msm_portfolios.duckdb_weights_source(store)
        try:
            result = msm.rebalance(store, None, weights=weights, as_of=AT, **options)
        except msm.ValidationError as exc:  # only a withdrawal an account cannot raise may be refused
            assert options["cash_flow"] < 0 and all(e.field == "cash_flow" for e in exc.errors), exc
            return
        check_invariants(result.drift.positions, result.accounts, result.orders, options)
        if options["mode"] == "full" and not (
            options["whole_units"] or options["min_trade"] or options["cash_reserve"]
        ):
            projected = result.orders.select((pl.col("projected_weight") - pl.col("target_weight")).abs().max()).item()
            assert projected is None or projected <= 1e-9
        again = msm.rebalance(store, None, weights=weights, as_of=AT, **options)
        assert json.dumps(again.to_dict()) == json.dumps(result.to_dict())
