"""Bulk reference data: one vectorized import per registry entity.

``import_reference(store, "assets", frame)`` validates a whole frame (a file read by
:func:`msm.io.read_table_file`, or rows) with every rule of the single-row path, reports *every*
bad row at once (row, field, value, rule), and then writes all rows in one transaction, or none.

An entity's file columns are its fields in the catalog (:mod:`msm.catalog`), named as files name
them: the table's own column names, and a reference by the referenced row's business key
(``group``: a group name, ``account``: an account unique identifier, ``model``: a model name).
The row rules (required, a flag that is true or false, a known reference, a key given once,
metadata that is a JSON object, ...) are declared from those fields as :class:`msm.rules.Rule`
values and run by the one rule engine.

>>> [c.name + ("*" if c.required else "") for c in BULK_ENTITIES["accounts"].columns]  # doctest: +NORMALIZE_WHITESPACE
['unique_identifier*', 'account_name*', 'is_paper', 'account_is_active', 'group', 'metadata_json',
 'base_currency']

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

from msm import audit
from msm.catalog import CATALOG, MAX_TEXT, Catalog, Entity
from msm.catalog import Field as CatalogField
from msm.errors import NO_VALUE, ConflictError, RowError, ValidationError
from msm.io import read_rows
from msm.rules import ROW, Rule, clean_text, enforce
from msm.services.registry import ACCOUNT_OF, foreign_keys
from msm.store.connection import Store, fetch, quote_ident
from msm.validation import metadata_rules, normalize_metadata

__all__ = ["BULK_ENTITIES", "ImportResult", "ImportSpec", "import_reference", "import_specs"]

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_NONE = pl.lit(None, pl.String)


@dataclass(frozen=True)
class ImportSpec:
    """What an import of one entity reads: its catalog entry, and its file columns (the key first)."""

    entity: Entity

    @property
    def columns(self) -> tuple[CatalogField, ...]:
        """The file's columns: the entity's fields (``name`` is the file's column, ``column`` the table's)."""
        return self.entity.fields

    @property
    def key(self) -> CatalogField:
        """The business key, which matches a file row to a stored row."""
        return self.entity.fields[0]


def import_specs(catalog: Catalog = CATALOG) -> dict[str, ImportSpec]:
    """The importable entities of ``catalog`` by import name (each entity's plural)."""
    return {e.plural: ImportSpec(e) for e in catalog}


#: The importable entities by name, with their file columns (the key first).
BULK_ENTITIES: dict[str, ImportSpec] = import_specs()


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
        """The counts: ``{"added": N, "updated": N, "unchanged": N}``."""
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged}


def import_reference(
    store: Store,
    entity: str,
    source: pl.DataFrame | str | Path | Sequence[Mapping[str, Any]],
    *,
    upsert: bool = False,
    dry_run: bool = False,
    sheet: str | None = None,
    catalog: Catalog = CATALOG,
    actor: str | None = None,
    reason: str | None = None,
) -> ImportResult:
    """Validate ``source`` (a frame, a file path, or rows) as ``entity`` rows and write them in one transaction.

    Raises :class:`ValidationError` naming every bad row (nothing is written); ``dry_run``
    validates against the database and returns the plan without writing. ``catalog`` is the
    entity catalog the import follows (the workbench's own by default). Every row added or
    updated gets its own audit event (``add`` / ``update``, the row before and after, by ``actor``
    for ``reason``), written by one ``INSERT ... SELECT`` in the import's transaction.
    """
    spec = import_specs(catalog).get(entity)
    if spec is None:
        names = ", ".join(e.plural for e in catalog)
        raise ValidationError.single("import", "entity", entity, f"is not importable; use one of {names}")
    label = spec.entity.label
    frame = read_rows(source, entity=label, sheet=sheet)
    frame = _normalize(spec, _check_columns(spec, catalog, frame))
    rules = _file_rules(spec, frame)
    with store.connect() as con:
        frame, found = _resolve(spec, catalog, frame, con, upsert=upsert)
        enforce(frame, [*rules, *found], summary=f"{label} import")
        result = _plan(spec, entity, frame, dry_run=dry_run)
    if not dry_run and result.added + result.updated:
        with audit.acting(actor, reason):
            _write(spec, frame, store)
    return result


