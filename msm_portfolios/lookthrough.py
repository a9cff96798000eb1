"""The look-through: one entry for every surface (CLI, app, notebook, export).

:func:`look_through` expands a target set, saved (a :class:`msm.Snapshot`, or stored rows of any
number of sets) or still being built (the builder's draft), **once**, with
:func:`msm.expansion.expand_targets` (the one implementation of the semantics) and the
compositions in ``portfolio_weights``. Every view a reader wants is derived from that one
expansion, on first use: the expanded rows (:attr:`LookThrough.rows`), the same rows with the name
of the target each came from (:attr:`LookThrough.lineage`), the exposure netted per asset
(:attr:`LookThrough.net`, the rows of ``expand_targets(..., net=True)``), the weight held directly
and via portfolios (:attr:`LookThrough.by_source`, :attr:`LookThrough.net_by_source`) and the
weight-sum diagnostics. For a draft, a portfolio with no composition at the weights time can be
set aside (``skip_missing``) so the rest is still shown; it is then named in ``missing``, never
silently dropped.

:func:`export_snapshots` is the export's entry: :func:`msm.services.export.export_snapshots` with
the compositions of this package, chunk by chunk through the same ``expand_targets``.

>>> import msm, msm_portfolios
>>> store = msm_portfolios.init_store(":memory:")
>>> _ = msm.add_asset(store, "BTC"), msm.add_asset(store, "ETH"), msm.add_portfolio(store, "EW")
>>> _ = msm_portfolios.save_composition(store, "EW", "2026-01-01T00:00:00Z", [
...     {"asset": "BTC", "weight": 0.5}, {"asset": "ETH", "weight": 0.5}])
>>> _ = msm.add_account(store, "alpha", account_name="Alpha"), msm.add_allocation_model(store, "Balanced")
>>> _ = msm.add_allocation(store, "alpha-target", account="alpha", model="Balanced")
>>> _ = msm.save_snapshot(store, "alpha", "2026-06-01T00:00:00Z", [
...     {"asset": "BTC", "weight_notional_exposure": 0.6}, {"portfolio": "EW", "weight_notional_exposure": 0.4}])
>>> view = look_through(store, msm.read_snapshot(store, "alpha"))
>>> view.net.select("asset", "weight_notional_exposure", "n_sources").rows()
[('BTC', 0.8, 2), ('ETH', 0.2, 1)]
>>> view.net_by_source.select("asset", "direct", "via_portfolio").rows()
[('BTC', 0.6, 0.2), ('ETH', 0.0, 0.2)]
>>> view.lineage.select("source", "asset", "portfolio_weight").rows()
[('BTC', 'BTC', None), ('EW', 'BTC', 0.5), ('EW', 'ETH', 0.5)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from msm.contract import EXPOSURE_COLUMNS
from msm.expansion import (
    NET_COLUMNS,
    PATH_SEPARATOR,
    Expansion,
    MissingCompositionError,
    WeightsAsOf,
    WeightsSource,
    expand_targets,
)
from msm.services.snapshots import Snapshot, read_target_rows
from msm.store import Store
from msm.timeutil import parse_utc, utc_now
from msm_portfolios.compositions import duckdb_weights_source

if TYPE_CHECKING:  # the export module loads pyarrow.dataset: only an export pays for it
    from msm.services.export import ExportResult

__all__ = ["DRAFT_SET", "LookThrough", "export_snapshots", "look_through", "look_through_snapshot", "net_rows"]

#: The ``position_set_uid`` given to the rows of a set that is not stored yet.
DRAFT_SET = "00000000-0000-0000-0000-000000000000"
_UTC = pl.Datetime("us", "UTC")
_SET_ASSET = ("position_set_uid", "asset_uid")


@dataclass(frozen=True, eq=False)
class LookThrough:
    """One expansion of a target set and every view of it (each computed on first use, then kept).

    ``expansion``: what :func:`msm.expansion.expand_targets` returned (plain rows).
    ``targets``: the target rows that were expanded. ``missing``: portfolios set aside because they
    have no composition at the weights time (only with ``skip_missing``; a nested one is named
    ``'EQ (nested in BAL)'``, and its target's portfolio, BAL, is what was set aside).
    """

    expansion: Expansion
    targets: pl.DataFrame
    missing: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def rows(self) -> pl.DataFrame:
        """The expanded rows (:data:`msm.expansion.EXPANSION_COLUMNS`), as ``msm targets expand`` writes them."""
        return self.expansion.rows

    @property
    def diagnostics(self) -> pl.DataFrame:
        """One row per composition used whose weights do not sum to 1 (expanded as stored)."""
        return self.expansion.diagnostics

    @property
    def weights_as_of(self) -> str | datetime:
        """What was asked: ``"now"``, ``"position-set"`` or a UTC time."""
        return self.expansion.weights_as_of

    @property
    def weights_time_bound(self) -> datetime | None:
        """The instant "now" or the explicit time resolved to (``None`` for ``"position-set"``)."""
        return self.expansion.weights_time_bound

    @cached_property
    def lineage(self) -> pl.DataFrame:
        """:attr:`rows` with ``source``: the unique identifier of the target each row came from."""
        if "unique_identifier" not in self.targets.columns:
            return self.rows.with_columns(pl.col("source_target_uid").alias("source"))
        labels = self.targets.select(
            pl.col("target_uid").cast(pl.String).alias("source_target_uid"), pl.col("unique_identifier").alias("source")
        ).unique("source_target_uid", keep="first")
        joined = self.rows.join(labels, on="source_target_uid", how="left", maintain_order="left")
        return joined.with_columns(pl.coalesce("source", "source_target_uid").alias("source"))

    @cached_property
    def net(self) -> pl.DataFrame:
        """The exposure netted per (position set, asset): :func:`net_rows` of :attr:`rows`."""
        return net_rows(self.rows)

    @cached_property
    def by_source(self) -> pl.DataFrame:
        """Weight per asset (over every set): ``asset_uid``, ``asset``, ``direct``, ``via_portfolio``, ``total``.

        Exposures given as notional or quantity are not weights and are not in it.
        """
        return _split(self.rows, ["asset_uid", "asset"]).sort(["total", "asset"], descending=[True, False])

    @cached_property
    def net_by_source(self) -> pl.DataFrame:
        """:attr:`net` with each (set, asset)'s weight held ``direct`` and ``via_portfolio`` beside it."""
        split = _split(self.rows, list(_SET_ASSET)).select(*_SET_ASSET, "direct", "via_portfolio")
        return self.net.join(split, on=list(_SET_ASSET), how="left", maintain_order="left")

    @cached_property
    def tree(self) -> pl.DataFrame:
        """The lineage as a tree: target -> portfolio -> nested portfolio -> asset, one row per node.

        Columns ``node`` (the node's full path, `` > ``-joined, which sorts parents before children),
        ``label`` (the node's own name), ``level`` (0 for a target), ``kind`` (``target``,
        ``portfolio`` or ``asset``) and the three exposures summed under the node.
        """
        rows = self.lineage.filter(pl.col("source_target_type") == "portfolio")
        schema = {"node": pl.String, "label": pl.String, "level": pl.Int32, "kind": pl.String}
        if rows.height == 0:
            return pl.DataFrame(schema=schema | {c: pl.Float64 for c in EXPOSURE_COLUMNS})
        steps = pl.col("path").str.split(PATH_SEPARATOR)
        nodes = (
            rows.select(
                "source",
                pl.concat_list(steps, pl.concat_list(pl.col("asset"))).alias("__steps"),
                *EXPOSURE_COLUMNS,
            )
            .with_columns(pl.int_ranges(1, pl.col("__steps").list.len() + 1).alias("__k"))
            .explode("__k")
            .with_columns(
                pl.col("__steps").list.slice(0, pl.col("__k")).list.join(PATH_SEPARATOR).alias("node"),
                pl.col("__steps").list.get(pl.col("__k") - 1).alias("label"),
                (pl.col("__k") - 1).cast(pl.Int32).alias("level"),
                pl.when(pl.col("__k") == pl.col("__steps").list.len())
                .then(pl.lit("asset"))
                .when(pl.col("__k") == 1)
                .then(pl.lit("target"))
                .otherwise(pl.lit("portfolio"))
                .alias("kind"),
            )
        )
        summed = [pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c) for c in EXPOSURE_COLUMNS]
        return (
            nodes.group_by("node", "label", "level", "kind")
            .agg(*summed)
            .sort("node")
            .select(*schema, *EXPOSURE_COLUMNS)
            .cast(schema)  # type: ignore[arg-type]
        )

    @property
    def weight_sum(self) -> float:
        """Sum of the weight exposure of the expanded rows, i.e. of the netted ones (never renormalized)."""
        return float(self.rows["weight_notional_exposure"].sum() or 0.0) if self.rows.height else 0.0


