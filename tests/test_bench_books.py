"""The benchmarks' synthetic books still load into today's schema (the benchmarks are not tests and
do not run in `make test`; a migration that changes a table they write must not break them unseen)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import msm
import msm_portfolios

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_expansion  # bench/ is a folder of scripts, not a package

TINY = bench_expansion.SMALL | dict(sets=40, portfolios=6, constituents=10, assets=60, accounts=4, dates=3)


@pytest.mark.parametrize("levels", [1, 2])
def test_the_expansion_book_loads_and_expands(tmp_path: Path, levels: int) -> None:
    db = tmp_path / "book.duckdb"
    bench_expansion.generate(str(db), TINY, levels=levels)
    store = msm.Store(db)
    sets = store.query("SELECT uid::VARCHAR AS uid FROM position_set")["uid"].to_list()
    assert len(sets) == TINY["sets"]
    rows = msm.read_target_rows(store, sets)
    looked = msm.expansion.expand_targets(rows, msm_portfolios.duckdb_weights_source(store)).rows
    assert looked.height > 0 and looked["asset_uid"].null_count() == 0
