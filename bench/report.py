"""Render docs/performance.md from the latest benchmark results (bench/results/*.json).

python bench/report.py            # after bench_snapshots.py, bench_expansion.py (and bench_app.py)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "performance.md"
MEASURES = ("measure", "goal", "result", "peak RSS")


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _optional(name: str, section: Callable[[dict], list[str]]) -> list[str]:
    """The lines of ``section`` for the results in ``name``; none when that benchmark has not been run."""
    return section(_load(name)) if (RESULTS / name).exists() else []


def _row(*cells: str | None) -> str:
    """One Markdown table row: a cell between single spaces, a None cell blank (`| |`)."""
    return "|" + "|".join(" " if cell is None else f" {cell} " for cell in cells) + "|"


def _header(*names: str) -> list[str]:
    """A Markdown table's header row and its rule."""
    return [_row(*names), "|" + "---|" * len(names)]


def _mb(value: float) -> str:
    """A peak RSS in MB, e.g. `1,234 MB`."""
    return f"{value:,.0f} MB"


def _ms(seconds: float) -> str:
    """Seconds shown as whole milliseconds, e.g. `25 ms`."""
    return f"{seconds * 1000:.0f} ms"


def _s(seconds: float, spec: str = ".2f") -> str:
    """Seconds, e.g. `1.23 s`."""
    return f"{seconds:{spec}} s"


def _rate(seconds: float, rows_per_second: int, spec: str = ".2f") -> str:
    """Seconds and throughput, e.g. `1.23 s (456,789 rows/s)`."""
    return f"{_s(seconds, spec)} ({rows_per_second:,} rows/s)"


def _pair(first: float, second: float, spec: str, unit: str = "") -> str:
    """Two numbers, the first in bold, e.g. `**1.23**; 1.45`."""
    return f"**{first:{spec}}{unit}**; {second:{spec}}{unit}"


def render() -> str:
    """The whole of docs/performance.md, from the results that are there."""
    snap, exp = _load("snapshots.json"), _load("expansion.json")
    m = snap["machine"]
    lines = [
        "# Performance",
        "",
        "Produced by `python bench/report.py` from the JSON the benchmarks print and keep in",
        "`bench/results/` (`make bench` runs them all, then this report). "
        "The benchmarks assert nothing; these are the numbers",
        f"of the latest full run on this project's machine ({m['cpus']} cores, Python {m['python']},",
        f"DuckDB {m['duckdb']}, polars {m['polars']}). Peak memory is each stage's own process maximum RSS.",
        "",
        *_snapshots_section(snap),
        *_expansion_section(exp),
        *_optional("app.json", _app_section),
        *_optional("bulk.json", _bulk_section),
        *_optional("cli.json", _cli_section),
        *_optional("export.json", _export_section),
        *_optional("drift.json", _drift_section),
        *_optional("rebalance.json", _rebalance_section),
    ]
    return "\n".join(lines)


def _snapshots_section(snap: dict) -> list[str]:
    """Snapshot writes and reads (bench/bench_snapshots.py)."""
    bw, fl, rd = snap["bulk_write"], snap["floor"], snap["read_latest"]
    bulk_write = (
        f"bulk write: {bw['snapshots']:,} snapshots x 50 rows ({bw['rows']:,} rows, "
        f"{bw['portfolio_share']:.0%} portfolio targets) into a database of {bw['existing_rows']:,} rows, "
        "through `msm.save_snapshots`"
    )
    read = (
        f"latest snapshot of one account (`msm.read_snapshot`), database of {rd['database_rows']:,} rows, "
        f"{rd['samples']} accounts"
    )
    read_result = f"**median {rd['median_ms']:.1f} ms**, p95 {rd['p95_ms']:.1f} ms"
    floor = "floor: DuckDB inserting the same rows, already validated, as Arrow into the same constrained tables"
    return [
        "## Snapshot writes and reads (`bench/bench_snapshots.py`)",
        "",
        *_header(*MEASURES),
        _row(bulk_write, None, _rate(bw["seconds"], bw["rows_per_second"]), _mb(bw["peak_rss_mb"])),
        _row(floor, None, _s(fl["seconds"]), _mb(fl["peak_rss_mb"])),
        _row("bulk write / floor", "<= 1.3", f"**{snap['bulk_vs_floor']:.2f}**", None),
        _row(read, "median < 50 ms", read_result, _mb(rd["peak_rss_mb"])),
        "",
        "The write path validates the whole frame in polars (every rule of ADR 0027, identifier",
        "lookups, duplicates), then writes the position sets and all rows in one transaction. The",
        "floor is the insert alone; the difference is the price of the validation. A read opens the",
        "file, resolves the account, picks the set and fetches its rows through Arrow; zone maps on",
        "`time_index` keep the scan to one row group.",
        "",
    ]


