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

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from msm.errors import ConflictError, NotFoundError, RowError, ValidationError
from msm.expansion import WeightsSource, expand_targets
from msm.services.registry import get_account
from msm.services.snapshots import read_target_rows
from msm.store.connection import Store

__all__ = [
    "ASSET_EXPORT_COLUMNS",
    "DEFAULT_EXPORT_ROOT",
    "EXPORT_DATASETS",
    "WEIGHTS_EXPORT_COLUMNS",
    "ExportResult",
    "default_export_root",
    "export_snapshots",
    "resolve_export_dir",
]

#: Where the app writes exports unless ``$MSM_EXPORT_ROOT`` says otherwise.
DEFAULT_EXPORT_ROOT = "data/exports"

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
    accounts: Sequence[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> ExportResult:
    """Write every stored snapshot as hive-partitioned Parquet under ``out``.

    ``weights`` (a composition frame or a weights source, e.g.
    ``msm_portfolios.duckdb_weights_source(store)``) adds the ``portfolio_weights`` dataset; it is
    required with ``expanded``, which also writes the look-through dataset.

    ``accounts`` (unique identifiers or uids; an unknown one is refused), ``date_from`` and
    ``date_to`` (UTC snapshot dates, inclusive) choose which snapshots go into ``target_positions``
    and ``target_exposure``; ``portfolio_weights`` and ``assets`` are always whole.
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

    rows = _chosen(store, read_target_rows(store), accounts, date_from, date_to)
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


def default_export_root() -> Path:
    """The export root: ``$MSM_EXPORT_ROOT``, else ``data/exports``."""
    return Path(os.environ.get("MSM_EXPORT_ROOT") or DEFAULT_EXPORT_ROOT)


def resolve_export_dir(root: str | Path, name: str) -> Path:
    """The folder ``name`` inside the export ``root``, refusing any way out of the root.

    Refused (a :class:`ValidationError` on the field ``folder``): an empty name, an absolute path,
    the root itself, and any path that leads outside the root, with ``..`` or through a symbolic
    link at any level (the path is resolved before it is checked).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> resolve_export_dir(root, "daily/2026") == (root / "daily" / "2026").resolve()
    True
    >>> resolve_export_dir(root, "../elsewhere")
    Traceback (most recent call last):
    ...
    msm.errors.ValidationError: 1 problem found; nothing was stored:
      export: `folder` = '../elsewhere': leads outside the export root; give a folder inside it
    """
    text = (name or "").strip()
    if not text:
        raise ValidationError([RowError("export", None, "folder", name, "is empty; give a folder name inside the export root")])
    if Path(text).is_absolute() or text.startswith("~"):
        raise ValidationError([RowError("export", None, "folder", name, "is an absolute path; give a folder inside the export root")])
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target == base:
        raise ValidationError([RowError("export", None, "folder", name, "is the export root itself; give a folder inside it")])
    if base not in target.parents:
        raise ValidationError([RowError("export", None, "folder", name, "leads outside the export root; give a folder inside it")])
    return target


def _chosen(store: Store, rows: pl.DataFrame, accounts: Sequence[str] | None, date_from: date | None, date_to: date | None) -> pl.DataFrame:
    """The rows of the chosen accounts and snapshot dates."""
    if accounts is not None:
        unknown, names = [], []
        for account in accounts:
            try:
                names.append(get_account(store, account)["unique_identifier"])
            except NotFoundError:
                unknown.append(str(account))
        if unknown:
            raise NotFoundError("account", "unique_identifier or uid", ", ".join(unknown), "see `msm accounts list`")
        rows = rows.filter(pl.col("account").is_in(names))
    if date_from is not None or date_to is not None:
        day = pl.col("time_index").dt.convert_time_zone("UTC").dt.date()
        if date_from is not None:
            rows = rows.filter(day >= date_from)
        if date_to is not None:
            rows = rows.filter(day <= date_to)
    return rows


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
