"""The DuckDB store: parameters, transactions, the busy-file policy, and the target_positions DDL itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

import msm
from msm.errors import StoreBusyError
from msm.store import Store, default_db_path, quote_ident

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- parameters ------------------------------------------------------------------------------------
HOSTILE = ["x'; DROP TABLE asset; --", "quote \" and ' both", "100% _under_", "名前", "\\back\\slash", ""]


@pytest.mark.parametrize("text", HOSTILE)
def test_query_parameters_are_values_never_sql(store: Store, text: str) -> None:
    frame = store.query("SELECT ? AS text, ? AS n", [text, 7])
    assert frame.to_dicts() == [{"text": text, "n": 7}]
    # and they round-trip through a write untouched; the table they mention still exists
    store.execute(
        "INSERT INTO asset (uid, unique_identifier, name) VALUES (gen_random_uuid(), ?, ?)", [f"id-{len(text)}", text]
    )
    assert store.query("SELECT name FROM asset")["name"].to_list() == [text]


def test_named_parameters(store: Store) -> None:
    frame = store.query("SELECT $a AS a, $b AS b, $a || $b AS ab", {"a": "x'", "b": "y"})
    assert frame.row(0) == ("x'", "y", "x'y")


def test_quote_ident_doubles_quotes() -> None:
    assert quote_ident("asset") == '"asset"'
    assert quote_ident('we"ird') == '"we""ird"'


def test_timestamptz_comes_back_aware_utc_through_arrow(store: Store) -> None:
    frame = store.query("SELECT ?::TIMESTAMPTZ AS t", ["2026-05-25T09:00:00+09:00"])
    assert frame.schema["t"] == pl.Datetime("us", "UTC")
    assert frame["t"][0] == datetime(2026, 5, 25, 0, 0, tzinfo=UTC)


def test_memory_store_keeps_its_data_between_calls() -> None:
    s = Store(":memory:")
    s.execute("CREATE TABLE t (x INTEGER)")
    s.execute("INSERT INTO t VALUES (?)", [1])
    assert s.query("SELECT x FROM t")["x"].to_list() == [1]
    assert s.exists


def test_default_db_path_follows_msm_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MSM_DB", raising=False)
    assert default_db_path() == "data/msm.duckdb"
    monkeypatch.setenv("MSM_DB", str(tmp_path / "other.duckdb"))
    assert default_db_path() == str(tmp_path / "other.duckdb")
    assert Store().path == str(tmp_path / "other.duckdb")


# -- transactions ------------------------------------------------------------------------------------
def test_transaction_commits(store: Store) -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P1"])
        con.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P2"])
    assert sorted(store.query("SELECT unique_identifier FROM portfolio")["unique_identifier"]) == ["P1", "P2"]


def test_transaction_rolls_back_on_python_error(store: Store, db_contents) -> None:
    before = db_contents(store)
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction() as con:
            con.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P1"])
            raise RuntimeError("boom")
    assert db_contents(store) == before


def test_transaction_rolls_back_on_database_error(store: Store, db_contents) -> None:
    before = db_contents(store)
    with pytest.raises(duckdb.ConstraintException):
        with store.transaction() as con:
            con.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P1"])
            con.execute(
                "INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P1"]
            )  # duplicate
    assert db_contents(store) == before
    # the file is usable afterwards
    store.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["P1"])
    assert store.query("SELECT count(*) AS n FROM portfolio")["n"][0] == 1


def test_execute_is_its_own_transaction(store: Store, db_contents) -> None:
    before = db_contents(store)
    with pytest.raises(duckdb.ConstraintException):
        store.execute(
            "INSERT INTO portfolio (uid, unique_identifier) VALUES (gen_random_uuid(), 'A'), (gen_random_uuid(), 'A')"
        )
    assert db_contents(store) == before


def test_a_real_io_error_is_not_reported_as_busy(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.duckdb"
    directory.mkdir()
    started = time.monotonic()
    with pytest.raises((duckdb.Error, msm.MsmError)) as info:
        Store(directory, busy_timeout=5).query("SELECT 1")
    assert not isinstance(info.value, StoreBusyError)
    assert str(directory) in str(info.value)
    assert time.monotonic() - started < 2  # not retried as if the file were busy


# -- busy file ---------------------------------------------------------------------------------------
HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_store_does_not_keep_the_file_open(store: Store) -> None:
    store.query("SELECT 1")
    msm.list_assets(store)
    # another process can open the file read-write right away
    proc = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()", store.path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_busy_file_raises_store_busy_error_naming_file_and_pid(store: Store) -> None:
    proc = _hold(Path(store.path), 3)
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusyError) as info:
            Store(store.path, busy_timeout=0.3).query("SELECT 1")
        elapsed = time.monotonic() - started
        message = str(info.value)
        assert store.path in message
        assert f"PID {proc.pid}" in message
        assert "0.3 s" in message
        assert 0.3 <= elapsed < 2.0
        # the same facts as data (what the app and `--format json` read)
        assert (info.value.path, info.value.pid, info.value.waited) == (store.path, proc.pid, 0.3)
    finally:
        proc.kill()
        proc.wait()


def test_busy_file_is_retried_until_the_holder_exits(store: Store) -> None:
    proc = _hold(Path(store.path), 1.0)
    try:
        started = time.monotonic()
        frame = Store(store.path, busy_timeout=10).query("SELECT count(*) AS n FROM asset")
        elapsed = time.monotonic() - started
        assert frame["n"].to_list() == [0]
        assert elapsed < 8  # bounded: it got in soon after the holder let go, no hang
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


# -- read-only handles (msm.open) --------------------------------------------------------------------
def _refusal(path: str, refused: str) -> str:
    return (
        f"database file {path} is open read-only, so {refused} was refused and nothing was written; "
        f"to write, open it with msm.open({path!r}, read_only=False)"
    )


TRANSACTION = "a write (a transaction)"
WRITES = [
    pytest.param(lambda s: msm.add_asset(s, "DOGE", name="Dogecoin"), TRANSACTION, id="service"),
    pytest.param(
        lambda s: msm.import_reference(s, "assets", pl.DataFrame({"unique_identifier": ["DOGE"]})),
        TRANSACTION,
        id="bulk-import",
    ),
    pytest.param(lambda s: msm.delete_asset(s, "BTC"), TRANSACTION, id="cascading-delete"),
    pytest.param(lambda s: s.execute("DELETE FROM asset"), TRANSACTION, id="execute"),
    pytest.param(lambda s: s.query("UPDATE asset SET name = 'x'"), "a statement of type UPDATE", id="raw-update"),
    pytest.param(lambda s: s.query("CREATE TABLE t (x INTEGER)"), "a statement of type CREATE", id="raw-create"),
    pytest.param(lambda s: msm.migrate(s), "a statement of type CREATE", id="migrate"),
]


@pytest.mark.parametrize(("write", "refused"), WRITES)
def test_a_write_through_a_read_only_handle_is_refused_and_says_how_to_write(
    seeded, db_contents, write, refused: str
) -> None:
    before = db_contents(seeded.store)
    handle = msm.open(seeded.store.path)
    with pytest.raises(msm.StoreReadOnlyError) as info:
        write(handle)
    assert str(info.value) == _refusal(seeded.store.path, refused)
    assert (info.value.path, info.value.refused) == (seeded.store.path, refused)
    assert isinstance(info.value, msm.MsmError)
    assert db_contents(seeded.store) == before
    # the handle still reads, and a writable handle on the same file writes (no connection was kept)
    assert msm.get_asset(handle, "BTC")["name"] == "Bitcoin"
    msm.add_asset(msm.open(seeded.store.path, read_only=False), "DOGE", name="Dogecoin")
    assert msm.get_asset(handle, "DOGE")["name"] == "Dogecoin"


def test_open_reads_like_a_store_and_defaults_its_path_like_the_cli(
    seeded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MSM_DB", seeded.store.path)
    handle = msm.open()
    assert (handle.path, handle.read_only) == (seeded.store.path, True)
    assert repr(handle) == f"Store({seeded.store.path!r}, read_only=True)"
    assert msm.list_assets(handle).equals(msm.list_assets(seeded.store))
    writable = msm.open(read_only=False)
    assert (writable.path, writable.read_only, repr(writable)) == (
        seeded.store.path,
        False,
        f"Store({seeded.store.path!r})",
    )
    monkeypatch.delenv("MSM_DB")
    monkeypatch.chdir(tmp_path)
    assert msm.open(read_only=False).path == "data/msm.duckdb"
    assert Store().read_only is False  # every other store keeps read-write


def test_open_read_only_refuses_a_missing_file_and_never_creates_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "msm.duckdb"
    with pytest.raises(msm.SchemaError, match=r"no database at .*msm\.duckdb; create it with `msm init`"):
        msm.open(missing)
    with pytest.raises(msm.errors.StoreOpenError) as info:
        Store(missing, read_only=True).query("SELECT 1")
    assert str(info.value) == (
        f"cannot open database file {missing}: it does not exist (a read-only store never creates it); "
        f"create it with `msm --db {missing} demo` (the demo data) or `msm --db {missing} init`"
    )
    assert not missing.parent.exists()


def test_open_read_only_refuses_a_database_that_needs_migrations(store_at) -> None:
    old = store_at({"msm": 1})
    with pytest.raises(msm.SchemaError, match=r"needs migrations \(msm 1 < \d+\); run `msm init`"):
        msm.open(old.path)
    assert msm.open(old.path, read_only=False).path == old.path  # a writable handle may migrate it
    assert [str(m) for m in msm.migrate(msm.open(old.path, read_only=False))] == [
        "msm 0002 adr_0027_portfolio_aware_targets",
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]
    assert msm.open(old.path).read_only


def test_an_in_memory_database_cannot_be_read_only() -> None:
    with pytest.raises(msm.errors.StoreOpenError, match=r"an in-memory database cannot be opened read-only"):
        Store(":memory:", read_only=True)


def test_a_read_only_handle_waits_for_a_writer_like_any_store(store: Store) -> None:
    proc = _hold(Path(store.path), 1.0)
    try:
        started = time.monotonic()
        assert msm.open(store.path).query("SELECT count(*) AS n FROM asset")["n"].to_list() == [0]
        assert time.monotonic() - started < 8
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


def test_star_import_does_not_hide_the_builtin_open() -> None:
    namespace: dict[str, object] = {}
    exec("from msm import *", namespace)
    assert "open" not in namespace and "Store" in namespace
    assert "open" in dir(msm) and msm.open.__module__ == "msm.handle"


# -- the target_positions DDL (raw SQL, no service in between) ---------------------------------------
INSERT = """
INSERT INTO target_positions (time_index, position_set_uid, target_type, target_uid, asset_uid, portfolio_uid,
    weight_notional_exposure, constant_notional_exposure, single_asset_quantity, metadata_json)
