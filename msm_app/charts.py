"""The workbench's charts (Altair), shared by the pages. Every time axis is in UTC.

>>> from datetime import UTC, datetime
>>> days = pl.Series([datetime(2026, 5, 25, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)])
>>> time_axis_format(days)
('%Y-%m-%d', {'interval': 'day', 'step': 1})
>>> time_axis_format(pl.Series([datetime(2026, 5, 25, 9, tzinfo=UTC), datetime(2026, 5, 25, 15, tzinfo=UTC)]))
('%Y-%m-%d %H:%M', None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

__all__ = ["MAX_DATE_TICKS", "drift_chart", "exposure_chart", "time_axis_format", "time_x", "weight_timeline"]

#: At most this many date labels on a time axis whose points are days apart.
MAX_DATE_TICKS = 8
_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class _Bars:
    """A chart of weight per asset: a row of bars per asset, split by ``split`` (coloured by its ``domain``)."""

    split: str  #: the column that splits each asset's bars, and its title in the legend and tooltip
    split_title: str
    domain: tuple[str, ...]
    weight: str  #: the x field (``sum(weight)``: stacked) and its title on the axis and in the tooltip
    weight_title: str
    sort: str  #: the field whose largest value puts an asset on top
    bar: int  #: bar thickness (pixels)
    height: tuple[int, int, int]  #: the least height, pixels per asset, the greatest height


_EXPOSURE_BARS = _Bars(
    "source", "Held", ("direct", "via portfolio"), "sum(weight)", "Weight", "total", 18, (140, 30, 480)
)
_DRIFT_BARS = _Bars(
    "weight_of", "Weight", ("current", "target"), "weight", "Weight of NAV", "drift_abs", 12, (160, 34, 560)
)


def _asset_bars(bars: _Bars, long: pl.DataFrame, assets: int, *, key: str, tips: tuple = (), **channels: Any) -> None:
    """Draw ``long`` (a row per asset and split) as ``bars`` for ``assets`` assets; ``tips``: more tooltip fields."""
    least, per_asset, most = bars.height
    chart = (
        alt.Chart(long.to_pandas())
        .mark_bar(size=bars.bar)
        .encode(
            x=alt.X(f"{bars.weight}:Q", title=bars.weight_title, axis=alt.Axis(format="%")),
            y=alt.Y("asset:N", title=None, sort=alt.EncodingSortField(field=bars.sort, op="max", order="descending")),
            **channels,
            color=alt.Color(f"{bars.split}:N", title=bars.split_title, scale=alt.Scale(domain=list(bars.domain))),
            tooltip=[
                alt.Tooltip("asset:N", title="Asset"),
                alt.Tooltip(f"{bars.split}:N", title=bars.split_title),
                alt.Tooltip("weight:Q", title=bars.weight_title, format=".2%"),
                *tips,
            ],
        )
        .properties(height=min(max(least, 60 + per_asset * assets), most))
    )
    st.altair_chart(chart, width="stretch", key=key)


def exposure_chart(by_source: pl.DataFrame, *, key: str) -> None:
    """Weight exposure per asset as bars split into direct and via-portfolio (``LookThrough.by_source``)."""
    if by_source.height == 0:
        st.caption("No weight exposure to chart.")
        return
    long = by_source.unpivot(
        index=["asset", "total"], on=["direct", "via_portfolio"], variable_name="source", value_name="weight"
    ).with_columns(pl.col("source").replace({"via_portfolio": "via portfolio"}))
    _asset_bars(_EXPOSURE_BARS, long, by_source.height, key=key)


def time_axis_format(times: pl.Series) -> tuple[str, dict[str, Any] | None]:
    """How to label a time axis over ``times``: dates (one tick per day or per few days) when the
    distinct times are at least a day apart or all at midnight, else date and time of day."""
    distinct = times.drop_nulls().unique().sort()
    micros = distinct.dt.epoch("us")
    gaps = micros.diff().drop_nulls()
    at_midnight = bool((micros % _DAY_US == 0).all())
    if distinct.len() and (at_midnight or (gaps.len() > 0 and int(gaps.min()) >= _DAY_US)):  # type: ignore[arg-type]
        span_days = (int(micros.max()) - int(micros.min())) / _DAY_US  # type: ignore[arg-type]
        return "%Y-%m-%d", {"interval": "day", "step": max(1, math.ceil(span_days / MAX_DATE_TICKS))}
    return "%Y-%m-%d %H:%M", None


def time_x(field: str, times: pl.Series, title: str) -> alt.X:
    """An x channel over the UTC times ``times`` of ``field``, labelled by :func:`time_axis_format`."""
    label, ticks = time_axis_format(times)
    axis = alt.Axis(format=label, labelAngle=0, **({"tickCount": ticks} if ticks else {}))
    return alt.X(f"{field}:T", title=title, axis=axis, scale=alt.Scale(type="utc"))


def weight_timeline(
    frame: pl.DataFrame, *, time: str, series: str, legend: str, weight: str, title: str, key: str, height: int = 260
) -> None:
    """Each ``series``' ``weight`` over ``time`` as step lines (a snapshot or a composition holds until the next)."""
    tooltip = [
        alt.Tooltip(f"{series}:N", title=legend),
        alt.Tooltip(f"{time}:T", title="Time (UTC)", format="%Y-%m-%d %H:%M", formatType="utc"),
        alt.Tooltip(f"{weight}:Q", title="Weight", format=".2%"),
    ]
    chart = (
        alt.Chart(frame.select(time, series, weight).to_pandas())
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=time_x(time, frame[time], title),
            y=alt.Y(f"{weight}:Q", title="Weight", axis=alt.Axis(format="%")),
            color=alt.Color(f"{series}:N", title=legend),
            tooltip=tooltip,
        )
        .properties(height=height)
    )
    st.altair_chart(chart, width="stretch", key=key)


def drift_chart(positions: pl.DataFrame, *, key: str) -> None:
    """One account's current and target weight per asset, side by side; assets in breach are marked.

    ``positions``: an account's rows of :attr:`msm.Drift.positions` (``asset``, ``current_weight``,
    ``target_weight``, ``drift_abs``, ``breach``).
    """
    if positions.height == 0:
        st.caption("No position to chart.")
        return
    long = positions.select(
        pl.col("asset").fill_null(pl.col("asset_uid")),
        "drift_abs",
        pl.when(pl.col("breach")).then(pl.lit("in breach")).otherwise(pl.lit("within band")).alias("band"),
        "current_weight",
        "target_weight",
    ).unpivot(
        index=["asset", "drift_abs", "band"],
        on=["current_weight", "target_weight"],
        variable_name="weight_of",
        value_name="weight",
    )
    long = long.with_columns(pl.col("weight_of").replace({"current_weight": "current", "target_weight": "target"}))
    _asset_bars(
        _DRIFT_BARS,
        long,
        positions.height,
        key=key,
        tips=(
            alt.Tooltip("drift_abs:Q", title="Drift (current − target)", format="+.2%"),
            alt.Tooltip("band:N", title="Band"),
        ),
        yOffset=alt.YOffset("weight_of:N", scale=alt.Scale(domain=["current", "target"])),
        opacity=alt.Opacity(
            "band:N", title="Band", scale=alt.Scale(domain=["in breach", "within band"], range=[1.0, 0.45])
        ),
    )