def _expansion_section(exp: dict) -> list[str]:
    """Look-through expansion (bench/bench_expansion.py)."""
    s, book, rss = exp["summary"], exp["book"], exp["summary"]["peak_rss_mb"]
    checks = ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in exp["checks"].items())
    pipeline = "`expand_targets`, polars pipeline (frames in memory)"
    with_read = "`expand_targets` including the DuckDB read of targets and weights"
    sql = "the same expansion as one DuckDB SQL query, to Arrow"
    reference = "row-by-row reference (weights resolved per row in Python), scaled from a sample"
    pipeline_rate = _rate(s["polars_pipeline_s"], s["polars_pipeline_rows_per_s"])
    reference_rate = _rate(s["reference_scaled_s"], s["reference_rows_per_s"], ".0f")
    over_sql = s["ratio_polars_pipeline_over_sql"], s["ratio_polars_with_read_over_sql"]
    speedup = s["speedup_polars_pipeline_over_reference"], s["speedup_polars_with_read_over_reference"]
    net = s["ratio_net_over_plain"], s["ratio_net_over_plain_median"]
    return [
        "## Look-through expansion (`bench/bench_expansion.py`)",
        "",
        f"Book: {book['position_sets']:,} position sets x 20 targets, 30% portfolio targets over "
        f"{book['portfolios']} portfolios of {book['constituents_per_composition']} constituents with "
        f"{book['compositions_per_portfolio']} composition dates each; "
        f"weights as of `{exp['weights_as_of']}`; {s['output_rows']:,} output rows.",
        "",
        *_header(*MEASURES),
        _row(pipeline, None, pipeline_rate, _mb(rss["polars_pipeline"])),
        _row(with_read, None, _s(s["polars_with_duckdb_read_s"]), _mb(rss["polars_db"])),
        _row(sql, None, _rate(s["sql_s"], s["sql_rows_per_s"]), _mb(rss["sql"])),
        _row("polars / SQL (pipeline; with the read)", "<= 1", _pair(*over_sql, ".2f"), None),
        _row(reference, None, reference_rate, _mb(rss["reference_sample"])),
        _row("speed-up over the reference (pipeline; with the read)", ">= 100x", _pair(*speedup, ".0f", "x"), None),
        _row("netting / plain expansion (best; median)", "<= 1.5", _pair(*net, ".2f"), None),
        "",
        f"Checks in the same run: {checks}.",
        "",
        *_nested_rows(exp.get("nested") or {}, s["output_rows"]),
        "Timings on a shared 2-core machine move by 10-30% from run to run; the JSON keeps every run.",
        *(
            [
                f"This run shared the machine with other work (load average {load[0]:.1f} at the start, "
                f"{load[1]:.1f} over the 5 minutes before, {exp['machine']['load_average_after'][0]:.1f} at the end), "
                "which slows every number above."
            ]
            if (load := exp.get("machine", {}).get("load_average_before")) and max(load[:2]) > 1.5
            else []
        ),
        "",
    ]


def _nested_rows(nested: dict, flat_rows: int) -> list[str]:
    """The same book nested two and three levels deep (same leaf rows), against the one-level run and SQL."""
    if not nested:
        return []
    lines = [
        "Nested portfolios: the same book with every portfolio split into a binary tree of sub-portfolios "
        f"two and three levels deep, whose weights multiply back to the one-level ones ({flat_rows:,} "
        "output rows each, the same leaf rows).",
        "",
        *_header(*MEASURES),
    ]
    for levels, run in sorted(nested.items()):
        s, stages = run["summary"], run["stages"]
        subs = run["book"].get("sub_portfolios", 0)
        lines += [
            _row(
                f"{levels} levels ({subs:,} sub-portfolios): `expand_targets`, pipeline; with the read",
                None,
                _pair(s["polars_pipeline_s"], s["polars_with_duckdb_read_s"], ".2f", " s"),
                _mb(stages["polars_pipeline"]["peak_rss_mb"]),
            ),
            _row(
                f"{levels} levels: the same recursion as one DuckDB query (recursive CTE)",
                None,
                _s(s["sql_recursive_cte_s"]),
                _mb(stages["sql"]["peak_rss_mb"]),
            ),
            _row(
                f"{levels} levels: time per output row / one level (pipeline; with the read)",
                "<= 1.5",
                _pair(s["per_row_over_one_level"], s["per_row_with_read_over_one_level"], ".2f"),
                None,
            ),
            _row(
                f"{levels} levels: polars / recursive CTE (pipeline; with the read)",
                "<= 1",
                _pair(s["polars_over_sql"], s["polars_with_read_over_sql"], ".2f"),
                None,
            ),
        ]
    checks = "; ".join(
        f"{levels} levels: "
        + ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in run["checks"].items())
        for levels, run in sorted(nested.items())
    )
    return [*lines, "", f"Checks: {checks}.", ""]


