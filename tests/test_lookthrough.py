"""The one look-through entry (``msm_portfolios.look_through``): one expansion per view, every view from it.

The netting of the expanded rows (:func:`msm_portfolios.net_rows`) is the core's own
(``expand_targets(..., net=True)``) on random books; a view reads the compositions and expands once
however many of its frames (rows, lineage, net, by source) are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from app_harness import build_demo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_expansion import EXPOSURES, books

import msm
import msm_portfolios
import msm_portfolios.lookthrough as lookthrough
from msm.expansion import NET_COLUMNS, MissingCompositionError, expand_targets

BETA = "example-account-beta"
PORTFOLIO = "CRYPTO-MAJORS-EW"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.sampled_from(["position-set", "2026-06-01T00:00:00Z"]))
def test_net_rows_of_the_expanded_rows_are_the_core_netting(book: Any, weights_as_of: str) -> None:
    frame, weights, _ = book
    plain = expand_targets(frame, weights, weights_as_of=weights_as_of).rows
    core = expand_targets(frame, weights, weights_as_of=weights_as_of, net=True).rows
    ours = msm_portfolios.net_rows(plain)
    assert ours.schema == core.schema and ours.columns == list(NET_COLUMNS)
    keys = ["position_set_uid", "time_index", "asset_uid", "asset", "n_sources"]
    assert ours.select(keys).equals(core.select(keys))  # the same rows in the same order
    for c in EXPOSURES:
        assert ours[c].is_null().equals(core[c].is_null())  # null exactly when every source was null
        assert ours[c].fill_null(0.0).to_list() == pytest.approx(core[c].fill_null(0.0).to_list(), rel=1e-12)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("lookthrough") / "demo.duckdb")


def test_every_view_comes_from_one_expansion(demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo_db)
    expansions: list[bool] = []
    reads: list[list[str]] = []

    def counted_expand(*args: Any, **kwargs: Any):
        expansions.append(kwargs.get("net", False))
        return expand_targets(*args, **kwargs)

    source = msm_portfolios.duckdb_weights_source

    def counted_source(store_: msm.Store):
        inner = source(store_)
        return lambda uids, until: reads.append(uids) or inner(uids, until)

    monkeypatch.setattr(lookthrough, "expand_targets", counted_expand)
    monkeypatch.setattr(lookthrough, "duckdb_weights_source", counted_source)
    view = msm_portfolios.look_through(store, msm.read_snapshot(store, BETA), weights_as_of="position-set")
    frames = [view.rows, view.lineage, view.net, view.by_source, view.net_by_source, view.diagnostics]
    assert expansions == [False] and len(reads) == 1  # one plain expansion, one read of the compositions
    assert all(isinstance(f, pl.DataFrame) for f in frames)
    # the views agree with each other and with the core's netting
    core = expand_targets(view.targets, source(store), weights_as_of="position-set", net=True).rows
    assert view.net.select("asset", "n_sources").equals(core.select("asset", "n_sources"))
    split = dict(zip(view.net_by_source["asset"], view.net_by_source["direct"], strict=True))
    assert split["BTC"] == pytest.approx(0.6) and split["ETH"] == 0.0
    assert set(view.lineage["source"]) == {"BTC", PORTFOLIO}
    assert view.weight_sum == pytest.approx(float(view.net["weight_notional_exposure"].sum()))


def test_a_snapshot_and_its_stored_rows_give_the_same_view(demo_db: Path) -> None:
    store = msm.Store(demo_db)
    snap = msm.read_snapshot(store, BETA)
    by_snapshot = msm_portfolios.look_through(store, snap, weights_as_of="position-set")
    by_rows = msm_portfolios.look_through(
        store, msm.read_target_rows(store, [snap.position_set_uid]), weights_as_of="position-set"
    )
    assert by_snapshot.rows.equals(by_rows.rows) and by_snapshot.net.equals(by_rows.net)
    assert msm_portfolios.look_through_snapshot(store, snap, weights_as_of="position-set").rows.equals(by_snapshot.rows)


def test_a_draft_without_a_composition_is_named_or_refused(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "draft.duckdb"
    db.write_bytes(demo_db.read_bytes())
    store = msm.Store(db)
    msm.add_portfolio(store, "EMPTY-P", portfolio_name="No composition yet")
    rows = [
        {"portfolio": "EMPTY-P", "weight_notional_exposure": 0.5},
        {"asset": "BTC", "weight_notional_exposure": 0.5},
    ]
    check = msm.check_target_set(store, rows)
    at = "2026-07-01T09:30:00Z"
    with pytest.raises(MissingCompositionError, match="EMPTY-P"):
        msm_portfolios.look_through(store, check.rows, at=at)
    view = msm_portfolios.look_through(store, check.rows, at=at, skip_missing=True)
    assert [name for name, _ in view.missing] == ["EMPTY-P"]
    assert view.net["asset"].to_list() == ["BTC"] and set(view.rows["position_set_uid"]) == {msm_portfolios.DRAFT_SET}


def test_a_nested_portfolio_gives_the_same_rows_on_every_surface(tmp_path: Path) -> None:
    """`msm targets expand`, `msm export --expanded` and the library entry agree on the demo's fund of funds."""
    from msm_cli.main import main as msm_main

    db, account = tmp_path / "demo.duckdb", "example-account-gamma"
    assert msm_main(["--db", str(db), "demo"]) == 0
    at, mode = "2026-06-01T00:00:00Z", "position-set"
    cli = tmp_path / "expand.parquet"
    assert msm_main(["--db", str(db), "targets", "expand", account, "--at", at, "--weights-as-of", mode,
                     "--format", "parquet", "--out", str(cli)]) == 0  # fmt: skip
    exported = tmp_path / "export"
    assert msm_main(["--db", str(db), "export", "--out", str(exported), "--expanded", "--weights-as-of", mode]) == 0
    store = msm.Store(db)
    snap = msm.read_snapshot(store, account, at=at)
    library = msm_portfolios.look_through(store, snap, weights_as_of=mode).rows
    keys = ["asset", "path"]
    by_cli = pl.read_parquet(cli).sort(keys)
    by_export = (
        pl.read_parquet(exported / "target_exposure" / "**" / "*.parquet", hive_partitioning=True)
        .filter(pl.col("position_set_uid") == str(snap.position_set_uid))
        .select(by_cli.columns)
        .sort(keys)
    )
    assert set(library["depth"]) == {0, 2} and library["path"].drop_nulls().str.starts_with("CRYPTO-FOF > ").all()
    for other in (by_export, library.sort(keys)):
        assert other.select(keys, "depth").equals(by_cli.select(keys, "depth"))
        assert other["weight_notional_exposure"].to_list() == pytest.approx(
            by_cli["weight_notional_exposure"].to_list()
        )
