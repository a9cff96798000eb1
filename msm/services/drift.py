"""Drift from the store: every account's holdings valued and compared with its targets, in one pass.

:func:`account_drift` reads, for the accounts asked (or every active account), the latest holdings set and
the latest target snapshot at or before the valuation time, expands and nets the targets with
:func:`msm.expansion.expand_targets` (the portfolio weights come in as an argument, as for every
look-through: core ``msm`` never reads compositions itself), reads the latest prices and FX rates
at or before that time, and hands everything to :func:`msm.drift.compute_drift`. Each step reads
all accounts with one query; nothing loops over accounts.

An account named explicitly must have holdings and targets (and holdings worth more than 0);
otherwise the error says what is missing for every such account. Under "all accounts" such an
account is reported with its ``status`` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import duckdb
import polars as pl

from msm.contract import EXPOSURE_COLUMNS
from msm.drift import DEFAULT_BAND_ABS, Drift, account_status, compute_drift
from msm.errors import RowError, ValidationError
from msm.expansion import WeightsAsOf, WeightsSource, expand_targets, weights_time
from msm.services.rowfiles import lookup_keys
from msm.store.connection import Store, fetch
from msm.timeutil import format_utc, parse_utc, utc_now

__all__ = ["account_drift"]

_UTC = pl.Datetime("us", "UTC")
_WHY = {
    "no holdings": "has no holdings at or before {t}; import them with `msm holdings import FILE --at TS`",
    "no targets": "has no target snapshot at or before {t}; save one with `msm targets save ACCOUNT --at TS --file F`",
    "no holdings and no targets": "has neither holdings nor a target snapshot at or before {t}",
    "holdings worth 0": "holds nothing of value at {t} (every quantity is 0); drift needs a NAV above 0",
}


def account_drift(
    store: Store,
    accounts: Sequence[str | uuid.UUID] | None = None,
    *,
    weights: pl.DataFrame | WeightsSource,
    as_of: datetime | str | None = None,
    weights_as_of: WeightsAsOf | None = None,
    band_abs: float | None = DEFAULT_BAND_ABS,
    band_rel: float | None = None,
    now: datetime | None = None,
    include_drafts: bool = False,
) -> Drift:
    """Drift of ``accounts`` (unique identifiers or uids; ``None``: every active account) at ``as_of`` (default now).

    ``weights``: the composition history or a weights source (``msm_portfolios.duckdb_weights_source(store)``).
    ``weights_as_of``: which compositions portfolio targets use, ``"now"``, ``"position-set"`` or a
    time; default the valuation time. ``band_abs`` / ``band_rel``: the tolerance bands (``None``:
    not checked). Targets are published snapshots only, drafts too with ``include_drafts``.
    """
    now = parse_utc(now, field="now", entity="drift") if now is not None else utc_now()
    at = parse_utc(as_of, field="as_of", entity="drift") if as_of is not None else now
    _check_bands(band_abs, band_rel)
    bound, asked = weights_time(weights_as_of if weights_as_of is not None else at, now)
    with store.connect() as con:
        frame = _accounts(con, accounts)
        con.register("__drift_accounts", frame.select("account_uid").to_arrow())
        held = _latest_holdings(con, at)
        sets = _latest_position_sets(con, at, include_drafts=include_drafts)
        frame = frame.join(held.select("account_uid", "holdings_time").unique(), on="account_uid", how="left").join(
            sets.select("account_uid", "position_set_time"), on="account_uid", how="left"
        )
        if accounts is not None:
            _refuse_incomparable(frame, at)
        targets, diagnostics = _targets(con, sets, weights, asked, now)
        needed = pl.concat([held.select("asset_uid"), targets.select("asset_uid")]).unique()
        assets, prices, rates = _market(con, needed, at)
    frame = frame.with_columns(
        (pl.lit(bound, _UTC) if bound is not None else pl.col("position_set_time")).alias("weights_time")
    )
    result = compute_drift(
        frame, held, targets, assets, prices, rates, valuation_time=at, band_abs=band_abs, band_rel=band_rel
    )
    if accounts is not None:
        _refuse_incomparable(result.accounts, at)
    return replace(result, diagnostics=diagnostics)


def _check_bands(band_abs: float | None, band_rel: float | None) -> None:
    for name, band in (("band_abs", band_abs), ("band_rel", band_rel)):
        if band is not None and not (isinstance(band, (int, float)) and band >= 0 and band == band):
            raise ValidationError.single("drift", name, band, "must be a number >= 0 (a fraction: 0.05 = 5 points)")


def _accounts(con: duckdb.DuckDBPyConnection, accounts: Sequence[str | uuid.UUID] | None) -> pl.DataFrame:
    """``account_uid``, ``account``, ``base_currency`` of the accounts asked, or of every active account."""
    if accounts is None:
        return fetch(
            con,
            "SELECT uid::VARCHAR AS account_uid, unique_identifier AS account, base_currency "
            "FROM account WHERE account_is_active ORDER BY unique_identifier",
        )
    asked = pl.Series("account", [str(a).strip() for a in accounts], dtype=pl.String)
    found = lookup_keys(con, "account", asked, extra=("unique_identifier", "base_currency"))
    unknown = [a for a in dict.fromkeys(asked.to_list()) if a not in set(found["key"].to_list())]
    if unknown:
        raise ValidationError(
            [RowError("drift", None, "account", a, "no account has this unique_identifier or uid") for a in unknown],
            summary=f"drift: {len(unknown)} unknown account{'s' if len(unknown) != 1 else ''}",
        )
    return found.select(
        pl.col("uid").alias("account_uid"), pl.col("unique_identifier").alias("account"), "base_currency"
    ).unique("account_uid", maintain_order=True)


def _latest_holdings(con: duckdb.DuckDBPyConnection, at: datetime) -> pl.DataFrame:
    """Every row of each account's latest holdings set at or before ``at``."""
    return fetch(
        con,
        """
        WITH latest AS (
            SELECT s.account_uid, max(s.holdings_time) AS holdings_time
            FROM account_holdings_set AS s SEMI JOIN __drift_accounts AS a ON s.account_uid = a.account_uid::UUID
            WHERE s.holdings_time <= ?
            GROUP BY s.account_uid
        )
        SELECT l.account_uid::VARCHAR AS account_uid, l.holdings_time, h.asset_uid::VARCHAR AS asset_uid, h.quantity
        FROM latest AS l
        JOIN account_holdings_set AS s ON s.account_uid = l.account_uid AND s.holdings_time = l.holdings_time
        JOIN account_holdings AS h ON h.holdings_set_uid = s.uid AND h.time_index = s.holdings_time
        """,
        [at],
    )


