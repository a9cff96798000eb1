"""The look-through on Spark (``msm_spark``) equals the local one (``msm export --expanded``, ``expand_targets``).

One SparkSession (local[2], few shuffle partitions, no UI) serves the whole module. Each book is a
real DuckDB file, exported once per weights mode with ``msm export --expanded`` (in-process CLI);
the Spark job reads the export folder and writes its own, which is read back with pyarrow and
compared row for row after sorting (floats to 1e-12). Books: the demo (``msm demo``), a generated
book of 3,000 snapshots (100 accounts, daily for a month) over portfolios whose compositions change
every week, and a small hand-made one with a composition not summing to 1 and a portfolio that has
none yet. pyspark (the ``spark`` extra, in ``dev``) and Java are required, not skipped when missing.
The command line runs once in a subprocess, started with the module.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.dataset as ds
import pytest
from cli_harness import Cli, write_rows
from polars.testing import assert_frame_equal

import msm_portfolios
from msm.errors import ValidationError
from msm.expansion import EXPANSION_COLUMNS, NET_COLUMNS, MissingCompositionError, expand_targets
from msm.services.snapshots import read_target_rows
from msm_spark.cli import main as spark_main
from msm_spark.expansion import LABEL_COLUMNS, expand_targets_spark
from msm_spark.job import run_expand

ROOT = Path(__file__).resolve().parents[1]
#: "ts": the book's own explicit weights time (between two of its compositions).
MODES = ("now", "position-set", "ts")
W, N, Q = "weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity"
PLAIN_KEY = ["position_set_uid", "source_target_type", "source_target_uid", "asset_uid", "path"]
NET_KEY = ["position_set_uid", "asset_uid"]
BOOK_START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSM_DB", raising=False)


@pytest.fixture(scope="module")
def spark() -> Any:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("msm-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        # Small local files: list partition folders on the driver, and read them in few tasks.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        .config("spark.sql.files.openCostInBytes", "65536")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# -- books -----------------------------------------------------------------------------------------
@dataclass
class Book:
    cli: Cli
    folder: Path
    ts: str = ""

    def mode(self, mode: str) -> str:
        return self.ts if mode == "ts" else mode

    def export(self, mode: str) -> Path:
        """``msm export --expanded --weights-as-of mode`` (once per mode)."""
        out, mode = self.folder / f"export-{mode}", self.mode(mode)
        if not out.exists():
            self.cli.ok("export", "--out", str(out), "--expanded", "--weights-as-of", mode, warnings=True)
        return out

    def core(self, mode: str, *, net: bool) -> Any:
        """``expand_targets`` on the stored rows, with the labels ``msm export`` adds."""
        rows = read_target_rows(self.cli.store)
        result = expand_targets(
            rows, msm_portfolios.duckdb_weights_source(self.cli.store), weights_as_of=self.mode(mode), net=net
        )
        labels = rows.select("position_set_uid", *LABEL_COLUMNS).unique()
        return result.rows.join(labels, on="position_set_uid", how="left"), result.diagnostics


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Book:
    folder = tmp_path_factory.mktemp("spark-demo")
    cli = Cli(folder / "demo.duckdb")
    cli.ok("demo")  # compositions 2026-03-01, 2026-04-01, 2026-06-15; snapshots 2026-05-25, 2026-06-01
    return Book(cli, folder, "2026-04-15T00:00:00Z")


def generate_book(path: Path) -> Book:
    """100 accounts with a daily snapshot for 30 days (3,000 sets of 3 asset and 3 portfolio targets,
    every exposure kind) over 20 portfolios of 10 constituents whose composition changes every week
    (one in 20 sums to 0.98), all through the services' write paths."""
    import msm

    rng = random.Random(8)
    store = msm_portfolios.init_store(path)
    assets = [f"A{i:03d}" for i in range(60)]
    portfolios = [f"P{i:02d}" for i in range(20)]
    with store.connect():  # one open of the file for the whole registry
        for a in assets:
            msm.add_asset(store, a)
        for p in portfolios:
            msm.add_portfolio(store, p)
        msm.add_allocation_model(store, "m")
        for i in range(100):
            msm.add_account(store, f"ACC{i:03d}", account_name=f"Account {i}")
            msm.add_allocation(store, f"ACC{i:03d}-main", account=f"ACC{i:03d}", model="m")
        for p in portfolios:
            for week in range(6):  # 2025-12-29, then every Monday of January 2026 and 2026-02-02
                chosen = rng.sample(assets, 10)
                raw = [rng.randint(1, 1_000) for _ in chosen]
                scale = 0.98 if rng.random() < 0.05 else 1.0
                weights = {a: r / sum(raw) * scale for a, r in zip(chosen, raw, strict=True)}
                msm_portfolios.save_composition(
                    store, p, BOOK_START - timedelta(days=3) + timedelta(weeks=week), weights
                )
    rows = []
    for day in range(30):
        for i in range(100):
            picks = [("asset", a) for a in rng.sample(assets, 3)] + [
                ("portfolio", p) for p in rng.sample(portfolios, 3)
            ]
            for kind, ident in picks:
                exposure = rng.choice([W, W, N] + ([Q] if kind == "asset" else []))
                rows.append(
                    {
                        "account": f"ACC{i:03d}",
                        "position_set_time": BOOK_START + timedelta(days=day, hours=i % 24),
                        kind: ident,
                        exposure: round(rng.uniform(0.001, 0.3), 6) * (1_000_000 if exposure == N else 1),
                    }
                )
    frame = pl.DataFrame(
        rows,
        schema={
            "account": pl.String,
            "position_set_time": pl.Datetime("us", "UTC"),
            "asset": pl.String,
            "portfolio": pl.String,
            W: pl.Float64,
            N: pl.Float64,
            Q: pl.Float64,
        },
    )
    msm.save_snapshots(store, frame)
    return Book(Cli(path), path.parent, "2026-01-15T00:00:00Z")


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Book:
    return generate_book(tmp_path_factory.mktemp("spark-book") / "book.duckdb")


