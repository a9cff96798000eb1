"""Valuation and drift: how far each account's holdings are from its targets, for any number of accounts at once.

:func:`compute_drift` takes frames (accounts, their holdings, their netted look-through targets,
assets, prices, FX rates) and one valuation time ``T``; it never touches a database, so the
service (:mod:`msm.services.drift`), a notebook and ``msm_spark`` compute the same thing. Every
step is a join or a group-by over all accounts together; no Python loop touches an account or a
row.

Valuation at ``T``: each asset's latest price at or before ``T`` (a cash asset is worth 1 of its
currency and needs none); each price converted to the account's base currency by the latest FX
rate at or before ``T``, direct (1 price currency = rate base) or inverse (1 base = rate price
currency), never triangulated. ``market_value`` = quantity x price x fx; NAV = the account's sum.
Every missing price or rate is reported at once (:class:`MissingMarketDataError`).

Drift: ``target_value`` is weight x NAV for weight targets, the notional (in base currency) for
constant-notional targets, quantity x price x fx for quantity targets; the residual (NAV - sum of
target values) is the target of the account's base-currency cash asset
(:class:`MissingCashAssetError` when it has none). ``current_weight`` = market value / NAV,
``target_weight`` = target value / NAV, ``drift_abs`` = current - target, ``drift_rel`` =
drift_abs / target_weight (null when the target is 0). Assets held but not targeted have target 0;
assets targeted but not held have quantity 0. A position is in ``breach`` when |drift_abs| >
``band_abs`` or |drift_rel| > ``band_rel`` (each only when given).

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 6, 1, tzinfo=timezone.utc)
>>> accounts = pl.DataFrame({"account_uid": ["a1"], "account": ["alpha"], "base_currency": ["USD"],
...     "holdings_time": [t], "position_set_time": [t], "weights_time": [t]})
>>> holdings = pl.DataFrame({"account_uid": ["a1", "a1"], "asset_uid": ["btc", "usd"], "quantity": [1.0, 40_000.0]})
>>> targets = pl.DataFrame({"account_uid": ["a1"], "asset_uid": ["btc"], "weight_notional_exposure": [0.5]})
>>> assets = pl.DataFrame({"asset_uid": ["btc", "usd"], "asset": ["BTC", "USD"],
...     "asset_type": ["crypto", "cash"], "currency": [None, "USD"]})
>>> prices = pl.DataFrame({"asset_uid": ["btc"], "time_index": [t], "price": [60_000.0], "currency": ["USD"]})
>>> result = compute_drift(accounts, holdings, targets, assets, prices, None, valuation_time=t)
>>> result.positions.select("asset", "market_value", "current_weight", "target_weight", "drift_abs", "breach")
shape: (2, 6)
┌───────┬──────────────┬────────────────┬───────────────┬───────────┬────────┐
│ asset ┆ market_value ┆ current_weight ┆ target_weight ┆ drift_abs ┆ breach │
│ ---   ┆ ---          ┆ ---            ┆ ---           ┆ ---       ┆ ---    │
│ str   ┆ f64          ┆ f64            ┆ f64           ┆ f64       ┆ bool   │
╞═══════╪══════════════╪════════════════╪═══════════════╪═══════════╪════════╡
│ BTC   ┆ 60000.0      ┆ 0.6            ┆ 0.5           ┆ 0.1       ┆ true   │
│ USD   ┆ 40000.0      ┆ 0.4            ┆ 0.5           ┆ -0.1      ┆ true   │
└───────┴──────────────┴────────────────┴───────────────┴───────────┴────────┘
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from msm.errors import MsmError, NotFoundError, RowError, ValidationError
from msm.timeutil import format_utc

__all__ = [
    "ACCOUNT_COLUMNS",
    "DEFAULT_BAND_ABS",
    "POSITION_COLUMNS",
    "ROW_COLUMNS",
    "STATUSES",
    "Drift",
    "MissingCashAssetError",
    "MissingMarketDataError",
    "account_status",
    "compute_drift",
]

#: The default absolute band: a position is in breach when its weight is more than 5 points off.
DEFAULT_BAND_ABS = 0.05
#: One row per (account, asset): the ``drift --format csv|parquet`` columns (``account`` first).
POSITION_COLUMNS = (
    "account",
    "asset",
    "asset_uid",
    "asset_type",
    "quantity",
    "price",
    "price_currency",
    "fx_rate",
    "market_value",
    "current_weight",
    "target_value",
    "target_weight",
    "drift_abs",
    "drift_rel",
    "breach",
)
#: The flat form (``drift --format csv|parquet``, the export): one row per (account, asset), ``account`` first.
ROW_COLUMNS = ("account", "base_currency", *POSITION_COLUMNS[1:])
#: One row per account asked.
ACCOUNT_COLUMNS = (
    "account",
    "account_uid",
    "base_currency",
    "status",
    "nav",
    "holdings_time",
    "position_set_time",
    "weights_time",
    "max_abs_drift",
    "n_breaches",
)
#: An account's ``status``: ``ok`` (drift computed), or why there is nothing to compare.
STATUSES = ("ok", "no holdings", "no targets", "no holdings and no targets", "holdings worth 0")
#: A residual within this fraction of NAV is float noise, not an unallocated part of the mandate.
RESIDUAL_TOLERANCE = 1e-9

_UTC = pl.Datetime("us", "UTC")
_EXPOSURES = ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
_IMPORT_HINT = "import prices with `msm prices import FILE` and FX rates with `msm fx import FILE`"


class MissingMarketDataError(NotFoundError):
    """Prices or FX rates that valuation needs and the store does not have, all of them at once.

    ``prices``: the assets (unique identifiers) with no price at or before the valuation time;
    ``rates``: the ``(from, to)`` currency pairs with no rate either way at or before it.
    """

    def __init__(self, at: datetime, prices: Sequence[str], rates: Sequence[tuple[str, str]]) -> None:
        self.at, self.prices, self.rates = at, list(prices), list(rates)
        self.entity, self.key, self.value, self.hint = "market data", "time", format_utc(at), _IMPORT_HINT
        when = format_utc(at)
        parts = []
        if self.prices:
            named = ", ".join(f"'{a}'" for a in self.prices[:50]) + (" ..." if len(self.prices) > 50 else "")
            parts.append(f"no price at or before {when} for {_count(len(self.prices), 'asset')}: {named}")
        if self.rates:
            named = ", ".join(f"{a}/{b} (nor {b}/{a})" for a, b in self.rates[:50])
            parts.append(f"no FX rate at or before {when} for {_count(len(self.rates), 'currency pair')}: {named}")
        MsmError.__init__(self, "cannot value the holdings: " + "; ".join(parts) + f"; {_IMPORT_HINT}")


class MissingCashAssetError(NotFoundError):
    """Accounts whose target leaves a residual but which have no cash asset in their base currency."""

    def __init__(self, missing: Sequence[tuple[str, str, float]]) -> None:
        self.missing = list(missing)  # (account, base currency, residual as a fraction of NAV)
        self.entity, self.key, self.value = "cash asset", "currency", sorted({c for _, c, _ in self.missing})
        self.hint = None
        listed = "; ".join(
            f"account '{a}' leaves {r:.4%} of its NAV unallocated and has no {c} cash asset"
            for a, c, r in self.missing[:20]
        )
        more = f" (and {len(self.missing) - 20} more accounts)" if len(self.missing) > 20 else ""
        adds = " / ".join(f"`msm assets add {c} --type cash --currency {c}`" for c in self.value)
        MsmError.__init__(
            self,
            f"{listed}{more}: the unallocated residual is the target of the base-currency cash asset; "
            f"add it with {adds}",
        )


@dataclass(frozen=True)
class Drift:
    """What :func:`compute_drift` found: one row per account (``accounts``), per account and asset (``positions``)."""

    valuation_time: datetime
    accounts: pl.DataFrame  # ACCOUNT_COLUMNS, sorted by account
    positions: pl.DataFrame  # account_uid, base_currency and POSITION_COLUMNS, sorted by account then asset
    band_abs: float | None = DEFAULT_BAND_ABS
    band_rel: float | None = None
    #: Compositions the look-through used whose weights do not sum to 1 (see :class:`msm.expansion.Expansion`).
    diagnostics: pl.DataFrame | None = None

    def rows(self) -> pl.DataFrame:
        """The flat form: :data:`ROW_COLUMNS`, one row per (account, asset)."""
        return self.positions.select(ROW_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """The ``msm drift --format json`` document."""
        by_account = {
            key[0]: frame.drop("account_uid", "account").to_dicts()
            for key, frame in self.positions.select("account_uid", *POSITION_COLUMNS).group_by(
                "account_uid", maintain_order=True
            )
        }
        return {
            "valuation_time": format_utc(self.valuation_time),
            "band_abs": self.band_abs,
            "band_rel": self.band_rel,
            "accounts": [
                {
                    "account": a["account"],
                    "status": a["status"],
                    "base_currency": a["base_currency"],
                    "nav": a["nav"],
                    "holdings_time": format_utc(a["holdings_time"]),
                    "position_set_time": format_utc(a["position_set_time"]),
                    "weights_time": format_utc(a["weights_time"]),
                    "max_abs_drift": a["max_abs_drift"],
                    "n_breaches": a["n_breaches"],
                    "positions": by_account.get(a["account_uid"], []),
                }
                for a in self.accounts.iter_rows(named=True)
            ],
        }


def compute_drift(
    accounts: pl.DataFrame,
    holdings: pl.DataFrame,
    targets: pl.DataFrame,
    assets: pl.DataFrame,
    prices: pl.DataFrame | None,
    fx_rates: pl.DataFrame | None,
    *,
    valuation_time: datetime,
    band_abs: float | None = DEFAULT_BAND_ABS,
    band_rel: float | None = None,
) -> Drift:
    """Value the holdings of every account at ``valuation_time`` and compare them with the targets.

    ``accounts``: ``account_uid``, ``account`` (unique identifier), ``base_currency``,
    ``holdings_time`` and ``position_set_time`` (null when the account has none), ``weights_time``.
    ``holdings``: ``account_uid``, ``asset_uid``, ``quantity``. ``targets``: the netted look-through
    per (``account_uid``, ``asset_uid``) with the three exposure columns (missing ones are null).
    ``assets``: ``asset_uid``, ``asset``, ``asset_type``, ``currency`` of every asset named, and the
    cash assets. ``prices``: ``asset_uid``, ``time_index``, ``price``, ``currency``; ``fx_rates``:
    ``time_index``, ``base_currency``, ``quote_currency``, ``rate`` (history is fine: rows after
    ``valuation_time`` are ignored; ``None`` is no rows).

    Accounts and assets are numbered once, in output order; every later join, group-by and sort
    runs on those integers, and text columns are gathered by number at the end.
    """
    book = _Book.of(accounts, assets, prices, fx_rates, valuation_time)
    rows = book.valued(_rows(book, holdings, targets))
    _raise_missing_market_data(book, rows, valuation_time)
    rows = rows.with_columns(
        pl.when(pl.col("quantity") == 0)
        .then(0.0)
        .otherwise(pl.col("quantity") * pl.col("__unit"))
        .alias("market_value")
    )
    book = book.with_navs(rows)
    nav = book.accounts["nav"].gather(rows["__acc"])
    rows = rows.with_columns(nav.alias("nav")).filter(pl.col("nav") > 0)
    rows = _drifted(_with_residual(book, _targeted(rows)), band_abs, band_rel)
    summary = rows.group_by("__acc").agg(
        pl.col("drift_abs").abs().max().alias("max_abs_drift"),
        pl.col("breach").sum().cast(pl.Int64).alias("n_breaches"),
    )
    summary_of = book.accounts.select("__acc").join(summary, on="__acc", how="left", maintain_order="left")
    accounts_out = book.accounts.with_columns(
        pl.when(pl.col("status") == "ok").then(pl.col("nav")).alias("nav"),
        summary_of["max_abs_drift"],
        summary_of["n_breaches"],
    ).select(ACCOUNT_COLUMNS)
    return Drift(valuation_time, accounts_out, book.positions(rows), band_abs, band_rel)


# -- steps ---------------------------------------------------------------------------------------------
def account_status() -> pl.Expr:
    """An account's status before valuation, from its ``holdings_time`` and ``position_set_time`` (null: none)."""
    held, targeted = pl.col("holdings_time").is_not_null(), pl.col("position_set_time").is_not_null()
    return (
        pl.when(held & targeted)
        .then(pl.lit("ok"))
        .when(targeted)
        .then(pl.lit("no holdings"))
        .when(held)
        .then(pl.lit("no targets"))
        .otherwise(pl.lit("no holdings and no targets"))
    )


