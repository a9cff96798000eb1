"""Portfolio compositions: what a portfolio holds, and from when (table ``portfolio_weights``).

A *composition* is every ``(constituent, weight)`` row stored for one portfolio at one UTC time; it
is in force from that time until the portfolio's next composition. A constituent is an asset or
another portfolio (a *nested* portfolio, design section 12), never both. Compositions are validated
as a whole (every bad row is reported at once) and written in one transaction. Weights are stored
as given: they need not sum to 1 and may be negative; nothing is renormalized.

A portfolio never contains itself, at any depth, over all its compositions at all times, and
nesting is at most :data:`MAX_DEPTH` levels deep: one recursive query over every stored edge
(portfolio -> constituent portfolio), run inside the write's transaction, refuses a composition
that would break either rule, naming the path (``BAL -> EQ -> BAL``).

>>> equal_weights(["BTC", "ETH"])
shape: (2, 2)
┌───────┬────────┐
│ asset ┆ weight │
│ ---   ┆ ---    │
│ str   ┆ f64    │
╞═══════╪════════╡
│ BTC   ┆ 0.5    │
│ ETH   ┆ 0.5    │
└───────┴────────┘
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from msm import audit, rules
from msm.errors import NO_VALUE, ConflictError, NestingError, RowError, ValidationError
from msm.expansion import MissingCompositionError, WeightsSource
from msm.io import frame_from_records, percent_to_fraction, read_table_file
from msm.rules import ROW, Rule, clean_text, enforce, is_uuid
from msm.services.registry import get_portfolio, reference_frame
from msm.store import Store, fetch
from msm.timeutil import format_utc, parse_utc, utc_now

__all__ = [
    "COMPOSITION_COLUMNS",
    "EMPTY_COMPOSITION",
    "MAX_DEPTH",
    "WeightsInput",
    "composition_history",
    "composition_rules",
    "duckdb_weights_source",
    "equal_weights",
    "fixed_weights",
    "read_composition",
    "save_composition",
    "save_composition_file",
    "validate_composition",
]

#: Columns a composition input may have: the constituent, an asset (``asset``: unique identifier or
#: uid; ``asset_uid``) or a portfolio (``portfolio``: unique identifier or uid;
#: ``constituent_portfolio_uid``), one per row, and its weight.
COMPOSITION_COLUMNS = ("asset_uid", "asset", "weight", "portfolio", "constituent_portfolio_uid")
#: A frame, a list of ``{"asset" | "portfolio": ..., "weight": ...}`` records, or ``{asset: weight}``.
WeightsInput = pl.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]
#: The deepest nesting allowed: a leaf asset is at most this many compositions below a target's portfolio.
MAX_DEPTH = 8

_ENTITY = "composition"
#: The message of a composition without rows.
EMPTY_COMPOSITION = "the composition is empty; give at least one (asset, weight) row"
_ASSET_IDENTIFIER = "compositions name assets by `asset` (unique identifier) or `asset_uid`, not `asset_identifier`"

_SELECT = """
SELECT w.portfolio_uid::VARCHAR             AS portfolio_uid,
       p.unique_identifier                  AS portfolio,
       w.time_index                         AS weights_time,
       w.asset_uid::VARCHAR                 AS asset_uid,
       a.unique_identifier                  AS asset,
       w.weight,
       w.constituent_type,
       w.constituent_portfolio_uid::VARCHAR AS constituent_portfolio_uid,
       c.unique_identifier                  AS constituent_portfolio
