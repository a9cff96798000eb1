"""Look-through: expand one snapshot's portfolio targets into asset exposure, with lineage, netting,
the direct / via-portfolio split and weight-sum diagnostics; download as Parquet or CSV."""

import io
from datetime import UTC, date, datetime, time

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import charts, ui

st.title("Look-through")
st.caption(
    "Portfolio targets are stored as mandate intent. Here one snapshot is expanded, on request, into the asset "
    "exposure it stands for, using each portfolio's stored composition."
)

SS = st.session_state


def render() -> None:
    store = ui.store()
    accounts = ui.accounts(ui.db_path())
    if accounts.height == 0:
        st.info("There is no account yet. Load the demo data from the **Overview**.")
        return
    request = SS.get("lookthrough_request") or {}
    idents = accounts["unique_identifier"].to_list()
    names = dict(zip(idents, accounts["account_name"].to_list()))
    top = st.columns([3, 3, 3])
    account = top[0].selectbox(
        "Account",
        idents,
        key="lookthrough_account",
        index=idents.index(request["account"]) if request.get("account") in idents else 0,
        format_func=lambda a: f"{a} — {names[a]}" if names[a] and names[a] != a else a,
        help="Type to search by identifier or name.",
    )
    history = ui.history(ui.db_path(), account)
    if history.height == 0:
        st.info(f"Account {ui.escape_md(account)} has no snapshot to look through.")
        return
    times = history["position_set_time"].to_list()
    asked = request.get("at") if request.get("account") == account else None
    chosen = top[1].selectbox(
        "Snapshot",
        times,
        index=times.index(asked) if asked in times else 0,
        format_func=ui.when,
        key="lookthrough_time",
        help="Newest first.",
    )
    mode = top[2].radio(
        "Portfolio weights as of",
        ["now", "the snapshot's time", "a chosen time"],
        key="lookthrough_mode",
        help="Each portfolio uses its latest composition at or before this time.",
    )
    weights_as_of: str | datetime = "now" if mode == "now" else "position-set"
    if mode == "a chosen time":
        cols = st.columns(4)
        day = cols[0].date_input(
            "Weights date (UTC)",
            key="lookthrough_wdate",
            help="The compositions in force at this UTC date and time are used.",
        )
        clock = cols[1].time_input("Weights time (UTC)", value=time(0, 0), key="lookthrough_wtime", step=60)
        weights_as_of = datetime.combine(day if isinstance(day, date) else date.today(), clock, tzinfo=UTC)

    snap = msm.read_snapshot(store, account, at=chosen)
    with st.spinner("Expanding the portfolio targets…"):
        result = msm_portfolios.look_through_snapshot(store, snap, weights_as_of=weights_as_of)
    bound = f" ({ui.when(result.weights_time_bound)})" if result.weights_time_bound else ""
    st.caption(
        f"Snapshot {ui.when(snap.position_set_time)} · {snap.positions.height} target rows · weights as of "
        f"{'each snapshot time' if result.weights_as_of == 'position-set' else ui.escape_md(str(mode))}{bound}"
    )

    for row in result.diagnostics.iter_rows(named=True):
        st.warning(
            f"Composition of {ui.escape_md(row['portfolio'] or row['portfolio_uid'])} at {ui.when(row['weights_time'])} "
            f"sums to {ui.pct(row['weight_sum'], 4)}, not 100%: expanded as stored, not renormalized."
        )

    metrics = st.columns(3)
    metrics[0].metric("Assets", f"{result.net.height:,}")
    metrics[1].metric("Look-through weight", ui.pct(result.weight_sum), help="Sum of the netted weight exposure")
    metrics[2].metric("Residual", ui.pct(1.0 - result.weight_sum), help="1 − look-through weight: unallocated")

    left, right = st.columns([5, 6], gap="medium")
    with left:
        st.subheader("Net exposure per asset")
        net = result.net.join(
            result.by_source.select("asset_uid", "direct", "via_portfolio"), on="asset_uid", how="left"
        )
        st.dataframe(
            net.select("asset", "direct", "via_portfolio", *msm.EXPOSURE_COLUMNS, "n_sources"),
            hide_index=True,
            placeholder="—",
            key="lookthrough_net",
            column_config={
                "asset": "Asset",
                "direct": st.column_config.NumberColumn("Direct", format="percent", help="Weight held directly"),
                "via_portfolio": st.column_config.NumberColumn(
                    "Via portfolio", format="percent", help="Weight held through portfolio targets"
                ),
                **ui.EXPOSURE_CONFIG,
                "n_sources": st.column_config.NumberColumn("Sources", help="Expanded rows netted into this asset"),
            },
        )
    with right:
        st.subheader("Direct and via portfolio")
        charts.exposure_chart(result.by_source, key="lookthrough_chart")

    st.subheader("Expanded rows (lineage)")
    labels = snap.positions.select(
        pl.col("target_uid").alias("source_target_uid"), pl.col("unique_identifier").alias("source")
    )
    lineage = result.rows.join(labels, on="source_target_uid", how="left", maintain_order="left")
    st.dataframe(
        lineage.select(
            "source_target_type", "source", "asset", "portfolio_weight", "weights_time", *msm.EXPOSURE_COLUMNS
        ),
        hide_index=True,
        placeholder="—",
        key="lookthrough_rows",
        column_config={
            "source_target_type": "Source kind",
            "source": "Source target",
            "asset": "Asset",
            "portfolio_weight": st.column_config.NumberColumn(
                "Constituent weight", format="percent", help="The asset's weight in the portfolio's composition"
            ),
            "weights_time": st.column_config.DatetimeColumn(
                "Composition time (UTC)", format="YYYY-MM-DD HH:mm", timezone="UTC"
            ),
            **ui.EXPOSURE_CONFIG,
        },
    )
    stem = f"{account}-{snap.position_set_time:%Y%m%dT%H%M%SZ}-lookthrough"
    buffer = io.BytesIO()
    result.rows.write_parquet(buffer)
    cols = st.columns([2, 2, 6])
    cols[0].download_button(
        "Download Parquet",
        buffer.getvalue(),
        file_name=f"{stem}.parquet",
        mime="application/octet-stream",
        key="lookthrough_parquet",
        help="The expanded rows with lineage, as `msm targets expand --format parquet`.",
    )
    cols[1].download_button(
        "Download CSV",
        result.rows.write_csv(),
        file_name=f"{stem}.csv",
        mime="text/csv",
        key="lookthrough_csv",
        help="The expanded rows with lineage, as CSV.",
    )


ui.guard(render)
