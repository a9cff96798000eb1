"""Registry rows: assets, portfolios, account groups, accounts, allocation models, target allocations.

Each entity of the catalog (:mod:`msm.catalog`) has ``add_*``, ``get_*``, ``list_*``, ``update_*``
and ``delete_*``, all derived from its catalog entry by :func:`services`: ``add_asset``'s
keywords are the asset's fields, a reference (``group``, ``account``, ``model``) takes the
referenced row's business key or uid, and a column added to the catalog is a keyword here. Rows
are addressed by their business key (``unique_identifier`` or name) or by ``uid``. Writes are
single transactions with parameters. DuckDB has no ON DELETE CASCADE, so deletes that the design
lets cascade (account, target allocation, position set) remove the children here, and deletes
that must be refused (asset, portfolio, allocation model, group) raise a
:class:`~msm.errors.ConflictError` whose ``references`` count the rows that still reference it.

A DuckDB limitation shapes two of these: DuckDB checks foreign keys against committed data, so
a parent cannot be deleted in the transaction that deleted its children. Cascading deletes
therefore run one committed step per level, leaf first; every intermediate state satisfies all
constraints, and re-running an interrupted delete finishes it.

Every write is audited (:mod:`msm.audit`): each service takes ``actor`` and ``reason``, and each
transaction appends its events (``add``: the row after; ``update``: before and after; ``delete``:
the row before). A cascading delete records, in each level's transaction, the rows that level
removes; the target rows it removes are kept in ``target_positions_replaced``.

>>> import inspect
>>> str(inspect.signature(add_portfolio))
"(store: 'Store', unique_identifier: 'str', *, portfolio_name: 'str | None' = None, \
metadata_json: 'dict[str, Any] | None' = None, actor: 'str | None' = None, reason: 'str | None' = None) \
-> 'dict[str, Any]'"
>>> [str(p) for p in inspect.signature(add_account).parameters.values()][2:5]
["account_name: 'str'", "is_paper: 'bool' = True", "account_is_active: 'bool' = True"]
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import polars as pl

from msm import audit
from msm.catalog import CATALOG, Catalog, Entity
from msm.catalog import Field as CatalogField
from msm.errors import ConflictError, NotFoundError, RowError, ValidationError
from msm.rules import is_uuid_text
from msm.store.connection import Store, fetch, quote_ident

if TYPE_CHECKING:  # pydantic (msm.models) is imported by the writes that build records, not by reads
    from pydantic import BaseModel

__all__ = [
    "ACCOUNT_OF",
    "ENTITIES",
    "Services",
    "add_account",
    "add_account_group",
    "add_allocation",
    "add_allocation_model",
    "add_asset",
    "add_portfolio",
    "delete_account",
    "delete_account_group",
    "delete_allocation",
    "delete_allocation_model",
    "delete_asset",
    "delete_portfolio",
    "delete_position_set",
    "foreign_keys",
    "get_account",
    "get_account_group",
    "get_allocation",
    "get_allocation_model",
    "get_asset",
    "get_portfolio",
    "identity",
    "list_account_groups",
    "list_accounts",
    "list_allocation_models",
    "list_allocations",
    "list_assets",
    "list_portfolios",
    "model_from",
    "records_with_metadata",
    "reference_frame",
    "services",
    "update_account",
    "update_account_group",
    "update_allocation",
    "update_allocation_model",
    "update_asset",
    "update_portfolio",
]

#: The registry entities (the catalog's), each with its table, key, record and columns.
ENTITIES = CATALOG.entities


def model_from(model: type[BaseModel] | str, entity: str, data: dict[str, Any]) -> Any:
    """Build a pydantic record (a class, or its name in :mod:`msm.models`).

    Its errors become one :class:`ValidationError` naming each field, value and rule.
    """
    from pydantic import ValidationError as PydanticValidationError

    if isinstance(model, str):
        model = getattr(import_module("msm.models"), model)
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        errors = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "record"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"is not a field of {entity}; allowed: {', '.join(model.model_fields)}"
            errors.append(RowError(entity, None, field, err.get("input"), message))
        raise ValidationError(errors) from None


def _record(entity: Entity, values: dict[str, Any]) -> BaseModel:
    """``values`` (by column) as ``entity``'s pydantic record (:func:`msm.models.record_model`)."""
    return model_from(import_module("msm.models").record_model(entity), entity.label, values)


