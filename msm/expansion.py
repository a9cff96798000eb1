"""Look-through: portfolio target rows expanded to asset-level exposure, on explicit request only.

A target row naming an asset passes through. A target row naming a portfolio becomes one row per
constituent of that portfolio's composition at the *weights time*; its weight and constant
notional exposures are multiplied by the constituent's weight. Nothing here is ever written back
to ``target_positions``: the stored rows keep the mandate as it was given.

The weights come in as an argument (core ``msm`` knows nothing of where compositions are kept):
either a frame of composition history, or a :data:`WeightsSource` callable such as
``msm_portfolios.duckdb_weights_source(store)``, called once per expansion.

The pipeline is vectorized over any number of position sets: the composition each portfolio row
uses is found with one as-of join, and the constituents are laid out with one ``explode`` over
integer row ranges, so the work is proportional to the output and no Python loop touches a row.

>>> from datetime import datetime, timezone
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> targets = pl.DataFrame({
...     "position_set_uid": ["5e7c0000-0000-4000-8000-000000000001"],
...     "time_index": [t0],
...     "target_type": ["portfolio"],
...     "target_uid": ["9f1d0000-0000-4000-8000-000000000001"],
...     "asset_uid": [None],
...     "portfolio_uid": ["9f1d0000-0000-4000-8000-000000000001"],
...     "weight_notional_exposure": [0.5],
...     "constant_notional_exposure": [None],
...     "single_asset_quantity": [None],
... })
>>> weights = pl.DataFrame({
...     "time_index": [t0, t0],
...     "portfolio_uid": ["9f1d0000-0000-4000-8000-000000000001"] * 2,
...     "asset_uid": ["a5e70000-0000-4000-8000-000000000001", "a5e70000-0000-4000-8000-000000000002"],
...     "asset": ["BTC", "ETH"],
...     "weight": [0.25, 0.75],
... })
>>> result = expand_targets(targets, weights, weights_as_of="position-set")
>>> result.rows.select("asset", "portfolio_weight", "weight_notional_exposure")
shape: (2, 3)
┌───────┬──────────────────┬──────────────────────────┐
│ asset ┆ portfolio_weight ┆ weight_notional_exposure │
│ ---   ┆ ---              ┆ ---                      │
│ str   ┆ f64              ┆ f64                      │
╞═══════╪══════════════════╪══════════════════════════╡
│ BTC   ┆ 0.25             ┆ 0.125                    │
│ ETH   ┆ 0.75             ┆ 0.375                    │
└───────┴──────────────────┴──────────────────────────┘
>>> result.diagnostics.height  # the composition sums to 1: nothing to report
0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl

from msm import rules
from msm.contract import EXPOSURE_COLUMNS, SCALED_EXPOSURES
from msm.errors import NO_VALUE, MsmError, NotFoundError, RowError, ValidationError
from msm.rules import Rule, find_violations, raise_violations, uid_text
from msm.timeutil import ensure_utc_column, format_utc, parse_utc, utc_now
from msm.validation import NO_EXPOSURE_COLUMN, ONE_EXPOSURE, portfolio_quantity_rule, target_type_rule

__all__ = [
    "COMPOSITION_ROW_RULES",
    "DIAGNOSTIC_COLUMNS",
    "EXPANSION_COLUMNS",
    "MAX_DEPTH",
    "NESTED_WEIGHTS_COLUMNS",
    "NET_COLUMNS",
    "PATH_SEPARATOR",
    "TARGET_ROW_RULES",
    "WEIGHTS_COLUMNS",
    "WEIGHT_SUM_TOLERANCE",
    "Expansion",
    "MissingCompositionError",
    "WeightsAsOf",
    "WeightsSource",
    "check_composition_rows",
    "check_target_rows",
    "expand_targets",
    "weights_time",
]


_UTC = pl.Datetime("us", "UTC")
#: The look-through rows, the netted rows and the diagnostics: each column with its type, once.
_ROWS_SCHEMA = {
    "position_set_uid": pl.String,
    "time_index": _UTC,
    "source_target_type": pl.String,
    "source_target_uid": pl.String,
    "portfolio_uid": pl.String,
    "asset_uid": pl.String,
    "asset": pl.String,
    "portfolio_weight": pl.Float64,
    "weights_time": _UTC,
    **{c: pl.Float64 for c in EXPOSURE_COLUMNS},
    "path": pl.String,
    "depth": pl.Int32,
}
_NET_SCHEMA = {
    "position_set_uid": pl.String,
    "time_index": _UTC,
    "asset_uid": pl.String,
    "asset": pl.String,
    **{c: pl.Float64 for c in EXPOSURE_COLUMNS},
    "n_sources": pl.UInt32,
}
_DIAGNOSTICS_SCHEMA = {
    "portfolio_uid": pl.String,
    "portfolio": pl.String,
    "weights_time": _UTC,
    "weight_sum": pl.Float64,
}
EXPANSION_COLUMNS = tuple(_ROWS_SCHEMA)
NET_COLUMNS = tuple(_NET_SCHEMA)
DIAGNOSTIC_COLUMNS = tuple(_DIAGNOSTICS_SCHEMA)
#: A composition-history frame: one row per (time_index, portfolio_uid, constituent). ``asset`` (the
#: asset's unique identifier) and ``portfolio`` (the portfolio's) are optional. A nested portfolio's
#: row has ``constituent_type = 'portfolio'`` and ``constituent_portfolio_uid`` (and optionally
#: ``constituent_portfolio``, its unique identifier) instead of ``asset_uid``; without
#: ``constituent_type`` every row is an asset row.
WEIGHTS_COLUMNS = ("time_index", "portfolio_uid", "asset_uid", "asset", "weight")
NESTED_WEIGHTS_COLUMNS = ("constituent_type", "constituent_portfolio_uid", "constituent_portfolio")
#: How deep expansion follows nested portfolios (the write path refuses deeper nesting).
MAX_DEPTH = 8
#: Joins the portfolio unique identifiers of an output row's ``path``.
PATH_SEPARATOR = " > "
#: A composition whose weights sum to 1 within this tolerance is not reported.
WEIGHT_SUM_TOLERANCE = 1e-9

#: ``(portfolio uids, latest weights time needed) -> composition-history frame``. It may return more
#: history (or more portfolios) than asked; rows after the bound are ignored.
WeightsSource = Callable[[list[str], datetime | None], pl.DataFrame]
WeightsAsOf = Literal["now", "position-set"] | datetime | str

_TARGETS = "targets"
_WEIGHTS = "portfolio weights"
_STORE_HINT = "store one with `msm portfolios weights ID --at TS --file F` (msm_portfolios.save_composition)"

_IS_ASSET, _IS_PORTFOLIO = pl.col("target_type") == "asset", pl.col("target_type") == "portfolio"
_DERIVED_UID = pl.when(_IS_ASSET).then(pl.col("asset_uid")).when(_IS_PORTFOLIO).then(pl.col("portfolio_uid"))

#: The rules of storage-shaped target rows the expansion reads (rows a database checked pass them all).
TARGET_ROW_RULES = (
    rules.required(_TARGETS, "position_set_uid"),
    target_type_rule(_TARGETS, required=True),
    Rule(
        _TARGETS,
        "asset_uid",
        "asset_row_asset_uid",
        "an asset row needs asset_uid",
        _IS_ASSET & pl.col("asset_uid").is_null(),
    ),
    Rule(
        _TARGETS,
        "portfolio_uid",
        "asset_row_no_portfolio_uid",
        "an asset row has no portfolio_uid",
        _IS_ASSET & pl.col("portfolio_uid").is_not_null(),
    ),
    Rule(
        _TARGETS,
        "portfolio_uid",
        "portfolio_row_portfolio_uid",
        "a portfolio row needs portfolio_uid",
        _IS_PORTFOLIO & pl.col("portfolio_uid").is_null(),
    ),
    Rule(
        _TARGETS,
        "asset_uid",
        "portfolio_row_no_asset_uid",
        "a portfolio row has no asset_uid",
        _IS_PORTFOLIO & pl.col("asset_uid").is_not_null(),
    ),
    portfolio_quantity_rule(_TARGETS, pl.col("target_type")),
    Rule(
        _TARGETS,
        "target_uid",
        "target_uid_matches",
        "must equal the row's asset_uid or portfolio_uid",
        pl.col("target_uid").is_not_null() & _DERIVED_UID.is_not_null() & (pl.col("target_uid") != _DERIVED_UID),
    ),
    Rule(
        _TARGETS,
        "exposure",
        "one_exposure",
        ONE_EXPOSURE,
        pl.sum_horizontal(*[pl.col(c).is_not_null() for c in EXPOSURE_COLUMNS]) != 1,
        pl.lit(None, pl.String),
    ),
    *(rules.finite(_TARGETS, c) for c in EXPOSURE_COLUMNS),
)

_IN_COMPOSITION = (
    pl.lit(" in portfolio '")
    + pl.coalesce("portfolio", "portfolio_uid")
    + pl.lit("' at ")
    + pl.col("time_index").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
)
_IS_NESTED = pl.col("constituent_type") == "portfolio"
#: The rules of the composition rows an expansion uses: one constituent each, a weight, finite, each once.
COMPOSITION_ROW_RULES = (
    rules.required(
        _WEIGHTS,
        "asset_uid",
        message=pl.lit("is required") + _IN_COMPOSITION,
        value=pl.coalesce("asset", "asset_uid"),
        bad=~_IS_NESTED & pl.col("asset_uid").is_null(),
    ),
    rules.required(
        _WEIGHTS,
        "constituent_portfolio_uid",
        message=pl.lit("is required on a nested portfolio's row") + _IN_COMPOSITION,
        bad=_IS_NESTED & pl.col("constituent_portfolio_uid").is_null(),
    ),
    Rule(
        _WEIGHTS,
        "constituent_type",
        "constituent_type_known",
        pl.lit("must be 'asset' or 'portfolio'") + _IN_COMPOSITION,
        ~pl.col("constituent_type").is_in(["asset", "portfolio"]),
    ),
    rules.required(_WEIGHTS, "weight", message=pl.lit("is required") + _IN_COMPOSITION),
    rules.finite(_WEIGHTS, "weight", message=pl.lit("must be finite") + _IN_COMPOSITION),
    Rule(
        _WEIGHTS,
        "asset_uid",
        "asset_listed_once",
        pl.lit("is listed more than once") + _IN_COMPOSITION,
        pl.col("asset_uid").is_not_null() & (pl.len().over("portfolio_uid", "time_index", "asset_uid") > 1),
        pl.coalesce("asset", "asset_uid"),
    ),
    Rule(
        _WEIGHTS,
        "constituent_portfolio_uid",
        "portfolio_listed_once",
        pl.lit("is listed more than once") + _IN_COMPOSITION,
        pl.col("constituent_portfolio_uid").is_not_null()
        & (pl.len().over("portfolio_uid", "time_index", "constituent_portfolio_uid") > 1),
        pl.coalesce("constituent_portfolio", "constituent_portfolio_uid"),
    ),
)


@dataclass(frozen=True, eq=False)
class Expansion:
    """The result of :func:`expand_targets`.

    ``rows``: the expanded (or, with ``net``, netted) rows. ``diagnostics``: one row per composition
    used whose weights do not sum to 1 (``portfolio_uid``, ``portfolio``, ``weights_time``,
    ``weight_sum``), empty when all do. ``weights_as_of``: what was asked (``"now"``,
    ``"position-set"`` or a UTC time); ``weights_time_bound``: the instant "now" or the explicit time
    resolved to (``None`` for ``"position-set"``).
    """

    rows: pl.DataFrame
    diagnostics: pl.DataFrame
    weights_as_of: str | datetime
    weights_time_bound: datetime | None = None
    net: bool = False


class MissingCompositionError(NotFoundError):
    """Portfolio targets whose portfolio has no composition at or before their weights time.

    ``missing`` lists every ``(portfolio, weights time)`` pair (the portfolio's unique identifier,
    or its uid when that is unknown), so one error names them all. ``paths`` (same order) holds,
    for a nested portfolio, the path of portfolios it was reached through (``'BAL > EQ'``, the
    target's portfolio first), and ``None`` for a target's own portfolio.
    """

    fields = ("entity", "key", "missing", "paths", "hint")

    def __init__(self, missing: Sequence[tuple[str, datetime]], paths: Sequence[str | None] | None = None) -> None:
        self.missing = list(missing)
        self.paths = list(paths) if paths is not None else [None] * len(self.missing)
        self.entity, self.key, self.value, self.hint = (
            "composition",
            "portfolio and weights time",
            self.missing,
            _STORE_HINT,
        )

        def named(name: str, path: str | None) -> str:
            """A portfolio as a message names it: quoted, with the path it was reached through."""
            return f"'{name}'" + (f" (nested in {path})" if path else "")

        shown = [
            f"{named(name, path)} at {format_utc(at)}"
            for (name, at), path in zip(self.missing[:50], self.paths, strict=False)
        ]
        if len(self.missing) > 50:
            shown.append(f"... and {len(self.missing) - 50} more")
        if len(self.missing) == 1:
            name, at = self.missing[0]
            message = f"portfolio {named(name, self.paths[0])} has no composition at or before {format_utc(at)}"
            hint = _STORE_HINT.replace(" ID ", f" {name} ")
        else:
            message = (
                f"{len(self.missing)} portfolios have no composition at or before their weights time: "
                + ", ".join(shown)
            )
            hint = _STORE_HINT
        MsmError.__init__(self, f"{message}; {hint}, or choose a later weights time")


def expand_targets(
    targets: pl.DataFrame,
    weights: pl.DataFrame | WeightsSource,
    *,
    weights_as_of: WeightsAsOf = "now",
    net: bool = False,
    now: datetime | None = None,
) -> Expansion:
    """Expand portfolio target rows of any number of position sets into asset-level exposure.

    ``targets``: storage-shaped target rows (``position_set_uid``, ``time_index``, ``target_type``,
    ``target_uid``, ``asset_uid``, ``portfolio_uid``, the three exposures; optionally
    ``unique_identifier``, the asset's or portfolio's, which fills ``asset`` on asset rows and names
    portfolios in messages). Other columns are ignored.

    ``weights``: a composition-history frame (:data:`WEIGHTS_COLUMNS`) or a :data:`WeightsSource`,
    called once with the distinct portfolio uids and the latest weights time needed.

    ``weights_as_of``: ``"now"`` (``now``, default the current UTC time), an aware time (a
    ``datetime`` or an ISO-8601 string with an offset), or ``"position-set"`` (each set's own
    ``time_index``). A portfolio row uses its portfolio's latest composition at or before that time,
    whose time is the output's ``weights_time``. When a portfolio has none,
    :class:`MissingCompositionError` names every such portfolio and time.

    ``net``: one row per (``position_set_uid``, ``asset_uid``) with summed exposures (a sum of
    nothing but nulls stays null) and ``n_sources``, the number of expanded rows summed.
    """
    bound, asked = weights_time(weights_as_of, now)
    frame = _normalize_targets(targets)
    if frame.height == 0:
        return Expansion(_empty(net), _empty_diagnostics(), asked, bound, net)

    # Sort once; every later step keeps this order, so the output needs no sort of its own.
    frame = frame.sort("position_set_uid", "target_type", "target_uid").with_row_index("__t")
    is_portfolio = pl.col("target_type") == "portfolio"
    frame = frame.with_columns(
        pl.when(is_portfolio).then(pl.lit(bound, _UTC) if bound is not None else pl.col("time_index")).alias("__wtime")
    )
    wanted = frame.filter(is_portfolio).select("portfolio_uid", "__wtime", "unique_identifier")
    history = _history(wanted, weights, bound)
    pairs = _choose_compositions(wanted, history)
    names = _portfolio_names(history, pairs)
    leaves, used, pairs = _flatten(pairs, history, names)
    used_rows = history.join(used, on=["portfolio_uid", "time_index"], how="semi")
    check_composition_rows(
        used_rows.join(names.select("portfolio_uid", "__name"), on="portfolio_uid", how="left").with_columns(
            pl.coalesce("portfolio", "__name").alias("portfolio")
        )
    )
    leaves, assets, pairs = _lay_out_compositions(frame, leaves, pairs)
    diagnostics = _diagnostics(used_rows, names)
    history = leaves

    frame = frame.join(
        pairs.select("portfolio_uid", "__wtime", "weights_time", "__start", "__n"),
        on=["portfolio_uid", "__wtime"],
        how="left",
        validate="m:1",
        maintain_order="left",  # row i keeps __t == i: the gathers below index this frame by it
    ).join(assets.select("asset_uid", "__akey"), on="asset_uid", how="left", validate="m:1", maintain_order="left")

    # One output row per (target row, constituent): a range of weight rows per portfolio row, a
    # single null for an asset row (explode keeps it as one row).
    exploded = frame.select(
        "__t",
        pl.int_ranges("__start", pl.col("__start") + pl.col("__n"), dtype=pl.UInt32).alias("__w"),
    ).explode("__w")
    t_idx, w_idx = exploded["__t"], exploded["__w"]
    rows = _net(frame, history, assets, t_idx, w_idx) if net else _plain(frame, history, assets, t_idx, w_idx)
    return Expansion(rows, diagnostics, asked, bound, net)


# -- steps ---------------------------------------------------------------------------------------
def _history(wanted: pl.DataFrame, weights: pl.DataFrame | WeightsSource, bound: datetime | None) -> pl.DataFrame:
    """The composition history of the portfolios ``wanted`` names, up to the latest weights time needed."""
    if not wanted.height:
        return _empty_weights()
    uids = sorted(wanted["portfolio_uid"].unique().to_list())
    until = bound if bound is not None else wanted["__wtime"].max()
    history = weights(uids, until) if callable(weights) else weights
    if not isinstance(history, pl.DataFrame):
        raise TypeError(f"the weights source must return a polars DataFrame, got {type(history).__name__}")
    return _normalize_weights(history, uids, until)  # type: ignore[arg-type]


def _choose_compositions(wanted: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Which composition each distinct (portfolio, weights time) uses: one as-of join over the pairs.

    Raises :class:`MissingCompositionError` naming every pair with none at or before its time.
    """
    pairs = wanted.group_by("portfolio_uid", "__wtime").agg(
        pl.col("unique_identifier").drop_nulls().first().alias("__pname")
    )
    stored = history.select("portfolio_uid", "time_index").unique()
    pairs = (
        pairs.sort("__wtime")
        .join_asof(
            stored.sort("time_index").with_columns(pl.col("time_index").alias("weights_time")),
            left_on="__wtime",
            right_on="time_index",
            by="portfolio_uid",
            check_sortedness=False,  # both sides are sorted on the time key; `by` groups inherit that
        )
        .drop("time_index")
    )
    _raise_missing(pairs, history)
    return pairs


def _portfolio_names(history: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """``(portfolio_uid, __name, __label)``: each portfolio's unique identifier as the inputs give it (or
    null), and the label a path or a message shows (the identifier, else the uid)."""
    known = pl.concat(
        [
            history.select("portfolio_uid", pl.col("portfolio").alias("__name")).unique(maintain_order=True),
            history.filter(_IS_NESTED)
            .select(
                pl.col("constituent_portfolio_uid").alias("portfolio_uid"),
                pl.col("constituent_portfolio").alias("__name"),
            )
            .unique(maintain_order=True),
            pairs.select("portfolio_uid", pl.col("__pname").alias("__name")),
        ]
    ).filter(pl.col("portfolio_uid").is_not_null())
    return (
        known.group_by("portfolio_uid")
        .agg(pl.col("__name").drop_nulls().first())
        .with_columns(pl.coalesce("__name", "portfolio_uid").alias("__label"))
    )


def _flatten(
    pairs: pl.DataFrame, history: pl.DataFrame, names: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Each composition used, expanded through its nested portfolios down to assets: one join per level.

    A (portfolio, weights time) pair whose composition holds only assets is its composition (shared
    by every pair using it, as before nesting); one holding portfolios is a *unit* of its own, since
    each nested portfolio uses its own composition at the pair's weights time. Returns the leaves
    (``portfolio_uid``, ``time_index`` = the root composition's time, ``__unit_w``, ``asset_uid``,
    ``asset``, ``weight`` = the product along the path, ``path``, ``depth``), every composition
    used at any level (``portfolio_uid``, ``time_index``), and ``pairs`` with its ``__unit_w``.
    """
    nested = history.filter(_IS_NESTED).select("portfolio_uid", pl.col("time_index").alias("weights_time")).unique()
    pairs = pairs.join(
        nested.with_columns(pl.lit(True).alias("__nested")), on=["portfolio_uid", "weights_time"], how="left"
    )
    pairs = _share_units(pairs, history)
    units = pairs.select("portfolio_uid", "weights_time", "__unit_w").unique()
    keys = ["portfolio_uid", "time_index", "__unit_w"]
    level = (
        units.join(names, on="portfolio_uid", how="left")
        .join(history.rename({"time_index": "weights_time"}), on=["portfolio_uid", "weights_time"], how="inner")
        .select(
            "portfolio_uid",
            pl.col("weights_time").alias("time_index"),
            "__unit_w",
            "constituent_type",
            "asset_uid",
            "asset",
            "constituent_portfolio_uid",
            "weight",
            pl.col("__label").alias("path"),
            pl.lit(1, pl.Int32).alias("depth"),
        )
    )
    used = [units.select("portfolio_uid", pl.col("weights_time").alias("time_index"))]
    leaves = [level.filter(~_IS_NESTED)]
    frontier = level.filter(_IS_NESTED)
    stored = history.select("portfolio_uid", "time_index").unique().sort("time_index")
    while frontier.height:
        if int(frontier["depth"].max()) >= MAX_DEPTH:  # type: ignore[arg-type]
            _raise_too_deep(frontier, names)
        chosen = _choose_nested(frontier, stored, names, pairs)
        used.append(
            chosen.select(
                pl.col("constituent_portfolio_uid").alias("portfolio_uid"),
                pl.col("time_index_right").alias("time_index"),
            ).unique()
        )
        level = _next_level(frontier, chosen, names, history)
        leaves.append(level.filter(~_IS_NESTED))
        frontier = level.filter(_IS_NESTED)
    flat = pl.concat(leaves).select(*keys, "asset_uid", "asset", "weight", "path", "depth")
    return flat, pl.concat(used).unique(), pairs


def _next_level(
    frontier: pl.DataFrame, chosen: pl.DataFrame, names: pl.DataFrame, history: pl.DataFrame
) -> pl.DataFrame:
    """The rows one level down: each frontier row's nested portfolio's chosen composition, weights multiplied."""
    return (
        frontier.join(
            chosen,
            left_on=["constituent_portfolio_uid", "__unit_w"],
            right_on=["constituent_portfolio_uid", "__unit_w"],
        )
        .join(names.rename({"portfolio_uid": "constituent_portfolio_uid"}), on="constituent_portfolio_uid", how="left")
        .select(
            "portfolio_uid",
            pl.col("time_index"),
            "__unit_w",
            pl.col("weight").alias("__parent_weight"),
            (pl.col("path") + pl.lit(PATH_SEPARATOR) + pl.col("__label")).alias("path"),
            (pl.col("depth") + 1).alias("depth"),
            pl.col("constituent_portfolio_uid").alias("__child"),
            pl.col("time_index_right").alias("__child_time"),
        )
        .join(
            history.select(
                pl.col("portfolio_uid").alias("__child"),
                pl.col("time_index").alias("__child_time"),
                "constituent_type",
                "asset_uid",
                "asset",
                "constituent_portfolio_uid",
                "weight",
            ),
            on=["__child", "__child_time"],
            how="inner",
        )
        .select(
            "portfolio_uid",
            "time_index",
            "__unit_w",
            "constituent_type",
            "asset_uid",
            "asset",
            "constituent_portfolio_uid",
            (pl.col("__parent_weight") * pl.col("weight")).alias("weight"),
            "path",
            "depth",
        )
    )


def _share_units(pairs: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` with ``__unit_w``: the weights time its flattened composition is computed at.

    An asset-only composition is shared by every pair using it (``__unit_w`` = its own time). Below a
    nested one, what each level picks changes only at a composition time of some portfolio it can
    reach; so pairs whose weights times fall between the same two such times pick the same
    compositions at every level, and share one unit, computed at the latest such time at or before
    them (one as-of join). A book whose sets have many distinct times but few compositions thus
    flattens few units, as it did before nesting.
    """
    flat = pairs.filter(pl.col("__nested").is_null()).with_columns(pl.col("weights_time").alias("__unit_w"))
    deep = pairs.filter(pl.col("__nested").is_not_null())
    if deep.height == 0:
        return flat
    edges = history.filter(_IS_NESTED).select("portfolio_uid", "constituent_portfolio_uid").unique()
    roots = deep.select(pl.col("portfolio_uid").alias("__root")).unique()
    reach = roots.with_columns(pl.col("__root").alias("portfolio_uid"))
    frontier = reach
    for _ in range(MAX_DEPTH):  # every portfolio reachable from each root, at any time: one join per level
        frontier = (
            frontier.join(edges, on="portfolio_uid")
            .select("__root", pl.col("constituent_portfolio_uid").alias("portfolio_uid"))
            .join(reach, on=["__root", "portfolio_uid"], how="anti")
            .unique()
        )
        if frontier.height == 0:
            break
        reach = pl.concat([reach, frontier])
    changes = (
        reach.join(history.select("portfolio_uid", "time_index").unique(), on="portfolio_uid")
        .select(pl.col("__root").alias("portfolio_uid"), pl.col("time_index").alias("__unit_w"))
        .unique()
        .sort("__unit_w")
    )
    deep = deep.sort("__wtime").join_asof(
        changes, left_on="__wtime", right_on="__unit_w", by="portfolio_uid", check_sortedness=False
    )
    return pl.concat([flat, deep], how="vertical_relaxed")


def _choose_nested(
    frontier: pl.DataFrame, stored: pl.DataFrame, names: pl.DataFrame, pairs: pl.DataFrame
) -> pl.DataFrame:
    """The composition each nested (portfolio, weights time) of ``frontier`` uses: one as-of join.

    Returns ``(constituent_portfolio_uid, __unit_w, time_index_right)``; raises
    :class:`MissingCompositionError` naming every nested portfolio without one, its path and every
    weights time asked of it (``pairs``: which pairs each unit stands for).
    """
    wanted = frontier.select("constituent_portfolio_uid", "__unit_w").unique().sort("__unit_w")
    chosen = wanted.join_asof(
        stored.rename({"portfolio_uid": "constituent_portfolio_uid"}).with_columns(
            pl.col("time_index").alias("time_index_right")
        ),
        left_on="__unit_w",
        right_on="time_index",
        by="constituent_portfolio_uid",
        check_sortedness=False,  # both sides are sorted on the time key
    ).drop("time_index")
    missing = chosen.filter(pl.col("time_index_right").is_null())
    if missing.height:
        asked = pairs.select("portfolio_uid", pl.col("weights_time").alias("time_index"), "__unit_w", "__wtime")
        where = (  # named at each weights time asked (a unit stands for every pair sharing it)
            frontier.join(missing, on=["constituent_portfolio_uid", "__unit_w"], how="semi")
            .join(asked, on=["portfolio_uid", "time_index", "__unit_w"])
            .join(
                names.rename({"portfolio_uid": "constituent_portfolio_uid"}), on="constituent_portfolio_uid", how="left"
            )
            .group_by("__label", "__wtime")
            .agg(pl.col("path").min())
            .sort("__label", "__wtime", "path")
        )
        raise MissingCompositionError(
            list(zip(where["__label"].to_list(), where["__wtime"].to_list(), strict=True)), where["path"].to_list()
        )
    return chosen


def _raise_too_deep(frontier: pl.DataFrame, names: pl.DataFrame) -> None:
    """A composition frame nesting deeper than :data:`MAX_DEPTH` (or looping): name the first such path."""
    deepest = (
        frontier.join(
            names.rename({"portfolio_uid": "constituent_portfolio_uid"}), on="constituent_portfolio_uid", how="left"
        )
        .select((pl.col("path") + pl.lit(PATH_SEPARATOR) + pl.col("__label")).alias("path"))
        .sort("path")
        .row(0)[0]
    )
    raise ValidationError.single(
        _WEIGHTS,
        "constituent_portfolio_uid",
        deepest,
        f"nests portfolios more than {MAX_DEPTH} levels deep (or in a loop); a portfolio never contains itself "
        f"and nesting is at most {MAX_DEPTH} levels",
    )


def _lay_out_compositions(
    frame: pl.DataFrame, leaves: pl.DataFrame, pairs: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Number the leaves ``__w`` in output order; give each pair its unit's first row ``__start`` and length ``__n``.

    Returns the numbered leaves, the asset dictionary, and ``pairs`` with ``__start`` and ``__n``.
    """
    assets = _asset_dictionary(frame, leaves)
    order = ["portfolio_uid", "time_index", "__unit_w", "__akey"]
    if leaves.height and int(leaves["depth"].max() or 0) > 1:  # type: ignore[arg-type]
        order += ["depth", "path"]  # routes to one asset through nested portfolios: a stable order
    leaves = (
        leaves.join(assets.select("asset_uid", "__akey"), on="asset_uid", how="left").sort(order).with_row_index("__w")
    )
    units = leaves.group_by("portfolio_uid", "time_index", "__unit_w").agg(
        pl.col("__w").first().alias("__start"), pl.len().alias("__n")
    )
    pairs = pairs.join(
        units.rename({"time_index": "weights_time"}), on=["portfolio_uid", "weights_time", "__unit_w"], how="left"
    )
    return leaves, assets, pairs


def _scaled(weight: pl.Series, t_idx: pl.Expr) -> list[pl.Expr]:
    """The three exposures of each output row: the source row's, times the constituent weight if scaled."""
    scale = pl.lit(weight.fill_null(1.0))  # asset rows: x * 1.0 == x exactly
    return [
        pl.col(c).gather(t_idx) * scale if c in SCALED_EXPOSURES else pl.col(c).gather(t_idx) for c in EXPOSURE_COLUMNS
    ]


def _plain(
    frame: pl.DataFrame, history: pl.DataFrame, assets: pl.DataFrame, t_idx: pl.Series, w_idx: pl.Series
) -> pl.DataFrame:
    """Every output column is one gather from the (small) target, weight or asset frame.

    The gathers from one frame are one ``select``, so polars runs them side by side.
    """
    weight = history["weight"].gather(w_idx)
    akey = pl.lit(history["__akey"].gather(w_idx).fill_null(frame["__akey"].gather(t_idx)))
    t, w = pl.lit(t_idx), pl.lit(w_idx)
    by_target = frame.select(
        pl.col("position_set_uid").gather(t),
        pl.col("time_index").gather(t),
        pl.col("target_type").gather(t).alias("source_target_type"),
        pl.col("target_uid").gather(t).alias("source_target_uid"),
        pl.col("portfolio_uid").gather(t),
        pl.col("weights_time").gather(t),
        *_scaled(weight, t),
    )
    by_asset = assets.select(pl.col("asset_uid").gather(akey), pl.col("asset").gather(akey))
    by_weight = history.select(
        pl.col("path").gather(w),  # null on an asset target row (it has no path)
        pl.col("depth").gather(w).fill_null(0),  # 0: the target itself is the asset
    )
    columns = {**by_target.to_dict(), **by_asset.to_dict(), "portfolio_weight": weight.alias("portfolio_weight")}
    columns.update(by_weight.to_dict())
    return pl.DataFrame([columns[c] for c in EXPANSION_COLUMNS])


def _net(
    frame: pl.DataFrame, history: pl.DataFrame, assets: pl.DataFrame, t_idx: pl.Series, w_idx: pl.Series
) -> pl.DataFrame:
    """Sum the expanded exposures per (set, asset), on integer keys only.

    Every target row sets exactly one exposure (its *kind*), so an expanded row is one value and
    one key, ``(set number, asset number, kind)`` packed into an integer whose order is the output
    order. Rows are sorted on it. Most keys occur once and are already their own sum; only the
    repeated ones are aggregated. The (at most three) kinds of one (set, asset) are then adjacent
    and become the three exposure columns; a kind that never occurs stays null, not 0.
    """
    n_assets, n_kinds = max(assets.height, 1), len(EXPOSURE_COLUMNS)
    set_id = frame["position_set_uid"].rle_id()  # the frame is sorted by set
    n_keys = (int(set_id.max() or 0) + 1) * n_assets * n_kinds  # type: ignore[operator]
    dtype = pl.UInt32 if n_keys < 2**32 else pl.UInt64
    kind = pl.coalesce(
        *[pl.when(pl.col(c).is_not_null()).then(pl.lit(i, dtype)) for i, c in enumerate(EXPOSURE_COLUMNS)]
    )
    per_target = frame.select(
        ((set_id.cast(dtype) * n_assets + pl.col("__akey").fill_null(0).cast(dtype)) * n_kinds + kind).alias("key"),
        pl.coalesce(*EXPOSURE_COLUMNS).alias("value"),
    )
    # Asset rows have no weight row: they point at an extra one, of key part 0 and weight 1.
    per_weight = pl.concat(
        [
            history.select((pl.col("__akey").cast(dtype) * n_kinds).alias("key"), pl.col("weight")),
            pl.DataFrame({"key": [0], "weight": [1.0]}, schema={"key": dtype, "weight": pl.Float64}),
        ]
    )
    w_idx = w_idx.fill_null(history.height)
    work = pl.DataFrame(
        {
            "__key": per_target["key"].gather(t_idx) + per_weight["key"].gather(w_idx),
            "__value": per_target["value"].gather(t_idx) * per_weight["weight"].gather(w_idx),
        }
    ).sort("__key")
    previous, following = pl.col("__key").shift(1), pl.col("__key").shift(-1)
    work = work.with_columns(
        (pl.col("__key") != previous).fill_null(True).alias("__first"),
        ((pl.col("__key") == previous) | (pl.col("__key") == following)).fill_null(False).alias("__repeated"),
    )
    summed = (
        work.filter("__repeated")
        .group_by("__key", maintain_order=True)  # sorted input: groups come out in key order
        .agg(pl.col("__value").sum(), pl.len().cast(pl.UInt32).alias("__n"))
    )
    heads = work.filter("__first")
    at = heads["__repeated"].arg_true()  # the first rows of the repeated keys, in key order
    cells = pl.DataFrame(
        {
            "__cell": heads["__key"] // n_kinds,
            "__kind": heads["__key"] % n_kinds,
            "__value": heads["__value"].scatter(at, summed["__value"]),
            "__n": pl.Series([1], dtype=pl.UInt32).new_from_index(0, heads.height).scatter(at, summed["__n"]),
        }
    )
    netted = _fold_kinds(cells, n_kinds)
    set_rows = frame["position_set_uid"].is_first_distinct().arg_true()  # each set's first target row
    set_of, asset_of = (netted["__cell"] // n_assets).cast(pl.UInt32), (netted["__cell"] % n_assets).cast(pl.UInt32)
    return pl.DataFrame(
        {
            "position_set_uid": frame["position_set_uid"].gather(set_rows).gather(set_of),
            "time_index": frame["time_index"].gather(set_rows).gather(set_of),
            "asset_uid": assets["asset_uid"].gather(asset_of),
            "asset": assets["asset"].gather(asset_of),
            **{c: netted[c] for c in EXPOSURE_COLUMNS},
            "n_sources": netted["n_sources"],
        }
    )


def _fold_kinds(cells: pl.DataFrame, n_kinds: int) -> pl.DataFrame:
    """One row per cell (set, asset) with each kind's value in its exposure column and ``n_sources``.

    The kinds of one (set, asset) are adjacent rows with the same cell (at most ``n_kinds`` of
    them): each row's value goes to its kind's column, and the few cells with several kinds have
    their following rows folded into their first.
    """
    cell = pl.col("__cell")
    cells = cells.with_columns(
        (cell != cell.shift(1)).fill_null(True).alias("__head"),
        (cell == cell.shift(-1)).fill_null(False).alias("__more"),
        *[pl.when(pl.col("__kind") == i).then(pl.col("__value")).alias(c) for i, c in enumerate(EXPOSURE_COLUMNS)],
    )
    netted = cells.filter("__head").select("__cell", "__more", *EXPOSURE_COLUMNS, pl.col("__n").alias("n_sources"))
    starts = cells.select((pl.col("__head") & pl.col("__more")).arg_true())[:, 0]  # where a multi-kind cell begins
    if starts.len():
        folded = cells.select(pl.col("__cell", "__n", *EXPOSURE_COLUMNS).gather(starts))
        for j in range(1, n_kinds):
            following = cells.select(
                pl.col("__cell", "__n", *EXPOSURE_COLUMNS).gather((starts + j).clip(upper_bound=cells.height - 1))
            )
            same = (following["__cell"] == folded["__cell"]) & (starts + j < cells.height)
            folded = folded.with_columns(
                *[pl.col(c).fill_null(pl.when(same).then(following[c])) for c in EXPOSURE_COLUMNS],
                (pl.col("__n") + pl.when(same).then(following["__n"]).otherwise(0)).cast(pl.UInt32),
            )
        at = netted["__more"].arg_true()  # the same cells, as positions in `netted` (same order)
        netted = netted.with_columns(
            *[netted[c].scatter(at, folded[c]) for c in EXPOSURE_COLUMNS],
            netted["n_sources"].scatter(at, folded["__n"]),
        )
    return netted


def _asset_dictionary(frame: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Every asset the output can name, numbered in output order (by identifier, then uid)."""
    direct = frame.filter(pl.col("target_type") == "asset").select(
        "asset_uid", pl.col("unique_identifier").alias("asset")
    )
    via = history.select("asset_uid", "asset")
    return (
        pl.concat([direct, via])
        .group_by("asset_uid")
        .agg(pl.col("asset").drop_nulls().first())
        .sort("asset", "asset_uid", nulls_last=True)
        .with_row_index("__akey")
    )


def _diagnostics(used_rows: pl.DataFrame, names: pl.DataFrame) -> pl.DataFrame:
    """Every composition used (``used_rows``: their rows, at any level of nesting) whose weights do not sum to 1."""
    sums = used_rows.group_by("portfolio_uid", "time_index").agg(pl.col("weight").sum().alias("weight_sum"))
    off = sums.filter((pl.col("weight_sum") - 1.0).abs() > WEIGHT_SUM_TOLERANCE)
    if off.height == 0:
        return _empty_diagnostics()
    return (
        off.join(names, on="portfolio_uid", how="left")
        .select(
            "portfolio_uid",
            pl.col("__name").alias("portfolio"),
            pl.col("time_index").alias("weights_time"),
            "weight_sum",
        )
        .sort("portfolio", "portfolio_uid", "weights_time", nulls_last=True)
        .cast(_DIAGNOSTICS_SCHEMA)  # type: ignore[arg-type]
    )


def _raise_missing(pairs: pl.DataFrame, history: pl.DataFrame) -> None:
    missing = pairs.filter(pl.col("weights_time").is_null())
    if missing.height == 0:
        return
    names = history.group_by("portfolio_uid").agg(pl.col("portfolio").drop_nulls().first().alias("__wname"))
    missing = (
        missing.join(names, on="portfolio_uid", how="left")
        .with_columns(pl.coalesce("__pname", "__wname", "portfolio_uid").alias("__name"))
        .sort("__name", "__wtime")
    )
    raise MissingCompositionError(list(zip(missing["__name"].to_list(), missing["__wtime"].to_list(), strict=True)))


# -- inputs ----------------------------------------------------------------------------------------
def weights_time(weights_as_of: Any, now: datetime | None = None) -> tuple[datetime | None, str | datetime]:
    """``(bound, asked)``: the one weights time for every row (``None`` = each set's own), and what was asked.

    Any engine expanding the same way (``msm_spark`` too) reads ``weights_as_of`` through this.

    >>> weights_time("position-set")
    (None, 'position-set')
    >>> weights_time("2026-06-01T09:00:00+09:00")[0]
    datetime.datetime(2026, 6, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(weights_as_of, str) and weights_as_of.strip().lower() == "position-set":
        return None, "position-set"
    if isinstance(weights_as_of, str) and weights_as_of.strip().lower() == "now":
        at = parse_utc(now, field="now", entity="expansion") if now is not None else utc_now()
        return at, "now"
    if not isinstance(weights_as_of, (str, datetime)):
        raise ValidationError.single(
            "expansion", "weights_as_of", weights_as_of, "must be 'now', 'position-set' or a time with a UTC offset"
        )
    at = parse_utc(weights_as_of, field="weights_as_of", entity="expansion")
    return at, at


def _normalize_targets(targets: pl.DataFrame) -> pl.DataFrame:
    if not isinstance(targets, pl.DataFrame):
        raise TypeError(f"targets must be a polars DataFrame, got {type(targets).__name__}")
    required = ("position_set_uid", "time_index", "target_type", "asset_uid", "portfolio_uid")
    errors = [
        RowError(_TARGETS, None, c, NO_VALUE, "column is missing; expansion takes storage-shaped target rows")
        for c in required
        if c not in targets.columns
    ]
    if not set(EXPOSURE_COLUMNS) & set(targets.columns):
        errors.append(
            RowError(
                _TARGETS,
                None,
                "weight_notional_exposure",
                NO_VALUE,
                NO_EXPOSURE_COLUMN,
            )
        )
    for c in EXPOSURE_COLUMNS:
        if c in targets.columns and not (targets.schema[c].is_numeric() or targets.schema[c] == pl.Null):
            errors.append(RowError(_TARGETS, None, c, NO_VALUE, f"must hold numbers, got a {targets.schema[c]} column"))
    if errors:
        raise ValidationError(errors)

    optional = {c: pl.lit(None, pl.String) for c in ("target_uid", "unique_identifier") if c not in targets.columns}
    optional |= {c: pl.lit(None, pl.Float64) for c in EXPOSURE_COLUMNS if c not in targets.columns}
    frame = targets.with_columns(**optional).select(
        uid_text("position_set_uid").alias("position_set_uid"),
        "time_index",
        pl.col("target_type").cast(pl.String).str.strip_chars().alias("target_type"),
        uid_text("target_uid").alias("target_uid"),
        uid_text("asset_uid").alias("asset_uid"),
        uid_text("portfolio_uid").alias("portfolio_uid"),
        pl.col("unique_identifier").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in EXPOSURE_COLUMNS],
    )
    if frame.height == 0:
        return frame.with_columns(pl.col("time_index").cast(_UTC, strict=False))
    frame = ensure_utc_column(frame, "time_index", entity=_TARGETS)

    check_target_rows(frame)
    return frame.with_columns(pl.coalesce("target_uid", _DERIVED_UID).alias("target_uid"))


def _normalize_weights(history: pl.DataFrame, uids: list[str], until: datetime) -> pl.DataFrame:
    missing = [c for c in ("time_index", "portfolio_uid", "asset_uid", "weight") if c not in history.columns]
    if missing:
        raise ValidationError(
            [
                RowError(
                    _WEIGHTS,
                    None,
                    c,
                    NO_VALUE,
                    f"column is missing; a composition history has {', '.join(WEIGHTS_COLUMNS)}",
                )
                for c in missing
            ]
        )
    if not (history.schema["weight"].is_numeric() or history.schema["weight"] == pl.Null):
        raise ValidationError.single(_WEIGHTS, "weight", str(history.schema["weight"]), "must hold numbers")
    optional = {
        c: pl.lit(None, pl.String)
        for c in ("asset", "portfolio", "constituent_portfolio_uid", "constituent_portfolio")
        if c not in history.columns
    }
    history = history.with_columns(**optional)
    if "constituent_type" not in history.columns:  # a history of asset rows only (or one naming nested portfolios)
        kind = pl.when(pl.col("constituent_portfolio_uid").is_not_null()).then(pl.lit("portfolio"))
        history = history.with_columns(kind.otherwise(pl.lit("asset")).alias("constituent_type"))
    history = history.select(
        "time_index",
        uid_text("portfolio_uid").alias("portfolio_uid"),
        uid_text("asset_uid").alias("asset_uid"),
        pl.col("asset").cast(pl.String),
        pl.col("portfolio").cast(pl.String),
        pl.col("weight").cast(pl.Float64),
        pl.col("constituent_type").cast(pl.String).str.strip_chars(),
        uid_text("constituent_portfolio_uid").alias("constituent_portfolio_uid"),
        pl.col("constituent_portfolio").cast(pl.String),
    )
    if history.height == 0:
        return _empty_weights()
    history = ensure_utc_column(history, "time_index", entity=_WEIGHTS)
    history = history.filter(pl.col("time_index") <= pl.lit(until, _UTC))
    return history.filter(pl.col("portfolio_uid").is_in(_reachable(history, uids).implode()))


def _reachable(history: pl.DataFrame, uids: list[str]) -> pl.Series:
    """``uids`` and every portfolio nested in them at any depth, any time (one semi-join per level)."""
    edges = history.filter(_IS_NESTED).select("portfolio_uid", "constituent_portfolio_uid").unique()
    reach = pl.Series("portfolio_uid", uids, dtype=pl.String)
    if edges.height == 0:
        return reach
    frontier = reach
    for _ in range(MAX_DEPTH + 1):
        found = edges.filter(pl.col("portfolio_uid").is_in(frontier.implode()))["constituent_portfolio_uid"].unique()
        frontier = found.filter(~found.is_in(reach.implode()))
        if frontier.len() == 0:
            break
        reach = pl.concat([reach, frontier.rename("portfolio_uid")])
    return reach


def check_target_rows(frame: pl.DataFrame) -> None:
    """Raise one :class:`ValidationError` listing every storage-shaped target row that breaks :data:`TARGET_ROW_RULES`.

    ``frame`` holds the columns as :func:`expand_targets` reads them (uids in lower case, exposures
    Float64); rows are numbered 1..n in the order given.
    """
    raise_violations(find_violations(frame, TARGET_ROW_RULES))


def check_composition_rows(history: pl.DataFrame) -> None:
    """Raise one :class:`ValidationError` listing every composition row used that breaks :data:`COMPOSITION_ROW_RULES`.

    ``history`` has ``time_index``, ``portfolio_uid``, ``asset_uid``, ``asset``, ``portfolio`` and
    ``weight``. Row numbers of a weights source mean nothing to the user: each message says which
    portfolio and time instead. Any engine expanding the same way (``msm_spark`` too) checks with this.
    """
    violations = find_violations(history, COMPOSITION_ROW_RULES)
    raise_violations(violations.with_columns(pl.lit(None, pl.Int64).alias("row")))


def _empty(net: bool) -> pl.DataFrame:
    return pl.DataFrame(schema=_NET_SCHEMA if net else _ROWS_SCHEMA)


def _empty_diagnostics() -> pl.DataFrame:
    return pl.DataFrame(schema=_DIAGNOSTICS_SCHEMA)


def _empty_weights() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "time_index": _UTC,
            "portfolio_uid": pl.String,
            "asset_uid": pl.String,
            "asset": pl.String,
            "portfolio": pl.String,
            "weight": pl.Float64,
            "constituent_type": pl.String,
            "constituent_portfolio_uid": pl.String,
            "constituent_portfolio": pl.String,
        }
    )