VALUES ($time_index::TIMESTAMPTZ, $position_set_uid::UUID, $target_type, $target_uid::UUID, $asset_uid::UUID,
    $portfolio_uid::UUID, $weight_notional_exposure::DOUBLE, $constant_notional_exposure::DOUBLE,
    $single_asset_quantity::DOUBLE, $metadata_json::JSON)
"""


@pytest.fixture
def raw(seeded):
    """A stored position set and a function building a valid raw target row (asset or portfolio)."""
    set_uid = str(uuid.uuid4())
    seeded.store.execute(
        "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time) VALUES (?::UUID, ?::UUID, ?)",
        [set_uid, seeded.allocation["uid"], T0],
    )

    def row(kind: str = "asset", **changes):
        target = seeded.uid("BTC") if kind == "asset" else seeded.portfolio["uid"]
        values = {
            "time_index": T0,
            "position_set_uid": set_uid,
            "target_type": kind,
            "target_uid": target,
            "asset_uid": target if kind == "asset" else None,
            "portfolio_uid": target if kind == "portfolio" else None,
            "weight_notional_exposure": 0.5,
            "constant_notional_exposure": None,
            "single_asset_quantity": None,
            "metadata_json": None,
        }
        return values | changes

    return seeded, row


def test_valid_raw_rows_are_accepted(raw) -> None:
    seeded, row = raw
    seeded.store.execute(INSERT, row("asset", metadata_json='{"role": "core"}'))
    seeded.store.execute(INSERT, row("portfolio", weight_notional_exposure=None, constant_notional_exposure=1000.0))
    seeded.store.execute(
        INSERT,
        row(
            "asset",
            target_uid=seeded.uid("ETH"),
            asset_uid=seeded.uid("ETH"),
            weight_notional_exposure=None,
            single_asset_quantity=-2.5,
        ),
    )
    assert seeded.store.query("SELECT count(*) AS n FROM target_positions")["n"][0] == 3


OTHER = str(uuid.UUID(int=12345))
# Which DuckDB constraint each bad row must hit (a fragment of DuckDB's own message).
REFERENCE = (
    r"CHECK constraint failed on table \"target_positions\" with expression "
    r"CHECK\(\(\(\(target_type = 'asset'\) AND \(asset_uid IS NOT NULL\)"
)
TYPES = r"CHECK\(\(target_type IN \('asset', 'portfolio'\)\)\)"
ONE_EXPOSURE = r"CHECK\(\(\(\(CAST\(\(weight_notional_exposure IS NOT NULL\) AS INTEGER\)"
FINITE = r"CHECK\(isfinite\(COALESCE\(weight_notional_exposure"
NO_QUANTITY = r"CHECK\(\(\(target_type != 'portfolio'\) OR \(single_asset_quantity IS NULL\)\)\)"
OBJECT = r"CHECK\(\(\(metadata_json IS NULL\) OR \(json_type\(metadata_json\) = 'OBJECT'\)\)\)"
FK = r"Violates foreign key constraint because key \"uid: "
SET_FK = r"Violates foreign key constraint because key \"uid: [0-9a-f-]+, position_set_time: "

BAD_RAW_ROWS = {
    "both asset_uid and portfolio_uid": (lambda s: ("asset", {"portfolio_uid": s.portfolio["uid"]}), REFERENCE),
    "neither asset_uid nor portfolio_uid": (lambda s: ("asset", {"asset_uid": None}), REFERENCE),
    "portfolio row without portfolio_uid": (lambda s: ("portfolio", {"portfolio_uid": None}), REFERENCE),
    "target_uid differs from asset_uid": (lambda s: ("asset", {"target_uid": s.uid("ETH")}), REFERENCE),
    "target_uid differs from portfolio_uid": (lambda s: ("portfolio", {"target_uid": s.uid("BTC")}), REFERENCE),
    "asset type with only portfolio_uid": (lambda s: ("portfolio", {"target_type": "asset"}), REFERENCE),
    "portfolio type with only asset_uid": (lambda s: ("asset", {"target_type": "portfolio"}), REFERENCE),
    "target_type fund": (lambda s: ("asset", {"target_type": "fund"}), TYPES),
    "target_type null": (
        lambda s: ("asset", {"target_type": None}),
        r"NOT NULL constraint failed: target_positions\.target_type",
    ),
    "target_uid null": (
        lambda s: ("asset", {"target_uid": None}),
        r"NOT NULL constraint failed: target_positions\.target_uid",
    ),
    "zero exposures": (lambda s: ("asset", {"weight_notional_exposure": None}), ONE_EXPOSURE),
    "two exposures": (lambda s: ("asset", {"constant_notional_exposure": 100.0}), ONE_EXPOSURE),
    "three exposures": (
        lambda s: ("asset", {"constant_notional_exposure": 100.0, "single_asset_quantity": 1.0}),
        ONE_EXPOSURE,
    ),
    "NaN weight": (lambda s: ("asset", {"weight_notional_exposure": float("nan")}), FINITE),
    "inf constant": (
        lambda s: ("asset", {"weight_notional_exposure": None, "constant_notional_exposure": float("inf")}),
        FINITE,
    ),
    "-inf quantity": (
        lambda s: ("asset", {"weight_notional_exposure": None, "single_asset_quantity": float("-inf")}),
        FINITE,
    ),
    "NaN on a portfolio row": (lambda s: ("portfolio", {"weight_notional_exposure": float("nan")}), FINITE),
    "single_asset_quantity on a portfolio row": (
        lambda s: ("portfolio", {"weight_notional_exposure": None, "single_asset_quantity": 1.0}),
        NO_QUANTITY,
    ),
    "metadata_json array": (lambda s: ("asset", {"metadata_json": "[1, 2]"}), OBJECT),
    "metadata_json string": (lambda s: ("asset", {"metadata_json": '"satellite"'}), OBJECT),
    "metadata_json number": (lambda s: ("asset", {"metadata_json": "3"}), OBJECT),
    "time_index not the set's time": (lambda s: ("asset", {"time_index": T0 + timedelta(hours=1)}), SET_FK),
    "unknown asset uid (FK)": (lambda s: ("asset", {"asset_uid": OTHER, "target_uid": OTHER}), FK + OTHER),
    "unknown portfolio uid (FK)": (lambda s: ("portfolio", {"portfolio_uid": OTHER, "target_uid": OTHER}), FK + OTHER),
    "unknown position set (FK)": (lambda s: ("asset", {"position_set_uid": OTHER}), SET_FK),
}


@pytest.mark.parametrize("case", list(BAD_RAW_ROWS))
def test_database_refuses_bad_raw_rows(raw, db_contents, case: str) -> None:
    seeded, row = raw
    build, message = BAD_RAW_ROWS[case]
    kind, changes = build(seeded)
    before = db_contents(seeded.store)
    with pytest.raises(duckdb.ConstraintException, match=message):
        seeded.store.execute(INSERT, row(kind, **changes))
    assert db_contents(seeded.store) == before


def test_database_refuses_a_duplicate_primary_key(raw) -> None:
    seeded, row = raw
    seeded.store.execute(INSERT, row("asset"))
    with pytest.raises(duckdb.ConstraintException, match=r"(?i)duplicate key"):
        seeded.store.execute(INSERT, row("asset", weight_notional_exposure=0.1))
    # the same uid as a different kind is a different identity, but it still has to satisfy the FKs
    with pytest.raises(duckdb.ConstraintException):
        seeded.store.execute(INSERT, row("portfolio", target_uid=seeded.uid("BTC"), portfolio_uid=seeded.uid("BTC")))


def _constraints(store: Store, table: str, kind: str) -> pl.DataFrame:
    return store.query(
        "SELECT constraint_column_names AS cols, referenced_table AS ref, referenced_column_names AS ref_cols "
        "FROM duckdb_constraints() WHERE schema_name = 'main' AND table_name = ? AND constraint_type = ?",
        [table, kind],
    )


def test_target_positions_primary_key(store: Store) -> None:
    pk = _constraints(store, "target_positions", "PRIMARY KEY")
    assert pk["cols"].to_list() == [["time_index", "position_set_uid", "target_type", "target_uid"]]


def test_target_positions_foreign_keys(store: Store) -> None:
    fks = _constraints(store, "target_positions", "FOREIGN KEY")
    found = {(tuple(r["cols"]), r["ref"], tuple(r["ref_cols"])) for r in fks.iter_rows(named=True)}
    assert found == {
        (("asset_uid",), "asset", ("uid",)),
        (("portfolio_uid",), "portfolio", ("uid",)),
        (("position_set_uid", "time_index"), "position_set", ("uid", "position_set_time")),
    }


def test_target_positions_indexes(store: Store) -> None:
    indexes = store.query(
        "SELECT expressions FROM duckdb_indexes() WHERE schema_name = 'main' AND table_name = 'target_positions'"
    )
    found = {e.strip("[]").replace(" ", "") for e in indexes["expressions"]}
    assert {"asset_uid", "portfolio_uid", "position_set_uid,target_type,target_uid"} <= found


def test_target_positions_columns_and_types(store: Store) -> None:
    frame = store.query(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE table_name = 'target_positions' ORDER BY column_index"
    )
    assert frame.rows() == [
        ("time_index", "TIMESTAMP WITH TIME ZONE", False),
        ("position_set_uid", "UUID", False),
        ("target_type", "VARCHAR", False),
        ("target_uid", "UUID", False),
        ("asset_uid", "UUID", True),
        ("portfolio_uid", "UUID", True),
        ("weight_notional_exposure", "DOUBLE", True),
        ("constant_notional_exposure", "DOUBLE", True),
        ("single_asset_quantity", "DOUBLE", True),
        ("metadata_json", "JSON", True),
    ]


REGISTRY_CONTRACT = {
    "asset": ["uid", "unique_identifier", "name", "ticker", "asset_type", "metadata_json"],
    "portfolio": ["uid", "unique_identifier", "portfolio_name", "metadata_json"],
    "account_group": ["uid", "group_name", "group_description", "metadata_json"],
    "account": [
        "uid",
        "unique_identifier",
        "account_name",
        "is_paper",
        "account_is_active",
        "account_group_uid",
        "metadata_json",
    ],
    "account_allocation_model": ["uid", "allocation_model_name", "allocation_model_description", "metadata_json"],
    "account_target_allocation": [
        "uid",
        "unique_identifier",
        "account_uid",
        "account_allocation_model_uid",
        "display_name",
        "is_active",
        "source",
        "metadata_json",
    ],
    "position_set": ["uid", "account_target_allocation_uid", "position_set_time", "source", "metadata_json"],
}


@pytest.mark.parametrize("table", list(REGISTRY_CONTRACT))
def test_registry_tables_have_the_contract_columns(store: Store, table_columns, table: str) -> None:
    assert set(REGISTRY_CONTRACT[table]) <= set(table_columns(store, table))


def test_position_set_is_unique_per_allocation_and_time(seeded) -> None:
    sql = (
        "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time) "
        "VALUES (gen_random_uuid(), ?::UUID, ?)"
    )
    seeded.store.execute(sql, [seeded.allocation["uid"], T0])
    with pytest.raises(duckdb.ConstraintException):
        seeded.store.execute(sql, [seeded.allocation["uid"], T0])
