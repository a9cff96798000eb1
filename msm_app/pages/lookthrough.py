"""Look-through: expand one snapshot's portfolio targets into asset exposure, with lineage, netting,
the direct / via-portfolio split and weight-sum diagnostics; download as Parquet or CSV.

Address: ``/lookthrough?account=ID&at=TIME&weights=now|position-set|TIME`` (see :mod:`msm_app.links`).
Everything shown comes from one :func:`msm_portfolios.look_through` of the snapshot.
"""

import io
from datetime import UTC, datetime
from typing import Any

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import charts, links, ui

#: The weights choices, and the address's ``weights`` word for each (a chosen time is the time itself).
MODES = {"now": "now", "the snapshot's time": "position-set", "a chosen time": None}
NET_CONFIG = {
    "asset": "Asset",
    "direct": st.column_config.NumberColumn("Direct", format="percent", help="Weight held directly"),
    "via_portfolio": st.column_config.NumberColumn(
        "Via portfolio", format="percent", help="Weight held through portfolio targets"
    ),
    **ui.EXPOSURE_CONFIG,
    "n_sources": st.column_config.NumberColumn("Sources", help="Expanded rows netted into this asset"),
}
#: The downloads of the expanded rows: the file's ending, the button's label and its help.
DOWNLOADS = (
    ("parquet", "Download Parquet", "The expanded rows with lineage, as `msm targets expand --format parquet`."),
    ("csv", "Download CSV", "The expanded rows with lineage, as CSV."),
)
LINEAGE_CONFIG = {
    "source_target_type": "Source kind",
    "source": "Source target",
    "asset": "Asset",
    "portfolio_weight": st.column_config.NumberColumn(
        "Constituent weight", format="percent", help="The asset's weight in the portfolio's composition"
    ),
    "weights_time": ui.utc_column("Composition time (UTC)"),
    **ui.EXPOSURE_CONFIG,
    "path": st.column_config.TextColumn(
        "Path", help="The portfolios from the target's down to the asset's own (nested portfolios: A > B)"
    ),
    "depth": st.column_config.NumberColumn("Depth", help="1: a direct constituent; 0: a direct asset target"),
}

#: What the page says while the chosen account has no snapshot.
NO_SNAPSHOT = "Account {account} has no snapshot to look through."


def main() -> None:
    """The Look-through page."""
    links.show("lookthrough", render, accounts=True)


def render(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    """The page body: choose the snapshot and the weights time, then one look-through shown every way."""
    top = st.columns([3, 3, 3])
    account, history = links.account_sets(
        "lookthrough", accounts, asked, key="lookthrough_account", sets=ui.snapshot_sets, none=NO_SNAPSHOT, where=top[0]
    )
    if history.height == 0:
        return
    times = history["position_set_time"].to_list()
    chosen = ui.time_picker("Snapshot", times, asked=asked, account=account, key="lookthrough_time", where=top[1])
    weights_as_of = _weights_choice(top[2], asked.get("weights"))
    links.keep("lookthrough", account=account, at=chosen, weights=weights_as_of)

    snap = msm.read_snapshot(ui.store(), account, at=chosen)
    with st.spinner("Expanding the portfolio targets…"):
        view = msm_portfolios.look_through(ui.store(), snap, weights_as_of=weights_as_of)
    _show(account, snap, view)


def _weights_choice(where, asked: str | datetime | None) -> str | datetime:
    """The weights-time widgets (started from the address's ``weights``): ``now``, ``position-set`` or a time."""
    words = list(MODES.values())
    if isinstance(asked, datetime):
        start = words.index(None)
    else:
        start = words.index(asked) if isinstance(asked, str) and asked in words else 0
    word = ui.weights_choice(
        MODES,
        index=start,
        key="lookthrough_mode",
        help="Each portfolio uses its latest composition at or before this time.",
        where=where,
    )
    if word is not None:
        return word
    fallback = asked if isinstance(asked, datetime) else datetime.now(UTC).replace(hour=0, minute=0, second=0)
    cols = st.columns(4)
    day = cols[0].date_input(
        "Weights date (UTC)",
        value=fallback.date(),
        key="lookthrough_wdate",
        help="The compositions in force at this UTC date and time are used.",
    )
    clock = cols[1].time_input(
        "Weights time (UTC)",
        value=fallback.astimezone(UTC).time().replace(microsecond=0),
        key="lookthrough_wtime",
        step=60,
    )
    return ui.utc_datetime(day, clock, fallback)


def _show(account: str, snap: msm.Snapshot, view: msm_portfolios.LookThrough) -> None:
    st.caption(
        f"Snapshot {ui.when(snap.position_set_time)} · {snap.positions.height} target rows · weights as of "
        f"{_weights_text(view)}"
    )
    ui.composition_warnings(view.diagnostics)
    metrics = st.columns(3)
    metrics[0].metric("Assets", f"{view.net.height:,}")
    metrics[1].metric("Look-through weight", ui.pct(view.weight_sum), help="Sum of the netted weight exposure")
    metrics[2].metric("Residual", ui.pct(1.0 - view.weight_sum), help="1 − look-through weight: unallocated")

    left, right = st.columns([5, 6], gap="medium")
    with left:
        st.subheader("Net exposure per asset")
        ui.table(view.net_by_source, NET_CONFIG, key="lookthrough_net")
    with right:
        st.subheader("Direct and via portfolio")
        charts.exposure_chart(view.by_source, key="lookthrough_chart")

    st.subheader("Expanded rows (lineage)")
    ui.table(view.lineage, LINEAGE_CONFIG, key="lookthrough_rows")
    ui.lineage_tree(view, key="lookthrough_tree")
    _downloads(f"{account}-{snap.position_set_time:%Y%m%dT%H%M%SZ}-lookthrough", view)


def _weights_text(view: msm_portfolios.LookThrough) -> str:
    if view.weights_as_of == "position-set":
        return "the snapshot's own time"
    label = "now" if view.weights_as_of == "now" else "a chosen time"
    return f"{label} ({ui.when(view.weights_time_bound)})"


def _downloads(stem: str, view: msm_portfolios.LookThrough) -> None:
    """The expanded rows as a Parquet and a CSV download, side by side."""
    buffer = io.BytesIO()
    view.rows.write_parquet(buffer)
    files = {"parquet": buffer.getvalue(), "csv": view.rows.write_csv()}
    for where, (ending, label, text) in zip(st.columns([2, 2, 6]), DOWNLOADS, strict=False):
        ui.download(label, files[ending], f"{stem}.{ending}", key=f"lookthrough_{ending}", help=text, where=where)


if __name__ == "__main__":
    main()