#: Portfolio P: C1 (2026-01-01: BTC 0.25, ETH 0.75), C2 (2026-03-01: BTC 0.5, ETH 0.3, SOL 0.1, sums to 0.9).
#: Portfolio Q: one composition, 2026-03-01. Account A: S1 2026-02-01 (BTC 0.3, P 0.5, Q 0.2), S2 2026-04-01
#: (P notional 1,000,000, SOL quantity 5). With weights as of each snapshot, Q has none for S1.
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Book:
    folder = tmp_path_factory.mktemp("spark-small")
    cli = Cli(folder / "small.duckdb")
    cli.ok("init")
    for ident in ("BTC", "ETH", "SOL"):
        cli.ok("assets", "add", ident)
    for ident in ("P", "Q"):
        cli.ok("portfolios", "add", ident)
    cli.ok("models", "add", "m")
    cli.ok("accounts", "add", "A", "--name", "A")
    cli.ok("allocations", "add", "A-main", "--account", "A", "--model", "m")
    compositions = {
        ("P", "2026-01-01T00:00:00Z"): [{"asset": "BTC", "weight": 0.25}, {"asset": "ETH", "weight": 0.75}],
        ("P", "2026-03-01T00:00:00Z"): [
            {"asset": "BTC", "weight": 0.5},
            {"asset": "ETH", "weight": 0.3},
            {"asset": "SOL", "weight": 0.1},
        ],
        ("Q", "2026-03-01T00:00:00Z"): [{"asset": "SOL", "weight": 1.0}],
    }
    for i, ((portfolio, at), rows) in enumerate(compositions.items()):
        cli.ok(
            "portfolios",
            "weights",
            portfolio,
            "--at",
            at,
            "--file",
            str(write_rows(folder / f"c{i}.csv", rows)),
            warnings=True,
        )
    snapshots = {
        "2026-02-01T00:00:00Z": [{"asset": "BTC", W: 0.3}, {"portfolio": "P", W: 0.5}, {"portfolio": "Q", W: 0.2}],
        "2026-04-01T00:00:00Z": [{"portfolio": "P", N: 1_000_000}, {"asset": "SOL", Q: 5}],
    }
    for i, (at, rows) in enumerate(snapshots.items()):
        cli.ok("targets", "save", "A", "--at", at, "--file", str(write_rows(folder / f"s{i}.json", rows)))
    cli.ok("export", "--out", str(folder / "plain"))  # no look-through: position-set would fail on Q
    return Book(cli, folder)


