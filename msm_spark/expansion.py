"""The look-through of :func:`msm.expansion.expand_targets` as Spark DataFrame operations.

Same semantics, same rows and columns as the core's look-through, over DataFrames of any size:

- asset rows pass through; a portfolio row becomes one row per constituent of its portfolio's
  composition at the weights time (``now``, an explicit UTC time, or ``position-set``: each set's
  own ``time_index``), the latest at or before it, whose time is the row's ``weights_time``;
- ``weight_notional_exposure`` and ``constant_notional_exposure`` are multiplied by the
  constituent weight; ``single_asset_quantity`` only exists on asset rows;
- a portfolio with no composition at or before its weights time fails the job with
  :class:`msm.expansion.MissingCompositionError` (the core's own message);
- compositions whose weights do not sum to 1 (beyond :data:`msm.expansion.WEIGHT_SUM_TOLERANCE`)
  are expanded as stored and reported in ``diagnostics``;
- ``net``: one row per (``position_set_uid``, ``asset_uid``) with summed exposures (a sum of nothing
  but nulls stays null) and ``n_sources``.

How it maps onto Spark, without a Python UDF and without bringing the data to the driver:

- the as-of choice of a composition is a window, not a range join: the distinct (portfolio,
  weights time) pairs and the distinct composition times are put in one frame, ordered per
  portfolio by time (a composition before a pair at the same instant, "at or before"), and each
  pair takes the last composition time seen (``last(..., ignorenulls=True)``). Its cost grows with
  the number of pairs and compositions, never with their product;
- the constituents are an equi-join of the portfolio rows with the compositions used, on
  (``portfolio_uid``, ``weights_time``); asset names come from a small dictionary (direct target
  rows first, then compositions, as the core does) joined by broadcast;
- only small results reach the driver: the missing (portfolio, time) pairs when there are any, the
  few composition rows that break a rule, and the diagnostics.

Inputs are the datasets of ``msm export``: ``target_positions`` (storage-shaped
target rows with ``unique_identifier``, ``account`` and ``allocation``) and ``portfolio_weights``
(:data:`msm.services.export.WEIGHTS_EXPORT_COLUMNS`). Their rows were checked by the database the
export came from (every CHECK of ``target_positions``, the key and NOT NULL finite weight of
``portfolio_weights``), so target rows are not re-validated here; the compositions a job uses are,
as in the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from msm.contract import EXPOSURE_COLUMNS, SCALED_EXPOSURES
from msm.errors import NO_VALUE, RowError, ValidationError
from msm.expansion import (
    DIAGNOSTIC_COLUMNS,
    EXPANSION_COLUMNS,
    MAX_DEPTH,
    NET_COLUMNS,
    PATH_SEPARATOR,
    WEIGHT_SUM_TOLERANCE,
    MissingCompositionError,
    WeightsAsOf,
    check_composition_rows,
    weights_time,
)
from msm.validation import NO_EXPOSURE_COLUMN

__all__ = ["LABEL_COLUMNS", "SparkExpansion", "expand_targets_spark", "weights_time_bound"]

#: The export's labels of each position set, carried onto every output row (as ``msm export --expanded`` does).
LABEL_COLUMNS = ("account", "allocation")

_TARGETS = "targets"
_WEIGHTS = "portfolio weights"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: How many composition rows that break a rule are brought to the driver to name them in the error.
_MAX_BAD_ROWS = 1_000


@dataclass(frozen=True, eq=False)
class SparkExpansion:
    """The result of :func:`expand_targets_spark`.

    ``rows``: a lazy Spark DataFrame of :data:`msm.expansion.EXPANSION_COLUMNS` (or, with ``net``,
    ``NET_COLUMNS``) followed by :data:`LABEL_COLUMNS`. ``diagnostics``: a (small) polars frame as the
    core's, :data:`msm.expansion.DIAGNOSTIC_COLUMNS`, one row per composition used whose weights do
    not sum to 1. ``weights_time_bound``: the instant ``now`` or
    the explicit time resolved to (``None`` for ``position-set``).
    """

    rows: DataFrame
    diagnostics: pl.DataFrame
    weights_as_of: str | datetime
    weights_time_bound: datetime | None
    net: bool


weights_time_bound = weights_time  # the core's own reading of weights_as_of


def expand_targets_spark(
    targets: DataFrame,
    weights: DataFrame,
    *,
    weights_as_of: WeightsAsOf = "now",
    net: bool = False,
    now: datetime | None = None,
) -> SparkExpansion:
    """Expand the portfolio target rows of ``targets`` with the compositions in ``weights``.

    ``targets``: the rows of an export's ``target_positions`` (other columns are ignored; ``account``,
    ``allocation``, ``target_uid`` and ``unique_identifier`` may be absent). ``weights``: an export's
    ``portfolio_weights`` (``asset`` and ``portfolio`` may be absent). The checks run now (missing
    compositions, bad composition rows): they raise :class:`msm.errors.MsmError` subclasses with the
    core's messages. The rows come back as a lazy DataFrame, the diagnostics as a polars frame.
    """
    bound, asked = weights_time_bound(weights_as_of, now)
    frame = _normalize_targets(targets)
    history = _normalize_weights(weights)

    is_portfolio = F.col("target_type") == "portfolio"
    ported = frame.filter(is_portfolio).withColumn(
        "__wtime", _timestamp(bound) if bound is not None else F.col("time_index")
    )
    direct = frame.filter(F.col("target_type") == "asset")

    # The compositions up to the bound (as the core's weights source; nested portfolios' too).
    if bound is not None:
        history = history.filter(F.col("time_index") <= _timestamp(bound))

    # Which composition each distinct (portfolio, weights time) uses.
    pairs = ported.groupBy("portfolio_uid", "__wtime").agg(F.min("unique_identifier").alias("__pname"))
    # Small (distinct pairs) and read by the checks and by the output: computed once.
    pairs = _as_of(pairs, history.select("portfolio_uid", "time_index").distinct()).cache()
    leaves, used_keys = _flatten(pairs, history)
    used = history.join(used_keys, ["portfolio_uid", "time_index"], "left_semi")
    diagnostics = _check(pairs, history, used)

    # One output row per (portfolio row, leaf asset); asset rows pass through.
    expanded = _passed(direct).unionByName(_via(ported, pairs, leaves))
    rows = _output(expanded, _asset_names(direct, used), net)
    return SparkExpansion(rows, diagnostics, asked, bound, net)


#: A composition row's constituent columns -> their names in a level's rows.
_CONSTITUENT = {
    "constituent_type": "constituent_type",
    "asset_uid": "__casset",
    "constituent_portfolio_uid": "__child",
    "constituent_portfolio": "__child_name",
}
#: The prefix of the next level's composition columns while they are joined beside the frontier's.
_NEXT = "__next_"


def _flatten(pairs: DataFrame, history: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Each (portfolio, weights time) pair's leaves, through nested portfolios: one join per level.

    Returns ``(portfolio_uid, __wtime, __casset, __weight, path, depth)`` (the weight is the product
    along the path, each nested portfolio using its own composition at the pair's weights time) and
    every composition used at any level (``portfolio_uid, time_index``). A level is computed only
    while the previous one still holds portfolios (one small action per level); a nested portfolio
    without a composition fails with the core's :class:`MissingCompositionError`, naming its path.
    """
    level = (
        pairs.filter(F.col("weights_time").isNotNull())
        .join(history.withColumnRenamed("time_index", "weights_time"), ["portfolio_uid", "weights_time"], "inner")
        .select(*_level(F.col("weight"), F.coalesce("portfolio", "__pname", "portfolio_uid"), F.lit(1)))
    )
    used = pairs.filter(F.col("weights_time").isNotNull()).select(
        "portfolio_uid", F.col("weights_time").alias("time_index")
    )
    leaves = []
    times = history.select("portfolio_uid", "time_index").distinct()
    for depth in range(1, MAX_DEPTH + 2):
        is_nested = F.col("constituent_type") == "portfolio"
        leaves.append(level.filter(~is_nested))
        frontier = level.filter(is_nested).cache()
        if frontier.isEmpty():
            break
        if depth >= MAX_DEPTH:
            raise ValidationError.single(
                _WEIGHTS,
                "constituent_portfolio_uid",
                _deepest(frontier),
                f"nests portfolios more than {MAX_DEPTH} levels deep (or in a loop); a portfolio never contains "
                f"itself and nesting is at most {MAX_DEPTH} levels",
            )
        wanted = frontier.select(
            F.col("__child").alias("portfolio_uid"), "__wtime", F.lit(None).cast(T.StringType()).alias("__pname")
        )
        chosen = _as_of(wanted.distinct(), times).cache()
        _raise_missing_nested(frontier, chosen)
        used = used.unionByName(chosen.select("portfolio_uid", F.col("weights_time").alias("time_index")))
        level = _next_level(frontier, chosen, history)
    flat = leaves[0]
    for more in leaves[1:]:
        flat = flat.unionByName(more)
    return flat.select("portfolio_uid", "__wtime", "__casset", "__weight", "path", "depth"), used.distinct()


