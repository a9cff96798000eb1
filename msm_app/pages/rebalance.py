"""Rebalance: the orders that move one account, or a set of accounts, toward their targets.

Address: ``/rebalance?account=ID`` (see :mod:`msm_app.links`). One call of :func:`msm.rebalance`
with the options chosen here; it only reads the database. Quantities are in units of the asset,
values in each account's base currency (the headers and metrics say which).
"""

from datetime import UTC, datetime
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import links, ui

#: The mode choices and the service's word for each.
MODES = {"Full: every asset to its target": "full", "Bands: only breaches": "bands", "Buy-only: no sells": "buy-only"}
#: The reason codes, as the orders table explains them.
REASONS = {
    "to_target": "trades to its target",
    "to_band_edge": "trades to the nearest band edge",
    "within_band": "inside its band: no trade",
    "buy_only": "overweight, but buy-only does not sell",
    "cash_limited": "buy scaled down to the cash available",
    "rounded_to_zero": "whole units rounded it to 0",
    "below_min_trade": "under the minimum trade: dropped",
}

#: The accounts table's drift columns (differences of weights), shown in percentage points.
POINTS = ("max_abs_drift_before", "max_abs_drift_after")
#: The accounts table of a set: amounts in each account's base currency, drift in points.
ACCOUNTS_CONFIG = {
    "account": "Account",
    "base_currency": "Base currency",
    **{
        column: st.column_config.NumberColumn(f"{label} (base currency)", format="localized")
        for column, label in (
            ("nav", "NAV"),
            ("cash_before", "Cash before"),
            ("cash_after", "Cash after"),
            ("leftover_cash", "Leftover cash"),
        )
    },
    "turnover": st.column_config.NumberColumn("Turnover", format="percent"),
    "max_abs_drift_before": st.column_config.NumberColumn("Max |drift| before", format="%.2f pp"),
    "max_abs_drift_after": st.column_config.NumberColumn("Max |drift| after", format="%.2f pp"),
    "status": "Status",
}


def _orders_config(currency: str) -> dict:
    """Column formats of the orders table (values in ``currency``)."""
    weight = "percent"
    return {
        "account": "Account",
        "asset": "Asset",
        "side": "Side",
        "quantity": st.column_config.NumberColumn("Quantity (units)", format=ui.UNITS_FORMAT),
        "price": st.column_config.NumberColumn("Price", format=ui.UNITS_FORMAT),
        "price_currency": "Price currency",
        "value": st.column_config.NumberColumn(f"Value ({currency})", format="localized"),
        "current_weight": st.column_config.NumberColumn("Current", format=weight),
        "target_weight": st.column_config.NumberColumn("Target", format=weight),
        "projected_weight": st.column_config.NumberColumn("Projected", format=weight, help="Weight of NAV' after"),
        "reason": st.column_config.TextColumn("Reason", help="; ".join(f"{k}: {v}" for k, v in REASONS.items())),
    }


def main() -> None:
    """The Rebalance page."""
    links.show("rebalance", render, accounts=True)


def render(accounts: pl.DataFrame, asked: dict[str, Any]) -> None:
    """The page body: which accounts, the options, then the proposal."""
    chosen = _scope(accounts, asked.get("account"))
    if not chosen:
        st.info("Choose at least one account.")
        return
    links.keep("rebalance", account=chosen[0] if len(chosen) == 1 else None)
    options = _options()
    result, left_out = _propose(chosen, options)
    if result is None:
        return
    if result.diagnostics is not None:
        ui.composition_warnings(result.diagnostics)
    if len(chosen) == 1:
        _one(result)
    else:
        _many(result, left_out)