#: A nested book (design section 12): EQ and BND hold assets (EQ changes on 2026-03-01), BAL holds
#: 60% EQ + 40% BND, FOF holds BAL, EQ and SOL (three levels, two routes to EQ's assets). Account A
#: targets BTC, BAL and FOF on 2026-02-01 and 2026-04-01 (each level picks its own composition).
@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Book:
    folder = tmp_path_factory.mktemp("spark-nested")
    cli = Cli(folder / "nested.duckdb")
    cli.ok("init")
    for ident in ("BTC", "ETH", "SOL", "BND-1"):
        cli.ok("assets", "add", ident)
    for ident in ("EQ", "BND", "BAL", "FOF"):
        cli.ok("portfolios", "add", ident)
    cli.ok("models", "add", "m")
    cli.ok("accounts", "add", "A", "--name", "A")
    cli.ok("allocations", "add", "A-main", "--account", "A", "--model", "m")
    compositions = {
        ("EQ", "2026-01-01T00:00:00Z"): [{"asset": "BTC", "weight": 0.5}, {"asset": "ETH", "weight": 0.5}],
        ("EQ", "2026-03-01T00:00:00Z"): [{"asset": "BTC", "weight": 0.7}, {"asset": "ETH", "weight": 0.2}],
        ("BND", "2026-01-01T00:00:00Z"): [{"asset": "BND-1", "weight": 1.0}],
        ("BAL", "2026-01-01T00:00:00Z"): [{"portfolio": "EQ", "weight": 0.6}, {"portfolio": "BND", "weight": 0.4}],
        ("FOF", "2026-01-01T00:00:00Z"): [
            {"portfolio": "BAL", "weight": 0.5},
            {"portfolio": "EQ", "weight": 0.3},
            {"asset": "SOL", "weight": 0.2},
        ],
    }
    for i, ((portfolio, at), rows) in enumerate(compositions.items()):
        path = str(write_rows(folder / f"c{i}.json", rows))
        cli.ok("portfolios", "weights", portfolio, "--at", at, "--file", path, warnings=True)
    snapshots = {
        "2026-02-01T00:00:00Z": [{"asset": "BTC", W: 0.1}, {"portfolio": "BAL", W: 0.5}, {"portfolio": "FOF", W: 0.4}],
        "2026-04-01T00:00:00Z": [{"portfolio": "FOF", N: 1_000_000}, {"asset": "SOL", Q: 5}],
    }
    for i, (at, rows) in enumerate(snapshots.items()):
        cli.ok("targets", "save", "A", "--at", at, "--file", str(write_rows(folder / f"s{i}.json", rows)))
    return Book(cli, folder, "2026-03-15T00:00:00Z")


# -- reading back ----------------------------------------------------------------------------------
def read_dataset(path: Path) -> pl.DataFrame:
    """A hive-partitioned Parquet dataset, as any reader sees it (pyarrow skips Spark's ``.crc`` and ``_`` files)."""
    return pl.from_arrow(ds.dataset(path, format="parquet", partitioning="hive").to_table())  # type: ignore[return-value]


