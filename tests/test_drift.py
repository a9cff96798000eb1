"""Valuation and drift: msm.drift.compute_drift on small frames, its invariants, and msm.account_drift on a store."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from msm.drift import ACCOUNT_COLUMNS, POSITION_COLUMNS, compute_drift
from tests.conftest import Seeded
from tests.test_holdings import add_cash

T = datetime(2026, 6, 1, tzinfo=UTC)
EARLIER = T - timedelta(days=1)
ASSETS = pl.DataFrame(
    {
        "asset_uid": ["btc", "eth", "sol", "xrp", "usd", "eur"],
        "asset": ["BTC", "ETH", "SOL", "XRP", "USD", "EUR"],
        "asset_type": ["crypto", "crypto", "crypto", "crypto", "cash", "Cash"],
        "currency": [None, None, None, None, "USD", "EUR"],  # XRP has no price
    }
)
PRICES = pl.DataFrame(
    {
        "asset_uid": ["btc", "btc", "eth", "sol"],
        "time_index": [EARLIER, T + timedelta(hours=1), T, T],  # the later BTC price is after T: ignored
        "price": [50_000.0, 99_999.0, 2_000.0, 100.0],
        "currency": ["USD", "USD", "EUR", "USD"],
    }
)
FX = pl.DataFrame(
    {"time_index": [EARLIER], "base_currency": ["EUR"], "quote_currency": ["USD"], "rate": [1.25]}
)  # 1 EUR = 1.25 USD


def _accounts(*names: str, base: str = "USD", holdings: bool = True, targets: bool = True) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_uid": [f"u-{n}" for n in names],
            "account": list(names),
            "base_currency": [base] * len(names),
            "holdings_time": [EARLIER if holdings else None] * len(names),
            "position_set_time": [EARLIER if targets else None] * len(names),
            "weights_time": [T] * len(names),
        },
        schema_overrides={c: pl.Datetime("us", "UTC") for c in ("holdings_time", "position_set_time", "weights_time")},
    )


def _frame(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=list(columns), orient="row")


def _holdings(*rows: tuple[str, str, float]) -> pl.DataFrame:
    return _frame(list(rows), ("account_uid", "asset_uid", "quantity"))


def _targets(*rows: tuple[str, str, float | None, float | None, float | None]) -> pl.DataFrame:
    columns = (
        "account_uid",
        "asset_uid",
        "weight_notional_exposure",
        "constant_notional_exposure",
        "single_asset_quantity",
    )
    return pl.DataFrame(
        list(rows), schema={c: pl.Float64 if i > 1 else pl.String for i, c in enumerate(columns)}, orient="row"
    )


def _drift(accounts, holdings, targets, **kw: Any) -> msm.Drift:
    return compute_drift(accounts, holdings, targets, ASSETS, PRICES, FX, valuation_time=T, **kw)


def _by_asset(result: msm.Drift, account: str = "a") -> dict[str, dict[str, Any]]:
    return {r["asset"]: r for r in result.positions.filter(pl.col("account") == account).iter_rows(named=True)}


# -- valuation ---------------------------------------------------------------------------------------------
def test_prices_are_the_latest_at_or_before_t_and_fx_converts_to_the_base_currency() -> None:
    result = _drift(
        _accounts("a"),
        _holdings(("u-a", "btc", 1.0), ("u-a", "eth", 10.0), ("u-a", "usd", 5_000.0)),
        _targets(("u-a", "btc", 0.5, None, None)),
    )
    rows = _by_asset(result)
    assert rows["BTC"]["price"] == 50_000.0 and rows["BTC"]["fx_rate"] == 1.0
    assert rows["ETH"]["price_currency"] == "EUR" and rows["ETH"]["fx_rate"] == 1.25
    assert rows["ETH"]["market_value"] == 25_000.0
    assert rows["USD"]["price"] == 1.0 and rows["USD"]["market_value"] == 5_000.0
    (account,) = result.accounts.to_dicts()
    assert account["nav"] == 80_000.0 and account["status"] == "ok"


def test_an_inverse_rate_is_used_when_only_it_exists_and_the_later_one_wins() -> None:
    eur_account = _accounts("a", base="EUR")
    holdings = _holdings(("u-a", "btc", 1.0), ("u-a", "eur", 0.0))
    targets = _targets(("u-a", "btc", 1.0, None, None))
    rows = _by_asset(_drift(eur_account, holdings, targets))  # EUR base, USD price: 1 EUR = 1.25 USD, inverted
    assert rows["BTC"]["fx_rate"] == pytest.approx(0.8) and rows["BTC"]["market_value"] == pytest.approx(40_000.0)
    later = pl.concat(
        [FX, pl.DataFrame({"time_index": [T], "base_currency": ["USD"], "quote_currency": ["EUR"], "rate": [0.5]})]
    )
    result = compute_drift(eur_account, holdings, targets, ASSETS, PRICES, later, valuation_time=T)
    assert _by_asset(result)["BTC"]["fx_rate"] == 0.5  # the direct USD/EUR rate is later than the EUR/USD one


def test_every_missing_price_and_rate_is_reported_at_once() -> None:
    accounts = pl.concat([_accounts("a"), _accounts("b", base="GBP")])
    holdings = _holdings(("u-a", "btc", 1.0), ("u-a", "xrp", 3.0), ("u-b", "eth", 1.0), ("u-b", "sol", 2.0))
    targets = _targets(("u-a", "btc", 1.0, None, None), ("u-b", "eth", 1.0, None, None))
    assets = pl.concat(
        [ASSETS, pl.DataFrame({"asset_uid": ["xrp"], "asset": ["XRP"], "asset_type": [None], "currency": [None]})]
    )
    with pytest.raises(msm.MissingMarketDataError) as info:
        compute_drift(accounts, holdings, targets, assets, PRICES, FX, valuation_time=T)
    message = str(info.value)
    assert "no price at or before 2026-06-01T00:00:00Z for 1 asset: 'XRP'" in message
    assert (
        "no FX rate at or before 2026-06-01T00:00:00Z for 2 currency pairs: EUR/GBP (nor GBP/EUR), USD/GBP" in message
    )
    assert "`msm prices import FILE`" in message and "`msm fx import FILE`" in message
    assert info.value.prices == ["XRP"] and info.value.rates == [("EUR", "GBP"), ("USD", "GBP")]


def test_a_quantity_target_needs_a_price_but_a_weight_target_does_not() -> None:
    holdings = _holdings(("u-a", "btc", 1.0))
    ok = _drift(_accounts("a"), holdings, _targets(("u-a", "btc", 0.5, None, None), ("u-a", "xrp", 0.5, None, None)))
    assert _by_asset(ok)["XRP"]["price"] is None and _by_asset(ok)["XRP"]["target_weight"] == 0.5
    with pytest.raises(msm.MissingMarketDataError, match="'XRP'"):
        _drift(_accounts("a"), holdings, _targets(("u-a", "btc", 0.5, None, None), ("u-a", "xrp", None, None, 2.0)))


# -- drift -----------------------------------------------------------------------------------------------
def test_weight_notional_and_quantity_targets_and_the_residual_in_cash() -> None:
    result = _drift(
        _accounts("a"),
        _holdings(("u-a", "btc", 1.0), ("u-a", "eth", 10.0), ("u-a", "usd", 5_000.0)),  # NAV 80,000 USD
        _targets(
            ("u-a", "btc", 0.5, None, None), ("u-a", "eth", None, 20_000.0, None), ("u-a", "sol", None, None, 40.0)
        ),
    )
    rows = _by_asset(result)
    assert rows["BTC"]["target_value"] == 40_000.0 and rows["BTC"]["target_weight"] == 0.5
    assert rows["ETH"]["target_value"] == 20_000.0  # a notional, in base currency
    assert rows["SOL"]["target_value"] == 4_000.0 and rows["SOL"]["quantity"] == 0.0  # targeted, not held
    assert rows["USD"]["target_value"] == pytest.approx(16_000.0)  # the residual: 80,000 - 64,000
    assert rows["BTC"]["drift_abs"] == pytest.approx(50_000 / 80_000 - 0.5)
    assert rows["BTC"]["drift_rel"] == pytest.approx((50_000 / 80_000 - 0.5) / 0.5)
    assert sum(r["target_weight"] for r in rows.values()) == pytest.approx(1.0)
    assert sum(r["current_weight"] for r in rows.values()) == pytest.approx(1.0)


def test_held_but_not_targeted_has_target_zero_and_no_relative_drift() -> None:
    result = _drift(
        _accounts("a"), _holdings(("u-a", "btc", 1.0), ("u-a", "sol", 100.0)), _targets(("u-a", "btc", 1.0, None, None))
    )
    sol = _by_asset(result)["SOL"]
    assert sol["target_value"] == 0.0 and sol["target_weight"] == 0.0 and sol["drift_rel"] is None
    assert sol["drift_abs"] == pytest.approx(10_000 / 60_000)


def test_no_cash_row_when_the_targets_allocate_the_whole_nav() -> None:
    result = _drift(_accounts("a"), _holdings(("u-a", "btc", 1.0)), _targets(("u-a", "btc", 1.0, None, None)))
    assert list(_by_asset(result)) == ["BTC"] and result.accounts["max_abs_drift"][0] == 0.0


def test_a_residual_without_a_base_currency_cash_asset_says_how_to_add_it() -> None:
    accounts = _accounts("a", "b", base="CHF")
    holdings = _holdings(("u-a", "btc", 1.0), ("u-b", "btc", 1.0))
    fx = pl.DataFrame({"time_index": [T], "base_currency": ["USD"], "quote_currency": ["CHF"], "rate": [0.9]})
    targets = _targets(("u-a", "btc", 0.6, None, None), ("u-b", "btc", 0.7, None, None))
    with pytest.raises(msm.MissingCashAssetError) as info:
        compute_drift(accounts, holdings, targets, ASSETS, PRICES, fx, valuation_time=T)
    message = str(info.value)
    assert "account 'a' leaves 40.0000% of its NAV unallocated and has no CHF cash asset" in message
    assert "account 'b' leaves 30.0000% of its NAV unallocated" in message
    assert "add it with `msm assets add CHF --type cash --currency CHF`" in message


@pytest.mark.parametrize(
    ("band_abs", "band_rel", "expected"),
    [
        (0.05, None, {"BTC": True, "ETH": False, "USD": True}),
        (None, 0.3, {"BTC": False, "ETH": False, "USD": True}),
        (None, 0.5, {"BTC": False, "ETH": False, "USD": False}),
        (None, None, {"BTC": False, "ETH": False, "USD": False}),
        (0.2, 0.3, {"BTC": False, "ETH": False, "USD": True}),
        (0.08, 0.3, {"BTC": True, "ETH": False, "USD": True}),
    ],
)
def test_bands(band_abs: float | None, band_rel: float | None, expected: dict[str, bool]) -> None:
    # NAV 100,000 USD. BTC 60% vs 50%: abs 0.10, rel 0.2; ETH 25% vs 25%;
    # USD 15% vs the 25% residual: abs -0.10, rel -0.4
    result = _drift(
        _accounts("a"),
        _holdings(("u-a", "btc", 1.2), ("u-a", "eth", 10.0), ("u-a", "usd", 15_000.0)),
        _targets(("u-a", "btc", 0.5, None, None), ("u-a", "eth", 0.25, None, None)),
        band_abs=band_abs,
        band_rel=band_rel,
    )
    rows = _by_asset(result)
    assert {a: r["breach"] for a, r in rows.items()} == expected
    assert result.accounts["n_breaches"][0] == sum(expected.values())


def test_accounts_without_holdings_or_targets_are_reported_with_their_status() -> None:
    accounts = pl.concat(
        [
            _accounts("a"),
            _accounts("b", holdings=False),
            _accounts("c", targets=False),
            _accounts("d", holdings=False, targets=False),
        ]
    )
    accounts = accounts.with_columns(
        pl.Series("holdings_time", [EARLIER, None, EARLIER, None], dtype=pl.Datetime("us", "UTC")),
        pl.Series("position_set_time", [EARLIER, EARLIER, None, None], dtype=pl.Datetime("us", "UTC")),
    )
    holdings = _holdings(("u-a", "btc", 1.0), ("u-c", "btc", 1.0))
    result = _drift(accounts, holdings, _targets(("u-a", "btc", 1.0, None, None), ("u-b", "btc", 1.0, None, None)))
    assert result.accounts.select("account", "status").rows() == [
        ("a", "ok"),
        ("b", "no holdings"),
        ("c", "no targets"),
        ("d", "no holdings and no targets"),
    ]
    assert result.positions["account"].unique().to_list() == ["a"]
    document = result.to_dict()
    assert [a["positions"] for a in document["accounts"][1:]] == [[], [], []]
    assert document["accounts"][1]["nav"] is None


def test_holdings_worth_nothing_are_reported() -> None:
    result = _drift(_accounts("a"), _holdings(("u-a", "btc", 0.0)), _targets(("u-a", "btc", 1.0, None, None)))
    assert result.accounts["status"].to_list() == ["holdings worth 0"] and result.positions.height == 0


def test_the_json_document_has_the_contract_fields() -> None:
    result = _drift(
        _accounts("b", "a"),
        _holdings(("u-a", "btc", 1.0), ("u-b", "btc", 2.0)),
        _targets(("u-a", "btc", 1.0, None, None), ("u-b", "btc", 1.0, None, None)),
    )
    document = result.to_dict()
    assert set(document) >= {"valuation_time", "accounts"} and document["valuation_time"] == "2026-06-01T00:00:00Z"
    assert [a["account"] for a in document["accounts"]] == ["a", "b"]
    account = document["accounts"][0]
    assert set(account) >= {
        "account",
        "base_currency",
        "nav",
        "holdings_time",
        "position_set_time",
        "weights_time",
        "max_abs_drift",
        "n_breaches",
        "positions",
    }
    assert list(account["positions"][0]) == list(POSITION_COLUMNS[1:])
    assert list(result.accounts.columns) == list(ACCOUNT_COLUMNS)


# -- invariants (hypothesis) ---------------------------------------------------------------------------------
_ASSET_UIDS = ["btc", "eth", "sol", "eur"]


@st.composite
def _books(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n = draw(st.integers(1, 4))
    names = [f"acc{i}" for i in range(n)]
    held, wanted = [], []
    for name in names:
        for asset in draw(st.lists(st.sampled_from(_ASSET_UIDS), min_size=1, max_size=4, unique=True)):
            held.append((f"u-{name}", asset, draw(st.floats(0.0, 1e6, allow_nan=False))))
        for asset in draw(st.lists(st.sampled_from([*_ASSET_UIDS, "usd"]), max_size=4, unique=True)):
            kind = draw(st.integers(0, 2))
            value = draw(st.floats(-0.5, 1.5, allow_nan=False)) * (1 if kind == 0 else 10_000)
            wanted.append((f"u-{name}", asset, *[value if k == kind else None for k in range(3)]))
        held.append((f"u-{name}", "usd", draw(st.floats(1.0, 1e6, allow_nan=False))))  # NAV > 0
    return _accounts(*names), _holdings(*held), _targets(*wanted) if wanted else _targets()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=_books(), band_abs=st.none() | st.floats(0, 0.5), band_rel=st.none() | st.floats(0, 2))
def test_drift_invariants(book: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], band_abs, band_rel) -> None:
    accounts, holdings, targets = book
    result = _drift(accounts, holdings, targets, band_abs=band_abs, band_rel=band_rel)
    positions = result.positions
    sums = positions.group_by("account").agg(pl.col("current_weight").sum(), pl.col("target_weight").sum())
    for current, target in sums.select("current_weight", "target_weight").rows():
        assert math.isclose(current, 1.0, abs_tol=1e-9) and math.isclose(target, 1.0, abs_tol=1e-6)
    for r in positions.iter_rows(named=True):
        assert r["drift_abs"] == r["current_weight"] - r["target_weight"]
        assert (r["drift_rel"] is None) == (r["target_weight"] == 0)
        expected = (band_abs is not None and abs(r["drift_abs"]) > band_abs) or (
            band_rel is not None and r["drift_rel"] is not None and abs(r["drift_rel"]) > band_rel
        )
        assert r["breach"] == expected
    held = holdings.group_by("account_uid", "asset_uid").agg(pl.col("quantity").sum())
    keyed = positions.join(held, on=["account_uid", "asset_uid"], how="left", suffix="_held")
    assert (keyed["quantity"] == keyed["quantity_held"].fill_null(0.0)).all()
    navs = dict(result.accounts.select("account", "nav").rows())
    for account, value in positions.group_by("account").agg(pl.col("market_value").sum()).rows():
        assert math.isclose(value, navs[account], rel_tol=1e-12)
    assert result.accounts["n_breaches"].to_list() == [
        positions.filter(pl.col("account") == a)["breach"].sum() for a in result.accounts["account"]
    ]


# -- the service, on a store ------------------------------------------------------------------------------------
def _store_book(seeded: Seeded) -> None:
    store = seeded.store
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    add_cash(store, "USD")
    msm.add_account(store, "beta", account_name="Beta")
    msm.add_allocation(store, "beta-main", account="beta", model="balanced")
    msm.add_account(store, "idle", account_name="Idle")
    msm_portfolios.save_composition(store, "CRYPTO-EW", "2026-01-01T00:00:00Z", {"ETH": 0.5, "SOL": 0.5})
    msm_portfolios.save_composition(store, "CRYPTO-EW", "2026-06-10T00:00:00Z", {"ETH": 1.0})
    rows = [
        {"asset": "BTC", "weight_notional_exposure": 0.5},
        {"portfolio": "CRYPTO-EW", "weight_notional_exposure": 0.4},
    ]
    msm.save_snapshot(store, "alpha", "2026-05-01T00:00:00Z", rows)
    msm.save_snapshot(store, "beta", "2026-05-01T00:00:00Z", [{"asset": "BTC", "weight_notional_exposure": 1.0}])
    day = "2026-06-01T00:00:00Z"
    msm.import_prices(
        store,
        [
            {"asset": a, "time": day, "price": p, "currency": "USD"}
            for a, p in (("BTC", 60_000), ("ETH", 3_000), ("SOL", 150))
        ],
    )
    msm.import_holdings(
        store,
        [
            {"account": "alpha", "asset": "BTC", "quantity": 1},
            {"account": "alpha", "asset": "ETH", "quantity": 10},
            {"account": "alpha", "asset": "USD", "quantity": 10_000},
        ],
        at=day,
    )


@pytest.fixture
def store_book(seeded_with) -> Seeded:
    return seeded_with("drift_book", _store_book)[0]


def test_account_drift_expands_portfolio_targets_with_weights_as_of_the_valuation_time(store_book: Seeded) -> None:
    weights = msm_portfolios.duckdb_weights_source(store_book.store)
    result = msm.account_drift(store_book.store, ["alpha"], weights=weights, as_of="2026-06-05T00:00:00Z")
    rows = _by_asset(result, "alpha")
    assert set(rows) == {"BTC", "ETH", "SOL", "USD"}
    assert rows["ETH"]["target_weight"] == pytest.approx(0.2) and rows["SOL"]["target_weight"] == pytest.approx(0.2)
    assert rows["USD"]["target_weight"] == pytest.approx(0.1)
    assert result.accounts["nav"][0] == 100_000.0
    later = msm.account_drift(store_book.store, ["alpha"], weights=weights, as_of="2026-06-15T00:00:00Z")
    assert _by_asset(later, "alpha")["ETH"]["target_weight"] == pytest.approx(0.4)  # the June 10 composition
    pinned = msm.account_drift(
        store_book.store, ["alpha"], weights=weights, as_of="2026-06-15T00:00:00Z", weights_as_of="position-set"
    )
    assert _by_asset(pinned, "alpha")["SOL"]["target_weight"] == pytest.approx(0.2)
    assert pinned.accounts["weights_time"][0] == datetime(2026, 5, 1, tzinfo=UTC)


def test_all_accounts_reports_the_incomparable_ones_but_naming_them_is_an_error(store_book: Seeded) -> None:
    weights = msm_portfolios.duckdb_weights_source(store_book.store)
    result = msm.account_drift(store_book.store, None, weights=weights, as_of="2026-06-05T00:00:00Z")
    assert result.accounts.select("account", "status").rows() == [
        ("alpha", "ok"),
        ("beta", "no holdings"),
        ("idle", "no holdings and no targets"),
    ]
    with pytest.raises(msm.ValidationError) as info:
        msm.account_drift(store_book.store, ["alpha", "beta", "idle"], weights=weights, as_of="2026-06-05T00:00:00Z")
    message = str(info.value)
    assert message.startswith("drift at 2026-06-05T00:00:00Z: 2 accounts cannot be compared")
    assert "`account` = 'beta': has no holdings at or before 2026-06-05T00:00:00Z; import them with" in message
    assert "`account` = 'idle': has neither holdings nor a target snapshot" in message
    with pytest.raises(msm.ValidationError, match=r"drift: 1 unknown account:\n  drift: `account` = 'ghost'"):
        msm.account_drift(store_book.store, ["alpha", "ghost"], weights=weights)


def test_account_drift_before_any_price_names_every_missing_one(store_book: Seeded) -> None:
    weights = msm_portfolios.duckdb_weights_source(store_book.store)
    store_book.store.execute("DELETE FROM asset_price WHERE price <> 60000")
    with pytest.raises(msm.MissingMarketDataError, match=r"for 1 asset: 'ETH'"):
        msm.account_drift(store_book.store, ["alpha"], weights=weights, as_of="2026-06-05T00:00:00Z")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"as_of": "2026-06-05T00:00:00"}, r"`as_of` = '2026-06-05T00:00:00': has no UTC offset"),
        ({"band_abs": -0.1}, r"`band_abs` = -0.1: must be a number >= 0"),
        ({"band_rel": float("nan")}, r"`band_rel` = nan: must be a number >= 0"),
        ({"weights_as_of": "whenever"}, r"`weights_as_of` = 'whenever'"),
    ],
)
def test_bad_drift_arguments(store_book: Seeded, kwargs: dict[str, Any], message: str) -> None:
    weights = msm_portfolios.duckdb_weights_source(store_book.store)
    with pytest.raises(msm.ValidationError, match=message):
        msm.account_drift(store_book.store, ["alpha"], weights=weights, **kwargs)
