"""Snapshots: an account's history (table and timeline), one snapshot in full, and the difference between two."""

import altair as alt
import polars as pl
import streamlit as st

import msm
from msm_app import ui

st.title("Snapshots")
st.caption("Every target snapshot of an account: its history, one snapshot in full, and what changed between two.")

SS = st.session_state


def render() -> None:
    store = ui.store()
    accounts = ui.accounts(ui.db_path())
    if accounts.height == 0:
        st.info(
            "There is no account yet. Load the demo data from the **Overview** or add accounts under **Reference data**."
        )
        return
    names = dict(zip(accounts["unique_identifier"].to_list(), accounts["account_name"].to_list()))
    idents = list(names)
    wanted = SS.get("snapshots_account")
    if wanted in names and SS.get("snapshots_pick") != wanted and not SS.get("snapshots_touched"):
        SS.snapshots_pick = wanted
    account = st.selectbox(
        "Account",
        idents,
        key="snapshots_pick",
        on_change=lambda: SS.update(snapshots_touched=True),
        format_func=lambda a: f"{a} — {names[a]}" if names[a] and names[a] != a else a,
        help="Type to search by identifier or name.",
    )
    history = ui.history(ui.db_path(), account)
    if history.height == 0:
        st.info(f"Account {ui.escape_md(account)} has no snapshot yet. Build one in the **Target set builder**.")
        st.page_link("msm_app/pages/builder.py", label="Target set builder", icon=":material/edit_note:")
        return

    tab_history, tab_one, tab_diff = st.tabs(["History", "One snapshot", "Compare two"])
    with tab_history:
        st.dataframe(
            history.select("position_set_time", "allocation", "rows", "weight_sum", "source"),
            hide_index=True,
            placeholder="—",
            key="snapshots_history",
            column_config={
                "position_set_time": st.column_config.DatetimeColumn(
                    "Time (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"
                ),
                "allocation": st.column_config.TextColumn("Target allocation"),
                "rows": st.column_config.NumberColumn("Rows", format="localized"),
                "weight_sum": st.column_config.NumberColumn("Weight sum", format="percent"),
                "source": st.column_config.TextColumn("Source", help="Who wrote it (workbench, a file, an example, …)"),
            },
        )
        _timeline(store, account)

    times = history["position_set_time"].to_list()
    with tab_one:
        chosen = st.selectbox("Snapshot", times, format_func=ui.when, key="snapshots_one", help="Newest first.")
        snap = msm.read_snapshot(store, account, at=chosen)
        cols = st.columns(3)
        cols[0].metric("Rows", f"{snap.positions.height:,}")
        cols[1].metric("Weight sum", ui.pct(snap.weight_sum))
        cols[2].metric("Residual", ui.pct(snap.residual), help="1 − weight sum: unallocated, never renormalized")
        st.dataframe(
            snap.positions.select(
                "target_type", "unique_identifier", "display_label", *msm.EXPOSURE_COLUMNS, "metadata_json"
            ),
            hide_index=True,
            placeholder="—",
            key="snapshots_positions",
            column_config={
                "target_type": "Kind",
                "unique_identifier": "Target",
                "display_label": "Name",
                **ui.EXPOSURE_CONFIG,
                "metadata_json": st.column_config.TextColumn("Metadata (JSON)"),
            },
        )
        st.caption(f"Position set {snap.position_set_uid} · allocation {snap.allocation} · source {snap.source or '—'}")
        st.page_link("msm_app/pages/lookthrough.py", label="Look through this snapshot", icon=":material/account_tree:")
        SS.lookthrough_request = {"account": account, "at": chosen}

    with tab_diff:
        if len(times) < 2:
            st.info("Only one snapshot: nothing to compare yet.")
            return
        cols = st.columns(2)
        before = cols[0].selectbox(
            "From", times, index=1, format_func=ui.when, key="snapshots_from", help="The earlier snapshot"
        )
        after = cols[1].selectbox(
            "To", times, index=0, format_func=ui.when, key="snapshots_to", help="The later snapshot"
        )
        diff = msm.diff_snapshots(store, account, before=before, after=after)
        counts = st.columns(4)
        counts[0].metric("Added", f"{diff.added.height:,}")
        counts[1].metric("Removed", f"{diff.removed.height:,}")
        counts[2].metric("Changed", f"{diff.changed.height:,}")
        counts[3].metric("Unchanged", f"{diff.unchanged:,}")
        frame = pl.concat(
            [
                diff.added.with_columns(pl.lit("added").alias("change")),
                diff.removed.with_columns(pl.lit("removed").alias("change")),
                diff.changed.with_columns(pl.lit("changed").alias("change")),
            ],
            how="diagonal_relaxed",
        )
        if frame.height == 0:
            st.success("The two snapshots hold the same targets and exposures.")
            return
        shown = frame.select(
            "change",
            "target_type",
            "unique_identifier",
            "weight_notional_exposure_before",
            "weight_notional_exposure_after",
            "constant_notional_exposure_before",
            "constant_notional_exposure_after",
            "single_asset_quantity_before",
            "single_asset_quantity_after",
        )
        colors = {"added": "#e6f4ea", "removed": "#fce8e6", "changed": "#fef7e0"}
        styled = shown.to_pandas().style.apply(
            lambda row: [f"background-color: {colors[row['change']]}"] * len(row), axis=1
        )
        st.dataframe(
            styled,
            hide_index=True,
            placeholder="—",
            key="snapshots_diff",
            column_config={
                "change": "Change",
                "target_type": "Kind",
                "unique_identifier": "Target",
                "weight_notional_exposure_before": st.column_config.NumberColumn("Weight before", format="percent"),
                "weight_notional_exposure_after": st.column_config.NumberColumn("Weight after", format="percent"),
                "constant_notional_exposure_before": st.column_config.NumberColumn(
                    "Notional before", format="localized"
                ),
                "constant_notional_exposure_after": st.column_config.NumberColumn("Notional after", format="localized"),
                "single_asset_quantity_before": st.column_config.NumberColumn("Quantity before", format="localized"),
                "single_asset_quantity_after": st.column_config.NumberColumn("Quantity after", format="localized"),
            },
        )


def _timeline(store: msm.Store, account: str) -> None:
    rows = msm.read_target_rows(store, account=account).filter(pl.col("weight_notional_exposure").is_not_null())
    if rows.height == 0:
        return
    st.caption("Weight by target over time")
    chart = (
        alt.Chart(rows.select("time_index", "unique_identifier", "target_type", "weight_notional_exposure").to_pandas())
        .mark_line(point=True, interpolate="step-after")
        .encode(
            x=alt.X("time_index:T", title="Snapshot time (UTC)"),
            y=alt.Y("weight_notional_exposure:Q", title="Weight", axis=alt.Axis(format="%")),
            color=alt.Color("unique_identifier:N", title="Target"),
            tooltip=[
                alt.Tooltip("unique_identifier:N", title="Target"),
                alt.Tooltip("target_type:N", title="Kind"),
                alt.Tooltip("time_index:T", title="Time", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("weight_notional_exposure:Q", title="Weight", format=".2%"),
            ],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")


ui.guard(render)
