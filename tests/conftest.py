"""Shared fixtures: real DuckDB files under ``tmp_path``, never a mocked store.

- ``store``: a freshly migrated database file (every ``msm`` migration applied).
- ``seeded``: ``store`` plus reference data: assets BTC/ETH/SOL, portfolio CRYPTO-EW, account group
  ``core``, account ``alpha`` (in ``core``) with one active target allocation ``alpha-main`` on the
  allocation model ``balanced``. No snapshot is stored.
- ``seeded_with``: ``seeded`` plus content a test module adds once per session (e.g. snapshots),
  copied fresh for each test.
- ``store_at``: a factory for a database file migrated only up to given versions (for upgrade tests).
- ``db_contents``: a function returning every table's rows, to assert that a refused write changed
  nothing (``assert db_contents(store) == before``).
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The app tests' demo-database fixtures (``demo``, ``demo_template``), shared by every module that asks.
from app_harness import demo, demo_template  # noqa: F401

import msm
from msm.store import MSM_MIGRATIONS, MigrationSet, Store, fetch, migrate, quote_ident
from msm.store import migrations as _migrations


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's database file lives (not created yet)."""
    return tmp_path / "msm.duckdb"


def _copy_database(template: Path, target: Path) -> None:
    for suffix in ("", ".wal"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, target.with_name(target.name + suffix))


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "migrated.duckdb"
    migrate(Store(path))
    return path


@pytest.fixture
def store(db_path: Path, _migrated_template: Path) -> Store:
    """A migrated, empty database file (a copy of one migrated once per session, for speed)."""
    _copy_database(_migrated_template, db_path)
    return Store(db_path)


@dataclass(frozen=True)
class Seeded:
    """The ``seeded`` fixture: a store with a small, known registry."""

    store: Store
    assets: dict[str, dict[str, Any]]  # by unique identifier: BTC, ETH, SOL
    portfolio: dict[str, Any]  # CRYPTO-EW
    group: dict[str, Any]  # core
    account: dict[str, Any]  # alpha
    model: dict[str, Any]  # balanced
    allocation: dict[str, Any]  # alpha-main (active)

    def uid(self, identifier: str) -> str:
        """The uid of an asset or of the portfolio, by unique identifier."""
        if identifier == self.portfolio["unique_identifier"]:
            return self.portfolio["uid"]
        return self.assets[identifier]["uid"]


def _seed(store: Store) -> Seeded:
    assets = {
        ident: msm.add_asset(store, ident, name=name, ticker=ident, asset_type="crypto")
        for ident, name in (("BTC", "Bitcoin"), ("ETH", "Ether"), ("SOL", "Solana"))
    }
    portfolio = msm.add_portfolio(store, "CRYPTO-EW", portfolio_name="Crypto Majors EW")
    group = msm.add_account_group(store, "core", group_description="core accounts")
    account = msm.add_account(store, "alpha", account_name="Alpha Fund", group="core")
    model = msm.add_allocation_model(store, "balanced", allocation_model_description="balanced mandate")
    allocation = msm.add_allocation(store, "alpha-main", account="alpha", model="balanced", display_name="Alpha main")
    return Seeded(store, assets, portfolio, group, account, model, allocation)


@pytest.fixture(scope="session")
def _seeded_template(tmp_path_factory: pytest.TempPathFactory, _migrated_template: Path) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("template") / "seeded.duckdb"
    _copy_database(_migrated_template, path)
    return path, _seed(Store(path))


@pytest.fixture
def seeded(db_path: Path, _seeded_template: tuple[Path, Seeded]) -> Seeded:
    """``store`` with BTC/ETH/SOL, CRYPTO-EW, group core, account alpha, model balanced, allocation alpha-main.

    A copy of a database seeded once per session: the uids are the same in every test.
    """
    template, data = _seeded_template
    return _clone(template, data, db_path)


