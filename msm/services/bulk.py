"""Bulk reference data: one vectorized import per registry entity (design section 6).

``import_reference(store, "assets", frame)`` validates a whole frame (a file read by
:func:`msm.io.read_table_file`, or rows) with every rule of the single-row path, reports *every*
bad row at once (row, field, value, rule), and then writes all rows in one transaction, or none.

Entities and their file columns (the table's own column names; references by business key):

========================  ==============================================================================
``assets``                ``unique_identifier``\\*, ``name``, ``ticker``, ``asset_type``, ``metadata_json``
``portfolios``            ``unique_identifier``\\*, ``portfolio_name``, ``metadata_json``
``account_groups``        ``group_name``\\*, ``group_description``, ``metadata_json``
``accounts``              ``unique_identifier``\\*, ``account_name``\\*, ``is_paper``, ``account_is_active``,
                          ``group`` (group name), ``metadata_json``
``allocation_models``     ``allocation_model_name``\\*, ``allocation_model_description``, ``metadata_json``
``allocations``           ``unique_identifier``\\*, ``account``\\* (account unique identifier), ``model``\\*
                          (allocation model name), ``display_name``, ``is_active``, ``source``, ``metadata_json``
========================  ==============================================================================

(\\* required.) Text is stripped; an empty cell is "not given": a new row gets the default (null
text, ``true`` for the flags) and, with ``upsert``, an existing row keeps its stored value, as it
does for a column the file does not have. So an import never blanks a field by accident. Flags
take ``true``/``false`` (also ``yes``/``no``, ``1``/``0``). A row whose key already exists is
refused unless ``upsert``; with it, the row's given values replace the stored ones (the row
counts as ``unchanged`` when they are equal). Keys, and a target allocation's account and model,
never change on an existing row.

>>> import msm
>>> store = msm.Store(":memory:"); _ = msm.migrate(store)
>>> rows = [{"unique_identifier": "BTC", "name": "Bitcoin"}, {"unique_identifier": "ETH", "asset_type": "crypto"}]
>>> import_reference(store, "assets", rows).to_dict()
{'added': 2, 'updated': 0, 'unchanged': 0}
>>> import_reference(store, "assets", [{"unique_identifier": "BTC", "ticker": "XBT"}], upsert=True).to_dict()
{'added': 0, 'updated': 1, 'unchanged': 0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from msm.errors import NO_VALUE, ConflictError, RowError, ValidationError
from msm.io import frame_from_records, read_table_file
from msm.services.registry import ACCOUNT, ALLOCATION, ASSET, GROUP, MODEL, PORTFOLIO, _Entity
from msm.store.connection import Store, fetch, quote_ident
from msm.validation import ROW, RowChecks, normalize_metadata

__all__ = ["BULK_ENTITIES", "ImportResult", "import_reference"]

_MAX_KEY = 255
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


@dataclass(frozen=True)
class _Column:
    name: str  # the file's column
    kind: str  # key | text | bool | json | ref
    required: bool = False
    ref: _Entity | None = None  # kind ref: the entity named by its business key
    target: str | None = None  # the table column (default: name)
    default: Any = None  # a new row's value when the cell is empty
    frozen: bool = False  # cannot change on an existing row

    @property
    def column(self) -> str:
        return self.target or self.name


@dataclass(frozen=True)
class _Bulk:
    entity: _Entity
    columns: tuple[_Column, ...]

    @property
    def key(self) -> _Column:
        return self.columns[0]


_META = _Column("metadata_json", "json")

#: The importable entities by name, with their file columns (the key first).
BULK_ENTITIES: dict[str, _Bulk] = {
    "assets": _Bulk(
        ASSET,
        (
            _Column("unique_identifier", "key", True),
            _Column("name", "text"),
            _Column("ticker", "text"),
            _Column("asset_type", "text"),
            _META,
        ),
    ),
    "portfolios": _Bulk(
        PORTFOLIO, (_Column("unique_identifier", "key", True), _Column("portfolio_name", "text"), _META)
    ),
    "account_groups": _Bulk(GROUP, (_Column("group_name", "key", True), _Column("group_description", "text"), _META)),
    "accounts": _Bulk(
        ACCOUNT,
        (
            _Column("unique_identifier", "key", True),
            _Column("account_name", "text", True),
            _Column("is_paper", "bool", default=True),
            _Column("account_is_active", "bool", default=True),
            _Column("group", "ref", ref=GROUP, target="account_group_uid"),
            _META,
        ),
    ),
    "allocation_models": _Bulk(
        MODEL, (_Column("allocation_model_name", "key", True), _Column("allocation_model_description", "text"), _META)
    ),
    "allocations": _Bulk(
        ALLOCATION,
        (
            _Column("unique_identifier", "key", True),
            _Column("account", "ref", True, ref=ACCOUNT, target="account_uid", frozen=True),
            _Column("model", "ref", True, ref=MODEL, target="account_allocation_model_uid", frozen=True),
            _Column("display_name", "text"),
            _Column("is_active", "bool", default=True),
            _Column("source", "text"),
            _META,
        ),
    ),
}

#: Table columns a file might carry by mistake, and what to give instead.
_INSTEAD = {
    "uid": "uids are assigned by the database; leave the column out",
    "account_group_uid": "name the group in a `group` column (its group_name)",
    "account_uid": "name the account in an `account` column (its unique_identifier)",
    "account_allocation_model_uid": "name the model in a `model` column (its allocation_model_name)",
    "asset_identifier": "assets are keyed by `unique_identifier`",
}


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, with ``dry_run``, would do), row by row."""

    entity: str
    added: int
    updated: int
    unchanged: int
    rows: pl.DataFrame  # row (1-based), the key column, action: add | update | unchanged
    dry_run: bool = False

    def to_dict(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged}


