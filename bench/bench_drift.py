"""Benchmark of ``msm drift --all`` against a hand-written DuckDB query. Not a test: it asserts no timing.

    python bench/bench_drift.py            # 10,000 accounts x 50 holdings on the bench book
    python bench/bench_drift.py --small    # 1,000 accounts

The book is the expansion benchmark's (``bench_expansion.generate``: position sets of 20 targets,
30% of them portfolio targets, over 200 portfolios of 100 constituents with 12 monthly
compositions, 2,000 assets), with one position set per account, plus a USD cash asset, holdings
(50 rows per account, the cash among them), 30 daily prices per asset (10% of the assets priced in
EUR) and 30 daily EUR/USD rates. Each stage runs in its own process, so its peak memory
(``ru_maxrss``) is its own:

- ``holdings_import``: ``msm.import_holdings`` of every holdings row from one Parquet file
  (validation of the whole frame, identifier lookups, one transaction), and from one CSV file;
- ``msm``: ``msm drift --all --as-of T --format parquet --out F`` run through the CLI's ``main``
  (everything a user waits for once the interpreter is up: reading holdings and targets, the
  look-through, prices, FX, the drift itself, the Parquet file);
- ``sql``: one hand-written DuckDB query computing the same columns on the same file, written with
  ``COPY ... TO`` as Parquet.

``msm`` and ``sql`` alternate (best of ``--repeat`` each, in one run), and ``checks`` confirm both
wrote the same rows (every key equal, every number within 1e-9 relative). Prints one JSON document
and writes it to ``bench/results/drift.json``.
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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULT = HERE / "results" / "drift.json"

HOLDINGS_TIME = datetime(2026, 12, 31, tzinfo=UTC)
VALUATION = "2027-01-01T00:00:00Z"
PER_ACCOUNT = 50
SIZES = {"full": 10_000, "small": 1_000}


# -- the book ------------------------------------------------------------------------------------------
def build(db: str, accounts: int, folder: Path) -> dict[str, Any]:
    """The bench book with one position set per account, a USD cash asset, prices, FX; holdings files in ``folder``."""
    from bench_expansion import FULL, generate

    import msm

    book = generate(db, {**FULL, "sets": accounts, "accounts": accounts})
    store = msm.Store(db)
    started = time.perf_counter()
    with store.transaction() as con:
        con.execute(
            "INSERT INTO asset (uid, unique_identifier, name, asset_type, currency) "
            "VALUES (?::UUID, 'USD', 'US dollar', 'cash', 'USD')",
            [str(uuid.uuid4())],
        )
    assets = store.query("SELECT unique_identifier FROM asset WHERE asset_type <> 'cash' ORDER BY unique_identifier")
    names = store.query("SELECT unique_identifier FROM account ORDER BY unique_identifier")["unique_identifier"]
    n_assets = assets.height
    days = [HOLDINGS_TIME - timedelta(days=d) for d in range(30)]
    prices = (
        assets.with_row_index("i")
        .join(pl.DataFrame({"time": days}), how="cross")
        .select(
            pl.col("unique_identifier").alias("asset"),
            pl.col("time").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("time"),
            (10.0 + (pl.col("i").cast(pl.Float64) * 7.3) % 990.0 + pl.col("time").dt.day().cast(pl.Float64) / 10).alias(
                "price"
            ),
            pl.when(pl.col("i") % 10 == 0).then(pl.lit("EUR")).otherwise(pl.lit("USD")).alias("currency"),
        )
    )
    rates = pl.DataFrame(
        {
            "base": ["EUR"] * len(days),
            "quote": ["USD"] * len(days),
            "time": [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in days],
            "rate": [1.05 + d / 1000 for d in range(len(days))],
        }
    )
    msm.import_prices(store, prices)
    msm.import_fx_rates(store, rates)
    market_s = time.perf_counter() - started
    # 49 assets per account (a stride through the universe: no duplicate) and the cash.
    k = pl.int_range(PER_ACCOUNT - 1, eager=True).alias("k")
    grid = pl.DataFrame({"account": names}).with_row_index("a").join(pl.DataFrame(k), how="cross")
    held = grid.with_columns(((pl.col("a") * 37 + pl.col("k") * 41) % n_assets).alias("ai")).join(
        assets.with_row_index("ai").with_columns(pl.col("ai").cast(pl.Int64)),
        on="ai",
        how="left",
    )
    holdings = pl.concat(
        [
            held.select(
                "account",
                pl.col("unique_identifier").alias("asset"),
                (1.0 + (pl.col("a") * 13 + pl.col("k") * 7) % 500).alias("quantity"),
            ),
            pl.DataFrame({"account": names}).select(
                "account", pl.lit("USD").alias("asset"), pl.lit(250_000.0).alias("quantity")
            ),
        ]
    )
    holdings.write_parquet(folder / "holdings.parquet")
    holdings.write_csv(folder / "holdings.csv")
    return {
        **book,
        "accounts": accounts,
        "holdings_rows": holdings.height,
        "price_rows": prices.height,
        "fx_rows": rates.height,
        "market_data_import_s": round(market_s, 2),
    }


# -- the hand-written query ----------------------------------------------------------------------------------
DRIFT_SQL = """
WITH accts AS (SELECT uid, unique_identifier AS account, base_currency FROM account WHERE account_is_active),
hs AS (
    SELECT account_uid, max(holdings_time) AS holdings_time FROM account_holdings_set
    WHERE holdings_time <= $t GROUP BY account_uid
),
held AS (
    SELECT s.account_uid, h.asset_uid, h.quantity
    FROM hs JOIN account_holdings_set AS s USING (account_uid, holdings_time)
    JOIN account_holdings AS h ON h.holdings_set_uid = s.uid AND h.time_index = s.holdings_time
),
ps AS (
    SELECT al.account_uid, p.uid AS set_uid, p.position_set_time
    FROM position_set AS p JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
    WHERE al.is_active AND p.position_set_time <= $t
    QUALIFY row_number() OVER (PARTITION BY al.account_uid ORDER BY p.position_set_time DESC, p.uid DESC) = 1
),
tp AS (
    SELECT ps.account_uid, t.* FROM target_positions AS t
    JOIN ps ON t.position_set_uid = ps.set_uid AND t.time_index = ps.position_set_time
),
picked AS (SELECT portfolio_uid, max(time_index) AS wt FROM portfolio_weights WHERE time_index <= $t GROUP BY ALL),
expanded AS (
    SELECT account_uid, asset_uid, weight_notional_exposure AS w, constant_notional_exposure AS c,
           single_asset_quantity AS q
    FROM tp WHERE target_type = 'asset'
    UNION ALL
    SELECT tp.account_uid, pw.asset_uid, tp.weight_notional_exposure * pw.weight,
           tp.constant_notional_exposure * pw.weight, NULL
    FROM tp JOIN picked AS k ON k.portfolio_uid = tp.portfolio_uid
    JOIN portfolio_weights AS pw ON pw.portfolio_uid = k.portfolio_uid AND pw.time_index = k.wt
    WHERE tp.target_type = 'portfolio'
),
tg AS (SELECT account_uid, asset_uid, sum(w) AS w, sum(c) AS c, sum(q) AS q FROM expanded GROUP BY ALL),
ok AS (
    SELECT a.* FROM accts AS a
    WHERE a.uid IN (SELECT account_uid FROM hs) AND a.uid IN (SELECT account_uid FROM ps)
),
joined AS (
    SELECT coalesce(h.account_uid, g.account_uid) AS account_uid, coalesce(h.asset_uid, g.asset_uid) AS asset_uid,
           coalesce(h.quantity, 0.0) AS quantity, g.w, g.c, g.q
    FROM held AS h FULL JOIN tg AS g ON h.account_uid = g.account_uid AND h.asset_uid = g.asset_uid
),
price AS (
    SELECT asset_uid, arg_max(price, time_index) AS price, arg_max(currency, time_index) AS currency
    FROM asset_price WHERE time_index <= $t GROUP BY asset_uid
),
pairs AS (
    SELECT base_currency AS f, quote_currency AS o, arg_max(rate, time_index) AS rate,
           max(time_index) AS rate_time, 0 AS inv
    FROM fx_rate WHERE time_index <= $t GROUP BY ALL
    UNION ALL
    SELECT quote_currency, base_currency, 1.0 / arg_max(rate, time_index), max(time_index), 1
    FROM fx_rate WHERE time_index <= $t GROUP BY base_currency, quote_currency
),
fx AS (SELECT f, o, rate FROM pairs QUALIFY row_number() OVER (PARTITION BY f, o ORDER BY rate_time DESC, inv) = 1),
valued AS (
    SELECT j.*, ok.account, ok.base_currency, a.unique_identifier AS asset, a.asset_type,
           CASE WHEN lower(trim(a.asset_type)) = 'cash' THEN 1.0 ELSE p.price END AS price,
           CASE WHEN lower(trim(a.asset_type)) = 'cash' THEN a.currency ELSE p.currency END AS price_currency
    FROM joined AS j JOIN ok ON ok.uid = j.account_uid JOIN asset AS a ON a.uid = j.asset_uid
    LEFT JOIN price AS p ON p.asset_uid = j.asset_uid
),
converted AS (
    SELECT v.*, CASE WHEN v.price_currency = v.base_currency THEN 1.0 ELSE fx.rate END AS fx_rate
    FROM valued AS v LEFT JOIN fx ON fx.f = v.price_currency AND fx.o = v.base_currency
),
mv AS (
    SELECT *, CASE WHEN quantity = 0 THEN 0.0 ELSE quantity * price * fx_rate END AS market_value FROM converted
),
navs AS (SELECT account_uid, sum(market_value) AS nav FROM mv GROUP BY ALL),
tv AS (
    SELECT mv.*, n.nav,
           coalesce(w, 0.0) * n.nav + coalesce(c, 0.0)
             + CASE WHEN coalesce(q, 0.0) = 0 THEN 0.0 ELSE q * price * fx_rate END AS target_value
    FROM mv JOIN navs AS n USING (account_uid)
),
cash AS (
    SELECT currency, arg_min(uid, (unique_identifier <> currency, unique_identifier)) AS cash_uid
    FROM asset WHERE lower(trim(asset_type)) = 'cash' AND currency IS NOT NULL GROUP BY currency
),
residual AS (
    SELECT t.account_uid, any_value(t.nav) AS nav, any_value(t.account) AS account,
           any_value(t.base_currency) AS base_currency, any_value(t.nav) - sum(t.target_value) AS residual,
           any_value(c.cash_uid) AS cash_uid
    FROM tv AS t LEFT JOIN cash AS c ON c.currency = t.base_currency GROUP BY t.account_uid
),
withcash AS (
    SELECT account_uid, asset_uid, account, base_currency, asset, asset_type, quantity, price, price_currency,
           fx_rate, market_value, target_value, nav
    FROM tv
    UNION ALL
    SELECT r.account_uid, r.cash_uid, r.account, r.base_currency, a.unique_identifier, a.asset_type, 0.0, 1.0,
           a.currency, 1.0, 0.0, 0.0, r.nav
    FROM residual AS r JOIN asset AS a ON a.uid = r.cash_uid
    WHERE abs(r.residual) > 1e-9 * r.nav
      AND NOT EXISTS (SELECT 1 FROM tv WHERE tv.account_uid = r.account_uid AND tv.asset_uid = r.cash_uid)
),
final AS (
    SELECT w.*, CASE WHEN w.asset_uid = r.cash_uid THEN w.target_value + r.residual ELSE w.target_value END AS tval
    FROM withcash AS w JOIN residual AS r USING (account_uid)
),
weights AS (SELECT *, market_value / nav AS current_weight, tval / nav AS target_weight FROM final)
SELECT account, base_currency, asset, asset_uid::VARCHAR AS asset_uid, asset_type, quantity, price, price_currency,
       fx_rate, market_value, current_weight, tval AS target_value, target_weight,
       current_weight - target_weight AS drift_abs,
       CASE WHEN target_weight <> 0 THEN (current_weight - target_weight) / target_weight END AS drift_rel,
       abs(current_weight - target_weight) > 0.05 AS breach