def _next_level(frontier: DataFrame, chosen: DataFrame, history: DataFrame) -> DataFrame:
    """The rows one level down: each frontier row's nested portfolio's chosen composition, weights multiplied."""
    return (
        frontier.join(
            chosen.select(F.col("portfolio_uid").alias("__child"), "__wtime", F.col("weights_time").alias("__ctime")),
            ["__child", "__wtime"],
            "inner",
        )
        .join(
            history.select(
                F.col("portfolio_uid").alias("__child"),
                F.col("time_index").alias("__ctime"),
                *(F.col(column).alias(_NEXT + column) for column in (*_CONSTITUENT, "weight")),
            ),
            ["__child", "__ctime"],
            "inner",
        )
        .select(
            *_level(
                F.col("__weight") * F.col(_NEXT + "weight"),
                F.concat(F.col("path"), F.lit(PATH_SEPARATOR), F.coalesce("__child_name", "__child")),
                F.col("depth") + 1,
                prefix=_NEXT,
            )
        )
    )


def _level(weight: Column, path: Column, depth: Column, prefix: str = "") -> list[Column | str]:
    """A level's columns: the pair, its constituent (history's columns as ``prefix`` + name), weight, path, depth."""
    constituent = [F.col(prefix + column).alias(name) for column, name in _CONSTITUENT.items()]
    return [
        "portfolio_uid",
        "__wtime",
        *constituent,
        weight.alias("__weight"),
        path.alias("path"),
        depth.alias("depth"),
    ]


