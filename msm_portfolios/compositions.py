"""Portfolio compositions: what a portfolio holds, and from when (table ``portfolio_weights``).

A *composition* is every ``(asset, weight)`` row stored for one portfolio at one UTC time; it is in
force from that time until the portfolio's next composition. Compositions are validated as a
whole (every bad row is reported at once) and written in one transaction. Weights are stored as
given: they need not sum to 1 and may be negative; nothing is renormalized.

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

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from msm import rules
from msm.errors import NO_VALUE, ConflictError, RowError, ValidationError
from msm.expansion import MissingCompositionError, WeightsSource
from msm.io import frame_from_records, percent_to_fraction, read_table_file
from msm.rules import ROW, Rule, clean_text, enforce, is_uuid
from msm.services.registry import get_portfolio, reference_frame
from msm.store import Store, fetch
from msm.timeutil import format_utc, parse_utc, utc_now

__all__ = [
    "COMPOSITION_COLUMNS",
    "EMPTY_COMPOSITION",
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

#: Columns a composition input may have: the asset (by uid or unique identifier) and its weight.
COMPOSITION_COLUMNS = ("asset_uid", "asset", "weight")
#: A frame, a list of ``{"asset" | "asset_uid": ..., "weight": ...}`` records, or ``{asset: weight}``.
WeightsInput = pl.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]

_ENTITY = "composition"
#: The message of a composition without rows.
EMPTY_COMPOSITION = "the composition is empty; give at least one (asset, weight) row"
_ASSET_IDENTIFIER = "compositions name assets by `asset` (unique identifier) or `asset_uid`, not `asset_identifier`"

_SELECT = """
SELECT w.portfolio_uid::VARCHAR AS portfolio_uid,
       p.unique_identifier      AS portfolio,
       w.time_index             AS weights_time,
       w.asset_uid::VARCHAR     AS asset_uid,
       a.unique_identifier      AS asset,
       w.weight
FROM portfolio_weights AS w
JOIN portfolio AS p ON p.uid = w.portfolio_uid
JOIN asset AS a ON a.uid = w.asset_uid
"""


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
    """Refuse an empty composition, unknown columns, and a frame without an asset or a numeric weight column."""
    if frame.height == 0 and not frame.columns:
        raise _empty_composition()
    errors = []
    for column in frame.columns:
        if column == "asset_identifier":
            errors.append(RowError(_ENTITY, None, column, NO_VALUE, _ASSET_IDENTIFIER))
        elif column not in COMPOSITION_COLUMNS:
            allowed = ", ".join(COMPOSITION_COLUMNS)
            errors.append(RowError(_ENTITY, None, column, NO_VALUE, f"is not a known column; allowed: {allowed}"))
    if "asset" not in frame.columns and "asset_uid" not in frame.columns:
        errors.append(
            RowError(
                _ENTITY, None, "asset", NO_VALUE, "column is missing: give `asset` (unique identifier) or `asset_uid`"
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

    A weight each, a number, finite; the asset named by a well-formed uid or a unique identifier
    (or, in ``asset``, the uid) of an existing asset, both names agreeing; each asset once.
    """
    raw, name = pl.col("__raw_weight"), pl.col("asset")
    by_name = pl.coalesce("__by_name", "__asset_as_uid")
    duplicate = {"key": ["__uid"], "label": pl.lit("asset '") + pl.col("__label") + pl.lit("'"), "scope": _ENTITY}
    return [
        rules.required(entity, "weight", raw.is_null()),
        rules.number(entity, "weight", raw),
        rules.finite(entity, "weight", raw),
        rules.well_formed_uuid(entity, "asset_uid"),
        rules.known_uid(entity, "asset", "asset_uid", well_formed=is_uuid("asset_uid"), found=pl.col("__uid_name")),
        rules.known_identifier(entity, "asset", "asset", resolved=by_name),
        rules.names_agree(entity, "asset", uid="asset_uid", identifier="asset", resolved=by_name),
        rules.required(
            entity,
            "asset",
            pl.col("asset_uid").is_null() & name.is_null(),
            message="is required: give `asset` (unique identifier) or `asset_uid`",
        ),
        rules.unique_within(entity, "asset", where=name.is_not_null(), **duplicate),
        rules.unique_within(entity, "asset_uid", where=name.is_null(), **duplicate),
    ]


