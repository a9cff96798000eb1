"""The child process of the audit trials of tests/test_crash_safety.py: audited writes in a loop until killed.

    python tests/crash_audit_writer.py DB LOG SEED

Every write is logged to LOG (JSON lines, flushed): ``begin`` before the call, ``ack`` after it
returned. Kinds of write, chosen at random (seeded), each by its own actor with a reason:

- ``save``: a new snapshot of :data:`ROWS` rows at a new time (one ``save`` event);
- ``overwrite``: a stored snapshot replaced (its rows kept as a version; one ``overwrite`` event);
- ``restore``: a kept version of a stored snapshot written again (one ``restore`` event);
- ``import``: :data:`BATCH` new assets in one bulk import (one ``add`` event per asset).

The parent kills this process with SIGKILL at a random moment and checks that every change has
its event and every event its change.
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

ROWS = 20_000  # rows per snapshot (and assets in the template)
BATCH = 10_000  # assets per bulk import
ACCOUNT = "audit-account"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("save", "overwrite", "restore", "import")


def asset_ids(n: int = ROWS) -> list[str]:
    return [f"A{i:06d}" for i in range(n)]


def rows_of(version: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"target_type": ["asset"] * ROWS, "asset": asset_ids(), "weight_notional_exposure": [version / 1e6] * ROWS}
    )


def prepare(db: Path) -> None:
    """The template: ROWS assets, an account and allocation, one snapshot at T0 overwritten once."""
    store = msm.Store(db)
    msm.migrate(store)
    msm.import_reference(store, "assets", pl.DataFrame({"unique_identifier": asset_ids()}), actor="setup")
    msm.add_account(store, ACCOUNT, account_name="Audit crash account", actor="setup")
    msm.add_allocation_model(store, "audit-model", actor="setup")
    msm.add_allocation(store, "audit-main", account=ACCOUNT, model="audit-model", actor="setup")
    msm.save_snapshot(store, ACCOUNT, T0, rows_of(1), actor="setup")
    msm.save_snapshot(store, ACCOUNT, T0, rows_of(2), overwrite=True, actor="setup")


def main(db: str, log_path: str, seed: str) -> None:
    rng = random.Random(int(seed))
    store = msm.Store(db)
    times = sorted(msm.snapshot_history(store, ACCOUNT)["position_set_time"].to_list())
    version = 1000 * int(seed) % 100_000 + 10
    with open(log_path, "a", buffering=1) as log:

        def note(event: str, **fields: object) -> None:
            log.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
            log.flush()

        note("ready")
        for step in range(1_000_000):
            kind = rng.choice(KINDS)
            version += 1
            note("begin", kind=kind)
            actor, reason = f"{kind}-actor", f"step {step}"
            if kind == "save":
                at = T0 + timedelta(hours=version)
                msm.save_snapshot(store, ACCOUNT, at, rows_of(version), actor=actor, reason=reason)
                times.append(at)
            elif kind == "overwrite":
                at = rng.choice(times)
                msm.save_snapshot(store, ACCOUNT, at, rows_of(version), overwrite=True, actor=actor, reason=reason)
            elif kind == "restore":
                msm.restore_snapshot(store, ACCOUNT, T0, version=1, actor=actor, reason=reason)
            else:
                prefix = f"B{seed}-{step}-"
                frame = pl.DataFrame({"unique_identifier": [f"{prefix}{i}" for i in range(BATCH)]})
                msm.import_reference(store, "assets", frame, actor=actor, reason=reason)
            note("ack", kind=kind)


if __name__ == "__main__":
    main(*sys.argv[1:4])
