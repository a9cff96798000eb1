"""Benchmark of bulk reference data (issue 7): prints JSON, writes bench/results/bulk.json; not a test.

- 100,000 assets from one Parquet file through ``msm.import_reference`` (validation + one
  transaction): a fresh load, an upsert that changes every row, and an upsert that changes none;
- 10,000 accounts in 100 groups, then 10,000 target allocations (references resolved by key);
- the one-row path (``msm.add_asset`` per row, the only way before), timed on a sample and scaled.

Each stage runs in its own process so that its peak RSS is its own.

    .venv/bin/python bench/bench_bulk.py [--assets 100000] [--accounts 10000] [--sample 100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

import msm  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _assets(n: int, suffix: str = "") -> pl.DataFrame:
    i = pl.int_range(0, n, eager=True)
    return pl.DataFrame(
        {
            "unique_identifier": "A" + i.cast(pl.String).str.zfill(7),
            "name": "Asset " + i.cast(pl.String) + suffix,
            "ticker": "T" + i.cast(pl.String),
            "asset_type": pl.Series(["equity"] * n),
            "metadata_json": pl.Series(['{"sector": "tech"}'] * n),
        }
    )


def _stage(name: str, db: str, folder: str, args: dict[str, Any], out: Any) -> None:
    store = msm.Store(db)
    n = args["assets"]
    result: dict[str, Any] = {}
    if name == "assets":
        path = Path(folder) / "assets.parquet"
        _assets(n).write_parquet(path)
        t = time.perf_counter()
        done = msm.import_reference(store, "assets", path)
        result["add_seconds"] = time.perf_counter() - t
        result["add"] = done.to_dict()
        changed = Path(folder) / "assets-changed.parquet"
        _assets(n, " (renamed)").write_parquet(changed)
        t = time.perf_counter()
        result["upsert"] = msm.import_reference(store, "assets", changed, upsert=True).to_dict()
        result["upsert_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        result["unchanged"] = msm.import_reference(store, "assets", changed, upsert=True).to_dict()
        result["unchanged_seconds"] = time.perf_counter() - t
    elif name == "accounts":
        m = args["accounts"]
        i = pl.int_range(0, m, eager=True)
        msm.import_reference(
            store,
            "account_groups",
            pl.DataFrame({"group_name": "G" + pl.int_range(0, 100, eager=True).cast(pl.String)}),
        )
        msm.import_reference(store, "allocation_models", [{"allocation_model_name": "Core"}])
        accounts = pl.DataFrame(
            {
                "unique_identifier": "ACC" + i.cast(pl.String).str.zfill(6),
                "account_name": "Account " + i.cast(pl.String),
                "group": "G" + (i % 100).cast(pl.String),
                "is_paper": pl.Series(["false"] * m),
            }
        )
        t = time.perf_counter()
        result["accounts"] = msm.import_reference(store, "accounts", accounts).to_dict()
        result["accounts_seconds"] = time.perf_counter() - t
        allocations = pl.DataFrame(
            {
                "unique_identifier": accounts["unique_identifier"] + "-main",
                "account": accounts["unique_identifier"],
                "model": pl.Series(["Core"] * m),
            }
        )
        t = time.perf_counter()
        result["allocations"] = msm.import_reference(store, "allocations", allocations).to_dict()
        result["allocations_seconds"] = time.perf_counter() - t
    elif name == "one_row":
        sample = args["sample"]
        rows = _assets(sample).rename({"unique_identifier": "id"}).to_dicts()
        t = time.perf_counter()
        for row in rows:
            msm.add_asset(
                store,
                "R" + row["id"],
                name=row["name"],
                ticker=row["ticker"],
                asset_type=row["asset_type"],
                metadata_json=json.loads(row["metadata_json"]),
            )
        seconds = time.perf_counter() - t
        result = {"sample_rows": sample, "sample_seconds": seconds, "scaled_seconds_for_assets": seconds / sample * n}
    result["peak_rss_mb"] = _peak_mb()
    out.put(result)


def _run(name: str, db: str, folder: str, args: dict[str, Any]) -> dict[str, Any]:
    queue: Any = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=_stage, args=(name, db, folder, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=100, help="rows timed on the one-row path")
    args = vars(parser.parse_args())
    with tempfile.TemporaryDirectory() as folder:
        results: dict[str, Any] = {}
        for stage in ("assets", "accounts", "one_row"):
            db = str(Path(folder) / f"{stage}.duckdb")
            msm.migrate(msm.Store(db))
            results[stage] = _run(stage, db, folder, args)
    a, one = results["assets"], results["one_row"]
    report = {
        "benchmark": "bulk",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "polars": pl.__version__,
            "load_avg_1m": os.getloadavg()[0],
        },
        "sizes": {"assets": args["assets"], "accounts": args["accounts"]},
        **results,
        "speedup_over_one_row": one["scaled_seconds_for_assets"] / a["add_seconds"],
    }
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results" / "bulk.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