# -- SQL over one entity's table ------------------------------------------------------------------
def _uuid_columns(entity: Entity) -> set[str]:
    return {"uid", *(f.column for f in entity.references)}


def _json_columns(entity: Entity) -> set[str]:
    return {f.column for f in entity.fields if f.kind == "json"}


def _select(entity: Entity) -> str:
    uuids = _uuid_columns(entity)
    columns = ", ".join(
        f"{quote_ident(c)}::VARCHAR AS {quote_ident(c)}" if c in uuids else quote_ident(c)
        for c in ("uid", *entity.columns)
    )
    return f"SELECT {columns} FROM {quote_ident(entity.table)}"


def _params(entity: Entity, record: BaseModel) -> dict[str, Any]:
    values = record.model_dump()
    for column in _json_columns(entity) & values.keys():
        if values[column] is not None:
            values[column] = json.dumps(values[column])
    return values


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n")[0].removeprefix("Constraint Error: ")


#: Which events an entity's table gives the ``account_uid`` of (``t`` is the row).
ACCOUNT_OF = {"account": "t.uid", "account_target_allocation": "t.account_uid"}


def _row_events(con: duckdb.DuckDBPyConnection, entity: Entity, action: str, uid: str, before: str | None) -> None:
    """One event for the row ``uid``: ``before`` (JSON text) and the row as stored now (a delete: the row before)."""
    after = "NULL" if action == "delete" else "to_json(t)"
    before_sql = "to_json(t)" if action == "delete" else "?"
    audit.record_select(
        con,
        entity.name,
        f"SELECT '{action}' AS action, t.uid AS entity_uid, {ACCOUNT_OF.get(entity.table, 'NULL')} AS account_uid, "
        f"{before_sql} AS before_json, {after} AS after_json "
        f"FROM {quote_ident(entity.table)} AS t WHERE t.uid = ?::UUID",
        [uid] if action == "delete" else [before, uid],
    )


def _insert(store: Store, entity: Entity, record: BaseModel) -> dict[str, Any]:
    values = {"uid": str(uuid.uuid4()), **_params(entity, record)}
    columns = ", ".join(quote_ident(c) for c in values)
    marks = ", ".join(f"${c}" for c in values)
    key = getattr(record, entity.key)
    try:
        with store.transaction() as con:
            table = quote_ident(entity.table)
            (after,) = con.execute(  # the row as stored, for its event: no second read of the table
                f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING to_json({table})::VARCHAR", values
            ).fetchone()
            account = ACCOUNT_OF.get(entity.table)  # the column holding the event's account, as ``t.column``
            account_uid = values.get(account.removeprefix("t.")) if account is not None else None
            audit.record(con, "add", entity.name, entity_uid=values["uid"], account_uid=account_uid, after=after)
    except duckdb.ConstraintException as exc:
        if "Duplicate key" in str(exc) or "unique" in str(exc).lower():
            raise ConflictError.duplicate(entity.label, entity.key, key) from None
        raise ConflictError(
            f"{entity.label} {key!r} was refused by the database: {_first_line(exc)}",
            entity=entity.label,
            key=entity.key,
            value=key,
        ) from None
    return _get(store, entity, values["uid"])


def _get(store: Store, entity: Entity, ref: str | uuid.UUID) -> dict[str, Any]:
    """A row by uid or business key, as a dict; :class:`NotFoundError` when there is none."""
    ref = str(ref)
    by_uid = is_uuid_text(ref)
    column, value = ("uid", ref.strip().lower()) if by_uid else (entity.key, ref)
    frame = store.query(f"{_select(entity)} WHERE {quote_ident(column)} = ? LIMIT 1", [value])
    if frame.height == 0 and by_uid:  # a business key that happens to look like a UUID
        frame = store.query(f"{_select(entity)} WHERE {quote_ident(entity.key)} = ? LIMIT 1", [ref])
    if frame.height == 0:
        key = "uid or " + entity.key if by_uid else entity.key
        raise NotFoundError(entity.label, key, ref, f"create it with `{entity.create}`")
    row = frame.row(0, named=True)
    for column in _json_columns(entity):
        if row.get(column) is not None:
            row[column] = json.loads(row[column])
    return row


