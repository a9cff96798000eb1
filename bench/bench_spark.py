"""Benchmark of the look-through on Spark (msm_spark) against `msm export --expanded`. Not a test: it asserts no timing.

    python bench/bench_spark.py                   # bench_expansion.py's full book, then one 10x larger
    python bench/bench_spark.py --sizes full      # only the book of bench/
    python bench/bench_spark.py --sizes small     # a quick run (500 sets)

Books come from the generator of ``bench/bench_expansion.py`` (position sets of 20 targets, 30%
portfolio targets, portfolios of 100 constituents with 12 monthly compositions): ``full`` is its
book (10,000 sets, ~6.1M look-through rows), ``x10`` the same with ten times the sets and accounts
(100,000 sets, ~61M rows). Weights as of ``position-set`` (the as-of case). For each book:

- ``msm_export``: ``msm export --out DIR --expanded`` (DuckDB read + polars expansion + Parquet write),
  what the Spark job replaces; its ``target_positions/`` and ``portfolio_weights/`` are the job's input;
- ``spark_local2`` and ``spark_local1``: ``python -m msm_spark expand`` on that folder with
  ``--master local[2]`` and ``local[1]`` (scaling from one core to two), each reporting the JVM start
  and the job (read, checks, expansion, partitioned write) separately.

Every stage is its own process tree; its peak memory is the largest sum of the resident set sizes
of the tree (the Python driver and Spark's JVM together) seen by polling /proc every 0.2 s
(``ru_maxrss`` of RUSAGE_CHILDREN would miss the JVM, a grandchild). Stages that exceed ``--timeout``
are stopped and recorded as such. ``checks`` compare the Spark output with the export's (rows,
exposure totals). The machine's load average is recorded: other work on it shows in every number.
Prints one JSON document and writes it to ``bench/results/spark.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
RESULT = HERE / "results" / "spark.json"
EXPOSURES = ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
#: Spark's driver (which is also the executor in local mode) gets this heap.
DRIVER_MEMORY = "4g"


def _bench_expansion() -> Any:
    spec = importlib.util.spec_from_file_location("bench_expansion", HERE / "bench_expansion.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sizes() -> dict[str, dict[str, Any]]:
    """The books by name: bench_expansion.py's small and full, and one with ten times the sets and accounts."""
    bench = _bench_expansion()
    return {
        "small": bench.SMALL,
        "full": bench.FULL,
        "x10": {**bench.FULL, "sets": bench.FULL["sets"] * 10, "accounts": bench.FULL["accounts"] * 10},
    }


