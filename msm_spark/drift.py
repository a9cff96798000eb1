"""Drift on Spark: :func:`msm.drift.compute_drift` over the datasets of ``msm export --drift``.

``INPUT`` is a folder written by ``msm export --out INPUT --drift``: ``target_positions/``,
``portfolio_weights/``, ``assets/`` (with ``currency``), ``account_holdings/``, ``accounts/`` (with
``base_currency``), ``allocations/`` (with ``is_active``), ``asset_prices/`` and ``fx_rates/``. The
job writes ``OUTPUT/drift/snapshot_date=YYYY-MM-DD/*.parquet`` with the rows and columns of the
export's ``drift/`` (``valuation_time`` and :data:`msm.drift.ROW_COLUMNS`): the same semantics as
the core, step by step as DataFrame operations (windows for "latest at or before", equi-joins,
group-bys), the look-through by :func:`msm_spark.expansion.expand_targets_spark`:

- every active account with holdings and a target snapshot at or before the valuation time ``T``
  (the others have no rows, as under ``msm drift --all``); its latest holdings set and its latest
  position set across active allocations (ties: the larger position-set uid);
- each asset's latest price at or before ``T`` (a cash asset is worth 1 of its currency); each
  price currency converted to the base currency by the latest rate at or before ``T``, direct or
  inverse (the later one; the direct one on a tie), never triangulated;
- target values, the residual to the base-currency cash asset, weights, drift and bands.

Only small results reach the driver: the missing prices or rates, the accounts without a cash
asset (both raise the core's errors), the accounts whose holdings are worth nothing.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from msm.contract import EXPOSURE_COLUMNS
from msm.drift import (
    DEFAULT_BAND_ABS,
    RESIDUAL_TOLERANCE,
    ROW_COLUMNS,
    MissingCashAssetError,
    MissingMarketDataError,
)
from msm.errors import ConflictError, MsmError
from msm.expansion import WeightsAsOf
from msm.services.export import PARTITION
from msm_spark.expansion import _timestamp, expand_targets_spark
from msm_spark.job import _is_local, _local, _strip

__all__ = ["DRIFT_INPUTS", "run_drift"]

#: The datasets of an ``msm export --drift`` folder the job reads.
DRIFT_INPUTS = (
    "target_positions",
    "portfolio_weights",
    "assets",
    "account_holdings",
    "accounts",
    "allocations",
    "asset_prices",
    "fx_rates",
)


def _read(spark: SparkSession, folder: str) -> dict[str, DataFrame]:
    base = _strip(folder)
    if _is_local(base):
        missing = [name for name in DRIFT_INPUTS if not Path(_local(base), name).is_dir()]
        if missing:
            raise MsmError(
                f"input folder {folder} holds no {', '.join(n + '/' for n in missing)}; "
                "give a folder written by `msm export --out DIR --drift`"
            )
    return {name: spark.read.parquet(f"{base}/{name}") for name in DRIFT_INPUTS}


def run_drift(
    spark: SparkSession,
    input: str,
    output: str,
    *,
    as_of: datetime,
    weights_as_of: WeightsAsOf | None = None,
    band_abs: float | None = DEFAULT_BAND_ABS,
    band_rel: float | None = None,
    overwrite: bool = False,
    now: datetime | None = None,
) -> int:
    """Compute the drift of the export in ``input`` at ``as_of`` into ``output/drift``; return the rows written."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    data = _read(spark, input)
    out = _strip(output)
    if _is_local(out) and not overwrite and Path(_local(out), "drift").exists():
        raise ConflictError(f"{output} already holds drift/; choose another --output or pass --overwrite to replace it")
    t = _timestamp(as_of)
    accounts = (
        data["accounts"]
        .filter("account_is_active")
        .select(F.col("uid").alias("account_uid"), F.col("unique_identifier").alias("account"), "base_currency")
    )
    held = _latest_holdings(data["account_holdings"], accounts, t)
    sets = _latest_sets(data["target_positions"], data["allocations"], accounts, t)
    ok = (
        accounts.join(held.select("account_uid").distinct(), "account_uid", "left_semi")
        .join(sets.select("account_uid").distinct(), "account_uid", "left_semi")
        .cache()
    )
    targets = _targets(data["target_positions"], data["portfolio_weights"], sets, weights_as_of or as_of, now)
    rows = _joined(held.join(ok.select("account_uid"), "account_uid", "left_semi"), targets, ok)
    rows = _valued(rows, data["assets"], data["asset_prices"], data["fx_rates"], t).cache()
    _raise_missing(rows, as_of)
    rows = _drift(_residual(_with_nav(rows), data["assets"]), band_abs, band_rel)
    result = rows.select(t.alias("valuation_time"), *ROW_COLUMNS).cache()
    written = result.count()
    mode = "overwrite" if overwrite else "errorifexists"
    if written == 0:  # one empty file that still carries the columns, as `msm export` writes it
        result.coalesce(1).write.mode(mode).parquet(f"{out}/drift")
    else:
        day = F.date_format(F.col("valuation_time"), "yyyy-MM-dd")
        result.withColumn(PARTITION, day).coalesce(1).write.mode(mode).partitionBy(PARTITION).parquet(f"{out}/drift")
    return written


