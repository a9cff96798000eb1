"""Holdings: what an account holds (any of its holdings sets), and an import of a holdings file with a preview.

Address: ``/holdings?account=ID&at=TIME`` shows that account's holdings set at TIME (parameters
declared in :mod:`msm_app.links`). The import checks the whole file against the database first
(:func:`msm.import_holdings` with ``dry_run``) and writes only when asked, all accounts of the file
in one transaction.
"""

from datetime import UTC, datetime
from typing import Any

import polars as pl
import streamlit as st

import msm
from msm_app import links, ui

POSITIONS_CONFIG = {
    "asset": "Asset",
    "name": "Name",
    "asset_type": "Type",
    "currency": st.column_config.TextColumn("Currency", help="The ISO code a cash asset is worth 1 of"),
    "quantity": st.column_config.NumberColumn(
        "Quantity (units)", format=ui.UNITS_FORMAT, help="Units held (long-only)"
    ),
}
PREVIEW_CONFIG = {
    "account": "Account",
    "rows": st.column_config.NumberColumn("Rows", format="localized"),
    "replaced": st.column_config.CheckboxColumn("Replaces a set", help="A set exists at that time and is replaced"),
}

#: What the page says while the chosen account holds nothing.
NO_HOLDINGS = "Account {account} has no holdings yet. Import a file under **Import a file**."


def main() -> None:
    """The Holdings page."""
    links.show("holdings", render, accounts=True)


def render(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    """The page body: one account's holdings, then the import."""
    tab_show, tab_import = st.tabs(["Holdings", "Import a file"])
    with tab_show:
        _show(accounts, asked)
    with tab_import:
        _import()


def _show(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    account, sets = links.account_sets(
        "holdings", accounts, asked, key="holdings_account", sets=ui.holdings_sets, none=NO_HOLDINGS
    )
    if sets.height == 0:
        return
    times = sets["holdings_time"].to_list()
    chosen = ui.time_picker("Holdings set", times, asked=asked, account=account, key="holdings_time")
    links.keep("holdings", account=account, at=chosen)
    holdings = msm.read_holdings(ui.store(), account, as_of=chosen)
    st.caption(
        f"Holdings set {ui.when(holdings.holdings_time)} · {holdings.positions.height} assets · source "
        f"{ui.escape_md(holdings.source or '—')}"
    )
    ui.table(holdings.positions, POSITIONS_CONFIG, key="holdings_positions")
    links.link("drift", "Drift of this account", account=account)


def _import() -> None:
    st.caption(
        "A CSV, JSON, Parquet or Excel file with the columns account, asset and quantity (and optionally "
        "metadata_json), for any number of accounts, all held at one time. Every row is checked first; then all "
        "accounts are written in one transaction, or none."
    )
    upload = st.file_uploader(
        "Holdings file", type=["csv", "json", "parquet", "xlsx"], key="holdings_upload", help="One row per asset held"
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cols = st.columns([2, 2, 3])
    day = cols[0].date_input("Holdings date (UTC)", value=now.date(), key="holdings_date")
    clock = cols[1].time_input("Holdings time (UTC)", value=now.time(), key="holdings_clock", step=60)
    overwrite = cols[2].checkbox(
        "Replace a set that exists at that time", key="holdings_overwrite", help="Each such account's whole set"
    )
    if upload is None:
        return
    frame = ui.read_upload(upload, entity="holdings file")
    if frame is None:
        return
    at = ui.utc_datetime(day, clock, now)
    st.dataframe(frame.head(200), hide_index=True, placeholder="—", key="holdings_file")
    try:
        plan = msm.import_holdings(ui.store(), frame, at=at, overwrite=overwrite, dry_run=True)
    except msm.MsmError as exc:
        ui.show_error(exc)
        if isinstance(exc, msm.HoldingsSetExistsError):
            st.info("Tick **Replace a set that exists at that time** to replace each such account's whole set.")
        return
    st.success(
        f"{plan.rows:,} rows for {plan.sets.height:,} accounts pass every check; nothing is written until you import."
    )
    ui.table(plan.sets, PREVIEW_CONFIG, key="holdings_plan")
    reason = ui.reason("holdings_reason")
    if st.button("Import", type="primary", key="holdings_write", help=f"Write the holdings at {ui.when(at)}"):
        done = msm.import_holdings(ui.store(), frame, at=at, overwrite=overwrite, source="app", reason=reason)
        ui.after_write()
        st.success(f"Imported {done.rows:,} rows for {done.sets.height:,} accounts at {ui.when(at)}.")


if __name__ == "__main__":
    main()