def validate_composition(frame: pl.DataFrame, *, assets: pl.DataFrame, context: str | None = None) -> pl.DataFrame:
    """Validate composition rows; return ``(__row, asset_uid, asset, weight)`` or raise one error.

    ``assets`` is a ``(uid, unique_identifier)`` frame of the existing assets the rows may name.
    An ``asset`` value is a unique identifier, or else the uid of an existing asset. Every bad
    value (unknown column or asset, malformed uid, missing / non-numeric / non-finite weight,
    duplicate asset) is reported, each with its 1-based row number; ``context`` (which portfolio
    and time) heads the message. The rules are :func:`composition_rules`.
    """
    _check_columns(frame)
    missing = {c: pl.lit(None, pl.String) for c in ("asset_uid", "asset") if c not in frame.columns}
    frame = (
        frame.with_columns(**missing)
        .with_row_index(ROW, offset=1)
        .select(
            pl.col(ROW).cast(pl.Int64),
            clean_text("asset").alias("asset"),
            clean_text("asset_uid").str.to_lowercase().alias("asset_uid"),
            pl.col("weight").alias("__raw_weight"),
        )
    )
    # Weights: text (CSV cells) is parsed here, so a bad cell is named rather than nulled.
    if frame.schema["__raw_weight"] == pl.String:
        frame = frame.with_columns(clean_text("__raw_weight").alias("__raw_weight"))
    frame = _resolve_assets(
        frame.with_columns(pl.col("__raw_weight").cast(pl.Float64, strict=False).alias("weight")), assets
    )
    enforce(frame, composition_rules(), summary=context)
    return frame.select(ROW, pl.col("__uid").alias("asset_uid"), pl.col("__label").alias("asset"), "weight")


def _resolve_assets(frame: pl.DataFrame, assets: pl.DataFrame) -> pl.DataFrame:
    """The asset of each row: by uid, by unique identifier, or (in ``asset``) by the uid of an existing asset.

    Adds ``__by_name``, ``__uid_name``, ``__asset_as_uid(_name)``, then ``__uid`` (the asset, null
    when the row's two names disagree, so it is not also reported as a duplicate) and ``__label``.
    """
    ref = assets.select(pl.col("uid").cast(pl.String).str.to_lowercase(), pl.col("unique_identifier").cast(pl.String))
    frame = (
        frame.join(ref.rename({"uid": "__by_name", "unique_identifier": "asset"}), on="asset", how="left")
        .join(ref.rename({"uid": "asset_uid", "unique_identifier": "__uid_name"}), on="asset_uid", how="left")
        .join(
            ref.rename({"unique_identifier": "__asset_as_uid_name"}).with_columns(
                pl.col("uid").alias("__asset_as_uid")
            ),
            left_on=pl.col("asset").str.to_lowercase(),
            right_on="uid",
            how="left",
        )
        .sort(ROW)
    )
    uid, name = pl.col("asset_uid"), pl.col("asset")
    by_name = pl.coalesce("__by_name", "__asset_as_uid")
    conflict = uid.is_not_null() & by_name.is_not_null() & (uid != by_name)
    resolved = pl.when(~conflict.fill_null(False)).then(
        pl.coalesce(pl.when(pl.col("__uid_name").is_not_null()).then(uid), by_name)
    )
    label = pl.coalesce("__uid_name", pl.when(pl.col("__by_name").is_not_null()).then(name), "__asset_as_uid_name")
    return frame.with_columns(resolved.alias("__uid"), label.alias("__label"))


# -- writes --------------------------------------------------------------------------------------
def save_composition(
    store: Store,
    portfolio: str,
    at: datetime | str,
    weights: WeightsInput,
    *,
    overwrite: bool = False,
) -> pl.DataFrame:
    """Store the composition of ``portfolio`` (unique identifier or uid) taking effect at ``at``.

    ``at`` is an aware time (naive times are refused). ``weights`` is a frame or records with
    ``asset`` (unique identifier) or ``asset_uid`` and ``weight``, or a ``{asset: weight}`` dict.
    All rows are validated first, then written in one transaction. A composition already stored at
    ``(portfolio, at)`` is refused with :class:`~msm.errors.ConflictError` unless ``overwrite``,
    which replaces it whole. Returns the stored composition (as :func:`read_composition`).
    """
    at = parse_utc(at, field="at", entity=_ENTITY)
    target = get_portfolio(store, portfolio)
    frame = _input_frame(weights)
    _check_columns(frame)
    # The assets the rows may name: by identifier, or by uid (an `asset` cell may hold a uid too).
    named = frame["asset"].cast(pl.String) if "asset" in frame.columns else None
    uids = pl.concat([frame[c].cast(pl.String) for c in ("asset_uid", "asset") if c in frame.columns])
    assets = reference_frame(store, "asset", uids=uids, identifiers=named)
    where = f"composition of portfolio '{target['unique_identifier']}' at {format_utc(at)}"
    rows = validate_composition(frame, assets=assets, context=where)

    data = pa.table({"asset_uid": rows["asset_uid"].to_arrow(), "weight": rows["weight"].to_arrow()})
    key = {
        "entity": _ENTITY,
        "key": "portfolio, time_index",
        "value": {"portfolio": target["unique_identifier"], "time_index": at},
    }
    try:
        with store.transaction() as con:
            ((existing,),) = con.execute(
                "SELECT count(*) FROM portfolio_weights WHERE portfolio_uid = ? AND time_index = ?", [target["uid"], at]
            ).fetchall()  # fetchall drains the result (DuckDB 2 refuses new work on an unfinished one)
            if existing and not overwrite:
                raise ConflictError(
                    f"{where} already exists ({existing} asset{'s' if existing != 1 else ''}); "
                    "pass overwrite=True (--overwrite) to replace it whole, or choose another time",
                    **key,
                )
            if existing:
                con.execute(
                    "DELETE FROM portfolio_weights WHERE portfolio_uid = ? AND time_index = ?", [target["uid"], at]
                )
            con.register("__composition", data)
            try:
                con.execute(
                    "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, "
                    "asset_uid, weight) SELECT $at, $portfolio_uid, 'asset', CAST(asset_uid AS UUID), "
                    "CAST(asset_uid AS UUID), weight FROM __composition",
                    {"at": at, "portfolio_uid": target["uid"]},
                )
            finally:
                con.unregister("__composition")
    except duckdb.ConstraintException as exc:  # a concurrent writer got there first
        detail = str(exc).split("\n")[0].removeprefix("Constraint Error: ")
        raise ConflictError(f"{where} was refused by the database: {detail}", **key) from None
    return read_composition(store, target["uid"], as_of=at)