FROM portfolio_weights AS w
JOIN portfolio AS p ON p.uid = w.portfolio_uid
LEFT JOIN asset AS a ON a.uid = w.asset_uid
LEFT JOIN portfolio AS c ON c.uid = w.constituent_portfolio_uid
"""
#: Constituents sort assets first, then portfolios, each by unique identifier.
_ORDER = "w.constituent_type, coalesce(a.unique_identifier, c.unique_identifier), w.constituent_uid"


# -- builders ------------------------------------------------------------------------------------
def equal_weights(assets: Sequence[str]) -> pl.DataFrame:
    """``(asset, weight)`` with weight ``1/n`` for each of ``assets`` (unique identifiers or uids)."""
    names = [str(a) for a in assets]
    if not names:
        raise ValidationError([RowError(_ENTITY, None, "asset", NO_VALUE, "equal weights need at least one asset")])
    seen: dict[str, int] = {}
    duplicates = []
    for i, name in enumerate(names, start=1):
        if name in seen:
            duplicates.append(RowError(_ENTITY, i, "asset", name, f"is listed twice (first at row {seen[name]})"))
        seen.setdefault(name, i)
    if duplicates:
        raise ValidationError(duplicates)
    return pl.DataFrame(
        {"asset": names, "weight": [1.0 / len(names)] * len(names)}, schema={"asset": pl.String, "weight": pl.Float64}
    )


def fixed_weights(mapping: Mapping[str, Any]) -> pl.DataFrame:
    """``(asset, weight)`` from ``{asset: weight}``, in the mapping's order, values as given."""
    return _frame_from_mapping(mapping)


def _frame_from_mapping(mapping: Mapping[Any, Any]) -> pl.DataFrame:
    if not mapping:
        return pl.DataFrame(schema={"asset": pl.String, "weight": pl.Float64})
    return frame_from_records([{"asset": str(k), "weight": v} for k, v in mapping.items()])


def _input_frame(weights: WeightsInput) -> pl.DataFrame:
    if isinstance(weights, pl.DataFrame):
        return weights
    if isinstance(weights, Mapping):
        return _frame_from_mapping(weights)
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise ValidationError.single(
            _ENTITY,
            "weights",
            type(weights).__name__,
            "must be a polars DataFrame, a list of records or a {asset: weight} dict",
        )
    bad = [
        RowError(
            _ENTITY,
            i,
            "row",
            NO_VALUE,
            f'must be a mapping such as {{"asset": "BTC", "weight": 0.5}}, got a {type(r).__name__}',
        )
        for i, r in enumerate(weights, start=1)
        if not isinstance(r, Mapping)
    ]
    if bad:
        raise ValidationError(bad)
    return frame_from_records([dict(r) for r in weights]) if weights else pl.DataFrame()


# -- validation ----------------------------------------------------------------------------------
def _empty_composition() -> ValidationError:
    return ValidationError([RowError(_ENTITY, None, "rows", NO_VALUE, EMPTY_COMPOSITION)])


def _check_columns(frame: pl.DataFrame) -> None:
    """Refuse an empty composition, unknown columns, and a frame without a constituent or a numeric weight column."""
    if frame.height == 0 and not frame.columns:
        raise _empty_composition()
    errors = []
    for column in frame.columns:
        if column == "asset_identifier":
            errors.append(RowError(_ENTITY, None, column, NO_VALUE, _ASSET_IDENTIFIER))
        elif column not in COMPOSITION_COLUMNS:
            allowed = ", ".join(COMPOSITION_COLUMNS)
            errors.append(RowError(_ENTITY, None, column, NO_VALUE, f"is not a known column; allowed: {allowed}"))
    if not set(frame.columns) & {"asset", "asset_uid", "portfolio", "constituent_portfolio_uid"}:
        errors.append(
            RowError(
                _ENTITY,
                None,
                "asset",
                NO_VALUE,
                "column is missing: give `asset` (unique identifier) or `asset_uid`, or `portfolio` for a nested "
                "portfolio",
            )
        )
    if "weight" not in frame.columns:
        errors.append(RowError(_ENTITY, None, "weight", NO_VALUE, "column is missing"))
    elif not (frame.schema["weight"].is_numeric() or frame.schema["weight"] in (pl.String, pl.Null)):
        errors.append(
            RowError(_ENTITY, None, "weight", NO_VALUE, f"must hold numbers, got a {frame.schema['weight']} column")
        )
    if errors:
        raise ValidationError(errors)
    if frame.height == 0:
        raise _empty_composition()