def _propose(chosen: list[str], options: dict) -> tuple[msm.Rebalance | None, int]:
    """The proposal for ``chosen`` and how many were left out: those drift cannot compare (each named)."""
    store = ui.store()
    weights = msm_portfolios.duckdb_weights_source(store)
    with st.spinner("Valuing the holdings and proposing orders…"):
        try:
            return msm.rebalance(store, chosen, weights=weights, **options), 0
        except msm.MissingMarketDataError as exc:
            links.missing_market_data(exc)
            return None, 0
        except msm.ValidationError as exc:
            refused = exc
    skipped = _incomparable(refused)
    if skipped is None:
        raise refused
    for error in refused.errors:
        st.info(f"{ui.escape_md(error.value)}: {ui.escape_md(error.rule)}")
    rest = [a for a in chosen if a not in skipped]
    if not rest:
        return None, len(chosen)
    with st.spinner("Proposing orders for the others…"):
        return msm.rebalance(store, rest, weights=weights, **options), len(chosen) - len(rest)


def _incomparable(exc: msm.ValidationError) -> set[str] | None:
    """The accounts of drift's refusal (no holdings, no targets, worth 0), or None for any other error."""
    if all(e.entity == "drift" and e.field == "account" for e in exc.errors):
        return {str(e.value) for e in exc.errors}
    return None


def _scope(accounts: pl.DataFrame, wanted: str | None) -> list[str]:
    """One account (the link's first), or a set filtered from the active accounts."""
    scope = st.radio("Accounts", ["One account", "A set of accounts"], horizontal=True, key="rebalance_scope")
    if scope == "One account":
        return [ui.account_picker(accounts, key="rebalance_account", wanted=wanted)]
    active = accounts.filter(pl.col("account_is_active"))["unique_identifier"].to_list()
    text = st.text_input("Filter", key="rebalance_filter", help="Keep the accounts whose identifier contains this.")
    matching = [a for a in active if text.strip().lower() in a.lower()]
    return st.multiselect(
        "Accounts in the set",
        active,
        default=matching,
        key=f"rebalance_set_{text.strip().lower()}",
        help="Every active account matching the filter; remove or add any.",
    )


def _options() -> dict:
    """The mode and the trade rules as widgets, as :func:`msm.rebalance` keywords."""
    top = st.columns(4)
    mode = MODES[top[0].selectbox("Mode", list(MODES), key="rebalance_mode")]
    to = "target"
    if mode == "bands":
        edge = top[1].radio("Trade to", ["the target", "the band edge"], key="rebalance_to", horizontal=True)
        to = "edge" if edge == "the band edge" else "target"
    band_abs, band_rel = ui.band_inputs(top[2], top[3], prefix="rebalance_")
    rules = st.columns(5)
    cash_flow = rules[0].number_input(
        "Cash flow (base currency)", value=0.0, step=1000.0, key="rebalance_flow", help="Deposit > 0, withdrawal < 0"
    )
    reserve = rules[1].number_input("Cash reserve (%)", 0.0, 100.0, 0.0, 1.0, key="rebalance_reserve")
    min_trade = rules[2].number_input(
        "Minimum trade (base currency)",
        min_value=0.0,
        value=0.0,
        step=100.0,
        key="rebalance_min",
        help="Orders of a smaller value are not placed",
    )
    whole = rules[3].checkbox("Whole units", key="rebalance_whole", help="Round quantities toward zero")
    as_of = rules[4].date_input(
        "Valuation date (UTC)", value=None, key="rebalance_date", help="At the end of this UTC day; empty: now"
    )
    return {
        "mode": mode,
        "to": to,
        "band_abs": band_abs,
        "band_rel": band_rel,
        "cash_flow": cash_flow,
        "cash_reserve": reserve / 100,
        "min_trade": min_trade,
        "whole_units": whole,
        "as_of": None if as_of is None else datetime.combine(as_of, datetime.max.time(), tzinfo=UTC),
    }


