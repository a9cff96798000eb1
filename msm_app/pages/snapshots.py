"""Snapshots: an account's history (table and timeline), one snapshot in full, and the difference between two.

Address: ``/snapshots?account=ID&at=TIME`` shows that account, with the snapshot at TIME under
**One snapshot** (parameters declared in :mod:`msm_app.links`). Under it, the versions its
overwrites replaced (:func:`msm.snapshot_versions`), each of which can be restored
(:func:`msm.restore_snapshot`, an audited overwrite).
"""

from typing import Any

import polars as pl
import streamlit as st

import msm
from msm_app import charts, links, ui

#: Row colours of the comparison table, by change.
CHANGE_COLOURS = {"added": "#e6f4ea", "removed": "#fce8e6", "changed": "#fef7e0"}
DIFF_CONFIG = ui.diff_config(sides=("{} before", "{} after"))

#: What the page says while there is no account.
NO_ACCOUNT = (
    "There is no account yet. Load the demo data from the **Overview** or add accounts under **Reference data**."
)

#: What the page says while the chosen account has no snapshot.
NO_SNAPSHOT = "Account {account} has no snapshot yet. Build one in the **Target set builder**."


def main() -> None:
    """The Snapshots page."""
    links.show("snapshots", render, accounts=True, no_account=NO_ACCOUNT)


def render(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    """The page body: pick an account, then its history, one snapshot and a comparison, in tabs."""
    account, history = links.account_sets(
        "snapshots", accounts, asked, key="snapshots_pick", sets=ui.snapshot_sets, none=NO_SNAPSHOT
    )
    if history.height == 0:
        links.link("builder", "Target set builder", account=account)
        return

    tab_history, tab_one, tab_diff = st.tabs(["History", "One snapshot", "Compare two"])
    with tab_history:
        _history(account, history)
    times = history["position_set_time"].to_list()
    with tab_one:
        chosen = st.selectbox(
            "Snapshot",
            times,
            index=times.index(asked["at"]) if asked.get("at") in times else 0,
            format_func=ui.when,
            key="snapshots_one",
            help="Newest first.",
        )
        links.keep("snapshots", account=account, at=chosen)
        _one(account, chosen)
    with tab_diff:
        _compare(account, times)


def _history(account: str, history: pl.DataFrame) -> None:
    st.dataframe(
        history.select("position_set_time", "allocation", "rows", "weight_sum", "source"),
        hide_index=True,
        placeholder="—",
        key="snapshots_history",
        column_config={
            "position_set_time": ui.utc_column("Time (UTC)"),
            "allocation": st.column_config.TextColumn("Target allocation"),
            "rows": st.column_config.NumberColumn("Rows", format="localized"),
            "weight_sum": ui.WEIGHT_SUM_COLUMN,
            "source": st.column_config.TextColumn("Source", help="Who wrote it (workbench, a file, an example, …)"),
        },
    )
    rows = msm.read_target_rows(ui.store(), account=account).filter(pl.col("weight_notional_exposure").is_not_null())
    if rows.height:
        st.caption("Weight by target over time")
        charts.weight_timeline(
            rows,
            time="time_index",
            series="unique_identifier",
            legend="Target",
            weight="weight_notional_exposure",
            title="Snapshot time (UTC)",
            key="snapshots_timeline",
        )


def _one(account: str, chosen) -> None:
    snap = msm.read_snapshot(ui.store(), account, at=chosen)
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
    links.link("lookthrough", "Look through this snapshot", account=account, at=chosen)
    _versions(account, chosen)


VERSIONS_CONFIG = {
    "version": st.column_config.NumberColumn("Version", help="1 = the first set of rows an overwrite replaced"),
    "replaced_at": st.column_config.DatetimeColumn("Replaced (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
    "replaced_by": "Replaced by",
    "rows": st.column_config.NumberColumn("Rows", format="localized"),
    "weight_sum": ui.WEIGHT_SUM_COLUMN,
    "source": "Source",
}


def _versions(account: str, chosen) -> None:
    """The versions this snapshot's overwrites replaced, and a restore of one (an audited overwrite)."""
    done = st.session_state.pop("snapshots_restored", None)
    if done:
        st.success(ui.escape_md(done))
    versions = msm.snapshot_versions(ui.store(), account, chosen)
    st.subheader("Replaced versions")
    links.link("audit", "Audit trail of this account", account=account)
    if versions.height == 0:
        st.caption("This snapshot was never overwritten: there is no replaced version.")
        return
    st.caption(
        "Every overwrite keeps the rows it replaced. Restoring a version writes it again as a new overwrite, "
        "so the rows shown above are kept as the next version; the restore is recorded in the audit trail."
    )
    ui.table(versions, VERSIONS_CONFIG, key="snapshots_versions")
    left, right = st.columns(2)
    version = left.selectbox("Version to restore", versions["version"].to_list(), key="snapshots_version")
    reason = ui.reason("snapshots_reason", where=right)
    if st.button(f"Restore version {version}", key="snapshots_restore", type="primary"):
        restored = msm.restore_snapshot(ui.store(), account, chosen, version=version, reason=reason)
        ui.after_write()
        st.session_state["snapshots_restored"] = (
            f"Restored version {version} ({restored.positions.height} rows); the rows it replaced are kept as "
            f"version {versions.height + 1}."
        )
        st.rerun()


def _compare(account: str, times: list) -> None:
    if len(times) < 2:
        st.info("Only one snapshot: nothing to compare yet.")
        return
    cols = st.columns(2)
    before = cols[0].selectbox(
        "From", times, index=1, format_func=ui.when, key="snapshots_from", help="The earlier snapshot"
    )
    after = cols[1].selectbox("To", times, index=0, format_func=ui.when, key="snapshots_to", help="The later snapshot")
    diff = msm.diff_snapshots(ui.store(), account, before=before, after=after)
    counts = st.columns(4)
    counts[0].metric("Added", f"{diff.added.height:,}")
    counts[1].metric("Removed", f"{diff.removed.height:,}")
    counts[2].metric("Changed", f"{diff.changed.height:,}")
    counts[3].metric("Unchanged", f"{diff.unchanged:,}")
    frame = diff.to_frame()
    if frame.height == 0:
        st.success("The two snapshots hold the same targets and exposures.")
        return
    shown = frame.select(*DIFF_CONFIG).to_pandas()
    styled = shown.style.apply(lambda row: [f"background-color: {CHANGE_COLOURS[row['change']]}"] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, placeholder="—", key="snapshots_diff", column_config=DIFF_CONFIG)


if __name__ == "__main__":
    main()
