"""Parquet export: hive-partitioned datasets read back the same by polars, pyarrow and DuckDB."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pds
import pytest

import msm
import msm_portfolios
from msm.services.export import export_snapshots
from msm_examples import account_portfolio_workflow


@pytest.fixture
def demo(tmp_path: Path) -> msm.Store:
    store = msm.Store(tmp_path / "demo.duckdb")
    account_portfolio_workflow.run(store)
    return store


def _read_three_ways(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    by_polars = pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True).collect()
    by_arrow = pl.from_arrow(pds.dataset(path, format="parquet", partitioning="hive").to_table())
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # DuckDB labels instants in its session zone (the machine's by default)
    by_duckdb = pl.from_arrow(
        con.sql(f"SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)").to_arrow_table()
    )
    return by_polars, by_arrow, by_duckdb  # type: ignore[return-value]


def test_round_trip_through_polars_pyarrow_and_duckdb(demo: msm.Store, tmp_path: Path) -> None:
    result = export_snapshots(
        demo,
        tmp_path / "out",
        expanded=True,
        weights=msm_portfolios.duckdb_weights_source(demo),
        weights_as_of="position-set",
    )
    stored = msm.read_target_rows(demo)
    assert result.datasets["target_positions"] == stored.height == 6  # 3 snapshots x 2 rows
    assert result.snapshots == 3
    for name in ("target_positions", "target_exposure"):
        frames = _read_three_ways(tmp_path / "out" / name)
        data = [f.drop("snapshot_date").sort(f.columns[:6]) for f in frames]
        # the data columns: same names, types and values whichever engine reads them
        assert (
            data[0].schema == data[1].cast({c: pl.String for c, t in data[1].schema.items() if t == pl.String}).schema
        )
        assert data[0].equals(data[1]) and data[0].equals(data[2])
        assert sorted({str(d) for d in frames[0]["snapshot_date"]}) == ["2026-05-25", "2026-06-01"]
    positions = _read_three_ways(tmp_path / "out" / "target_positions")[0]
    assert (
        positions.filter(pl.col("target_type") == "portfolio")["metadata_json"].to_list()[0]
        == '{"portfolio_role": "satellite_sleeve"}'
    )  # as stored
    assert {p.name for p in (tmp_path / "out" / "target_positions").iterdir()} == {
        "snapshot_date=2026-05-25",
        "snapshot_date=2026-06-01",
    }


def test_existing_export_is_refused_then_replaced_whole(demo: msm.Store, tmp_path: Path) -> None:
    source = msm_portfolios.duckdb_weights_source(demo)
    export_snapshots(demo, tmp_path / "out", expanded=True, weights=source)
    with pytest.raises(
        msm.ConflictError, match=r"already holds an export .*; choose another --out or pass --overwrite"
    ):
        export_snapshots(demo, tmp_path / "out")
    export_snapshots(demo, tmp_path / "out", overwrite=True)
    # the earlier look-through would no longer match these snapshots, so it is gone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["assets", "target_positions"]


def test_an_empty_database_exports_readable_empty_datasets(tmp_path: Path) -> None:
    store = msm_portfolios.init_store(tmp_path / "empty.duckdb")
    result = export_snapshots(
        store, tmp_path / "out", expanded=True, weights=msm_portfolios.duckdb_weights_source(store)
    )
    assert result.datasets == {"target_positions": 0, "target_exposure": 0, "portfolio_weights": 0, "assets": 0}
    for name in ("portfolio_weights", "assets"):
        assert pl.read_parquet(tmp_path / "out" / name).height == 0
    frame = pl.scan_parquet(
        tmp_path / "out" / "target_positions" / "**" / "*.parquet", hive_partitioning=True
    ).collect()
    assert frame.height == 0 and "target_uid" in frame.columns


def test_expanded_export_needs_weights(demo: msm.Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expanded export needs `weights`"):
        export_snapshots(demo, tmp_path / "out", expanded=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, rule",
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("/etc", "is an absolute path"),
        ("~/x", "is an absolute path"),
        (".", "is the export root itself"),
        ("a/..", "is the export root itself"),
        ("..", "leads outside the export root"),
        ("../sibling", "leads outside the export root"),
        ("a/../../x", "leads outside the export root"),
        ("link-out/x", "leads outside the export root"),
        ("link-out", "leads outside the export root"),
    ],
)
def test_export_folder_must_stay_inside_the_root(tmp_path: Path, name: str, rule: str) -> None:
    from msm.services.export import resolve_export_dir

    root = tmp_path / "exports"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link-out").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(msm.ValidationError, match=f"`folder` = .*: {rule}"):
        resolve_export_dir(root, name)


def test_export_folder_inside_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msm.services.export import default_export_root, resolve_export_dir

    root = tmp_path / "exports"
    (root / "inside").mkdir(parents=True)
    (root / "link-in").symlink_to(root / "inside", target_is_directory=True)
    assert resolve_export_dir(root, "daily/2026-07") == (root / "daily" / "2026-07").resolve()
    assert (
        resolve_export_dir(root, "link-in/x") == (root / "inside" / "x").resolve()
    )  # a link that stays inside is fine
    monkeypatch.delenv("MSM_EXPORT_ROOT", raising=False)
    assert default_export_root() == Path("data/exports")
    monkeypatch.setenv("MSM_EXPORT_ROOT", str(root))
    assert default_export_root() == root


def test_export_of_chosen_accounts_and_dates(demo: msm.Store, tmp_path: Path) -> None:
    result = export_snapshots(demo, tmp_path / "out", accounts=["example-account-alpha"], date_from=date(2026, 5, 26))
    rows = pl.read_parquet(tmp_path / "out" / "target_positions", hive_partitioning=True)
    assert result.snapshots == 1 and set(rows["account"]) == {"example-account-alpha"} and rows.height == 2
    assert rows["time_index"].dt.date().unique().to_list() == [date(2026, 6, 1)]
    beta = msm.get_account(demo, "example-account-beta")["uid"]
    result = export_snapshots(
        demo,
        tmp_path / "beta",
        accounts=[beta],
        date_to=date(2026, 5, 25),
        expanded=True,
        weights=msm_portfolios.duckdb_weights_source(demo),
    )
    assert result.snapshots == 1 and result.datasets["target_exposure"] > 0
    with pytest.raises(msm.NotFoundError, match="account with unique_identifier or uid 'nope, also-no' does not exist"):
        export_snapshots(demo, tmp_path / "x", accounts=["nope", "also-no"])
    assert not (tmp_path / "x").exists()


def test_chunked_export_equals_one_chunk(demo: msm.Store, tmp_path: Path) -> None:
    """Chunks (one date, at most N sets) change the files, never the rows: each date's sets split over parts."""
    source = msm_portfolios.duckdb_weights_source(demo)
    whole = export_snapshots(demo, tmp_path / "whole", expanded=True, weights=source, weights_as_of="position-set")
    parts = export_snapshots(
        demo, tmp_path / "parts", expanded=True, weights=source, weights_as_of="position-set", chunk_sets=1
    )
    assert whole.datasets == parts.datasets and whole.snapshots == parts.snapshots == 3
    for name in ("target_positions", "target_exposure"):
        a, b = (pl.read_parquet(tmp_path / d / name, hive_partitioning=True) for d in ("whole", "parts"))
        assert a.sort(a.columns).equals(b.sort(b.columns))
    # one file per snapshot with one set per chunk; one per date otherwise
    files = {
        d: sorted(f.name for f in (tmp_path / d / "target_positions").rglob("*.parquet")) for d in ("whole", "parts")
    }
    assert len(files["whole"]) == 2 and len(files["parts"]) == 3


def test_export_restores_duckdb_memory_limit(demo: msm.Store, tmp_path: Path) -> None:
    """The export caps DuckDB's block cache while it reads chunks, and gives the setting back."""
    with demo.connect() as con:  # one connection for the whole test: the setting lives on its database
        ((before,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
        export_snapshots(demo, tmp_path / "out", expanded=True, weights=msm_portfolios.duckdb_weights_source(demo))
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [(before,)]
        with pytest.raises(msm.ConflictError):  # refused before it starts: nothing to restore, nothing changed
            export_snapshots(demo, tmp_path / "out", expanded=True, weights=msm_portfolios.duckdb_weights_source(demo))
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [(before,)]