def _app_section(app: dict) -> list[str]:
    """The Streamlit workbench (bench/bench_app.py)."""
    rerun, renders, goals = app["builder_rerun_seconds"], app["first_render_seconds"], app["goals"]
    edit = (
        f"builder rerun after editing one cell of a {app['book']['target_set_rows']}-row target set "
        f"(validation, sums, look-through preview), {rerun['repeats']} edits"
    )
    rerun_result = f"**median {_ms(rerun['median'])}**, p90 {_ms(rerun['p90'])}, max {_ms(rerun['max'])}"
    render_goal = f"< {goals['first_render_seconds']:.0f} s"
    warm_up = "one-off imports of a new server process (streamlit, the app's modules), not in the rows above"
    return [
        "## The workbench in the browser (`bench/bench_app.py`)",
        "",
        "Measured with Streamlit's AppTest (the real router and pages, no browser) on a database of "
        f"{app['book']['accounts']:,} accounts (the demo plus `msm demo --accounts 1000`), "
        f"machine load {app['machine']['load_avg_1m']:.1f} at the start.",
        "",
        *_header("measure", "goal", "result"),
        _row(edit, f"median < {_ms(goals['builder_rerun_median_seconds'])}", rerun_result),
        *[
            _row(f"first render of {page} (new session, cold caches)", render_goal, f"**{_ms(seconds)}**")
            for page, seconds in renders.items()
        ],
        _row(warm_up, None, _ms(app["process_warm_up_seconds"])),
        "",
        "A rerun opens the database file once (the page's service calls share that connection, which is",
        "released when the rerun ends); lists read on every rerun (accounts, targets, allocations, history)",
        "are cached for 30 s and cleared after every write the app makes.",
        "",
    ]


def _bulk_section(b: dict) -> list[str]:
    """Bulk reference data (bench/bench_bulk.py)."""
    a, acc, one = b["assets"], b["accounts"], b["one_row"]
    n, m = b["sizes"]["assets"], b["sizes"]["accounts"]
    a_rss, acc_rss = _mb(a["peak_rss_mb"]), _mb(acc["peak_rss_mb"])
    allocations = _s(acc["allocations_seconds"])
    one_row = (
        f"{one['scaled_seconds_for_assets']:,.0f} s (**{b['speedup_over_one_row']:,.0f}x** slower)",
        _mb(one["peak_rss_mb"]),
    )
    return [
        "## Bulk reference data (`bench/bench_bulk.py`)",
        "",
        "`msm.import_reference` (the service behind `msm ... import FILE` and the app's bulk import): the whole",
        "file validated as one frame, then written in one transaction. Each stage runs in its own process.",
        "",
        *_header(*MEASURES),
        _row(f"{n:,} assets from Parquet, new", "seconds, not minutes", f"**{_s(a['add_seconds'])}**", a_rss),
        _row("the same file with every name changed, `--upsert`", None, _s(a["upsert_seconds"]), None),
        _row("the same file again, `--upsert` (all unchanged)", None, _s(a["unchanged_seconds"]), None),
        _row(f"{m:,} accounts in 100 groups (groups resolved by name)", None, _s(acc["accounts_seconds"]), acc_rss),
        _row(f"{m:,} target allocations (account and model resolved by key)", None, allocations, None),
        _row(f"one `msm.add_asset` call per row, {one['sample_rows']} rows timed, scaled to {n:,}", None, *one_row),
        "",
    ]


