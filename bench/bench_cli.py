"""Benchmark of CLI start-up (issue 7): prints JSON, writes bench/results/cli.json; not a test.

Wall time of whole processes, as a user types them, on the demo database: the import floor
(``python -c "import duckdb, polars"``), ``msm --help``, ``msm targets show ACCOUNT --format json``
and ``msm assets list --format json``. Each is run ``--repeats`` times, interleaved so that a
busy moment of the machine hits all of them; min and median are reported. Goal: ``targets show``
at most 1.5x the floor.

    .venv/bin/python bench/bench_cli.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    msm = str(BIN / "msm")
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "demo.duckdb")
        subprocess.run([msm, "--db", db, "demo"], check=True, stdout=subprocess.DEVNULL)
        commands = {
            "import_floor": [sys.executable, "-c", "import duckdb, polars"],
            "msm_help": [msm, "--help"],
            "targets_show": [msm, "--db", db, "targets", "show", "example-account-alpha", "--format", "json"],
            "assets_list": [msm, "--db", db, "assets", "list", "--format", "json"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    summary = {name: {"min": min(xs), "median": statistics.median(xs)} for name, xs in times.items()}
    floor = summary["import_floor"]
    report = {
        "benchmark": "cli",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "repeats": args.repeats,
        "seconds": summary,
        "ratio_to_floor": {
            name: {"min": s["min"] / floor["min"], "median": s["median"] / floor["median"]}
            for name, s in summary.items()
            if name != "import_floor"
        },
        "goal": {"targets_show_over_floor": 1.5},
    }
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results" / "cli.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
