"""Parquet export of snapshots: hive-partitioned datasets any engine reads natively.

``OUT/target_positions/snapshot_date=YYYY-MM-DD/*.parquet`` holds every stored target row (one
row per row of ``target_positions``, with its account, allocation and target labels), partitioned
by the UTC date of its snapshot. With ``expanded``, ``OUT/target_exposure/...`` holds the
look-through rows of the same snapshots (:func:`msm.expansion.expand_targets`), partitioned the
same way. Beside them, so that an export folder holds everything a look-through needs (a Spark
job, ``python -m msm_spark expand``, reads nothing else), ``OUT/assets/`` holds the asset registry and, when
a ``weights`` source is given, ``OUT/portfolio_weights/`` holds every stored composition row with
its portfolio's and asset's unique identifiers (both unpartitioned). UUIDs are text, times are
``timestamp[us, UTC]``, exposures and weights ``double``; polars, pyarrow and DuckDB read the
datasets back with the same schema.

The export is written to a hidden staging folder inside ``OUT`` (``.msm-export-PID-*``) and moved
into place at the end, so a failed export leaves nothing half-written: the datasets it replaces are
moved aside first, and the new ones renamed in (a few renames, no copy, no delete in between; a
kill inside those few renames, a window of microseconds, could still leave some datasets missing:
export again with ``overwrite``). A process killed mid-export (SIGKILL, power cut) leaves its
staging folder behind; the next export into the same ``OUT`` removes every staging folder older
than its own start whose process is gone. An existing export is not replaced unless asked; when it
is, the whole export is replaced (a look-through dataset from an earlier ``expanded`` export is
removed rather than left beside snapshots it no longer matches). With no snapshots, each dataset
holds one empty file that still carries the columns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from msm.contract import EXPOSURE_COLUMNS
from msm.errors import ConflictError, NotFoundError, RowError, ValidationError
from msm.expansion import WEIGHTS_COLUMNS, Expansion, WeightsSource, expand_targets
from msm.services.registry import get_account
from msm.services.snapshots import POSITION_COLUMNS, read_target_rows
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

EXPORT_DATASETS = (
    "target_positions",
    "target_exposure",
    "portfolio_weights",
    "assets",
    "account_holdings",
    "drift",
    "accounts",
    "allocations",
    "asset_prices",
    "fx_rates",
)
#: Written only with ``drift``: the drift and what another engine needs to recompute it.
DRIFT_DATASETS = ("drift", "accounts", "allocations", "asset_prices", "fx_rates")
#: Columns of ``portfolio_weights/`` (every composition row) and ``assets/`` (the asset registry).
WEIGHTS_EXPORT_COLUMNS = (
    "time_index",
    "portfolio_uid",
    "portfolio",
    "asset_uid",
    "asset",
    "weight",
    "constituent_type",  # 'asset' or 'portfolio' (a nested portfolio, design section 12)
    "constituent_portfolio_uid",
    "constituent_portfolio",
)
ASSET_EXPORT_COLUMNS = ("uid", "unique_identifier", "name", "ticker", "asset_type", "metadata_json", "currency")
PARTITION = "snapshot_date"
#: Name prefix of an export's staging folder inside ``OUT`` (then the writer's PID and a random part).
STAGING_PREFIX = ".msm-export-"
#: Position sets per chunk of an export (each chunk: one snapshot date, read, expanded and written alone).
CHUNK_SETS = 2_000
#: DuckDB's memory limit while an export reads chunks (a constant, not user text).
EXPORT_DUCKDB_MEMORY = "512MB"
#: Which datasets are hive-partitioned by snapshot date (the others are one file each).
PARTITION_BY = {
    "target_positions": PARTITION,
    "target_exposure": PARTITION,
    "account_holdings": PARTITION,
    "drift": PARTITION,
}

#: Columns of ``target_positions/``: which snapshot, then a stored target row as a snapshot shows it.
_TARGET_COLUMNS = ("position_set_uid", "time_index", "account", "allocation", *POSITION_COLUMNS)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: its folder, the rows per dataset, the snapshot count and any weight diagnostics."""

    out: Path
    datasets: dict[str, int]  # dataset name -> rows written
    snapshots: int
    diagnostics: pl.DataFrame | None = None  # compositions not summing to 1 (expanded export)

    def to_dict(self) -> dict[str, Any]:
        """``{"out", "snapshots", "datasets": {name: {path, rows}}}``, JSON-ready."""
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
    chunk_sets: int = CHUNK_SETS,
    now: datetime | None = None,
    drift: bool = False,
    drift_as_of: datetime | None = None,
    include_drafts: bool = False,
) -> ExportResult:
    """Write every stored snapshot as hive-partitioned Parquet under ``out``.

    ``weights`` (a composition frame or a weights source, e.g.
    ``msm_portfolios.duckdb_weights_source(store)``) adds the ``portfolio_weights`` dataset; it is
    required with ``expanded``, which also writes the look-through dataset.

    ``accounts`` (unique identifiers or uids; an unknown one is refused), ``date_from`` and
    ``date_to`` (UTC snapshot dates, inclusive) choose which snapshots go into ``target_positions``
    and ``target_exposure``; ``portfolio_weights`` and ``assets`` are always whole.

    Snapshots are read, expanded and written in chunks of one snapshot date and at most
    ``chunk_sets`` position sets, so memory does not grow with the book; ``now`` fixes the
    ``"now"`` weights time once for every chunk (default: the current time).

    ``account_holdings`` (every holdings row) is always written; ``drift`` (it needs ``weights``)
    adds ``drift/`` (every active account at ``drift_as_of``, default ``now``) and its inputs
    (:mod:`msm.services.holdings_export`). Published snapshots only; drafts too with
    ``include_drafts`` (in ``target_positions``, ``target_exposure`` and ``drift``).
    """
    now = now or datetime.now(UTC)
    out = Path(out)
    names = _dataset_names(out, expanded=expanded, drift=drift, weighted=weights is not None, overwrite=overwrite)
    sets = _chosen_sets(store, accounts, date_from, date_to, include_drafts=include_drafts)
    history = _all_compositions(store, weights) if weights is not None else None
    extra = _holdings_datasets(store, history if drift else None, drift_as_of or now, now, include_drafts)

    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out, before=time.time())
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out))
    counts = dict.fromkeys(names, 0)
    diagnostics: list[pl.DataFrame] = []
    try:
        expand = partial(expand_targets, weights=history, weights_as_of=weights_as_of, now=now) if expanded else None
        _stage_snapshots(store, sets, chunk_sets, staging, counts, diagnostics, expand)
        _stage_whole_datasets(store, staging, counts, history, extra)
        _swap_in(out, staging, names, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out=out, datasets=counts, snapshots=sets.height, diagnostics=_merged(diagnostics))


