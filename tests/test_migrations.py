"""Migrations: fresh apply, no-op re-run, newer databases refused, and the ADR 0027 upgrade of real legacy rows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import msm
import msm_portfolios
from msm.errors import MigrationError, SchemaError
from msm.store import MSM_MIGRATIONS, Store, check_schema, migrate, schema_versions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)

NEW_COLUMNS = [
    "time_index",
    "position_set_uid",
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    "weight_notional_exposure",
    "constant_notional_exposure",
    "single_asset_quantity",
    "metadata_json",
]
LEGACY_COLUMNS = [
    "time_index",
    "position_set_uid",
    "asset_identifier",
    "weight_notional_exposure",
    "constant_notional_exposure",
    "single_asset_quantity",
    "metadata_json",
]


def _recorded(store: Store) -> list[tuple[str, int, str]]:
    return store.query("SELECT namespace, version, name FROM schema_migrations ORDER BY namespace, version").rows()


# -- fresh, re-run, newer ----------------------------------------------------------------------------
def test_migration_files_are_numbered_from_one() -> None:
    assert [(m.namespace, m.version, m.name) for m in MSM_MIGRATIONS.migrations] == [
        ("msm", 1, "registry_and_asset_targets"),
        ("msm", 2, "adr_0027_portfolio_aware_targets"),
        ("msm", 3, "holdings_prices_fx"),
        ("msm", 4, "audit_trail"),
        ("msm", 5, "drafts"),
    ]
    assert MSM_MIGRATIONS.latest == 5


def test_fresh_migrate_applies_and_records_every_migration(tmp_path: Path, table_columns) -> None:
    store = Store(tmp_path / "sub" / "fresh.duckdb")
    applied = migrate(store)
    assert [str(m) for m in applied] == [
        "msm 0001 registry_and_asset_targets",
        "msm 0002 adr_0027_portfolio_aware_targets",
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]
    assert _recorded(store) == [
        ("msm", 1, "registry_and_asset_targets"),
        ("msm", 2, "adr_0027_portfolio_aware_targets"),
        ("msm", 3, "holdings_prices_fx"),
        ("msm", 4, "audit_trail"),
        ("msm", 5, "drafts"),
    ]
    assert schema_versions(store) == {"msm": 5}
    assert table_columns(store, "target_positions") == NEW_COLUMNS
    applied_at = store.query("SELECT applied_at FROM schema_migrations")["applied_at"]
    assert applied_at.null_count() == 0
    check_schema(store)  # no error


def test_rerun_is_a_no_op(store: Store, db_contents) -> None:
    before = db_contents(store)
    assert migrate(store) == []
    assert migrate(store) == []
    assert db_contents(store) == before


def test_rerun_keeps_data(seeded, db_contents) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, [{"asset": "BTC", "weight_notional_exposure": 0.5}])
    before = db_contents(seeded.store)
    assert migrate(seeded.store) == []
    assert db_contents(seeded.store) == before


def test_database_newer_than_the_code_is_refused(store: Store, db_contents) -> None:
    store.execute("INSERT INTO schema_migrations (namespace, version, name) VALUES ('msm', 6, 'from_the_future')")
    before = db_contents(store)
    with pytest.raises(SchemaError, match=r"is at msm migration 6, newer than this code knows \(latest 5\)"):
        migrate(store)
    with pytest.raises(SchemaError, match="newer"):
        check_schema(store)
    assert db_contents(store) == before


def test_check_schema_on_a_missing_file_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.duckdb"
    with pytest.raises(SchemaError, match=r"no database at .*missing\.duckdb; create it with `msm init`"):
        check_schema(Store(path))
    assert not path.exists()
    assert schema_versions(Store(path)) == {}
    assert not path.exists()


def test_check_schema_on_a_database_behind(store_at) -> None:
    old = store_at({"msm": 1})
    with pytest.raises(SchemaError, match=r"needs migrations \(msm 1 < 5\); run `msm init`"):
        check_schema(old)


def test_check_schema_on_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(SchemaError, match=r"needs migrations \(msm 0 < 5\)"):
        check_schema(Store(path))


def test_migrate_from_version_one_applies_only_the_rest(store_at) -> None:
    old = store_at({"msm": 1})
    assert schema_versions(old) == {"msm": 1}
    assert [str(m) for m in migrate(old)] == [
        "msm 0002 adr_0027_portfolio_aware_targets",
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]
    assert schema_versions(old) == {"msm": 5}


# -- the ADR 0027 migration on legacy data -------------------------------------------------------------
def _uid() -> str:
    return str(uuid.uuid4())


def _legacy_database(store_at, identifiers: dict[str, str | None] | None = None):
    """A version-1 database with legacy rows: assets, account, allocation, two position sets, target rows.

    Returns (store, facts) where facts holds the uids and the legacy rows as inserted.
    """
    store = store_at({"msm": 1})
    assets = {"BTC": _uid(), "ETH": _uid(), "SOL": _uid()}
    account, model, allocation, set0, set1 = _uid(), _uid(), _uid(), _uid(), _uid()
    with store.transaction() as con:
        for ident, uid in assets.items():
            con.execute(
                "INSERT INTO asset (uid, unique_identifier, name) VALUES (?::UUID, ?, ?)", [uid, ident, ident.lower()]
            )
        con.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (?::UUID, 'CRYPTO-EW')", [_uid()])
        con.execute(
            "INSERT INTO account (uid, unique_identifier, account_name, is_paper, account_is_active) VALUES (?::UUID, "
            "'alpha', 'Alpha', true, true)",
            [account],
        )
        con.execute(
            "INSERT INTO account_allocation_model (uid, allocation_model_name) VALUES (?::UUID, 'balanced')", [model]
        )
        con.execute(
            "INSERT INTO account_target_allocation (uid, unique_identifier, account_uid, "
            "account_allocation_model_uid, is_active) "
            "VALUES (?::UUID, 'alpha-main', ?::UUID, ?::UUID, true)",
            [allocation, account, model],
        )
        for set_uid, when in ((set0, T0), (set1, T1)):
            con.execute(
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, source) VALUES "
                "(?::UUID, ?::UUID, ?, 'legacy')",
                [set_uid, allocation, when],
            )
    legacy = [
        # (time, set, identifier, weight, constant, quantity, metadata)
        (T0, set0, "BTC", 0.6, None, None, '{"role": "core", "nested": {"a": [1, 2]}}'),
        (T0, set0, "ETH", None, 250000.0, None, None),
        (T0, set0, "SOL", None, None, 12.5, '{"note": "units"}'),
        (T1, set1, "BTC", 0.55, None, None, None),
        (T1, set1, "ETH", 0.3, None, None, "{}"),
    ]
    for extra in (identifiers or {}).items():
        legacy.append((T1, set1, extra[0], 0.01, None, None, extra[1]))
    with store.transaction() as con:
        for row in legacy:
            con.execute(
                "INSERT INTO target_positions (time_index, position_set_uid, asset_identifier, "
                "weight_notional_exposure, "
                "constant_notional_exposure, single_asset_quantity, metadata_json) VALUES (?, ?::UUID, ?, ?, ?, ?, "
                "?::JSON)",
                list(row),
            )
    return store, {"assets": assets, "sets": (set0, set1), "legacy": legacy}


def test_legacy_database_has_the_pre_adr_shape(store_at, table_columns) -> None:
    store, _ = _legacy_database(store_at)
    assert table_columns(store, "target_positions") == LEGACY_COLUMNS
    assert schema_versions(store) == {"msm": 1}


def test_adr_0027_migration_converts_every_legacy_row(store_at, table_columns) -> None:
    store, facts = _legacy_database(store_at)
    applied = migrate(store)
    assert [str(m) for m in applied] == [
        "msm 0002 adr_0027_portfolio_aware_targets",
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]
    assert table_columns(store, "target_positions") == NEW_COLUMNS
    assert "asset_identifier" not in table_columns(store, "target_positions")

    got = store.query(
        """
        SELECT time_index, position_set_uid::VARCHAR AS set_uid, target_type, target_uid::VARCHAR AS target_uid,
               asset_uid::VARCHAR AS asset_uid, portfolio_uid::VARCHAR AS portfolio_uid,
               weight_notional_exposure AS w, constant_notional_exposure AS c, single_asset_quantity AS q,
               metadata_json::VARCHAR AS meta
        FROM target_positions ORDER BY time_index, target_uid
        """
    )
    assert got.height == len(facts["legacy"])
    assets = facts["assets"]
    expected = sorted(
        (
            (when, set_uid, "asset", assets[ident], assets[ident], None, w, c, q, json.loads(meta) if meta else None)
            for when, set_uid, ident, w, c, q, meta in facts["legacy"]
        ),
        key=lambda r: (r[0], r[3]),
    )
    converted = [(*row[:9], json.loads(row[9]) if row[9] else None) for row in got.rows()]
    assert converted == expected


def test_adr_0027_migration_keeps_position_sets_and_registry(store_at, db_contents) -> None:
    store, _ = _legacy_database(store_at)
    before = db_contents(store)
    migrate(store)
    after = db_contents(store)
    for table in ("portfolio", "account_allocation_model", "account_target_allocation"):
        assert after[table] == before[table], table
    # msm 0005 publishes every existing position set
    assert after["position_set"] == [(*row, "published") for row in before["position_set"]]
    # msm 0003 adds a column to each of these; every row keeps its values and gets the new column's
    assert after["asset"] == [(*row, None) for row in before["asset"]]
    assert after["account"] == [(*row, "USD") for row in before["account"]]


def test_adr_0027_migration_creates_the_indexes_and_keys(store_at) -> None:
    store, _ = _legacy_database(store_at)
    migrate(store)
    indexes = store.query("SELECT index_name, expressions FROM duckdb_indexes() WHERE table_name = 'target_positions'")
    assert {e.strip("[]").replace(" ", "") for e in indexes["expressions"]} >= {
        "asset_uid",
        "portfolio_uid",
        "position_set_uid,target_type,target_uid",
    }
    pk = store.query(
        "SELECT constraint_column_names AS cols FROM duckdb_constraints() WHERE table_name = 'target_positions' AND "
        "constraint_type = 'PRIMARY KEY'"
    )
    assert pk["cols"].to_list() == [["time_index", "position_set_uid", "target_type", "target_uid"]]
    assert store.query("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name LIKE '%adr0027%'")["n"][0] == 0


def test_adr_0027_checks_are_active_after_the_upgrade(store_at) -> None:
    store, facts = _legacy_database(store_at)
    migrate(store)
    set0 = facts["sets"][0]
    portfolio = store.query("SELECT uid::VARCHAR AS uid FROM portfolio")["uid"][0]
    insert = (
        "INSERT INTO target_positions (time_index, position_set_uid, target_type, target_uid, asset_uid, "
        "portfolio_uid, "
        "weight_notional_exposure, single_asset_quantity, metadata_json) VALUES (?, ?::UUID, ?, ?::UUID, ?::UUID, "
        "?::UUID, ?, ?, ?::JSON)"
    )
    bad = [
        ([T0, set0, "portfolio", portfolio, None, portfolio, None, 1.0, None], "single_asset_quantity IS NULL"),
        ([T0, set0, "fund", portfolio, None, portfolio, 0.1, None, None], "target_type IN"),
        (
            [T0, set0, "portfolio", portfolio, facts["assets"]["SOL"], portfolio, 0.1, None, None],
            "asset_uid IS NOT NULL",
        ),
        ([T0, set0, "portfolio", portfolio, None, portfolio, float("nan"), None, None], "isfinite"),
        ([T0, set0, "portfolio", portfolio, None, portfolio, 0.1, None, "[1]"], "json_type"),
        ([T1, set0, "portfolio", portfolio, None, portfolio, 0.1, None, None], "foreign key"),
    ]
    for params, message in bad:
        with pytest.raises(duckdb.ConstraintException, match=message):
            store.execute(insert, params)
    store.execute(
        insert, [T0, set0, "portfolio", portfolio, None, portfolio, 0.4, None, '{"portfolio_role": "satellite_sleeve"}']
    )
    # the upgraded database works with the services
    snap = msm.read_snapshot(store, "alpha", at=T0)
    assert sorted(snap.positions["unique_identifier"]) == ["BTC", "CRYPTO-EW", "ETH", "SOL"]


def test_adr_0027_migration_refuses_unknown_identifiers_and_changes_nothing(
    store_at, db_contents, table_columns
) -> None:
    store, facts = _legacy_database(store_at, identifiers={"DOGE": None, "XRP": '{"x": 1}'})
    before = db_contents(store)
    with pytest.raises(
        MigrationError, match=r"msm 0002 adr_0027_portfolio_aware_targets failed and changed nothing"
    ) as info:
        migrate(store)
    message = str(info.value)
    assert "asset_identifier values with no asset" in message
    assert "'DOGE', 'XRP'" in message
    assert "'BTC'" not in message and "'ETH'" not in message
    assert schema_versions(store) == {"msm": 1}
    assert table_columns(store, "target_positions") == LEGACY_COLUMNS
    assert db_contents(store) == before
    assert len(before["target_positions"]) == len(facts["legacy"])
    with pytest.raises(SchemaError, match=r"needs migrations \(msm 1 < 5\)"):
        check_schema(store)


def test_refused_migration_succeeds_once_the_assets_exist(store_at) -> None:
    store, facts = _legacy_database(store_at, identifiers={"DOGE": None})
    with pytest.raises(MigrationError, match="'DOGE'"):
        migrate(store)
    store.execute("INSERT INTO asset (uid, unique_identifier) VALUES (gen_random_uuid(), 'DOGE')")
    assert [m.version for m in migrate(store)] == [2, 3, 4, 5]
    n = store.query("SELECT count(*) AS n FROM target_positions")["n"][0]
    assert n == len(facts["legacy"])


def test_adr_0027_migration_refuses_rows_off_their_sets_time(store_at, db_contents) -> None:
    store, facts = _legacy_database(store_at)
    store.execute(
        "INSERT INTO target_positions (time_index, position_set_uid, asset_identifier, weight_notional_exposure) "
        "VALUES (?, ?::UUID, 'SOL', 0.1)",
        [T0 + timedelta(minutes=5), facts["sets"][0]],
    )
    before = db_contents(store)
    with pytest.raises(
        MigrationError,
        match=r"1 target_positions rows have a time_index that is not their position set's position_set_time",
    ):
        migrate(store)
    assert db_contents(store) == before
    assert schema_versions(store) == {"msm": 1}


def test_adr_0027_migration_refuses_legacy_metadata_that_is_not_an_object(store_at, db_contents, table_columns) -> None:
    # 0001 did not check metadata; 0002 does. The row is neither dropped nor rewritten: the upgrade stops.
    store, _ = _legacy_database(store_at, identifiers={"SOL": None})  # one more SOL row, in the T1 set
    store.execute(
        "UPDATE target_positions SET metadata_json = '[1, 2]'::JSON WHERE asset_identifier = 'SOL' AND time_index = ?",
        [T1],
    )
    before = db_contents(store)
    with pytest.raises(MigrationError, match=r"changed nothing: .*json_type\(metadata_json\) = 'OBJECT'"):
        migrate(store)
    assert db_contents(store) == before
    assert table_columns(store, "target_positions") == LEGACY_COLUMNS
    assert schema_versions(store) == {"msm": 1}


# -- msm 0003: holdings, prices, FX; the rebuild of asset and account ----------------------------------
def _catalog(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """The schema as DuckDB describes it: columns, constraints and indexes of every table."""
    queries = {
        "columns": "SELECT table_name, column_index, column_name, data_type, is_nullable, column_default "
        "FROM duckdb_columns() WHERE schema_name = 'main'",
        "constraints": "SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints() "
        "WHERE schema_name = 'main'",
        "indexes": "SELECT table_name, index_name, sql FROM duckdb_indexes() WHERE schema_name = 'main'",
        "tables": "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'",
    }
    return {name: sorted(store.query(sql).rows(), key=repr) for name, sql in queries.items()}


def _version_two_book(store_at) -> tuple[Store, dict[str, str]]:
    """A database at msm 0002 + msm_portfolios 0001 holding every kind of row, written with raw SQL."""
    store = store_at({"msm": 2, "msm_portfolios": 1}, sets=msm_portfolios.MIGRATIONS)
    uid = {name: _uid() for name in ("BTC", "ETH", "USD", "EW", "core", "alpha", "beta", "model", "alloc", "s0", "s1")}
    with store.transaction() as con:
        for ident, kind in (("BTC", "crypto"), ("ETH", None), ("USD", "Cash")):
            con.execute(
                "INSERT INTO asset VALUES (?::UUID, ?, ?, ?, ?, ?::JSON)",
                [uid[ident], ident, ident.lower(), ident, kind, '{"k": 1}' if ident == "BTC" else None],
            )
        con.execute("INSERT INTO portfolio VALUES (?::UUID, 'CRYPTO-EW', 'Crypto EW', NULL)", [uid["EW"]])
        con.execute("INSERT INTO account_group VALUES (?::UUID, 'core', 'core accounts', NULL)", [uid["core"]])
        for name, group in (("alpha", uid["core"]), ("beta", None)):
            con.execute(
                "INSERT INTO account VALUES (?::UUID, ?, ?, false, true, ?::UUID, NULL)", [uid[name], name, name, group]
            )
        con.execute("INSERT INTO account_allocation_model VALUES (?::UUID, 'balanced', NULL, NULL)", [uid["model"]])
        con.execute(
            "INSERT INTO account_target_allocation VALUES (?::UUID, 'alpha-main', ?::UUID, ?::UUID, 'Alpha', true, "
            "'x', NULL)",
            [uid["alloc"], uid["alpha"], uid["model"]],
        )
        for key, when in (("s0", T0), ("s1", T1)):
            con.execute(
                "INSERT INTO position_set VALUES (?::UUID, ?::UUID, ?, 'legacy', NULL)", [uid[key], uid["alloc"], when]
            )
        targets = [
            (T0, uid["s0"], "asset", uid["BTC"], uid["BTC"], None, 0.6, None, None, '{"role": "core"}'),
            (T0, uid["s0"], "portfolio", uid["EW"], None, uid["EW"], 0.4, None, None, None),
            (T1, uid["s1"], "asset", uid["ETH"], uid["ETH"], None, None, None, 12.5, None),
            (T1, uid["s1"], "portfolio", uid["EW"], None, uid["EW"], None, 1000.0, None, None),
        ]
        for row in targets:
            con.execute(
                "INSERT INTO target_positions VALUES (?, ?::UUID, ?, ?::UUID, ?::UUID, ?::UUID, ?, ?, ?, ?::JSON)",
                list(row),
            )
        for when, weights in ((T0, (0.5, 0.5)), (T1, (0.7, 0.3))):
            for asset, weight in zip(("BTC", "ETH"), weights, strict=True):
                con.execute(
                    "INSERT INTO portfolio_weights VALUES (?, ?::UUID, ?::UUID, ?)",
                    [when, uid["EW"], uid[asset], weight],
                )
    return store, uid


def test_0003_declares_the_tables_it_rebuilds() -> None:
    (mig,) = [m for m in MSM_MIGRATIONS.migrations if m.version == 3]
    assert mig.rebuilds == ("asset", "account")
    (five,) = [m for m in MSM_MIGRATIONS.migrations if m.version == 5]
    assert five.rebuilds == ("position_set",)
    assert all(m.rebuilds == () for m in MSM_MIGRATIONS.migrations if m.version not in (3, 5))


def test_0003_keeps_every_row_of_a_version_two_database(store_at, db_contents) -> None:
    store, _ = _version_two_book(store_at)
    before = db_contents(store)
    # core only: msm_portfolios 0002 (nested portfolios) has its own test below
    assert [str(m) for m in migrate(store, (MSM_MIGRATIONS,))] == [
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]
    after = db_contents(store)
    unchanged = set(before) - {"asset", "account", "position_set", "schema_migrations"}
    assert {t: after[t] for t in unchanged} == {t: before[t] for t in unchanged}
    assert after["position_set"] == sorted(((*row, "published") for row in before["position_set"]), key=repr)
    assert len(after["target_positions"]) == 4 and len(after["portfolio_weights"]) == 4
    # new columns: the cash asset's currency is its ISO identifier; every account is in USD
    currency = {row[1]: row[-1] for row in after["asset"]}
    assert currency == {"BTC": None, "ETH": None, "USD": "USD"}
    assert sorted(row[:-1] for row in after["asset"]) == sorted(before["asset"])
    assert after["account"] == sorted(((*row, "USD") for row in before["account"]), key=repr)
    for table in ("account_holdings_set", "account_holdings", "asset_price", "fx_rate"):
        assert after[table] == []
    assert not store.query("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '_rebuild_%'").height


def _book_at(store_at, version: int) -> Store:
    """The version-two book migrated (by hand) up to ``version``, as a database of that release is."""
    store, _ = _version_two_book(store_at)
    with store.transaction() as con:
        for mig in [m for m in MSM_MIGRATIONS.migrations if 3 <= m.version <= version]:
            mig.apply(con)
            con.execute(
                "INSERT INTO schema_migrations (namespace, version, name) VALUES ('msm', ?, ?)", [mig.version, mig.name]
            )
    return store


def test_0004_adds_the_audit_tables_and_touches_no_row(store_at, db_contents) -> None:
    store = _book_at(store_at, 3)
    before = db_contents(store)
    assert [str(m) for m in migrate(store, (MSM_MIGRATIONS,))] == [
        "msm 0004 audit_trail",
        "msm 0005 drafts",
    ]  # core only
    after = db_contents(store)
    kept = [t for t in before if t not in ("schema_migrations", "position_set")]
    assert {t: after[t] for t in kept} == {t: before[t] for t in kept}
    assert after["audit_event"] == [] and after["target_positions_replaced"] == []
    assert set(after) - set(before) == {"audit_event", "target_positions_replaced"}


def test_0005_publishes_every_existing_set_and_touches_no_other_row(store_at, db_contents, table_columns) -> None:
    store = _book_at(store_at, 4)
    before = db_contents(store)
    assert before["position_set"] and before["target_positions"] and before["portfolio_weights"]
    assert [str(m) for m in migrate(store, (MSM_MIGRATIONS,))] == ["msm 0005 drafts"]  # core only
    after = db_contents(store)
    kept = [t for t in before if t not in ("schema_migrations", "position_set")]
    assert {t: after[t] for t in kept} == {t: before[t] for t in kept}
    assert after["position_set"] == sorted(((*row, "published") for row in before["position_set"]), key=repr)
    assert table_columns(store, "position_set")[-1] == "status"
    assert msm.read_snapshot(store, "alpha").position_set_time is not None
    with pytest.raises(duckdb.ConstraintException, match="CHECK"):
        store.execute("UPDATE position_set SET status = 'pending'")
    assert not store.query("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '_rebuild_%'").height


def test_0003_upgraded_schema_equals_a_fresh_one(store_at, tmp_path: Path) -> None:
    upgraded, _ = _version_two_book(store_at)
    migrate(upgraded, msm_portfolios.MIGRATIONS)
    fresh = Store(tmp_path / "fresh.duckdb")
    migrate(fresh, msm_portfolios.MIGRATIONS)
    assert _catalog(upgraded) == _catalog(fresh)
    core_only = store_at({"msm": 2})
    migrate(core_only)
    assert "portfolio_weights" not in {t for (t,) in _catalog(core_only)["tables"]}
    migrate(core_only, msm_portfolios.MIGRATIONS)
    assert _catalog(core_only) == _catalog(fresh)


def test_0003_refuses_an_asset_of_type_portfolio_and_changes_nothing(store_at, db_contents, table_columns) -> None:
    store, _ = _version_two_book(store_at)
    for ident, kind in (("FUND-A", "portfolio"), ("FUND-B", " Portfolio ")):
        store.execute(
            "INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), ?, ?)", [ident, kind]
        )
    before = db_contents(store)
    with pytest.raises(MigrationError, match=r"msm 0003 holdings_prices_fx failed and changed nothing") as info:
        migrate(store, msm_portfolios.MIGRATIONS)
    message = str(info.value)
    assert "assets with asset_type 'portfolio' (an asset never stands for a portfolio): 'FUND-A', 'FUND-B'" in message
    assert "msm init again" in message
    assert db_contents(store) == before
    assert schema_versions(store) == {"msm": 2, "msm_portfolios": 1}
    assert "currency" not in table_columns(store, "asset")


def test_0003_refuses_a_cash_asset_whose_currency_cannot_be_known(store_at, db_contents) -> None:
    store, _ = _version_two_book(store_at)
    store.execute(
        "INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'dollars', 'cash')"
    )
    before = db_contents(store)
    with pytest.raises(MigrationError, match=r"cash assets .* currency cannot be known: 'dollars'\. Rename them"):
        migrate(store, msm_portfolios.MIGRATIONS)
    assert db_contents(store) == before


def test_0003_rules_are_active_after_the_upgrade(store_at) -> None:
    store, uid = _version_two_book(store_at)
    migrate(store, (MSM_MIGRATIONS,))  # portfolio_weights keeps its msm_portfolios 0001 shape here
    bad = [
        (
            "INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'F', 'portfolio')",
            "portfolio",
        ),
        ("INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'EUR', 'cash')", "cash"),
        ("INSERT INTO asset (uid, unique_identifier, currency) VALUES (gen_random_uuid(), 'X', 'usd')", "regexp"),
        (f"UPDATE account SET base_currency = 'US' WHERE uid = '{uid['beta']}'", "regexp"),
        (f"INSERT INTO portfolio_weights VALUES ('{T1.isoformat()}', '{uid['EW']}', '{_uid()}', 1.0)", "foreign key"),
        (
            f"INSERT INTO target_positions VALUES ('{T0.isoformat()}', '{_uid()}', 'asset', '{uid['BTC']}', "
            f"'{uid['BTC']}', NULL, 0.1, NULL, NULL, NULL)",
            "foreign key",
        ),
    ]
    for sql, message in bad:
        with pytest.raises(duckdb.ConstraintException, match=message):
            store.execute(sql)
    snap = msm.read_snapshot(store, "alpha", at=T0)  # the upgraded database works with the services
    assert sorted(snap.positions["unique_identifier"]) == ["BTC", "CRYPTO-EW"]


def test_a_rebuild_that_loses_rows_is_refused() -> None:
    from msm.store.rebuild import rebuilding

    con = duckdb.connect()
    con.execute("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p_id INTEGER REFERENCES p (id))")
    con.execute("INSERT INTO p VALUES (1), (2); INSERT INTO c VALUES (1)")
    con.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.ConstraintException, match=r"rebuilding p would change its row count from 2 to 1"):
        with rebuilding(con, ["p"]):
            con.execute(
                "CREATE TABLE p (id INTEGER PRIMARY KEY, x VARCHAR); INSERT INTO p SELECT id, NULL FROM _rebuild_p "
                "WHERE id = 1"
            )
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM p").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM c").fetchall() == [(1,)]


# -- msm_portfolios 0002: nested portfolios ------------------------------------------------------------
NESTED_WEIGHT_COLUMNS = [
    "time_index",
    "portfolio_uid",
    "constituent_type",
    "constituent_uid",
    "asset_uid",
    "constituent_portfolio_uid",
    "weight",
]


def test_nested_migration_declares_its_rebuild() -> None:
    assert [(m.version, m.name, m.rebuilds) for m in msm_portfolios.PORTFOLIO_MIGRATIONS.migrations] == [
        (1, "portfolio_weights", ()),
        (2, "nested_portfolios", ("portfolio_weights",)),
    ]


def test_nested_migration_converts_every_composition_row(store_at, db_contents, table_columns) -> None:
    store, uid = _version_two_book(store_at)
    before = db_contents(store)
    assert [str(m) for m in migrate(store, msm_portfolios.MIGRATIONS)] == [
        "msm 0003 holdings_prices_fx",
        "msm 0004 audit_trail",
        "msm 0005 drafts",
        "msm_portfolios 0002 nested_portfolios",
    ]
    assert table_columns(store, "portfolio_weights") == NESTED_WEIGHT_COLUMNS
    rows = store.query(
        "SELECT time_index, portfolio_uid::VARCHAR, constituent_type, constituent_uid::VARCHAR, asset_uid::VARCHAR, "
        "constituent_portfolio_uid, weight FROM portfolio_weights ORDER BY time_index, weight DESC"
    ).rows()
    stored = ((T0, "BTC", 0.5), (T0, "ETH", 0.5), (T1, "BTC", 0.7), (T1, "ETH", 0.3))
    assert sorted(rows) == sorted((t, uid["EW"], "asset", uid[a], uid[a], None, w) for t, a, w in stored)
    after = db_contents(store)
    # asset and account gain columns in msm 0003, position_set its status in msm 0005 (their own tests)
    untouched = set(before) - {"asset", "account", "position_set", "portfolio_weights", "schema_migrations"}
    assert {t: after[t] for t in untouched} == {t: before[t] for t in untouched}
    assert schema_versions(store) == {"msm": 5, "msm_portfolios": 2}
    assert migrate(store, msm_portfolios.MIGRATIONS) == []  # a re-run is a no-op
    # the upgraded database reads as before through the services
    comp = msm_portfolios.read_composition(store, "CRYPTO-EW", as_of=T1)
    assert dict(zip(comp["asset"], comp["weight"], strict=True)) == {"BTC": 0.7, "ETH": 0.3}


def test_a_failing_nested_migration_changes_nothing(store_at, db_contents, table_columns) -> None:
    store, _ = _version_two_book(store_at)
    migrate(store, (MSM_MIGRATIONS,))
    # a row the new CHECKs refuse cannot be stored by the old schema, so break the migration itself:
    # an object in the way of an index the migration creates
    store.execute(
        "CREATE TABLE blocker (x INTEGER); CREATE INDEX ix_portfolio_weights_constituent_portfolio_uid ON blocker (x)"
    )
    before = db_contents(store)
    with pytest.raises(MigrationError, match=r"msm_portfolios 0002 nested_portfolios failed and changed nothing"):
        migrate(store, msm_portfolios.MIGRATIONS)
    assert db_contents(store) == before
    assert schema_versions(store) == {"msm": 5, "msm_portfolios": 1}
    assert table_columns(store, "portfolio_weights") == ["time_index", "portfolio_uid", "asset_uid", "weight"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("'asset', $b, $b, NULL", None),  # the valid asset row
        ("'portfolio', $q, NULL, $q", None),  # the valid portfolio row
        ("'fund', $b, $b, NULL", "CHECK"),
        ("'asset', $b, $b, $q", "CHECK"),  # both an asset and a portfolio
        ("'asset', $q, $b, NULL", "CHECK"),  # constituent_uid is not the asset
        ("'portfolio', $q, $b, NULL", "CHECK"),  # type says portfolio, column says asset
        ("'portfolio', $p, NULL, $p", "CHECK"),  # a portfolio holding itself
        ("'portfolio', $g, NULL, $g", "foreign key"),
    ],
)
def test_nested_checks_after_the_upgrade(store_at, values: str, message: str | None) -> None:
    store, uid = _version_two_book(store_at)
    migrate(store, msm_portfolios.MIGRATIONS)
    store.execute("INSERT INTO portfolio (uid, unique_identifier) VALUES (?::UUID, 'BONDS')", [uid["core"]])
    sql = (
        (
            "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, asset_uid, "
            f"constituent_portfolio_uid, weight) VALUES ($t, $p::UUID, {values.replace('$b', '$b::UUID')}, 0.5)"
        )
        .replace("$q", "$q::UUID")
        .replace("$g", "$g::UUID")
    )
    params = {"t": datetime(2026, 5, 1, tzinfo=UTC), "p": uid["EW"], "b": uid["BTC"], "q": uid["core"], "g": _uid()}
    used = {k: v for k, v in params.items() if f"${k}" in sql}
    if message is None:
        store.execute(sql, used)
        return
    with pytest.raises(duckdb.ConstraintException, match=message):
        store.execute(sql, used)