def identity(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"uid", "unique_identifier"}`` of a registry record: how a document names its account or portfolio."""
    return {"uid": record["uid"], "unique_identifier": record["unique_identifier"]}


def records_with_metadata(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts, each ``metadata_json`` text parsed back to its object (null stays null)."""
    return [
        {**row, "metadata_json": json.loads(row["metadata_json"]) if row["metadata_json"] is not None else None}
        for row in frame.iter_rows(named=True)
    ]


def _list(store: Store, entity: Entity, where: str = "", params: list[Any] | None = None) -> pl.DataFrame:
    return store.query(f"{_select(entity)} {where} ORDER BY {quote_ident(entity.key)}", params or [])


def _resolve(store: Store, catalog: Catalog, field: CatalogField, value: Any) -> str | None:
    """A reference field's value (the referenced row's business key or uid) as that row's uid."""
    return None if value is None else _get(store, catalog[field.ref], value)["uid"]


def _by_column(store: Store, entity: Entity, catalog: Catalog, values: dict[str, Any]) -> dict[str, Any]:
    """Values named by field (``group``) as values by column (``account_group_uid``), references resolved."""
    out = dict(values)
    for field in entity.references:
        if field.name in out:
            out[field.column] = _resolve(store, catalog, field, out.pop(field.name))
    return out


def _update(store: Store, entity: Entity, catalog: Catalog, ref: str | uuid.UUID, changes: dict[str, Any]) -> dict:
    current = _get(store, entity, ref)
    frozen = {"uid", *(n for f in entity.fields if f.frozen for n in (f.name, f.column))}
    bad = [k for k in changes if k in frozen]
    if bad:
        raise ValidationError(
            [RowError(entity.label, None, k, changes[k], "cannot be changed; create a new row instead") for k in bad]
        )
    changes = _by_column(store, entity, catalog, changes)
    merged = {k: v for k, v in current.items() if k != "uid"} | changes
    values = _params(entity, _record(entity, merged))
    assignments = ", ".join(f"{quote_ident(c)} = ${c}" for c in values if c in changes)
    if not assignments:
        return current
    try:
        with store.transaction() as con:
            ((before,),) = con.execute(
                f"SELECT to_json(t)::VARCHAR FROM {quote_ident(entity.table)} AS t WHERE t.uid = ?", [current["uid"]]
            ).fetchall()
            con.execute(
                f"UPDATE {quote_ident(entity.table)} SET {assignments} WHERE uid = $uid",
                {**{c: values[c] for c in changes}, "uid": current["uid"]},
            )
            _row_events(con, entity, "update", current["uid"], before)
    except duckdb.ConstraintException as exc:
        raise _update_refused(store, entity, current, list(changes), exc) from None
    return _get(store, entity, current["uid"])


def _update_refused(
    store: Store, entity: Entity, current: dict[str, Any], changed: list[str], exc: Exception
) -> ConflictError:
    key = current[entity.key]
    fields = {"entity": entity.label, "key": entity.key, "value": key}
    if "still referenced" not in str(exc):
        return ConflictError(f"{entity.label} {key!r}: update refused: {_first_line(exc)}", **fields)
    with store.connect() as con:
        references = _references(con, entity.table, current["uid"])
    return ConflictError(
        f"{entity.label} {key!r}: {', '.join(changed)} cannot be changed while other rows reference it "
        f"(DuckDB rewrites a row whose indexed column changes, and refuses while it is referenced); "
        "this is a known DuckDB foreign-key limitation, see docs/architecture.md",
        references=references,
        **fields,
    )