@dataclass(frozen=True)
class _Book:
    """Accounts and assets numbered in output order (``__acc``, ``__ast``), with what valuation needs per number.

    ``accounts``: one row per account, row i is number i (status, base currency and its number
    ``__base``, later ``nav``, the base-currency cash asset ``__cash``). ``assets``: row j is asset
    number j (identifier, type, price, price currency). ``fx``: the rate from asset j's price
    currency to base currency b at row ``j * n_bases + b``.
    """

    accounts: pl.DataFrame
    assets: pl.DataFrame
    fx: pl.Series
    n_bases: int

    @classmethod
    def of(
        cls,
        accounts: pl.DataFrame,
        assets: pl.DataFrame,
        prices: pl.DataFrame | None,
        fx_rates: pl.DataFrame | None,
        at: datetime,
    ) -> _Book:
        accounts = _status(accounts).sort("account", "account_uid").with_row_index("__acc")
        bases = accounts.select(pl.col("base_currency").unique().sort()).with_row_index("__base")
        accounts = accounts.join(bases, on="base_currency", how="left", maintain_order="left")
        assets = _numbered_assets(assets, _latest_prices(prices, at))
        cash = (
            assets.filter(pl.col("__cash") & pl.col("currency").is_not_null())
            .sort(pl.col("asset") != pl.col("currency"), "asset")  # by convention the code itself (USD) first
            .group_by("currency", maintain_order=True)
            .first()
            .select(pl.col("currency").alias("base_currency"), pl.col("__ast").alias("__cash"))
        )
        accounts = accounts.join(cash, on="base_currency", how="left", maintain_order="left")
        grid = assets.select("__ast", "price_currency").join(bases, how="cross")
        rates = _latest_rates(fx_rates, at)
        grid = grid.join(
            rates, left_on=["price_currency", "base_currency"], right_on=["__from", "__to"], how="left"
        ).with_columns(
            pl.when(pl.col("price_currency") == pl.col("base_currency")).then(1.0).otherwise(pl.col("__fx")).alias("fx")
        )
        n_bases = max(bases.height, 1)
        fx = grid.sort(pl.col("__ast").cast(pl.UInt64) * n_bases + pl.col("__base"))["fx"]
        return cls(accounts, assets, fx, n_bases)

    @property
    def n_assets(self) -> int:
        """How many assets are numbered (the stride of a row key)."""
        return max(self.assets.height, 1)

    def valued(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows (``__acc``, ``__ast``) with ``price`` (1 for cash), ``price_currency``, ``fx_rate``, ``__unit``."""
        base = self.accounts["__base"].gather(rows["__acc"])
        fx = self.fx.gather(rows["__ast"].cast(pl.UInt64) * self.n_bases + base)
        price = self.assets["price"].gather(rows["__ast"])
        return rows.with_columns(
            price.alias("price"),
            self.assets["price_currency"].gather(rows["__ast"]).alias("price_currency"),
            fx.alias("fx_rate"),
            (price * fx).alias("__unit"),
        )

    def with_navs(self, rows: pl.DataFrame) -> _Book:
        """The accounts with their NAV, and ``holdings worth 0`` where it is not above 0."""
        navs = rows.group_by("__acc").agg(pl.col("market_value").sum().alias("nav"))
        accounts = self.accounts.join(navs, on="__acc", how="left", maintain_order="left").with_columns(
            pl.when((pl.col("status") == "ok") & (pl.col("nav").fill_null(0.0) <= 0))
            .then(pl.lit("holdings worth 0"))
            .otherwise(pl.col("status"))
            .alias("status")
        )
        return _Book(
            accounts.with_columns(pl.when(pl.col("status") == "ok").then(pl.col("nav")).alias("nav")),
            self.assets,
            self.fx,
            self.n_bases,
        )

    def positions(self, rows: pl.DataFrame) -> pl.DataFrame:
        """The output rows in (account, asset) order, text columns gathered by number."""
        rows = rows.sort("__key")
        acc, ast = rows["__acc"], rows["__ast"]
        return rows.select(
            self.accounts["account_uid"].gather(acc).alias("account_uid"),
            self.accounts["account"].gather(acc).alias("account"),
            self.accounts["base_currency"].gather(acc).alias("base_currency"),
            self.assets["asset"].gather(ast).alias("asset"),
            self.assets["asset_uid"].gather(ast).alias("asset_uid"),
            self.assets["asset_type"].gather(ast).alias("asset_type"),
            *POSITION_COLUMNS[4:],
        )


def _status(accounts: pl.DataFrame) -> pl.DataFrame:
    return accounts.select(
        pl.col("account_uid").cast(pl.String),
        pl.col("account").cast(pl.String),
        pl.col("base_currency").cast(pl.String),
        account_status().alias("status"),
        *[pl.col(c).cast(_UTC) for c in ("holdings_time", "position_set_time", "weights_time")],
    )


def _numbered_assets(assets: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """One row per asset, numbered by identifier (then uid), with its latest price (1 of its currency for cash)."""
    assets = (
        assets.select(
            pl.col("asset_uid").cast(pl.String),
            pl.col("asset").cast(pl.String),
            pl.col("asset_type").cast(pl.String),
            pl.col("currency").cast(pl.String),
        )
        .unique("asset_uid", keep="first", maintain_order=True)
        .sort("asset", "asset_uid", nulls_last=True)
        .with_row_index("__ast")
        .with_columns(
            (pl.col("asset_type").str.strip_chars().str.to_lowercase() == "cash").fill_null(False).alias("__cash")
        )
    )
    assets = assets.join(prices, on="asset_uid", how="left", maintain_order="left")
    return assets.with_columns(
        pl.when(pl.col("__cash")).then(1.0).otherwise(pl.col("__price")).alias("price"),
        pl.when(pl.col("__cash"))
        .then(pl.col("currency"))
        .otherwise(pl.col("__price_currency"))
        .alias("price_currency"),
    )


def _rows(book: _Book, holdings: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Held and targeted assets of the accounts that can be compared: one row per (account, asset) key."""
    ok = book.accounts.filter(pl.col("status") == "ok").select("account_uid", "__acc")
    numbers = book.assets.select("asset_uid", "__ast")
    key = pl.col("__acc").cast(pl.UInt64) * book.n_assets + pl.col("__ast")

    def keyed(frame: pl.DataFrame, values: list[pl.Expr], what: str) -> pl.DataFrame:
        frame = (
            frame.select(pl.col("account_uid").cast(pl.String), pl.col("asset_uid").cast(pl.String), *values)
            .join(ok, on="account_uid", how="inner")
            .join(numbers, on="asset_uid", how="left")
        )
        unknown = frame.filter(pl.col("__ast").is_null())["asset_uid"].unique().sort()
        if unknown.len():
            raise ValidationError(
                [
                    RowError("drift", None, "asset_uid", uid, f"is in the {what} but not in the assets")
                    for uid in unknown
                ]
            )
        return frame.select(key.alias("__key"), *[v.meta.output_name() for v in values])

    held = keyed(holdings, [pl.col("quantity").cast(pl.Float64)], "holdings")
    held = held.group_by("__key").agg(pl.col("quantity").sum())
    missing = {c: pl.lit(None, pl.Float64) for c in _EXPOSURES if c not in targets.columns}
    wanted = keyed(targets.with_columns(**missing), [pl.col(c).cast(pl.Float64) for c in _EXPOSURES], "targets")
    wanted = wanted.group_by("__key").agg(
        *[pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c) for c in _EXPOSURES]
    )
    rows = held.join(wanted, on="__key", how="full", coalesce=True).with_columns(pl.col("quantity").fill_null(0.0))
    return _split_key(rows, book.n_assets)


