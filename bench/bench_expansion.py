"""Benchmark of look-through expansion (msm.expansion.expand_targets). Not a test: it asserts no timing.

    python bench/bench_expansion.py            # full book: 10,000 sets x 20 targets, ~6M output rows
    python bench/bench_expansion.py --small    # a quick run (500 sets)
    python bench/bench_expansion.py --db PATH  # build (or reuse, with --reuse) the book in PATH

A generator writes a synthetic book into a DuckDB file with Arrow inserts: position sets of 20
targets (30% portfolio targets) over portfolios of 100 constituents with 12 monthly compositions.
Then each measured stage runs in its own subprocess, so its peak memory (``ru_maxrss``) is its own:

- ``polars_db``       read the targets from DuckDB into polars, then ``expand_targets`` with the DuckDB
                      weights source (everything a caller waits for);
- ``polars_pipeline`` ``expand_targets`` on frames already in memory (plain and ``net=True``,
                      alternated, best of ``--repeat``);
- ``sql``             the same expansion as one DuckDB query (ASOF JOIN), materialized to Arrow, and its
                      netted variant;
- ``reference``       the row-by-row approach expansion replaces: per portfolio target row, a resolver
                      queries that portfolio's weights and a Python loop emits the constituents; run on
                      a sample of sets and scaled to the whole book.

Then the same book is built nested two and three levels deep (``--nested 2,3``): each portfolio's
constituents are split in a binary tree of sub-portfolios whose weights multiply back to the
one-level weights, so the look-through has exactly the same leaf rows. On each nested book,
``polars_db`` and ``polars_pipeline`` run again, and ``sql`` is the same recursion as one DuckDB
query (a recursive CTE over the compositions, each level's composition found by a range join);
``nested.N.summary.per_row_over_one_level`` is the time per output row over the one-level book's.

Weights time is ``position-set`` (each set's own time: the as-of case) unless ``--weights-as-of now``.
``checks`` in the result confirm the approaches agree: the polars rows are identical to the SQL
query's (same rows, same order, by a row-hash digest), netted totals match, and the reference
sample's totals equal polars' on the same sets. Timings are the best of ``--repeat`` runs; the
machine's load average is recorded, since other work on it shows in every number.
Prints one JSON document and writes it to ``bench/results/expansion.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

HERE = Path(__file__).resolve().parent
# Import the working tree's packages even where an older editable install knows msm_portfolios
# only as a namespace directory.
sys.path.insert(0, str(HERE.parent))
RESULT = HERE / "results" / "expansion.json"

FULL = dict(
    sets=10_000,
    targets_per_set=20,
    portfolio_share=0.3,
    portfolios=200,
    constituents=100,
    dates=12,
    assets=2_000,
    accounts=100,
)
SMALL = FULL | dict(sets=500, portfolios=40, assets=500, accounts=10)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_COMPOSITION = datetime(2025, 12, 1, tzinfo=UTC)


# -- the synthetic book ----------------------------------------------------------------------------
def _uuids(rng: random.Random, n: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def _indexed(frame: pl.DataFrame, index: str, uid: str) -> pl.DataFrame:
    """``frame``'s row numbers (Int64, named ``index``) and its uids (named ``uid``), to join picks on."""
    return (
        frame.with_row_index(index).with_columns(pl.col(index).cast(pl.Int64)).select(index, pl.col("uid").alias(uid))
    )


def _registry(rng: random.Random, size: dict[str, Any]) -> dict[str, Any]:
    """Assets, portfolios, accounts, one allocation per account and the model's uid, drawn from ``rng`` in turn."""
    n_assets, n_portfolios, n_accounts = size["assets"], size["portfolios"], size["accounts"]
    assets = pl.DataFrame(
        {"uid": _uuids(rng, n_assets), "unique_identifier": [f"ASSET-{i:05d}" for i in range(n_assets)]}
    )
    portfolios = pl.DataFrame(
        {"uid": _uuids(rng, n_portfolios), "unique_identifier": [f"PORT-{i:04d}" for i in range(n_portfolios)]}
    )
    accounts = pl.DataFrame(
        {"uid": _uuids(rng, n_accounts), "unique_identifier": [f"ACC-{i:04d}" for i in range(n_accounts)]}
    )
    allocations = pl.DataFrame(
        {
            "uid": _uuids(rng, n_accounts),
            "account_uid": accounts["uid"],
            "unique_identifier": [f"ALLOC-{i:04d}" for i in range(n_accounts)],
        }
    )
    model_uid = _uuids(rng, 1)[0]
    return {
        "assets": assets,
        "portfolios": portfolios,
        "accounts": accounts,
        "allocations": allocations,
        "model_uid": model_uid,
    }


def _position_sets(rng: random.Random, n_sets: int, allocations: pl.DataFrame) -> pl.DataFrame:
    """Set i belongs to allocation i % accounts; times spread over 2026 so the as-of case picks every month."""
    step = timedelta(days=360) / n_sets
    return pl.DataFrame(
        {
            "uid": _uuids(rng, n_sets),
            "account_target_allocation_uid": [allocations["uid"][i % allocations.height] for i in range(n_sets)],
            "position_set_time": [T0 + step * i for i in range(n_sets)],
        }
    ).with_columns(pl.col("position_set_time").cast(pl.Datetime("us", "UTC")))