def look_through(
    store: Store,
    targets: pl.DataFrame | Snapshot,
    *,
    at: datetime | str | None = None,
    weights_as_of: WeightsAsOf = "now",
    skip_missing: bool = False,
    now: datetime | None = None,
) -> LookThrough:
    """Expand a target set once with the stored compositions; every view comes from that expansion.

    ``targets``: a snapshot (``msm.read_snapshot``'s result), storage-shaped rows of one or more
    sets (``msm.read_target_rows``), or a draft's rows (``msm.check_target_set(...).rows``). Rows
    without ``position_set_uid`` / ``time_index`` are a draft: they get :data:`DRAFT_SET` and the
    time ``at`` (default now), so ``weights_as_of="position-set"`` uses the draft's own time.
    ``weights_as_of``: ``"now"``, ``"position-set"`` or a UTC time (see ``expand_targets``).
    ``skip_missing``: set aside (and list in ``missing``) portfolios without a composition,
    instead of raising :class:`msm.expansion.MissingCompositionError`.
    """
    frame = _target_frame(store, targets, at)
    source = _once(duckdb_weights_source(store))  # a retry without the missing portfolios reads nothing again
    now = now or utc_now()
    try:
        return LookThrough(expand_targets(frame, source, weights_as_of=weights_as_of, now=now), frame)
    except MissingCompositionError as exc:
        if not skip_missing:
            raise
        # a nested portfolio without a composition sets aside the target's portfolio it was reached from
        roots = {
            path.split(PATH_SEPARATOR)[0] if path else name
            for (name, _), path in zip(exc.missing, exc.paths, strict=True)
        }
        kept = _without_portfolios(frame, roots)
        # a nested one is named with the path it was reached through (`EQ (nested in BAL)`)
        named = [(f"{n} (nested in {p})" if p else n, at) for (n, at), p in zip(exc.missing, exc.paths, strict=True)]
        return LookThrough(expand_targets(kept, source, weights_as_of=weights_as_of, now=now), kept, named)