def _latest_position_sets(con: duckdb.DuckDBPyConnection, at: datetime, *, include_drafts: bool) -> pl.DataFrame:
    """Each account's latest position set at or before ``at`` across its active allocations (as read_snapshot)."""
    return fetch(
        con,
        """
        SELECT al.account_uid::VARCHAR AS account_uid, p.uid::VARCHAR AS position_set_uid, p.position_set_time
        FROM position_set AS p
        JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
        SEMI JOIN __drift_accounts AS a ON al.account_uid = a.account_uid::UUID
        WHERE al.is_active AND p.position_set_time <= ? AND (? OR p.status = 'published')
        QUALIFY row_number() OVER (PARTITION BY al.account_uid ORDER BY p.position_set_time DESC, p.uid DESC) = 1
        """,
        [at, include_drafts],
    )


def _targets(
    con: duckdb.DuckDBPyConnection,
    sets: pl.DataFrame,
    weights: pl.DataFrame | WeightsSource,
    asked: object,
    now: datetime,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The netted look-through of every chosen position set, keyed by ``account_uid``, and its diagnostics.

    Each account has one chosen set, so the account's uid stands in for the set's as the expansion's
    grouping key: the netted rows come out keyed by account with no join back.
    """
    con.register("__drift_sets", sets.to_arrow())
    rows = fetch(
        con,
        """
        SELECT s.account_uid AS position_set_uid, t.time_index, t.target_type, t.target_uid::VARCHAR AS target_uid,
               t.asset_uid::VARCHAR AS asset_uid, t.portfolio_uid::VARCHAR AS portfolio_uid,
               t.weight_notional_exposure, t.constant_notional_exposure, t.single_asset_quantity,
               coalesce(a.unique_identifier, p.unique_identifier) AS unique_identifier
        FROM target_positions AS t
        JOIN __drift_sets AS s ON t.position_set_uid = s.position_set_uid::UUID AND t.time_index = s.position_set_time
        LEFT JOIN asset AS a ON a.uid = t.asset_uid
        LEFT JOIN portfolio AS p ON p.uid = t.portfolio_uid
        """,
    )
    if rows.height == 0:
        empty = pl.DataFrame(
            schema={"account_uid": pl.String, "asset_uid": pl.String, **dict.fromkeys(EXPOSURE_COLUMNS, pl.Float64)}
        )
        return empty, None
    expansion = expand_targets(rows, weights, weights_as_of=asked, net=True, now=now)  # type: ignore[arg-type]
    net = expansion.rows.rename({"position_set_uid": "account_uid"})
    return net.drop("time_index", "n_sources", "asset"), expansion.diagnostics


def _market(
    con: duckdb.DuckDBPyConnection, needed: pl.DataFrame, at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The assets named (and every cash asset), their latest prices at or before ``at``, the latest FX rates."""
    con.register("__drift_assets", needed.to_arrow())
    assets = fetch(
        con,
        """
        SELECT uid::VARCHAR AS asset_uid, unique_identifier AS asset, asset_type, currency FROM asset
        WHERE uid IN (SELECT asset_uid::UUID FROM __drift_assets) OR lower(trim(asset_type)) = 'cash'
        """,
    )
    prices = fetch(
        con,
        """
        SELECT p.asset_uid::VARCHAR AS asset_uid, max(p.time_index) AS time_index,
               arg_max(p.price, p.time_index) AS price, arg_max(p.currency, p.time_index) AS currency
        FROM asset_price AS p SEMI JOIN __drift_assets AS n ON p.asset_uid = n.asset_uid::UUID
        WHERE p.time_index <= ?
        GROUP BY p.asset_uid
        """,
        [at],
    )
    rates = fetch(
        con,
        """
        SELECT max(time_index) AS time_index, base_currency, quote_currency, arg_max(rate, time_index) AS rate
        FROM fx_rate WHERE time_index <= ? GROUP BY base_currency, quote_currency
        """,
        [at],
    )
    return assets, prices, rates


def _refuse_incomparable(frame: pl.DataFrame, at: datetime) -> None:
    """Accounts named explicitly must be comparable: one error naming every one that is not, and why."""
    if "status" not in frame.columns:
        frame = frame.with_columns(account_status().alias("status"))
    bad = frame.filter(pl.col("status") != "ok").sort("account")
    if bad.height:
        when = format_utc(at)
        raise ValidationError(
            [
                RowError("drift", None, "account", r["account"], _WHY[r["status"]].format(t=when))
                for r in bad.iter_rows(named=True)
            ],
            summary=f"drift at {when}: {bad.height} account{'s' if bad.height != 1 else ''} cannot be compared",
        )
