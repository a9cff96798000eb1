"""The app user of tests/test_shared_file.py: the workbench (Streamlit AppTest) saving through the builder page.

    python tests/shared_app_user.py DB LOG SECONDS

Runs the whole app (router included) on the Target set builder with ``$MSM_DB`` = DB, loads the
latest snapshot of the first account into the grid, writes ``{"event": "ready", "rows": N}`` to LOG,
then for SECONDS: sets the snapshot date and time to a new minute and clicks *Save snapshot*. Each
attempt is one JSON line in LOG: ``at`` (the snapshot time), ``result`` (``ack`` when the page
says "Saved the snapshot ... at <at>", ``busy`` when it says the database file is busy, ``error``
otherwise with the page's messages), ``seconds`` (from the click to the rendered page).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
FIRST = datetime(2030, 1, 1, tzinfo=UTC)


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def _rendered(at: AppTest) -> bool:
    return any(getattr(b, "key", None) == "builder_save" for b in at.button)


def main(db: str, log_path: str, seconds: str) -> None:
    os.environ["MSM_DB"] = db
    os.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("msm_app/pages/builder.py")
    at.run()
    account = at.selectbox(key="builder_account").value
    at.radio(key="builder_start").set_value("Latest snapshot")
    at.run()
    at.button(key="builder_load").click()
    at.run()
    rows = len(at.session_state["builder_base"])
    deadline = time.monotonic() + float(seconds)
    with open(log_path, "a", buffering=1) as log:
        log.write(json.dumps({"event": "ready", "account": account, "rows": rows}) + "\n")
        step = 0
        while time.monotonic() < deadline:
            if not _rendered(at):  # the last rerun found the file busy: the page is a busy message and a Retry button
                at.run()
                continue
            when = FIRST + timedelta(minutes=step)
            step += 1
            # the new time and the click reach the page in one rerun, as when a user picks a time then clicks
            at.date_input(key="builder_date").set_value(when.date())
            at.time_input(key="builder_time").set_value(when.time())
            at.button(key="builder_save").click()
            started = time.monotonic()
            at.run()
            elapsed = time.monotonic() - started
            successes, warnings, errors = (
                _texts(at, "success"),
                _texts(at, "warning"),
                _texts(at, "error") + _texts(at, "exception"),
            )
            stamp = when.strftime("%Y-%m-%d %H:%M UTC")
            if any("Saved the snapshot" in s and stamp in s.replace("\\", "") for s in successes):
                result = "ack"
            elif any("database file is busy" in w or "is in use by" in w for w in warnings + errors):
                result = "busy"
            else:
                result = "error"
            log.write(
                json.dumps(
                    {
                        "event": "attempt",
                        "account": account,
                        "at": when.isoformat(),
                        "rows": rows,
                        "result": result,
                        "seconds": round(elapsed, 3),
                        "messages": [] if result == "ack" else warnings + errors,
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main(*sys.argv[1:4])