def foreign_keys(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """``(table, column)`` of every foreign key to ``table``'s ``uid``, from DuckDB's own constraints."""
    return con.execute(
        """
        SELECT table_name, constraint_column_names[1] AS column_name
        FROM duckdb_constraints()
        WHERE constraint_type = 'FOREIGN KEY' AND referenced_table = ? AND referenced_column_names[1] = 'uid'
        ORDER BY table_name, column_name
        """,
        [table],
    ).fetchall()


def _references(con: duckdb.DuckDBPyConnection, table: str, uid: str) -> dict[str, int]:
    """How many rows of every other table reference ``table``'s row ``uid`` (``table.column`` -> count)."""
    counts = {}
    for child, column in foreign_keys(con, table):
        ((n,),) = con.execute(
            f"SELECT count(*) FROM {quote_ident(child)} WHERE {quote_ident(column)} = ?", [uid]
        ).fetchall()
        if n:
            counts[f"{child}.{column}"] = int(n)
    return counts


def _delete_restricted(store: Store, entity: Entity, ref: str | uuid.UUID) -> dict[str, Any]:
    row = _get(store, entity, ref)
    with store.transaction() as con:
        refs = _references(con, entity.table, row["uid"])
        if refs:
            raise ConflictError.still_referenced(entity.label, entity.key, row[entity.key], refs, entity.refused_delete)
        _row_events(con, entity, "delete", row["uid"], None)
        con.execute(f"DELETE FROM {quote_ident(entity.table)} WHERE uid = ?", [row["uid"]])
    return row


# The tables a delete cascades through, parent to leaf, each with its foreign key to the one before.
_CHAIN: tuple[tuple[str, str], ...] = (
    ("account", ""),
    ("account_target_allocation", "account_uid"),
    ("position_set", "account_target_allocation_uid"),
    ("target_positions", "position_set_uid"),
)


def _cascade(store: Store, table: str, parent_uid: str) -> None:
    """Delete the rows below ``table``'s row ``parent_uid``, down to the leaf, then that row itself.

    One committed transaction per level, leaf first (see the module docstring for why).
    """
    chain = [t for t, _ in _CHAIN]
    below = _CHAIN[chain.index(table) + 1 :]
    # Subqueries that select each level's rows from the parent uid, leaf last.
    selectors: list[str] = []
    for i, (_, column) in enumerate(below):
        source = "?" if i == 0 else f"(SELECT uid FROM {quote_ident(below[i - 1][0])} WHERE {selectors[i - 1]})"
        selectors.append(f"{quote_ident(column)} {'=' if i == 0 else 'IN'} {source}")
    steps = [
        *reversed([(child, where) for (child, _), where in zip(below, selectors, strict=True)]),
        (table, "uid = ?"),
    ]
    for child, where in steps:
        with store.transaction() as con:
            _cascade_events(con, child, where, parent_uid)
            con.execute(f"DELETE FROM {quote_ident(child)} WHERE {where}", [parent_uid])


#: The events of one cascade level: per deleted row (``x``), the entity type and the SELECT of its events.
_CASCADE_EVENTS = {
    "account": ("account", "SELECT 'delete' AS action, x.uid AS entity_uid, x.uid AS account_uid, {row}"),
    "account_target_allocation": (
        "allocation",
        "SELECT 'delete' AS action, x.uid AS entity_uid, x.account_uid AS account_uid, {row}",
    ),
    "position_set": (
        "position_set",
        "SELECT 'delete' AS action, x.uid AS entity_uid, al.account_uid AS account_uid, {row} "
        "JOIN account_target_allocation AS al ON al.uid = x.account_target_allocation_uid",
    ),
}


def _cascade_events(con: duckdb.DuckDBPyConnection, table: str, where: str, parent_uid: str) -> None:
    """The events of the rows one cascade level deletes (before it deletes them), in its transaction.

    Target rows are kept in ``target_positions_replaced`` first, with one event per position set.
    """
    if table == "target_positions":
        audit.keep_target_rows(con, f"SELECT * FROM target_positions WHERE {where}", [parent_uid])
        audit.record_select(
            con,
            "position_set",
            f"""
            SELECT 'delete' AS action, x.position_set_uid AS entity_uid, any_value(al.account_uid) AS account_uid,
                   json_object('position_set_time', any_value(x.time_index), 'target_rows', count(*),
                               'kept_as_version', any_value(v.version)) AS before_json,
                   json_object('target_rows', 0) AS after_json
            FROM (SELECT * FROM target_positions WHERE {where}) AS x
            JOIN position_set AS ps ON ps.uid = x.position_set_uid
            JOIN account_target_allocation AS al ON al.uid = ps.account_target_allocation_uid
            LEFT JOIN (SELECT position_set_uid, max(version) AS version FROM target_positions_replaced GROUP BY ALL)
                 AS v ON v.position_set_uid = x.position_set_uid
            GROUP BY x.position_set_uid
            """,
            [parent_uid],
        )
        return
    entity_type, select = _CASCADE_EVENTS[table]
    row = f"to_json(x) AS before_json, NULL AS after_json FROM (SELECT * FROM {quote_ident(table)} WHERE {where}) AS x"
    audit.record_select(con, entity_type, select.format(row=row), [parent_uid])


def _delete_cascading(store: Store, entity: Entity, ref: str | uuid.UUID) -> dict[str, Any]:
    row = _get(store, entity, ref)
    _cascade(store, entity.table, row["uid"])
    return row


# -- the services, derived from the catalog ----------------------------------------------------------
class Services(NamedTuple):
    """One entity's registry services: ``add(store, key, **fields)``, ``get(store, ref)``, ``list(store)``,
    ``update(store, ref, **changes)`` and ``delete(store, ref)`` (the writes also take ``actor``, ``reason``)."""

    add: Callable[..., dict[str, Any]]
    get: Callable[[Store, str | uuid.UUID], dict[str, Any]]
    list: Callable[[Store], pl.DataFrame]
    update: Callable[..., dict[str, Any]]
    delete: Callable[..., dict[str, Any]]


_ANNOTATIONS = {
    "key": "str",
    "text": "str | None",
    "bool": "bool",
    "json": "dict[str, Any] | None",
    "ref": "str | uuid.UUID | None",
}


def _add_signature(entity: Entity) -> inspect.Signature:
    """``(store, KEY, *, field=default, ...)``: the key positional, the other fields keyword-only."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter("store", positional, annotation="Store")]
    parameters.append(inspect.Parameter(entity.key, positional, annotation="str"))
    for field in entity.fields[1:]:
        annotation = _ANNOTATIONS[field.kind]
        if field.required or field.default is not None:
            annotation = annotation.removesuffix(" | None")
        default = inspect.Parameter.empty if field.required else field.default
        parameters.append(inspect.Parameter(field.name, keyword, default=default, annotation=annotation))
    for name in ("actor", "reason"):
        parameters.append(inspect.Parameter(name, keyword, default=None, annotation="str | None"))
    return inspect.Signature(parameters, return_annotation="dict[str, Any]")


def _field_doc(catalog: Catalog, field: CatalogField) -> str:
    """One line of an ``add_*`` docstring: the field, its help, whether it is required or defaulted."""
    what = field.help
    if field.kind == "ref":
        target = catalog[field.ref]
        what = f"{what}: the {target.label}'s {target.key} or uid"
    if field.required:
        what += " (required)"
    elif field.default is not None:
        what += f" (default {field.default!r})"
    return f"- ``{field.name}``: {what}"


def _named(function: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    function.__name__ = function.__qualname__ = name
    function.__module__ = __name__
    function.__doc__ = doc
    return function


def _adder(entity: Entity, catalog: Catalog) -> Callable[..., dict[str, Any]]:
    signature = _add_signature(entity)

    def add(*args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        store = values.pop("store")
        with audit.acting(values.pop("actor"), values.pop("reason")):
            return _insert(store, entity, _record(entity, _by_column(store, entity, catalog, values)))

    add.__signature__ = signature  # type: ignore[attr-defined]
    fields = "\n".join(_field_doc(catalog, f) for f in entity.fields)
    fields += "\n- ``actor``, ``reason``: who adds it and why, for the audit trail (:mod:`msm.audit`)"
    return _named(
        add,
        f"add_{entity.name}",
        f"Add {entity.indefinite}; returns the stored row (with its new ``uid``).\n\n{fields}\n",
    )


def _derive(entity: Entity, catalog: Catalog) -> Services:
    label, key = entity.label, entity.key

    def get(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
        return _get(store, entity, ref)

    def list_(store: Store) -> pl.DataFrame:
        return _list(store, entity)

    def update(
        store: Store, ref: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None, **changes: Any
    ) -> dict[str, Any]:
        with audit.acting(actor, reason):
            return _update(store, entity, catalog, ref, changes)

    def delete(
        store: Store, ref: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        with audit.acting(actor, reason):
            return (_delete_cascading if entity.cascade else _delete_restricted)(store, entity, ref)

    frozen = ", ".join(f"``{f.name}``" for f in entity.fields if f.frozen) or "nothing"
    deletes = (
        f"{entity.cascade.rstrip('.')} (one committed step per level, leaf first)."
        if entity.cascade
        else f"Refused with :class:`ConflictError` (``references``: the counts) while rows reference it: "
        f"{entity.refused_delete}."
    )
    return Services(
        _adder(entity, catalog),
        _named(
            get,
            f"get_{entity.name}",
            f"The {label} with this uid or {key}, as a dict (:class:`NotFoundError` when none).",
        ),
        _named(list_, f"list_{entity.plural}", f"Every {label}, ordered by {key} (uids as text)."),
        _named(
            update,
            f"update_{entity.name}",
            f"Change fields of the {label} ``ref`` (uid or {key}); returns the stored row. Never changes: {frozen}.",
        ),
        _named(delete, f"delete_{entity.name}", f"Delete the {label} ``ref`` (uid or {key}). {deletes}"),
    )


@cache
def _services(entity: Entity, catalog: Catalog) -> Services:
    return _derive(entity, catalog)


def services(entity: Entity | str, catalog: Catalog = CATALOG) -> Services:
    """The registry services of one catalog entity (an :class:`~msm.catalog.Entity` or its table name).

    A copy of the catalog with another field (:meth:`~msm.catalog.Catalog.with_field`) gives
    services that take and store it, which is how ``tests/test_catalog.py`` checks the worked
    example of ``docs/architecture.md``.
    """
    return _services(catalog[entity] if isinstance(entity, str) else entity, catalog)


add_asset, get_asset, list_assets, update_asset, delete_asset = services("asset")
add_portfolio, get_portfolio, list_portfolios, update_portfolio, delete_portfolio = services("portfolio")
add_account_group, get_account_group, list_account_groups, update_account_group, delete_account_group = services(
    "account_group"
)
add_account, get_account, list_accounts, update_account, delete_account = services("account")
add_allocation_model, get_allocation_model, list_allocation_models, update_allocation_model, delete_allocation_model = (
    services("account_allocation_model")
)
add_allocation, get_allocation, _list_allocations, update_allocation, delete_allocation = services(
    "account_target_allocation"
)


def list_allocations(
    store: Store, *, account: str | uuid.UUID | None = None, active_only: bool = False
) -> pl.DataFrame:
    """Every target allocation, ordered by unique_identifier; only ``account``'s, only active ones when asked."""
    clauses, params = [], []
    if account is not None:
        clauses.append("account_uid = ?")
        params.append(get_account(store, account)["uid"])
    if active_only:
        clauses.append("is_active")
    return _list(
        store, CATALOG["account_target_allocation"], ("WHERE " + " AND ".join(clauses)) if clauses else "", params
    )


def delete_position_set(
    store: Store, position_set_uid: str | uuid.UUID, *, actor: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """Delete one snapshot (position set and its target rows; the rows are kept in ``target_positions_replaced``)."""
    frame = store.query(
        "SELECT uid::VARCHAR AS uid, account_target_allocation_uid::VARCHAR AS account_target_allocation_uid, "
        "position_set_time FROM position_set WHERE uid = TRY_CAST(? AS UUID)",
        [str(position_set_uid)],
    )
    if frame.height == 0:
        raise NotFoundError("position set", "uid", str(position_set_uid))
    with audit.acting(actor, reason):
        _cascade(store, "position_set", frame["uid"][0])
    return frame.row(0, named=True)


def reference_frame(
    store: Store, table: str, *, uids: pl.Series | None = None, identifiers: pl.Series | None = None
) -> pl.DataFrame:
    """``(uid, unique_identifier)`` of the assets or portfolios matching any of ``uids`` / ``identifiers``."""
    if table not in ("asset", "portfolio"):
        raise KeyError(f"reference_frame is for assets and portfolios, not {table!r}")

    def distinct(values: pl.Series | None, *, lower: bool) -> pl.DataFrame:
        text = (
            (values if values is not None else pl.Series([], dtype=pl.String))
            .drop_nulls()
            .unique()
            .cast(pl.String)
            .str.strip_chars()
        )
        return pl.DataFrame({"v": (text.str.to_lowercase() if lower else text).unique()})

    with store.connect() as con:
        con.register("__refs", distinct(uids, lower=True).to_arrow())
        con.register("__names", distinct(identifiers, lower=False).to_arrow())
        quoted = quote_ident(CATALOG[table].table)
        # Two equality semi-joins (an OR of two IN lists would not use the hash join).
        return fetch(
            con,
            f"""
            SELECT t.uid::VARCHAR AS uid, t.unique_identifier FROM {quoted} AS t
            SEMI JOIN __refs AS r ON t.uid = TRY_CAST(r.v AS UUID)
            UNION
            SELECT t.uid::VARCHAR AS uid, t.unique_identifier FROM {quoted} AS t
            SEMI JOIN __names AS n ON t.unique_identifier = n.v
            """,
        )