def composition_rules(entity: str = _ENTITY) -> list[Rule]:
    """Every row rule of a composition, as data, over the columns :func:`validate_composition` prepares.

    A weight each, a number, finite; one constituent per row, an asset or a portfolio, never both;
    it is named by a well-formed uid or a unique identifier (or, in ``asset`` / ``portfolio``, the
    uid) of an existing asset or portfolio, both names agreeing; each constituent once. (A
    portfolio containing itself, at any depth, is refused by the graph check of the write.)
    """
    raw = pl.col("__raw_weight")
    has_asset = pl.col("asset").is_not_null() | pl.col("asset_uid").is_not_null()
    has_portfolio = pl.col("portfolio").is_not_null() | pl.col("constituent_portfolio_uid").is_not_null()
    return [
        rules.required(entity, "weight", raw.is_null()),
        rules.number(entity, "weight", raw),
        rules.finite(entity, "weight", raw),
        rules.required(
            entity,
            "asset",
            ~has_asset & ~has_portfolio,
            message="is required: give `asset` (unique identifier) or `asset_uid`, or `portfolio` for a nested "
            "portfolio",
        ),
        Rule(
            entity,
            "portfolio",
            "one_constituent",
            pl.lit("names both an asset ('")
            + pl.coalesce("asset", "asset_uid")
            + pl.lit("') and a portfolio; give one constituent per row, `asset` or `portfolio`"),
            has_asset & has_portfolio,
            pl.coalesce("portfolio", "constituent_portfolio_uid"),
        ),
        *_named_rules(entity, "asset", "asset", "asset_uid", "__a"),
        *_named_rules(entity, "portfolio", "portfolio", "constituent_portfolio_uid", "__p"),
    ]


def _named_rules(entity: str, kind: str, name: str, uid: str, prefix: str) -> list[Rule]:
    """The rules of one way of naming a constituent (``name``: identifier or uid; ``uid``)."""
    by_name = pl.coalesce(f"{prefix}_by_name", f"{prefix}_as_uid")
    duplicate = {
        "key": [f"{prefix}_uid"],
        "label": pl.lit(f"{kind} '") + pl.col(f"{prefix}_label") + pl.lit("'"),
        "scope": _ENTITY,
    }
    return [
        rules.well_formed_uuid(entity, uid),
        rules.known_uid(entity, kind, uid, well_formed=is_uuid(uid), found=pl.col(f"{prefix}_uid_name")),
        rules.known_identifier(entity, kind, name, resolved=by_name),
        rules.names_agree(entity, kind, uid=uid, identifier=name, resolved=by_name),
        rules.unique_within(entity, name, where=pl.col(name).is_not_null(), **duplicate),
        rules.unique_within(entity, uid, where=pl.col(name).is_null(), **duplicate),
    ]


