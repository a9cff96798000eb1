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
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

__all__ = ["MAX_DATE_TICKS", "exposure_chart", "time_axis_format", "time_x", "weight_timeline"]

#: At most this many date labels on a time axis whose points are days apart.
MAX_DATE_TICKS = 8
_DAY_US = 86_400 * 1_000_000


def exposure_chart(by_source: pl.DataFrame, *, key: str) -> None:
    """Weight exposure per asset as bars split into direct and via-portfolio (``LookThrough.by_source``)."""
    if by_source.height == 0:
        st.caption("No weight exposure to chart.")
        return
    long = by_source.unpivot(
        index=["asset", "total"], on=["direct", "via_portfolio"], variable_name="source", value_name="weight"
    ).with_columns(pl.col("source").replace({"via_portfolio": "via portfolio"}))
    chart = (
        alt.Chart(long.to_pandas())
        .mark_bar(size=18)
        .encode(
            x=alt.X("sum(weight):Q", title="Weight", axis=alt.Axis(format="%")),
            y=alt.Y("asset:N", title=None, sort=alt.EncodingSortField(field="total", op="max", order="descending")),
            color=alt.Color("source:N", title="Held", scale=alt.Scale(domain=["direct", "via portfolio"])),
            tooltip=[
                alt.Tooltip("asset:N", title="Asset"),
                alt.Tooltip("source:N", title="Held"),
                alt.Tooltip("weight:Q", title="Weight", format=".2%"),
            ],
        )
        .properties(height=min(max(140, 60 + 30 * by_source.height), 480))
    )
    st.altair_chart(chart, width="stretch", key=key)


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
