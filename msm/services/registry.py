"""Registry rows: assets, portfolios, account groups, accounts, allocation models, target allocations.

Each entity has ``add_*``, ``update_*``, ``get_*``, ``list_*`` and ``delete_*``. Rows are addressed
by their business key (``unique_identifier`` or name) or by ``uid``. Writes are single
transactions with parameters. DuckDB has no ON DELETE CASCADE, so deletes that the design lets
cascade (account, target allocation, position set) remove the children here, and deletes that
must be refused (asset, portfolio, allocation model, group) say how many rows still reference
the row.

A DuckDB limitation shapes two of these: DuckDB checks foreign keys against committed data, so
a parent cannot be deleted in the transaction that deleted its children. Cascading deletes
therefore run one committed step per level, leaf first; every intermediate state satisfies all
constraints, and re-running an interrupted delete finishes it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from msm.errors import ConflictError, NotFoundError, RowError, ValidationError
from msm.store.connection import Store, fetch, quote_ident

if TYPE_CHECKING:  # pydantic (msm.models) is imported by the writes that build records, not by reads
    from pydantic import BaseModel

__all__ = [
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
    "get_account",
    "get_account_group",
    "get_allocation",
    "get_allocation_model",
    "get_asset",
    "get_portfolio",
    "list_account_groups",
    "list_accounts",
    "list_allocation_models",
    "list_allocations",
    "list_assets",
    "list_portfolios",
    "model_from",
    "reference_frame",
    "update_account",
    "update_account_group",
    "update_allocation",
    "update_allocation_model",
    "update_asset",
    "update_portfolio",
]


@dataclass(frozen=True)
class _Entity:
    table: str
    label: str  # how messages name it
    key: str  # the business key column
    model: str  # the msm.models record (imported when a write needs it)
    columns: tuple[str, ...]  # the record's fields: the table's columns besides uid (tests check they agree)


_META = "metadata_json"
ASSET = _Entity(
    "asset", "asset", "unique_identifier", "AssetIn", ("unique_identifier", "name", "ticker", "asset_type", _META)
)
PORTFOLIO = _Entity(
    "portfolio", "portfolio", "unique_identifier", "PortfolioIn", ("unique_identifier", "portfolio_name", _META)
)
GROUP = _Entity(
    "account_group", "account group", "group_name", "AccountGroupIn", ("group_name", "group_description", _META)
)
ACCOUNT = _Entity(
    "account",
    "account",
    "unique_identifier",
    "AccountIn",
    ("unique_identifier", "account_name", "is_paper", "account_is_active", "account_group_uid", _META),
)
MODEL = _Entity(
    "account_allocation_model",
    "allocation model",
    "allocation_model_name",
    "AccountAllocationModelIn",
    ("allocation_model_name", "allocation_model_description", _META),
)
ALLOCATION = _Entity(
    "account_target_allocation",
    "target allocation",
    "unique_identifier",
    "AccountTargetAllocationIn",
    ("unique_identifier", "account_uid", "account_allocation_model_uid", "display_name", "is_active", "source", _META),
)
ENTITIES = (ASSET, PORTFOLIO, GROUP, ACCOUNT, MODEL, ALLOCATION)

_UUID_COLUMNS = {"uid", "account_group_uid", "account_uid", "account_allocation_model_uid"}


def model_from(model: type[BaseModel] | str, entity: str, data: dict[str, Any]) -> Any:
    """Build a pydantic record (a class, or its name in :mod:`msm.models`), turning its errors into one :class:`ValidationError`."""
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


def _select(entity: _Entity) -> str:
    columns = ", ".join(
        f"{quote_ident(c)}::VARCHAR AS {quote_ident(c)}" if c in _UUID_COLUMNS else quote_ident(c)
        for c in _columns(entity)
    )
    return f"SELECT {columns} FROM {quote_ident(entity.table)}"


def _columns(entity: _Entity) -> list[str]:
    return ["uid", *entity.columns]


def _params(record: BaseModel) -> dict[str, Any]:
    values = record.model_dump()
    if "metadata_json" in values and values["metadata_json"] is not None:
        values["metadata_json"] = json.dumps(values["metadata_json"])
    return values


def _insert(store: Store, entity: _Entity, record: BaseModel) -> dict[str, Any]:
    values = {"uid": str(uuid.uuid4()), **_params(record)}
    columns = ", ".join(quote_ident(c) for c in values)
    marks = ", ".join(f"${c}" for c in values)
    try:
        with store.transaction() as con:
            con.execute(f"INSERT INTO {quote_ident(entity.table)} ({columns}) VALUES ({marks})", values)
    except duckdb.ConstraintException as exc:
        key = getattr(record, entity.key)
        if "Duplicate key" in str(exc) or "unique" in str(exc).lower():
            raise ConflictError(f"{entity.label} {key!r} already exists ({entity.key} must be unique)") from None
        raise ConflictError(f"{entity.label} {key!r} was refused by the database: {_first_line(exc)}") from None
    return _get(store, entity, values["uid"])


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n")[0].removeprefix("Constraint Error: ")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


def _get(store: Store, entity: _Entity, ref: str | uuid.UUID) -> dict[str, Any]:
    """A row by uid or business key, as a dict; :class:`NotFoundError` when there is none."""
    ref = str(ref)
    column = "uid" if _is_uuid(ref) else entity.key
    frame = store.query(f"{_select(entity)} WHERE {quote_ident(column)} = ? LIMIT 1", [ref])
    if frame.height == 0 and column == "uid":  # a business key that happens to look like a UUID
        frame = store.query(f"{_select(entity)} WHERE {quote_ident(entity.key)} = ? LIMIT 1", [ref])
    if frame.height == 0:
        raise NotFoundError(entity.label, entity.key if column != "uid" else "uid or " + entity.key, ref, _hint(entity))
    row = frame.row(0, named=True)
    if row.get("metadata_json") is not None:
        row["metadata_json"] = json.loads(row["metadata_json"])
    return row


def _hint(entity: _Entity) -> str:
    command = {
        "asset": "msm assets add ID",
        "portfolio": "msm portfolios add ID",
        "account_group": "msm accounts add ID --name N --group G",
        "account": "msm accounts add ID --name N",
        "account_allocation_model": "msm models add NAME",
        "account_target_allocation": "msm allocations add ID --account A --model M",
    }[entity.table]
    return f"create it with `{command}`"


def _list(store: Store, entity: _Entity, where: str = "", params: list[Any] | None = None) -> pl.DataFrame:
    return store.query(f"{_select(entity)} {where} ORDER BY {quote_ident(entity.key)}", params or [])


def _update(
    store: Store, entity: _Entity, ref: str | uuid.UUID, changes: dict[str, Any], frozen: tuple[str, ...] = ()
) -> dict[str, Any]:
    current = _get(store, entity, ref)
    bad = [k for k in changes if k in frozen or k == "uid"]
    if bad:
        raise ValidationError(
            [RowError(entity.label, None, k, changes[k], "cannot be changed; create a new row instead") for k in bad]
        )
    merged = {k: v for k, v in current.items() if k != "uid"} | changes
    record = model_from(entity.model, entity.label, merged)
    values = _params(record)
    assignments = ", ".join(f"{quote_ident(c)} = ${c}" for c in values if c in changes)
    if not assignments:
        return current
    try:
        with store.transaction() as con:
            con.execute(
                f"UPDATE {quote_ident(entity.table)} SET {assignments} WHERE uid = $uid",
                {**{c: values[c] for c in changes}, "uid": current["uid"]},
            )
    except duckdb.ConstraintException as exc:
        if "still referenced" in str(exc):
            raise ConflictError(
                f"{entity.label} {current[entity.key]!r}: {', '.join(changes)} cannot be changed while other rows reference it "
                f"(DuckDB rewrites a row whose indexed column changes, and refuses while it is referenced); "
                "this is a known DuckDB foreign-key limitation, see docs/architecture.md"
            ) from None
        raise ConflictError(f"{entity.label} {current[entity.key]!r}: update refused: {_first_line(exc)}") from None
    return _get(store, entity, current["uid"])


def _references(con: duckdb.DuckDBPyConnection, table: str, uid: str) -> dict[str, int]:
    """How many rows of every other table reference ``table``'s row ``uid`` (found via the catalog)."""
    fks = con.execute(
        """
        SELECT table_name, constraint_column_names[1] AS column_name
        FROM duckdb_constraints()
        WHERE constraint_type = 'FOREIGN KEY' AND referenced_table = ? AND referenced_column_names[1] = 'uid'
        """,
        [table],
    ).fetchall()
    counts = {}
    for child, column in fks:
        ((n,),) = con.execute(
            f"SELECT count(*) FROM {quote_ident(child)} WHERE {quote_ident(column)} = ?", [uid]
        ).fetchall()
        if n:
            counts[f"{child}.{column}"] = int(n)
    return counts


