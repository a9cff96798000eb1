"""Crash safety (issue 10, item 2): a writer killed with SIGKILL at random moments never leaves half a write.

A child process (tests/crash_writer.py) writes in a loop on a copy of one prepared database
(100,000 assets, a snapshot of 100,000 rows, an export): new snapshots of 100,000 rows, overwrites
of them, bulk imports of 50,000 assets and exports over the previous export. The parent kills it
with SIGKILL at a seeded random moment, then checks, against what the child logged as begun and
acknowledged:

- the database opens (the kill's write-ahead log is replayed) and its migrations are recorded;
- every position set has all of its rows (exactly 100,000) or does not exist, and holds one
  version only (the old or the new one, never a mix): acknowledged writes are there, the write in
  flight is there in full or not at all;
- every bulk import is all or nothing; every row satisfies the schema's rules (checked with SQL);
- the export folder holds a finished export: every dataset, each readable and made of whole
  snapshots of one version each (a hidden ``.msm-export-*`` staging folder may be left by the
  kill; the next export removes it, see ``test_next_export_removes_a_stale_staging_folder``).

Audited writes (issue 19) get their own trials (``test_sigkill_during_audited_writes_...``, a smaller
book, tests/crash_audit_writer.py): a writer saving, overwriting and restoring snapshots and bulk
importing assets, each with its actor and reason, is killed mid-write; afterwards every position set
has exactly one ``save`` event, as many ``overwrite``/``restore`` events as kept versions (each whole,
numbered 1..n), every asset exactly one ``add`` event, and no event names a row that is not there.
``MSM_CRASH_AUDIT_TRIALS`` (default 8) changes their number.

Figures (trials, kills during each kind of write, violations) go to
``$MSM_RELIABILITY_OUT/crash_safety.json`` (default: a temporary folder).
``MSM_CRASH_TRIALS`` (default 30) and ``MSM_CRASH_SEED`` (default 10) change the run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import msm
import msm_portfolios
from msm.services.export import export_snapshots

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import crash_writer as writer  # noqa: E402

TRIALS = int(os.environ.get("MSM_CRASH_TRIALS", "30"))
CHAIN = 5  # runs one after another on one file (then a fresh copy of the template)
SEED = int(os.environ.get("MSM_CRASH_SEED", "10"))
# How long each kind of write takes (s), updated from what the trials observe: a trial's kill comes
# at a random moment within the (median) duration of its first write (so every kind is hit), and
# every third one up to 2 s later (so writes are acknowledged before the kill too).
TYPICAL_SECONDS = {"snapshot": 1.8, "overwrite": 2.6, "import": 0.6, "export": 0.8}
EXPORT_DATASETS = ("target_positions", "portfolio_weights", "assets")

# Every rule of the schema (tables, keys, CHECKs), as a query counting the rows that break it.
CONSTRAINTS = {
    "position set without rows": (
        "SELECT count(*) FROM position_set p WHERE NOT EXISTS (SELECT 1 FROM target_positions t"
        " WHERE t.position_set_uid = p.uid)"
    ),
    "row without its position set": (
        "SELECT count(*) FROM target_positions t LEFT JOIN position_set p ON p.uid = t.position_set_uid"
        " WHERE p.uid IS NULL"
    ),
    "row time is not its set's time": (
        "SELECT count(*) FROM target_positions t JOIN position_set p ON p.uid = t.position_set_uid"
        " WHERE t.time_index <> p.position_set_time"
    ),
    "target reference": (
        "SELECT count(*) FROM target_positions WHERE NOT coalesce((target_type = 'asset'"
        " AND asset_uid IS NOT NULL AND portfolio_uid IS NULL AND target_uid = asset_uid)"
        " OR (target_type = 'portfolio' AND portfolio_uid IS NOT NULL AND asset_uid IS NULL"
        " AND target_uid = portfolio_uid), false)"
    ),
    "one exposure": (
        "SELECT count(*) FROM target_positions WHERE (weight_notional_exposure IS NOT NULL)::INT"
        " + (constant_notional_exposure IS NOT NULL)::INT"
        " + (single_asset_quantity IS NOT NULL)::INT <> 1"
    ),
    "finite exposure": (
        "SELECT count(*) FROM target_positions"
        " WHERE NOT coalesce(isfinite(coalesce(weight_notional_exposure, constant_notional_exposure,"
        " single_asset_quantity)), false)"
    ),
    "unknown asset": (
        "SELECT count(*) FROM target_positions t LEFT JOIN asset a ON a.uid = t.asset_uid"
        " WHERE t.asset_uid IS NOT NULL AND a.uid IS NULL"
    ),
    "unknown portfolio": (
        "SELECT count(*) FROM target_positions t LEFT JOIN portfolio p ON p.uid = t.portfolio_uid"
        " WHERE t.portfolio_uid IS NOT NULL AND p.uid IS NULL"
    ),
    "duplicate target row": (
        "SELECT count(*) FROM (SELECT 1 FROM target_positions"
        " GROUP BY time_index, position_set_uid, target_type, target_uid HAVING count(*) > 1)"
    ),
    "duplicate position set": (
        "SELECT count(*) FROM (SELECT 1 FROM position_set"
        " GROUP BY account_target_allocation_uid, position_set_time HAVING count(*) > 1)"
    ),
    "duplicate asset": "SELECT count(*) FROM (SELECT 1 FROM asset GROUP BY unique_identifier HAVING count(*) > 1)",
    "metadata not an object": (
        "SELECT count(*) FROM target_positions WHERE metadata_json IS NOT NULL AND json_type(metadata_json) <> 'OBJECT'"
    ),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash-template")
    writer.prepare(folder / "msm.duckdb", folder / "export")
    return folder


@pytest.fixture(scope="module")
def figures_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("MSM_RELIABILITY_OUT") or tmp_path_factory.mktemp("reliability"))
    out.mkdir(parents=True, exist_ok=True)
    return out / "crash_safety.json"


def _read_log(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    # the last line may be cut short by the kill: a line is only an event once it is whole
    return [json.loads(line) for line in lines if line.endswith("}")]


def _run_trial(
    template: Path | None, folder: Path, seed: int, first: str, delay: float, version_base: int = 1
) -> tuple[list[dict[str, Any]], float]:
    """Start the writer on ``folder`` (a fresh copy of ``template`` when given, else the file the last
    trial left), kill it ``delay`` s after it is ready; its log and the time to ready."""
    if template is not None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copyfile(template / "msm.duckdb", folder / "msm.duckdb")
        shutil.copytree(template / "export", folder / "export")
    log = folder / "log.jsonl"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    child = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "crash_writer.py"),
            str(folder / "msm.duckdb"),
            str(folder / "export"),
            str(log),
            str(seed),
            first,
            str(version_base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not any(e["event"] == "ready" for e in _read_log(log)):
            if child.poll() is not None:
                pytest.fail(f"the writer stopped before it was ready: {child.stderr.read() if child.stderr else ''}")
            if time.monotonic() - started > 60:
                pytest.fail("the writer was not ready within 60 s")
            time.sleep(0.02)
        ready = time.monotonic() - started
        time.sleep(delay)
        if child.poll() is not None:  # it must still be writing: a writer that stopped by itself failed
            pytest.fail(
                f"the writer stopped by itself (exit {child.returncode}): {child.stderr.read() if child.stderr else ''}"
            )
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return _read_log(log), ready


def _expected(
    events: list[dict[str, Any]], before: dict[str, int] | None = None, batches_before: dict[str, int] | None = None
) -> tuple[dict[str, set[int | None]], dict[str, set[int]], str]:
    """From the state before the run and its log: allowed versions per snapshot time, allowed asset
    counts per import batch, the kind in flight."""
    snapshots: dict[str, set[int | None]] = {at: {v} for at, v in (before or {writer.T0.isoformat(): 1}).items()}
    batches: dict[str, set[int]] = {p: {n} for p, n in (batches_before or {}).items()}
    begun: dict[str, Any] | None = None
    for event in events:
        if event["event"] == "begin":
            begun = event
        elif event["event"] == "ack":
            assert begun is not None and begun["kind"] == event["kind"]
            if event["kind"] in ("snapshot", "overwrite"):
                snapshots[event["at"]] = {event["version"]}
            elif event["kind"] == "import":
                batches[event["prefix"]] = {event["rows"]}
            begun = None
    if begun is None:
        return snapshots, batches, "between writes"
    if begun["kind"] in ("snapshot", "overwrite"):  # old (or absent) or new, nothing else
        snapshots[begun["at"]] = snapshots.get(begun["at"], {None}) | {begun["version"]}
    elif begun["kind"] == "import":
        batches[begun["prefix"]] = {0, begun["rows"]}
    return snapshots, batches, begun["kind"]


def _check_database(
    db: Path, snapshots: dict[str, set[int | None]], batches: dict[str, set[int]]
) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Problems found, and the state found: version per snapshot time, assets per import batch."""
    problems: list[str] = []
    store = msm.Store(db, busy_timeout=5)
    msm.check_schema(store, msm_portfolios.MIGRATIONS)  # opens the file (replays the log) and reads the migrations
    with store.connect():
        for rule, sql in CONSTRAINTS.items():
            count = store.query(sql).item()
            if count:
                problems.append(f"{count} rows break {rule!r}")
        sets = store.query(
            "SELECT p.position_set_time AS at, p.source, count(t.position_set_uid) AS n, "
            "count(DISTINCT t.weight_notional_exposure) AS versions, min(t.weight_notional_exposure) AS weight "
            "FROM position_set p LEFT JOIN target_positions t ON t.position_set_uid = p.uid GROUP BY ALL"
        )
        prefixes = {
            prefix: store.query("SELECT count(*) FROM asset WHERE starts_with(unique_identifier, ?)", [prefix]).item()
            for prefix in batches
        }
        base = store.query("SELECT count(*) FROM asset WHERE starts_with(unique_identifier, 'A')").item()
    if base != writer.ROWS:
        problems.append(f"the template's assets: {base} rows, expected {writer.ROWS}")
    found = {}
    for row in sets.iter_rows(named=True):
        at = row["at"].isoformat()
        if row["n"] != writer.ROWS or row["versions"] != 1:
            problems.append(
                f"snapshot at {at}: {row['n']} rows in {row['versions']} versions;"
                f" expected {writer.ROWS} rows of one version"
            )
            continue
        version = round(row["weight"] * 1e6)
        if row["source"] != f"v{version}":
            problems.append(f"snapshot at {at}: rows of version {version} under the source {row['source']!r}")
        found[at] = version
    for at, allowed in snapshots.items():
        if found.get(at) not in allowed:
            problems.append(f"snapshot at {at}: version {found.get(at)}, expected one of {sorted(allowed, key=str)}")
    problems += [f"snapshot at {at} (version {v}) was never written" for at, v in found.items() if at not in snapshots]
    problems += [
        f"import {p}: {n} of its assets stored, expected one of {sorted(batches[p])}"
        for p, n in prefixes.items()
        if n not in batches[p]
    ]
    return problems, found, {p: n for p, n in prefixes.items() if n}


