"""One database file, three kinds of user at once (issue 10, item 3).

For ``$MSM_SHARED_SECONDS`` (default 60) on one copy of the demo database:

- the app: the whole workbench in Streamlit's AppTest, in its own process (tests/shared_app_user.py),
  saving snapshots through the Target set builder (a new minute each time, then *Save snapshot*);
- a notebook-style reader process (tests/shared_reader.py) reading snapshots, their look-through and
  history in a loop, which once keeps the file open for longer than a writer's retry budget;
- two command-line writers: ``msm --db DB targets save ACCOUNT --at TS --file F`` again and again,
  each with its own account and times.

Then: every acknowledged write (the app's "Saved the snapshot ... at TS", the command's exit 0) is in
the file with all its rows; every write refused as busy (the app's busy message, the command's
``error: database file ... is in use by ...``) is absent, not partial; nothing else failed, no read
failed; no snapshot is in the file that nobody acknowledged; every process finished in time.

Figures (tried, acknowledged, refused as busy, lost, the longest wait) go to
``$MSM_RELIABILITY_OUT/shared_file.json`` (default: a temporary folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_harness import ROOT, build_demo

import msm

HERE = Path(__file__).resolve().parent
SECONDS = float(os.environ.get("MSM_SHARED_SECONDS", "60"))
CLI_BUDGET = 10.0  # the command line's retry budget: msm.Store's default busy_timeout
HOLD_SECONDS = CLI_BUDGET + 3  # the reader's long cell keeps the file longer than that
SLACK = 90.0  # every process must be done this long after the run's end
# (account, first snapshot time) of each command-line writer; the app writes the first account from 2030.
CLI_WRITERS = (
    ("example-account-alpha", datetime(2031, 1, 1, tzinfo=UTC)),
    ("example-account-beta", datetime(2032, 1, 1, tzinfo=UTC)),
)
TARGETS_CSV = "asset,portfolio,weight_notional_exposure\nBTC,,0.3\nETH,,0.2\n,CRYPTO-MAJORS-EW,0.5\n"
CLI_ROWS = 3


def _msm_command() -> list[str]:
    """The ``msm`` console script of this environment (the same entry point, through python, when absent)."""
    script = Path(sys.executable).with_name("msm")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from msm_cli.main import main; sys.exit(main())"]
    )


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.exists() else []


def _cli_writer(
    db: Path, targets: Path, account: str, first: datetime, stop: float, attempts: list[dict[str, Any]]
) -> None:
    step = 0
    while time.monotonic() < stop:
        at = first + timedelta(minutes=step)
        step += 1
        begun = time.monotonic()
        try:
            done = subprocess.run(
                [
                    *_msm_command(),
                    "--db",
                    str(db),
                    "targets",
                    "save",
                    account,
                    "--at",
                    at.isoformat(),
                    "--file",
                    str(targets),
                ],
                capture_output=True,
                text=True,
                timeout=CLI_BUDGET + 50,
                env=_env(),
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            attempts.append(
                {
                    "who": "cli",
                    "account": account,
                    "at": at.isoformat(),
                    "rows": CLI_ROWS,
                    "result": "hung",
                    "seconds": round(time.monotonic() - begun, 3),
                    "messages": [],
                }
            )
            continue
        err = done.stderr.strip()
        if done.returncode == 0:
            result = "ack"
        elif (
            done.returncode == 1
            and err.startswith("error: database file")
            and "is in use by" in err
            and "Traceback" not in err
        ):
            result = "busy"
        else:
            result = "error"
        attempts.append(
            {
                "who": "cli",
                "account": account,
                "at": at.isoformat(),
                "rows": CLI_ROWS,
                "result": result,
                "seconds": round(time.monotonic() - begun, 3),
                "messages": [] if result == "ack" else [err],
            }
        )


def _wait_ready(log: Path, proc: subprocess.Popen, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["event"] == "ready" for e in _events(log)):
        if proc.poll() is not None:
            pytest.fail(f"the {name} stopped before it was ready: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"the {name} was not ready within {timeout:g} s")
        time.sleep(0.1)


def _summary(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r: [a for a in attempts if a["result"] == r] for r in ("ack", "busy", "error", "hung")}
    return {
        "tried": len(attempts),
        "acknowledged": len(by["ack"]),
        "refused_busy": len(by["busy"]),
        "failed_otherwise": len(by["error"]),
        "hung": len(by["hung"]),
        "longest_wait_to_ack_s": max((a["seconds"] for a in by["ack"]), default=0.0),
        "longest_wait_to_refusal_s": max((a["seconds"] for a in by["busy"]), default=0.0),
    }


def _a_held_file_refuses_a_cli_write(db: Path, targets: Path) -> None:
    at = "2099-06-30T12:34:56+00:00"  # a time no writer of the run uses
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "time.sleep(float(sys.argv[2]))",
            str(db),
            str(CLI_BUDGET + 8),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        begun = time.monotonic()
        done = subprocess.run(
            [
                *_msm_command(),
                "--db",
                str(db),
                "targets",
                "save",
                "example-account-alpha",
                "--at",
                at,
                "--file",
                str(targets),
            ],
            capture_output=True,
            text=True,
            timeout=CLI_BUDGET + 60,
            env=_env(),
            cwd=ROOT,
        )
        waited = time.monotonic() - begun
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1 and done.stderr.startswith("error: database file") and "is in use by" in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr and waited < CLI_BUDGET + 30, waited
    stored = msm.Store(db).query(
        "SELECT count(*) AS n FROM position_set WHERE position_set_time = ?::TIMESTAMPTZ", [at]
    )["n"][0]
    assert stored == 0  # absent, not partial


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
def test_app_notebook_and_cli_share_one_file(tmp_path: Path) -> None:
    db = build_demo(tmp_path / "msm.duckdb")
    targets = tmp_path / "targets.csv"
    targets.write_text(TARGETS_CSV)
    logs = {name: tmp_path / f"{name}.jsonl" for name in ("app", "reader")}
    env = _env()
    started = time.monotonic()
    app = subprocess.Popen(
        [sys.executable, str(HERE / "shared_app_user.py"), str(db), str(logs["app"]), str(SECONDS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs = {"app": app}
    try:
        _wait_ready(logs["app"], app, "app user")  # the grid is loaded: the run starts now for everyone
        run_start = time.monotonic()
        procs["reader"] = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "shared_reader.py"),
                str(db),
                str(logs["reader"]),
                str(SECONDS),
                str(SECONDS / 3),
                str(HOLD_SECONDS),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        cli_attempts: list[list[dict[str, Any]]] = [[] for _ in CLI_WRITERS]
        threads = [
            threading.Thread(
                target=_cli_writer,
                args=(db, targets, account, first, run_start + SECONDS, cli_attempts[i]),
                daemon=True,
            )
            for i, (account, first) in enumerate(CLI_WRITERS)
        ]
        for thread in threads:
            thread.start()
        deadline = run_start + SECONDS + SLACK
        hung = []
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                hung.append("a command-line writer")
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hung.append(name)
        elapsed = time.monotonic() - run_start
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = {name: proc.stderr.read() if proc.stderr else "" for name, proc in procs.items()}
    for name, proc in procs.items():
        assert hung or proc.returncode == 0, f"the {name} failed (exit {proc.returncode}): {stderr[name][-3000:]}"

    app_attempts = [{"who": "app", **e} for e in _events(logs["app"]) if e["event"] == "attempt"]
    cli = [a for attempts in cli_attempts for a in attempts]
    reads = [e for e in _events(logs["reader"]) if e["event"] == "read"]
    holds = [e for e in _events(logs["reader"]) if e["event"] == "held"]
    attempts = app_attempts + cli

    # What the file holds at the end (one open, after everyone is done).
    store = msm.Store(db)
    stored = {
        (row["account"], row["at"].astimezone(UTC).isoformat()): row["rows"]
        for row in store.query(
            "SELECT a.unique_identifier AS account, p.position_set_time AS at, count(t.position_set_uid) AS rows "
            "FROM position_set p JOIN account_target_allocation al ON al.uid = p.account_target_allocation_uid "
            "JOIN account a ON a.uid = al.account_uid LEFT JOIN target_positions t ON t.position_set_uid = p.uid "
            "WHERE p.position_set_time >= TIMESTAMPTZ '2030-01-01 00:00:00+00' GROUP BY ALL"
        ).iter_rows(named=True)
    }
    lost = [a for a in attempts if a["result"] == "ack" and stored.get((a["account"], a["at"])) != a["rows"]]
    partial_or_present = [a for a in attempts if a["result"] != "ack" and (a["account"], a["at"]) in stored]
    tried = {(a["account"], a["at"]) for a in attempts}
    unacknowledged = sorted(k for k in stored if k not in tried)

    figures = {
        "test": "tests/test_shared_file.py",
        "recorded_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "app": {
            "how": "Streamlit AppTest of the whole app in its own process, saving through the Target set builder",
            "busy_timeout_s": 3.0,
            **_summary(app_attempts),
        },
        "cli_writers": {"processes": len(CLI_WRITERS), "busy_timeout_s": CLI_BUDGET, **_summary(cli)},
        "reader": {
            "reads": len(reads),
            "ok": sum(r["result"] == "ok" for r in reads),
            "refused_busy": sum(r["result"] == "busy" for r in reads),
            "failed_otherwise": sum(r["result"] == "error" for r in reads),
            "longest_read_s": max((r["seconds"] for r in reads), default=0.0),
            "held_file_once_s": holds[0]["seconds"] if holds else None,
            "waited_to_hold_s": holds[0]["waited"] if holds else None,
        },
        "writes": {
            **_summary(attempts),
            "lost": len(lost),
            "refused_but_stored": len(partial_or_present),
            "stored_but_never_acknowledged": len(unacknowledged),
        },
        "hung": hung,
    }
    out = Path(os.environ.get("MSM_RELIABILITY_OUT") or tmp_path / "figures")
    out.mkdir(parents=True, exist_ok=True)
    (out / "shared_file.json").write_text(json.dumps(figures, indent=2) + "\n")

    assert hung == [], f"did not finish in time: {hung}"
    assert lost == [], lost[:5]
    assert partial_or_present == [], partial_or_present[:5]
    assert unacknowledged == [], unacknowledged[:5]
    failed = [a for a in attempts if a["result"] not in ("ack", "busy")]
    assert failed == [], failed[:5]
    assert [r for r in reads if r["result"] == "error"] == []
    assert holds, "the reader never got the file for its long cell"
    assert (
        figures["app"]["acknowledged"] > 0
        and figures["cli_writers"]["acknowledged"] > 0
        and figures["reader"]["ok"] > 0
    )
    # how often the busy path was taken above depends on the machine's speed; it is recorded, and
    # taken for certain once here: a write while the file is held is refused whole, in its budget
    _a_held_file_refuses_a_cli_write(db, targets)
    busy = [m for a in attempts if a["result"] == "busy" for m in a["messages"]]
    assert all("is in use by" in m for m in busy), busy[:3]
    assert time.monotonic() - started < SECONDS + SLACK + 130
