"""Render docs/performance.md from the latest benchmark results (bench/results/*.json).

python bench/report.py            # after bench_snapshots.py, bench_expansion.py (and bench_app.py)
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "performance.md"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def render() -> str:
    snap, exp = _load("snapshots.json"), _load("expansion.json")
    bw, fl, rd = snap["bulk_write"], snap["floor"], snap["read_latest"]
    s = exp["summary"]
    m = snap["machine"]
    lines = [
        "# Performance",
        "",
        "Produced by `python bench/report.py` from the JSON the benchmarks print and keep in",
        "`bench/results/` (`make bench` runs them all, then this report). The benchmarks assert nothing; these are the numbers",
        f"of the latest full run on this project's machine ({m['cpus']} cores, Python {m['python']},",
        f"DuckDB {m['duckdb']}, polars {m['polars']}). Peak memory is each stage's own process maximum RSS.",
        "",
        "## Snapshot writes and reads (`bench/bench_snapshots.py`)",
        "",
        "| measure | goal | result | peak RSS |",
        "|---|---|---|---|",
        f"| bulk write: {bw['snapshots']:,} snapshots x 50 rows ({bw['rows']:,} rows, {bw['portfolio_share']:.0%} portfolio targets) "
        f"into a database of {bw['existing_rows']:,} rows, through `msm.save_snapshots` | | {bw['seconds']:.2f} s ({bw['rows_per_second']:,} rows/s) | {bw['peak_rss_mb']:,.0f} MB |",
        f"| floor: DuckDB inserting the same rows, already validated, as Arrow into the same constrained tables | | {fl['seconds']:.2f} s | {fl['peak_rss_mb']:,.0f} MB |",
        f"| bulk write / floor | <= 1.3 | **{snap['bulk_vs_floor']:.2f}** | |",
        f"| latest snapshot of one account (`msm.read_snapshot`), database of {rd['database_rows']:,} rows, {rd['samples']} accounts | median < 50 ms "
        f"| **median {rd['median_ms']:.1f} ms**, p95 {rd['p95_ms']:.1f} ms | {rd['peak_rss_mb']:,.0f} MB |",
        "",
        "The write path validates the whole frame in polars (every rule of ADR 0027, identifier",
        "lookups, duplicates), then writes the position sets and all rows in one transaction. The",
        "floor is the insert alone; the difference is the price of the validation. A read opens the",
        "file, resolves the account, picks the set and fetches its rows through Arrow; zone maps on",
        "`time_index` keep the scan to one row group.",
        "",
        "## Look-through expansion (`bench/bench_expansion.py`)",
        "",
        f"Book: {exp['book']['position_sets']:,} position sets x 20 targets, 30% portfolio targets over {exp['book']['portfolios']} portfolios "
        f"of {exp['book']['constituents_per_composition']} constituents with {exp['book']['compositions_per_portfolio']} composition dates each; "
        f"weights as of `{exp['weights_as_of']}`; {s['output_rows']:,} output rows.",
        "",
        "| measure | goal | result | peak RSS |",
        "|---|---|---|---|",
        f"| `expand_targets`, polars pipeline (frames in memory) | | {s['polars_pipeline_s']:.2f} s ({s['polars_pipeline_rows_per_s']:,} rows/s) | {s['peak_rss_mb']['polars_pipeline']:,.0f} MB |",
        f"| `expand_targets` including the DuckDB read of targets and weights | | {s['polars_with_duckdb_read_s']:.2f} s | {s['peak_rss_mb']['polars_db']:,.0f} MB |",
        f"| the same expansion as one DuckDB SQL query, to Arrow | | {s['sql_s']:.2f} s ({s['sql_rows_per_s']:,} rows/s) | {s['peak_rss_mb']['sql']:,.0f} MB |",
        f"| polars / SQL (pipeline; with the read) | <= 1 | **{s['ratio_polars_pipeline_over_sql']:.2f}**; {s['ratio_polars_with_read_over_sql']:.2f} | |",
        f"| row-by-row reference (weights resolved per row in Python), scaled from a sample | | {s['reference_scaled_s']:.0f} s ({s['reference_rows_per_s']:,} rows/s) | {s['peak_rss_mb']['reference_sample']:,.0f} MB |",
        f"| speed-up over the reference (pipeline; with the read) | >= 100x | **{s['speedup_polars_pipeline_over_reference']:.0f}x**; {s['speedup_polars_with_read_over_reference']:.0f}x | |",
        f"| netting / plain expansion (best; median) | <= 1.5 | **{s['ratio_net_over_plain']:.2f}**; {s['ratio_net_over_plain_median']:.2f} | |",
        "",
        "Checks in the same run: "
        + ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in exp["checks"].items())
        + ".",
        "",
        "Timings on a shared 2-core machine move by 10-30% from run to run; the JSON keeps every run.",
        "",
        *_app_section(),
        *_bulk_section(),
        *_cli_section(),
        *_export_section(),
    ]
    return "\n".join(lines)


def _app_section() -> list[str]:
    """The Streamlit workbench (bench/bench_app.py), when its results are there."""
    if not (RESULTS / "app.json").exists():
        return []
    app = _load("app.json")
    rerun, renders, goals = app["builder_rerun_seconds"], app["first_render_seconds"], app["goals"]
    return [
        "## The workbench in the browser (`bench/bench_app.py`)",
        "",
        f"Measured with Streamlit's AppTest (the real router and pages, no browser) on a database of {app['book']['accounts']:,} "
        f"accounts (the demo plus `msm demo --accounts 1000`), machine load {app['machine']['load_avg_1m']:.1f} at the start.",
        "",
        "| measure | goal | result |",
        "|---|---|---|",
        f"| builder rerun after editing one cell of a {app['book']['target_set_rows']}-row target set (validation, sums, look-through "
        f"preview), {rerun['repeats']} edits | median < {goals['builder_rerun_median_seconds'] * 1000:.0f} ms "
        f"| **median {rerun['median'] * 1000:.0f} ms**, p90 {rerun['p90'] * 1000:.0f} ms, max {rerun['max'] * 1000:.0f} ms |",
        *[
            f"| first render of {page} (new session, cold caches) | < {goals['first_render_seconds']:.0f} s | **{seconds * 1000:.0f} ms** |"
            for page, seconds in renders.items()
        ],
        f"| one-off imports of a new server process (streamlit, the app's modules), not in the rows above | | {app['process_warm_up_seconds'] * 1000:.0f} ms |",
        "",
        "A rerun opens the database file once (the page's service calls share that connection, which is",
        "released when the rerun ends); lists read on every rerun (accounts, targets, allocations, history)",
        "are cached for 30 s and cleared after every write the app makes.",
        "",
    ]


def _bulk_section() -> list[str]:
    """Bulk reference data (bench/bench_bulk.py), when its results are there."""
    if not (RESULTS / "bulk.json").exists():
        return []
    b = _load("bulk.json")
    a, acc, one = b["assets"], b["accounts"], b["one_row"]
    n, m = b["sizes"]["assets"], b["sizes"]["accounts"]
    return [
        "## Bulk reference data (`bench/bench_bulk.py`)",
        "",
        "`msm.import_reference` (the service behind `msm ... import FILE` and the app's bulk import): the whole",
        "file validated as one frame, then written in one transaction. Each stage runs in its own process.",
        "",
        "| measure | goal | result | peak RSS |",
        "|---|---|---|---|",
        f"| {n:,} assets from Parquet, new | seconds, not minutes | **{a['add_seconds']:.2f} s** | {a['peak_rss_mb']:,.0f} MB |",
        f"| the same file with every name changed, `--upsert` | | {a['upsert_seconds']:.2f} s | |",
        f"| the same file again, `--upsert` (all unchanged) | | {a['unchanged_seconds']:.2f} s | |",
        f"| {m:,} accounts in 100 groups (groups resolved by name) | | {acc['accounts_seconds']:.2f} s | {acc['peak_rss_mb']:,.0f} MB |",
        f"| {m:,} target allocations (account and model resolved by key) | | {acc['allocations_seconds']:.2f} s | |",
        f"| one `msm.add_asset` call per row, {one['sample_rows']} rows timed, scaled to {n:,} | | {one['scaled_seconds_for_assets']:,.0f} s "
        f"(**{b['speedup_over_one_row']:,.0f}x** slower) | {one['peak_rss_mb']:,.0f} MB |",
        "",
    ]


def _cli_section() -> list[str]:
    """CLI start-up (bench/bench_cli.py), when its results are there."""
    if not (RESULTS / "cli.json").exists():
        return []
    c = _load("cli.json")
    s, r = c["seconds"], c["ratio_to_floor"]
    rows = [
        ("`msm --help`", "msm_help", ""),
        ("`msm targets show ACCOUNT --format json`", "targets_show", f"<= {c['goal']['targets_show_over_floor']}x"),
        ("`msm assets list --format json`", "assets_list", ""),
    ]
    return [
        "## CLI start-up (`bench/bench_cli.py`)",
        "",
        f"Whole processes on the demo database, {c['repeats']} runs each, interleaved; machine load {c['machine']['load_avg_1m']:.1f} at the end.",
        f'The floor is `python -c "import duckdb, polars"`: min {s["import_floor"]["min"] * 1000:.0f} ms, median {s["import_floor"]["median"] * 1000:.0f} ms.',
        "",
        "| command | goal (vs floor) | min | median | vs floor (min; median) |",
        "|---|---|---|---|---|",
        *[
            f"| {label} | {goal} | {s[key]['min'] * 1000:.0f} ms | {s[key]['median'] * 1000:.0f} ms | **{r[key]['min']:.2f}x**; {r[key]['median']:.2f}x |"
            for label, key, goal in rows
        ],
        "",
        "`msm` imports each service on first use (the packages resolve names lazily), reads through the Arrow C",
        "stream interface (no pyarrow), and imports pydantic, pyarrow.dataset and the examples only in the commands",
        "that need them; `tests/test_layers.py` checks that a read command loads none of them.",
        "",
    ]


def _export_section() -> list[str]:
    """`msm export --expanded` against DuckDB's COPY (bench/bench_export.py), when its results are there."""
    if not (RESULTS / "export.json").exists():
        return []
    e = _load("export.json")
    rows = []
    for label, b in e["books"].items():
        book = b["book"]
        size = f"{book['position_sets']:,} sets, {b['msm']['rows']['target_positions']:,} target rows, {b['msm']['rows']['target_exposure']:,} look-through rows"
        rows += [
            f"| {label}: {size} | DuckDB `COPY ... PARTITION_BY (snapshot_date)` of both datasets (the floor) | {b['copy']['seconds']:.1f} s | {b['copy']['peak_rss_mb']:,.0f} MB |",
            f"| | `msm export --expanded` | {b['msm']['seconds']:.1f} s | {b['msm']['peak_rss_mb']:,.0f} MB |",
            f"| | msm / floor (goal: time <= {e['goals']['time_ratio']}, memory <= {e['goals']['memory_ratio']}) | **{b['time_ratio']:.2f}** | **{b['memory_ratio']:.2f}** |",
        ]
    return [
        "## Export (`bench/bench_export.py`)",
        "",
        "`msm export --out DIR --expanded --weights-as-of now` as a user runs it, against DuckDB writing the same two",
        "datasets itself (the labelled target rows, and the look-through as one SQL query), each stage in its own",
        f"process, best of two interleaved runs; machine load {e['machine']['load_avg_1m_start']:.1f} at the start and"
        f" {e['machine']['load_avg_1m_end']:.1f} at the end.",
        "",
        "| book | what | time | peak RSS |",
        "|---|---|---|---|",
        *rows,
        "",
        "The export reads, expands (the core's own expansion) and writes 2,000 position sets at a time, one file per",
        "snapshot date per chunk, writing one chunk while the next is read: its memory follows the chunk, not the book.",
        "Its peak moves by a few hundred MB from run to run (two chunks are alive while one is written, and freed memory",
        "is kept by the allocator); DuckDB's block cache is capped at 512 MB while the export reads, so a bigger file does",
        "not mean a bigger export.",
        "",
    ]


def main() -> None:
    OUT.write_text(render())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