def _cli_section(c: dict) -> list[str]:
    """CLI start-up (bench/bench_cli.py)."""
    s, r = c["seconds"], c["ratio_to_floor"]
    floor = s["import_floor"]
    rows = [
        ("`msm --help`", "msm_help", ""),
        ("`msm targets show ACCOUNT --format json`", "targets_show", f"<= {c['goal']['targets_show_over_floor']}x"),
        ("`msm assets list --format json`", "assets_list", ""),
    ]
    table = [
        _row(label, goal, _ms(s[k]["min"]), _ms(s[k]["median"]), _pair(r[k]["min"], r[k]["median"], ".2f", "x"))
        for label, k, goal in rows
    ]
    return [
        "## CLI start-up (`bench/bench_cli.py`)",
        "",
        f"Whole processes on the demo database, {c['repeats']} runs each, interleaved; "
        f"machine load {c['machine']['load_avg_1m']:.1f} at the end.",
        f'The floor is `python -c "import duckdb, polars"`: min {_ms(floor["min"])}, median {_ms(floor["median"])}.',
        "",
        *_header("command", "goal (vs floor)", "min", "median", "vs floor (min; median)"),
        *table,
        "",
        "`msm` imports each service on first use (the packages resolve names lazily), reads through the Arrow C",
        "stream interface (no pyarrow), and imports pydantic, pyarrow.dataset and the examples only in the commands",
        "that need them; `tests/test_layers.py` checks that a read command loads none of them.",
        "",
    ]


def _export_rows(label: str, b: dict, goals: dict) -> list[str]:
    """The three rows of one book in the export table: the floor, the export, their ratios."""
    book, ours, copy = b["book"], b["msm"], b["copy"]
    size = (
        f"{book['position_sets']:,} sets, {ours['rows']['target_positions']:,} target rows, "
        f"{ours['rows']['target_exposure']:,} look-through rows"
    )
    floor = "DuckDB `COPY ... PARTITION_BY (snapshot_date)` of both datasets (the floor)"
    ratio = f"msm / floor (goal: time <= {goals['time_ratio']}, memory <= {goals['memory_ratio']})"
    return [
        _row(f"{label}: {size}", floor, _s(copy["seconds"], ".1f"), _mb(copy["peak_rss_mb"])),
        _row(None, "`msm export --expanded`", _s(ours["seconds"], ".1f"), _mb(ours["peak_rss_mb"])),
        _row(None, ratio, f"**{b['time_ratio']:.2f}**", f"**{b['memory_ratio']:.2f}**"),
    ]


def _export_section(e: dict) -> list[str]:
    """`msm export --expanded` against DuckDB's COPY (bench/bench_export.py)."""
    return [
        "## Export (`bench/bench_export.py`)",
        "",
        "`msm export --out DIR --expanded --weights-as-of now` as a user runs it, against DuckDB writing the same two",
        "datasets itself (the labelled target rows, and the look-through as one SQL query), each stage in its own",
        f"process, best of two interleaved runs; machine load {e['machine']['load_avg_1m_start']:.1f} at the start and"
        f" {e['machine']['load_avg_1m_end']:.1f} at the end.",
        "",
        *_header("book", "what", "time", "peak RSS"),
        *[row for label, b in e["books"].items() for row in _export_rows(label, b, e["goals"])],
        "",
        "The export reads, expands (the core's own expansion) and writes 2,000 position sets at a time, one file per",
        "snapshot date per chunk, writing one chunk while the next is read: "
        "its memory follows the chunk, not the book.",
        "Its peak moves by a few hundred MB from run to run "
        "(two chunks are alive while one is written, and freed memory",
        "is kept by the allocator); DuckDB's block cache is capped at 512 MB while the export reads, "
        "so a bigger file does",
        "not mean a bigger export.",
        "",
    ]


