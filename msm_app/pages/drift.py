"""Drift: how far every account's holdings are from its targets, and one account in full.

Address: ``/drift?account=ID&at=TIME`` shows that account at the valuation time TIME (parameters
declared in :mod:`msm_app.links`). One :func:`msm.account_drift` over every active account gives
both the queue (accounts by their largest drift, each linking to its own view) and the account's
positions; weights are fractions of the account's NAV, drift is in percentage points, values are
in the account's base currency.
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import charts, links, ui

#: The row colour of a position in breach.
BREACH_COLOUR = "#fce8e6"
QUEUE_CONFIG = {
    "link": st.column_config.LinkColumn(
        "Account", display_text=r"account=([^&]+)", help="Open this account's drift (a link with its query parameters)"
    ),
    "status": "Status",
    "nav_text": st.column_config.TextColumn("NAV", help="Net asset value in the account's base currency"),
    "max_pp": st.column_config.NumberColumn("Max |drift|", format="%.2f pp", help="Largest |current − target| weight"),
    "n_breaches": st.column_config.NumberColumn("Breaches", help="Positions outside the bands"),
}


def main() -> None:
    """The Drift page."""
    links.show("drift", render, accounts=True)


@st.cache_data(ttl=ui.CACHE_SECONDS, show_spinner=False)
def _drift(path: str, at: datetime, band_abs: float | None, band_rel: float | None) -> msm.Drift:
    """Every active account's drift (cached per database, time and bands)."""
    store = ui.store()
    weights = msm_portfolios.duckdb_weights_source(store)
    return msm.account_drift(store, None, weights=weights, as_of=at, band_abs=band_abs, band_rel=band_rel)


def render(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    """The page body: the valuation time and bands, the queue of accounts, then one account."""
    at, band_abs, band_rel = _controls(asked.get("at"))
    try:
        with st.spinner("Valuing the holdings…"):
            result = _drift(ui.db_path(), at, band_abs, band_rel)
    except msm.MissingMarketDataError as exc:
        links.missing_market_data(exc)
        return
    ui.composition_warnings(result.diagnostics if result.diagnostics is not None else pl.DataFrame())
    compared = result.accounts.filter(pl.col("status") == "ok")
    if compared.height == 0:
        links.keep("drift", account=None, at=at)
        st.info(
            f"No account has both holdings and a target snapshot at or before {ui.when(at)}. Import holdings on the "
            "**Holdings** page."
        )
        return
    _queue(result, at)
    wanted = asked.get("account")
    first = compared.sort("max_abs_drift", descending=True, nulls_last=True)["account"][0]
    names = accounts.filter(pl.col("unique_identifier").is_in(compared["account"].implode()))
    account = ui.account_picker(names, key="drift_account", wanted=wanted or first)
    links.keep("drift", account=account, at=at)
    _account(result, account)


def _controls(asked_at: datetime | None) -> tuple[datetime, float | None, float | None]:
    now = asked_at or datetime.now(UTC).replace(second=0, microsecond=0)
    cols = st.columns([2, 2, 2, 2])
    day = cols[0].date_input("Valuation date (UTC)", value=now.date(), key="drift_date")
    clock = cols[1].time_input("Valuation time (UTC)", value=now.astimezone(UTC).time(), key="drift_clock", step=60)
    band_abs, band_rel = ui.band_inputs(cols[2], cols[3], prefix="drift_")
    at = ui.utc_datetime(day, clock, now)
    return at, band_abs, band_rel


def _queue(result: msm.Drift, at: datetime) -> None:
    st.subheader("Accounts by largest drift")
    only_breaches = st.checkbox("Only accounts in breach", key="drift_only_breaches")
    queue = result.accounts.sort("max_abs_drift", descending=True, nulls_last=True)
    if only_breaches:
        queue = queue.filter(pl.col("n_breaches") > 0)
    query = pl.col("account").map_elements(
        lambda a: "./drift?" + urlencode(links.encode("drift", account=a, at=at)), return_dtype=pl.String
    )
    nav = pl.when(pl.col("nav").is_not_null()).then(
        pl.col("nav").map_elements(ui.amount, return_dtype=pl.String) + pl.lit(" ") + pl.col("base_currency")
    )
    shown = queue.select(
        query.alias("link"),
        "status",
        nav.alias("nav_text"),
        (pl.col("max_abs_drift") * 100).alias("max_pp"),
        "n_breaches",
    )
    st.dataframe(shown, hide_index=True, placeholder="—", key="drift_queue", column_config=QUEUE_CONFIG)


def _account(result: msm.Drift, account: str) -> None:
    summary = result.accounts.filter(pl.col("account") == account).row(0, named=True)
    currency = summary["base_currency"]
    positions = result.positions.filter(pl.col("account") == account)
    st.caption(
        f"Holdings {ui.when(summary['holdings_time'])} · targets {ui.when(summary['position_set_time'])} · portfolio "
        f"weights as of {ui.when(summary['weights_time'])}"
    )
    metrics = st.columns(3)
    metrics[0].metric("NAV", f"{ui.amount(summary['nav'])} {currency}")
    metrics[1].metric("Max |drift|", ui.pp(summary["max_abs_drift"]))
    metrics[2].metric("Positions in breach", f"{summary['n_breaches']:,}")
    left, right = st.columns([5, 6], gap="medium")
    with left:
        st.subheader("Current and target weights")
        charts.drift_chart(positions, key="drift_chart")
    with right:
        st.subheader("Positions")
        _positions(positions, currency)
    left, right = st.columns(2)
    with left:
        links.link("holdings", "Holdings of this account", account=account)
    with right:
        links.link(
            "rebalance", "Rebalance this account", account=account, help="The orders that bring it to its targets"
        )


def _positions(positions: pl.DataFrame, currency: str) -> None:
    config = {
        "asset": "Asset",
        "asset_type": "Type",
        "quantity": st.column_config.NumberColumn("Quantity (units)", format=ui.UNITS_FORMAT),
        "price": st.column_config.NumberColumn("Price", format=ui.UNITS_FORMAT, help="In the price currency"),
        "price_currency": "Price currency",
        "fx_rate": st.column_config.NumberColumn(f"FX to {currency}", format="%.6g"),
        "market_value": st.column_config.NumberColumn(f"Value ({currency})", format="localized"),
        "current_weight": st.column_config.NumberColumn("Current", format="percent"),
        "target_weight": st.column_config.NumberColumn("Target", format="percent"),
        "drift_pp": st.column_config.NumberColumn("Drift", format="%+.2f pp", help="Current − target weight"),
        "drift_rel_pct": st.column_config.NumberColumn("Drift rel.", format="%+.2f%%", help="Drift / target weight"),
        "breach": st.column_config.CheckboxColumn("Breach"),
    }
    points = (pl.col("drift_abs") * 100).alias("drift_pp"), (pl.col("drift_rel") * 100).alias("drift_rel_pct")
    table = positions.with_columns(*points).select(*config).sort("drift_pp", descending=True)
    styled = table.to_pandas().style.apply(
        lambda row: [f"background-color: {BREACH_COLOUR}" if row["breach"] else "" for _ in row], axis=1
    )
    st.dataframe(styled, hide_index=True, placeholder="—", key="drift_positions", column_config=config)


if __name__ == "__main__":
    main()
