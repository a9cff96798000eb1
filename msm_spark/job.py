"""The Spark job: read an ``msm export`` folder, expand, write ``target_exposure/`` and ``diagnostics/``.

``INPUT`` is a folder written by ``msm export --out INPUT``: ``target_positions/``
(hive-partitioned by ``snapshot_date``) and ``portfolio_weights/``. The job writes

- ``OUTPUT/target_exposure/snapshot_date=YYYY-MM-DD/*.parquet``: the rows and columns of
  ``msm export --expanded`` for the same weights time (with ``net``: one row per position set and
  asset, :data:`msm.expansion.NET_COLUMNS`, plus the set's ``account`` and ``allocation``);
- ``OUTPUT/diagnostics/*.parquet``: the compositions used whose weights do not sum to 1
  (:data:`msm.expansion.DIAGNOSTIC_COLUMNS`), one file, empty when there are none.

Times are written as Parquet ``TIMESTAMP(MICROS, UTC)``: polars, pyarrow and DuckDB read them back as
``timestamp[us, UTC]``, as they read the export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from msm.errors import ConflictError, MsmError
from msm.expansion import WeightsAsOf
from msm.services.export import PARTITION
from msm_spark.expansion import SparkExpansion, _to_micros, expand_targets_spark

__all__ = ["OUTPUT_DATASETS", "JobResult", "read_export", "run_expand"]

OUTPUT_DATASETS = ("target_exposure", "diagnostics")
_INPUT_DATASETS = ("target_positions", "portfolio_weights")


@dataclass(frozen=True)
class JobResult:
    """What :func:`run_expand` wrote: the output folder, the row count and the diagnostics."""

    output: str
    rows: int
    net: bool
    weights_as_of: str | datetime
    weights_time_bound: datetime | None
    #: Compositions not summing to 1: dicts of portfolio_uid, portfolio, weights_time (UTC), weight_sum.
    diagnostics: list[dict[str, Any]] = field(default_factory=list)


def read_export(spark: SparkSession, folder: str) -> tuple[DataFrame, DataFrame]:
    """``(target_positions, portfolio_weights)`` of an export folder, refusing a folder that is not one."""
    base = _strip(folder)
    if _is_local(base):
        missing = [name for name in _INPUT_DATASETS if not Path(_local(base), name).is_dir()]
        if missing:
            what = (
                "does not exist"
                if not Path(_local(base)).is_dir()
                else f"holds no {', '.join(n + '/' for n in missing)}"
            )
            raise MsmError(f"input folder {folder} {what}; give a folder written by `msm export --out DIR`")
    return spark.read.parquet(f"{base}/target_positions"), spark.read.parquet(f"{base}/portfolio_weights")


def run_expand(
    spark: SparkSession,
    input: str,
    output: str,
    *,
    weights_as_of: WeightsAsOf = "now",
    net: bool = False,
    overwrite: bool = False,
    now: datetime | None = None,
) -> JobResult:
    """Expand the export in ``input`` into ``output``; return what was written.

    Sets the session's time zone to UTC and its Parquet timestamps to microseconds (both runtime
    settings of the session). An existing ``target_exposure/`` or ``diagnostics/`` under ``output``
    is refused unless ``overwrite``. Every check runs before anything is written.
    """
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    out = _strip(output)
    if _is_local(out) and not overwrite:
        taken = [name for name in OUTPUT_DATASETS if Path(_local(out), name).exists()]
        if taken:
            raise ConflictError.occupied(output, taken, holds="a look-through", option="--output")
    targets, weights = read_export(spark, input)
    result = expand_targets_spark(targets, weights, weights_as_of=weights_as_of, net=net, now=now)
    mode = "overwrite" if overwrite else "errorifexists"
    if targets.isEmpty():  # every target row gives at least one row: no targets, no rows
        # One empty file that still carries the columns and their types, as `msm export` writes it.
        result.rows.coalesce(1).write.mode(mode).parquet(f"{out}/target_exposure")
        rows = 0
    else:
        rows = _write_rows(result, f"{out}/target_exposure", mode)
    diagnostics = _write_diagnostics(spark, result, f"{out}/diagnostics", mode)
    return JobResult(output, rows, net, result.weights_as_of, result.weights_time_bound, diagnostics)


def _write_rows(result: SparkExpansion, path: str, mode: str) -> int:
    """Write the rows partitioned by the UTC date of their snapshot; return how many (counted while writing)."""
    # The date from epoch seconds: no time zone setting takes part.
    day = F.date_format(F.date_from_unix_date(F.floor(F.unix_seconds("time_index") / 86_400).cast("int")), "yyyy-MM-dd")
    written = Observation("target_exposure")
    rows = result.rows.observe(written, F.count(F.lit(1)).alias("rows")).withColumn(PARTITION, day)
    # Rows of one date go to as few tasks as their size allows (adaptive execution splits a big day),
    # so each date folder holds a few files, not one per task.
    rows.hint("rebalance", PARTITION).write.mode(mode).partitionBy(PARTITION).parquet(path)
    return int(written.get["rows"])


def _write_diagnostics(spark: SparkSession, result: SparkExpansion, path: str, mode: str) -> list[dict[str, Any]]:
    """One small file from the diagnostics already on the driver (times through epoch microseconds)."""
    records = result.diagnostics.to_dicts()
    local = [(d["portfolio_uid"], d["portfolio"], _to_micros(d["weights_time"]), d["weight_sum"]) for d in records]
    frame = spark.createDataFrame(local, "portfolio_uid string, portfolio string, at long, weight_sum double")
    frame = frame.select("portfolio_uid", "portfolio", F.timestamp_micros("at").alias("weights_time"), "weight_sum")
    frame.coalesce(1).write.mode(mode).parquet(path)
    return records


def _strip(path: str) -> str:
    return str(path).rstrip("/") or "/"


def _is_local(path: str) -> bool:
    """A path on this machine's file system (no URI scheme, or ``file:``): checked before Spark starts work."""
    return "://" not in path or path.startswith("file:")


def _local(path: str) -> str:
    return os.path.expanduser(
        path[len("file://") :]
        if path.startswith("file://")
        else path[len("file:") :]
        if path.startswith("file:")
        else path
    )
