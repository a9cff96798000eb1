"""Overview: which database is open, what it holds, the latest snapshot of every account."""

import streamlit as st

import msm
from msm.audit import acting
from msm_app import links, ui
from msm_examples import demo as demo_data

#: The counts shown at the top: label and table.
COUNTS = (
    ("Assets", "asset"),
    ("Portfolios", "portfolio"),
    ("Accounts", "account"),
    ("Snapshots", "position_set"),
    ("Target rows", "target_positions"),
)


def main() -> None:
    """The Overview page."""
    links.show("overview", render)


def render() -> None:
    """The page body: the file, the counts, the latest snapshot per account (or the demo data offer)."""
    store = ui.store()
    st.text(f"Database file: {ui.db_path()}")
    counts = msm.table_counts(store)
    by_table = dict(zip(counts["table"].to_list(), counts["rows"].to_list(), strict=True))
    if not by_table.get("account") and not by_table.get("asset"):
        st.info(
            "This database is empty. Load the demo data to look around (three crypto assets and a USD cash asset, "
            "an equal-weight portfolio with three compositions, a fund of funds holding two portfolios, three "
            "accounts with target snapshots, and holdings, prices and an EUR/USD rate for two of them), or start "
            "with **Reference data**."
        )
        reason = ui.reason("overview_reason")
        if st.button(
            "Load demo data",
            type="primary",
            help="Adds the chained example of `msm demo`; running it again changes nothing.",
        ):
            with st.spinner("Loading the demo data…"), acting(reason=reason):  # every write of the load, this reason
                demo_data.load(store)
            ui.after_write()
            st.rerun()
        return

    for col, (label, table) in zip(st.columns(len(COUNTS)), COUNTS, strict=True):
        col.metric(label, f"{by_table.get(table, 0):,}")
    _waiting_drafts(store)
    _market_data(store)

    st.subheader("Latest snapshot per account")
    latest = msm.latest_snapshots(store)
    if latest.height == 0:
        st.info("No snapshot yet. Build one in the **Target set builder**.")
    else:
        st.dataframe(
            latest.select("account", "account_name", "position_set_time", "rows", "weight_sum", "residual", "source"),
            hide_index=True,
            placeholder="—",
            column_config={
                "account": st.column_config.TextColumn("Account", help="The account's unique identifier"),
                "account_name": st.column_config.TextColumn("Name"),
                "position_set_time": ui.utc_column("Snapshot time (UTC)"),
                "rows": st.column_config.NumberColumn("Rows", format="localized"),
                "weight_sum": ui.WEIGHT_SUM_COLUMN,
                "residual": st.column_config.NumberColumn(
                    "Residual", format="percent", help="1 − weight sum: the unallocated part"
                ),
                "source": st.column_config.TextColumn("Source"),
            },
        )
    with st.expander("Rows per table"):
        st.dataframe(
            counts,
            hide_index=True,
            placeholder="—",
            column_config={"table": "Table", "rows": st.column_config.NumberColumn("Rows", format="localized")},
        )
    links.link("builder", "Build a target set")


def _market_data(store: msm.Store) -> None:
    """How fresh the prices and FX rates are (what Drift and Rebalance value with), with a link to Market data."""
    found = msm.market_data_summary(store)
    if not found["assets"] and not found["pairs"]:
        st.caption("No price or FX rate is stored yet: Drift and Rebalance need them to value holdings.")
    else:
        kinds = (
            ("prices", "asset", found["assets"], found["latest_price"]),
            ("FX rates", "pair", found["pairs"], found["latest_rate"]),
        )
        parts = [
            f"{what} of {n:,} {unit}{'s' if n != 1 else ''}" + (f", the latest at {ui.when(latest)}" if n else "")
            for what, unit, n, latest in kinds
        ]
        st.caption("Market data: " + "; ".join(parts) + ".")
    links.link("marketdata", "See and import prices and FX rates")


def _waiting_drafts(store: msm.Store) -> None:
    """How many drafts wait for review (the oldest named), with a link to the Review page; nothing when none."""
    drafts = msm.list_drafts(store)
    if drafts.height == 0:
        return
    oldest = drafts.row(0, named=True)
    many = drafts.height != 1
    which = f"{ui.escape_md(oldest['account'])} at {ui.when(oldest['position_set_time'])}"
    st.info(
        f"{drafts.height:,} draft{'s' if many else ''} wait{'' if many else 's'} for review"
        f"{', the oldest' if many else ''}: {which}."
    )
    links.link("review", "Review the drafts")


if __name__ == "__main__":
    main()