# -- columns and cells -----------------------------------------------------------------------------
def _instead(entity: Entity, catalog: Catalog) -> dict[str, str]:
    """Table columns a file might carry by mistake, and what to give instead."""
    hints = {
        "uid": "uids are assigned by the database; leave the column out",
        "asset_identifier": "assets are keyed by `unique_identifier`",
    }
    for field in entity.references:
        hints[field.column] = f"name the {field.name} in a `{field.name}` column (its {catalog[field.ref].key})"
    return hints


def _misfit(label: str, errors: list[RowError]) -> ValidationError:
    return ValidationError(errors, summary=f"{label} import: the file's columns do not fit; nothing was stored")


def _check_columns(spec: ImportSpec, catalog: Catalog, frame: pl.DataFrame) -> pl.DataFrame:
    label, names = spec.entity.label, [c.name for c in spec.columns]
    instead = _instead(spec.entity, catalog)
    errors = []
    for column in frame.columns:
        if column not in names and not column.startswith("__"):
            hint = instead.get(column, f"allowed: {', '.join(names)}")
            errors.append(RowError(label, None, column, NO_VALUE, f"is not a column of a {label} file; {hint}"))
    for column in spec.columns:
        if column.required and column.name not in frame.columns:
            errors.append(RowError(label, None, column.name, NO_VALUE, "column is missing (required)"))
    if frame.height == 0 and not errors:
        errors.append(RowError(label, None, "rows", NO_VALUE, "the file has no rows"))
    if errors:
        raise _misfit(label, errors)
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return frame