def _dataset_names(out: Path, *, expanded: bool, drift: bool, weighted: bool, overwrite: bool) -> list[str]:
    """The datasets this export writes, in :data:`EXPORT_DATASETS` order; refuses a missing ``weights``
    (``expanded``, ``drift``) and, without ``overwrite``, an ``out`` that already holds one of them."""
    if (expanded or drift) and not weighted:
        kind = "expanded" if expanded else "drift"
        raise ValueError(f"{kind} export needs `weights` (e.g. msm_portfolios.duckdb_weights_source(store))")
    names = [n for n in EXPORT_DATASETS if (n != "target_exposure" or expanded) and (n not in DRIFT_DATASETS or drift)]
    if not weighted:
        names.remove("portfolio_weights")
    taken = [n for n in names if (out / n).exists()]
    if taken and not overwrite:
        raise ConflictError.occupied(out, taken, holds="an export", option="--out")
    return names


def _stage_snapshots(
    store: Store,
    sets: pl.DataFrame,
    chunk_sets: int,
    staging: Path,
    counts: dict[str, int],
    diagnostics: list[pl.DataFrame],
    expand: Callable[[pl.DataFrame], Expansion] | None,
) -> None:
    """Write ``target_positions`` (and, with ``expand``, ``target_exposure``) into ``staging``.

    Snapshots go in chunks of at most ``chunk_sets`` position sets, in time order: read, expand with
    the core's expansion, write (one file per snapshot date in the chunk), forget. Peak memory
    follows the chunk, not the book. One connection serves every chunk. Files are written by a small
    thread pool (polars releases the GIL) while the next chunk is read and expanded; at most two
    chunks are alive at a time. With no snapshot, each dataset is one empty file that still has the
    columns.
    """
    with store.connect() as con, ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        # DuckDB keeps the blocks it reads cached up to its memory limit (most of the machine by
        # default); capped while the export runs, so a larger file does not mean a larger export.
        con.execute(f"SET memory_limit = '{EXPORT_DUCKDB_MEMORY}'")
        try:
            writing: list[Future[int]] = []
            for part, (uids, first, last) in enumerate(_chunks(sets, chunk_sets)):
                files = _chunk_files(store, uids, (first, last), part, staging, counts, diagnostics, expand)
                for done in writing:  # the previous chunk's files (an error in a write surfaces here)
                    done.result()
                writing = [pool.submit(_write_part, *file) for file in files]
            for done in writing:
                done.result()
        finally:
            con.execute("RESET memory_limit")  # the store never sets one: back to DuckDB's default
    for name in ("target_positions", "target_exposure"):
        if name in counts and not (staging / name).exists():
            _write_empty(staging / name, expanded_columns=name == "target_exposure")