def validate_composition(
    frame: pl.DataFrame, *, assets: pl.DataFrame, portfolios: pl.DataFrame | None = None, context: str | None = None
) -> pl.DataFrame:
    """Validate composition rows; return ``(__row, constituent_type, asset_uid, constituent_portfolio_uid,
    constituent_uid, asset, portfolio, weight)`` or raise one error.

    ``assets`` / ``portfolios`` are ``(uid, unique_identifier)`` frames of the existing assets and
    portfolios the rows may name. An ``asset`` (``portfolio``) value is a unique identifier, or else
    the uid of an existing one. Every bad value (unknown column, asset or portfolio, malformed uid,
    a row naming both or neither, missing / non-numeric / non-finite weight, duplicate constituent)
    is reported, each with its 1-based row number; ``context`` (which portfolio and time) heads the
    message. The rules are :func:`composition_rules`.
    """
    _check_columns(frame)
    names = ("asset_uid", "asset", "constituent_portfolio_uid", "portfolio")
    missing = {c: pl.lit(None, pl.String) for c in names if c not in frame.columns}
    frame = (
        frame.with_columns(**missing)
        .with_row_index(ROW, offset=1)
        .select(
            pl.col(ROW).cast(pl.Int64),
            clean_text("asset").alias("asset"),
            clean_text("asset_uid").str.to_lowercase().alias("asset_uid"),
            clean_text("portfolio").alias("portfolio"),
            clean_text("constituent_portfolio_uid").str.to_lowercase().alias("constituent_portfolio_uid"),
            pl.col("weight").alias("__raw_weight"),
        )
    )
    # Weights: text (CSV cells) is parsed here, so a bad cell is named rather than nulled.
    if frame.schema["__raw_weight"] == pl.String:
        frame = frame.with_columns(clean_text("__raw_weight").alias("__raw_weight"))
    frame = frame.with_columns(pl.col("__raw_weight").cast(pl.Float64, strict=False).alias("weight"))
    if portfolios is None:
        portfolios = pl.DataFrame(schema={"uid": pl.String, "unique_identifier": pl.String})
    frame = _resolve(
        _resolve(frame, assets, "asset", "asset_uid", "__a"),
        portfolios,
        "portfolio",
        "constituent_portfolio_uid",
        "__p",
    )
    enforce(frame, composition_rules(), summary=context)
    is_asset = pl.col("__a_uid").is_not_null()
    return frame.select(
        ROW,
        pl.when(is_asset).then(pl.lit("asset")).otherwise(pl.lit("portfolio")).alias("constituent_type"),
        pl.col("__a_uid").alias("asset_uid"),
        pl.col("__p_uid").alias("constituent_portfolio_uid"),
        pl.coalesce("__a_uid", "__p_uid").alias("constituent_uid"),
        pl.col("__a_label").alias("asset"),
        pl.col("__p_label").alias("portfolio"),
        "weight",
    )


def _resolve(frame: pl.DataFrame, ref: pl.DataFrame, name: str, uid: str, prefix: str) -> pl.DataFrame:
    """What each row's ``name`` / ``uid`` columns name: by uid, by unique identifier, or (in ``name``) by uid.

    Adds ``{prefix}_by_name``, ``{prefix}_uid_name``, ``{prefix}_as_uid(_name)``, then
    ``{prefix}_uid`` (the thing named, null when the row's two names disagree, so it is not also
    reported as a duplicate) and ``{prefix}_label`` (its unique identifier).
    """
    ref = ref.select(pl.col("uid").cast(pl.String).str.to_lowercase(), pl.col("unique_identifier").cast(pl.String))
    frame = (
        frame.join(ref.rename({"uid": f"{prefix}_by_name", "unique_identifier": name}), on=name, how="left")
        .join(ref.rename({"uid": uid, "unique_identifier": f"{prefix}_uid_name"}), on=uid, how="left")
        .join(
            ref.rename({"unique_identifier": f"{prefix}_as_uid_name"}).with_columns(
                pl.col("uid").alias(f"{prefix}_as_uid")
            ),
            left_on=pl.col(name).str.to_lowercase(),
            right_on="uid",
            how="left",
        )
        .sort(ROW)
    )
    given, named = pl.col(uid), pl.col(name)
    by_name = pl.coalesce(f"{prefix}_by_name", f"{prefix}_as_uid")
    conflict = given.is_not_null() & by_name.is_not_null() & (given != by_name)
    resolved = pl.when(~conflict.fill_null(False)).then(
        pl.coalesce(pl.when(pl.col(f"{prefix}_uid_name").is_not_null()).then(given), by_name)
    )
    label = pl.coalesce(
        f"{prefix}_uid_name", pl.when(pl.col(f"{prefix}_by_name").is_not_null()).then(named), f"{prefix}_as_uid_name"
    )
    return frame.with_columns(resolved.alias(f"{prefix}_uid"), label.alias(f"{prefix}_label"))