def _textual(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype.is_integer() or dtype == pl.Null


def _normalize(spec: ImportSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Cells to their field's kind: text stripped, flags as booleans (``__given_*`` keeps the text), metadata as
    JSON object text. A column of the wrong type altogether is refused here."""
    errors = []
    for field in (f for f in spec.columns if f.name in frame.columns):
        name, dtype = field.name, frame.schema[field.name]
        if field.kind == "json":
            frame = normalize_metadata(frame)
        elif field.kind == "bool" and dtype == pl.Boolean:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(f"__given_{name}"))
        elif field.kind == "bool" and _textual(dtype):
            given = clean_text(name).str.to_lowercase()
            frame = frame.with_columns(
                clean_text(name).alias(f"__given_{name}"),
                pl.when(given.is_in(_TRUE)).then(True).when(given.is_in(_FALSE)).then(False).alias(name),
            )
        elif field.kind != "bool" and _textual(dtype):
            frame = frame.with_columns(clean_text(name).alias(name))
        else:
            wanted = "true/false values" if field.kind == "bool" else "text"
            errors.append(
                RowError(spec.entity.label, None, name, NO_VALUE, f"must hold {wanted}, got a {dtype} column")
            )
    if errors:
        raise _misfit(spec.entity.label, errors)
    return frame


# -- the row rules, declared from the catalog -------------------------------------------------------
def _field_rules(label: str, field: CatalogField) -> list[Rule]:
    """The rules on one given column that need only the file: its kind, required, length, refused values, form."""
    name, column = field.name, pl.col(field.name)
    rules = []
    if field.kind == "bool":
        rules.append(
            Rule(
                label,
                name,
                f"{name}_bool",
                "must be true or false (also yes/no, 1/0)",
                pl.col(f"__given_{name}").is_not_null() & column.is_null(),
                pl.col(f"__given_{name}"),
            )
        )
    if field.kind == "json":
        rules.extend(metadata_rules(label))
    if field.required:
        rules.append(Rule(label, name, f"{name}_required", "must not be empty", column.is_null(), _NONE))
    if field.kind == "key" or (field.required and field.kind == "text"):
        rules.append(
            Rule(
                label,
                name,
                f"{name}_length",
                f"is longer than {MAX_TEXT} characters",
                column.str.len_chars() > MAX_TEXT,
            )
        )
    if field.refuse is not None:
        refused = field.refuse
        message = f"{refused.reason}; {refused.fix_in_file}"
        bad = column.str.to_lowercase() == refused.value.lower()
        rules.append(Rule(label, name, f"{name}_refused", message, bad))
    if field.pattern is not None:
        bad = column.is_not_null() & ~column.str.contains(field.pattern.regex)
        rules.append(Rule(label, name, f"{name}_pattern", field.pattern.message, bad))
    return rules


def _requirement_rules(label: str, spec: ImportSpec, frame: pl.DataFrame) -> list[Rule]:
    """A field the file leaves empty on a row whose other field requires it (a cash asset's currency)."""
    rules = []
    for field in spec.columns:
        need = field.required_if
        if need is None or need.field not in frame.columns:
            continue
        value = pl.col(field.name) if field.name in frame.columns else pl.lit(None, pl.String)
        other = pl.col(need.field).cast(pl.String).str.strip_chars().str.to_lowercase()
        rules.append(
            Rule(
                label,
                field.name,
                f"{field.name}_required_if",
                need.message,
                (other == need.value) & value.is_null(),
                _NONE,
            )
        )
    return rules


def _file_rules(spec: ImportSpec, frame: pl.DataFrame) -> list[Rule]:
    """Every rule that needs only the file: each given column's, a repeated header, a key given twice."""
    label, key = spec.entity.label, spec.key.name
    given = [f for f in spec.columns if f.name in frame.columns]
    header = pl.all_horizontal(pl.col(f.name).cast(pl.String) == f.name for f in given)
    first = pl.col(ROW).min().over(key)
    return [
        *(rule for field in given for rule in _field_rules(label, field)),
        *_requirement_rules(label, spec, frame),
        Rule(
            label,
            key,
            "header_repeated",
            "repeats the header row (a second header, or a file pasted twice); remove that row",
            header,
            _NONE,
        ),
        Rule(
            label,
            key,
            f"{key}_unique_in_file",
            pl.lit(f"duplicate {key} in the file; first given at row ") + first.cast(pl.String),
            pl.col(key).is_not_null() & (pl.col(ROW) > first),
        ),
    ]


# -- the database: references and existing rows ----------------------------------------------------
def _lookup(
    con: duckdb.DuckDBPyConnection, entity: Entity, values: pl.Series, *, extra: Sequence[str] = ()
) -> pl.DataFrame:
    """``(key, uid, *extra)`` of ``entity``'s rows whose business key is one of ``values``."""
    uuids = {f.column for f in entity.references}
    con.register("__bulk_keys", pl.DataFrame({"k": values.cast(pl.String).drop_nulls().unique()}).to_arrow())
    try:
        columns = "".join(
            f", t.{quote_ident(c)}" + ("::VARCHAR" if c in uuids else "") + f" AS {quote_ident(c)}" for c in extra
        )
        key = quote_ident(entity.key)
        return fetch(
            con,
            f"SELECT t.{key} AS k, t.uid::VARCHAR AS uid{columns} "
            f"FROM {quote_ident(entity.table)} AS t SEMI JOIN __bulk_keys AS b ON t.{key} = b.k",
        )
    finally:
        con.unregister("__bulk_keys")


def _resolve(
    spec: ImportSpec, catalog: Catalog, frame: pl.DataFrame, con: duckdb.DuckDBPyConnection, *, upsert: bool
) -> tuple[pl.DataFrame, list[Rule]]:
    """Join each reference's uid and each row's stored values; the rules that need them."""
    entity, key = spec.entity, spec.key.name
    label, rules = entity.label, []
    given = [c for c in spec.columns if c.name in frame.columns]
    for field in (c for c in given if c.kind == "ref"):
        target = catalog[field.ref]
        found = _lookup(con, target, frame[field.name]).select(
            pl.col("k").alias(field.name), pl.col("uid").alias(field.column)
        )
        frame = frame.join(found, on=field.name, how="left", maintain_order="left")
        missing = pl.col(field.name).is_not_null() & pl.col(field.column).is_null()
        rules.append(
            Rule(
                label,
                field.name,
                f"{field.ref}_exists",
                f"no {target.label} has this {target.key}; add it first",
                missing,
            )
        )
    stored = [c.column for c in given if c.kind != "key"]
    existing = _lookup(con, entity, frame[key], extra=stored)
    existing = existing.rename({"k": key, "uid": "__uid", **{c: f"__stored_{c}" for c in stored}})
    frame = frame.join(existing, on=key, how="left", maintain_order="left")
    exists = pl.col("__uid").is_not_null()
    if not upsert:
        message = f"a {label} with this {key} already exists; pass --upsert (upsert=True) to update it"
        return frame, [*rules, Rule(label, key, f"{key}_new", message, exists)]
    for field in (c for c in given if c.frozen and c.kind != "key"):
        changed = pl.col(field.column).is_not_null() & (pl.col(field.column) != pl.col(f"__stored_{field.column}"))
        message = f"cannot be changed on an existing {label}; create a new {label} instead"
        rules.append(Rule(label, field.name, f"{field.name}_frozen", message, exists & changed))
    for field in (c for c in given if c.kind == "ref" and not c.frozen):
        frame, rule = _refuse_moves(spec, catalog, field, frame, con)
        rules.append(rule)
    return frame, rules


def _moves(field: CatalogField) -> pl.Expr:
    """Existing rows whose reference ``field`` is given and differs from the stored one."""
    column = pl.col(field.column)
    return (
        pl.col("__uid").is_not_null()
        & column.is_not_null()
        & (column != pl.col(f"__stored_{field.column}").fill_null(""))
    )


def _refuse_moves(
    spec: ImportSpec, catalog: Catalog, field: CatalogField, frame: pl.DataFrame, con: duckdb.DuckDBPyConnection
) -> tuple[pl.DataFrame, Rule]:
    """The rule refusing to change ``field`` on rows that other rows reference.

    DuckDB rewrites a row whose foreign-key column changes and refuses that while other rows
    reference it, so an account with target allocations cannot change group (docs/architecture.md).
    """
    labels = {e.table: e.label for e in catalog}
    moving = frame.filter(_moves(field)).select(pl.col("__uid").alias("uid"))
    counts = []
    con.register("__bulk_moves", moving.to_arrow())
    try:
        for i, (child, column) in enumerate(foreign_keys(con, spec.entity.table) if moving.height else []):
            found = fetch(
                con,
                f"SELECT m.uid AS __uid, count(*) AS n FROM __bulk_moves AS m JOIN {quote_ident(child)} AS c "
                f"ON c.{quote_ident(column)} = m.uid::UUID GROUP BY m.uid",
            ).select("__uid", pl.col("n").cast(pl.Int64).alias(f"__refs_{i}"))
            frame = frame.join(found, on="__uid", how="left", maintain_order="left")
            counts.append((f"__refs_{i}", labels.get(child, f"{child} row")))
    finally:
        con.unregister("__bulk_moves")
    held = [pl.when(pl.col(n) > 0).then(pl.col(n).cast(pl.String) + pl.lit(f" {what}(s)")) for n, what in counts]
    listed = pl.concat_str(held, separator=" and ", ignore_nulls=True) if held else _NONE
    message = (
        pl.lit(f"cannot move {spec.entity.indefinite} that has ")
        + listed
        + pl.lit(f" to another {field.name} (a DuckDB foreign-key limitation, see docs/architecture.md)")
    )
    referenced = pl.any_horizontal(pl.col(n).fill_null(0) > 0 for n, _ in counts) if counts else pl.lit(False)
    return frame, Rule(spec.entity.label, field.name, f"{field.name}_move", message, _moves(field) & referenced)


# -- plan and write --------------------------------------------------------------------------------
def _changed(spec: ImportSpec, frame: pl.DataFrame) -> pl.Expr:
    """True for existing rows where a given cell differs from the stored value."""
    diffs = [
        pl.col(c.column).is_not_null()
        & (pl.col(c.column).cast(pl.String) != pl.col(f"__stored_{c.column}").cast(pl.String)).fill_null(True)
        for c in spec.columns
        if c.kind != "key" and c.name in frame.columns
    ]
    return pl.any_horizontal(diffs) if diffs else pl.lit(False)


def _plan(spec: ImportSpec, entity: str, frame: pl.DataFrame, *, dry_run: bool) -> ImportResult:
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
    n = dict(zip(counts["action"].to_list(), counts["count"].to_list(), strict=True))
    return ImportResult(entity, n.get("add", 0), n.get("update", 0), n.get("unchanged", 0), rows, dry_run)


def _cast(field: CatalogField) -> str:
    """How a column registered from polars (text) becomes the table's type."""
    return {"json": "::JSON", "ref": "::UUID"}.get(field.kind, "")


def _new_rows(spec: ImportSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """The rows to insert, by table column, every default filled in (an empty cell gets its field's default)."""
    given = {c.column for c in spec.columns if c.name in frame.columns}
    inserts = frame.filter(pl.col("__uid").is_null())
    columns = [
        (pl.col(c.column) if c.column in given else pl.lit(None)).fill_null(c.default).alias(c.column)
        if c.default is not None
        else pl.col(c.column)
        for c in spec.columns
        if c.column in given or c.default is not None
    ]
    return inserts.select(columns)


def _insert(con: duckdb.DuckDBPyConnection, spec: ImportSpec, new: pl.DataFrame) -> None:
    fields = [spec.entity.field(c) for c in new.columns]
    con.register("__bulk_new", new.to_arrow())
    con.execute(
        f"INSERT INTO {quote_ident(spec.entity.table)} (uid, {', '.join(quote_ident(f.column) for f in fields)}) "
        f"SELECT gen_random_uuid(), {', '.join(f'n.{quote_ident(f.column)}{_cast(f)}' for f in fields)} "
        "FROM __bulk_new AS n"
    )


def _update(con: duckdb.DuckDBPyConnection, spec: ImportSpec, updates: pl.DataFrame) -> None:
    """Set given cells of existing rows (COALESCE keeps the rest); a reference only where it changes."""
    table = quote_ident(spec.entity.table)
    given = [c for c in spec.columns if c.name in updates.columns]
    plain = [c for c in given if c.kind not in ("key", "ref")]  # columns that are never indexed
    if plain:
        con.register(
            "__bulk_updates", updates.select(pl.col("__uid").alias("uid"), *(c.column for c in plain)).to_arrow()
        )
        sets = ", ".join(
            f"{quote_ident(c.column)} = COALESCE(u.{quote_ident(c.column)}{_cast(c)}, t.{quote_ident(c.column)})"
            for c in plain
        )
        con.execute(f"UPDATE {table} AS t SET {sets} FROM __bulk_updates AS u WHERE t.uid = u.uid::UUID")
    for field in (c for c in given if c.kind == "ref" and not c.frozen):  # a foreign key: only rows where it changes
        changes = updates.filter(_moves(field))
        if changes.height:
            con.register(
                "__bulk_moves", changes.select(pl.col("__uid").alias("uid"), pl.col(field.column).alias("v")).to_arrow()
            )
            con.execute(
                f"UPDATE {table} AS t SET {quote_ident(field.column)} = m.v::UUID "
                "FROM __bulk_moves AS m WHERE t.uid = m.uid::UUID"
            )


def _key(spec: ImportSpec) -> str:
    return quote_ident(spec.key.column)


def _events(con: duckdb.DuckDBPyConnection, spec: ImportSpec, action: str, join: str) -> None:
    """One event per row of the entity's table that ``join`` selects (``t``: the row as stored now)."""
    entity = spec.entity
    before = "b.before_json" if action == "update" else "NULL"
    audit.record_select(
        con,
        entity.name,
        f"SELECT '{action}' AS action, t.uid AS entity_uid, {ACCOUNT_OF.get(entity.table, 'NULL')} AS account_uid, "
        f"{before} AS before_json, to_json(t) AS after_json FROM {quote_ident(entity.table)} AS t {join}",
    )


def _audited_update(con: duckdb.DuckDBPyConnection, spec: ImportSpec, updates: pl.DataFrame) -> None:
    """:func:`_update`, with one event per updated row (the row before, kept in a temporary table, and after)."""
    table = quote_ident(spec.entity.table)
    con.register("__audit_updated", updates.select(pl.col("__uid").alias("uid")).to_arrow())
    con.execute(
        f"CREATE TEMP TABLE __audit_before AS SELECT t.uid, to_json(t) AS before_json FROM {table} AS t "
        "SEMI JOIN __audit_updated AS u ON t.uid = u.uid::UUID"
    )
    _update(con, spec, updates)
    _events(con, spec, "update", "JOIN __audit_before AS b ON b.uid = t.uid")
    con.execute("DROP TABLE __audit_before")


def _write(spec: ImportSpec, frame: pl.DataFrame, store: Store) -> None:
    updates = frame.filter(pl.col("__uid").is_not_null() & _changed(spec, frame))
    new = _new_rows(spec, frame)
    try:
        with store.transaction() as con:
            if updates.height:
                _audited_update(con, spec, updates)
            if new.height:
                _insert(con, spec, new)
                _events(con, spec, "add", f"SEMI JOIN __bulk_new AS n ON t.{_key(spec)} = n.{_key(spec)}")
            for name in ("__bulk_updates", "__bulk_moves", "__bulk_new", "__audit_updated"):
                con.unregister(name)  # a no-op for a name that was not registered
    except duckdb.Error as exc:
        detail = str(exc).split("\n")[0].removeprefix("Constraint Error: ")
        label = spec.entity.label
        raise ConflictError(
            f"{label} import refused by the database, nothing was stored: {detail}", entity=label
        ) from None