def _latest_holdings(holdings: DataFrame, accounts: DataFrame, t: Column) -> DataFrame:
    """The rows of each active account's latest holdings set at or before ``t``."""
    rows = holdings.filter(F.col("time_index") <= t).join(accounts.select("account_uid"), "account_uid", "left_semi")
    latest = rows.groupBy("account_uid").agg(F.max("time_index").alias("time_index"))
    return rows.join(latest, ["account_uid", "time_index"], "left_semi").select("account_uid", "asset_uid", "quantity")


def _latest_sets(targets: DataFrame, allocations: DataFrame, accounts: DataFrame, t: Column) -> DataFrame:
    """``(account_uid, position_set_uid)``: each account's latest set at or before ``t`` across active allocations."""
    active = allocations.filter("is_active").select(F.col("unique_identifier").alias("allocation"), "account_uid")
    sets = (
        targets.filter(F.col("time_index") <= t)
        .select("position_set_uid", "time_index", "allocation")
        .distinct()
        .join(active, "allocation", "inner")
        .join(accounts.select("account_uid"), "account_uid", "left_semi")
    )
    order = Window.partitionBy("account_uid").orderBy(F.col("time_index").desc(), F.col("position_set_uid").desc())
    return (
        sets.withColumn("__n", F.row_number().over(order)).filter("__n = 1").select("account_uid", "position_set_uid")
    )


def _targets(
    targets: DataFrame, weights: DataFrame, sets: DataFrame, weights_as_of: Any, now: datetime | None
) -> DataFrame:
    """The netted look-through per (account_uid, asset_uid); the account stands in for its one set, as in the core."""
    chosen = targets.join(sets, "position_set_uid", "inner").drop("position_set_uid")
    chosen = chosen.withColumnRenamed("account_uid", "position_set_uid")
    net = expand_targets_spark(chosen, weights, weights_as_of=weights_as_of, net=True, now=now).rows
    return net.select(F.col("position_set_uid").alias("account_uid"), "asset_uid", *EXPOSURE_COLUMNS)


def _joined(held: DataFrame, targets: DataFrame, ok: DataFrame) -> DataFrame:
    quantities = held.groupBy("account_uid", "asset_uid").agg(F.sum("quantity").alias("quantity"))
    wanted = targets.join(ok.select("account_uid"), "account_uid", "left_semi")
    return (
        quantities.join(wanted, ["account_uid", "asset_uid"], "full")
        .withColumn("quantity", F.coalesce("quantity", F.lit(0.0)))
        .join(ok, "account_uid", "inner")
    )


