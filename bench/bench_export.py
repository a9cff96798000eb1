"""Benchmark of `msm export --expanded` against DuckDB's own COPY (issue 7): prints JSON; not a test.

On the look-through book of ``bench/bench_expansion.py`` (10,000 position sets x 20 targets over
2026, 200 portfolios of 100 constituents with 12 compositions each) and on one ``--scale`` times
larger (more position sets, the same registry), each in its own process so that peak RSS is its own:

- ``msm``: ``msm export --out DIR --expanded --weights-as-of now`` (the command as a user runs it:
  validation-free reads, the core's polars expansion in chunks, Parquet per snapshot date);
- ``copy``: DuckDB writing the same two datasets itself, the floor: the labelled target rows and
  the look-through as one SQL query (ASOF join for the composition, equi-join for constituents),
  each written with ``COPY ... (FORMAT parquet, PARTITION_BY (snapshot_date))``.

Both write the same row counts (checked). Writes bench/results/export.json.

    .venv/bin/python bench/bench_export.py [--scale 10] [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

RESULT = HERE / "results" / "export.json"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _count(path: Path) -> int:
    import polars as pl

    return int(pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True).select(pl.len()).collect().item())


def stage_msm(db: str, out: str) -> dict[str, Any]:
    """``msm export --expanded`` as a user runs it; its seconds and peak RSS."""
    from msm_cli.main import main

    started = time.perf_counter()
    code = main(["--db", db, "export", "--out", out, "--expanded", "--weights-as-of", "now", "--format", "json"])
    seconds = time.perf_counter() - started
    assert code == 0
    return {"seconds": seconds, "peak_rss_mb": _maxrss_mb()}


def stage_copy(db: str, out: str) -> dict[str, Any]:
    """DuckDB writing both datasets itself with COPY (the floor); its seconds and peak RSS."""
    import duckdb
    from bench_expansion import sql_expansion

    labels = """
        SELECT ps.uid AS position_set_uid, acc.unique_identifier AS account, al.unique_identifier AS allocation
        FROM position_set AS ps JOIN account_target_allocation AS al ON al.uid = ps.account_target_allocation_uid
        JOIN account AS acc ON acc.uid = al.account_uid
    """
    targets = f"""
        SELECT t.position_set_uid::VARCHAR AS position_set_uid, t.time_index, l.account, l.allocation, t.target_type,
               t.target_uid::VARCHAR AS target_uid, t.asset_uid::VARCHAR AS asset_uid,
               t.portfolio_uid::VARCHAR AS portfolio_uid,
               coalesce(a.unique_identifier, p.unique_identifier) AS unique_identifier,
               coalesce(a.name, p.portfolio_name, a.unique_identifier, p.unique_identifier) AS display_label,
               t.weight_notional_exposure, t.constant_notional_exposure, t.single_asset_quantity,
               t.metadata_json::VARCHAR AS metadata_json,
               strftime(t.time_index, '%Y-%m-%d') AS snapshot_date
        FROM target_positions AS t JOIN ({labels}) AS l ON l.position_set_uid = t.position_set_uid
        LEFT JOIN asset AS a ON a.uid = t.asset_uid LEFT JOIN portfolio AS p ON p.uid = t.portfolio_uid
    """
    expanded = sql_expansion(False, "now").rsplit("SELECT * FROM expanded", 1)[0]
    exposure = f"""{expanded}
        SELECT e.*, l.account, l.allocation, strftime(e.time_index, '%Y-%m-%d') AS snapshot_date
        FROM expanded AS e JOIN ({labels}) AS l ON l.position_set_uid = e.position_set_uid::UUID
    """
    started = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET VARIABLE now = now()")
    for name, query in (
        ("target_positions", targets),
        ("target_exposure", exposure.replace("$now", "getvariable('now')")),
    ):
        con.sql(query).write_parquet(str(Path(out) / name), partition_by=["snapshot_date"])
    con.close()
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": _maxrss_mb()}


STAGES = {"msm": stage_msm, "copy": stage_copy}


def _run(stage: str, db: str, out: str) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    Path(out).mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--db", db, "--out-dir", out],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rows"] = {name: _count(Path(out) / name) for name in ("target_positions", "target_exposure")}
    return result


def _book(db: str, sets: int) -> dict[str, Any]:
    from bench_expansion import FULL, generate

    return generate(db, {**FULL, "sets": sets})


def main() -> None:
    """Run both stages on each book, twice, interleaved; write and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="the larger book has this many times the position sets")
    parser.add_argument("--skip-large", action="store_true", help="only the bench book")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.db, args.out_dir)))
        return
    books = {"bench": 10_000} | ({} if args.skip_large else {f"x{args.scale}": 10_000 * args.scale})
    report: dict[str, Any] = {
        "benchmark": "export",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_start": os.getloadavg()[0],
        },
        "weights_as_of": "now",
        "books": {},
    }
    with tempfile.TemporaryDirectory(prefix="msm-bench-export-") as tmp:
        for label, sets in books.items():
            db = str(Path(tmp) / f"{label}.duckdb")
            print(f"generating the {label} book ({sets:,} position sets) ...", file=sys.stderr)
            book = _book(db, sets)
            results = {}
            for stage in ("copy", "msm", "copy", "msm"):  # twice each, interleaved; the best is kept
                print(f"  {stage} ...", file=sys.stderr)
                run = _run(stage, db, str(Path(tmp) / f"{label}-{stage}"))
                best = results.get(stage)
                results[stage] = run if best is None or run["seconds"] < best["seconds"] else best
                shutil.rmtree(Path(tmp) / f"{label}-{stage}", ignore_errors=True)
            assert results["msm"]["rows"] == results["copy"]["rows"], results
            report["books"][label] = {
                "book": book,
                **results,
                "time_ratio": results["msm"]["seconds"] / results["copy"]["seconds"],
                "memory_ratio": results["msm"]["peak_rss_mb"] / results["copy"]["peak_rss_mb"],
            }
            os.remove(db)
    report["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
    report["goals"] = {"time_ratio": 1.5, "memory_ratio": 1.0}
    print(json.dumps(report, indent=2))
    RESULT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
