"""The workbench's charts (Altair), shared by the pages."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

__all__ = ["exposure_chart"]


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
