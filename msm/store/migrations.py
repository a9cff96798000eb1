"""Numbered SQL migrations per namespace, recorded in ``schema_migrations``.

Each package owns a series of files ``<namespace>_<NNNN>_<name>.sql`` (``msm_0001_...``). They are
applied in order, each in its own transaction together with its ``schema_migrations`` record, so
a failed migration changes nothing and a re-run is a no-op. A database that records a version this
code does not know (it was migrated by newer code) is refused, never touched.

Core ``msm`` knows only its own series, :data:`MSM_MIGRATIONS`; ``msm_portfolios`` adds its own
and callers pass the series they need (``msm_portfolios.MIGRATIONS`` lists both, in order).

A migration that gives existing tables new CHECKs declares them in a header line of its file,
``-- rebuilds: asset, account``: DuckDB can neither add a CHECK to a table nor drop a table that a
foreign key references, so those tables and every table referencing them are rebuilt around the
migration's SQL (:mod:`msm.store.rebuild`), in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from importlib import resources

import duckdb
import polars as pl

from msm.errors import MigrationError, SchemaError
from msm.store.connection import Store, fetch
from msm.store.rebuild import rebuilding

__all__ = [
    "MSM_MIGRATIONS",
    "AppliedMigration",
    "Migration",
    "MigrationSet",
    "check_schema",
    "migrate",
    "schema_versions",
]

_FILE = re.compile(r"^(?P<ns>[a-z_]+?)_(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_REBUILDS = re.compile(r"^-- rebuilds: (?P<tables>[a-z_, ]+)$", re.MULTILINE)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace  VARCHAR NOT NULL,
    version    INTEGER NOT NULL,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, version)
)
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file of a namespace."""

    namespace: str
    version: int
    name: str
    sql: str

    @property
    def rebuilds(self) -> tuple[str, ...]:
        """The existing tables this migration recreates (its ``-- rebuilds: a, b`` header line)."""
        match = _REBUILDS.search(self.sql)
        return tuple(t.strip() for t in match["tables"].split(",") if t.strip()) if match else ()

    def apply(self, con: duckdb.DuckDBPyConnection) -> None:
        """Run the migration's SQL on ``con`` (inside the caller's transaction), rebuilding what it declares."""
        if not self.rebuilds:
            con.execute(self.sql)
            return
        with rebuilding(con, self.rebuilds):
            con.execute(self.sql)


@dataclass(frozen=True)
class AppliedMigration:
    """A migration recorded in ``schema_migrations``."""

    namespace: str
    version: int
    name: str
    applied_at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.namespace} {self.version:04d} {self.name}"


@dataclass(frozen=True)
class MigrationSet:
    """The migrations of one namespace, read from the ``sql`` folder of ``package``."""

    namespace: str
    package: str

    @cached_property
    def migrations(self) -> tuple[Migration, ...]:
        """The namespace's migrations in version order (refused when the numbers have a gap)."""
        found = []
        for entry in resources.files(self.package).iterdir():
            match = _FILE.match(entry.name)
            if match and match["ns"] == self.namespace:
                found.append(
                    Migration(self.namespace, int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
                )
        found.sort(key=lambda m: m.version)
        versions = [m.version for m in found]
        if versions != list(range(1, len(found) + 1)):
            raise SchemaError.misnumbered(self.namespace, versions)
        return tuple(found)

    @property
    def latest(self) -> int:
        """The highest version of the namespace (0 when it has no migration)."""
        return self.migrations[-1].version if self.migrations else 0


MSM_MIGRATIONS = MigrationSet("msm", "msm.store.sql")


def schema_versions(store: Store) -> dict[str, int]:
    """The highest applied version per namespace (empty for a new database)."""
    if not store.exists:
        return {}
    with store.connect() as con:
        return _versions(con)


def _versions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    ((exists,),) = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_migrations' AND table_schema = 'main'"
    ).fetchall()
    if not exists:
        return {}
    rows = con.execute("SELECT namespace, max(version) FROM schema_migrations GROUP BY namespace").fetchall()
    return {ns: int(v) for ns, v in rows}


def _refuse_newer(current: dict[str, int], sets: tuple[MigrationSet, ...], path: str) -> None:
    for mset in sets:
        have = current.get(mset.namespace, 0)
        if have > mset.latest:
            raise SchemaError.newer(path, mset.namespace, have, mset.latest)


def migrate(
    store: Store, sets: tuple[MigrationSet, ...] | list[MigrationSet] = (MSM_MIGRATIONS,)
) -> list[AppliedMigration]:
    """Apply every pending migration of ``sets``, in order; return what was applied (maybe nothing)."""
    sets = tuple(sets)
    applied: list[AppliedMigration] = []
    with store.connect() as con:
        con.execute(_BOOKKEEPING)
        current = _versions(con)
        _refuse_newer(current, sets, store.path)
        for mset in sets:
            for mig in mset.migrations:
                if mig.version <= current.get(mset.namespace, 0):
                    continue
                con.execute("BEGIN TRANSACTION")
                try:
                    mig.apply(con)
                    con.execute(
                        "INSERT INTO schema_migrations (namespace, version, name) VALUES (?, ?, ?)",
                        [mig.namespace, mig.version, mig.name],
                    )
                except duckdb.Error as exc:
                    con.execute("ROLLBACK")
                    detail = str(exc).split("\n")[0]
                    detail = re.sub(r"^[A-Za-z ]+Error: ", "", detail)
                    raise MigrationError(mig.namespace, mig.version, mig.name, detail, path=store.path) from None
                con.execute("COMMIT")
                applied.append(AppliedMigration(mig.namespace, mig.version, mig.name))
    return applied


def check_schema(store: Store, sets: tuple[MigrationSet, ...] | list[MigrationSet] = (MSM_MIGRATIONS,)) -> None:
    """Raise :class:`SchemaError` unless the database has exactly the migrations of ``sets``."""
    sets = tuple(sets)
    if not store.exists:
        raise SchemaError.missing(store.path)
    current = schema_versions(store)
    _refuse_newer(current, sets, store.path)
    behind = {
        s.namespace: (current.get(s.namespace, 0), s.latest) for s in sets if current.get(s.namespace, 0) < s.latest
    }
    if behind:
        raise SchemaError.needs_migrations(store.path, behind)


def applied_migrations(store: Store) -> pl.DataFrame:
    """Every recorded migration, oldest first."""
    with store.connect() as con:
        if not _versions(con):
            return pl.DataFrame(schema={"namespace": pl.String, "version": pl.Int32, "name": pl.String})
        return fetch(
            con,
            "SELECT namespace, version, name, applied_at FROM schema_migrations "
            "ORDER BY applied_at, namespace, version",
        )