def import_reference(
    store: Store,
    entity: str,
    source: pl.DataFrame | str | Path | Sequence[Mapping[str, Any]],
    *,
    upsert: bool = False,
    dry_run: bool = False,
    sheet: str | None = None,
) -> ImportResult:
    """Validate ``source`` (a frame, a file path, or rows) as ``entity`` rows and write them in one transaction.

    Raises :class:`ValidationError` naming every bad row (nothing is written); ``dry_run``
    validates against the database and returns the plan without writing.
    """
    spec = BULK_ENTITIES.get(entity)
    if spec is None:
        raise ValidationError.single(
            "import", "entity", entity, f"is not importable; use one of {', '.join(BULK_ENTITIES)}"
        )
    label = spec.entity.label
    if isinstance(source, (str, Path)):
        frame = read_table_file(source, entity=f"{label} file", sheet=sheet)
    elif isinstance(source, pl.DataFrame):
        frame = source
    else:
        frame = frame_from_records([dict(r) for r in source])
    frame = _check_columns(spec, frame)
    checks = RowChecks(label)
    frame = _normalize(spec, frame, checks)
    with store.connect() as con:
        frame = _resolve(spec, frame, checks, con, upsert=upsert)
        checks.raise_found(frame, summary=f"{label} import")
        result = _plan(spec, entity, frame, dry_run=dry_run)
    if not dry_run and result.added + result.updated:
        _write(spec, frame, store)
    return result


# -- columns and cells -----------------------------------------------------------------------------
def _check_columns(spec: _Bulk, frame: pl.DataFrame) -> pl.DataFrame:
    label, names = spec.entity.label, [c.name for c in spec.columns]
    errors = []
    for column in frame.columns:
        if column not in names and not column.startswith("__"):
            hint = _INSTEAD.get(column, f"allowed: {', '.join(names)}")
            errors.append(RowError(label, None, column, NO_VALUE, f"is not a column of a {label} file; {hint}"))
    for column in spec.columns:
        if column.required and column.name not in frame.columns:
            errors.append(RowError(label, None, column.name, NO_VALUE, "column is missing (required)"))
    if frame.height == 0 and not errors:
        errors.append(RowError(label, None, "rows", NO_VALUE, "the file has no rows"))
    if errors:
        raise ValidationError(errors, summary=f"{label} import: the file's columns do not fit; nothing was stored")
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return frame


