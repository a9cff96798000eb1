"""Benchmark of the Streamlit workbench, measured with AppTest (prints JSON; not a test).

On a database with the demo data plus a 1,000-account sample book (``msm demo --accounts 1000``):
- ``first_render``: the first render of each page in a fresh session with cold Streamlit caches,
  after the process has imported streamlit and the app's modules once (as a running server has;
  that one-off import is reported as ``process_warm_up_seconds``);
- ``builder_rerun``: with a 500-row target set open in the builder (499 assets and one portfolio,
  loaded from a stored snapshot), the rerun after editing one cell, validation, sums and the
  look-through preview included: median, p90, min and max over ``--repeats`` edits.

    .venv/bin/python bench/bench_app.py [--accounts 1000] [--rows 500] [--repeats 15]

Writes bench/results/app.json. Goals (issue 6): rerun median under 300 ms, first render under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msm  # noqa: E402
import msm_portfolios  # noqa: E402
from msm_app import links  # noqa: E402
from msm_examples import account_portfolio_workflow, sample_book  # noqa: E402

PAGES = [
    p
    for p in ["overview", "builder", "snapshots", "lookthrough", "reference", "export"]
    if p not in os.environ.get("BENCH_SKIP", "").split(",")
]
ACCOUNT = "sample-0001"
AT = "2026-07-01T00:00:00Z"


def _load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def build(db: Path, accounts: int, rows: int) -> None:
    """The demo data, a sample book and one ``rows``-row snapshot of ACCOUNT, in ``db``."""
    store = msm_portfolios.init_store(db)
    account_portfolio_workflow.run(store)
    sample_book.build_sample_book(store, accounts=accounts, assets=max(600, rows))
    assets = (
        msm.list_assets(store)
        .filter(pl.col("unique_identifier").str.starts_with("SAMPLE-"))["unique_identifier"]
        .sort()[: rows - 1]
    )
    big = pl.DataFrame({"asset": assets, "weight_notional_exposure": [0.6 / len(assets)] * len(assets)})
    big = pl.concat(
        [big, pl.DataFrame({"portfolio": ["SAMPLE-P01"], "weight_notional_exposure": [0.4]})], how="diagonal"
    )
    msm.save_snapshot(store, ACCOUNT, AT, big, overwrite=True, source="bench")


def _app(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(links.PAGES[page].script)
    return at


def warm_up() -> float:
    """Import what a running server has imported before its first session (streamlit, the app's modules)."""
    from streamlit.testing.v1 import AppTest

    started = time.perf_counter()
    AppTest.from_string(
        "import altair, polars, streamlit\nimport msm, msm_portfolios\nfrom msm_app import charts, grid, links, ui",
        default_timeout=120,
    ).run()
    return time.perf_counter() - started


def first_renders() -> dict[str, float]:
    """Seconds of the first render of each page, in a new session with cold caches."""
    from streamlit import runtime

    timings = {}
    for page in PAGES:
        runtime.caching.cache_data.clear()
        runtime.caching.cache_resource.clear()
        at = _app(page)
        started = time.perf_counter()
        at.run()
        timings[page] = time.perf_counter() - started
        assert not at.exception, (page, [e.value for e in at.exception])
    return timings


def builder_reruns(rows: int, repeats: int) -> list[float]:
    """Seconds of each rerun after one cell edit with a ``rows``-row set in the builder."""
    at = _app("builder")
    at.run()
    at.selectbox(key="builder_account").set_value(ACCOUNT).run()
    at.radio(key="builder_start").set_value("Latest snapshot")
    at.button(key="builder_load").click().run()
    assert len(at.data_editor[0].value) == rows, len(at.data_editor[0].value)
    key = f"builder_grid_{at.session_state['builder_version']}"
    timings = []
    for i in range(repeats):
        weight = 0.6 / (rows - 1) + (i + 1) * 1e-6
        at.session_state[key] = {
            "edited_rows": {0: {"weight_notional_exposure": weight}},
            "added_rows": [],
            "deleted_rows": [],
        }
        started = time.perf_counter()
        at.run()
        timings.append(time.perf_counter() - started)
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return timings


def main() -> None:
    """Build the book, measure, write bench/results/app.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        started = time.perf_counter()
        build(db, args.accounts, args.rows)
        build_seconds = time.perf_counter() - started
        os.environ["MSM_DB"] = str(db)
        os.chdir(ROOT)
        warm = warm_up()
        renders = first_renders()
        reruns = builder_reruns(args.rows, args.repeats)
    result = {
        "benchmark": "app",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": _load_avg()},
        "book": {"accounts": args.accounts + 2, "target_set_rows": args.rows, "build_seconds": round(build_seconds, 1)},
        "process_warm_up_seconds": round(warm, 3),
        "first_render_seconds": {k: round(v, 3) for k, v in renders.items()},
        "builder_rerun_seconds": {
            "median": round(statistics.median(reruns), 3),
            "p90": round(sorted(reruns)[int(0.9 * (len(reruns) - 1))], 3),
            "min": round(min(reruns), 3),
            "max": round(max(reruns), 3),
            "repeats": len(reruns),
        },
        "goals": {"builder_rerun_median_seconds": 0.3, "first_render_seconds": 1.0},
    }
    out = ROOT / "bench" / "results" / "app.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