def _delete_restricted(store: Store, entity: _Entity, ref: str | uuid.UUID, advice: str) -> dict[str, Any]:
    row = _get(store, entity, ref)
    with store.transaction() as con:
        refs = _references(con, entity.table, row["uid"])
        if refs:
            listed = ", ".join(f"{n} row{'s' if n != 1 else ''} in {where}" for where, n in refs.items())
            raise ConflictError(f"{entity.label} {row[entity.key]!r} is still referenced by {listed}; {advice}")
        con.execute(f"DELETE FROM {quote_ident(entity.table)} WHERE uid = ?", [row["uid"]])
    return row


# -- assets and portfolios -----------------------------------------------------------------------
def add_asset(
    store: Store,
    unique_identifier: str,
    *,
    name: str | None = None,
    ticker: str | None = None,
    asset_type: str | None = None,
    metadata_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add an asset; returns the stored row (with its new ``uid``)."""
    record = model_from(
        "AssetIn",
        "asset",
        dict(
            unique_identifier=unique_identifier,
            name=name,
            ticker=ticker,
            asset_type=asset_type,
            metadata_json=metadata_json,
        ),
    )
    return _insert(store, ASSET, record)


def get_asset(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, ASSET, ref)


def list_assets(store: Store) -> pl.DataFrame:
    return _list(store, ASSET)


def update_asset(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    return _update(store, ASSET, ref, changes, frozen=("unique_identifier",))


def delete_asset(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete an asset no target or weight row references; otherwise say how many do."""
    return _delete_restricted(store, ASSET, ref, "delete or retarget those rows first")


def add_portfolio(
    store: Store,
    unique_identifier: str,
    *,
    portfolio_name: str | None = None,
    metadata_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = model_from(
        "PortfolioIn",
        "portfolio",
        dict(unique_identifier=unique_identifier, portfolio_name=portfolio_name, metadata_json=metadata_json),
    )
    return _insert(store, PORTFOLIO, record)


def get_portfolio(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, PORTFOLIO, ref)


def list_portfolios(store: Store) -> pl.DataFrame:
    return _list(store, PORTFOLIO)


def update_portfolio(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    return _update(store, PORTFOLIO, ref, changes, frozen=("unique_identifier",))


def delete_portfolio(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete a portfolio no target or weight row references; otherwise say how many do."""
    return _delete_restricted(
        store, PORTFOLIO, ref, "delete or retarget account target positions (and its compositions) first"
    )


def reference_frame(
    store: Store, table: str, *, uids: pl.Series | None = None, identifiers: pl.Series | None = None
) -> pl.DataFrame:
    """``(uid, unique_identifier)`` of the assets or portfolios matching any of ``uids`` / ``identifiers``."""
    entity = {"asset": ASSET, "portfolio": PORTFOLIO}[table]

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
        table = quote_ident(entity.table)
        # Two equality semi-joins (an OR of two IN lists would not use the hash join).
        return fetch(
            con,
            f"""
            SELECT t.uid::VARCHAR AS uid, t.unique_identifier FROM {table} AS t SEMI JOIN __refs AS r ON t.uid = TRY_CAST(r.v AS UUID)
            UNION
            SELECT t.uid::VARCHAR AS uid, t.unique_identifier FROM {table} AS t SEMI JOIN __names AS n ON t.unique_identifier = n.v
            """,
        )


# -- account groups --------------------------------------------------------------------------------
def add_account_group(
    store: Store, group_name: str, *, group_description: str | None = None, metadata_json: dict[str, Any] | None = None
) -> dict[str, Any]:
    record = model_from(
        "AccountGroupIn",
        "account group",
        dict(group_name=group_name, group_description=group_description, metadata_json=metadata_json),
    )
    return _insert(store, GROUP, record)


def get_account_group(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, GROUP, ref)


def list_account_groups(store: Store) -> pl.DataFrame:
    return _list(store, GROUP)


def update_account_group(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    return _update(store, GROUP, ref, changes)


def delete_account_group(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete a group with no member accounts; otherwise say how many accounts are members."""
    return _delete_restricted(
        store,
        GROUP,
        ref,
        "move those accounts to another group (or none) first; an account that has target allocations cannot be moved "
        "(a DuckDB foreign-key limitation), so such a group stays until its accounts are deleted",
    )


# -- accounts ------------------------------------------------------------------------------------
def _group_uid(store: Store, group: str | uuid.UUID | None) -> str | None:
    return None if group is None else get_account_group(store, group)["uid"]


def add_account(
    store: Store,
    unique_identifier: str,
    *,
    account_name: str,
    is_paper: bool = True,
    account_is_active: bool = True,
    group: str | uuid.UUID | None = None,
    metadata_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add an account (active by default); ``group`` is a group name or uid."""
    record = model_from(
        "AccountIn",
        "account",
        dict(
            unique_identifier=unique_identifier,
            account_name=account_name,
            is_paper=is_paper,
            account_is_active=account_is_active,
            account_group_uid=_group_uid(store, group),
            metadata_json=metadata_json,
        ),
    )
    return _insert(store, ACCOUNT, record)


def get_account(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, ACCOUNT, ref)


def list_accounts(store: Store) -> pl.DataFrame:
    return _list(store, ACCOUNT)


def update_account(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    """Change an account's fields; ``group=`` takes a group name or uid (``None`` to leave its group)."""
    if "group" in changes:
        changes["account_group_uid"] = _group_uid(store, changes.pop("group"))
    return _update(store, ACCOUNT, ref, changes, frozen=("unique_identifier",))


def delete_account(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete an account with its target allocations, position sets and target rows."""
    account = get_account(store, ref)
    _cascade(store, "account_target_allocation.account_uid", account["uid"])
    with store.transaction() as con:
        con.execute("DELETE FROM account WHERE uid = ?", [account["uid"]])
    return account


# -- allocation models ---------------------------------------------------------------------------------
def add_allocation_model(
    store: Store,
    allocation_model_name: str,
    *,
    allocation_model_description: str | None = None,
    metadata_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = model_from(
        "AccountAllocationModelIn",
        "allocation model",
        dict(
            allocation_model_name=allocation_model_name,
            allocation_model_description=allocation_model_description,
            metadata_json=metadata_json,
        ),
    )
    return _insert(store, MODEL, record)


def get_allocation_model(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, MODEL, ref)


def list_allocation_models(store: Store) -> pl.DataFrame:
    return _list(store, MODEL)


def update_allocation_model(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    return _update(store, MODEL, ref, changes)


def delete_allocation_model(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete a model no target allocation uses; otherwise say how many do."""
    return _delete_restricted(store, MODEL, ref, "delete those target allocations first")


# -- target allocations --------------------------------------------------------------------------------
def add_allocation(
    store: Store,
    unique_identifier: str,
    *,
    account: str | uuid.UUID,
    model: str | uuid.UUID,
    display_name: str | None = None,
    is_active: bool = True,
    source: str | None = None,
    metadata_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add a target allocation (the account -> allocation model mandate), active by default."""
    record = model_from(
        "AccountTargetAllocationIn",
        "target allocation",
        dict(
            unique_identifier=unique_identifier,
            account_uid=get_account(store, account)["uid"],
            account_allocation_model_uid=get_allocation_model(store, model)["uid"],
            display_name=display_name,
            is_active=is_active,
            source=source,
            metadata_json=metadata_json,
        ),
    )
    return _insert(store, ALLOCATION, record)


def get_allocation(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    return _get(store, ALLOCATION, ref)


def list_allocations(
    store: Store, *, account: str | uuid.UUID | None = None, active_only: bool = False
) -> pl.DataFrame:
    clauses, params = [], []
    if account is not None:
        clauses.append("account_uid = ?")
        params.append(get_account(store, account)["uid"])
    if active_only:
        clauses.append("is_active")
    return _list(store, ALLOCATION, ("WHERE " + " AND ".join(clauses)) if clauses else "", params)


def update_allocation(store: Store, ref: str | uuid.UUID, **changes: Any) -> dict[str, Any]:
    return _update(
        store, ALLOCATION, ref, changes, frozen=("unique_identifier", "account_uid", "account_allocation_model_uid")
    )


def delete_allocation(store: Store, ref: str | uuid.UUID) -> dict[str, Any]:
    """Delete a target allocation with its position sets and their target rows."""
    allocation = get_allocation(store, ref)
    _cascade(store, "position_set.account_target_allocation_uid", allocation["uid"])
    with store.transaction() as con:
        con.execute("DELETE FROM account_target_allocation WHERE uid = ?", [allocation["uid"]])
    return allocation


def delete_position_set(store: Store, position_set_uid: str | uuid.UUID) -> dict[str, Any]:
    """Delete one snapshot (position set and its target rows)."""
    frame = store.query(
        "SELECT uid::VARCHAR AS uid, account_target_allocation_uid::VARCHAR AS account_target_allocation_uid, position_set_time "
        "FROM position_set WHERE uid = TRY_CAST(? AS UUID)",
        [str(position_set_uid)],
    )
    if frame.height == 0:
        raise NotFoundError("position set", "uid", str(position_set_uid))
    with store.transaction() as con:
        con.execute("DELETE FROM target_positions WHERE position_set_uid = ?", [str(position_set_uid)])
    with store.transaction() as con:
        con.execute("DELETE FROM position_set WHERE uid = ?", [str(position_set_uid)])
    return frame.row(0, named=True)


# The cascade chain below account: (child table, FK column to parent) from parent to leaf.
_CHAIN: tuple[tuple[str, str], ...] = (
    ("account_target_allocation", "account_uid"),
    ("position_set", "account_target_allocation_uid"),
    ("target_positions", "position_set_uid"),
)


def _cascade(store: Store, start: str, parent_uid: str) -> None:
    """Delete the rows below ``parent_uid`` from ``start`` (``table.column``) down to the leaf.

    One committed transaction per level, leaf first (see the module docstring for why).
    """
    tables = [t for t, _ in _CHAIN]
    first = tables.index(start.split(".")[0])
    chain = _CHAIN[first:]
    # Subqueries that select each level's rows from the parent uid, leaf last.
    selectors: list[str] = []
    for i, (table, column) in enumerate(chain):
        source = "?" if i == 0 else f"(SELECT uid FROM {quote_ident(chain[i - 1][0])} WHERE {selectors[i - 1]})"
        selectors.append(f"{quote_ident(column)} {'=' if i == 0 else 'IN'} {source}")
    for (table, _), where in reversed(list(zip(chain, selectors))):
        with store.transaction() as con:
            con.execute(f"DELETE FROM {quote_ident(table)} WHERE {where}", [parent_uid])