def _stage_whole_datasets(
    store: Store,
    staging: Path,
    counts: dict[str, int],
    history: pl.DataFrame | None,
    extra: dict[str, pl.DataFrame],
) -> None:
    """Write the datasets that are always whole into ``staging``: compositions, assets, holdings (and drift)."""
    if history is not None:
        counts["portfolio_weights"] = _write_part(history, staging / "portfolio_weights", None, 0)
    assets = store.query(
        "SELECT uid::VARCHAR AS uid, unique_identifier, name, ticker, asset_type, "
        "metadata_json::VARCHAR AS metadata_json, currency FROM asset ORDER BY unique_identifier"
    )
    counts["assets"] = _write_part(assets, staging / "assets", None, 0)
    for name, frame in extra.items():
        counts[name] = _write_dataset(frame, staging / name, partitioned=name in PARTITION_BY)


def _swap_in(out: Path, staging: Path, names: list[str], *, overwrite: bool) -> None:
    """Move the staged datasets ``names`` into ``out``, the ones they replace aside into ``staging``.

    An overwrite replaces the whole export: a dataset not written this time (the look-through of an
    earlier --expanded export) would no longer match, so it goes too. Old datasets are moved aside
    (into the staging folder, deleted with it), then the new ones renamed in: the swap is a handful
    of renames, so a kill can hardly land inside it.
    """
    replaced = staging / ".replaced"
    replaced.mkdir()
    for name in EXPORT_DATASETS:
        if (out / name).exists() and (name in names or overwrite):
            (out / name).rename(replaced / name)
    for name in names:
        (staging / name).rename(out / name)


def _merged(diagnostics: list[pl.DataFrame]) -> pl.DataFrame | None:
    """The chunks' weight diagnostics as one frame without repeats (None when nothing was expanded)."""
    if not diagnostics:
        return None
    found = [d for d in diagnostics if d.height]
    return pl.concat(found).unique(maintain_order=True) if found else diagnostics[0]


def _holdings_datasets(
    store: Store, history: pl.DataFrame | None, at: datetime, now: datetime, include_drafts: bool = False
) -> dict[str, pl.DataFrame]:
    """``account_holdings``, and with ``history`` (a drift export) ``drift`` and its inputs."""
    from msm.services.holdings_export import drift_datasets, holdings_rows

    datasets = {"account_holdings": holdings_rows(store)}
    if history is not None:
        datasets |= drift_datasets(store, history, at=at, now=now, include_drafts=include_drafts)
    return datasets


