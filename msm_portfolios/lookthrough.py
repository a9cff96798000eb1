"""Look-through of one target set, saved or still being built, with the stored compositions.

:func:`look_through` expands target rows with :func:`msm.expansion.expand_targets` (the one
implementation of the semantics) and the compositions in ``portfolio_weights``, and returns what a
reader of the result wants side by side: the expanded rows with their lineage, the exposure netted
per asset, the weight exposure per asset split into direct and via-portfolio, and the weight-sum
diagnostics. For a draft (the builder's unsaved set) a portfolio with no composition at the weights
time can be set aside (``skip_missing``) so the rest is still shown; it is then named in
``missing``, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from msm.expansion import MissingCompositionError, WeightsAsOf, WeightsSource, expand_targets
from msm.services.snapshots import Snapshot, read_target_rows
from msm.store import Store
from msm.timeutil import parse_utc, utc_now
from msm_portfolios.compositions import duckdb_weights_source

__all__ = ["DRAFT_SET", "LookThrough", "look_through", "look_through_snapshot"]

#: The ``position_set_uid`` given to the rows of a set that is not stored yet.
DRAFT_SET = "00000000-0000-0000-0000-000000000000"
_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class LookThrough:
    """Expanded rows (``rows``), netted per asset (``net``), weight by source (``by_source``).

    ``by_source`` has one row per asset: ``asset``, ``direct`` (weight held directly),
    ``via_portfolio`` (weight held through portfolio targets), ``total``; exposures given as
    notional or quantity are not weights and are not in it. ``missing``: portfolios set aside
    because they have no composition at the weights time (only with ``skip_missing``).
    """

    rows: pl.DataFrame
    net: pl.DataFrame
    by_source: pl.DataFrame
    diagnostics: pl.DataFrame
    weights_as_of: str | datetime
    weights_time_bound: datetime | None
    missing: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def weight_sum(self) -> float:
        return float(self.net["weight_notional_exposure"].sum() or 0.0) if self.net.height else 0.0


def look_through(
    store: Store,
    targets: pl.DataFrame,
    *,
    at: datetime | str | None = None,
    weights_as_of: WeightsAsOf = "now",
    skip_missing: bool = False,
    now: datetime | None = None,
) -> LookThrough:
    """Expand storage-shaped target rows of one or more sets with the stored compositions.

    Rows without ``position_set_uid`` / ``time_index`` are a draft: they get :data:`DRAFT_SET` and
    the time ``at`` (default now), so ``weights_as_of="position-set"`` uses the draft's own time.
    """
    frame = targets
    if "position_set_uid" not in frame.columns:
        frame = frame.with_columns(pl.lit(DRAFT_SET).alias("position_set_uid"))
    if "time_index" not in frame.columns:
        when = parse_utc(at, field="at", entity="target set") if at is not None else utc_now()
        frame = frame.with_columns(pl.lit(when).cast(_UTC).alias("time_index"))
    now = now or utc_now()
    source = _once(duckdb_weights_source(store))  # the plain and the net expansion read the compositions once
    missing: list[tuple[str, datetime]] = []
    try:
        plain = expand_targets(frame, source, weights_as_of=weights_as_of, now=now)
    except MissingCompositionError as exc:
        if not skip_missing:
            raise
        missing = exc.missing
        names = {name for name, _ in missing}
        named = (
            pl.coalesce(pl.col("unique_identifier"), pl.col("portfolio_uid"))
            if "unique_identifier" in frame.columns
            else pl.col("portfolio_uid")
        )
        frame = frame.filter(~((pl.col("target_type") == "portfolio") & named.is_in(sorted(names))))
        plain = expand_targets(frame, source, weights_as_of=weights_as_of, now=now)
    net = expand_targets(frame, source, weights_as_of=weights_as_of, net=True, now=now)
    return LookThrough(
        rows=plain.rows,
        net=net.rows,
        by_source=_by_source(plain.rows),
        diagnostics=plain.diagnostics,
        weights_as_of=plain.weights_as_of,
        weights_time_bound=plain.weights_time_bound,
        missing=missing,
    )


def look_through_snapshot(
    store: Store, snapshot: Snapshot, *, weights_as_of: WeightsAsOf = "now", now: datetime | None = None
) -> LookThrough:
    """:func:`look_through` of a stored snapshot (``msm.read_snapshot``'s result)."""
    if snapshot.is_empty:
        targets = read_target_rows(store, [])
    else:
        targets = read_target_rows(store, [snapshot.position_set_uid])  # type: ignore[list-item]
    return look_through(store, targets, weights_as_of=weights_as_of, now=now)


def _once(source: WeightsSource) -> WeightsSource:
    """``source``, reading each (portfolios, bound) question from the database only once."""
    answers: dict[tuple[tuple[str, ...], datetime | None], pl.DataFrame] = {}

    def cached(portfolio_uids: list[str], until: datetime | None) -> pl.DataFrame:
        key = (tuple(portfolio_uids), until)
        if key not in answers:
            answers[key] = source(portfolio_uids, until)
        return answers[key]

    return cached


def _by_source(rows: pl.DataFrame) -> pl.DataFrame:
    weight = pl.col("weight_notional_exposure")
    direct = pl.col("source_target_type") == "asset"
    return (
        rows.filter(weight.is_not_null())
        .group_by("asset_uid", "asset")
        .agg(
            weight.filter(direct).sum().alias("direct"),
            weight.filter(~direct).sum().alias("via_portfolio"),
        )
        .with_columns((pl.col("direct") + pl.col("via_portfolio")).alias("total"))
        .sort(["total", "asset"], descending=[True, False])
    )
