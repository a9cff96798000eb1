"""Benchmark of ``msm rebalance --all`` against the same run's ``msm drift --all``. Not a test: it asserts nothing.

    python bench/bench_rebalance.py            # 10,000 accounts x 50 holdings on the drift bench book
    python bench/bench_rebalance.py --small    # 1,000 accounts

The book is the drift benchmark's (``bench_drift.build``: the expansion bench book with one position
set per account, 30% portfolio targets, a USD cash asset, 50 holdings per account, 30 daily prices
per asset, 10% of them in EUR, and EUR/USD rates), its holdings imported with ``msm.import_holdings``.
Each stage runs in its own process (its peak memory, ``ru_maxrss``, is its own) and calls the CLI's
``main`` as a user would, writing Parquet:

- ``drift``: ``msm drift --all --as-of T --format parquet --out F`` (every position);
- ``full``, ``bands``, ``buy-only``: ``msm rebalance --all --as-of T --mode M --format parquet --out F``
  (the trading desk's orders file); ``bands`` with the default band, ``buy-only`` with a deposit;
- ``core``: the drift computed once, then :func:`msm.rebalancing.propose_rebalance` alone per mode
  (what the proposal adds on top of drift).

Drift and the rebalance modes alternate (best of ``--repeat`` runs in each process, two rounds); each
stage reports its best wall time and its best CPU time (all threads; steadier on a shared machine).
Prints one JSON document and writes it to ``bench/results/rebalance.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULT = HERE / "results" / "rebalance.json"

SIZES = {"full": 10_000, "small": 1_000}
MODES = {
    "full": ["--mode", "full"],
    "bands": ["--mode", "bands"],
    "buy-only": ["--mode", "buy-only", "--cash-flow", "10000"],
}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _argv(stage: str, db: str, out: Path, valuation: str) -> list[str]:
    if stage == "drift":
        return ["--db", db, "drift", "--all", "--as-of", valuation, "--format", "parquet", "--out", str(out)]
    return [
        "--db",
        db,
        "rebalance",
        "--all",
        "--as-of",
        valuation,
        *MODES[stage],
        "--format",
        "parquet",
        "--out",
        str(out),
    ]


def stage_cli(args: argparse.Namespace) -> dict[str, Any]:
    """One command, ``--repeat`` times in this process: the best time, the peak memory, the rows written."""
    import contextlib
    import io

    from bench_drift import VALUATION

    from msm_cli.main import main as msm_main

    before = _maxrss_mb()
    runs, cpu = [], []
    out = Path(args.folder) / f"{args.stage}.parquet"
    for _ in range(args.repeat):
        err = io.StringIO()
        started, cpu_started = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = msm_main(_argv(args.stage, args.db, out, VALUATION))
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if code != 0:
            raise SystemExit(f"msm exited {code} in stage {args.stage}: {err.getvalue()}")
    return {
        "best_s": round(min(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
        "best_cpu_s": round(min(cpu), 3),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "rows": pl.scan_parquet(out).select(pl.len()).collect().item(),
    }


def stage_core(args: argparse.Namespace) -> dict[str, Any]:
    """The drift once (timed), then the proposal alone for each mode (best of ``--repeat``)."""
    from bench_drift import VALUATION

    import msm
    import msm_portfolios
    from msm.rebalancing import propose_rebalance

    store = msm.Store(args.db)
    started = time.perf_counter()
    drift = msm.account_drift(store, weights=msm_portfolios.duckdb_weights_source(store), as_of=VALUATION)
    drift_s = time.perf_counter() - started
    positions = drift.positions.join(drift.accounts.select("account_uid", "base_currency", "nav"), on="account_uid")
    options = {"full": {"mode": "full"}, "bands": {"mode": "bands"}, "buy-only": {"mode": "buy-only", "cash_flow": 1e4}}
    out: dict[str, Any] = {"drift_service_s": round(drift_s, 3), "positions": positions.height}
    for mode, kwargs in options.items():
        runs = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            proposal = propose_rebalance(positions, **kwargs)
            runs.append(time.perf_counter() - started)
        trades = proposal.trades
        out[mode] = {"best_s": round(min(runs), 3), "orders": proposal.orders.height, "trading": trades.height}
    out["peak_rss_mb"] = round(_maxrss_mb(), 1)
    return out


def stage_build(args: argparse.Namespace) -> dict[str, Any]:
    """The drift bench book and its holdings (imported once, from Parquet)."""
    from bench_drift import HOLDINGS_TIME, build

    import msm

    book = build(args.db, args.accounts, Path(args.folder))
    started = time.perf_counter()
    msm.import_holdings(msm.Store(args.db), Path(args.folder) / "holdings.parquet", at=HOLDINGS_TIME, source="bench")
    return {**book, "holdings_import_s": round(time.perf_counter() - started, 2), "db_bytes": os.path.getsize(args.db)}


#: Stages other than the commands (``drift`` and the modes run :func:`stage_cli`).
STAGES = {"build": stage_build, "core": stage_core}


def _run(stage: str, args: argparse.Namespace, db: str, folder: Path, accounts: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--stage", stage, "--db", db, "--folder", str(folder)]
    argv += ["--repeat", str(args.repeat), "--accounts", str(accounts)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 2)
    return result


def _ratios(stages: dict[str, Any], key: str) -> dict[str, float]:
    drift = stages["drift"][key]
    return {f"{mode}_vs_drift": round(stages[mode][key] / drift, 3) for mode in MODES}


def main() -> None:
    """Build the book, run the stages, print and keep the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 accounts instead of 10,000")
    parser.add_argument("--repeat", type=int, default=2, help="runs per stage process (the best is kept)")
    parser.add_argument("--stage", choices=(*STAGES, "drift", *MODES), help=argparse.SUPPRESS)
    for hidden in ("--db", "--folder"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--accounts", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(STAGES.get(args.stage, stage_cli)(args)))
        return
    size = "small" if args.small else "full"
    report: dict[str, Any] = {
        "benchmark": "msm rebalance --all vs msm drift --all",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "machine": {
            "python": platform.python_version(),
            "polars": pl.__version__,
            "cpus": os.cpu_count(),
            "load_average_before": list(os.getloadavg()),
        },
    }
    with tempfile.TemporaryDirectory(prefix="msm-bench-rebalance-") as tmp:
        folder, db = Path(tmp), str(Path(tmp) / "book.duckdb")
        print(f"generating the book ({SIZES[size]:,} accounts) ...", file=sys.stderr)
        report["book"] = _run("build", args, db, folder, SIZES[size])
        stages: dict[str, Any] = {}
        for _ in range(2):  # two interleaved rounds, so every stage sees the same machine
            for stage in ("drift", *MODES):
                print(f"  {stage} ...", file=sys.stderr)
                run = _run(stage, args, db, folder, SIZES[size])
                best = stages.get(stage)
                stages[stage] = run if best is None or run["best_s"] < best["best_s"] else best
        print("  core ...", file=sys.stderr)
        report["core"] = _run("core", args, db, folder, SIZES[size])
    report["stages"] = stages
    report["time_ratios"] = _ratios(stages, "best_s")
    report["cpu_ratios"] = _ratios(stages, "best_cpu_s")  # CPU time of all threads: steadier on a busy machine
    report["goals"] = {"full_vs_drift": 2.0}
    report["machine"]["load_average_after"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))
    RESULT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