def _write_dataset(frame: pl.DataFrame, dataset: Path, *, partitioned: bool) -> int:
    """One file, or (``partitioned``) one per UTC date of the first time column; an empty one keeps the columns."""
    if not partitioned or frame.height == 0:
        return _write_part(frame, dataset, None, 0)
    column = "valuation_time" if "valuation_time" in frame.columns else "time_index"
    for rows, folder, day, part in _dated(frame, dataset, 0, column=column):
        _write_part(rows, folder, day, part)
    return frame.height


def _remove_stale_staging(out: Path, *, before: float) -> None:
    """Delete the staging folders in ``out`` that a killed export left: older than ``before`` and
    whose process is gone (a running export's folder is kept)."""
    for folder in out.glob(f"{STAGING_PREFIX}*"):
        try:
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_mtime >= before:
                continue
        except OSError:
            continue
        pid = folder.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and _process_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


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
        raise ValidationError(
            [RowError("export", None, "folder", name, "is empty; give a folder name inside the export root")]
        )
    if Path(text).is_absolute() or text.startswith("~"):
        raise ValidationError(
            [RowError("export", None, "folder", name, "is an absolute path; give a folder inside the export root")]
        )
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target == base:
        raise ValidationError(
            [RowError("export", None, "folder", name, "is the export root itself; give a folder inside it")]
        )
    if base not in target.parents:
        raise ValidationError(
            [RowError("export", None, "folder", name, "leads outside the export root; give a folder inside it")]
        )
    return target


def _chosen_sets(
    store: Store,
    accounts: Sequence[str] | None,
    date_from: date | None,
    date_to: date | None,
    *,
    include_drafts: bool = False,
) -> pl.DataFrame:
    """``(position_set_uid, time_index, day)`` of the chosen snapshots, in time order (one row per snapshot)."""
    sets = store.query(
        "SELECT ps.uid::VARCHAR AS position_set_uid, ps.position_set_time AS time_index, "
        "acc.unique_identifier AS account "
        "FROM position_set AS ps JOIN account_target_allocation AS al ON al.uid = ps.account_target_allocation_uid "
        "JOIN account AS acc ON acc.uid = al.account_uid WHERE ? OR ps.status = 'published' "
        "ORDER BY ps.position_set_time, ps.uid",
        [include_drafts],
    ).with_columns(pl.col("time_index").dt.convert_time_zone("UTC").dt.date().alias("day"))
    if accounts is not None:
        unknown, chosen = [], []
        for account in accounts:
            try:
                chosen.append(get_account(store, account)["unique_identifier"])
            except NotFoundError:
                unknown.append(str(account))
        if unknown:
            raise NotFoundError("account", "unique_identifier or uid", ", ".join(unknown), "see `msm accounts list`")
        sets = sets.filter(pl.col("account").is_in(chosen))
    if date_from is not None:
        sets = sets.filter(pl.col("day") >= date_from)
    if date_to is not None:
        sets = sets.filter(pl.col("day") <= date_to)
    return sets.drop("account")


def _chunk_files(
    store: Store,
    uids: list[str],
    between: tuple[datetime, datetime],
    part: int,
    staging: Path,
    counts: dict[str, int],
    diagnostics: list[pl.DataFrame],
    expand: Callable[[pl.DataFrame], Expansion] | None,
) -> list[tuple[pl.DataFrame, Path, date, int]]:
    """Read one chunk's target rows (and expand them with ``expand``); the files to write, counted in ``counts``."""
    rows = read_target_rows(store, uids, between=between)
    files = _dated(rows.select(_TARGET_COLUMNS), staging / "target_positions", part)
    counts["target_positions"] += rows.height
    if expand is not None:
        result = expand(rows)
        labels = rows.select("position_set_uid", "account", "allocation").unique()
        exposure = result.rows.join(labels, on="position_set_uid", how="left", maintain_order="left")
        files += _dated(exposure, staging / "target_exposure", part)
        counts["target_exposure"] += exposure.height
        diagnostics.append(result.diagnostics)
    return files


