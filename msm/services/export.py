"""Parquet export of snapshots: hive-partitioned datasets any engine reads natively.

``OUT/target_positions/snapshot_date=YYYY-MM-DD/*.parquet`` holds every stored target row (one
row per row of ``target_positions``, with its account, allocation and target labels), partitioned
by the UTC date of its snapshot. With ``expanded``, ``OUT/target_exposure/...`` holds the
look-through rows of the same snapshots (:func:`msm.expansion.expand_targets`), partitioned the
same way. Beside them, so that an export folder holds everything a look-through needs (design
section 8, e.g. ``python -m msm_spark expand``), ``OUT/assets/`` holds the asset registry and, when
a ``weights`` source is given, ``OUT/portfolio_weights/`` holds every stored composition row with
its portfolio's and asset's unique identifiers (both unpartitioned). UUIDs are text, times are
``timestamp[us, UTC]``, exposures and weights ``double``; polars, pyarrow and DuckDB read the
datasets back with the same schema.

The export is written to a temporary folder beside ``OUT`` and moved into place at the end, so a
failed export leaves nothing half-written. An existing export is not replaced unless asked; when it
is, the whole export is replaced (a look-through dataset from an earlier ``expanded`` export is
removed rather than left beside snapshots it no longer matches). With no snapshots, each dataset
holds one empty file that still carries the columns.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from msm.errors import ConflictError
from msm.expansion import WeightsSource, expand_targets
from msm.services.snapshots import read_target_rows
from msm.store.connection import Store

__all__ = ["ASSET_EXPORT_COLUMNS", "EXPORT_DATASETS", "WEIGHTS_EXPORT_COLUMNS", "ExportResult", "export_snapshots"]

EXPORT_DATASETS = ("target_positions", "target_exposure", "portfolio_weights", "assets")
#: Columns of ``portfolio_weights/`` (every composition row) and ``assets/`` (the asset registry).
WEIGHTS_EXPORT_COLUMNS = ("time_index", "portfolio_uid", "portfolio", "asset_uid", "asset", "weight")
ASSET_EXPORT_COLUMNS = ("uid", "unique_identifier", "name", "ticker", "asset_type", "metadata_json")
PARTITION = "snapshot_date"
#: Which datasets are hive-partitioned by snapshot date (the others are one file each).
PARTITION_BY = {"target_positions": PARTITION, "target_exposure": PARTITION}

_TARGET_COLUMNS = (
    "position_set_uid", "time_index", "account", "allocation", "target_type", "target_uid", "asset_uid", "portfolio_uid",
    "unique_identifier", "display_label", "weight_notional_exposure", "constant_notional_exposure",
    "single_asset_quantity", "metadata_json",
)


@dataclass(frozen=True)
class ExportResult:
    out: Path
    datasets: dict[str, int]  # dataset name -> rows written
    snapshots: int
    diagnostics: pl.DataFrame | None = None  # compositions not summing to 1 (expanded export)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "snapshots": self.snapshots,
            "datasets": {name: {"path": str(self.out / name), "rows": rows} for name, rows in self.datasets.items()},
        }


def export_snapshots(
    store: Store,
    out: str | Path,
    *,
    expanded: bool = False,
    weights: pl.DataFrame | WeightsSource | None = None,
    weights_as_of: str | datetime = "now",
    overwrite: bool = False,
) -> ExportResult:
    """Write every stored snapshot as hive-partitioned Parquet under ``out``.

    ``weights`` (a composition frame or a weights source, e.g.
    ``msm_portfolios.duckdb_weights_source(store)``) adds the ``portfolio_weights`` dataset; it is
    required with ``expanded``, which also writes the look-through dataset.
    """
    out = Path(out)
    if expanded and weights is None:
        raise ValueError("expanded export needs `weights` (e.g. msm_portfolios.duckdb_weights_source(store))")
    names = [n for n in EXPORT_DATASETS if n != "target_exposure" or expanded]
    if weights is None:
        names.remove("portfolio_weights")
    taken = [n for n in names if (out / n).exists()]
    if taken and not overwrite:
        raise ConflictError(f"{out} already holds an export ({', '.join(taken)}); choose another --out or pass --overwrite to replace it")

    rows = read_target_rows(store)
    datasets: dict[str, pl.DataFrame] = {"target_positions": rows.select(_TARGET_COLUMNS)}
    diagnostics = None
    if expanded:
        result = expand_targets(rows, weights, weights_as_of=weights_as_of)  # type: ignore[arg-type]
        labels = rows.select("position_set_uid", "account", "allocation").unique()
        datasets["target_exposure"] = result.rows.join(labels, on="position_set_uid", how="left", maintain_order="left")
        diagnostics = result.diagnostics
    if weights is not None:
        datasets["portfolio_weights"] = _all_compositions(store, weights)
    datasets["assets"] = store.query(
        "SELECT uid::VARCHAR AS uid, unique_identifier, name, ticker, asset_type, metadata_json::VARCHAR AS metadata_json "
        "FROM asset ORDER BY unique_identifier"
    )

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".msm-export-", dir=out))
    try:
        for name, frame in datasets.items():
            _write_dataset(frame, staging / name)
        # An overwrite replaces the whole export: a dataset not written this time (the look-through
        # of an earlier --expanded export) would no longer match, so it goes too.
        for name in EXPORT_DATASETS:
            if (out / name).exists() and (name in datasets or overwrite):
                shutil.rmtree(out / name)
        for name in datasets:
            (staging / name).rename(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        out=out,
        datasets={name: frame.height for name, frame in datasets.items()},
        snapshots=rows["position_set_uid"].n_unique(),
        diagnostics=diagnostics,
    )


def _all_compositions(store: Store, weights: pl.DataFrame | WeightsSource) -> pl.DataFrame:
    """Every composition row of every portfolio, as :data:`WEIGHTS_EXPORT_COLUMNS`."""
    if callable(weights):
        uids = store.query("SELECT uid::VARCHAR AS uid FROM portfolio ORDER BY uid")["uid"].to_list()
        history = weights(uids, None) if uids else pl.DataFrame()
    else:
        history = weights
    schema = {"time_index": pl.Datetime("us", "UTC"), "portfolio_uid": pl.String, "portfolio": pl.String,
              "asset_uid": pl.String, "asset": pl.String, "weight": pl.Float64}
    if history.height == 0:
        return pl.DataFrame(schema=schema)
    if "portfolio" not in history.columns:
        history = history.with_columns(pl.lit(None, pl.String).alias("portfolio"))
    return history.select(pl.col(c).cast(t) for c, t in schema.items()).sort("portfolio", "time_index", "asset")


def _write_dataset(frame: pl.DataFrame, path: Path) -> None:
    path.mkdir(parents=True)
    if frame.height == 0 or PARTITION_BY.get(path.name) is None:  # one empty file, so readers still see the columns and their types
        frame.write_parquet(path / "part-0.parquet")
        return
    dated = frame.with_columns(pl.col("time_index").dt.convert_time_zone("UTC").dt.date().cast(pl.String).alias(PARTITION))
    ds.write_dataset(
        dated.to_arrow(),
        path,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="error",
    )