def _check_export(out: Path) -> tuple[list[str], set[str]]:
    """Problems of the export folder, and the names of the staging folders it holds."""
    problems = []
    present = [name for name in EXPORT_DATASETS if (out / name).exists()]
    if present != list(EXPORT_DATASETS):
        return [f"partial export: only {present} of {list(EXPORT_DATASETS)}"], set()
    try:
        rows = pl.scan_parquet(out / "target_positions" / "**" / "*.parquet", hive_partitioning=True).collect()
        for name in ("portfolio_weights", "assets"):
            pl.scan_parquet(out / name / "*.parquet").collect()
    except Exception as exc:
        return [f"unreadable export: {exc}"], set()
    per_set = rows.group_by("position_set_uid").agg(
        pl.len().alias("n"), pl.col("weight_notional_exposure").n_unique().alias("versions")
    )
    bad = per_set.filter((pl.col("n") != writer.ROWS) | (pl.col("versions") != 1))
    if bad.height:
        problems.append(f"export holds {bad.height} partial or mixed snapshots")
    return problems, {p.name for p in out.glob(".msm-export-*")}


def test_sigkill_never_leaves_half_a_write(template: Path, tmp_path: Path, figures_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    kills: Counter[str] = Counter()
    acknowledged: Counter[str] = Counter()
    violations: list[str] = []
    staging_left, staging_seen, ready_times, check_times, details = 0, set(), [], [], []
    durations = {kind: [seconds] for kind, seconds in TYPICAL_SECONDS.items()}
    state: tuple[dict[str, int], dict[str, int]] = ({}, {})
    folder = tmp_path / "chain"
    for trial in range(TRIALS):
        fresh = trial % CHAIN == 0  # a chain of runs on one file: each starts from what the last kill left
        first = writer.KINDS[trial % len(writer.KINDS)]
        delay = rng.uniform(0, statistics.median(durations[first]))
        if trial % 3 == 2:  # every third kill comes later: after one or more acknowledged writes
            delay += rng.uniform(0, 2.0)
        events, ready = _run_trial(
            template if fresh else None,
            folder,
            seed=rng.randrange(1 << 30),
            first=first,
            delay=delay,
            version_base=1 + 1000 * trial,
        )
        ready_times.append(ready)
        begun = {}
        for event in events:
            if event["event"] == "begin":
                begun = event
            elif event["event"] == "ack":
                durations[event["kind"]].append(event["t"] - begun["t"])
        checking = time.monotonic()
        snapshots, batches, in_flight = _expected(events, *(({writer.T0.isoformat(): 1}, {}) if fresh else state))
        kills[in_flight] += 1
        details.append(
            {
                "first": first,
                "kill_after_s": round(delay, 2),
                "killed_during": in_flight,
                "acknowledged": sum(e["event"] == "ack" for e in events),
            }
        )
        acknowledged.update(e["kind"] for e in events if e["event"] == "ack")
        problems, *found = _check_database(folder / "msm.duckdb", snapshots, batches)
        state = (found[0], found[1])
        export_problems, stale = _check_export(folder / "export")
        staging_left += bool(stale - staging_seen)  # this kill left a staging folder (the next export removes it)
        staging_seen |= stale
        check_times.append(time.monotonic() - checking)
        violations += [f"trial {trial} (killed during {in_flight}): {p}" for p in problems + export_problems]
    elapsed = time.monotonic() - started
    figures = {
        "test": "tests/test_crash_safety.py",
        "recorded_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "seed": SEED,
        "trials": TRIALS,
        "trials_per_file": CHAIN,
        "rows_per_snapshot": writer.ROWS,
        "assets_per_import": writer.BATCH,
        "kills_during": dict(sorted(kills.items())),
        "acknowledged_writes": dict(sorted(acknowledged.items())),
        "write_seconds_max": {kind: round(max(d[1:]), 2) for kind, d in sorted(durations.items()) if len(d) > 1},
        "writer_start_seconds_mean": round(sum(ready_times) / len(ready_times), 2),
        "check_seconds_mean": round(sum(check_times) / len(check_times), 2),
        "kills_leaving_a_staging_folder": staging_left,
        "violations": len(violations),
        "violation_details": violations,
        "seconds": round(elapsed, 1),
        "trial_details": details,
    }
    figures_path.write_text(json.dumps(figures, indent=2) + "\n")
    assert violations == []
    # most kills landed during a write, not between writes (which kind each hit depends on the
    # machine's speed; the figures record it, and every kind is aimed at in turn)
    assert sum(kills[kind] for kind in writer.KINDS) >= TRIALS // 2, kills
    assert sum(acknowledged.values()) > 0, "no write was acknowledged before a kill"


def test_next_export_removes_a_stale_staging_folder(template: Path, tmp_path: Path) -> None:
    """An export killed mid-way leaves its staging folder (and the previous export whole); the next one removes it."""
    for attempt, delay in enumerate((0.25, 0.1, 0.4, 0.15, 0.5)):
        folder = tmp_path / f"attempt-{attempt}"
        events, _ = _run_trial(template, folder, seed=attempt, first="export", delay=delay)
        if _expected(events)[2] == "export" and list((folder / "export").glob(".msm-export-*")):
            break
    else:
        pytest.fail("no kill landed while an export was being written")
    out = folder / "export"
    assert _check_export(out)[0] == []  # the previous export is still whole
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = out / f".msm-export-{live.pid}-running"  # a running export's folder is never touched
        running.mkdir()
        old = time.time() - 60
        os.utime(running, (old, old))
        result = export_snapshots(
            msm.Store(folder / "msm.duckdb"),
            out,
            weights=msm_portfolios.duckdb_weights_source(msm.Store(folder / "msm.duckdb")),
            overwrite=True,
        )
        assert [p.name for p in out.glob(".msm-export-*")] == [running.name]
    finally:
        live.kill()
        live.wait()
    assert result.snapshots >= 1 and _check_export(out) == ([], {running.name})


# -- audited writes: no change without its event, no event without its change -----------------------------
import crash_audit_writer as audit_writer  # noqa: E402

AUDIT_TRIALS = int(os.environ.get("MSM_CRASH_AUDIT_TRIALS", "8"))
AUDIT_TYPICAL_SECONDS = 1.2  # how long one audited write of the child takes, about
# Each rule as a query counting what breaks it (a change without its event, an event without its change).
AUDIT_CHECKS = {
    "position set without exactly one save event": (
        "SELECT count(*) FROM position_set p WHERE (SELECT count(*) FROM audit_event e"
        " WHERE e.entity_uid = p.uid AND e.action = 'save') <> 1"
    ),
    "position set event without its position set": (
        "SELECT count(*) FROM audit_event e WHERE e.entity_type = 'position_set'"
        " AND NOT EXISTS (SELECT 1 FROM position_set p WHERE p.uid = e.entity_uid)"
    ),
    "overwrites and restores differ from the kept versions": (
        "SELECT count(*) FROM position_set p WHERE (SELECT count(*) FROM audit_event e WHERE e.entity_uid = p.uid"
        " AND e.action IN ('overwrite', 'restore')) <> (SELECT count(DISTINCT r.version)"
        " FROM target_positions_replaced r WHERE r.position_set_uid = p.uid)"
    ),
    "kept versions not numbered 1..n": (
        "SELECT count(*) FROM (SELECT position_set_uid FROM target_positions_replaced GROUP BY ALL"
        " HAVING max(version) <> count(DISTINCT version) OR min(version) <> 1)"
    ),
    "kept version not whole": (
        "SELECT count(*) FROM (SELECT 1 FROM target_positions_replaced GROUP BY position_set_uid, version"
        f" HAVING count(*) <> {audit_writer.ROWS})"
    ),
    "snapshot not whole": (
        "SELECT count(*) FROM position_set p WHERE (SELECT count(*) FROM target_positions t"
        f" WHERE t.position_set_uid = p.uid) <> {audit_writer.ROWS}"
    ),
    "asset without exactly one add event": (
        "SELECT count(*) FROM asset a WHERE (SELECT count(*) FROM audit_event e"
        " WHERE e.entity_uid = a.uid AND e.action = 'add') <> 1"
    ),
    "asset event without its asset": (
        "SELECT count(*) FROM audit_event e WHERE e.entity_type = 'asset'"
        " AND NOT EXISTS (SELECT 1 FROM asset a WHERE a.uid = e.entity_uid)"
    ),
    "import with part of its events": (
        "SELECT count(*) FROM (SELECT reason FROM audit_event WHERE actor = 'import-actor' GROUP BY reason"
        f" HAVING count(*) <> {audit_writer.BATCH})"
    ),
    "event of a write by the wrong actor": (
        "SELECT count(*) FROM audit_event WHERE actor NOT IN ('setup', 'save-actor', 'overwrite-actor',"
        " 'restore-actor', 'import-actor')"
    ),
}


@pytest.fixture(scope="module")
def audit_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash-audit") / "msm.duckdb"
    audit_writer.prepare(path)
    return path


def _kill_audited_writer(template: Path, folder: Path, seed: int, delay: float) -> list[dict[str, Any]]:
    """A fresh copy of ``template`` in ``folder``; the audited writer runs on it, killed ``delay`` s after ready."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db, log = folder / "msm.duckdb", folder / "log.jsonl"
    shutil.copyfile(template, db)
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_audit_writer.py"), str(db), str(log), str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        while not any(e["event"] == "ready" for e in _read_log(log)):
            if child.poll() is not None:
                pytest.fail(f"the audited writer stopped before it was ready: {child.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() - started > 60:
                pytest.fail("the audited writer was not ready within 60 s")
            time.sleep(0.02)
        time.sleep(delay)
        if child.poll() is not None:
            pytest.fail(f"the audited writer stopped by itself: {child.stderr.read()}")  # type: ignore[union-attr]
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stderr:
            child.stderr.close()
    return _read_log(log)


def test_sigkill_during_audited_writes_leaves_no_change_without_its_event(
    audit_template: Path, tmp_path: Path, figures_path: Path
) -> None:
    rng = random.Random(SEED + 19)
    kills: Counter[str] = Counter()
    violations: list[str] = []
    acknowledged = 0
    for trial in range(AUDIT_TRIALS):
        delay = rng.uniform(0, AUDIT_TYPICAL_SECONDS) + (rng.uniform(0, 2.0) if trial % 3 == 2 else 0.0)
        events = _kill_audited_writer(audit_template, tmp_path / "audit", rng.randrange(1, 1 << 20), delay)
        begun = [e for e in events if e["event"] == "begin"]
        acked = [e for e in events if e["event"] == "ack"]
        acknowledged += len(acked)
        kills[begun[-1]["kind"] if len(begun) > len(acked) else "between writes"] += 1
        store = msm.Store(tmp_path / "audit" / "msm.duckdb", busy_timeout=5)
        msm.check_schema(store)
        with store.connect():
            for rule, sql in AUDIT_CHECKS.items():
                count = store.query(sql).item()
                if count:
                    violations.append(f"trial {trial}: {count} break {rule!r}")
            for rule, sql in CONSTRAINTS.items():
                count = store.query(sql).item()
                if count:
                    violations.append(f"trial {trial}: {count} rows break {rule!r}")
    out = figures_path.with_name("crash_safety_audit.json")
    out.write_text(json.dumps({"trials": AUDIT_TRIALS, "kills_during": dict(kills), "violations": violations}) + "\n")
    assert violations == []
    assert sum(n for kind, n in kills.items() if kind != "between writes") >= AUDIT_TRIALS // 2, kills
    assert acknowledged > 0, "no audited write was acknowledged before a kill"


# -- publishing and discarding drafts: no change without its event, no event without its change ----------
import crash_draft_writer as draft_writer  # noqa: E402

DRAFT_TRIALS = int(os.environ.get("MSM_CRASH_DRAFT_TRIALS", "8"))
DRAFT_TYPICAL_SECONDS = 0.5  # how long one write of the draft writer takes, about
_SAVED_AS_DRAFT = (
    "EXISTS (SELECT 1 FROM audit_event s WHERE s.entity_uid = {uid} AND s.action = 'save'"
    " AND json_extract_string(s.after_json, '$.status') = 'draft')"
)
_EVENTS = "(SELECT count(*) FROM audit_event e WHERE e.entity_uid = {uid} AND e.action = '{action}')"
#: An emptied draft: the kill came between a discard's two transactions (its rows gone, with the event).
_EMPTIED = (
    "p.status = 'draft' AND " + _EVENTS.format(uid="p.uid", action="discard") + " = 1"
    " AND NOT EXISTS (SELECT 1 FROM target_positions t WHERE t.position_set_uid = p.uid)"
)
DRAFT_CHECKS = {
    "set without exactly one save event": (
        "SELECT count(*) FROM position_set p WHERE " + _EVENTS.format(uid="p.uid", action="save") + " <> 1"
    ),
    "published draft without exactly one publish event": (
        "SELECT count(*) FROM position_set p WHERE p.status = 'published' AND "
        + _SAVED_AS_DRAFT.format(uid="p.uid")
        + " AND "
        + _EVENTS.format(uid="p.uid", action="publish")
        + " <> 1"
    ),
    "draft with a publish event": (
        "SELECT count(*) FROM position_set p WHERE p.status = 'draft' AND "
        + _EVENTS.format(uid="p.uid", action="publish")
        + " > 0"
    ),
    "publish event without its published set": (
        "SELECT count(*) FROM audit_event e WHERE e.action = 'publish' AND NOT EXISTS"
        " (SELECT 1 FROM position_set p WHERE p.uid = e.entity_uid AND p.status = 'published')"
    ),
    "discard event whose draft still has rows": (
        "SELECT count(*) FROM audit_event e WHERE e.action = 'discard' AND EXISTS"
        " (SELECT 1 FROM target_positions t WHERE t.position_set_uid = e.entity_uid)"
    ),
    "discarded draft whose rows are not kept whole": (
        "SELECT count(*) FROM audit_event e WHERE e.action = 'discard' AND (SELECT count(*)"
        f" FROM target_positions_replaced r WHERE r.position_set_uid = e.entity_uid) <> {draft_writer.ROWS}"
    ),
    "draft gone without its discard event": (
        "SELECT count(*) FROM audit_event s WHERE s.action = 'save' AND json_extract_string(s.after_json, '$.status')"
        " = 'draft' AND NOT EXISTS (SELECT 1 FROM position_set p WHERE p.uid = s.entity_uid) AND "
        + _EVENTS.format(uid="s.entity_uid", action="discard")
        + " <> 1"
    ),
    "snapshot not whole": (
        "SELECT count(*) FROM position_set p WHERE NOT (" + _EMPTIED + ") AND (SELECT count(*) FROM target_positions t"
        f" WHERE t.position_set_uid = p.uid) <> {draft_writer.ROWS}"
    ),
    "four-eyes broken: published by who saved it": (
        "SELECT count(*) FROM audit_event e JOIN audit_event s ON s.entity_uid = e.entity_uid AND s.action = 'save'"
        " WHERE e.action = 'publish' AND e.actor = s.actor"
    ),
}


@pytest.fixture(scope="module")
def draft_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash-drafts") / "msm.duckdb"
    draft_writer.prepare(path)
    return path


def _kill_draft_writer(template: Path, folder: Path, seed: int, delay: float) -> list[dict[str, Any]]:
    """A fresh copy of ``template`` in ``folder``; the draft writer runs on it, killed ``delay`` s after ready."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db, log = folder / "msm.duckdb", folder / "log.jsonl"
    shutil.copyfile(template, db)
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_draft_writer.py"), str(db), str(log), str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        while not any(e["event"] == "ready" for e in _read_log(log)):
            if child.poll() is not None:
                pytest.fail(f"the draft writer stopped before it was ready: {child.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() - started > 60:
                pytest.fail("the draft writer was not ready within 60 s")
            time.sleep(0.02)
        time.sleep(delay)
        if child.poll() is not None:
            pytest.fail(f"the draft writer stopped by itself: {child.stderr.read()}")  # type: ignore[union-attr]
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stderr:
            child.stderr.close()
    return _read_log(log)


def _check_drafts(store: msm.Store, trial: int) -> list[str]:
    """Every rule of :data:`DRAFT_CHECKS` and :data:`CONSTRAINTS` (an emptied draft aside), as violations."""
    found = []
    with store.connect():
        for rule, sql in DRAFT_CHECKS.items():
            count = store.query(sql).item()
            if count:
                found.append(f"trial {trial}: {count} break {rule!r}")
        for rule, sql in CONSTRAINTS.items():
            if rule == "position set without rows":
                sql = sql.replace("FROM position_set p WHERE", f"FROM position_set p WHERE NOT ({_EMPTIED}) AND")
            count = store.query(sql).item()
            if count:
                found.append(f"trial {trial}: {count} rows break {rule!r}")
    return found


def test_sigkill_during_publish_and_discard_leaves_no_change_without_its_event(
    draft_template: Path, tmp_path: Path, figures_path: Path
) -> None:
    rng = random.Random(SEED + 5)
    kills: Counter[str] = Counter()
    violations: list[str] = []
    acknowledged = 0
    for trial in range(DRAFT_TRIALS):
        delay = rng.uniform(0, DRAFT_TYPICAL_SECONDS) + (rng.uniform(0, 2.0) if trial % 3 == 2 else 0.0)
        events = _kill_draft_writer(draft_template, tmp_path / "drafts", rng.randrange(1, 1 << 20), delay)
        begun = [e for e in events if e["event"] == "begin"]
        acked = [e for e in events if e["event"] == "ack"]
        acknowledged += len(acked)
        kills[begun[-1]["kind"] if len(begun) > len(acked) else "between writes"] += 1
        store = msm.Store(tmp_path / "drafts" / "msm.duckdb", busy_timeout=5)
        msm.check_schema(store)
        violations += _check_drafts(store, trial)
        # an emptied draft (a kill between a discard's two transactions) goes with the next discard
        for when in msm.list_drafts(store).filter(pl.col("rows") == 0)["position_set_time"].to_list():
            msm.discard_draft(store, draft_writer.ACCOUNT, when, actor="cleanup")
        assert msm.list_drafts(store).filter(pl.col("rows") == 0).height == 0
    out = figures_path.with_name("crash_safety_drafts.json")
    out.write_text(json.dumps({"trials": DRAFT_TRIALS, "kills_during": dict(kills), "violations": violations}) + "\n")
    assert violations == []
    assert sum(n for kind, n in kills.items() if kind != "between writes") >= DRAFT_TRIALS // 2, kills
    assert acknowledged > 0, "no draft write was acknowledged before a kill"