def assert_same_rows(got: pl.DataFrame, expected: pl.DataFrame, key: list[str]) -> None:
    """Same columns in the same order, same types (``n_sources``: no unsigned ints in Spark), same sorted rows."""
    assert got.columns == expected.columns
    got, expected = (
        f.with_columns(pl.col("n_sources").cast(pl.Int64)) if "n_sources" in f.columns else f for f in (got, expected)
    )
    assert got.schema == expected.schema
    assert_frame_equal(got.sort(key), expected.sort(key), check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def snapshot_date(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("time_index").dt.date().cast(pl.String).alias("snapshot_date"))


def spark_job(spark: Any, book: Book, source: Path, mode: str, *, net: bool) -> tuple[pl.DataFrame, Any]:
    out = book.folder / f"spark-{mode}-{'net' if net else 'plain'}"
    result = run_expand(spark, str(source), str(out), weights_as_of=book.mode(mode), net=net)
    return read_dataset(out / "target_exposure"), result


# -- equality --------------------------------------------------------------------------------------
@pytest.mark.parametrize("net", [False, True], ids=["plain", "net"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["demo", "book", "nested"])
def test_spark_equals_msm_export(spark: Any, request: pytest.FixtureRequest, which: str, mode: str, net: bool) -> None:
    book: Book = request.getfixturevalue(which)
    export = book.export(mode)
    got, result = spark_job(spark, book, export, mode, net=net)
    core_rows, core_diagnostics = book.core(mode, net=net)
    if net:
        expected = snapshot_date(core_rows).select(*NET_COLUMNS, *LABEL_COLUMNS, "snapshot_date")
        assert_same_rows(got, expected, NET_KEY)
    else:
        expected = read_dataset(export / "target_exposure")  # what `msm export --expanded` wrote
        assert expected.columns == [*EXPANSION_COLUMNS, *LABEL_COLUMNS, "snapshot_date"]
        assert_same_rows(got, expected, PLAIN_KEY)
        assert_same_rows(core_rows, expected.drop("snapshot_date"), PLAIN_KEY)  # the export is expand_targets
    assert result.rows == got.height > 0
    # The same compositions not summing to 1, named and summed as the core does.
    assert_frame_equal(
        pl.DataFrame(result.diagnostics, schema=core_diagnostics.schema), core_diagnostics, rel_tol=1e-12, abs_tol=1e-12
    )
    diagnostics = pl.read_parquet(
        book.folder / f"spark-{mode}-{'net' if net else 'plain'}" / "diagnostics" / "*.parquet"
    )
    assert_frame_equal(diagnostics, core_diagnostics, rel_tol=1e-12, abs_tol=1e-12)


def test_the_generated_book_exercises_changing_and_off_sum_compositions(book: Book) -> None:
    rows, diagnostics = book.core("position-set", net=False)
    assert rows["weights_time"].drop_nulls().n_unique() == 5  # every weekly composition up to the last snapshot is used
    assert diagnostics.height > 0  # some compositions sum to 0.98
    assert rows["position_set_uid"].n_unique() == 3_000


# -- refusals and reports ----------------------------------------------------------------------------
def test_a_missing_composition_fails_with_the_core_message(spark: Any, small: Book) -> None:
    with pytest.raises(MissingCompositionError) as core:
        book_rows = read_target_rows(small.cli.store)
        expand_targets(book_rows, msm_portfolios.duckdb_weights_source(small.cli.store), weights_as_of="position-set")
    out = small.folder / "missing"
    with pytest.raises(MissingCompositionError) as ours:
        run_expand(spark, str(small.folder / "plain"), str(out), weights_as_of="position-set")
    assert str(ours.value) == str(core.value)
    assert str(ours.value).startswith(
        "portfolio 'Q' has no composition at or before 2026-02-01T00:00:00Z; store one with `msm portfolios weights Q"
    )
    assert not out.exists()  # checked before anything is written
    # Before every composition: both portfolios, one message.
    with pytest.raises(
        MissingCompositionError,
        match=r"^2 portfolios have no composition at or before their weights time: 'P' at 2025-06-01T00:00:00Z, 'Q' "
        r"at 2025-06-01T00:00:00Z",
    ):
        run_expand(spark, str(small.folder / "plain"), str(out), weights_as_of="2025-06-01T00:00:00Z")


def test_a_composition_not_summing_to_one_is_expanded_as_stored_and_reported(
    spark: Any, small: Book, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small.folder / "off"
    code = spark_main(
        ["expand", "--input", str(small.folder / "plain"), "--output", str(out), "--weights-as-of", "now"]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.splitlines() == [
        f"wrote 9 expanded rows to {out}/target_exposure (hive-partitioned by snapshot_date)",
        "look-through weights as of now",
        f"1 composition not summing to 1, in {out}/diagnostics:",
        "  portfolio 'P' at 2026-03-01T00:00:00Z sums to 0.9, not 1; expanded as stored (never renormalized)",
    ]
    rows = read_dataset(out / "target_exposure")
    via_p = rows.filter(
        pl.col("portfolio_uid").is_not_null() & (pl.col("source_target_type") == "portfolio") & pl.col(N).is_not_null()
    )
    assert sorted(zip(via_p["asset"], via_p["portfolio_weight"], via_p[N], strict=True)) == [
        ("BTC", 0.5, pytest.approx(500_000.0)),
        ("ETH", 0.3, pytest.approx(300_000.0)),
        ("SOL", 0.1, pytest.approx(100_000.0)),
    ]
    expected, diagnostics = small.core("now", net=False)
    assert_same_rows(rows.drop("snapshot_date"), expected, PLAIN_KEY)
    assert_frame_equal(pl.read_parquet(out / "diagnostics" / "*.parquet"), diagnostics)
    assert diagnostics.rows() == [
        (diagnostics["portfolio_uid"][0], "P", diagnostics["weights_time"][0], pytest.approx(0.9))
    ]


def test_an_export_without_snapshots_gives_an_empty_dataset_with_the_columns(spark: Any, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "empty.duckdb")
    cli.ok("init")
    cli.ok("export", "--out", str(tmp_path / "export"), "--expanded")
    result = run_expand(spark, str(tmp_path / "export"), str(tmp_path / "out"), weights_as_of="now")
    assert result.rows == 0 and result.diagnostics == []
    got, expected = (
        pl.read_parquet(tmp_path / folder / "target_exposure" / "*.parquet") for folder in ("out", "export")
    )
    assert got.height == 0 and got.schema == expected.schema


def _frames(small: Book) -> tuple[pl.DataFrame, pl.DataFrame]:
    targets = read_dataset(small.folder / "plain" / "target_positions").drop("snapshot_date")
    weights = pl.read_parquet(small.folder / "plain" / "portfolio_weights" / "*.parquet")
    return targets, weights


@pytest.mark.parametrize(
    "case, change",
    [
        (
            "a NaN weight",
            lambda w: w.with_columns(
                pl.when(pl.col("asset") == "ETH").then(float("nan")).otherwise(pl.col("weight")).alias("weight")
            ),
        ),
        (
            "an asset listed twice",
            lambda w: pl.concat([w, w.filter((pl.col("asset") == "SOL") & (pl.col("portfolio") == "P"))]),
        ),
    ],
)
def test_bad_composition_rows_are_refused_with_the_core_message(
    spark: Any, small: Book, case: str, change: Any
) -> None:
    targets, weights = _frames(small)
    weights = change(weights)
    with pytest.raises(ValidationError) as core:
        expand_targets(targets, weights, weights_as_of="now")
    with pytest.raises(ValidationError) as ours:
        expand_targets_spark(
            spark.createDataFrame(targets.to_arrow()), spark.createDataFrame(weights.to_arrow()), weights_as_of="now"
        )
    assert str(ours.value) == str(core.value)


def test_a_missing_nested_composition_fails_with_the_core_message_and_path(spark: Any, nested: Book) -> None:
    export = nested.export("now")
    targets = read_dataset(export / "target_positions").drop("snapshot_date")
    weights = pl.read_parquet(export / "portfolio_weights" / "*.parquet")
    # EQ only from 2026-03-01 on: the 2026-02-01 snapshot's BAL and FOF reach it before it has one
    weights = weights.filter(~((pl.col("portfolio") == "EQ") & (pl.col("time_index").dt.month() == 1)))
    with pytest.raises(MissingCompositionError) as core:
        expand_targets(targets, weights, weights_as_of="position-set")
    with pytest.raises(MissingCompositionError) as ours:
        expand_targets_spark(
            spark.createDataFrame(targets.to_arrow()),
            spark.createDataFrame(weights.to_arrow()),
            weights_as_of="position-set",
        )
    assert str(ours.value) == str(core.value)
    assert str(ours.value).startswith("portfolio 'EQ' (nested in BAL) has no composition at or before 2026-02-01")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--weights-as-of", "2026-06-01T00:00:00"], "has no UTC offset"),
        (["--weights-as-of", "soon"], "is not a time"),
    ],
)
def test_cli_refusals_before_spark(
    small: Book, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    code = spark_main(["expand", "--input", str(small.folder / "plain"), "--output", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and match in err and "Traceback" not in err


def test_cli_refusals(spark: Any, small: Book, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fails(*argv: str) -> str:
        code = spark_main(["expand", *argv])
        printed = capsys.readouterr()
        assert code == 1 and printed.out == "" and "Traceback" not in printed.err, printed
        assert printed.err.startswith("error: ") and printed.err.count("error: ") == 1
        return printed.err

    source = str(small.folder / "plain")
    assert "holds no target_positions/, portfolio_weights/; give a folder written by `msm export --out DIR`" in fails(
        "--input", str(tmp_path), "--output", str(tmp_path / "o")
    )
    assert "does not exist" in fails("--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o"))
    err = fails("--input", source, "--output", str(tmp_path / "o"), "--weights-as-of", "position-set")
    assert err.startswith("error: portfolio 'Q' has no composition at or before 2026-02-01T00:00:00Z")
    (tmp_path / "taken" / "target_exposure").mkdir(parents=True)
    assert "already holds a look-through (target_exposure); choose another --output or pass --overwrite" in fails(
        "--input", source, "--output", str(tmp_path / "taken")
    )
    assert (
        spark_main(
            ["expand", "--input", source, "--output", str(tmp_path / "taken"), "--overwrite", "--format", "json"]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert document["datasets"]["target_exposure"]["rows"] == 9 and document["diagnostics"][0]["portfolio"] == "P"
    assert spark_main(["expand", "--input", source]) == 2  # usage: --output is required


@pytest.fixture(scope="module", autouse=True)
def command_line_run(demo: Book) -> Any:
    """``python -m msm_spark expand`` on the demo export, started with the module so that its own JVM
    starts while the shared session works; :func:`test_the_command_line_in_a_subprocess` waits for it."""
    export, out = demo.export("position-set"), demo.folder / "subprocess"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "msm_spark",
            "expand",
            "--input",
            str(export),
            "--output",
            str(out),
            "--weights-as-of",
            "position-set",
            "--net",
            "--master",
            "local[1]",
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield process, out
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_the_command_line_in_a_subprocess(demo: Book, command_line_run: Any) -> None:
    """``python -m msm_spark expand`` with its own Spark (local[1]) equals ``expand_targets``."""
    process, out = command_line_run
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    document = json.loads(stdout)
    assert document["net"] is True and document["weights_as_of"] == "position-set" and document["diagnostics"] == []
    expected, _ = demo.core("position-set", net=True)
    got = read_dataset(out / "target_exposure")
    assert document["datasets"]["target_exposure"]["rows"] == got.height
    assert_same_rows(got, snapshot_date(expected).select(*NET_COLUMNS, *LABEL_COLUMNS, "snapshot_date"), NET_KEY)
    assert not list(out.rglob("_SUCCESS")) and not list(out.rglob("*.crc"))  # plain Parquet folders
    assert (
        pl.read_parquet(out / "target_exposure", hive_partitioning=True).height == got.height
    )  # polars reads the folder as is
