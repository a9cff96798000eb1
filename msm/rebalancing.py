"""Rebalancing proposals: what to buy and sell so that accounts move toward their targets.

A proposal is a report computed from drift positions (one row per account and asset, as the drift
service returns them); nothing is ever written. It is vectorized over every account at once: each
step below is one polars expression over the whole frame, per-account totals are window sums, and
no Python loop touches an account or a row.

The steps, in order:

1. **Targets for NAV'** = NAV + cash flow (a deposit is > 0, a withdrawal < 0): each asset's target
   value is its target weight x NAV' (with no cash flow, exactly the drift's target value).
2. **Which positions trade**, by mode: ``full`` every asset to its target; ``bands`` only positions
   in breach of the bands, to the target (``to="target"``) or to the nearest band edge
   (``to="edge"``), the others keep their quantity; ``buy-only`` no sells, underweight assets are
   bought up to their target.
3. **Sells**, never more than is held (then rounded to whole units and checked against the minimum
   trade, when asked).
4. **Cash available** = base-currency cash held + sells + cash flow - cash reserve x NAV'. A
   withdrawal larger than the cash and the sells can raise is an error naming the account.
5. **Buys** scaled down pro rata (so, in ``buy-only``, in proportion to each asset's shortfall) so
   that they never exceed the cash available (reason ``cash_limited``); then whole units (toward
   zero; ``rounded_to_zero`` when an order becomes 0) and the minimum trade (``below_min_trade``).
6. **What is left**: cash after = cash before + sells - buys + cash flow; the leftover cash (cash
   after minus what the targets and the reserve ask for) is a number in the output, never hidden.

Quantities are in units of the asset; every value (``nav``, ``value``, the cash figures, the
minimum trade, the cash flow) is in the account's base currency. The base-currency cash asset (an
asset of type ``cash`` whose currency is the account's base currency) is never an order: cash moves
are ``cash_before`` -> ``cash_after``. The same positions and options give the same frames, rows
sorted by account and asset.

>>> positions = pl.DataFrame({
...     "account": ["alpha"] * 3,
...     "base_currency": ["USD"] * 3,
...     "nav": [1000.0] * 3,
...     "asset": ["BTC", "ETH", "USD"],
...     "asset_uid": ["a1", "a2", "a3"],
...     "asset_type": ["crypto", "crypto", "cash"],
...     "quantity": [0.01, 2.0, 100.0],
...     "price": [50000.0, 200.0, 1.0],
...     "price_currency": ["USD"] * 3,
...     "fx_rate": [1.0] * 3,
...     "market_value": [500.0, 400.0, 100.0],
...     "current_weight": [0.5, 0.4, 0.1],
...     "target_value": [600.0, 300.0, 100.0],
...     "target_weight": [0.6, 0.3, 0.1],
...     "drift_abs": [-0.1, 0.1, 0.0],
...     "drift_rel": [-1 / 6, 1 / 3, 0.0],
... })
>>> proposal = propose_rebalance(positions, mode="full")
>>> proposal.orders.select("asset", "side", "quantity", "value", "projected_weight", "reason")
shape: (2, 6)
┌───────┬──────┬──────────┬───────┬──────────────────┬───────────┐
│ asset ┆ side ┆ quantity ┆ value ┆ projected_weight ┆ reason    │
│ ---   ┆ ---  ┆ ---      ┆ ---   ┆ ---              ┆ ---       │
│ str   ┆ str  ┆ f64      ┆ f64   ┆ f64              ┆ str       │
╞═══════╪══════╪══════════╪═══════╪══════════════════╪═══════════╡
│ BTC   ┆ buy  ┆ 0.002    ┆ 100.0 ┆ 0.6              ┆ to_target │
│ ETH   ┆ sell ┆ 0.5      ┆ 100.0 ┆ 0.3              ┆ to_target │
└───────┴──────┴──────────┴───────┴──────────────────┴───────────┘
>>> proposal.accounts.select("cash_before", "cash_after", "leftover_cash", "turnover").row(0)
(100.0, 100.0, 0.0, 0.2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from msm.drift import DEFAULT_BAND_ABS
from msm.drift import POSITION_COLUMNS as DRIFT_POSITION_COLUMNS
from msm.errors import NO_VALUE, RowError, ValidationError

__all__ = [
    "ACCOUNT_COLUMNS",
    "DEFAULT_BAND_ABS",
    "ORDER_COLUMNS",
    "ORDER_REASONS",
    "ORDER_SIDES",
    "POSITION_COLUMNS",
    "REBALANCE_MODES",
    "REBALANCE_TO",
    "RebalanceOptions",
    "RebalanceProposal",
    "account_key",
    "base_cash",
    "prepare_positions",
    "propose_prepared",
    "propose_rebalance",
]

REBALANCE_MODES = ("full", "bands", "buy-only")
REBALANCE_TO = ("target", "edge")
ORDER_SIDES = ("buy", "sell", "none")
ORDER_REASONS = (
    "to_target",
    "to_band_edge",
    "within_band",
    "below_min_trade",
    "rounded_to_zero",
    "cash_limited",
    "buy_only",
)
#: The drift position columns a proposal reads (other columns are ignored).
POSITION_COLUMNS = ("account", "base_currency", "nav", *DRIFT_POSITION_COLUMNS[1:-1])  # a drift row but `breach`
#: One row per account: values in the account's base currency, ``turnover`` a fraction of NAV.
ACCOUNT_COLUMNS = (
    "account",
    "base_currency",
    "nav",
    "cash_before",
    "cash_after",
    "leftover_cash",
    "turnover",
    "max_abs_drift_before",
    "max_abs_drift_after",
)
#: One row per (account, non-cash asset): ``quantity`` in units, ``value`` in base currency (>= 0).
ORDER_COLUMNS = (
    "account",
    "asset",
    "asset_uid",
    "side",
    "quantity",
    "price",
    "price_currency",
    "value",
    "current_weight",
    "target_weight",
    "projected_weight",
    "reason",
)

Mode = Literal["full", "bands", "buy-only"]
To = Literal["target", "edge"]

_OPTION = "rebalance option"
_FLAGS = {
    "mode": "--mode",
    "to": "--to",
    "band_abs": "--band-abs",
    "band_rel": "--band-rel",
    "cash_flow": "--cash-flow",
    "cash_reserve": "--cash-reserve",
    "min_trade": "--min-trade",
    "whole_units": "--whole-units",
}
#: A whole-units rounding forgives this many ulps, so that 0.3 / 0.1 (2.9999999999999996) is 3 units.
_ROUNDING_SLACK = 1 + 8 * 2.220446049250313e-16
#: Buys scaled by more than this factor of 1 are ``cash_limited``; less is float noise in the sums.
_SCALE_NOISE = 1e-9


@dataclass(frozen=True)
class RebalanceOptions:
    """The options of a proposal; :meth:`checked` refuses bad ones, naming each option.

    ``band_abs`` / ``band_rel``: the bands of drift (``None``: not checked; by default only the
    absolute band of 0.05). ``cash_flow`` is an amount in each account's base currency (deposit > 0,
    withdrawal < 0); ``cash_reserve`` a fraction of NAV' kept as cash; ``min_trade`` a base-currency value.
    """

    mode: Mode = "full"
    to: To = "target"
    band_abs: float | None = DEFAULT_BAND_ABS
    band_rel: float | None = None
    cash_flow: float = 0.0
    cash_reserve: float = 0.0
    min_trade: float = 0.0
    whole_units: bool = False

    def checked(self) -> RebalanceOptions:
        """These options, or a :class:`ValidationError` listing every bad one (nothing is computed)."""
        errors = [RowError(_OPTION, None, field, value, rule) for field, value, rule in self._problems()]
        if errors:
            summary = f"{_count(len(errors), 'bad rebalance option')}; nothing was computed"
            raise ValidationError(errors, summary=summary)
        return self

    def bands(self) -> tuple[float | None, float | None]:
        """``(band_abs, band_rel)``: the bands a position is checked against (``None``: not checked)."""
        return self.band_abs, self.band_rel

    def _problems(self) -> list[tuple[str, Any, str]]:
        problems: list[tuple[str, Any, str]] = []
        if self.mode not in REBALANCE_MODES:
            problems.append(("mode", self.mode, f"must be one of {', '.join(REBALANCE_MODES)} (--mode)"))
        if self.to not in REBALANCE_TO:
            problems.append(("to", self.to, f"must be one of {', '.join(REBALANCE_TO)} (--to)"))
        elif self.to == "edge" and self.mode != "bands":
            problems.append(("to", self.to, "only applies to mode bands (--to edge needs --mode bands)"))
        for name in ("band_abs", "band_rel"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
                problems.append((name, value, f"a band must be a finite number > 0 ({_FLAGS[name]})"))
        if self.mode == "bands" and self.band_abs is None and self.band_rel is None:
            problems.append(("band_abs", None, "mode bands needs a band: give --band-abs or --band-rel"))
        if not (_is_number(self.cash_flow) and math.isfinite(self.cash_flow)):
            problems.append(("cash_flow", self.cash_flow, "must be a finite amount in base currency (--cash-flow)"))
        elif self.mode == "buy-only" and self.cash_flow < 0:
            problems.append(
                ("cash_flow", self.cash_flow, "a withdrawal (< 0) needs sells: use --mode full or bands, not buy-only")
            )
        if not (_is_number(self.cash_reserve) and math.isfinite(self.cash_reserve) and 0 <= self.cash_reserve <= 1):
            problems.append(
                ("cash_reserve", self.cash_reserve, "must be a fraction of NAV' from 0 to 1 (--cash-reserve)")
            )
        if not (_is_number(self.min_trade) and math.isfinite(self.min_trade) and self.min_trade >= 0):
            problems.append(("min_trade", self.min_trade, "must be a finite base-currency value >= 0 (--min-trade)"))
        if not isinstance(self.whole_units, bool):
            problems.append(("whole_units", self.whole_units, "must be true or false (--whole-units)"))
        return problems


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, eq=False)
class RebalanceProposal:
    """The result of :func:`propose_rebalance`: :data:`ACCOUNT_COLUMNS` and :data:`ORDER_COLUMNS` frames.

    ``accounts``: one row per account, sorted by account. ``orders``: one row per account and
    non-cash asset (``side`` ``none`` when it does not trade, with the reason), sorted by account
    and asset. Values in each account's base currency, quantities in units.
    """

    accounts: pl.DataFrame
    orders: pl.DataFrame
    options: RebalanceOptions

    @property
    def trades(self) -> pl.DataFrame:
        """The orders that trade (``side`` buy or sell): what a trading desk loads."""
        return self.orders.filter(pl.col("side") != "none")


def propose_rebalance(
    positions: pl.DataFrame,
    *,
    mode: Mode = "full",
    to: To = "target",
    band_abs: float | None = DEFAULT_BAND_ABS,
    band_rel: float | None = None,
    cash_flow: float = 0.0,
    cash_reserve: float = 0.0,
    min_trade: float = 0.0,
    whole_units: bool = False,
) -> RebalanceProposal:
    """Propose the orders that move every account of ``positions`` toward its targets.

    ``positions``: drift positions, one row per (account, asset), with :data:`POSITION_COLUMNS`.
    The options are those of :class:`RebalanceOptions`; bad options, a position without a price
    or FX rate, and a withdrawal larger than what an account can raise are a
    :class:`ValidationError` naming the option, the account or the asset.
    """
    options = RebalanceOptions(mode, to, band_abs, band_rel, cash_flow, cash_reserve, min_trade, whole_units).checked()
    return propose_prepared(prepare_positions(positions), options)


def propose_prepared(frame: pl.DataFrame, options: RebalanceOptions) -> RebalanceProposal:
    """:func:`propose_rebalance` on a frame from :func:`prepare_positions`, with ``options`` already checked."""
    frame = _sells(_goals(frame, options), options)
    _check_withdrawal(frame, options)
    frame = _outcome(_buys(frame, options), options)
    return RebalanceProposal(_accounts(frame, options), _orders(frame), options)


def base_cash() -> pl.Expr:
    """True on the base-currency cash asset's rows: type ``cash`` (any case) priced in the base currency."""
    is_cash = pl.col("asset_type").str.strip_chars().str.to_lowercase() == "cash"
    return (is_cash & (pl.col("price_currency") == pl.col("base_currency"))).fill_null(False)