def look_through_snapshot(
    store: Store, snapshot: Snapshot, *, weights_as_of: WeightsAsOf = "now", now: datetime | None = None
) -> LookThrough:
    """:func:`look_through` of a stored snapshot (the same entry; kept for the callers that name it)."""
    return look_through(store, snapshot, weights_as_of=weights_as_of, now=now)


def net_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """Expanded rows summed per (position set, asset): the rows of ``expand_targets(..., net=True)``.

    Each exposure kind is summed on its own (a sum of nothing but nulls stays null);
    ``n_sources`` counts the expanded rows summed. Ordered by set, then asset identifier and uid.
    """
    summed = [pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c) for c in EXPOSURE_COLUMNS]
    return (
        rows.group_by("position_set_uid", "time_index", "asset_uid", "asset")
        .agg(*summed, pl.len().cast(pl.UInt32).alias("n_sources"))
        .sort("position_set_uid", "asset", "asset_uid", nulls_last=True)
        .select(NET_COLUMNS)
    )


def export_snapshots(
    store: Store,
    out: str | Path,
    *,
    expanded: bool = False,
    weights_as_of: str | datetime = "now",
    overwrite: bool = False,
    accounts: Sequence[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
    drift: bool = False,
    drift_as_of: datetime | None = None,
    include_drafts: bool = False,
) -> ExportResult:
    """Every chosen snapshot as hive-partitioned Parquet under ``out``, with this package's compositions.

    :func:`msm.services.export.export_snapshots` with ``weights`` the stored compositions: it writes
    ``portfolio_weights/`` and, with ``expanded``, ``target_exposure/`` (the look-through rows); with
    ``drift``, ``drift/`` (every active account at ``drift_as_of``, default now) and its inputs.
    Drafts are exported only with ``include_drafts``.
    """
    from msm.services.export import export_snapshots as export

    return export(
        store,
        out,
        expanded=expanded,
        weights=duckdb_weights_source(store),
        weights_as_of=weights_as_of,
        overwrite=overwrite,
        accounts=accounts,
        date_from=date_from,
        date_to=date_to,
        now=now,
        drift=drift,
        drift_as_of=drift_as_of,
        include_drafts=include_drafts,
    )


def _target_frame(store: Store, targets: pl.DataFrame | Snapshot, at: datetime | str | None) -> pl.DataFrame:
    """Storage-shaped rows with a set and a time: a snapshot's stored rows, or a draft stamped ``at``."""
    if isinstance(targets, Snapshot):
        return read_target_rows(store, [] if targets.is_empty else [str(targets.position_set_uid)])
    frame = targets
    if "position_set_uid" not in frame.columns:
        frame = frame.with_columns(pl.lit(DRAFT_SET).alias("position_set_uid"))
    if "time_index" not in frame.columns:
        when = parse_utc(at, field="at", entity="target set") if at is not None else utc_now()
        frame = frame.with_columns(pl.lit(when).cast(_UTC).alias("time_index"))
    return frame


def _without_portfolios(frame: pl.DataFrame, names: set[str]) -> pl.DataFrame:
    """``frame`` without the portfolio rows named (by unique identifier, or uid when it has none)."""
    named = (
        pl.coalesce(pl.col("unique_identifier"), pl.col("portfolio_uid"))
        if "unique_identifier" in frame.columns
        else pl.col("portfolio_uid")
    )
    return frame.filter(~((pl.col("target_type") == "portfolio") & named.is_in(sorted(names))))


def _once(source: WeightsSource) -> WeightsSource:
    """``source``, reading each (portfolios, bound) question from the database only once."""
    answers: dict[tuple[tuple[str, ...], datetime | None], pl.DataFrame] = {}

    def cached(portfolio_uids: list[str], until: datetime | None) -> pl.DataFrame:
        """The compositions of ``portfolio_uids`` up to ``until``, read once per question."""
        key = (tuple(portfolio_uids), until)
        if key not in answers:
            answers[key] = source(portfolio_uids, until)
        return answers[key]

    return cached


def _split(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Weight per ``keys`` held directly (asset targets) and via portfolio targets, and their total."""
    weight = pl.col("weight_notional_exposure")
    direct = pl.col("source_target_type") == "asset"
    return (
        rows.filter(weight.is_not_null())
        .group_by(keys)
        .agg(weight.filter(direct).sum().alias("direct"), weight.filter(~direct).sum().alias("via_portfolio"))
        .with_columns((pl.col("direct") + pl.col("via_portfolio")).alias("total"))
    )
