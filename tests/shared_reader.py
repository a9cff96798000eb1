"""The notebook user of tests/test_shared_file.py: reads snapshots and their look-through in a loop.

    python tests/shared_reader.py DB LOG SECONDS HOLD_AFTER HOLD_SECONDS

What a notebook does between its cells: ``msm.Store(DB)`` (the default retry budget), then
``msm.read_snapshot``, ``msm_portfolios.look_through_snapshot`` and ``msm.snapshot_history`` of the
two demo accounts, again and again for SECONDS. Once, HOLD_AFTER seconds in, one cell keeps the
file open for HOLD_SECONDS (``with store.connect(): ...`` around a long analysis), longer than a
writer's retry budget: the writers in that window must be refused as busy, with nothing stored.
Each read is one JSON line in LOG: ``result`` (``ok`` / ``busy`` / ``error``) and ``seconds``.
"""

from __future__ import annotations

import json
import sys
import time

import msm
import msm_portfolios

ACCOUNTS = ("example-account-alpha", "example-account-beta")


def main(db: str, log_path: str, seconds: str, hold_after: str, hold_seconds: str) -> None:
    store = msm.Store(db)
    started = time.monotonic()
    deadline, hold_at, held = started + float(seconds), started + float(hold_after), False
    with open(log_path, "a", buffering=1) as log:
        log.write(json.dumps({"event": "ready"}) + "\n")
        step = 0
        while time.monotonic() < deadline:
            account = ACCOUNTS[step % 2]
            step += 1
            if not held and time.monotonic() >= hold_at:
                opened = time.monotonic()
                try:
                    with store.connect():  # the long cell: the file stays open (and locked) all along
                        got = time.monotonic()
                        msm.snapshot_history(store, account)
                        time.sleep(float(hold_seconds))
                except msm.StoreBusyError as exc:  # the cell could not start; it is run again
                    log.write(
                        json.dumps(
                            {
                                "event": "read",
                                "result": "busy",
                                "seconds": round(time.monotonic() - opened, 3),
                                "message": str(exc),
                            }
                        )
                        + "\n"
                    )
                    continue
                held = True
                log.write(
                    json.dumps(
                        {"event": "held", "waited": round(got - opened, 3), "seconds": round(time.monotonic() - got, 3)}
                    )
                    + "\n"
                )
                continue
            begun = time.monotonic()
            try:
                snap = msm.read_snapshot(store, account)
                exposure = msm_portfolios.look_through_snapshot(store, snap).rows
                history = msm.snapshot_history(store, account)
                result, detail = (
                    "ok",
                    {"rows": snap.positions.height, "assets": exposure.height, "snapshots": history.height},
                )
            except msm.StoreBusyError as exc:
                result, detail = "busy", {"message": str(exc)}
            except Exception as exc:
                result, detail = "error", {"message": f"{type(exc).__name__}: {exc}"}
            log.write(
                json.dumps({"event": "read", "result": result, "seconds": round(time.monotonic() - begun, 3), **detail})
                + "\n"
            )
            time.sleep(0.05)


if __name__ == "__main__":
    main(*sys.argv[1:6])