def _clone(template: Path, data: Seeded, target: Path) -> Seeded:
    _copy_database(template, target)
    fields = {f.name: copy.deepcopy(getattr(data, f.name)) for f in dataclasses.fields(data) if f.name != "store"}
    return Seeded(store=Store(target), **fields)


@pytest.fixture(scope="session")
def _seeded_variants(
    tmp_path_factory: pytest.TempPathFactory, _seeded_template: tuple[Path, Seeded]
) -> Callable[..., Any]:
    cache: dict[str, tuple[Path, Seeded, Any]] = {}

    def build(name: str, setup: Callable[[Seeded], Any]) -> tuple[Path, Seeded, Any]:
        if name not in cache:
            path = tmp_path_factory.mktemp("variant") / f"{name}.duckdb"
            data = _clone(*_seeded_template, path)
            cache[name] = (path, data, setup(data))
        return cache[name]

    return build


@pytest.fixture
def seeded_with(
    tmp_path: Path, _seeded_variants: Callable[..., Any]
) -> Callable[[str, Callable[[Seeded], Any]], tuple[Seeded, Any]]:
    """``seeded_with(name, setup)`` -> ``(seeded, setup's result)`` on a fresh copy of a cached database.

    ``setup(seeded)`` adds content to a copy of the ``seeded`` database; it runs once per session
    per ``name`` (so a name must always mean the same setup), and every test gets its own copy.
    """
    counter = iter(range(1_000_000))

    def make(name: str, setup: Callable[[Seeded], Any]) -> tuple[Seeded, Any]:
        path, data, result = _seeded_variants(name, setup)
        return _clone(path, data, tmp_path / f"{name}-{next(counter)}.duckdb"), copy.deepcopy(result)

    return make


def _apply_upto(store: Store, upto: Mapping[str, int], sets: tuple[MigrationSet, ...]) -> None:
    """Apply each namespace's migrations up to ``upto[namespace]``, recording them like ``migrate`` does."""
    with store.connect() as con:
        con.execute(_migrations._BOOKKEEPING)
        for mset in sets:
            for mig in mset.migrations:
                if mig.version > upto.get(mset.namespace, 0):
                    continue
                con.execute("BEGIN TRANSACTION")
                mig.apply(con)
                con.execute(
                    "INSERT INTO schema_migrations (namespace, version, name) VALUES (?, ?, ?)",
                    [mig.namespace, mig.version, mig.name],
                )
                con.execute("COMMIT")


@pytest.fixture
def store_at(tmp_path: Path) -> Callable[..., Store]:
    """Factory: ``store_at({"msm": 1})`` -> a new database file migrated only that far."""
    counter = iter(range(1_000_000))

    def make(
        upto: Mapping[str, int], *, sets: tuple[MigrationSet, ...] = (MSM_MIGRATIONS,), name: str | None = None
    ) -> Store:
        s = Store(tmp_path / (name or f"at-{next(counter)}.duckdb"))
        _apply_upto(s, upto, sets)
        return s

    return make


def table_contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every user table (schema ``main``) with its rows, sorted, as plain tuples (via Arrow)."""
    contents = {}
    with store.connect() as con:
        tables = fetch(con, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name")[
            "table_name"
        ]
        for table in tables:
            frame = fetch(con, f"SELECT * FROM {quote_ident(table)}")
            contents[table] = sorted((tuple(row) for row in frame.rows()), key=repr)
    return contents


@pytest.fixture
def db_contents() -> Callable[[Store], dict[str, list[tuple[Any, ...]]]]:
    """``db_contents(store)``: every table's rows, for before/after comparisons."""
    return table_contents


def columns_of(store: Store, table: str) -> list[str]:
    frame = store.query(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    )
    return frame["column_name"].to_list()


@pytest.fixture
def table_columns() -> Callable[[Store, str], list[str]]:
    """``table_columns(store, table)``: the table's column names in order."""
    return columns_of
