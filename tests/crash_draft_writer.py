"""The child process of the draft trials of tests/test_crash_safety.py: drafts saved, published, discarded until killed.

    python tests/crash_draft_writer.py DB LOG SEED

Every write is logged to LOG (JSON lines, flushed): ``begin`` before the call, ``ack`` after it
returned. Kinds of write, chosen at random (seeded), each by its own actor with a reason:

- ``draft``: a new draft of :data:`ROWS` rows at a new time (one ``save`` event, status draft);
- ``publish``: the oldest draft published (one ``publish`` event; the status flips);
- ``discard``: the newest draft discarded (its rows kept as a version; one ``discard`` event).

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

ROWS = 5_000  # rows per snapshot (and assets in the template): small, so publishes are a good share of the time
ACCOUNT = "draft-account"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("draft", "publish", "publish", "discard")


def rows_of(version: int) -> pl.DataFrame:
    ids = [f"A{i:06d}" for i in range(ROWS)]
    return pl.DataFrame(
        {"target_type": ["asset"] * ROWS, "asset": ids, "weight_notional_exposure": [version / 1e6] * ROWS}
    )


def prepare(db: Path) -> None:
    """The template: ROWS assets, an account and allocation, a published snapshot at T0 and a draft after it."""
    store = msm.Store(db)
    msm.migrate(store)
    frame = pl.DataFrame({"unique_identifier": [f"A{i:06d}" for i in range(ROWS)]})
    msm.import_reference(store, "assets", frame, actor="setup")
    msm.add_account(store, ACCOUNT, account_name="Draft crash account", actor="setup")
    msm.add_allocation_model(store, "draft-model", actor="setup")
    msm.add_allocation(store, "draft-main", account=ACCOUNT, model="draft-model", actor="setup")
    msm.save_snapshot(store, ACCOUNT, T0, rows_of(1), actor="setup")
    msm.save_snapshot(store, ACCOUNT, T0 + timedelta(hours=1), rows_of(2), draft=True, actor="setup")


def main(db: str, log_path: str, seed: str) -> None:
    rng = random.Random(int(seed))
    store = msm.Store(db)
    version = 1000 * int(seed) % 100_000 + 10
    with open(log_path, "a", buffering=1) as log:

        def note(event: str, **fields: object) -> None:
            log.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
            log.flush()

        note("ready")
        for step in range(1_000_000):
            drafts = msm.list_drafts(store)["position_set_time"].to_list()
            kind = rng.choice(KINDS) if drafts else "draft"
            version += 1
            note("begin", kind=kind)
            actor, reason = f"{kind}-actor", f"step {step}"
            if kind == "draft":
                at = T0 + timedelta(hours=version)
                msm.save_snapshot(store, ACCOUNT, at, rows_of(version), draft=True, actor=actor, reason=reason)
            elif kind == "publish":
                msm.publish_snapshot(store, ACCOUNT, drafts[0], actor=actor, reason=reason, four_eyes=True)
            else:
                msm.discard_draft(store, ACCOUNT, drafts[-1], actor=actor, reason=reason)
            note("ack", kind=kind)


if __name__ == "__main__":
    main(*sys.argv[1:4])