def _is_cash(column: str = "asset_type") -> Column:
    return F.coalesce(F.lower(F.trim(F.col(column))) == "cash", F.lit(False))


def _valued(rows: DataFrame, assets: DataFrame, prices: DataFrame, fx: DataFrame, t: Column) -> DataFrame:
    """Price (1 for cash), price currency, the rate to the base currency and ``__unit`` = price x fx."""
    info = assets.select(
        F.col("uid").alias("asset_uid"), F.col("unique_identifier").alias("asset"), "asset_type", "currency"
    )
    latest = (
        prices.filter(F.col("time_index") <= t)
        .groupBy("asset_uid")
        .agg(F.max_by("price", "time_index").alias("__price"), F.max_by("currency", "time_index").alias("__pc"))
    )
    rows = rows.join(info, "asset_uid", "left").join(latest, "asset_uid", "left")
    cash = _is_cash()
    rows = rows.withColumn("price", F.when(cash, F.lit(1.0)).otherwise(F.col("__price"))).withColumn(
        "price_currency", F.when(cash, F.col("currency")).otherwise(F.col("__pc"))
    )
    rows = rows.join(
        _rates(fx, t),
        (rows.price_currency == F.col("__from")) & (rows.base_currency == F.col("__to")),
        "left",
    )
    rows = rows.withColumn(
        "fx_rate", F.when(F.col("price_currency") == F.col("base_currency"), F.lit(1.0)).otherwise(F.col("__fx"))
    )
    return rows.withColumn("__unit", F.col("price") * F.col("fx_rate")).drop("__from", "__to", "__fx")


def _rates(fx: DataFrame, t: Column) -> DataFrame:
    """The latest rate per ordered pair at or before ``t``, both ways (the later; the direct one on a tie)."""
    latest = (
        fx.filter(F.col("time_index") <= t)
        .groupBy("base_currency", "quote_currency")
        .agg(F.max_by("rate", "time_index").alias("rate"), F.max("time_index").alias("at"))
    )
    both = latest.select(
        F.col("base_currency").alias("__from"),
        F.col("quote_currency").alias("__to"),
        F.col("rate").alias("__fx"),
        "at",
        F.lit(0).alias("__inverse"),
    ).unionByName(
        latest.select(
            F.col("quote_currency").alias("__from"),
            F.col("base_currency").alias("__to"),
            (F.lit(1.0) / F.col("rate")).alias("__fx"),
            "at",
            F.lit(1).alias("__inverse"),
        )
    )
    order = Window.partitionBy("__from", "__to").orderBy(F.col("at").desc(), F.col("__inverse"))
    return both.withColumn("__n", F.row_number().over(order)).filter("__n = 1").select("__from", "__to", "__fx")


def _raise_missing(rows: DataFrame, at: datetime) -> None:
    needed = (F.col("quantity") != 0) | (F.coalesce(F.col("single_asset_quantity"), F.lit(0.0)) != 0)
    prices = [
        r["a"]
        for r in rows.filter(needed & F.col("price").isNull())
        .select(F.coalesce("asset", "asset_uid").alias("a"))
        .distinct()
        .orderBy("a")
        .collect()
    ]
    pairs = [
        (r["price_currency"], r["base_currency"])
        for r in rows.filter(needed & F.col("price").isNotNull() & F.col("fx_rate").isNull())
        .select("price_currency", "base_currency")
        .distinct()
        .orderBy("price_currency", "base_currency")
        .collect()
    ]
    if prices or pairs:
        raise MissingMarketDataError(at, prices, pairs)