def _deepest(frontier: DataFrame) -> str:
    """The first path (in order) of a level still holding portfolios past the depth limit."""
    row = (
        frontier.select(
            F.concat(F.col("path"), F.lit(PATH_SEPARATOR), F.coalesce("__child_name", "__child")).alias("p")
        )
        .agg(F.min("p"))
        .first()
    )
    return str(row[0])


def _raise_missing_nested(frontier: DataFrame, chosen: DataFrame) -> None:
    """Raise the core's :class:`MissingCompositionError` for nested portfolios without a composition."""
    missing = (
        chosen.filter(F.col("weights_time").isNull())
        .select(F.col("portfolio_uid").alias("__child"), "__wtime")
        .join(frontier, ["__child", "__wtime"], "inner")
        .groupBy("__child", "__wtime")
        .agg(F.min(F.coalesce("__child_name", "__child")).alias("name"), F.min("path").alias("path"))
        .select("name", F.unix_micros("__wtime").alias("at"), "path")
        .collect()
    )
    if missing:
        found = sorted((r["name"], r["at"], r["path"]) for r in missing)
        raise MissingCompositionError([(n, _from_micros(at)) for n, at, _ in found], [p for _, _, p in found])


# -- steps ---------------------------------------------------------------------------------------
def _via(ported: DataFrame, pairs: DataFrame, leaves: DataFrame) -> DataFrame:
    """One row per (portfolio row, leaf asset), its scaled exposures times the leaf's (product) weight."""
    return (
        ported.join(pairs.select("portfolio_uid", "__wtime", "weights_time"), ["portfolio_uid", "__wtime"], "inner")
        .join(leaves, ["portfolio_uid", "__wtime"], "inner")
        .select(
            "position_set_uid",
            "time_index",
            F.col("target_type").alias("source_target_type"),
            F.col("target_uid").alias("source_target_uid"),
            "portfolio_uid",
            F.col("__casset").alias("asset_uid"),
            F.col("__weight").alias("portfolio_weight"),
            "weights_time",
            *[(F.col(c) * F.col("__weight")).alias(c) if c in SCALED_EXPOSURES else F.col(c) for c in EXPOSURE_COLUMNS],
            "path",
            F.col("depth").cast(T.IntegerType()).alias("depth"),
            *LABEL_COLUMNS,
        )
    )