def _targets(sets: pl.DataFrame, registry: dict[str, Any], size: dict[str, Any], seed: int) -> pl.DataFrame:
    """Per set, distinct assets and distinct portfolios, picked by a hashed start and a stride coprime to the
    universe size (so no duplicate within a set); the measure of each row drawn from the same hash."""
    n_sets, per_set = sets.height, size["targets_per_set"]
    n_asset_targets = per_set - round(per_set * size["portfolio_share"])
    n_assets, n_portfolios = size["assets"], size["portfolios"]
    k = pl.int_range(per_set, dtype=pl.Int64)
    grid = sets.select(
        pl.col("uid").alias("position_set_uid"),
        pl.col("position_set_time").alias("time_index"),
        pl.int_range(n_sets).alias("s"),
    )
    grid = grid.join(pl.DataFrame({"k": pl.select(k).to_series()}), how="cross").with_columns(
        (pl.col("s") * 1_000 + pl.col("k")).hash(seed).alias("h"), pl.col("s").hash(seed + 1).alias("hs")
    )
    is_port = pl.col("k") >= n_asset_targets
    asset_idx = ((pl.col("hs") % n_assets) + pl.col("k") * 7) % n_assets
    port_idx = ((pl.col("hs") % n_portfolios) + (pl.col("k") - n_asset_targets) * 13) % n_portfolios
    kind = pl.col("h") % 100
    targets = grid.with_columns(
        pl.when(is_port).then(pl.lit("portfolio")).otherwise(pl.lit("asset")).alias("target_type"),
        pl.when(~is_port).then(asset_idx).alias("ai"),
        pl.when(is_port).then(port_idx).alias("pi"),
        ((pl.col("h") // 1_048_576) % 10_000 / 100_000.0 + 0.001).alias("x"),
    )
    targets = targets.join(_indexed(registry["assets"], "ai", "asset_uid"), on="ai", how="left")
    targets = targets.join(_indexed(registry["portfolios"], "pi", "portfolio_uid"), on="pi", how="left")
    return targets.select(
        "time_index",
        "position_set_uid",
        "target_type",
        pl.coalesce("asset_uid", "portfolio_uid").alias("target_uid"),
        "asset_uid",
        "portfolio_uid",
        pl.when(kind < 80).then(pl.col("x")).alias("weight_notional_exposure"),
        pl.when((kind >= 80) & ((kind < 95) | is_port))
        .then(pl.col("x") * 1_000_000)
        .alias("constant_notional_exposure"),
        pl.when((kind >= 95) & ~is_port).then(pl.col("x") * 100).alias("single_asset_quantity"),
    )


def _weights(registry: dict[str, Any], size: dict[str, Any], seed: int) -> pl.DataFrame:
    """Compositions: ``constituents`` distinct assets per (portfolio, month); weights sum to 1 except ~5%."""
    n_assets, n_portfolios, n_const, n_dates = size["assets"], size["portfolios"], size["constituents"], size["dates"]
    comp = (
        pl.DataFrame({"p": range(n_portfolios)})
        .join(pl.DataFrame({"d": range(n_dates)}), how="cross")
        .join(pl.DataFrame({"c": range(n_const)}), how="cross")
    )
    comp = comp.with_columns(
        (((pl.col("p") * 31 + pl.col("d") * 17).hash(seed) % n_assets + pl.col("c") * 11) % n_assets).alias("ai"),
        ((pl.col("p") * 100_000 + pl.col("d") * 1_000 + pl.col("c")).hash(seed + 2) % 1_000 + 1)
        .cast(pl.Float64)
        .alias("raw"),
        ((pl.col("p") * 100 + pl.col("d")).hash(seed + 3) % 20 == 0).alias("off"),
    ).with_columns(
        (pl.col("raw") / pl.col("raw").sum().over("p", "d") * pl.when(pl.col("off")).then(0.98).otherwise(1.0)).alias(
            "weight"
        )
    )
    months = [
        FIRST_COMPOSITION.replace(month=12) if m == 0 else datetime(2026, m, 1, tzinfo=UTC) for m in range(n_dates)
    ]
    weights = (
        comp.join(
            pl.DataFrame({"d": range(n_dates), "time_index": months}).with_columns(
                pl.col("time_index").cast(pl.Datetime("us", "UTC"))
            ),
            on="d",
        )
        .join(_indexed(registry["assets"], "ai", "asset_uid"), on="ai")
        .join(_indexed(registry["portfolios"], "p", "portfolio_uid"), on="p")
    )
    return weights.select("time_index", "portfolio_uid", "asset_uid", "weight")


def _nest(weights: pl.DataFrame, levels: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The same leaves under ``levels`` levels: each composition's constituents split in a binary tree.

    A portfolio P's constituents (in a fixed order) are split into ``2 ** (levels - 1)`` groups; the
    groups are the leaves of a binary tree of sub-portfolios ``P/L{k}-{node}`` (the same tree at
    every composition time). P holds its two children at their summed weights; each inner node
    holds its children at their share of it; each leaf node holds its assets at their share of it.
    The product along every path is the one-level weight again (up to rounding), so the look-through
    has exactly the one-level rows. Returns the weights (with ``constituent_type`` and
    ``constituent_portfolio_uid``) and the sub-portfolios (``uid``, ``unique_identifier``).
    """
    if levels == 1:
        return weights, pl.DataFrame(schema={"uid": pl.String, "unique_identifier": pl.String})
    groups = 2 ** (levels - 1)
    leaf = (
        weights.sort("portfolio_uid", "time_index", "asset_uid")
        .with_columns(
            (
                pl.int_range(pl.len()).over("portfolio_uid", "time_index")
                * groups
                // pl.len().over("portfolio_uid", "time_index")
            ).alias("g")
        )
        .with_columns(
            *[(pl.col("g") // 2 ** (levels - 1 - k)).alias(f"n{k}") for k in range(1, levels)],
        )
    )

    def node(k: int) -> pl.Expr:
        """The uid text of the depth-``k`` node of a row (``k = 0``: the portfolio itself)."""
        if k == 0:
            return pl.col("portfolio_uid")
        return pl.concat_str(pl.col("portfolio_uid"), pl.lit(f"/L{k}-"), pl.col(f"n{k}").cast(pl.String))

    def total(k: int) -> pl.Expr:
        """The summed weight under the depth-``k`` node of a row."""
        return pl.col("weight").sum().over("portfolio_uid", "time_index", *[f"n{j}" for j in range(1, k + 1)])

    rows = [
        leaf.select(
            "time_index",
            node(levels - 1).alias("portfolio_uid"),
            pl.lit("asset").alias("constituent_type"),
            "asset_uid",
            pl.lit(None, pl.String).alias("constituent_portfolio_uid"),
            (pl.col("weight") / total(levels - 1)).alias("weight"),
        )
    ]
    for k in range(levels - 1):
        edge = pl.when(pl.lit(k == 0)).then(total(1)).otherwise(total(k + 1) / total(k))
        rows.append(
            leaf.select(
                "time_index",
                node(k).alias("portfolio_uid"),
                pl.lit("portfolio").alias("constituent_type"),
                pl.lit(None, pl.String).alias("asset_uid"),
                node(k + 1).alias("constituent_portfolio_uid"),
                edge.alias("weight"),
            ).unique(["time_index", "portfolio_uid", "constituent_portfolio_uid"])
        )
    nested = pl.concat(rows)
    keys = nested.filter(pl.col("constituent_type") == "portfolio")["constituent_portfolio_uid"].unique().sort()
    mapping = {key: str(uuid.uuid5(uuid.NAMESPACE_URL, f"msm-bench/{key}")) for key in keys.to_list()}
    subs = pl.DataFrame({"key": list(mapping), "uid": list(mapping.values())})
    nested = nested.with_columns(
        pl.col("portfolio_uid").replace(mapping), pl.col("constituent_portfolio_uid").replace(mapping)
    )
    return nested, subs.select("uid", pl.col("key").str.replace(r"^[0-9a-f-]+", "SUB").alias("unique_identifier"))


def _write_book(
    store: Any, registry: dict[str, Any], sets: pl.DataFrame, targets: pl.DataFrame, weights: pl.DataFrame
) -> None:
    """Insert the book with Arrow: the registry, then the position sets, then targets and weights."""
    model_uid = registry["model_uid"]
    with store.transaction() as con:

        def insert(table: str, frame: pl.DataFrame, select: str) -> None:
            """Insert ``frame`` into ``table`` through ``select`` (which reads ``__gen``)."""
            con.register("__gen", frame.to_arrow())
            con.execute(f"INSERT INTO {table} {select}")
            con.unregister("__gen")

        insert(
            "asset (uid, unique_identifier, asset_type)",
            registry["assets"],
            "SELECT uid::UUID, unique_identifier, 'synthetic' FROM __gen",
        )
        insert(
            "portfolio",
            registry["portfolios"],
            "SELECT uid::UUID, unique_identifier, unique_identifier, NULL FROM __gen",
        )
        con.execute("INSERT INTO account_allocation_model VALUES (?, 'bench model', NULL, NULL)", [model_uid])
        insert(
            "account (uid, unique_identifier, account_name, is_paper, account_is_active)",
            registry["accounts"],
            "SELECT uid::UUID, unique_identifier, unique_identifier, true, true FROM __gen",
        )
        insert(
            "account_target_allocation",
            registry["allocations"].with_columns(pl.lit(model_uid).alias("model")),
            "SELECT uid::UUID, unique_identifier, account_uid::UUID, model::UUID, NULL, true, 'bench', NULL FROM __gen",
        )
    with store.transaction() as con:  # DuckDB checks foreign keys against committed rows
        con.register("__gen", sets.to_arrow())
        con.execute(
            "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, source, metadata_json) "
            "SELECT uid::UUID, account_target_allocation_uid::UUID, position_set_time, 'bench', NULL FROM __gen"
        )
    with store.transaction() as con:
        con.register("__gen", targets.to_arrow())
        con.execute(
            "INSERT INTO target_positions BY NAME SELECT time_index, position_set_uid::UUID AS position_set_uid, "
            "target_type, target_uid::UUID AS target_uid, asset_uid::UUID AS asset_uid, "
            "portfolio_uid::UUID AS portfolio_uid, weight_notional_exposure, constant_notional_exposure, "
            "single_asset_quantity FROM __gen"
        )
        if "constituent_type" not in weights.columns:  # a one-level book: every constituent is an asset
            weights = weights.with_columns(
                pl.lit("asset").alias("constituent_type"), pl.lit(None, pl.String).alias("constituent_portfolio_uid")
            )
        con.register("__gen_w", weights.to_arrow())
        con.execute(
            "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, asset_uid, "
            "constituent_portfolio_uid, weight) SELECT time_index, portfolio_uid::UUID, constituent_type, "
            "coalesce(asset_uid, constituent_portfolio_uid)::UUID, asset_uid::UUID, constituent_portfolio_uid::UUID, "
            "weight FROM __gen_w"
        )


def generate(db: str, size: dict[str, Any], seed: int = 27, levels: int = 1) -> dict[str, Any]:
    """Write the book into a fresh database at ``db`` (its portfolios nested ``levels`` deep); return what it holds."""
    from msm_portfolios import init_store

    started = time.perf_counter()
    rng = random.Random(seed)
    store = init_store(db)
    registry = _registry(rng, size)
    sets = _position_sets(rng, size["sets"], registry["allocations"])
    targets = _targets(sets, registry, size, seed)
    weights, subs = _nest(_weights(registry, size, seed), levels)
    if subs.height:  # named after their portfolio and place in the tree, so unique
        named = dict(zip(registry["portfolios"]["uid"], registry["portfolios"]["unique_identifier"], strict=True))
        subs = subs.with_columns(
            pl.Series("unique_identifier", [f"{named.get(u, 'SUB')}-{i:05d}" for i, u in enumerate(subs["uid"])])
        )
        registry = registry | {"portfolios": pl.concat([registry["portfolios"], subs])}
    _write_book(store, registry, sets, targets, weights)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "position_sets": size["sets"],
        "target_rows": targets.height,
        "portfolio_target_rows": int((targets["target_type"] == "portfolio").sum()),
        "portfolios": size["portfolios"],
        "constituents_per_composition": size["constituents"],
        "compositions_per_portfolio": size["dates"],
        "weight_rows": weights.height,
        "levels": levels,
        "sub_portfolios": subs.height,
        "assets": size["assets"],
        "db_bytes": os.path.getsize(db),
    }


# -- shared reads ------------------------------------------------------------------------------------
TARGETS_SQL = """
SELECT t.position_set_uid::VARCHAR AS position_set_uid, t.time_index, t.target_type,
       t.target_uid::VARCHAR AS target_uid, t.asset_uid::VARCHAR AS asset_uid,
       t.portfolio_uid::VARCHAR AS portfolio_uid,
       t.weight_notional_exposure, t.constant_notional_exposure, t.single_asset_quantity,
       coalesce(a.unique_identifier, p.unique_identifier) AS unique_identifier
FROM target_positions AS t
LEFT JOIN asset AS a ON a.uid = t.asset_uid
LEFT JOIN portfolio AS p ON p.uid = t.portfolio_uid
"""


def read_targets(store: Any) -> pl.DataFrame:
    """All target rows with their identifiers, as the stages read them."""
    return store.query(TARGETS_SQL)


# The same expansion as one DuckDB query: ASOF JOIN for the composition, equi-join for constituents.
def sql_expansion(net: bool, weights_as_of: str) -> str:
    """The expansion (or, with ``net``, the netted expansion) as one DuckDB query."""
    when = "t.time_index" if weights_as_of == "position-set" else "$now"
    expanded = f"""
    WITH t AS ({TARGETS_SQL}),
    compositions AS (SELECT DISTINCT portfolio_uid, time_index FROM portfolio_weights),
    picked AS (
        SELECT t.*, c.time_index AS weights_time
        FROM (SELECT *, {when} AS wtime FROM t WHERE target_type = 'portfolio') AS t
        ASOF LEFT JOIN compositions AS c ON c.portfolio_uid = t.portfolio_uid::UUID AND c.time_index <= t.wtime
    ),
    expanded AS (
        SELECT position_set_uid, time_index, 'asset' AS source_target_type, target_uid AS source_target_uid,
               NULL::VARCHAR AS portfolio_uid, asset_uid, unique_identifier AS asset, NULL::DOUBLE AS portfolio_weight,
               NULL::TIMESTAMPTZ AS weights_time, weight_notional_exposure, constant_notional_exposure,
               single_asset_quantity, NULL::VARCHAR AS path, 0 AS depth
        FROM t WHERE target_type = 'asset'
        UNION ALL
        SELECT p.position_set_uid, p.time_index, 'portfolio', p.target_uid, p.portfolio_uid, w.asset_uid::VARCHAR,
               a.unique_identifier, w.weight, p.weights_time, p.weight_notional_exposure * w.weight,
               p.constant_notional_exposure * w.weight, NULL::DOUBLE, p.unique_identifier, 1
        FROM picked AS p
        JOIN portfolio_weights AS w ON w.portfolio_uid = p.portfolio_uid::UUID AND w.time_index = p.weights_time
        JOIN asset AS a ON a.uid = w.asset_uid
    )
    """
    if not net:
        return (
            expanded + "SELECT * FROM expanded ORDER BY position_set_uid, source_target_type, source_target_uid, asset"
        )
    return (
        expanded
        + """
    SELECT position_set_uid, min(time_index) AS time_index, asset_uid, min(asset) AS asset,
           sum(weight_notional_exposure) AS weight_notional_exposure,
           sum(constant_notional_exposure) AS constant_notional_exposure,
           sum(single_asset_quantity) AS single_asset_quantity, count(*) AS n_sources
    FROM expanded GROUP BY position_set_uid, asset_uid ORDER BY position_set_uid, asset, asset_uid
    """
    )


# The nested expansion as one DuckDB query: a recursive CTE walks each (portfolio, weights time) pair
# down its compositions (each level's own composition at that time, found by a range join on the
# composition's validity), multiplying the weights, then the targets join the leaves.
def sql_nested_expansion(net: bool, weights_as_of: str) -> str:
    """The nested expansion (or, with ``net``, the netted one) as one recursive DuckDB query."""
    when = "t.time_index" if weights_as_of == "position-set" else "$now"
    expanded = f"""
    WITH RECURSIVE t AS ({TARGETS_SQL}),
    ranges AS (
        SELECT portfolio_uid, time_index,
               lead(time_index) OVER (PARTITION BY portfolio_uid ORDER BY time_index) AS valid_to
        FROM (SELECT DISTINCT portfolio_uid, time_index FROM portfolio_weights)
    ),
    pairs AS (SELECT DISTINCT portfolio_uid::UUID AS root, {when} AS wtime FROM t WHERE target_type = 'portfolio'),
    walk(root, wtime, root_time, constituent_type, asset_uid, child, weight, path, depth) AS (
        SELECT p.root, p.wtime, r.time_index, w.constituent_type, w.asset_uid, w.constituent_portfolio_uid,
               w.weight, pr.unique_identifier, 1
        FROM pairs AS p
        JOIN ranges AS r ON r.portfolio_uid = p.root AND r.time_index <= p.wtime
                        AND (r.valid_to IS NULL OR p.wtime < r.valid_to)
        JOIN portfolio_weights AS w ON w.portfolio_uid = p.root AND w.time_index = r.time_index
        JOIN portfolio AS pr ON pr.uid = p.root
        UNION ALL
        SELECT k.root, k.wtime, k.root_time, w.constituent_type, w.asset_uid, w.constituent_portfolio_uid,
               k.weight * w.weight, k.path || ' > ' || c.unique_identifier, k.depth + 1
        FROM walk AS k
        JOIN ranges AS r ON r.portfolio_uid = k.child AND r.time_index <= k.wtime
                        AND (r.valid_to IS NULL OR k.wtime < r.valid_to)
        JOIN portfolio_weights AS w ON w.portfolio_uid = k.child AND w.time_index = r.time_index
        JOIN portfolio AS c ON c.uid = k.child
        WHERE k.constituent_type = 'portfolio' AND k.depth < 8
    ),
    expanded AS (
        SELECT position_set_uid, time_index, 'asset' AS source_target_type, target_uid AS source_target_uid,
               NULL::VARCHAR AS portfolio_uid, asset_uid, unique_identifier AS asset, NULL::DOUBLE AS portfolio_weight,
               NULL::TIMESTAMPTZ AS weights_time, weight_notional_exposure, constant_notional_exposure,
               single_asset_quantity, NULL::VARCHAR AS path, 0 AS depth
        FROM t WHERE target_type = 'asset'
        UNION ALL
        SELECT t.position_set_uid, t.time_index, 'portfolio', t.target_uid, t.portfolio_uid, l.asset_uid::VARCHAR,
               a.unique_identifier, l.weight, l.root_time, t.weight_notional_exposure * l.weight,
               t.constant_notional_exposure * l.weight, NULL::DOUBLE, l.path, l.depth
        FROM t
        JOIN walk AS l ON l.constituent_type = 'asset' AND l.root = t.portfolio_uid::UUID AND l.wtime = {when}
        JOIN asset AS a ON a.uid = l.asset_uid
        WHERE t.target_type = 'portfolio'
    )
    """
    if not net:
        return (
            expanded
            + "SELECT * FROM expanded ORDER BY position_set_uid, source_target_type, source_target_uid, asset, path"
        )
    return (
        expanded
        + """
    SELECT position_set_uid, min(time_index) AS time_index, asset_uid, min(asset) AS asset,
           sum(weight_notional_exposure) AS weight_notional_exposure,
           sum(constant_notional_exposure) AS constant_notional_exposure,
           sum(single_asset_quantity) AS single_asset_quantity, count(*) AS n_sources
    FROM expanded GROUP BY position_set_uid, asset_uid ORDER BY position_set_uid, asset, asset_uid
    """
    )


# -- stages (each in its own process) --------------------------------------------------------------------
def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best(fn: Any, repeat: int) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        result = None
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), [round(t, 3) for t in times], result


def stage_polars_db(args: argparse.Namespace) -> dict[str, Any]:
    """Read the targets from DuckDB, then ``expand_targets`` with the DuckDB weights source."""
    from msm.expansion import expand_targets
    from msm.store import Store
    from msm_portfolios import duckdb_weights_source

    store = Store(args.db)
    before = _maxrss_mb()
    runs = []
    result = None
    for _ in range(args.repeat):
        result = None
        started = time.perf_counter()
        targets = read_targets(store)
        read_s = time.perf_counter() - started
        result = expand_targets(targets, duckdb_weights_source(store), weights_as_of=args.weights_as_of)
        runs.append((time.perf_counter() - started, read_s))
        if len(runs) == 1:
            peak_first = _maxrss_mb()
    assert result is not None
    wall, read_s = min(runs)
    return {
        "wall_s": round(wall, 3),
        "first_run_s": round(runs[0][0], 3),
        "runs_s": [round(r[0], 3) for r in runs],
        "read_targets_s": round(read_s, 3),
        "expand_with_duckdb_source_s": round(wall - read_s, 3),
        "output_rows": result.rows.height,
        "rows_per_s": round(result.rows.height / wall),
        "diagnostics_rows": result.diagnostics.height,
        "rss_before_mb": round(before, 1),
        "peak_rss_first_run_mb": round(peak_first, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "totals": _totals(result.rows),
        "fingerprint": _fingerprint(result.rows),
    }


def stage_polars_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """``expand_targets`` on frames already in memory, plain and netted, alternated."""
    from msm.expansion import expand_targets
    from msm.store import Store
    from msm_portfolios import duckdb_weights_source

    store = Store(args.db)
    targets = read_targets(store)
    weights = duckdb_weights_source(store)(sorted(targets["portfolio_uid"].drop_nulls().unique().to_list()), None)
    before = _maxrss_mb()
    plain_times, net_times = [], []
    plain = net = None
    for _ in range(args.repeat):  # alternate, so both see the same machine state
        plain = None
        started = time.perf_counter()
        plain = expand_targets(targets, weights, weights_as_of=args.weights_as_of)
        plain_times.append(time.perf_counter() - started)
        peak_plain = _maxrss_mb()
        net = None
        started = time.perf_counter()
        net = expand_targets(targets, weights, weights_as_of=args.weights_as_of, net=True)
        net_times.append(time.perf_counter() - started)
    assert plain is not None and net is not None
    best_plain, best_net = min(plain_times), min(net_times)
    return {
        "input_target_rows": targets.height,
        "input_weight_rows": weights.height,
        "plain": {
            "best_s": round(best_plain, 3),
            "runs_s": [round(t, 3) for t in plain_times],
            "output_rows": plain.rows.height,
            "rows_per_s": round(plain.rows.height / best_plain),
        },
        "net": {
            "best_s": round(best_net, 3),
            "runs_s": [round(t, 3) for t in net_times],
            "output_rows": net.rows.height,
            "input_rows_per_s": round(plain.rows.height / best_net),
        },
        "net_over_plain": round(best_net / best_plain, 3),
        "net_over_plain_median": round(statistics.median(net_times) / statistics.median(plain_times), 3),
        "rss_inputs_loaded_mb": round(before, 1),
        "peak_rss_after_first_plain_mb": round(peak_plain, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "totals": _totals(plain.rows),
        "net_totals": _totals(net.rows),
        "fingerprint": _fingerprint(plain.rows),
    }


def stage_sql(args: argparse.Namespace) -> dict[str, Any]:
    """The same expansion as one DuckDB query, materialized to Arrow, plain and netted."""
    import duckdb

    params = {"now": datetime.now(UTC)} if args.weights_as_of == "now" else None

    def run(net: bool) -> pa.Table:
        """One run of the query on a fresh connection."""
        con = duckdb.connect(args.db, read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            query = sql_expansion if args.levels == 1 else sql_nested_expansion
            return con.sql(query(net, args.weights_as_of), params=params).to_arrow_table()
        finally:
            con.close()

    before = _maxrss_mb()
    best_plain, plain_runs, table = _best(lambda: run(False), args.repeat)
    peak_plain = _maxrss_mb()
    best_net, net_runs, net_table = _best(lambda: run(True), args.repeat)
    plain = pl.from_arrow(table)
    return {
        "plain": {
            "best_s": round(best_plain, 3),
            "runs_s": plain_runs,
            "output_rows": table.num_rows,
            "rows_per_s": round(table.num_rows / best_plain),
        },
        "net": {"best_s": round(best_net, 3), "runs_s": net_runs, "output_rows": net_table.num_rows},
        "net_over_plain": round(best_net / best_plain, 3),
        "rss_before_mb": round(before, 1),
        "peak_rss_after_plain_mb": round(peak_plain, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "totals": _totals(plain),  # type: ignore[arg-type]
        "fingerprint": _fingerprint(plain),  # type: ignore[arg-type]
        "net_totals": _totals(pl.from_arrow(net_table)),  # type: ignore[arg-type]
    }


def _reference_resolver(con: Any) -> Callable[[str, datetime], list[tuple[Any, ...]]]:
    """The reference's resolver: one query per call for a portfolio's weights as of a time."""

    def resolver(portfolio_uid: str, at: datetime) -> list[tuple[Any, ...]]:
        """The constituents (asset uid, identifier, weight, composition time) of the composition as of ``at``."""
        # Times travel as epoch microseconds: fetchall() of a TIMESTAMPTZ needs pytz, which we do not ship.
        found = con.execute(
            """
            SELECT w.asset_uid::VARCHAR, a.unique_identifier, w.weight, epoch_us(w.time_index)
            FROM portfolio_weights AS w JOIN asset AS a ON a.uid = w.asset_uid
            WHERE w.portfolio_uid = ?
              AND w.time_index = (
                  SELECT max(time_index) FROM portfolio_weights WHERE portfolio_uid = ? AND time_index <= ?
              )
            """,
            [portfolio_uid, portfolio_uid, at],
        ).fetchall()
        return [(a, n, w, EPOCH + timedelta(microseconds=us)) for a, n, w, us in found]

    return resolver


def _reference_loop(records: list[dict[str, Any]], resolver: Callable, now: datetime | None) -> list[dict[str, Any]]:
    """The reference's loop: per target row, its own output row or, for a portfolio, one per constituent.

    Weights are as of each row's own time, or as of ``now`` when given.
    """
    out: list[dict[str, Any]] = []
    for row in records:
        base = {
            "position_set_uid": row["position_set_uid"],
            "time_index": row["time_index"],
            "source_target_type": row["target_type"],
            "source_target_uid": row["target_uid"],
        }
        if row["target_type"] == "asset":
            out.append(
                {
                    **base,
                    "portfolio_uid": None,
                    "asset_uid": row["asset_uid"],
                    "asset": row["unique_identifier"],
                    "portfolio_weight": None,
                    "weights_time": None,
                    "weight_notional_exposure": row["weight_notional_exposure"],
                    "constant_notional_exposure": row["constant_notional_exposure"],
                    "single_asset_quantity": row["single_asset_quantity"],
                }
            )
            continue
        at = row["time_index"] if now is None else now
        for asset_uid, asset, weight, weights_time in sorted(
            resolver(row["portfolio_uid"], at), key=lambda r: (r[1], r[0])
        ):
            wne, cne = row["weight_notional_exposure"], row["constant_notional_exposure"]
            out.append(
                {
                    **base,
                    "portfolio_uid": row["portfolio_uid"],
                    "asset_uid": asset_uid,
                    "asset": asset,
                    "portfolio_weight": weight,
                    "weights_time": weights_time,
                    "weight_notional_exposure": None if wne is None else wne * weight,
                    "constant_notional_exposure": None if cne is None else cne * weight,
                    "single_asset_quantity": None,
                }
            )
    return out


def stage_reference(args: argparse.Namespace) -> dict[str, Any]:
    """Row by row, as the reference did: one resolver query per portfolio target row, a Python loop per constituent.

    The resolver is given the set's time (the reference passed none); that only makes its answer
    comparable with ours, it costs the same query.
    """
    import duckdb

    from msm.store import Store

    store = Store(args.db)
    targets = read_targets(store)
    sample_sets = targets["position_set_uid"].unique().sort().head(args.sample_sets)
    sample = targets.filter(pl.col("position_set_uid").is_in(sample_sets.implode())).sort(
        "position_set_uid", "target_type", "target_uid"
    )
    records = sample.to_dicts()
    now = datetime.now(UTC)
    con = duckdb.connect(args.db, read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    resolver = _reference_resolver(con)
    before = _maxrss_mb()
    started = time.perf_counter()
    out = _reference_loop(records, resolver, None if args.weights_as_of == "position-set" else now)
    rows = pl.DataFrame(out, infer_schema_length=None)
    elapsed = time.perf_counter() - started
    con.close()
    scale = targets.height / sample.height
    return {
        "sample_sets": sample_sets.len(),
        "sample_target_rows": sample.height,
        "sample_resolver_calls": int((sample["target_type"] == "portfolio").sum()),
        "sample_output_rows": rows.height,
        "sample_s": round(elapsed, 3),
        "rows_per_s": round(rows.height / elapsed),
        "scaled_full_s": round(elapsed * scale, 1),
        "scale_factor": round(scale, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "sample_totals": _totals(rows),
        "sample_sets_list": sample_sets.to_list(),
    }


def stage_check_sample(args: argparse.Namespace) -> dict[str, Any]:
    """The polars expansion of the reference sample equals the reference's, row for row."""
    from msm.expansion import expand_targets
    from msm.store import Store
    from msm_portfolios import duckdb_weights_source

    store = Store(args.db)
    targets = read_targets(store)
    sample_sets = targets["position_set_uid"].unique().sort().head(args.sample_sets)
    sample = targets.filter(pl.col("position_set_uid").is_in(sample_sets.implode()))
    ours = expand_targets(sample, duckdb_weights_source(store), weights_as_of=args.weights_as_of).rows
    return {"sample_output_rows": ours.height, "sample_totals": _totals(ours)}


def _fingerprint(rows: pl.DataFrame) -> str:
    """An order-sensitive digest of a plain expansion (same rows, same order, same values)."""
    position = pl.int_range(1, rows.height + 1, eager=True, dtype=pl.UInt64)
    return str((rows.hash_rows(seed=0) * position).sum())  # wraps around on overflow: still a digest


def _totals(rows: pl.DataFrame) -> dict[str, float]:
    return {
        c: float(rows[c].sum())
        for c in ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
    } | {"rows": rows.height}


STAGES = {
    "polars_db": stage_polars_db,
    "polars_pipeline": stage_polars_pipeline,
    "sql": stage_sql,
    "reference": stage_reference,
    "check_sample": stage_check_sample,
}


def run_stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in a child process; its JSON result and the seconds the process took."""
    command = [
        sys.executable,
        __file__,
        "--stage",
        name,
        "--db",
        args.db,
        "--repeat",
        str(args.repeat),
        "--sample-sets",
        str(args.sample_sets),
        "--weights-as-of",
        args.weights_as_of,
        "--levels",
        str(args.levels),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    result["process_s"] = round(time.perf_counter() - started, 2)
    print(f"  {name}: done in {result['process_s']} s", file=sys.stderr)
    return result


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["rows"] == b["rows"] and all(
        abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k]), abs(b[k])) for k in a if k != "rows"
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick run on a small book")
    parser.add_argument("--db", help="database file for the book (default: a temporary directory)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the book already in --db instead of regenerating it"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per timed step; the best is reported")
    parser.add_argument("--sample-sets", type=int, default=50, help="position sets the row-by-row reference runs on")
    parser.add_argument("--weights-as-of", default="position-set", choices=["position-set", "now"])
    parser.add_argument("--out", default=str(RESULT), help="where to write the JSON result")
    parser.add_argument(
        "--nested",
        default="2,3",
        help="also run books nested this many levels deep (same leaf rows), comma-separated; '' for none",
    )
    parser.add_argument("--levels", type=int, default=1, help=argparse.SUPPRESS)  # a stage's book
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _book(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the book into ``args.db`` (or, with --reuse, keep the one there); what it holds."""
    if args.reuse and Path(args.db).exists():
        return {"reused": args.db}
    for suffix in ("", ".wal"):
        Path(args.db + suffix).unlink(missing_ok=True)
    print(f"generating the book ({args.levels} level(s)) in {args.db} ...", file=sys.stderr)
    return generate(args.db, SMALL if args.small else FULL, levels=args.levels)


def _summary(stages: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of the stages: times, throughputs, ratios, peak memory."""
    pipe, sql, ref, db = stages["polars_pipeline"], stages["sql"], stages["reference"], stages["polars_db"]
    return {
        "output_rows": pipe["plain"]["output_rows"],
        "polars_with_duckdb_read_s": db["wall_s"],
        "polars_pipeline_s": pipe["plain"]["best_s"],
        "polars_pipeline_rows_per_s": pipe["plain"]["rows_per_s"],
        "polars_net_s": pipe["net"]["best_s"],
        "sql_s": sql["plain"]["best_s"],
        "sql_rows_per_s": sql["plain"]["rows_per_s"],
        "sql_net_s": sql["net"]["best_s"],
        "reference_scaled_s": ref["scaled_full_s"],
        "reference_rows_per_s": ref["rows_per_s"],
        "ratio_polars_pipeline_over_sql": round(pipe["plain"]["best_s"] / sql["plain"]["best_s"], 3),
        "ratio_polars_with_read_over_sql": round(db["wall_s"] / sql["plain"]["best_s"], 3),
        "ratio_polars_net_over_sql_net": round(pipe["net"]["best_s"] / sql["net"]["best_s"], 3),
        "speedup_polars_pipeline_over_reference": round(ref["scaled_full_s"] / pipe["plain"]["best_s"], 1),
        "speedup_polars_with_read_over_reference": round(ref["scaled_full_s"] / db["wall_s"], 1),
        "ratio_net_over_plain": pipe["net_over_plain"],
        "ratio_net_over_plain_median": pipe["net_over_plain_median"],
        "peak_rss_mb": {
            "polars_db": db["peak_rss_mb"],
            "polars_pipeline": pipe["peak_rss_mb"],
            "sql": sql["peak_rss_mb"],
            "reference_sample": ref["peak_rss_mb"],
        },
    }


def _checks(stages: dict[str, Any]) -> dict[str, bool]:
    """Whether the approaches agree: totals, netted totals, row digests, the reference sample."""
    pipe, sql, ref, db = stages["polars_pipeline"], stages["sql"], stages["reference"], stages["polars_db"]
    return {
        "polars_equals_sql_totals": _close(pipe["totals"], sql["totals"]),
        "polars_net_equals_sql_net_totals": _close(pipe["net_totals"], sql["net_totals"]),
        "polars_db_equals_pipeline_totals": _close(db["totals"], pipe["totals"]),
        "polars_rows_identical_to_sql_rows": pipe["fingerprint"] == sql["fingerprint"] == db["fingerprint"],
        "reference_sample_equals_polars": _close(ref["sample_totals"], stages["check_sample"]["sample_totals"]),
    }


def _nested_runs(args: argparse.Namespace, tmp: str, flat: dict[str, Any]) -> dict[str, Any]:
    """The polars and SQL stages on the same book nested 2 (3, ...) levels deep, against the one-level run.

    ``per_row_over_one_level``: the polars time per output row over the one-level book's (the goal is
    at most 1.5); ``polars_over_sql``: against the recursive-CTE query on the same nested book.
    """
    runs: dict[str, Any] = {}
    for levels in [int(n) for n in args.nested.split(",") if n.strip()]:
        nested_args = argparse.Namespace(**{**vars(args), "levels": levels, "reuse": False})
        nested_args.db = str(Path(tmp) / f"book-{levels}.duckdb")
        book = _book(nested_args)
        stages = {name: run_stage(name, nested_args) for name in ("polars_db", "polars_pipeline", "sql")}
        pipe, sql, db = stages["polars_pipeline"], stages["sql"], stages["polars_db"]
        rows, flat_rows = pipe["plain"]["output_rows"], flat["polars_pipeline"]["plain"]["output_rows"]
        per_row = (pipe["plain"]["best_s"] / rows) / (flat["polars_pipeline"]["plain"]["best_s"] / flat_rows)
        per_row_db = (db["wall_s"] / rows) / (flat["polars_db"]["wall_s"] / flat_rows)
        runs[str(levels)] = {
            "book": book,
            "stages": stages,
            "summary": {
                "output_rows": rows,
                "polars_pipeline_s": pipe["plain"]["best_s"],
                "polars_with_duckdb_read_s": db["wall_s"],
                "polars_net_s": pipe["net"]["best_s"],
                "sql_recursive_cte_s": sql["plain"]["best_s"],
                "sql_recursive_cte_net_s": sql["net"]["best_s"],
                "per_row_over_one_level": round(per_row, 3),
                "per_row_with_read_over_one_level": round(per_row_db, 3),
                "polars_over_sql": round(pipe["plain"]["best_s"] / sql["plain"]["best_s"], 3),
                "polars_with_read_over_sql": round(db["wall_s"] / sql["plain"]["best_s"], 3),
                "polars_net_over_sql_net": round(pipe["net"]["best_s"] / sql["net"]["best_s"], 3),
            },
            "checks": {
                "same_rows_as_one_level": rows == flat_rows,
                "same_totals_as_one_level": _close(pipe["totals"], flat["polars_pipeline"]["totals"]),
                "same_net_totals_as_one_level": _close(pipe["net_totals"], flat["polars_pipeline"]["net_totals"]),
                "polars_equals_sql_totals": _close(pipe["totals"], sql["totals"]),
                "polars_net_equals_sql_net_totals": _close(pipe["net_totals"], sql["net_totals"]),
                "polars_db_equals_pipeline_totals": _close(db["totals"], pipe["totals"]),
            },
        }
    return runs


def main(argv: list[str] | None = None) -> int:
    """Generate the book, run every stage in its own process, write and print the JSON result."""
    args = _parse_args(argv)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return 0

    load_before = list(os.getloadavg())  # other work on the machine shows in every timing
    with tempfile.TemporaryDirectory(prefix="msm-bench-") as tmp:
        if not args.db:
            args.db = str(Path(tmp) / "book.duckdb")
        book = _book(args)
        stages = {
            name: run_stage(name, args) for name in ("polars_db", "polars_pipeline", "sql", "reference", "check_sample")
        }
        nested = _nested_runs(args, tmp, stages)

    result = {
        "benchmark": "msm.expansion.expand_targets",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": "small" if args.small else "full",
        "weights_as_of": args.weights_as_of,
        "machine": {
            "python": platform.python_version(),
            "polars": pl.__version__,
            "duckdb": __import__("duckdb").__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
        "book": book,
        "stages": stages,
        "summary": _summary(stages),
        "checks": _checks(stages),
        "nested": nested,
    }
    stages["reference"].pop("sample_sets_list", None)
    text = json.dumps(result, indent=2, default=str)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
