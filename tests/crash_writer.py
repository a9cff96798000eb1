"""The child process of tests/test_crash_safety.py: writes in a loop until it is killed.

    python tests/crash_writer.py DB EXPORT_DIR LOG SEED FIRST_KIND VERSION_BASE

Every write is logged to LOG (JSON lines, flushed before and after): ``begin`` before the call,
``ack`` after it returned. The parent kills this process with SIGKILL at a random moment and then
checks the database and the export folder against the log: an acknowledged write must be there in
full, the write in flight (a ``begin`` without its ``ack``) either in full or not at all.

Kinds of write (one after another, the first is FIRST_KIND, then a seeded random choice):

- ``snapshot``: a new snapshot of :data:`ROWS` rows (``msm.save_snapshot``) at a new time;
- ``overwrite``: an existing snapshot replaced by a new version (``msm.save_snapshots``, bulk, overwrite);
- ``import``: :data:`BATCH` new assets in one bulk registry import (``msm.import_reference``);
- ``export``: ``export_snapshots(..., overwrite=True)`` over the previous export in EXPORT_DIR.

A snapshot's version is in its rows: every weight of version ``v`` is ``v / 1e6`` (and its source
is ``v<v>``), so the parent can tell an old snapshot from a new one, and a mix of both. Versions
start after VERSION_BASE (the parent gives each run its own range, as runs follow one another on
one file); a new snapshot of version ``v`` is at ``T0 + v hours``. An overwrite picks one of the
snapshots in the file (read at start) or written since.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

import msm
import msm_portfolios
from msm.services.export import export_snapshots

KINDS = ("snapshot", "overwrite", "import", "export")
ROWS = 100_000  # rows per snapshot (and assets in the template registry)
BATCH = 50_000  # assets per bulk import
ACCOUNT = "crash-account"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the template's snapshot (version 1)


def asset_ids(n: int = ROWS) -> list[str]:
    return [f"A{i:06d}" for i in range(n)]


def prepare(db: Path, export_dir: Path) -> None:
    """The template: migrated, ROWS assets, one account and allocation, the snapshot at T0 (version 1), an export."""
    store = msm_portfolios.init_store(db)
    msm.import_reference(store, "assets", pl.DataFrame({"unique_identifier": asset_ids()}))
    msm.add_account(store, ACCOUNT, account_name="Crash test account")
    msm.add_allocation_model(store, "crash-model")
    msm.add_allocation(store, "crash-main", account=ACCOUNT, model="crash-model")
    msm.save_snapshot(store, ACCOUNT, T0, rows_of(1), source="v1")
    export_snapshots(store, export_dir, weights=msm_portfolios.duckdb_weights_source(store))


def rows_of(version: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"target_type": ["asset"] * ROWS, "asset": asset_ids(), "weight_notional_exposure": [version / 1e6] * ROWS}
    )


def main(db: str, export_dir: str, log_path: str, seed: str, first: str, version_base: str) -> None:
    rng = random.Random(int(seed))
    store = msm.Store(db)
    weights = msm_portfolios.duckdb_weights_source(store)
    template = rows_of(0)
    times = sorted(msm.snapshot_history(store, ACCOUNT)["position_set_time"].to_list())  # the snapshots in the file
    version, step = int(version_base), 0
    with open(log_path, "a", buffering=1) as log:

        def note(event: str, **fields: object) -> None:
            log.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
            log.flush()

        note("ready")
        kind = first
        while True:
            step += 1
            if kind == "snapshot":
                version += 1
                at = T0 + timedelta(hours=version)
                note("begin", kind=kind, at=at.isoformat(), version=version)
                msm.save_snapshot(
                    store,
                    ACCOUNT,
                    at,
                    template.with_columns(pl.lit(version / 1e6).alias("weight_notional_exposure")),
                    source=f"v{version}",
                )
                times.append(at)
                note("ack", kind=kind, at=at.isoformat(), version=version)
            elif kind == "overwrite":
                version += 1
                at = rng.choice(times)
                note("begin", kind=kind, at=at.isoformat(), version=version)
                frame = template.with_columns(
                    pl.lit(version / 1e6).alias("weight_notional_exposure"),
                    pl.lit(ACCOUNT).alias("account"),
                    pl.lit(at).alias("position_set_time"),
                )
                msm.save_snapshots(store, frame, overwrite=True, source=f"v{version}")
                note("ack", kind=kind, at=at.isoformat(), version=version)
            elif kind == "import":
                prefix = f"B{seed}-{step}-"
                note("begin", kind=kind, prefix=prefix, rows=BATCH)
                msm.import_reference(
                    store, "assets", pl.DataFrame({"unique_identifier": [f"{prefix}{i}" for i in range(BATCH)]})
                )
                note("ack", kind=kind, prefix=prefix, rows=BATCH)
            else:
                note("begin", kind=kind)
                result = export_snapshots(store, export_dir, weights=weights, overwrite=True)
                note("ack", kind=kind, snapshots=result.snapshots)
            kind = rng.choice(KINDS)


if __name__ == "__main__":
    main(*sys.argv[1:7])
