"""Rebuilding tables that foreign keys reference, inside one migration's transaction.

DuckDB cannot add a CHECK to an existing table (neither ``ADD CONSTRAINT`` nor ``ADD COLUMN ...
CHECK``), and it cannot drop, rename or alter a table while another table's foreign key references
it. A migration that gives a table new rules therefore rebuilds it, and every table that
references it, directly or through other tables (whatever namespace created them: a core migration
rebuilding ``asset`` also rebuilds ``msm_portfolios``'s ``portfolio_weights`` when it exists,
without knowing about it).

:func:`rebuilding` does the generic part around the migration's own SQL:

1. it finds the *dependents* (tables whose foreign keys reach a rebuilt table) and keeps their
   definitions and indexes as DuckDB reports them (``duckdb_tables().sql``, ``duckdb_indexes().sql``);
2. it copies the rows of the rebuilt tables and of the dependents into temporary tables named
   ``_rebuild_<table>``, then drops the dependents (referencing tables first) and the rebuilt tables;
3. the migration's SQL runs: it creates each rebuilt table in its new shape and fills it from
   ``_rebuild_<table>`` (it alone knows how old rows map to the new columns);
4. it recreates the dependents exactly as they were, restores their rows and their indexes, checks
   that every rebuilt table holds as many rows as it did (no row is ever dropped on the way), and
   drops the temporary tables.

Everything happens on the caller's connection, inside the caller's transaction: when any step
fails (a refusal in the SQL, a constraint a restored row breaks), the rollback leaves the database
exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from msm.store.connection import quote_ident

__all__ = ["STASH_PREFIX", "rebuilding"]

#: The temporary copy of table ``t`` is ``_rebuild_t`` while the migration's SQL runs.
STASH_PREFIX = "_rebuild_"

_MAIN = "database_name = current_database() AND schema_name = 'main'"


@dataclass(frozen=True)
class _Saved:
    """A table's definition and explicit indexes, as DuckDB reports them."""

    name: str
    sql: str
    indexes: tuple[tuple[str, str], ...]  # (index name, CREATE INDEX statement)


@contextmanager
def rebuilding(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> Iterator[None]:
    """Around a body that recreates ``tables``: stash and drop them and their dependents; restore after."""
    references = _references(con)
    missing = [t for t in tables if t not in _tables(con)]
    if missing:
        raise duckdb.CatalogException(f"cannot rebuild {', '.join(missing)}: no such table")
    dependents = _dependents(references, set(tables))
    saved = [_save(con, name) for name in [*tables, *dependents]]
    counts = {}
    for item in saved:
        con.execute(
            f"CREATE TEMP TABLE {quote_ident(STASH_PREFIX + item.name)} AS SELECT * FROM {quote_ident(item.name)}"
        )
        ((counts[item.name],),) = con.execute(f"SELECT count(*) FROM {quote_ident(item.name)}").fetchall()
    for name in reversed(_ordered(references, [*tables, *dependents])):
        con.execute(f"DROP TABLE {quote_ident(name)}")
    yield
    for item in saved[len(tables) :]:  # the dependents, parents first
        con.execute(item.sql)
        con.execute(f"INSERT INTO {quote_ident(item.name)} SELECT * FROM {quote_ident(STASH_PREFIX + item.name)}")
    present = _index_names(con)
    for item in saved:
        for name, sql in item.indexes:
            if name not in present:
                con.execute(sql)
    _check_counts(con, counts)
    for item in saved:
        con.execute(f"DROP TABLE {quote_ident(STASH_PREFIX + item.name)}")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute(f"SELECT table_name FROM duckdb_tables() WHERE {_MAIN}").fetchall()}


def _references(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Table -> the tables its foreign keys reference (self-references left out)."""
    rows = con.execute(
        "SELECT table_name, referenced_table FROM duckdb_constraints() "
        f"WHERE {_MAIN} AND constraint_type = 'FOREIGN KEY'"
    ).fetchall()
    graph: dict[str, set[str]] = {}
    for table, referenced in rows:
        if table != referenced:
            graph.setdefault(table, set()).add(referenced)
    return graph


def _dependents(references: dict[str, set[str]], rebuilt: set[str]) -> list[str]:
    """Every table whose foreign keys reach a rebuilt table, parents before children."""
    reached = set(rebuilt)
    grew = True
    while grew:
        grew = False
        for table, parents in references.items():
            if table not in reached and parents & reached:
                reached.add(table)
                grew = True
    return _ordered(references, sorted(reached - rebuilt))


def _ordered(references: dict[str, set[str]], tables: Sequence[str]) -> list[str]:
    """``tables`` with every table after the tables (among them) it references."""
    pending, done = list(tables), []
    while pending:
        ready = [t for t in pending if not (references.get(t, set()) & set(pending)) - {t}]
        if not ready:  # a cycle of foreign keys: DuckDB cannot create one either
            raise duckdb.CatalogException(f"foreign keys form a cycle among {', '.join(pending)}")
        done.extend(ready)
        pending = [t for t in pending if t not in ready]
    return done


def _save(con: duckdb.DuckDBPyConnection, name: str) -> _Saved:
    ((sql,),) = con.execute(f"SELECT sql FROM duckdb_tables() WHERE {_MAIN} AND table_name = ?", [name]).fetchall()
    indexes = con.execute(
        f"SELECT index_name, sql FROM duckdb_indexes() WHERE {_MAIN} AND table_name = ? ORDER BY index_name", [name]
    ).fetchall()
    return _Saved(name, sql, tuple((index, text) for index, text in indexes))


def _index_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute(f"SELECT index_name FROM duckdb_indexes() WHERE {_MAIN}").fetchall()}


def _check_counts(con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> None:
    for name, before in counts.items():
        ((after,),) = con.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchall()
        if after != before:
            raise duckdb.ConstraintException(
                f"rebuilding {name} would change its row count from {before} to {after}; no row may be lost"
            )
