"""Rebalancing proposals over drift frames (the core function, no database).

Small hand-made frames pin each mode, option and reason code; property tests over random drift
frames check the invariants of every proposal; a parametrized table pins the bad options' messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msm import ValidationError
from msm.rebalancing import ACCOUNT_COLUMNS, ORDER_COLUMNS, ORDER_REASONS, ORDER_SIDES, propose_rebalance

# -- building drift frames the way the drift service computes them -------------------------------------------


def drift_frame(accounts: Mapping[str, Sequence[Mapping[str, Any]]], *, base: str = "USD") -> pl.DataFrame:
    """Drift positions for ``{account: [{asset, quantity, price, target_weight?, fx_rate?, type?}]}``.

    Market value = quantity x price x fx; NAV = the sum; the cash asset ``base`` (type cash, price 1)
    gets the residual target (NAV - sum of the other targets), as drift does.
    """
    rows = []
    for account, positions in accounts.items():
        values = [p["quantity"] * p["price"] * p.get("fx_rate", 1.0) for p in positions]
        nav = sum(values)
        targeted = sum(p.get("target_weight", 0.0) * nav for p in positions if p.get("type") != "cash")
        for p, value in zip(positions, values, strict=True):
            cash = p.get("type") == "cash"
            target_value = (nav - targeted) if cash else p.get("target_weight", 0.0) * nav
            current = value / nav if nav else None
            target = target_value / nav if nav else None
            drift = current - target if nav else None
            rows.append(
                {
                    "account": account,
                    "base_currency": base,
                    "nav": nav,
                    "asset": p["asset"],
                    "asset_uid": f"uid-{p['asset']}",
                    "asset_type": p.get("type", "equity"),
                    "quantity": float(p["quantity"]),
                    "price": float(p["price"]),
                    "price_currency": p.get("currency", base),
                    "fx_rate": float(p.get("fx_rate", 1.0)),
                    "market_value": value,
                    "current_weight": current,
                    "target_value": target_value,
                    "target_weight": target,
                    "drift_abs": drift,
                    "drift_rel": drift / target if nav and target else None,
                    "breach": None,
                }
            )
    floats = ("nav", "quantity", "price", "fx_rate", "market_value", "current_weight", "target_value", "target_weight")
    types = {c: pl.Float64 for c in (*floats, "drift_abs", "drift_rel")}
    return pl.DataFrame(rows, schema_overrides={**types, "breach": pl.Boolean})


def cash(quantity: float, asset: str = "USD") -> dict[str, Any]:
    """A base-currency cash position."""
    return {"asset": asset, "quantity": quantity, "price": 1.0, "type": "cash", "currency": asset}


ALPHA = {
    "alpha": [
        {"asset": "AAA", "quantity": 10.0, "price": 50.0, "target_weight": 0.3},  # 500, 50%: overweight
        {"asset": "BBB", "quantity": 4.0, "price": 50.0, "target_weight": 0.4},  # 200, 20%: underweight
        {"asset": "CCC", "quantity": 2.0, "price": 100.0, "target_weight": 0.2},  # 200, 20%: at target
        cash(100.0),  # 10%, target 10%
    ]
}


def order(proposal: Any, asset: str, account: str = "alpha") -> dict[str, Any]:
    """One order row as a dict."""
    rows = proposal.orders.filter((pl.col("account") == account) & (pl.col("asset") == asset)).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def account(proposal: Any, name: str = "alpha") -> dict[str, Any]:
    """One account row as a dict."""
    return proposal.accounts.filter(pl.col("account") == name).to_dicts()[0]


# -- modes and reasons -------------------------------------------------------------------------------------------


def test_full_mode_reaches_every_target_and_lists_no_cash_order() -> None:
    proposal = propose_rebalance(drift_frame(ALPHA), mode="full")
    assert proposal.orders.columns == list(ORDER_COLUMNS)
    assert proposal.accounts.columns == list(ACCOUNT_COLUMNS)
    assert proposal.orders["asset"].to_list() == ["AAA", "BBB", "CCC"]  # no USD order
    assert (order(proposal, "AAA")["side"], order(proposal, "AAA")["quantity"]) == ("sell", 4.0)
    assert (order(proposal, "BBB")["side"], order(proposal, "BBB")["quantity"]) == ("buy", 4.0)
    ccc = order(proposal, "CCC")
    assert (ccc["side"], ccc["quantity"], ccc["value"], ccc["reason"]) == ("none", 0.0, 0.0, "to_target")
    acct = account(proposal)
    assert (acct["nav"], acct["cash_before"], acct["cash_after"], acct["leftover_cash"]) == (1000.0, 100.0, 100.0, 0.0)
    assert acct["turnover"] == pytest.approx(0.4)
    assert acct["max_abs_drift_before"] == pytest.approx(0.2)
    assert acct["max_abs_drift_after"] == pytest.approx(0.0, abs=1e-12)


def test_a_deposit_is_invested_at_the_target_weights_of_nav_after() -> None:
    proposal = propose_rebalance(drift_frame(ALPHA), mode="full", cash_flow=1000.0)
    # NAV' = 2000: AAA 600 (buy 100), BBB 800 (buy 600), CCC 400 (buy 200), cash 200.
    assert [order(proposal, a)["value"] for a in ("AAA", "BBB", "CCC")] == pytest.approx([100.0, 600.0, 200.0])
    assert account(proposal)["cash_after"] == pytest.approx(200.0)
    assert order(proposal, "BBB")["projected_weight"] == pytest.approx(0.4)


def test_a_withdrawal_is_raised_by_sells() -> None:
    proposal = propose_rebalance(drift_frame(ALPHA), mode="full", cash_flow=-500.0)
    # NAV' = 500: AAA 150 (sell 350), BBB 200 (none), CCC 100 (sell 100), cash 50.
    assert order(proposal, "AAA")["value"] == pytest.approx(350.0)
    assert order(proposal, "BBB")["side"] == "none"
    assert account(proposal)["cash_after"] == pytest.approx(50.0)


def test_bands_mode_trades_only_breaches_to_target_or_to_the_band_edge() -> None:
    frame = drift_frame(ALPHA)
    to_target = propose_rebalance(frame, mode="bands", band_abs=0.15)
    assert order(to_target, "AAA")["reason"] == "to_target" and order(to_target, "AAA")["value"] == 200.0
    assert order(to_target, "BBB")["reason"] == "to_target" and order(to_target, "BBB")["value"] == pytest.approx(200)
    assert order(to_target, "CCC")["reason"] == "within_band"
    # Only AAA is more than 0.19 off its target; BBB (0.2 off) is too, CCC is not.
    edge = propose_rebalance(frame, mode="bands", to="edge", band_abs=0.1)
    aaa, bbb = order(edge, "AAA"), order(edge, "BBB")
    assert (aaa["side"], aaa["reason"], aaa["projected_weight"]) == ("sell", "to_band_edge", pytest.approx(0.4))
    assert (bbb["side"], bbb["reason"], bbb["projected_weight"]) == ("buy", "to_band_edge", pytest.approx(0.3))
    assert order(edge, "CCC")["reason"] == "within_band"


def test_the_relative_band_edge_is_the_narrower_of_both_bands() -> None:
    # AAA: target 0.3, current 0.5. abs band 0.1 -> edge 0.4; rel band 0.5 -> 0.15 wide -> edge 0.45.
    proposal = propose_rebalance(drift_frame(ALPHA), mode="bands", to="edge", band_abs=0.1, band_rel=0.5)
    assert order(proposal, "AAA")["projected_weight"] == pytest.approx(0.4)
    rel_only = propose_rebalance(drift_frame(ALPHA), mode="bands", to="edge", band_abs=None, band_rel=0.5)
    assert order(rel_only, "AAA")["projected_weight"] == pytest.approx(0.45)
    # BBB: target 0.4, current 0.2, drift_rel -0.5: not above the rel band 0.5 -> within band.
    assert order(rel_only, "BBB")["reason"] == "within_band"


def test_buy_only_never_sells_and_spends_cash_in_proportion_to_shortfall() -> None:
    frame = drift_frame(
        {
            "alpha": [
                {"asset": "AAA", "quantity": 10.0, "price": 50.0, "target_weight": 0.2},  # 500 vs 200: over
                {"asset": "BBB", "quantity": 1.0, "price": 100.0, "target_weight": 0.35},  # 100 vs 350: short 250
                {"asset": "CCC", "quantity": 3.0, "price": 100.0, "target_weight": 0.35},  # 300 vs 350: short 50
                cash(100.0),
            ]
        }
    )
    proposal = propose_rebalance(frame, mode="buy-only")
    assert order(proposal, "AAA")["side"] == "none" and order(proposal, "AAA")["reason"] == "buy_only"
    # 100 of cash for 300 of shortfall: 5/6 to BBB, 1/6 to CCC.
    assert order(proposal, "BBB")["value"] == pytest.approx(250 / 3)
    assert order(proposal, "CCC")["value"] == pytest.approx(50 / 3)
    assert {order(proposal, a)["reason"] for a in ("BBB", "CCC")} == {"cash_limited"}
    assert account(proposal)["cash_after"] == pytest.approx(0.0)
    # A deposit of 900: NAV' 1900; shortfalls 565 and 365 fit in the 1000 of cash.
    deposit = propose_rebalance(frame, mode="buy-only", cash_flow=900.0)
    assert order(deposit, "AAA")["reason"] == "buy_only"
    assert (order(deposit, "BBB")["reason"], order(deposit, "BBB")["value"]) == ("to_target", pytest.approx(565.0))
    acct = account(deposit)
    assert acct["cash_after"] == pytest.approx(70.0)
    assert acct["leftover_cash"] == pytest.approx(70.0 - 190.0)  # cash ends below its target: AAA stays over


def test_the_cash_reserve_scales_buys_down_pro_rata() -> None:
    proposal = propose_rebalance(drift_frame(ALPHA), mode="full", cash_reserve=0.2)
    # Cash available = 100 + 200 (sell AAA) - 0.2 x 1000 = 100; BBB wanted 200, gets 100.
    bbb = order(proposal, "BBB")
    assert (bbb["value"], bbb["reason"]) == (pytest.approx(100.0), "cash_limited")
    acct = account(proposal)
    assert acct["cash_after"] == pytest.approx(200.0)
    assert acct["leftover_cash"] == pytest.approx(0.0)  # cash after is what the reserve asks for


def test_min_trade_and_whole_units_are_reported_and_leave_leftover_cash() -> None:
    frame = drift_frame(
        {
            "alpha": [
                {"asset": "AAA", "quantity": 1.0, "price": 300.0, "target_weight": 0.5},  # buy 200: 0.67 unit
                {"asset": "BBB", "quantity": 1.0, "price": 10.0, "target_weight": 0.02},  # buy 10
                {"asset": "CCC", "quantity": 1.0, "price": 10.0, "target_weight": 0.0},  # sell 10
                cash(680.0),
            ]
        }
    )
    proposal = propose_rebalance(frame, mode="full", whole_units=True, min_trade=15.0)
    assert order(proposal, "AAA")["reason"] == "rounded_to_zero"
    assert order(proposal, "BBB")["reason"] == "below_min_trade"
    assert order(proposal, "CCC")["reason"] == "below_min_trade"
    assert set(proposal.orders["side"]) == {"none"}
    acct = account(proposal)
    assert acct["cash_after"] == acct["cash_before"] == 680.0
    assert acct["leftover_cash"] == pytest.approx(680.0 - 480.0)  # the cash target is 48% of 1000


def test_whole_units_rounds_toward_zero_and_forgives_float_noise() -> None:
    frame = drift_frame({"alpha": [{"asset": "AAA", "quantity": 0.0, "price": 0.1, "target_weight": 0.3}, cash(1.0)]})
    proposal = propose_rebalance(frame, mode="full", whole_units=True)
    assert order(proposal, "AAA")["quantity"] == 3.0  # 0.3 / 0.1 is 2.9999999999999996 in floats


def test_foreign_currency_assets_trade_at_price_times_fx() -> None:
    frame = drift_frame(
        {
            "alpha": [
                {
                    "asset": "EUX",
                    "quantity": 10.0,
                    "price": 10.0,
                    "fx_rate": 2.0,
                    "currency": "EUR",
                    "target_weight": 0.5,
                },
                cash(300.0),
            ]
        }
    )
    proposal = propose_rebalance(frame, mode="full")
    eux = order(proposal, "EUX")
    assert (eux["side"], eux["quantity"], eux["value"], eux["price_currency"]) == (
        "buy",
        2.5,
        50.0,
        "EUR",
    )  # 200 of 500 -> 250


def test_accounts_are_computed_together_and_sorted() -> None:
    frame = pl.concat([drift_frame({"zeta": ALPHA["alpha"]}), drift_frame(ALPHA)])
    proposal = propose_rebalance(frame, mode="full")
    assert proposal.accounts["account"].to_list() == ["alpha", "zeta"]
    assert (
        proposal.orders.filter(pl.col("account") == "zeta")
        .drop("account")
        .equals(proposal.orders.filter(pl.col("account") == "alpha").drop("account"))
    )


def test_an_account_without_cash_starts_from_zero_cash() -> None:
    frame = drift_frame(
        {"alpha": [{"asset": "AAA", "quantity": 2.0, "price": 50.0, "target_weight": 0.5},
                   {"asset": "BBB", "quantity": 0.0, "price": 50.0, "target_weight": 0.5}]}
    )  # fmt: skip
    proposal = propose_rebalance(frame, mode="full")
    assert account(proposal)["cash_before"] == 0.0
    assert order(proposal, "BBB")["value"] == pytest.approx(50.0)


# -- bad options and bad positions --------------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"mode": "raise-cash"}, r"`mode` = 'raise-cash': must be one of full, bands, buy-only \(--mode\)"),
    ({"to": "middle"}, r"`to` = 'middle': must be one of target, edge"),
    ({"to": "edge", "mode": "full"}, r"`to` = 'edge': only applies to mode bands"),
    ({"band_abs": 0.0}, r"`band_abs` = 0.0: a band must be a finite number > 0 \(--band-abs\)"),
    ({"band_rel": -0.1}, r"`band_rel` = -0.1: a band must be a finite number > 0 \(--band-rel\)"),
    ({"band_abs": math.nan}, r"`band_abs` = nan: a band must be"),
    ({"cash_reserve": -0.01}, r"`cash_reserve` = -0.01: must be a fraction of NAV' from 0 to 1 \(--cash-reserve\)"),
    ({"cash_reserve": 1.5}, r"`cash_reserve` = 1.5: must be a fraction"),
    ({"mode": "bands", "band_abs": None}, r"`band_abs` = None: mode bands needs a band"),
    ({"min_trade": -1.0}, r"`min_trade` = -1.0: must be a finite base-currency value >= 0 \(--min-trade\)"),
    ({"cash_flow": math.inf}, r"`cash_flow` = inf: must be a finite amount"),
    ({"mode": "buy-only", "cash_flow": -10.0}, r"`cash_flow` = -10.0: a withdrawal \(< 0\) needs sells"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        propose_rebalance(drift_frame(ALPHA), **options)
    assert "rebalance option" in str(info.value) and "nothing was computed" in str(info.value)


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        propose_rebalance(drift_frame(ALPHA), band_abs=-1.0, cash_reserve=-1.0, min_trade=-1.0)
    assert [e.field for e in info.value.errors] == ["band_abs", "cash_reserve", "min_trade"]


def test_a_withdrawal_larger_than_what_can_be_sold_names_the_account_and_the_amount() -> None:
    frame = pl.concat([drift_frame(ALPHA), drift_frame({"beta": [cash(10.0)]})])
    with pytest.raises(ValidationError, match=r"account 'beta' can raise at most 10\.00 USD") as info:
        propose_rebalance(frame, mode="full", cash_flow=-50.0)
    assert "alpha" not in str(info.value)  # alpha can sell 950 more than it needs
    with pytest.raises(
        ValidationError,
        match=r"account 'alpha' can raise at most 520\.00 USD \(cash 100\.00 \+ sells 420\.00 with mode bands\)",
    ):
        propose_rebalance(drift_frame(ALPHA), mode="bands", band_abs=0.15, cash_flow=-600.0)


def test_positions_without_a_price_or_fx_rate_are_named_at_once() -> None:
    frame = drift_frame(ALPHA).with_columns(
        price=pl.when(pl.col("asset") == "AAA").then(None).otherwise(pl.col("price")),
        fx_rate=pl.when(pl.col("asset") == "BBB").then(None).otherwise(pl.col("fx_rate")),
    )
    with pytest.raises(ValidationError, match=r"2 positions cannot be valued") as info:
        propose_rebalance(frame)
    text = str(info.value)
    assert "account 'alpha': `price` = 'AAA': has no price" in text
    assert "account 'alpha': `fx_rate` = 'BBB': has no FX rate from USD" in text


def test_a_position_given_twice_is_refused() -> None:
    frame = drift_frame(ALPHA)
    with pytest.raises(
        ValidationError, match=r"account 'alpha': `asset` = 'BBB': appears twice in the drift positions"
    ):
        propose_rebalance(pl.concat([frame, frame.filter(pl.col("asset") == "BBB")]))


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValidationError, match=r"`target_value`: column is missing"):
        propose_rebalance(drift_frame(ALPHA).drop("target_value"))


# -- properties over random drift frames ---------------------------------------------------------------------------

TOL = 1e-6


@st.composite
def books(draw: st.DrawFn) -> pl.DataFrame:
    """Random drift frames: 1-4 accounts, 0-6 assets each and cash; targets sum to at most 1."""
    accounts = {}
    for a in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 6))
        raw = [draw(st.integers(0, 10)) for _ in range(n)]
        scale = draw(st.floats(0, 1)) / (sum(raw) or 1.0)
        positions = [
            {
                "asset": f"A{i}",
                "quantity": draw(st.sampled_from([0.0, 1.0, 3.0, 7.5]) | st.floats(0, 1e4)),
                "price": draw(st.floats(0.01, 1e4)),
                "fx_rate": draw(st.sampled_from([1.0, 0.5, 1.3])),
                "target_weight": w * scale,
            }
            for i, w in enumerate(raw)
        ]
        positions.append(cash(draw(st.sampled_from([0.0, 100.0]) | st.floats(0, 1e5))))  # it takes the residual
        accounts[f"acc{a}"] = positions
    frame = drift_frame(accounts)
    return frame.filter(pl.col("nav") > 0)  # an account worth nothing has no target weights


options_st = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["full", "bands", "buy-only"]),
        "cash_flow": st.sampled_from([0.0, 0.0, 500.0, -100.0]),
        "cash_reserve": st.sampled_from([0.0, 0.0, 0.05, 0.3]),
        "min_trade": st.sampled_from([0.0, 0.0, 50.0]),
        "whole_units": st.booleans(),
        "band_abs": st.sampled_from([None, 0.05, 0.01, 0.1]),
        "band_rel": st.sampled_from([None, 0.2]),
    }
)


def _valid(options: dict[str, Any]) -> dict[str, Any]:
    """The options, made valid: bands mode has a band, buy-only no withdrawal."""
    options = dict(options)
    if options["mode"] == "bands" and options["band_abs"] is None and options["band_rel"] is None:
        options["band_abs"] = 0.05
    if options["mode"] == "buy-only":
        options["cash_flow"] = max(options["cash_flow"], 0.0)
    return options


def _propose(frame: pl.DataFrame, options: dict[str, Any]) -> Any:
    try:
        return propose_rebalance(frame, **options)
    except ValidationError as exc:  # only a withdrawal the account cannot raise may be refused
        assert options["cash_flow"] < 0 and all(e.field == "cash_flow" for e in exc.errors), exc
        return None


def check_invariants(positions: pl.DataFrame, accounts: pl.DataFrame, orders: pl.DataFrame, options: dict) -> None:
    """Every invariant of a proposal (``positions``: the drift positions it was computed from)."""
    flow = options.get("cash_flow", 0.0)
    held = positions.select("account", "asset", "quantity", "drift_abs", "drift_rel").rename({"quantity": "held"})
    orders = orders.join(held, on=["account", "asset"])
    assert set(orders["side"]) <= set(ORDER_SIDES) and set(orders["reason"]) <= set(ORDER_REASONS)
    assert (orders["value"] >= 0).all() and (orders["quantity"] >= 0).all()
    sells = orders.filter(pl.col("side") == "sell")
    assert (sells["quantity"] <= sells["held"]).all()  # never sells more than held
    if options.get("mode") == "buy-only":
        assert sells.height == 0
    if options.get("min_trade", 0) > 0:
        assert (orders.filter(pl.col("side") != "none")["value"] >= options["min_trade"]).all()
    if options.get("whole_units"):
        assert (orders["quantity"] == orders["quantity"].floor()).all()
    if options.get("mode") == "bands":  # only breaches trade
        band_abs, band_rel = options.get("band_abs", 0.05), options.get("band_rel")
        breach = pl.lit(False)
        if band_abs is not None:
            breach = breach | (pl.col("drift_abs").abs() > band_abs)
        if band_rel is not None:
            breach = breach | (pl.col("drift_rel").abs() > band_rel).fill_null(False)
        assert orders.filter(pl.col("side") != "none").select(breach.all()).item()
    per = orders.group_by("account").agg(
        pl.col("value").filter(pl.col("side") == "buy").sum().alias("buys"),
        pl.col("value").filter(pl.col("side") == "sell").sum().alias("sells"),
    )
    flows = accounts.filter(pl.col("nav").is_not_null()).join(per, on="account", how="left").fill_null(0.0)
    for row in flows.iter_rows(named=True):
        scale = max(row["nav"], 1.0)
        # cash before - buys + sells + flow = cash after
        assert row["cash_before"] - row["buys"] + row["sells"] + flow == pytest.approx(
            row["cash_after"], abs=TOL * scale
        )
        # buys never exceed the cash available
        available = row["cash_before"] + row["sells"] + flow - options.get("cash_reserve", 0.0) * (row["nav"] + flow)
        assert row["buys"] <= max(available, 0.0) + TOL * scale
        assert row["cash_after"] >= -TOL * scale


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), options_st)
def test_every_proposal_keeps_the_invariants(frame: pl.DataFrame, options: dict[str, Any]) -> None:
    options = _valid(options)
    proposal = _propose(frame, options)
    if proposal is not None:
        check_invariants(frame, proposal.accounts, proposal.orders, options)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.sampled_from([0.0, 250.0, -50.0]))
def test_full_mode_without_trade_rules_reaches_the_targets_exactly(frame: pl.DataFrame, flow: float) -> None:
    proposal = _propose(frame, {"mode": "full", "cash_flow": flow})
    if proposal is None:
        return
    orders = proposal.orders
    assert orders.select(((pl.col("projected_weight") - pl.col("target_weight")).abs() <= 1e-9).all()).item(), orders
    assert (proposal.accounts["max_abs_drift_after"] <= 1e-9).all()
    assert (proposal.accounts["leftover_cash"].abs() <= 1e-6 * proposal.accounts["nav"].clip(1.0)).all()
    assert not (orders["reason"] != "to_target").any()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), options_st, st.randoms(use_true_random=False))
def test_the_same_positions_give_byte_identical_output(frame: pl.DataFrame, options: dict[str, Any], rnd: Any) -> None:
    options = _valid(options)
    first = _propose(frame, options)
    if first is None:
        return
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=rnd.randint(0, 2**31))
    again = _propose(shuffled, options)
    assert first.orders.write_json() == again.orders.write_json()
    assert first.accounts.write_json() == again.accounts.write_json()