# -- writes --------------------------------------------------------------------------------------
def save_composition(
    store: Store,
    portfolio: str,
    at: datetime | str,
    weights: WeightsInput,
    *,
    overwrite: bool = False,
    actor: str | None = None,
    reason: str | None = None,
) -> pl.DataFrame:
    """Store the composition of ``portfolio`` (unique identifier or uid) taking effect at ``at``.

    ``at`` is an aware time (naive times are refused). ``weights`` is a frame or records with, per
    row, ``asset`` (unique identifier) or ``asset_uid``, or ``portfolio`` (a nested portfolio), and
    ``weight``; or a ``{asset: weight}`` dict. All rows are validated first, then written in one
    transaction, in which one graph query refuses a portfolio that would contain itself at any depth
    (:class:`~msm.errors.NestingError`, naming the path) or nest deeper than :data:`MAX_DEPTH`. A
    composition already stored at ``(portfolio, at)`` is refused with
    :class:`~msm.errors.ConflictError` unless ``overwrite``, which replaces it whole. Returns the
    stored composition (as :func:`read_composition`). One audit event (``save`` or ``overwrite``,
    the weights before and after by constituent) is recorded by ``actor`` for ``reason`` in the same
    transaction.
    """
    with audit.acting(actor, reason):
        return _save_composition(store, portfolio, at, weights, overwrite=overwrite)


def _save_composition(
    store: Store, portfolio: str, at: datetime | str, weights: WeightsInput, *, overwrite: bool
) -> pl.DataFrame:
    at = parse_utc(at, field="at", entity=_ENTITY)
    target = get_portfolio(store, portfolio)
    frame = _input_frame(weights)
    _check_columns(frame)
    where = f"composition of portfolio '{target['unique_identifier']}' at {format_utc(at)}"
    rows = validate_composition(
        frame, assets=_named(store, frame, "asset"), portfolios=_named(store, frame, "portfolio"), context=where
    )
    itself = rows.filter(pl.col("constituent_portfolio_uid") == str(target["uid"]))[ROW]
    if itself.len():
        name = target["unique_identifier"]
        raise NestingError([name, name], kind="cycle", row=int(itself[0]), max_depth=MAX_DEPTH, summary=where)
    data = pa.table(
        {
            c: rows[c].to_arrow()
            for c in ("constituent_type", "constituent_uid", "asset_uid", "constituent_portfolio_uid", "weight")
        }
    )
    key = {
        "entity": _ENTITY,
        "key": "portfolio, time_index",
        "value": {"portfolio": target["unique_identifier"], "time_index": at},
    }
    try:
        with store.transaction() as con:
            ((before,),) = con.execute(_WEIGHTS_JSON, [target["uid"], at]).fetchall()
            existing = _clear_slot(con, target, at, overwrite=overwrite, where=where, key=key)
            con.register("__composition", data)
            try:
                con.execute(
                    "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, "
                    "asset_uid, constituent_portfolio_uid, weight) SELECT $at, $portfolio_uid, constituent_type, "
                    "CAST(constituent_uid AS UUID), CAST(asset_uid AS UUID), CAST(constituent_portfolio_uid AS UUID), "
                    "weight FROM __composition",
                    {"at": at, "portfolio_uid": target["uid"]},
                )
            finally:
                con.unregister("__composition")
            if rows["constituent_type"].eq("portfolio").any():
                _check_nesting(con, target, rows, where)  # the rollback undoes the insert when it raises
            ((after,),) = con.execute(_WEIGHTS_JSON, [target["uid"], at]).fetchall()
            audit.record(
                con,
                "overwrite" if existing else "save",
                "composition",
                entity_uid=target["uid"],
                before={"portfolio": target["unique_identifier"], "time_index": at, **json.loads(before)}
                if existing
                else None,
                after={"portfolio": target["unique_identifier"], "time_index": at, **json.loads(after)},
            )
    except duckdb.ConstraintException as exc:  # a concurrent writer got there first
        detail = str(exc).split("\n")[0].removeprefix("Constraint Error: ")
        raise ConflictError(f"{where} was refused by the database: {detail}", **key) from None
    return read_composition(store, target["uid"], as_of=at)