def _passed(direct: DataFrame) -> DataFrame:
    """The asset rows, passed through in the expanded shape."""
    return direct.select(
        "position_set_uid",
        "time_index",
        F.col("target_type").alias("source_target_type"),
        F.col("target_uid").alias("source_target_uid"),
        "portfolio_uid",
        "asset_uid",
        F.lit(None).cast(T.DoubleType()).alias("portfolio_weight"),
        F.lit(None).cast(T.TimestampType()).alias("weights_time"),
        *EXPOSURE_COLUMNS,  # x * 1.0 == x: the core's scaling of an asset row changes nothing
        F.lit(None).cast(T.StringType()).alias("path"),  # a direct asset: no path, depth 0
        F.lit(0).cast(T.IntegerType()).alias("depth"),
        *LABEL_COLUMNS,
    )


def _output(expanded: DataFrame, names: DataFrame, net: bool) -> DataFrame:
    """The expanded rows named, or (``net``) summed per (position set, asset)."""
    if not net:
        return expanded.join(F.broadcast(names), "asset_uid", "left").select(*EXPANSION_COLUMNS, *LABEL_COLUMNS)
    return (
        expanded.groupBy("position_set_uid", "asset_uid")
        .agg(
            F.min("time_index").alias("time_index"),  # one time per set (the database enforces it)
            *[F.sum(c).alias(c) for c in EXPOSURE_COLUMNS],  # Spark's sum of nothing but nulls is null, as the core's
            F.count(F.lit(1)).alias("n_sources"),
            *[F.min(c).alias(c) for c in LABEL_COLUMNS],
        )
        .join(F.broadcast(names), "asset_uid", "left")
        .select(*NET_COLUMNS, *LABEL_COLUMNS)
    )


def _as_of(pairs: DataFrame, times: DataFrame) -> DataFrame:
    """``pairs`` with ``weights_time``: the latest composition time at or before ``__wtime`` (null if none).

    One frame of pairs and composition times, ordered per portfolio by time, a composition before a
    pair at the same instant; each pair takes the last composition time seen so far.
    """
    events = pairs.select(
        "portfolio_uid",
        F.col("__wtime").alias("__at"),
        F.lit(1).alias("__kind"),
        "__wtime",
        "__pname",
        F.lit(None).cast(T.TimestampType()).alias("__ctime"),
    ).unionByName(
        times.select(
            "portfolio_uid",
            F.col("time_index").alias("__at"),
            F.lit(0).alias("__kind"),
            F.lit(None).cast(T.TimestampType()).alias("__wtime"),
            F.lit(None).cast(T.StringType()).alias("__pname"),
            F.col("time_index").alias("__ctime"),
        )
    )
    window = (
        Window.partitionBy("portfolio_uid")
        .orderBy("__at", "__kind")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        events.withColumn("weights_time", F.last("__ctime", ignorenulls=True).over(window))
        .filter(F.col("__kind") == 1)
        .select("portfolio_uid", "__wtime", "__pname", "weights_time")
    )