FROM weights
ORDER BY account, asset
"""


# -- stages (each in its own process) ----------------------------------------------------------------------
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stage_holdings_import(args: argparse.Namespace) -> dict[str, Any]:
    import msm

    store = msm.Store(args.db)
    folder = Path(args.folder)
    out = {}
    for suffix, at in ((".csv", HOLDINGS_TIME - timedelta(days=1)), (".parquet", HOLDINGS_TIME)):
        started = time.perf_counter()
        result = msm.import_holdings(store, folder / f"holdings{suffix}", at=at, source="bench")
        seconds = time.perf_counter() - started
        out[suffix.lstrip(".")] = {
            "seconds": round(seconds, 3),
            "rows": result.rows,
            "rows_per_s": round(result.rows / seconds),
            "accounts": result.to_dict()["accounts"],
        }
    return {**out, "peak_rss_mb": round(_maxrss_mb(), 1)}


def stage_msm(args: argparse.Namespace) -> dict[str, Any]:
    from msm_cli.main import main as msm_main

    before = _maxrss_mb()
    runs = []
    for i in range(args.repeat):
        out = Path(args.folder) / f"msm-{i}.parquet"
        started = time.perf_counter()
        code = msm_main(
            ["--db", args.db, "drift", "--all", "--as-of", VALUATION, "--format", "parquet", "--out", str(out)]
        )
        runs.append(time.perf_counter() - started)
        assert code == 0
    return {
        "best_s": round(min(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "rows": pl.scan_parquet(out).select(pl.len()).collect().item(),
    }


def stage_sql(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb

    before = _maxrss_mb()
    runs = []
    for i in range(args.repeat):
        out = Path(args.folder) / f"sql-{i}.parquet"
        started = time.perf_counter()
        con = duckdb.connect(args.db, read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            query = DRIFT_SQL.replace("$t", "$t::TIMESTAMPTZ")
            con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)", {"t": VALUATION})
        finally:
            con.close()
        runs.append(time.perf_counter() - started)
    return {
        "best_s": round(min(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "rows": pl.scan_parquet(out).select(pl.len()).collect().item(),
    }


STAGES = {"holdings_import": stage_holdings_import, "msm": stage_msm, "sql": stage_sql}


def _run(stage: str, args: argparse.Namespace, db: str, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--db", db, "--folder", str(folder), "--repeat", str(args.repeat)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 2)
    return result


def _checks(folder: Path) -> dict[str, Any]:
    """Both approaches wrote the same rows: keys equal, numbers within 1e-9 relative, flags equal."""
    ours, theirs = pl.read_parquet(folder / "msm-0.parquet"), pl.read_parquet(folder / "sql-0.parquet")
    same_shape = ours.columns == theirs.columns and ours.height == theirs.height
    numbers = [c for c, t in ours.schema.items() if t == pl.Float64]
    joined = ours.join(theirs, on=["account", "asset_uid"], how="full", suffix="_sql")
    worst = 0.0
    for c in numbers:
        diff = (joined[c] - joined[f"{c}_sql"]).abs() / joined[c].abs().clip(lower_bound=1e-12)
        both_null = joined[c].is_null() & joined[f"{c}_sql"].is_null()
        worst = max(worst, float(diff.filter(~both_null).fill_null(float("inf")).max() or 0.0))
    flags = bool((joined["breach"] == joined["breach_sql"]).all())
    return {"same_columns_and_rows": same_shape, "max_relative_difference": worst, "breach_flags_equal": flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 accounts instead of 10,000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per msm/sql stage (the best is kept)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return
    size = "small" if args.small else "full"
    report: dict[str, Any] = {
        "benchmark": "msm drift --all",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "valuation_time": VALUATION,
        "machine": {
            "python": platform.python_version(),
            "polars": pl.__version__,
            "cpus": os.cpu_count(),
            "load_average_before": list(os.getloadavg()),
        },
    }
    with tempfile.TemporaryDirectory(prefix="msm-bench-drift-") as tmp:
        folder, db = Path(tmp), str(Path(tmp) / "book.duckdb")
        print(f"generating the book ({SIZES[size]:,} accounts) ...", file=sys.stderr)
        report["book"] = build(db, SIZES[size], folder)
        print("  holdings import ...", file=sys.stderr)
        report["holdings_import"] = _run("holdings_import", args, db, folder)
        report["book"]["db_bytes"] = os.path.getsize(db)
        stages: dict[str, Any] = {}
        for stage in ("sql", "msm", "sql", "msm"):  # interleaved, so both see the same machine
            print(f"  {stage} ...", file=sys.stderr)
            run = _run(stage, args, db, folder)
            best = stages.get(stage)
            stages[stage] = run if best is None or run["best_s"] < best["best_s"] else best
        report["stages"] = stages
        report["checks"] = _checks(folder)
    report["time_ratio"] = round(stages["msm"]["best_s"] / stages["sql"]["best_s"], 3)
    report["memory_ratio"] = round(stages["msm"]["peak_rss_mb"] / stages["sql"]["peak_rss_mb"], 3)
    report["goals"] = {"time_ratio": 1.5}
    report["machine"]["load_average_after"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))
    RESULT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