#: One composition as a JSON object: its constituent count, weight sum and weights by constituent identifier
#: (an asset's, or a nested portfolio's).
_WEIGHTS_JSON = """
SELECT json_object('assets', count(*), 'weight_sum', coalesce(sum(w.weight), 0.0),
                   'weights', coalesce(json_group_object(coalesce(a.unique_identifier, p.unique_identifier), w.weight),
                                       '{}'::JSON))::VARCHAR
FROM portfolio_weights AS w
LEFT JOIN asset AS a ON a.uid = w.asset_uid
LEFT JOIN portfolio AS p ON p.uid = w.constituent_portfolio_uid
WHERE w.portfolio_uid = ? AND w.time_index = ?
"""


def _clear_slot(
    con: duckdb.DuckDBPyConnection,
    target: Mapping[str, Any],
    at: datetime,
    *,
    overwrite: bool,
    where: str,
    key: dict[str, Any],
) -> int:
    """Refuse a composition already stored at ``(portfolio, at)`` unless ``overwrite``, which deletes it first.

    Returns how many rows it held (0: the slot was free).
    """
    ((existing, n_nested),) = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE constituent_type = 'portfolio') FROM portfolio_weights "
        "WHERE portfolio_uid = ? AND time_index = ?",
        [target["uid"], at],
    ).fetchall()  # fetchall drains the result (DuckDB 2 refuses new work on an unfinished one)
    if existing and not overwrite:
        counts = ((existing - n_nested, "asset"), (n_nested, "portfolio"))
        held = [f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in counts if n]
        raise ConflictError(
            f"{where} already exists ({', '.join(held)}); "
            "pass overwrite=True (--overwrite) to replace it whole, or choose another time",
            **key,
        )
    if existing:
        con.execute("DELETE FROM portfolio_weights WHERE portfolio_uid = ? AND time_index = ?", [target["uid"], at])
    return int(existing)


