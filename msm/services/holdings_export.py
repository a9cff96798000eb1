"""The holdings and drift datasets of ``msm export`` (``account_holdings/``; with drift, ``drift/`` and its inputs).

``account_holdings/`` holds every stored holdings row with its account's and asset's unique
identifiers. With drift, ``drift/`` holds the drift of every active account at one valuation time
(:func:`msm.account_drift`, the flat form with ``valuation_time``), and beside it what another
engine needs to compute the same drift from the folder alone (``python -m msm_spark drift``):
``accounts/`` (with ``base_currency``), ``allocations/`` (with ``is_active``), ``asset_prices/``
and ``fx_rates/``. The export module writes them; this one only reads them from the store.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from msm.drift import ROW_COLUMNS
from msm.expansion import WeightsSource
from msm.services.drift import account_drift
from msm.store.connection import Store

__all__ = ["DRIFT_INPUTS", "HOLDINGS_EXPORT_COLUMNS", "drift_datasets", "holdings_rows"]

#: Columns of ``account_holdings/`` (hive-partitioned by the UTC date of ``time_index``).
HOLDINGS_EXPORT_COLUMNS = (
    "holdings_set_uid",
    "time_index",
    "account_uid",
    "account",
    "asset_uid",
    "asset",
    "quantity",
    "metadata_json",
    "source",
)
#: The datasets written beside ``drift/`` so that the folder alone holds every input of the drift.
DRIFT_INPUTS = {
    "accounts": "SELECT uid::VARCHAR AS uid, unique_identifier, account_name, base_currency, account_is_active "
    "FROM account ORDER BY unique_identifier",
    "allocations": "SELECT al.uid::VARCHAR AS uid, al.unique_identifier, al.account_uid::VARCHAR AS account_uid, "
    "a.unique_identifier AS account, al.is_active FROM account_target_allocation AS al "
    "JOIN account AS a ON a.uid = al.account_uid ORDER BY al.unique_identifier",
    "asset_prices": "SELECT p.time_index, p.asset_uid::VARCHAR AS asset_uid, a.unique_identifier AS asset, p.price, "
    "p.currency, p.source FROM asset_price AS p JOIN asset AS a ON a.uid = p.asset_uid "
    "ORDER BY a.unique_identifier, p.time_index",
    "fx_rates": "SELECT time_index, base_currency, quote_currency, rate, source FROM fx_rate "
    "ORDER BY base_currency, quote_currency, time_index",
}


def holdings_rows(store: Store) -> pl.DataFrame:
    """Every stored holdings row, as :data:`HOLDINGS_EXPORT_COLUMNS`, in (time, account, asset) order."""
    return store.query(
        """
        SELECT h.holdings_set_uid::VARCHAR AS holdings_set_uid, h.time_index, s.account_uid::VARCHAR AS account_uid,
               acc.unique_identifier AS account, h.asset_uid::VARCHAR AS asset_uid, a.unique_identifier AS asset,
               h.quantity, h.metadata_json::VARCHAR AS metadata_json, s.source
        FROM account_holdings AS h
        JOIN account_holdings_set AS s ON s.uid = h.holdings_set_uid
        JOIN account AS acc ON acc.uid = s.account_uid
        JOIN asset AS a ON a.uid = h.asset_uid
        ORDER BY h.time_index, acc.unique_identifier, a.unique_identifier
        """
    ).with_columns(pl.col("time_index").cast(pl.Datetime("us", "UTC")))


def drift_datasets(
    store: Store,
    weights: pl.DataFrame | WeightsSource,
    *,
    at: datetime,
    now: datetime | None = None,
    include_drafts: bool = False,
) -> dict[str, pl.DataFrame]:
    """``drift`` (every active account at ``at``, :data:`msm.drift.ROW_COLUMNS` and the time) and its inputs."""
    result = account_drift(store, None, weights=weights, as_of=at, now=now, include_drafts=include_drafts)
    drift = result.rows().with_columns(
        pl.lit(result.valuation_time).cast(pl.Datetime("us", "UTC")).alias("valuation_time")
    )
    datasets = {"drift": drift.select("valuation_time", *ROW_COLUMNS)}
    for name, sql in DRIFT_INPUTS.items():
        datasets[name] = store.query(sql)
    return datasets