# -- measuring a process tree ---------------------------------------------------------------------
def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(command: list[str], timeout: float) -> dict[str, Any]:
    """Run ``command``; its wall time, stdout, and the peak RSS of its whole process tree."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    peak_kb, timed_out = 0, False
    out_chunks: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: out_chunks.append(process.stdout.read()), daemon=True)  # type: ignore[union-attr]
    err_chunks: list[str] = []
    err_reader = threading.Thread(target=lambda: err_chunks.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    err_reader.start()
    while process.poll() is None:
        peak_kb = max(peak_kb, sum(_rss_kb(pid) for pid in _tree(process.pid)))
        if time.perf_counter() - started > timeout:
            os.killpg(process.pid, 9)
            timed_out = True
            break
        time.sleep(0.2)
    process.wait()
    reader.join(5)
    err_reader.join(5)
    wall = time.perf_counter() - started
    result = {
        "command": " ".join(command[1:] if command[0] == sys.executable else command),
        "wall_s": round(wall, 2),
        "peak_tree_rss_mb": round(peak_kb / 1024, 1),
        "exit_code": process.returncode,
    }
    if timed_out:
        result["timed_out_after_s"] = timeout
    elif process.returncode != 0:
        result["stderr_tail"] = "".join(err_chunks)[-2000:]
    result["stdout"] = "".join(out_chunks)
    return result


# -- the Spark stage (run as its own process: python bench_spark.py --spark-stage ...) -------------
def spark_stage(args: argparse.Namespace) -> dict[str, Any]:
    """Start a session, run the job, report start-up and job time separately (printed as JSON)."""
    started = time.perf_counter()
    from pyspark.sql import SparkSession

    from msm_spark.job import run_expand

    spark = (
        SparkSession.builder.master(args.master)
        .appName("msm bench")
        .config("spark.driver.memory", DRIVER_MEMORY)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - started
    job_started = time.perf_counter()
    result = run_expand(spark, args.input, args.output, weights_as_of=args.weights_as_of, overwrite=True)
    job = time.perf_counter() - job_started
    conf = {
        k: spark.conf.get(k)
        for k in ("spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled", "spark.driver.memory")
    }
    spark.stop()
    return {
        "startup_s": round(startup, 2),
        "job_s": round(job, 2),
        "rows": result.rows,
        "diagnostics": len(result.diagnostics),
        "master": args.master,
        "conf": conf,
    }


# -- checks ----------------------------------------------------------------------------------------
def totals(folder: Path) -> dict[str, float]:
    """Rows and exposure totals of the Parquet files under ``folder``."""
    import polars as pl

    frame = pl.scan_parquet(str(folder / "**" / "*.parquet"), hive_partitioning=False)
    row = frame.select(pl.len().alias("rows"), *[pl.col(c).sum() for c in EXPOSURES]).collect().row(0, named=True)
    return {k: float(v) for k, v in row.items()}


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["rows"] == b["rows"] and all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k]), abs(b[k])) for k in EXPOSURES)


def _msm_export(db: Path, export: Path, *options: str) -> list[str]:
    """The ``msm export`` command line for ``db`` into ``export``, with ``options``, printing JSON."""
    cli = [sys.executable, "-m", "msm_cli.main", "--db", str(db)]
    return [*cli, "export", "--out", str(export), *options, "--format", "json"]


def _export(name: str, db: Path, export: Path, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Export the book (expanded, or only the job's input for the books skipped); the stage and any note."""
    if name in args.skip_expanded_export:
        # The look-through of this book does not fit this machine's memory in one polars process (the
        # full book's export peaks near 4 GB for 6.1M rows): only the job's input is exported.
        print(f"[{name}] msm export (input only, no --expanded) ...", file=sys.stderr, flush=True)
        stage = measure(_msm_export(db, export), args.timeout)
        stage.pop("stdout")
        note = (
            "msm export --expanded not run on this book: its peak memory, extrapolated from the full book "
            "(~4 GB for 6.1M rows), exceeds this machine's memory; Spark's output is not compared with it"
        )
        return {"msm_export_input_only": stage}, [note]
    print(f"[{name}] msm export --expanded ...", file=sys.stderr, flush=True)
    stage = measure(_msm_export(db, export, "--expanded", "--weights-as-of", args.weights_as_of), args.timeout)
    stage.pop("stdout")
    return {"msm_export": stage}, []


def _spark_run(name: str, master: str, export: Path, out: Path, args: argparse.Namespace) -> tuple[dict, str | None]:
    """``python -m msm_spark expand`` on ``master`` (through this file's --spark-stage); the stage and its JSON."""
    print(f"[{name}] msm_spark --master {master} ...", file=sys.stderr, flush=True)
    command = [sys.executable, __file__, "--spark-stage", "--master", master, "--input", str(export)]
    stage = measure([*command, "--output", str(out), "--weights-as-of", args.weights_as_of], args.timeout)
    text = stage.pop("stdout").strip()
    return stage, (text.splitlines()[-1] if stage["exit_code"] == 0 and text else None)


def _summary(stages: dict[str, Any], expected: dict[str, float] | None) -> dict[str, Any]:
    """Output rows and the Spark stages' times over the export's."""
    rows = [stage["rows"] for stage in stages.values() if "rows" in stage]
    summary: dict[str, Any] = {"output_rows": int(expected["rows"]) if expected else (rows[0] if rows else None)}
    exp = stages.get("msm_export")
    for key, stage in stages.items():
        if exp and key.startswith("spark_") and "job_s" in stage:
            summary[f"{key}_wall_over_msm_export"] = round(stage["wall_s"] / exp["wall_s"], 2)
            summary[f"{key}_job_over_msm_export"] = round(stage["job_s"] / exp["wall_s"], 2)
    if "job_s" in stages.get("spark_local1", {}) and "job_s" in stages.get("spark_local2", {}):
        summary["speedup_job_local2_over_local1"] = round(
            stages["spark_local1"]["job_s"] / stages["spark_local2"]["job_s"], 2
        )
    return summary