def _check(pairs: DataFrame, history: DataFrame, used: DataFrame) -> pl.DataFrame:
    """The checks and the diagnostics, in one small collect; raises the core's errors, returns the diagnostics.

    Three kinds of rows come back to the driver, never the data itself: the (portfolio, weights time)
    pairs with no composition at or before (:class:`MissingCompositionError`, checked first, as in
    the core); the composition rows used that break a rule (at most ``_MAX_BAD_ROWS``, worded by
    the core's own :func:`msm.expansion.check_composition_rows`); and the compositions used whose
    weights do not sum to 1.
    """
    found = _missing(pairs, history).unionByName(_broken(pairs, used)).unionByName(_off(pairs, used)).collect()
    if any(r["kind"] == "missing" for r in found):
        raise MissingCompositionError(
            sorted((r["portfolio"], _from_micros(r["at"])) for r in found if r["kind"] == "missing")
        )
    broken = sorted(
        (r for r in found if r["kind"] == "bad"),
        key=lambda r: (r["portfolio"] or "", r["at"], r["asset"] or "", r["asset_uid"] or ""),
    )
    if broken:
        check_composition_rows(
            _frame(
                broken,
                {
                    "time_index": "at",
                    "portfolio_uid": "portfolio_uid",
                    "asset_uid": "asset_uid",
                    "asset": "asset",
                    "portfolio": "portfolio",
                    "weight": "value",
                    "constituent_type": "constituent_type",
                    "constituent_portfolio_uid": "constituent_portfolio_uid",
                    "constituent_portfolio": "constituent_portfolio",
                },
            )
        )
        raise AssertionError("composition rows broke a rule the core's check does not know")  # pragma: no cover
    diagnostics = _frame(
        [r for r in found if r["kind"] == "off"],
        {"portfolio_uid": "portfolio_uid", "portfolio": "portfolio", "weights_time": "at", "weight_sum": "value"},
    )
    return diagnostics.sort("portfolio", "portfolio_uid", "weights_time", nulls_last=True).select(DIAGNOSTIC_COLUMNS)


def _null(dtype: T.DataType) -> Column:
    """A typed null column (built per call: a Spark column needs the active session)."""
    return F.lit(None).cast(dtype)


def _missing(pairs: DataFrame, history: DataFrame) -> DataFrame:
    """The (portfolio, weights time) pairs with no composition at or before, as ``kind = 'missing'`` rows."""
    names = history.groupBy("portfolio_uid").agg(F.min("portfolio").alias("__wname"))
    return (
        pairs.filter(F.col("weights_time").isNull())
        .join(names, "portfolio_uid", "left")
        .select(
            *_check_row("missing", F.coalesce("__pname", "__wname", "portfolio_uid"), "__wtime", _null(T.DoubleType()))
        )
    )


def _broken(pairs: DataFrame, used: DataFrame) -> DataFrame:
    """Composition rows used that break a rule of :data:`msm.expansion.COMPOSITION_ROW_RULES` (``kind = 'bad'``).

    Spark only finds them (a weight each, finite, one row per asset); the core's rules word them.
    """
    per_asset = Window.partitionBy("portfolio_uid", "time_index", "asset_uid")
    per_portfolio = Window.partitionBy("portfolio_uid", "time_index", "constituent_portfolio_uid")
    named = pairs.filter(F.col("__pname").isNotNull()).groupBy("portfolio_uid").agg(F.min("__pname").alias("__pname"))
    is_nested = F.col("constituent_type") == "portfolio"
    return (
        used.withColumn("__copies", F.count(F.lit(1)).over(per_asset))
        .withColumn("__pcopies", F.count(F.lit(1)).over(per_portfolio))
        .filter(
            (~is_nested & F.col("asset_uid").isNull())
            | (is_nested & F.col("constituent_portfolio_uid").isNull())
            | ~F.col("constituent_type").isin("asset", "portfolio")
            | F.col("weight").isNull()
            | F.isnan("weight")
            | (F.abs("weight") == float("inf"))
            | (F.col("asset_uid").isNotNull() & (F.col("__copies") > 1))
            | (F.col("constituent_portfolio_uid").isNotNull() & (F.col("__pcopies") > 1))
        )
        .limit(_MAX_BAD_ROWS)
        .join(named, "portfolio_uid", "left")
        .select(*_check_row("bad", F.coalesce("portfolio", "__pname"), "time_index", F.col("weight"), of_a_row=True))
    )


