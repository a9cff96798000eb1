"""Rebalancing proposals from the store: drift of the accounts asked, then the orders that close it.

:func:`rebalance` checks the options first (a bad option is refused before the database is read),
computes drift with :func:`msm.account_drift` (one query per step for every account) and hands its
positions to :func:`msm.rebalancing.propose_rebalance`, which works on all accounts at once. It only
reads: a proposal is a report, nothing is written.

Accounts follow drift's rule: named explicitly, an account without holdings or targets (or whose
holdings are worth 0) is an error; under "all accounts" it is listed with its ``status`` and no
orders.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from msm.drift import DEFAULT_BAND_ABS, Drift
from msm.expansion import WeightsAsOf, WeightsSource
from msm.rebalancing import (
    ACCOUNT_COLUMNS,
    ORDER_COLUMNS,
    Mode,
    RebalanceOptions,
    To,
    prepare_positions,
    propose_prepared,
)
from msm.services.drift import account_drift
from msm.store.connection import Store
from msm.timeutil import format_utc

__all__ = ["DESK_COLUMNS", "Rebalance", "rebalance"]

#: The orders file a trading desk loads: one row per order that trades. ``currency`` is the price's
#: currency; ``value`` is in the account's base currency.
DESK_COLUMNS = ("account", "asset", "side", "quantity", "price", "currency", "value")


@dataclass(frozen=True, eq=False)
class Rebalance:
    """A proposal for the accounts asked: what :func:`rebalance` returns.

    ``accounts``: :data:`msm.rebalancing.ACCOUNT_COLUMNS` and ``status`` (drift's: ``ok``, or why
    there is nothing to rebalance, with null figures), one row per account asked, sorted.
    ``orders``: :data:`msm.rebalancing.ORDER_COLUMNS`, one row per account and non-cash asset.
    ``drift``: the drift the proposal starts from. Values in each account's base currency.
    """

    valuation_time: datetime
    options: RebalanceOptions
    accounts: pl.DataFrame
    orders: pl.DataFrame
    drift: Drift

    @property
    def mode(self) -> str:
        """The mode asked: ``full``, ``bands`` or ``buy-only``."""
        return self.options.mode

    @property
    def diagnostics(self) -> pl.DataFrame | None:
        """Compositions the look-through used whose weights do not sum to 1 (from drift), if known."""
        return getattr(self.drift, "diagnostics", None)

    def desk_orders(self) -> pl.DataFrame:
        """The orders that trade, as a trading desk loads them: :data:`DESK_COLUMNS`."""
        return self.orders.filter(pl.col("side") != "none").rename({"price_currency": "currency"}).select(DESK_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """The ``msm rebalance --format json`` document (accounts sorted, orders by asset)."""
        orders = {
            key[0]: frame.drop("account").to_dicts()
            for key, frame in self.orders.group_by("account", maintain_order=True)
        }
        return {
            "valuation_time": format_utc(self.valuation_time),
            "mode": self.mode,
            "accounts": [
                {**{c: a[c] for c in ACCOUNT_COLUMNS}, "orders": orders.get(a["account"], [])}
                for a in self.accounts.iter_rows(named=True)
            ],
        }


def rebalance(
    store: Store,
    accounts: Sequence[str | uuid.UUID] | None = None,
    *,
    weights: pl.DataFrame | WeightsSource,
    as_of: datetime | str | None = None,
    weights_as_of: WeightsAsOf | None = None,
    mode: Mode = "full",
    to: To = "target",
    band_abs: float | None = DEFAULT_BAND_ABS,
    band_rel: float | None = None,
    cash_flow: float = 0.0,
    cash_reserve: float = 0.0,
    min_trade: float = 0.0,
    whole_units: bool = False,
    now: datetime | None = None,
    include_drafts: bool = False,
) -> Rebalance:
    """Propose orders for ``accounts`` (unique identifiers or uids; ``None``: every active account).

    ``weights``, ``as_of``, ``weights_as_of``, ``band_abs`` and ``band_rel`` are those of
    :func:`msm.account_drift`; the other options those of :func:`msm.rebalancing.propose_rebalance`
    (``cash_flow`` and ``min_trade`` in each account's base currency). Reads only; drafts are
    targets only with ``include_drafts``.
    """
    options = RebalanceOptions(mode, to, band_abs, band_rel, cash_flow, cash_reserve, min_trade, whole_units).checked()
    drift = account_drift(
        store,
        accounts,
        weights=weights,
        as_of=as_of,
        weights_as_of=weights_as_of,
        band_abs=band_abs,
        band_rel=band_rel,
        now=now,
        include_drafts=include_drafts,
    )
    positions = drift.positions
    if "base_currency" not in positions.columns:
        per_account = drift.accounts.select("account_uid", "base_currency")
        positions = positions.join(per_account, on="account_uid", how="left", maintain_order="left")
    unsummed = positions.with_columns(nav=pl.lit(None, pl.Float64))  # drift's positions carry no NAV: _settled sums it
    proposal = propose_prepared(_settled(prepare_positions(unsummed)), options)
    listed = (
        drift.accounts.select("account", "base_currency", "status")
        .join(proposal.accounts.drop("base_currency"), on="account", how="left", maintain_order="left")
        .select(*ACCOUNT_COLUMNS, "status")
        .sort("account")
    )
    return Rebalance(drift.valuation_time, options, listed, proposal.orders.select(ORDER_COLUMNS), drift)


def _settled(frame: pl.DataFrame) -> pl.DataFrame:
    """Prepared drift positions with NAV, the cash residual and the weights summed in one fixed order.

    Drift sums each account's market values and target values over rows in the order its joins
    produce them, which varies from run to run, so the last bit of NAV and of the cash residual can
    differ between two runs on the same database. A proposal must be byte-identical, so NAV is
    summed here in (account, asset) order, the base-currency cash asset's target is again NAV minus
    the other targets (when the account has exactly one such asset; drift gives it the residual),
    and the weights and drift follow from those. The values are drift's to the last bit.
    """
    nav = pl.col("market_value").sum().over("_acct")
    others = pl.col("target_value").filter(~pl.col("_cash")).sum().over("_acct")
    single = pl.col("_cash").sum().over("_acct") == 1
    frame = frame.with_columns(
        nav.alias("nav"),
        pl.when(pl.col("_cash") & single).then(nav - others).otherwise(pl.col("target_value")).alias("target_value"),
    )
    frame = frame.with_columns(
        (pl.col("market_value") / pl.col("nav")).alias("current_weight"),
        (pl.col("target_value") / pl.col("nav")).alias("target_weight"),
    ).with_columns((pl.col("current_weight") - pl.col("target_weight")).alias("drift_abs"))
    drift_rel = pl.when(pl.col("target_weight") != 0).then(pl.col("drift_abs") / pl.col("target_weight"))
    return frame.with_columns(drift_rel.alias("drift_rel"))