def account_key(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by (account, asset) (a sorted one is not sorted again) with ``_acct``, an integer per account.

    Per-account sums group by ``_acct`` rather than by the account's text: the same groups, cheaper.
    Raises :class:`ValidationError` when an (account, asset) pair appears twice.
    """
    account, asset = pl.col("account"), pl.col("asset")
    after = (account > account.shift()) | ((account == account.shift()) & (asset > asset.shift()))
    if not frame.select(after.fill_null(True).all()).item():
        frame = frame.sort("account", "asset", maintain_order=True)
        twice = frame.filter((account == account.shift()) & (asset == asset.shift()))
        if twice.height:
            errors = [
                RowError(f"account '{a}'", None, "asset", b, "appears twice in the drift positions")
                for a, b in twice.select("account", "asset").unique(maintain_order=True).iter_rows()
            ]
            raise ValidationError(errors, summary="the drift positions repeat positions; nothing was computed")
    return frame.with_columns((account != account.shift()).fill_null(True).cum_sum().alias("_acct"))


def prepare_positions(positions: pl.DataFrame) -> pl.DataFrame:
    """The positions a proposal reads: :data:`POSITION_COLUMNS` typed, sorted by (account, asset), and
    ``_acct`` (:func:`account_key`), ``_cash`` (:func:`base_cash`) and ``_unit`` (price x FX rate).

    Refuses missing columns, a repeated position and a position without a price or FX rate.
    """
    missing = [c for c in POSITION_COLUMNS if c not in positions.columns]
    if missing:
        raise ValidationError(
            [RowError("drift positions", None, c, NO_VALUE, "column is missing") for c in missing],
            summary="the drift positions lack columns; nothing was computed",
        )
    floats = ("nav", "quantity", "price", "fx_rate", "market_value", "current_weight", "target_value")
    floats += ("target_weight", "drift_abs", "drift_rel")
    frame = positions.select(
        *(pl.col(c).cast(pl.String) for c in ("account", "base_currency", "asset", "asset_uid", "asset_type")),
        pl.col("price_currency").cast(pl.String),
        *(pl.col(c).cast(pl.Float64) for c in floats),
    )
    frame = account_key(frame).with_columns(
        base_cash().alias("_cash"),
        (pl.col("price") * pl.col("fx_rate")).alias("_unit"),
    )
    _check_prices(frame)
    return frame


def _check_prices(frame: pl.DataFrame) -> None:
    """Every position that may trade has a price and an FX rate to base currency (all named at once)."""
    unvalued = ~pl.col("_cash") & (pl.col("_unit").is_null() | ~pl.col("_unit").is_finite() | (pl.col("_unit") <= 0))
    if not frame.select(unvalued.any()).item():
        return
    bad = frame.filter(unvalued)
    errors = [
        RowError(
            f"account '{account}'",
            None,
            "price" if price is None else "fx_rate",
            asset,
            "has no price to value and trade it (msm prices import FILE)"
            if price is None
            else f"has no FX rate from {currency} to the base currency (msm fx import FILE)",
        )
        for account, asset, price, currency in bad.select("account", "asset", "price", "price_currency").iter_rows()
    ]
    raise ValidationError(errors, summary=f"{_count(len(errors), 'position')} cannot be valued; nothing was computed")


def _goals(frame: pl.DataFrame, options: RebalanceOptions) -> pl.DataFrame:
    """Each position's target value for NAV', its breach of the bands and the value the mode aims for."""
    flow = options.cash_flow
    band_abs, band_rel = options.bands()
    breach = pl.lit(False)
    if band_abs is not None:
        breach = breach | (pl.col("drift_abs").abs() > band_abs).fill_null(False)
    if band_rel is not None:
        breach = breach | (pl.col("drift_rel").abs() > band_rel).fill_null(False)
    frame = frame.with_columns(
        (pl.col("nav") + flow).alias("_nav_after"),
        (pl.col("target_value") + pl.col("target_weight").fill_null(0.0) * flow).alias("_target"),
        breach.alias("_breach"),
    )
    held = pl.col("market_value")
    if options.mode == "full":
        goal = pl.col("_target")
    elif options.mode == "buy-only":
        goal = pl.max_horizontal(pl.col("_target"), held)
    else:
        to = pl.col("_target") if options.to == "target" else _band_edge(band_abs, band_rel) * pl.col("_nav_after")
        goal = pl.when(pl.col("_breach")).then(to).otherwise(held)
    return frame.with_columns(goal.alias("_goal"), _base_reason(options).alias("_reason"))


def _band_edge(band_abs: float | None, band_rel: float | None) -> pl.Expr:
    """The weight of the band edge nearest the current weight (the narrower band where both are given)."""
    widths = []
    if band_abs is not None:
        widths.append(pl.lit(band_abs))
    if band_rel is not None:  # a relative band has no width around a target of 0
        widths.append(pl.when(pl.col("target_weight") != 0).then(band_rel * pl.col("target_weight").abs()))
    return pl.col("target_weight") + pl.col("drift_abs").sign() * pl.min_horizontal(*widths)


def _base_reason(options: RebalanceOptions) -> pl.Expr:
    """The reason an order has before the trade rules (cash, rounding, minimum) have their say."""
    if options.mode == "full":
        return pl.lit("to_target")
    if options.mode == "buy-only":
        return (
            pl.when(pl.col("_target") < pl.col("market_value")).then(pl.lit("buy_only")).otherwise(pl.lit("to_target"))
        )
    moved = "to_target" if options.to == "target" else "to_band_edge"
    return pl.when(pl.col("_breach")).then(pl.lit(moved)).otherwise(pl.lit("within_band"))


def _units(quantity: pl.Expr, options: RebalanceOptions, cap: pl.Expr | None = None) -> pl.Expr:
    """``quantity`` (at most ``cap``) rounded toward zero to whole units when asked."""
    if not options.whole_units:
        return quantity if cap is None else pl.min_horizontal(quantity, cap)
    slack = quantity * _ROUNDING_SLACK
    return (slack if cap is None else pl.min_horizontal(slack, cap)).floor()


def _sells(frame: pl.DataFrame, options: RebalanceOptions) -> pl.DataFrame:
    """Sell quantities (never more than held), rounded and checked against the minimum trade."""
    selling = ~pl.col("_cash") & (pl.col("_goal") < pl.col("market_value"))
    wanted = pl.when(selling).then(
        (pl.col("quantity") - pl.col("_goal").clip(lower_bound=0.0) / pl.col("_unit")).clip(0.0, pl.col("quantity"))
    )
    frame = frame.with_columns(wanted.fill_null(0.0).alias("_sell_wanted"))
    frame = frame.with_columns(_units(pl.col("_sell_wanted"), options, cap=pl.col("quantity")).alias("_sell_units"))
    frame = _trade_rules(frame, "_sell_wanted", "_sell_units", "_sell", options)
    sells = (pl.col("_sell") * pl.col("_unit")).fill_null(0.0)
    cash = pl.when(pl.col("_cash")).then(pl.col("market_value")).otherwise(0.0)
    return frame.with_columns(
        sells.sum().over("_acct").alias("_sells"),
        cash.sum().over("_acct").alias("_cash_before"),
    )


def _trade_rules(frame: pl.DataFrame, wanted: str, rounded: str, out: str, options: RebalanceOptions) -> pl.DataFrame:
    """Apply the minimum trade to the rounded quantity ``rounded``; the reasons say what each rule did."""
    value = pl.col(rounded) * pl.col("_unit")
    too_small = (pl.col(rounded) > 0) & (value < options.min_trade) if options.min_trade > 0 else pl.lit(False)
    to_zero = (pl.col(wanted) > 0) & (pl.col(rounded) == 0)
    reason = pl.when(too_small).then(pl.lit("below_min_trade")).when(to_zero).then(pl.lit("rounded_to_zero"))
    return frame.with_columns(
        pl.when(too_small).then(0.0).otherwise(pl.col(rounded)).alias(out),
        reason.otherwise(pl.col("_reason")).alias("_reason"),
    )


def _check_withdrawal(frame: pl.DataFrame, options: RebalanceOptions) -> None:
    """A withdrawal must not exceed an account's cash plus its sells (every such account is named)."""
    if options.cash_flow >= 0:
        return
    accounts = frame.group_by("_acct", maintain_order=True).agg(
        pl.col("account").first(),
        pl.col("base_currency").first(),
        pl.col("_cash_before").first(),
        pl.col("_sells").first(),
        pl.col("nav").first(),
    )
    raised = pl.col("_cash_before") + pl.col("_sells")
    short = accounts.filter(raised + options.cash_flow < -1e-9 * pl.max_horizontal(pl.col("nav").abs(), 1.0))
    if short.height == 0:
        return
    rules = f" with mode {options.mode}" + (" after whole units and the minimum trade" if _has_rules(options) else "")
    errors = [
        RowError(
            _OPTION,
            None,
            "cash_flow",
            options.cash_flow,
            f"account '{account}' can raise at most {cash + sells:,.2f} {currency} "
            f"(cash {cash:,.2f} + sells {sells:,.2f}{rules}); a withdrawal (--cash-flow) must not exceed it",
        )
        for account, currency, cash, sells in short.select(
            "account", "base_currency", "_cash_before", "_sells"
        ).iter_rows()
    ]
    raise ValidationError(errors, summary=f"the withdrawal is larger than {_count(len(errors), 'account')} can raise")


def _has_rules(options: RebalanceOptions) -> bool:
    return options.whole_units or options.min_trade > 0


def _buys(frame: pl.DataFrame, options: RebalanceOptions) -> pl.DataFrame:
    """Buy quantities, scaled pro rata to the cash available, rounded and checked against the minimum."""
    flow, reserve = options.cash_flow, options.cash_reserve
    wanted = pl.when(~pl.col("_cash") & (pl.col("_goal") > pl.col("market_value"))).then(
        pl.col("_goal") - pl.col("market_value")
    )
    frame = frame.with_columns(wanted.fill_null(0.0).alias("_buy_value_wanted"))
    available = (pl.col("_cash_before") + pl.col("_sells") + flow - reserve * pl.col("_nav_after")).clip(
        lower_bound=0.0
    )
    total = pl.col("_buy_value_wanted").sum().over("_acct")
    frame = frame.with_columns(
        available.alias("_available"),
        pl.when(total > available).then(available / total).otherwise(1.0).alias("_scale"),
    )
    # A shortfall of float noise (a scale within 1e-9 of 1) still scales, but is not called cash-limited.
    limited = (pl.col("_buy_value_wanted") > 0) & (pl.col("_scale") < 1 - _SCALE_NOISE)
    frame = frame.with_columns(
        (pl.col("_buy_value_wanted") * pl.col("_scale") / pl.col("_unit")).fill_null(0.0).alias("_buy_wanted"),
        pl.when(limited).then(pl.lit("cash_limited")).otherwise(pl.col("_reason")).alias("_reason"),
    )
    frame = frame.with_columns(_units(pl.col("_buy_wanted"), options).alias("_buy_units"))
    return _trade_rules(frame, "_buy_wanted", "_buy_units", "_buy", options)


def _outcome(frame: pl.DataFrame, options: RebalanceOptions) -> pl.DataFrame:
    """Sides, order values, the projected weights and the cash after, per position."""
    buys = (pl.col("_buy") * pl.col("_unit")).fill_null(0.0)
    frame = frame.with_columns(
        pl.when(pl.col("_sell") > 0)
        .then(pl.lit("sell"))
        .when(pl.col("_buy") > 0)
        .then(pl.lit("buy"))
        .otherwise(pl.lit("none"))
        .alias("side"),
        (pl.col("_sell") + pl.col("_buy")).alias("_quantity"),
        buys.sum().over("_acct").alias("_buys"),
    )
    frame = frame.with_columns(
        (pl.col("_quantity") * pl.col("_unit")).fill_null(0.0).alias("_value"),
        (pl.col("_cash_before") + pl.col("_sells") - pl.col("_buys") + options.cash_flow).alias("_cash_after"),
    )
    after = pl.col("market_value") + pl.when(pl.col("side") == "sell").then(-pl.col("_value")).otherwise(
        pl.col("_value")
    )
    nav_after = pl.when(pl.col("_nav_after") != 0).then(pl.col("_nav_after"))
    return frame.with_columns(
        (after / nav_after).alias("projected_weight"),
        (pl.col("_target") / nav_after).alias("_target_after"),
    )


def _accounts(frame: pl.DataFrame, options: RebalanceOptions) -> pl.DataFrame:
    """One row per account: NAV, cash before and after, leftover cash, turnover, drift before and after."""
    nav_after = pl.col("_nav_after").first()
    nav_after = pl.when(nav_after != 0).then(nav_after)
    cash_target = pl.col("_target").filter(pl.col("_cash")).sum()
    cash_after = pl.col("_cash_after").first()
    non_cash_drift = (pl.col("projected_weight") - pl.col("_target_after")).abs().filter(~pl.col("_cash")).max()
    cash_drift = (cash_after - cash_target).abs() / nav_after
    nav = pl.col("nav").first()
    return (
        frame.group_by("_acct", maintain_order=True)
        .agg(
            pl.col("account").first(),
            pl.col("base_currency").first(),
            nav,
            pl.col("_cash_before").first().alias("cash_before"),
            cash_after.alias("cash_after"),
            (cash_after - pl.max_horizontal(cash_target, options.cash_reserve * pl.col("_nav_after").first())).alias(
                "leftover_cash"
            ),
            (pl.col("_value").sum() / pl.when(nav != 0).then(nav)).alias("turnover"),
            pl.col("drift_abs").abs().max().alias("max_abs_drift_before"),
            pl.max_horizontal(non_cash_drift, cash_drift).alias("max_abs_drift_after"),
        )
        .select(ACCOUNT_COLUMNS)
    )


def _orders(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per account and non-cash asset, in :data:`ORDER_COLUMNS`."""
    working = {"quantity": "_quantity", "value": "_value", "reason": "_reason"}  # the steps' own names
    return (
        frame.lazy()
        .filter(~pl.col("_cash"))
        .select(pl.col(working.get(c, c)).alias(c) for c in ORDER_COLUMNS)
        .collect()
    )
