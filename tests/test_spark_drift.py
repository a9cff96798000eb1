"""Drift on Spark (``python -m msm_spark drift``) equals the local drift (``msm drift --all``, the export's ``drift/``).

One SparkSession (local[2], few shuffle partitions, no UI) for the module; one small book (the
``msm drift`` CLI tests' book, plus a price in EUR, a USD/EUR rate used inverted, and holdings for a
second account), exported once with ``msm export --drift``. pyspark and Java are required, not
skipped when missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from msm.drift import ROW_COLUMNS, MissingMarketDataError
from msm.timeutil import parse_utc
from msm_spark.cli import main as spark_main
from msm_spark.drift import run_drift
from tests.cli_harness import Cli, write_rows
from tests.test_cli_drift import AFTER, DAY, _setup

KEY = ["account", "asset_uid"]


@pytest.fixture(scope="module")
def spark() -> Any:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("msm-tests-drift")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    folder = tmp_path_factory.mktemp("spark-drift")
    cli = Cli(folder / "book.duckdb")
    _setup(cli, folder)
    cli.ok(
        "prices",
        "import",
        str(write_rows(folder / "eur.csv", [{"asset": "SOL", "time": AFTER, "price": 140, "currency": "EUR"}])),
    )
    cli.ok(
        "fx", "import", str(write_rows(folder / "fx.csv", [{"base": "USD", "quote": "EUR", "time": DAY, "rate": 0.9}]))
    )
    held = [{"account": "beta", "asset": "BTC", "quantity": 1}, {"account": "beta", "asset": "SOL", "quantity": 100}]
    cli.ok("holdings", "import", str(write_rows(folder / "beta.csv", held)), "--at", DAY)
    cli.ok("export", "--out", str(folder / "export"), "--drift", "--drift-as-of", AFTER)
    return cli, folder


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(ROW_COLUMNS).sort(KEY)


def test_spark_drift_equals_the_local_drift(spark: Any, book: tuple[Cli, Path]) -> None:
    cli, folder = book
    rows = run_drift(spark, str(folder / "export"), str(folder / "spark"), as_of=parse_utc(AFTER))
    got = pl.read_parquet(folder / "spark" / "drift" / "**" / "*.parquet", hive_partitioning=True)
    exported = pl.read_parquet(folder / "export" / "drift", hive_partitioning=True)
    local = folder / "local.parquet"
    cli.ok("drift", "--all", "--as-of", AFTER, "--format", "parquet", "--out", str(local))
    assert rows == got.height == exported.height == 6  # alpha: BTC, ETH, SOL, USD; beta: BTC, SOL
    assert set(got["snapshot_date"].cast(pl.String)) == {"2026-06-02"}
    assert got["valuation_time"].to_list() == exported["valuation_time"].to_list()
    assert_frame_equal(_sorted(got), _sorted(pl.read_parquet(local)), check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
    assert_frame_equal(_sorted(got), _sorted(exported), check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
    sol = got.filter((pl.col("account") == "beta") & (pl.col("asset") == "SOL")).row(0, named=True)
    assert sol["price_currency"] == "EUR" and sol["fx_rate"] == pytest.approx(1 / 0.9)


def _gbp_copy(folder: Path) -> None:
    """The export with every account in GBP (no GBP rate stored): valuation must name the pairs it lacks."""
    import shutil

    shutil.copytree(folder / "export", folder / "gbp")
    accounts = pl.read_parquet(folder / "gbp" / "accounts").with_columns(pl.lit("GBP").alias("base_currency"))
    shutil.rmtree(folder / "gbp" / "accounts")
    (folder / "gbp" / "accounts").mkdir()
    accounts.write_parquet(folder / "gbp" / "accounts" / "part-0.parquet")


def test_spark_drift_command_line_and_its_refusals(spark: Any, book: tuple[Cli, Path], capsys) -> None:
    _, folder = book
    _gbp_copy(folder)
    out = folder / "spark-cli"
    argv = ["drift", "--input", str(folder / "export"), "--output", str(out), "--as-of", AFTER, "--band-rel", "0.5"]
    assert spark_main(argv) == 0
    assert "wrote 6 drift rows at 2026-06-02T00:00:00Z" in capsys.readouterr().out
    assert spark_main(argv) == 1 and "already holds drift/" in capsys.readouterr().err
    assert spark_main([*argv[:5], "--as-of", "2026-06-02"]) == 1
    assert "has no UTC offset" in capsys.readouterr().err
    assert spark_main(["drift", "--input", str(folder), "--output", str(out)]) == 1
    assert "give a folder written by `msm export --out DIR --drift`" in capsys.readouterr().err
    # before any holdings: no account can be compared, so no rows (as under `msm drift --all`)
    assert run_drift(spark, str(folder / "export"), str(folder / "early"), as_of=parse_utc("2026-05-31T00:00:00Z")) == 0
    with pytest.raises(MissingMarketDataError, match=r"no FX rate at or before 2026-06-03T00:00:00Z.*EUR/GBP"):
        run_drift(spark, str(folder / "gbp"), str(folder / "gbp-out"), as_of=parse_utc("2026-06-03T00:00:00Z"))