def _off(pairs: DataFrame, used: DataFrame) -> DataFrame:
    """Compositions used (at any level) whose weights do not sum to 1, named as the core names them (``'off'``)."""
    named = pairs.filter(F.col("__pname").isNotNull()).groupBy("portfolio_uid").agg(F.min("__pname").alias("__pname"))
    sums = used.groupBy("portfolio_uid", "time_index").agg(
        F.sum("weight").alias("weight_sum"), F.min("portfolio").alias("__wname")
    )
    return (
        sums.filter(F.abs(F.col("weight_sum") - F.lit(1.0)) > F.lit(WEIGHT_SUM_TOLERANCE))
        .join(named, "portfolio_uid", "left")
        .select(*_check_row("off", F.coalesce("__wname", "__pname"), "time_index", F.col("weight_sum")))
    )


#: The columns of a check row about one composition row (null in the other kinds of rows).
_ROW_COLUMNS = ("asset_uid", "asset", "constituent_type", "constituent_portfolio_uid", "constituent_portfolio")


def _check_row(kind: str, portfolio: Column, at: str, value: Column, *, of_a_row: bool = False) -> list[Column | str]:
    """The columns of a check row of ``kind``; the composition row's own columns only ``of_a_row``."""
    row = [c if of_a_row else _null(T.StringType()).alias(c) for c in _ROW_COLUMNS]
    return [
        F.lit(kind).alias("kind"),
        "portfolio_uid",
        portfolio.alias("portfolio"),
        F.unix_micros(at).alias("at"),
        value.alias("value"),
        *row,
    ]


def _frame(rows: list[Any], columns: dict[str, str]) -> pl.DataFrame:
    """A polars frame of collected rows; ``at`` (epoch microseconds) becomes a UTC time."""
    types = {"at": pl.Int64, "value": pl.Float64}
    frame = pl.DataFrame(
        {name: [r[source] for r in rows] for name, source in columns.items()},
        schema={name: types.get(source, pl.String) for name, source in columns.items()},
    )
    return frame.with_columns(
        pl.col(name).cast(pl.Datetime("us", "UTC")) for name, source in columns.items() if source == "at"
    )


def _asset_names(direct: DataFrame, used: DataFrame) -> DataFrame:
    """``asset_uid -> asset``: the identifier a direct target row gives, else the compositions'."""
    named = direct.select(
        "asset_uid", F.col("unique_identifier").alias("__name"), F.lit(0).alias("__from")
    ).unionByName(used.select("asset_uid", F.col("asset").alias("__name"), F.lit(1).alias("__from")))
    return (
        named.filter(F.col("__name").isNotNull())
        .groupBy("asset_uid")
        .agg(F.min(F.struct("__from", "__name")).alias("__best"))
        .select("asset_uid", F.col("__best.__name").alias("asset"))
    )


# -- inputs ----------------------------------------------------------------------------------------
def _uid_text(column: str) -> Column:
    return F.lower(F.trim(F.col(column).cast(T.StringType())))


