"""The chained examples run as scripts and are idempotent (the notebooks: tests/test_notebooks.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import msm
import msm_portfolios
from msm.expansion import expand_targets
from msm_examples import account_portfolio_workflow as account_example
from msm_examples import portfolio_equal_weight as portfolio_example

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, db: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), str(db)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _table_counts(store: msm.Store) -> dict[str, int]:
    tables = (
        "asset",
        "portfolio",
        "portfolio_weights",
        "account",
        "account_target_allocation",
        "position_set",
        "target_positions",
    )
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in tables}


def test_portfolio_example_script_records_what_it_created(tmp_path: Path) -> None:
    db = tmp_path / "ex.duckdb"
    out = _run("portfolio_equal_weight.py", db)
    assert "CRYPTO-MAJORS-EW" in out
    recorded = json.loads(portfolio_example.output_path(msm.Store(db)).read_text())
    store = msm.Store(db)
    assert set(recorded["assets"]) == {"BTC", "ETH", "SOL"}
    assert msm.get_portfolio(store, recorded["portfolio"]["uid"])["unique_identifier"] == "CRYPTO-MAJORS-EW"
    history = msm_portfolios.composition_history(store, "CRYPTO-MAJORS-EW")
    assert history.height == 3
    # a portfolio is never an asset
    assert "CRYPTO-MAJORS-EW" not in msm.list_assets(store)["unique_identifier"].to_list()


def test_account_example_chains_the_portfolio_example_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "ex.duckdb"
    out = _run("account_portfolio_workflow.py", db)  # runs the portfolio example first
    assert "look-through" in out
    store = msm.Store(db)
    before = _table_counts(store)
    _run("account_portfolio_workflow.py", db)
    assert _table_counts(store) == before

    recorded = json.loads(portfolio_example.output_path(store).read_text())
    snap = msm.read_snapshot(store, "example-account-alpha", at=account_example.SNAPSHOT_TIME)
    rows = {r["target_type"]: r for r in snap.positions.iter_rows(named=True)}
    assert rows["asset"]["asset_uid"] == recorded["assets"]["BTC"] and rows["asset"]["weight_notional_exposure"] == 0.6
    assert rows["portfolio"]["portfolio_uid"] == recorded["portfolio"]["uid"]
    assert rows["portfolio"]["weight_notional_exposure"] == 0.4
    assert json.loads(rows["portfolio"]["metadata_json"]) == {"portfolio_role": "satellite_sleeve"}
    # stored as mandate intent: no constituent rows in target_positions
    assert (
        store.query(
            "SELECT count(*) AS n FROM target_positions WHERE position_set_uid = ?::UUID", [snap.position_set_uid]
        )["n"][0]
        == 2
    )


def test_account_example_expands_with_the_composition_in_force(tmp_path: Path) -> None:
    store = msm.Store(tmp_path / "ex.duckdb")
    account_example.run(store)
    snap = msm.read_snapshot(store, "example-account-alpha", at=account_example.SNAPSHOT_TIME)
    targets = msm.read_target_rows(store, [snap.position_set_uid])
    source = msm_portfolios.duckdb_weights_source(store)
    at_set = expand_targets(targets, source, weights_as_of="position-set").rows
    # 2026-05-25 falls in the 2026-04-01 composition: a third each of BTC, ETH, SOL
    sleeve = at_set.filter(pl.col("source_target_type") == "portfolio")
    assert sorted(sleeve["asset"].to_list()) == ["BTC", "ETH", "SOL"]
    assert sleeve["weight_notional_exposure"].sum() == pytest.approx(0.4)
    later = expand_targets(targets, source, weights_as_of="2026-07-01T00:00:00Z").rows
    assert sorted(later.filter(pl.col("source_target_type") == "portfolio")["asset"].to_list()) == ["BTC", "ETH"]