def run_book(name: str, size: dict[str, Any], folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate one book, export it, run the Spark job on each master; stages, summary, checks, notes."""
    bench = _bench_expansion()
    db = folder / f"{name}.duckdb"
    print(f"[{name}] generating the book ...", file=sys.stderr, flush=True)
    book = bench.generate(str(db), size)
    export = folder / f"{name}-export"
    stages, notes = _export(name, db, export, args)
    checks: dict[str, Any] = {}
    expected = totals(export / "target_exposure") if stages.get("msm_export", {}).get("exit_code") == 0 else None
    for master in args.masters:
        key = "spark_" + master.replace("[", "").replace("]", "").replace("*", "all")
        out = folder / f"{name}-{key}"
        stage, text = _spark_run(name, master, export, out, args)
        if stage.get("timed_out_after_s"):
            notes.append(f"msm_spark on {master} stopped after {args.timeout:.0f} s (--timeout): not measured")
        if text is not None:
            stage.update(json.loads(text))
            if expected is not None:
                checks[f"{key}_equals_msm_export_totals"] = _close(totals(out / "target_exposure"), expected)
        stages[key] = stage
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(export, ignore_errors=True)
    for suffix in ("", ".wal"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return {"book": book, "stages": stages, "summary": _summary(stages, expected), "checks": checks, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    """Run every chosen book (or, with --spark-stage, the Spark stage); write and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="full,x10", help="comma-separated: small, full, x10 (default: full,x10)")
    parser.add_argument("--masters", default="local[2],local[1]", help="comma-separated Spark masters to compare")
    parser.add_argument("--weights-as-of", default="position-set", choices=["position-set", "now"])
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds a stage may take before it is stopped and recorded as such"
    )
    parser.add_argument("--out", default=str(RESULT), help="where to write the JSON result")
    parser.add_argument("--skip-expanded-export", default="", help="sizes whose `msm export --expanded` is not run")
    parser.add_argument(
        "--append", action="store_true", help="add these books to the books already in --out (a run per size)"
    )
    parser.add_argument("--spark-stage", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--master", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.spark_stage:
        print(json.dumps(spark_stage(args)))
        return 0
    args.masters = [m for m in args.masters.split(",") if m]
    args.skip_expanded_export = [s for s in args.skip_expanded_export.split(",") if s]
    import duckdb
    import polars as pl
    import pyspark

    chosen = [s for s in args.sizes.split(",") if s]
    books: dict[str, Any] = {}
    previous = json.loads(Path(args.out).read_text()) if args.append and Path(args.out).exists() else None
    if previous:
        books.update(previous.get("books", {}))
    with tempfile.TemporaryDirectory(prefix="msm-bench-spark-") as tmp:
        for name in chosen:
            before = list(os.getloadavg())
            books[name] = run_book(name, sizes()[name], Path(tmp), args)
            books[name]["load_average"] = {"before": before, "after": list(os.getloadavg())}
            print(json.dumps({name: books[name]["summary"]}), file=sys.stderr, flush=True)
    result = {
        "benchmark": "msm_spark expand vs msm export --expanded",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights_as_of": args.weights_as_of,
        "machine": {
            "python": platform.python_version(),
            "polars": pl.__version__,
            "duckdb": duckdb.__version__,
            "pyspark": pyspark.__version__,
            "java": _java_version(),
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(),
            "spark_driver_memory": DRIVER_MEMORY,
        },
        "books": books,
        "not_measured": [s for s in ("full", "x10") if s not in books],
    }
    text = json.dumps(result, indent=2, default=str)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _java_version() -> str | None:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return done.stderr.splitlines()[0] if done.stderr else None


if __name__ == "__main__":
    raise SystemExit(main())