def _require(frame: DataFrame, entity: str, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValidationError([RowError(entity, None, c, NO_VALUE, f"column is missing; {what}") for c in missing])


def _optional(frame: DataFrame, column: str, dtype: T.DataType) -> Column:
    return F.col(column).cast(dtype) if column in frame.columns else F.lit(None).cast(dtype)


def _normalize_targets(targets: DataFrame) -> DataFrame:
    _require(
        targets,
        _TARGETS,
        ("position_set_uid", "time_index", "target_type", "asset_uid", "portfolio_uid"),
        "expansion takes storage-shaped target rows (an export's target_positions)",
    )
    if not set(EXPOSURE_COLUMNS) & set(targets.columns):
        raise ValidationError.single(_TARGETS, "weight_notional_exposure", NO_VALUE, NO_EXPOSURE_COLUMN)
    _require_time(targets, "time_index", _TARGETS)
    target_type = F.trim(F.col("target_type").cast(T.StringType()))
    derived = F.when(target_type == "asset", _uid_text("asset_uid")).when(
        target_type == "portfolio", _uid_text("portfolio_uid")
    )
    target_uid = _uid_text("target_uid") if "target_uid" in targets.columns else F.lit(None).cast(T.StringType())
    return targets.select(
        _uid_text("position_set_uid").alias("position_set_uid"),
        F.col("time_index"),
        target_type.alias("target_type"),
        F.coalesce(target_uid, derived).alias("target_uid"),
        _uid_text("asset_uid").alias("asset_uid"),
        _uid_text("portfolio_uid").alias("portfolio_uid"),
        _optional(targets, "unique_identifier", T.StringType()).alias("unique_identifier"),
        *[_optional(targets, c, T.DoubleType()).alias(c) for c in EXPOSURE_COLUMNS],
        *[_optional(targets, c, T.StringType()).alias(c) for c in LABEL_COLUMNS],
    )


def _normalize_weights(weights: DataFrame) -> DataFrame:
    _require(
        weights,
        _WEIGHTS,
        ("time_index", "portfolio_uid", "asset_uid", "weight"),
        "a composition history has time_index, portfolio_uid, asset_uid, asset, weight (an export's portfolio_weights)",
    )
    _require_time(weights, "time_index", _WEIGHTS)
    nested = (
        _uid_text("constituent_portfolio_uid")
        if "constituent_portfolio_uid" in weights.columns
        else F.lit(None).cast(T.StringType())
    )
    kind = (
        F.trim(F.col("constituent_type").cast(T.StringType()))
        if "constituent_type" in weights.columns
        else F.when(nested.isNotNull(), F.lit("portfolio")).otherwise(F.lit("asset"))
    )
    return weights.select(
        F.col("time_index"),
        _uid_text("portfolio_uid").alias("portfolio_uid"),
        _uid_text("asset_uid").alias("asset_uid"),
        _optional(weights, "asset", T.StringType()).alias("asset"),
        _optional(weights, "portfolio", T.StringType()).alias("portfolio"),
        F.col("weight").cast(T.DoubleType()).alias("weight"),
        kind.alias("constituent_type"),
        nested.alias("constituent_portfolio_uid"),
        _optional(weights, "constituent_portfolio", T.StringType()).alias("constituent_portfolio"),
    )


def _require_time(frame: DataFrame, column: str, entity: str) -> None:
    """An instant column (Spark's ``timestamp``); a naive ``timestamp_ntz`` is refused, as in the core."""
    dtype = frame.schema[column].dataType
    if isinstance(dtype, T.TimestampNTZType):
        raise ValidationError.single(
            entity,
            column,
            dtype.simpleString(),
            "is a naive timestamp column (naive times are refused); give UTC instants (timestamp)",
        )
    if not isinstance(dtype, T.TimestampType):
        raise ValidationError.single(entity, column, dtype.simpleString(), "must hold UTC instants (timestamp)")


def _timestamp(at: datetime) -> Column:
    """A timestamp literal built from epoch microseconds: no session or Python time zone takes part."""
    return F.timestamp_micros(F.lit(_to_micros(at)))


def _to_micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(micros: Any) -> datetime:
    return _EPOCH + timedelta(microseconds=int(micros))