def _text(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def _normalize(spec: _Bulk, frame: pl.DataFrame, checks: RowChecks) -> pl.DataFrame:
    """Cells to their column's kind (text stripped, flags as booleans, metadata as JSON object text)."""
    label, bad = spec.entity.label, checks.bad
    errors = []
    for column in spec.columns:
        name = column.name
        if name not in frame.columns:
            continue
        dtype = frame.schema[name]
        if column.kind == "json":
            frame = normalize_metadata(frame, bad)
        elif column.kind == "bool":
            if dtype == pl.Boolean:
                continue
            if dtype == pl.String or dtype.is_integer() or dtype == pl.Null:
                given = _text(name).str.to_lowercase()
                frame = frame.with_columns(
                    _text(name).alias(f"__given_{name}"),
                    pl.when(given.is_in(_TRUE)).then(True).when(given.is_in(_FALSE)).then(False).alias(name),
                )
                bad(
                    pl.col(f"__given_{name}").is_not_null() & pl.col(name).is_null(),
                    name,
                    "must be true or false (also yes/no, 1/0)",
                    value=pl.col(f"__given_{name}"),
                )
            else:
                errors.append(
                    RowError(label, None, name, NO_VALUE, f"must hold true/false values, got a {dtype} column")
                )
        elif dtype == pl.String or dtype.is_integer() or dtype == pl.Null:
            frame = frame.with_columns(_text(name).alias(name))
        else:
            errors.append(RowError(label, None, name, NO_VALUE, f"must hold text, got a {dtype} column"))
    if errors:
        raise ValidationError(errors, summary=f"{label} import: the file's columns do not fit; nothing was stored")

    key = spec.key.name
    named = [c.name for c in spec.columns if c.name in frame.columns]
    bad(
        pl.all_horizontal(pl.col(c).cast(pl.String) == c for c in named),
        key,
        "repeats the header row (a second header, or a file pasted twice); remove that row",
        value=pl.lit(None, pl.String),
    )
    for column in spec.columns:
        if column.required:
            bad(pl.col(column.name).is_null(), column.name, "must not be empty", value=pl.lit(None, pl.String))
        if column.kind == "key" or (column.required and column.kind == "text"):
            bad(pl.col(column.name).str.len_chars() > _MAX_KEY, column.name, f"is longer than {_MAX_KEY} characters")
    first = pl.col(ROW).min().over(key)
    bad(
        pl.col(key).is_not_null() & (pl.col(ROW) > first),
        key,
        pl.lit(f"duplicate {key} in the file; first given at row ") + first.cast(pl.String),
    )
    if "asset_type" in frame.columns:
        bad(
            pl.col("asset_type").str.to_lowercase() == "portfolio",
            "asset_type",
            "an asset never represents a portfolio; import it as a portfolio (msm portfolios import) instead",
        )
    return frame


# -- the database: references and existing rows ----------------------------------------------------
def _lookup(
    con: duckdb.DuckDBPyConnection, entity: _Entity, values: pl.Series, *, extra: Sequence[str] = ()
) -> pl.DataFrame:
    """``(key, uid, *extra)`` of ``entity``'s rows whose business key is one of ``values``."""
    con.register("__bulk_keys", pl.DataFrame({"k": values.cast(pl.String).drop_nulls().unique()}).to_arrow())
    try:
        columns = ", ".join(
            f"t.{quote_ident(c)}" + ("::VARCHAR" if c.endswith("_uid") else "") + f" AS {quote_ident(c)}" for c in extra
        )
        return fetch(
            con,
            f"SELECT t.{quote_ident(entity.key)} AS k, t.uid::VARCHAR AS uid{', ' + columns if columns else ''} "
            f"FROM {quote_ident(entity.table)} AS t SEMI JOIN __bulk_keys AS b ON t.{quote_ident(entity.key)} = b.k",
        )
    finally:
        con.unregister("__bulk_keys")


def _resolve(
    spec: _Bulk, frame: pl.DataFrame, checks: RowChecks, con: duckdb.DuckDBPyConnection, *, upsert: bool
) -> pl.DataFrame:
    label, bad, key = spec.entity.label, checks.bad, spec.key.name
    given = [c for c in spec.columns if c.name in frame.columns]
    for column in (c for c in given if c.kind == "ref"):
        assert column.ref is not None
        found = _lookup(con, column.ref, frame[column.name]).select(
            pl.col("k").alias(column.name), pl.col("uid").alias(column.column)
        )
        frame = frame.join(found, on=column.name, how="left", maintain_order="left")
        bad(
            pl.col(column.name).is_not_null() & pl.col(column.column).is_null(),
            column.name,
            f"no {column.ref.label} has this {column.ref.key}; add it first",
        )

    stored = [c.column for c in given if c.kind != "key"]
    existing = _lookup(con, spec.entity, frame[key], extra=stored)
    existing = existing.rename({"k": key, "uid": "__uid", **{c: f"__stored_{c}" for c in stored}})
    frame = frame.join(existing, on=key, how="left", maintain_order="left")
    exists = pl.col("__uid").is_not_null()
    if not upsert:
        bad(exists, key, f"a {label} with this {key} already exists; pass --upsert (upsert=True) to update it")
        return frame
    for column in (c for c in given if c.frozen):
        bad(
            exists
            & pl.col(column.column).is_not_null()
            & (pl.col(column.column) != pl.col(f"__stored_{column.column}")),
            column.name,
            f"cannot be changed on an existing {label}; create a new {label} instead",
        )
    if spec.entity is ACCOUNT and "group" in frame.columns:
        frame = _refuse_group_moves(frame, checks, con)
    return frame


def _refuse_group_moves(frame: pl.DataFrame, checks: RowChecks, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    # DuckDB rewrites a row whose foreign-key column changes and refuses that while other rows
    # reference it, so an account with target allocations cannot change group (docs/architecture.md).
    moves = frame.filter(
        pl.col("__uid").is_not_null()
        & pl.col("account_group_uid").is_not_null()
        & (pl.col("account_group_uid") != pl.col("__stored_account_group_uid").fill_null(""))
    )
    if moves.height == 0:
        return frame.with_columns(pl.lit(0, pl.Int64).alias("__allocations"))
    con.register("__bulk_moves", moves.select(pl.col("__uid").alias("uid")).to_arrow())
    try:
        counts = fetch(
            con,
            "SELECT m.uid, count(*) AS n FROM __bulk_moves AS m JOIN account_target_allocation AS a "
            "ON a.account_uid = m.uid::UUID GROUP BY m.uid",
        )
    finally:
        con.unregister("__bulk_moves")
    counts = counts.select(pl.col("uid").alias("__uid"), pl.col("n").cast(pl.Int64).alias("__allocations"))
    frame = frame.join(counts, on="__uid", how="left", maintain_order="left").with_columns(
        pl.col("__allocations").fill_null(0)
    )
    checks.bad(
        (pl.col("__allocations") > 0)
        & (pl.col("account_group_uid") != pl.col("__stored_account_group_uid").fill_null("")),
        "group",
        pl.lit("cannot move an account that has ")
        + pl.col("__allocations").cast(pl.String)
        + pl.lit(" target allocation(s) to another group (a DuckDB foreign-key limitation, see docs/architecture.md)"),
    )
    return frame


# -- plan and write --------------------------------------------------------------------------------
def _changed(spec: _Bulk, frame: pl.DataFrame) -> pl.Expr:
    """True for existing rows where a given cell differs from the stored value."""
    diffs = [
        pl.col(c.column).is_not_null()
        & (pl.col(c.column).cast(pl.String) != pl.col(f"__stored_{c.column}").cast(pl.String)).fill_null(True)
        for c in spec.columns
        if c.kind != "key" and c.name in frame.columns
    ]
    return pl.any_horizontal(diffs) if diffs else pl.lit(False)


def _plan(spec: _Bulk, entity: str, frame: pl.DataFrame, *, dry_run: bool) -> ImportResult:
    key = spec.key.name
    action = (
        pl.when(pl.col("__uid").is_null())
        .then(pl.lit("add"))
        .when(_changed(spec, frame))
        .then(pl.lit("update"))
        .otherwise(pl.lit("unchanged"))
    )
    rows = frame.select(pl.col(ROW).alias("row"), pl.col(key), action.alias("action"))
    counts = rows["action"].value_counts()
    n = dict(zip(counts["action"].to_list(), counts["count"].to_list()))
    return ImportResult(entity, n.get("add", 0), n.get("update", 0), n.get("unchanged", 0), rows, dry_run)


def _write(spec: _Bulk, frame: pl.DataFrame, store: Store) -> None:
    table, label = quote_ident(spec.entity.table), spec.entity.label
    given = [c for c in spec.columns if c.name in frame.columns]
    columns = [c.column for c in given]
    updates = frame.filter(pl.col("__uid").is_not_null() & _changed(spec, frame))
    # Columns that are never indexed: set from the file where a cell is given (COALESCE keeps the rest).
    plain = [c.column for c in given if c.kind not in ("key", "ref")]
    moved = [c.column for c in given if c.kind == "ref" and not c.frozen]  # a foreign key: only rows where it changes
    inserts = frame.filter(pl.col("__uid").is_null())
    defaults = {c.column: c.default for c in spec.columns if c.default is not None}
    new_columns = ["uid", *dict.fromkeys([*columns, *defaults])]

    def value(column: str) -> str:
        cast = "::JSON" if column == "metadata_json" else ("::UUID" if column.endswith("_uid") else "")
        if column not in columns:
            return "true" if defaults[column] is True else "false"
        if column in defaults:
            return f"COALESCE(n.{quote_ident(column)}, {'true' if defaults[column] else 'false'})"
        return f"n.{quote_ident(column)}{cast}"

    try:
        with store.transaction() as con:
            if updates.height and plain:
                con.register("__bulk_updates", updates.select(pl.col("__uid").alias("uid"), *plain).to_arrow())
                sets = ", ".join(
                    f"{quote_ident(c)} = COALESCE(u.{quote_ident(c)}{'::JSON' if c == 'metadata_json' else ''}, t.{quote_ident(c)})"
                    for c in plain
                )
                con.execute(f"UPDATE {table} AS t SET {sets} FROM __bulk_updates AS u WHERE t.uid = u.uid::UUID")
            for column in moved:
                changes = updates.filter(
                    pl.col(column).is_not_null() & (pl.col(column) != pl.col(f"__stored_{column}").fill_null(""))
                )
                if changes.height:
                    con.register(
                        "__bulk_moves",
                        changes.select(pl.col("__uid").alias("uid"), pl.col(column).alias("v")).to_arrow(),
                    )
                    con.execute(
                        f"UPDATE {table} AS t SET {quote_ident(column)} = m.v::UUID FROM __bulk_moves AS m WHERE t.uid = m.uid::UUID"
                    )
            if inserts.height:
                con.register("__bulk_new", inserts.select(*columns).to_arrow())
                con.execute(
                    f"INSERT INTO {table} ({', '.join(quote_ident(c) for c in new_columns)}) "
                    f"SELECT gen_random_uuid(), {', '.join(value(c) for c in new_columns[1:])} FROM __bulk_new AS n"
                )
            for name in ("__bulk_updates", "__bulk_moves", "__bulk_new"):
                con.unregister(name)  # a no-op for a name that was not registered
    except duckdb.Error as exc:
        detail = str(exc).split("\n")[0].removeprefix("Constraint Error: ")
        raise ConflictError(f"{label} import refused by the database, nothing was stored: {detail}") from None