def _with_nav(rows: DataFrame) -> DataFrame:
    """``market_value``, the account's ``nav``, and only accounts whose holdings are worth more than 0."""
    value = F.when(F.col("quantity") == 0, F.lit(0.0)).otherwise(F.col("quantity") * F.col("__unit"))
    rows = rows.withColumn("market_value", value)
    rows = rows.withColumn("nav", F.sum("market_value").over(Window.partitionBy("account_uid"))).filter("nav > 0")
    weight, notional, units = (F.coalesce(F.col(c), F.lit(0.0)) for c in EXPOSURE_COLUMNS)
    by_quantity = F.when(units == 0, F.lit(0.0)).otherwise(units * F.col("__unit"))
    return rows.withColumn("target_value", weight * F.col("nav") + notional + by_quantity)


def _residual(rows: DataFrame, assets: DataFrame) -> DataFrame:
    """The residual (NAV - sum of target values) added to each account's base-currency cash asset."""
    cash = assets.filter(_is_cash() & F.col("currency").isNotNull())
    first = Window.partitionBy("currency").orderBy(
        (F.col("unique_identifier") != F.col("currency")).cast("int"), "unique_identifier"
    )
    cash = (
        cash.withColumn("__n", F.row_number().over(first))
        .filter("__n = 1")
        .select(
            F.col("currency").alias("base_currency"),
            F.col("uid").alias("__cash"),
            F.col("unique_identifier").alias("__cash_asset"),
            F.col("asset_type").alias("__cash_type"),
        )
    )
    per_account = (
        rows.groupBy("account_uid", "account", "base_currency", "nav")
        .agg((F.first("nav") - F.sum("target_value")).alias("__residual"))
        .join(cash, "base_currency", "left")
        .cache()
    )
    material = F.abs(F.col("__residual")) > F.lit(RESIDUAL_TOLERANCE) * F.col("nav")
    lacking = per_account.filter(material & F.col("__cash").isNull()).orderBy("account").collect()
    if lacking:
        raise MissingCashAssetError([(r["account"], r["base_currency"], r["__residual"] / r["nav"]) for r in lacking])
    present = rows.select("account_uid", F.col("asset_uid").alias("__cash"))
    added = (
        per_account.filter(material)
        .join(present, ["account_uid", "__cash"], "left_anti")
        .select(
            "account_uid",
            "account",
            "base_currency",
            "nav",
            F.col("__cash").alias("asset_uid"),
            F.col("__cash_asset").alias("asset"),
            F.col("__cash_type").alias("asset_type"),
            F.lit(0.0).alias("quantity"),
            F.lit(1.0).alias("price"),
            F.col("base_currency").alias("price_currency"),
            F.lit(1.0).alias("fx_rate"),
            F.lit(0.0).alias("market_value"),
            F.lit(0.0).alias("target_value"),
        )
    )
    columns = added.columns
    rows = rows.select(*columns).unionByName(added)
    # A residual within the tolerance is float noise of the sums: nothing is unallocated.
    residual = per_account.select(
        "account_uid", "__cash", F.when(material, F.col("__residual")).otherwise(F.lit(0.0)).alias("__residual")
    )
    return rows.join(residual, "account_uid", "left").withColumn(
        "target_value",
        F.when(F.col("asset_uid") == F.col("__cash"), F.col("target_value") + F.col("__residual")).otherwise(
            F.col("target_value")
        ),
    )


def _drift(rows: DataFrame, band_abs: float | None, band_rel: float | None) -> DataFrame:
    rows = (
        rows.withColumn("current_weight", F.col("market_value") / F.col("nav"))
        .withColumn("target_weight", F.col("target_value") / F.col("nav"))
        .withColumn("drift_abs", F.col("current_weight") - F.col("target_weight"))
    )
    rows = rows.withColumn(
        "drift_rel", F.when(F.col("target_weight") != 0, F.col("drift_abs") / F.col("target_weight"))
    )
    breach = F.lit(False)
    if band_abs is not None:
        breach = breach | (F.abs(F.col("drift_abs")) > F.lit(band_abs))
    if band_rel is not None:
        breach = breach | F.coalesce(F.abs(F.col("drift_rel")) > F.lit(band_rel), F.lit(False))
    return rows.withColumn("breach", breach)