def _split_key(rows: pl.DataFrame, n_assets: int) -> pl.DataFrame:
    return rows.with_columns(
        (pl.col("__key") // n_assets).cast(pl.UInt32).alias("__acc"),
        (pl.col("__key") % n_assets).cast(pl.UInt32).alias("__ast"),
    )


def _latest_prices(prices: pl.DataFrame | None, at: datetime) -> pl.DataFrame:
    schema = {"asset_uid": pl.String, "__price": pl.Float64, "__price_currency": pl.String}
    if prices is None or prices.height == 0:
        return pl.DataFrame(schema=schema)
    return (
        prices.select(
            pl.col("asset_uid").cast(pl.String),
            pl.col("time_index").cast(_UTC),
            pl.col("price").cast(pl.Float64).alias("__price"),
            pl.col("currency").cast(pl.String).alias("__price_currency"),
        )
        .filter(pl.col("time_index") <= pl.lit(at, _UTC))
        .sort("time_index")
        .group_by("asset_uid")
        .agg(pl.col("__price").last(), pl.col("__price_currency").last())
    )


def _latest_rates(fx_rates: pl.DataFrame | None, at: datetime) -> pl.DataFrame:
    """The latest rate per ordered pair at or before ``at``, both ways: ``__from``, ``__to``, ``__fx``.

    A stored rate (1 base = rate quote) converts base to quote by ``rate`` and quote to base by
    ``1 / rate``; when both directions are stored, the later one is used (the direct one on a tie).
    """
    schema = {"__from": pl.String, "__to": pl.String, "__fx": pl.Float64}
    if fx_rates is None or fx_rates.height == 0:
        return pl.DataFrame(schema=schema)
    latest = (
        fx_rates.select(
            pl.col("time_index").cast(_UTC),
            pl.col("base_currency").cast(pl.String),
            pl.col("quote_currency").cast(pl.String),
            pl.col("rate").cast(pl.Float64),
        )
        .filter(pl.col("time_index") <= pl.lit(at, _UTC))
        .sort("time_index")
        .group_by("base_currency", "quote_currency")
        .agg(pl.col("rate").last(), pl.col("time_index").last())
    )
    direct = latest.select(
        pl.col("base_currency").alias("__from"),
        pl.col("quote_currency").alias("__to"),
        pl.col("rate").alias("__fx"),
        "time_index",
        pl.lit(0).alias("__inverse"),
    )
    inverse = latest.select(
        pl.col("quote_currency").alias("__from"),
        pl.col("base_currency").alias("__to"),
        (1.0 / pl.col("rate")).alias("__fx"),
        "time_index",
        pl.lit(1).alias("__inverse"),
    )
    return (
        pl.concat([direct, inverse])
        .sort("time_index", pl.col("__inverse"), descending=[True, False])
        .group_by("__from", "__to", maintain_order=True)
        .first()
        .select(list(schema))
    )


def _raise_missing_market_data(book: _Book, rows: pl.DataFrame, at: datetime) -> None:
    """Every price and rate a value depends on (a held quantity, a quantity target) must be there."""
    needed = (pl.col("quantity") != 0) | (pl.col("single_asset_quantity").fill_null(0.0) != 0)
    no_price = needed & pl.col("price").is_null()
    no_rate = needed & pl.col("price").is_not_null() & pl.col("fx_rate").is_null()
    if not rows.select((no_price | no_rate).any()).item():
        return
    unpriced = rows.filter(no_price)["__ast"].unique()
    named = book.assets.select(pl.coalesce("asset", "asset_uid")).to_series().gather(unpriced).sort().to_list()
    unconverted = rows.filter(no_rate)
    pairs = (
        unconverted.select("price_currency")
        .with_columns(book.accounts["base_currency"].gather(unconverted["__acc"]).alias("base_currency"))
        .unique()
        .sort("price_currency", "base_currency")
    )
    raise MissingMarketDataError(at, named, list(pairs.iter_rows()))


def _targeted(rows: pl.DataFrame) -> pl.DataFrame:
    """``target_value`` in base currency: weight x NAV + notional + quantity x price x fx."""
    weight, notional, units = (pl.col(c).fill_null(0.0) for c in _EXPOSURES)
    by_quantity = pl.when(units == 0).then(0.0).otherwise(units * pl.col("__unit"))
    return rows.with_columns((weight * pl.col("nav") + notional + by_quantity).alias("target_value"))


def _with_residual(book: _Book, rows: pl.DataFrame) -> pl.DataFrame:
    """Give each account's unallocated residual (NAV - sum of target values) to its base-currency cash asset."""
    allocated = rows.group_by("__acc").agg(pl.col("target_value").sum().alias("__allocated"))
    residuals = (
        book.accounts.filter(pl.col("nav") > 0)
        .join(allocated, on="__acc", how="left")
        .with_columns((pl.col("nav") - pl.col("__allocated").fill_null(0.0)).alias("__residual"))
    )
    material = pl.col("__residual").abs() > RESIDUAL_TOLERANCE * pl.col("nav")
    lacking = residuals.filter(material & pl.col("__cash").is_null()).sort("__acc")
    if lacking.height:
        shares = (lacking["__residual"] / lacking["nav"]).to_list()
        raise MissingCashAssetError(list(zip(lacking["account"], lacking["base_currency"], shares, strict=True)))
    cash_keys = residuals.filter(material).select(
        (pl.col("__acc").cast(pl.UInt64) * book.n_assets + pl.col("__cash")).alias("__key"),
        "nav",
    )
    added = cash_keys.filter(~pl.col("__key").is_in(rows["__key"].implode()))
    if added.height:
        added = book.valued(
            _split_key(added, book.n_assets).with_columns(
                pl.lit(0.0).alias("quantity"), *[pl.lit(None, pl.Float64).alias(c) for c in _EXPOSURES]
            )
        ).with_columns(pl.lit(0.0).alias("market_value"), pl.lit(0.0).alias("target_value"))
        rows = pl.concat([rows, added.select(rows.columns)])
    residual = book.accounts.join(
        residuals.select("__acc", "__residual"), on="__acc", how="left", maintain_order="left"
    )
    cash_of = book.accounts["__cash"].gather(rows["__acc"])
    extra = residual["__residual"].gather(rows["__acc"])
    is_cash = (rows["__ast"] == cash_of).fill_null(False)
    return rows.with_columns(
        pl.when(is_cash).then(pl.col("target_value") + extra).otherwise(pl.col("target_value")).alias("target_value")
    )


def _drifted(rows: pl.DataFrame, band_abs: float | None, band_rel: float | None) -> pl.DataFrame:
    current, target = pl.col("market_value") / pl.col("nav"), pl.col("target_value") / pl.col("nav")
    rows = rows.with_columns(current.alias("current_weight"), target.alias("target_weight")).with_columns(
        (pl.col("current_weight") - pl.col("target_weight")).alias("drift_abs")
    )
    rows = rows.with_columns(
        pl.when(pl.col("target_weight") != 0).then(pl.col("drift_abs") / pl.col("target_weight")).alias("drift_rel")
    )
    breach = pl.lit(False)
    if band_abs is not None:
        breach = breach | (pl.col("drift_abs").abs() > band_abs)
    if band_rel is not None:
        breach = breach | (pl.col("drift_rel").abs() > band_rel).fill_null(False)
    return rows.with_columns(breach.alias("breach"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