def save_composition_file(
    store: Store,
    portfolio: str,
    at: datetime | str,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    percent: bool = False,
    sheet: str | None = None,
) -> pl.DataFrame:
    """:func:`save_composition` from a CSV / JSON / Parquet / Excel file with ``asset`` or ``asset_uid`` and ``weight``.

    ``percent``: the file's weights are in percent (an issuer file summing to 100); they are
    divided by 100 and stored as that, never renormalized.
    """
    at = parse_utc(at, field="at", entity=_ENTITY)
    rows = read_table_file(path, entity=_ENTITY, sheet=sheet)
    if percent:
        rows = percent_to_fraction(rows, "weight", entity=_ENTITY)
    return save_composition(store, portfolio, at, rows, overwrite=overwrite)


# -- reads ---------------------------------------------------------------------------------------
def read_composition(store: Store, portfolio: str, *, as_of: datetime | str | None = None) -> pl.DataFrame:
    """The composition of ``portfolio`` in force at ``as_of`` (latest at or before it; default now).

    Columns ``portfolio_uid, portfolio, weights_time, asset_uid, asset, weight``, by asset.
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
        ORDER BY a.unique_identifier, w.asset_uid
        """,
        {"uid": target["uid"], "at": at},
    )
    if frame.height == 0:
        raise MissingCompositionError([(target["unique_identifier"], at)])
    return frame


def composition_history(store: Store, portfolio: str) -> pl.DataFrame:
    """Every composition of ``portfolio``, newest first.

    Columns ``portfolio_uid, portfolio, weights_time, n_assets, weight_sum``.
    """
    target = get_portfolio(store, portfolio)
    return store.query(
        """
        SELECT w.portfolio_uid::VARCHAR AS portfolio_uid, p.unique_identifier AS portfolio,
               w.time_index AS weights_time, count(*) AS n_assets, sum(w.weight) AS weight_sum
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

    One query per call: the compositions of the given portfolio uids at or before the bound (all
    of them when the bound is ``None``), each row with its asset's and portfolio's unique
    identifiers, out through Arrow.

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
                    SELECT w.time_index, w.portfolio_uid::VARCHAR AS portfolio_uid, w.asset_uid::VARCHAR AS asset_uid,
                           a.unique_identifier AS asset, p.unique_identifier AS portfolio, w.weight
                    FROM portfolio_weights AS w
                    JOIN asset AS a ON a.uid = w.asset_uid
                    JOIN portfolio AS p ON p.uid = w.portfolio_uid
                    WHERE w.portfolio_uid IN (SELECT TRY_CAST(uid AS UUID) FROM __wanted_portfolios) {bounded}
                    """,
                    {"until": until} if until is not None else None,
                )
            finally:
                con.unregister("__wanted_portfolios")

    return source


def composition_rows(store: Store, portfolio: str) -> pl.DataFrame:
    """Every stored composition row of ``portfolio`` (the columns of :func:`read_composition`), oldest first."""
    target = get_portfolio(store, portfolio)
    return store.query(
        _SELECT + "WHERE w.portfolio_uid = ? ORDER BY w.time_index, a.unique_identifier", [target["uid"]]
    )