def _one(result: msm.Rebalance) -> None:
    """One account: its metrics, the weights chart, the orders table and the download."""
    account = result.accounts.row(0, named=True)
    currency = account["base_currency"]
    money = st.columns(3)  # amounts with their currency need the width: three to a row
    money[0].metric("NAV", f"{ui.amount(account['nav'])} {currency}")
    money[1].metric("Cash before", f"{ui.amount(account['cash_before'])} {currency}", help="Base-currency cash held")
    money[2].metric(
        "Cash after", f"{ui.amount(account['cash_after'])} {currency}", help="Cash before + sells - buys + flow"
    )
    shares = st.columns(3)
    shares[0].metric(
        "Leftover cash",
        f"{ui.amount(account['leftover_cash'])} {currency}",
        help="Cash after beyond what the targets and the reserve ask for (negative: below its target)",
    )
    shares[1].metric("Turnover", ui.pct(account["turnover"]), help="Sum of order values / NAV")
    shares[2].metric(
        "Max |drift|", ui.pp(account["max_abs_drift_after"]), help=f"before: {ui.pp(account['max_abs_drift_before'])}"
    )
    st.caption(f"Valued at {ui.when(result.valuation_time)}.")
    _weights_chart(result.orders, key="rebalance_chart")
    st.subheader("Orders")
    st.dataframe(
        result.orders.drop("account", "asset_uid"),
        hide_index=True,
        placeholder="—",
        key="rebalance_orders",
        column_config=_orders_config(currency),
    )
    _download(result, f"{account['account']}-orders")


def _many(result: msm.Rebalance, left_out: int) -> None:
    """A set of accounts: one row each, every order, the weights of one of them, the download.

    ``left_out``: the accounts chosen that drift could not compare (named above); they count as
    without a proposal.
    """
    figures = result.accounts
    trading = result.orders.filter(pl.col("side") != "none")
    metrics = st.columns(3)
    metrics[0].metric("Accounts", f"{figures.height:,}")
    metrics[1].metric("Orders that trade", f"{trading.height:,}")
    without = figures.filter(pl.col("status") != "ok").height + left_out
    metrics[2].metric("Without a proposal", f"{without:,}", help="Left out above, or with a status other than ok")
    st.subheader("Accounts")
    st.dataframe(
        figures.with_columns(pl.col(*POINTS) * 100),  # drift in percentage points, as on the Drift page
        hide_index=True,
        placeholder="—",
        key="rebalance_accounts",
        column_config=ACCOUNTS_CONFIG,
    )
    shown = st.selectbox(
        "Weights of", figures.filter(pl.col("status") == "ok")["account"].to_list(), key="rebalance_of"
    )
    if shown is not None:
        _weights_chart(result.orders.filter(pl.col("account") == shown), key="rebalance_chart_many")
    st.subheader("Orders")
    st.dataframe(
        result.orders.drop("asset_uid"),
        hide_index=True,
        placeholder="—",
        key="rebalance_orders_many",
        column_config=_orders_config("base currency"),
    )
    _download(result, "rebalance-orders")


def _weights_chart(orders: pl.DataFrame, *, key: str) -> None:
    """Current, target and projected weight per asset, side by side."""
    if orders.height == 0:
        st.caption("No positions to chart.")
        return
    order = ["current", "target", "projected"]
    long = orders.select("asset", "current_weight", "target_weight", "projected_weight").unpivot(
        index="asset", variable_name="weight", value_name="share"
    )
    long = long.with_columns(pl.col("weight").str.replace("_weight", ""))
    chart = (
        alt.Chart(long.to_pandas())
        .mark_bar()
        .encode(
            x=alt.X("asset:N", title=None),
            xOffset=alt.XOffset("weight:N", sort=order),
            y=alt.Y("share:Q", title="Weight of NAV'", axis=alt.Axis(format="%")),
            color=alt.Color("weight:N", title="Weight", sort=order),
            tooltip=["asset", "weight", alt.Tooltip("share:Q", title="Weight", format=".2%")],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch", key=key)


def _download(result: msm.Rebalance, stem: str) -> None:
    """The trading desk's orders file (orders that trade) as CSV."""
    desk = result.desk_orders()
    ui.download(
        f"Download orders CSV ({desk.height:,} orders)",
        desk.write_csv(),
        f"{stem}.csv",
        key="rebalance_csv",
        help="account, asset, side, quantity (units), price, currency (the price's), value (base currency)",
    )


if __name__ == "__main__":
    main()