def _chunks(sets: pl.DataFrame, size: int) -> Iterator[tuple[list[str], datetime, datetime]]:
    """``(position set uids, first time, last time)`` of at most ``size`` sets each, in time order."""
    if size < 1:
        raise ValueError("chunk_sets must be at least 1")
    for offset in range(0, sets.height, size):
        block = sets.slice(offset, size)
        yield block["position_set_uid"].to_list(), block["time_index"].min(), block["time_index"].max()  # type: ignore[misc]


def _all_compositions(store: Store, weights: pl.DataFrame | WeightsSource) -> pl.DataFrame:
    """Every composition row of every portfolio, as :data:`WEIGHTS_EXPORT_COLUMNS`."""
    if callable(weights):
        uids = store.query("SELECT uid::VARCHAR AS uid FROM portfolio ORDER BY uid")["uid"].to_list()
        history = weights(uids, None) if uids else pl.DataFrame()
    else:
        history = weights
    schema = {
        "time_index": pl.Datetime("us", "UTC"),
        "portfolio_uid": pl.String,
        "portfolio": pl.String,
        "asset_uid": pl.String,
        "asset": pl.String,
        "weight": pl.Float64,
        "constituent_type": pl.String,
        "constituent_portfolio_uid": pl.String,
        "constituent_portfolio": pl.String,
    }
    if history.height == 0:
        return pl.DataFrame(schema=schema)
    optional = ("portfolio", "constituent_portfolio_uid", "constituent_portfolio")
    history = history.with_columns(pl.lit(None, pl.String).alias(c) for c in optional if c not in history.columns)
    if "constituent_type" not in history.columns:
        nested = pl.col("constituent_portfolio_uid").is_not_null()
        history = history.with_columns(
            pl.when(nested).then(pl.lit("portfolio")).otherwise(pl.lit("asset")).alias("constituent_type")
        )
    return history.select(pl.col(c).cast(t) for c, t in schema.items()).sort(
        "portfolio", "time_index", "constituent_type", "asset", "constituent_portfolio", nulls_last=True
    )


def _write_part(frame: pl.DataFrame, dataset: Path, day: date | None, part: int) -> int:
    """Write one Parquet file of ``dataset``: under ``snapshot_date=DAY/`` (hive style) when ``day`` is given."""
    folder = dataset / f"{PARTITION}={day.isoformat()}" if day is not None else dataset
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / f"part-{part}.parquet")
    return frame.height


def _dated(
    frame: pl.DataFrame, dataset: Path, part: int, *, column: str = "time_index"
) -> list[tuple[pl.DataFrame, Path, date, int]]:
    """The files of one chunk: ``part-PART.parquet`` for each UTC date of ``column`` that ``frame`` holds.

    Each item is the arguments of ``_write_part``.
    """
    day = pl.col(column).dt.convert_time_zone("UTC").dt.date().alias("__day")
    split = frame.with_columns(day).partition_by("__day", as_dict=True, maintain_order=True)
    return [(rows.drop("__day"), dataset, value, part) for (value,), rows in split.items()]


def _write_empty(dataset: Path, *, expanded_columns: bool) -> None:
    """A dataset of no snapshot: one empty file at its root that still carries the columns and their types."""
    columns = _empty_exposure() if expanded_columns else _empty_targets()
    _write_part(columns, dataset, None, 0)


def _empty_targets() -> pl.DataFrame:
    schema = {c: pl.String for c in _TARGET_COLUMNS} | {"time_index": pl.Datetime("us", "UTC")}
    schema |= dict.fromkeys(EXPOSURE_COLUMNS, pl.Float64)
    return pl.DataFrame(schema=schema)


def _empty_exposure() -> pl.DataFrame:
    empty = expand_targets(_empty_targets(), pl.DataFrame(schema=dict.fromkeys(WEIGHTS_COLUMNS, pl.String)))
    return empty.rows.with_columns(
        pl.lit(None, pl.String).alias("account"), pl.lit(None, pl.String).alias("allocation")
    )