def _drift_section(d: dict) -> list[str]:
    """Drift of every account against a hand-written DuckDB query (bench/bench_drift.py)."""
    book, stages, checks, imp = d["book"], d["stages"], d["checks"], d["holdings_import"]
    what = {
        "msm": "`msm drift --all --format parquet` (through the CLI's `main`)",
        "sql": "one hand-written DuckDB query, the same columns, `COPY ... TO` Parquet",
    }
    rows = [
        _row(what[name], f"{stage['rows']:,}", _s(stage["best_s"]), _mb(stage["peak_rss_mb"]))
        for name, stage in stages.items()
    ]
    imports = [
        _row(
            f"`msm.import_holdings` from {dict(csv='CSV', parquet='Parquet').get(fmt, fmt)}",
            f"{run['rows']:,}",
            _s(run["seconds"]),
            f"{run['rows_per_s']:,}",
        )
        for fmt, run in imp.items()
        if isinstance(run, dict)
    ]
    load = d["machine"]["load_average_before"][0], d["machine"]["load_average_after"][0]
    return [
        "## Holdings and drift (`bench/bench_drift.py`)",
        "",
        f"{book['accounts']:,} accounts x 50 holdings ({book['holdings_rows']:,} holdings rows, one position set per "
        f"account of 20 targets, 30% of them portfolio targets over {book['portfolios']} portfolios of "
        f"{book['constituents_per_composition']} constituents, {book['assets']:,} assets, {book['price_rows']:,} "
        f"daily prices, 10% of the assets priced in EUR with {book['fx_rows']} daily EUR/USD rates), valued at "
        f"{d['valuation_time']}. Each stage in its own process; `msm` and `sql` alternate, best of "
        f"{len(stages['msm']['runs_s'])} each in one run. Machine load {load[0]:.1f} at the start and "
        f"{load[1]:.1f} at the end (2 cores). Values in base currency (USD), quantities in units, weights as "
        "fractions of NAV.",
        "",
        *_header("drift of every account", "rows written", "best", "peak RSS"),
        *rows,
        "",
        f"`msm` / SQL: **{d['time_ratio']:.2f}x** the time (goal: at most {d['goals']['time_ratio']:g}x) and "
        f"{d['memory_ratio']:.2f}x the peak memory. Both wrote the same rows "
        f"({'same columns and rows' if checks['same_columns_and_rows'] else 'columns or rows DIFFER'}; every number "
        f"within {checks['max_relative_difference']:.1e} relative; {checks['breach_flags_differing']} breach flags "
        f"differ, {checks['breach_flags_differing_off_the_band']} of them off the band itself, where float rounding "
        "decides).",
        "",
        *_header("holdings import (validation, lookups, one transaction)", "rows", "time", "rows/s"),
        *imports,
        "",
        f"The import process peaks at {_mb(imp['peak_rss_mb'])}.",
        "",
    ]


def _rebalance_section(r: dict) -> list[str]:
    """Rebalancing proposals against drift (bench/bench_rebalance.py)."""
    book, stages, core = r["book"], r["stages"], r["core"]
    what = {
        "drift": "`msm drift --all` (every position, Parquet)",
        "full": "`msm rebalance --all --mode full` (the orders file, Parquet)",
        "bands": "`msm rebalance --all --mode bands` (default band 0.05)",
        "buy-only": "`msm rebalance --all --mode buy-only --cash-flow 10000`",
    }
    rows = [
        _row(
            what[name],
            f"{stage['rows']:,}",
            _s(stage["best_s"]),
            _s(stage["best_cpu_s"]),
            ""
            if name == "drift"
            else f"**{r['time_ratios'][f'{name}_vs_drift']:.2f}**; {r['cpu_ratios'][f'{name}_vs_drift']:.2f}",
            _mb(stage["peak_rss_mb"]),
        )
        for name, stage in stages.items()
    ]
    load = r["machine"]["load_average_before"][0], r["machine"]["load_average_after"][0]
    return [
        "## Rebalancing proposals (`bench/bench_rebalance.py`)",
        "",
        f"The drift bench book: {book['accounts']:,} accounts x 50 holdings, targets 30% portfolios "
        f"({core['positions']:,} drift positions: every held and every looked-through targeted asset); each "
        "command through the CLI's `main` in its own process, best of two runs in each of two interleaved rounds. "
        f"Quantities in units, values in base currency. Machine load {load[0]:.1f} at the start and {load[1]:.1f} "
        "at the end (2 cores): wall times move a lot from run to run, so the CPU time of all threads is shown too.",
        "",
        *_header("command", "rows written", "wall", "CPU", "/ drift (wall; CPU)", "peak RSS"),
        *rows,
        "",
        f"Goal: `--mode full` at most {r['goals']['full_vs_drift']:g}x the same run's `drift --all`. The proposal "
        f"itself (`msm.rebalancing.propose_rebalance` on the {core['positions']:,} positions, in one process after "
        f"one drift of {_s(core['drift_service_s'])}): full {_s(core['full']['best_s'])}, bands "
        f"{_s(core['bands']['best_s'])}, buy-only {_s(core['buy-only']['best_s'])} (wall). A rebalance is the drift, "
        "NAV and the cash residual summed again in a fixed order (so the output is byte-identical), the proposal, "
        "and the orders file. Every rebalance computes the whole drift first, so a ratio below 1 does not mean less "
        f"work: bands writes {stages['bands']['rows'] / stages['drift']['rows']:.1%} of the rows drift writes, and on "
        "this shared machine wall times of stages with "
        "about the same CPU time differ by up to 2x; the CPU column is the steadier comparison.",
        "",
    ]


def main() -> None:
    """Write docs/performance.md."""
    OUT.write_text(render())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
