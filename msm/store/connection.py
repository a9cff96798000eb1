"""The one module that owns DuckDB connections.

Connection policy: the database file may be open at once in the app, a notebook and a script.
DuckDB lets one process write a file, and a process that has it open read-write blocks every other
process. So :class:`Store` never keeps a connection: each read or write opens the file, does its
work and closes it. When another process holds the file, opening is retried with a short backoff
for ``busy_timeout`` seconds, then :class:`~msm.errors.StoreBusyError` says who holds it.

A store opened with ``read_only=True`` (what :func:`msm.open` does by default) opens the file with
DuckDB's read-only mode: it never creates the file, refuses :meth:`Store.transaction` (the write
path) and turns DuckDB's refusal of any other write into :class:`~msm.errors.StoreReadOnlyError`,
which says how to open the file for writing.

Every query goes through :meth:`Store.query` / :meth:`Store.execute` (or a connection from
:meth:`Store.transaction`) with parameters; no user text is ever formatted into SQL.
Identifiers (table and column names, which only ever come from code) go through :func:`quote_ident`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from msm.errors import StoreBusyError, StoreOpenError, StoreReadOnlyError

__all__ = ["DEFAULT_DB", "Store", "default_db_path", "quote_ident"]

DEFAULT_DB = "data/msm.duckdb"
_LOCK_MESSAGE = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")
_READ_ONLY_REFUSAL = re.compile(r'Cannot execute statement of type "(?P<kind>\w+)" .* attached in read-only mode')

Params = Sequence[Any] | Mapping[str, Any] | None


def default_db_path() -> str:
    """``$MSM_DB`` when set, else ``data/msm.duckdb``."""
    return os.environ.get("MSM_DB") or DEFAULT_DB


def quote_ident(name: str) -> str:
    """Quote a SQL identifier (a table or column name that comes from code, never from a user)."""
    return '"' + name.replace('"', '""') + '"'


class Store:
    """A DuckDB database file (or ``":memory:"``) and the policy for reaching it.

    >>> store = Store(":memory:")
    >>> store.query("SELECT 1 + ? AS answer", [41])
    shape: (1, 1)
    ┌────────┐
    │ answer │
    │ ---    │
    │ i32    │
    ╞════════╡
    │ 42     │
    └────────┘

    ``":memory:"`` keeps one connection for the life of the object (there is no file to reopen).
    ``read_only=True`` opens the file in DuckDB's read-only mode and refuses every write with
    :class:`~msm.errors.StoreReadOnlyError` (an in-memory database cannot be read-only).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 10.0, read_only: bool = False
    ) -> None:
        self.path = str(path) if path is not None else default_db_path()
        self.busy_timeout = busy_timeout
        self.read_only = read_only
        if read_only and self.path == ":memory:":
            raise StoreOpenError(
                self.path,
                "an in-memory database cannot be opened read-only (it starts empty and could never be filled); "
                "open it with read_only=False",
            )
        self._local = threading.local()
        self._memory = duckdb.connect(":memory:") if self.path == ":memory:" else None
        if self._memory is not None:
            _configure(self._memory)

    def __repr__(self) -> str:
        return f"Store({self.path!r}, read_only=True)" if self.read_only else f"Store({self.path!r})"

    @property
    def exists(self) -> bool:
        """Whether the database is there (always for ``":memory:"``; for a file, whether it exists)."""
        return self._memory is not None or Path(self.path).exists()

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; closed (and the file released) when the outermost block ends.

        Nested ``connect()`` / ``transaction()`` blocks in the same thread reuse the open
        connection, so one service call opens the file once however many helpers it calls.
        """
        local = self._local
        if getattr(local, "con", None) is not None:
            local.depth += 1
            try:
                yield local.con
            finally:
                local.depth -= 1
            return
        if self._memory is not None:
            con = self._memory.cursor()
        else:
            con = self._open_with_retry()
        local.con, local.depth, local.in_transaction = con, 1, False
        try:
            yield con
        except duckdb.Error as exc:
            refused = _READ_ONLY_REFUSAL.search(str(exc)) if self.read_only else None
            if refused is None:
                raise
            raise StoreReadOnlyError(self.path, f"a statement of type {refused['kind']}") from None
        finally:
            local.con = None
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside ``BEGIN`` ... ``COMMIT``; any exception rolls everything back.

        Inside an open transaction of the same thread, it joins that transaction. A read-only store
        refuses it (a transaction is how every write is made) before the file is opened.
        """
        if self.read_only:
            raise StoreReadOnlyError(self.path, "a write (a transaction)")
        with self.connect() as con:
            if self._local.in_transaction:
                yield con
                return
            con.execute("BEGIN TRANSACTION")
            self._local.in_transaction = True
            try:
                yield con
            except BaseException:
                self._local.in_transaction = False
                con.execute("ROLLBACK")
                raise
            self._local.in_transaction = False
            con.execute("COMMIT")

    def _open_with_retry(self) -> duckdb.DuckDBPyConnection:
        if self.read_only:
            if not Path(self.path).exists():
                raise StoreOpenError(
                    self.path,
                    "it does not exist (a read-only store never creates it); "
                    f"create it with `msm --db {self.path} demo` (the demo data) or `msm --db {self.path} init`",
                )
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only)
            except duckdb.Error as exc:
                if not _LOCK_MESSAGE.search(str(exc)):
                    detail = str(exc).split("\n")[0]
                    raise StoreOpenError(self.path, detail) from None
                if time.monotonic() >= deadline:
                    holder = _LOCK_HOLDER.search(str(exc))
                    raise StoreBusyError(
                        self.path,
                        int(holder["pid"]) if holder else None,
                        program=holder["prog"] if holder else None,
                        waited=self.busy_timeout,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            _configure(con)
            return con

    # -- queries ----------------------------------------------------------------------------
    def query(self, sql: str, params: Params = None) -> pl.DataFrame:
        """Run one read query with parameters; the result as a polars frame (via Arrow)."""
        with self.connect() as con:
            return fetch(con, sql, params)

    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement with parameters in its own transaction."""
        with self.transaction() as con:
            con.execute(sql, params)


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pl.DataFrame:
    """Run ``sql`` on ``con`` and return a polars frame (Arrow, zero-copy where possible)."""
    relation = con.sql(sql, params=params)
    if relation is None:
        return pl.DataFrame()
    # Through the Arrow C stream interface: zero-copy, and pyarrow is never imported for a read.
    return pl.DataFrame(relation)


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    # TIMESTAMPTZ values come back in UTC whatever the machine's zone is.
    con.execute("SET TimeZone = 'UTC'")