def _named(store: Store, frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    """The assets (``kind='asset'``) or portfolios the rows may name: by identifier or by uid (in either column)."""
    uid_column = "asset_uid" if kind == "asset" else "constituent_portfolio_uid"
    named = frame[kind].cast(pl.String) if kind in frame.columns else None
    columns = [frame[c].cast(pl.String) for c in (uid_column, kind) if c in frame.columns]
    uids = pl.concat(columns) if columns else pl.Series([], dtype=pl.String)
    return reference_frame(store, kind, uids=uids, identifiers=named)


# One query over every stored edge (portfolio -> constituent portfolio, at any time), run after the
# new rows are in (inside the write's transaction, so the edges are the stored ones plus the new).
# The graph was acyclic before, so a new cycle passes through the written portfolio $p: walk down
# from it (a walk that comes back to $p is a cycle) and up to its ancestors; the deepest chain
# through $p is the longest way up plus the longest way down. Walks stop at $p, at a node already
# on their path, and past the depth limit, so the query always ends.
_NESTING = """
WITH RECURSIVE
edges AS (
    SELECT DISTINCT portfolio_uid AS parent, constituent_portfolio_uid AS child
    FROM portfolio_weights WHERE constituent_type = 'portfolio'
),
down(node, path, depth) AS (
    SELECT child, [parent, child], 1 FROM edges WHERE parent = $p
    UNION ALL
    SELECT e.child, list_append(d.path, e.child), d.depth + 1
    FROM down AS d JOIN edges AS e ON e.parent = d.node
    WHERE d.node <> $p AND d.depth <= $limit AND (e.child = $p OR NOT list_contains(d.path, e.child))
),
up(node, path, depth) AS (
    SELECT parent, [parent, child], 1 FROM edges WHERE child = $p
    UNION ALL
    SELECT e.parent, list_prepend(e.parent, u.path), u.depth + 1
    FROM up AS u JOIN edges AS e ON e.child = u.node
    WHERE u.node <> $p AND u.depth <= $limit AND NOT list_contains(u.path, e.parent)
)
SELECT
    (SELECT path FROM down WHERE node = $p ORDER BY depth, path LIMIT 1)::VARCHAR[] AS cycle,
    (SELECT path FROM down WHERE node <> $p ORDER BY depth DESC, path LIMIT 1)::VARCHAR[] AS deepest_down,
    (SELECT path FROM up WHERE node <> $p ORDER BY depth DESC, path LIMIT 1)::VARCHAR[] AS deepest_up
"""


def _check_nesting(con: duckdb.DuckDBPyConnection, target: Mapping[str, Any], rows: pl.DataFrame, where: str) -> None:
    """Raise :class:`~msm.errors.NestingError` when the stored compositions now hold a cycle or nest too deep."""
    ((cycle, down, up),) = con.execute(_NESTING, {"p": target["uid"], "limit": MAX_DEPTH}).fetchall()
    me = str(target["uid"])
    if cycle:
        path = [me, *cycle[1:]]
        kind = "cycle"
    else:
        chain = (up or [me])[:-1] + (down or [me])
        if len(chain) <= MAX_DEPTH:  # n portfolios in a chain: its leaves are n compositions deep
            return
        path, kind = chain, "depth"
    names = dict(
        con.execute(
            "SELECT uid::VARCHAR, unique_identifier FROM portfolio WHERE list_contains($uids, uid::VARCHAR)",
            {"uids": sorted(set(path))},
        ).fetchall()
    )
    step = path[path.index(me) + 1] if me in path[:-1] else path[1]
    matches = rows.filter(pl.col("constituent_portfolio_uid") == step)[ROW]
    row = int(matches[0]) if matches.len() else None
    shown = [names.get(u, u) for u in path]
    raise NestingError(
        shown, kind=kind, row=row, step=names.get(step, step), max_depth=MAX_DEPTH, entity=_ENTITY, summary=where
    )


def save_composition_file(
    store: Store,
    portfolio: str,
    at: datetime | str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    percent: bool = False,
    sheet: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> pl.DataFrame:
    """:func:`save_composition` from a CSV / JSON / Parquet / Excel file with ``asset`` or ``asset_uid`` and ``weight``.

    ``percent``: the file's weights are in percent (an issuer file summing to 100); they are
    divided by 100 and stored as that, never renormalized.
    """
    at = parse_utc(at, field="at", entity=_ENTITY)
    rows = read_table_file(path, entity=_ENTITY, sheet=sheet)
    if percent:
        rows = percent_to_fraction(rows, "weight", entity=_ENTITY)
    return save_composition(store, portfolio, at, rows, overwrite=overwrite, actor=actor, reason=reason)


# -- reads ---------------------------------------------------------------------------------------
def read_composition(store: Store, portfolio: str, *, as_of: datetime | str | None = None) -> pl.DataFrame:
    """The composition of ``portfolio`` in force at ``as_of`` (latest at or before it; default now).

    Columns ``portfolio_uid, portfolio, weights_time, asset_uid, asset, weight, constituent_type,
    constituent_portfolio_uid, constituent_portfolio`` (``asset`` / ``constituent_portfolio``: the
    constituent's unique identifier, whichever it is), assets first, each kind by identifier.
    :class:`~msm.expansion.MissingCompositionError` (a ``NotFoundError``) names the portfolio and
    time when it has none.
    """
    at = parse_utc(as_of, field="as_of", entity=_ENTITY) if as_of is not None else utc_now()
    target = get_portfolio(store, portfolio)
    frame = store.query(
        _SELECT
        + """
        WHERE w.portfolio_uid = $uid
          AND w.time_index = (
              SELECT max(time_index) FROM portfolio_weights WHERE portfolio_uid = $uid AND time_index <= $at
          )
        ORDER BY """
        + _ORDER,
        {"uid": target["uid"], "at": at},
    )
    if frame.height == 0:
        raise MissingCompositionError([(target["unique_identifier"], at)])
    return frame


def composition_history(store: Store, portfolio: str) -> pl.DataFrame:
    """Every composition of ``portfolio``, newest first.

    Columns ``portfolio_uid, portfolio, weights_time, n_assets, weight_sum, n_portfolios``:
    ``n_assets`` counts every constituent row, ``n_portfolios`` those that are nested portfolios.
    """
    target = get_portfolio(store, portfolio)
    return store.query(
        """
        SELECT w.portfolio_uid::VARCHAR AS portfolio_uid, p.unique_identifier AS portfolio,
               w.time_index AS weights_time, count(*) AS n_assets, sum(w.weight) AS weight_sum,
               count(*) FILTER (WHERE w.constituent_type = 'portfolio') AS n_portfolios
        FROM portfolio_weights AS w
        JOIN portfolio AS p ON p.uid = w.portfolio_uid
        WHERE w.portfolio_uid = ?
        GROUP BY ALL
        ORDER BY weights_time DESC
        """,
        [target["uid"]],
    )


def duckdb_weights_source(store: Store) -> WeightsSource:
    """The :data:`msm.expansion.WeightsSource` reading ``portfolio_weights`` from ``store``.

    One query per call: the compositions of the given portfolio uids and of every portfolio nested
    in them (at any depth, found by a recursive query) at or before the bound (all of them when the
    bound is ``None``), each row with its constituent's and portfolio's unique identifiers, out
    through Arrow.

    >>> from msm.expansion import expand_targets
    >>> # expand_targets(targets, duckdb_weights_source(store), weights_as_of="position-set")
    """

    def source(portfolio_uids: list[str], until: datetime | None) -> pl.DataFrame:
        """The composition history of ``portfolio_uids`` up to ``until`` (every time when ``None``)."""
        wanted = pa.table({"uid": pa.array([str(u) for u in portfolio_uids], pa.string())})
        bounded = "AND w.time_index <= $until" if until is not None else ""
        with store.connect() as con:
            con.register("__wanted_portfolios", wanted)
            try:
                return fetch(
                    con,
                    f"""
                    WITH RECURSIVE reach(uid) AS (
                        SELECT TRY_CAST(uid AS UUID) FROM __wanted_portfolios
                        UNION
                        SELECT w.constituent_portfolio_uid
                        FROM portfolio_weights AS w JOIN reach AS r ON w.portfolio_uid = r.uid
                        WHERE w.constituent_type = 'portfolio' {bounded}
                    )
                    SELECT w.time_index, w.portfolio_uid::VARCHAR AS portfolio_uid,
                           w.asset_uid::VARCHAR AS asset_uid, a.unique_identifier AS asset,
                           p.unique_identifier AS portfolio, w.weight, w.constituent_type,
                           w.constituent_portfolio_uid::VARCHAR AS constituent_portfolio_uid,
                           c.unique_identifier AS constituent_portfolio
                    FROM portfolio_weights AS w
                    LEFT JOIN asset AS a ON a.uid = w.asset_uid
                    LEFT JOIN portfolio AS c ON c.uid = w.constituent_portfolio_uid
                    JOIN portfolio AS p ON p.uid = w.portfolio_uid
                    WHERE w.portfolio_uid IN (SELECT uid FROM reach) {bounded}
                    """,
                    {"until": until} if until is not None else None,
                )
            finally:
                con.unregister("__wanted_portfolios")

    return source


def composition_rows(store: Store, portfolio: str) -> pl.DataFrame:
    """Every stored composition row of ``portfolio`` (the columns of :func:`read_composition`), oldest first."""
    target = get_portfolio(store, portfolio)
    return store.query(_SELECT + "WHERE w.portfolio_uid = ? ORDER BY w.time_index, " + _ORDER, [target["uid"]])
