"""``msm rebalance``: what to buy and sell so that accounts move toward their targets.

One call of :func:`msm.rebalance` for every account asked (or ``--all`` active accounts), with the
DuckDB weights source of ``msm_portfolios`` for the look-through. It only reads the database.

Without ``--out`` the report goes to stdout: ``table`` (per account its cash, leftover and
turnover, then its orders), ``json`` (the rebalance document) or ``csv`` (one row per order,
``account`` first). ``--out F`` writes the orders file a trading desk loads instead: one row per
order that trades (``account``, ``asset``, ``side``, ``quantity``, ``price``, ``currency``,
``value``), CSV unless ``--format`` is ``json`` or ``parquet``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.drift import DEFAULT_BAND_ABS
from msm.rebalancing import ORDER_COLUMNS, REBALANCE_MODES, REBALANCE_TO
from msm_cli.commands import Arg, Command
from msm_cli.context import add_accounts_choice, add_usage_error, bad_accounts_choice, formats, open_store, passed
from msm_cli.drift import PRICED_COLUMNS, WEIGHT_COLUMNS, position_cells
from msm_cli.lookthrough import warn_diagnostics, write_file
from msm_cli.output import Column, money, percent, points, write_csv, write_json, write_lines, write_table

__all__ = ["COMMANDS"]


def _band(text: str) -> float | None:
    """A band as a number (a fraction: 0.05 = 5 points), or ``none`` to leave it unchecked."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number (0.05 = 5 points) or 'none', got {text!r}") from None


def rebalance(args: argparse.Namespace) -> int | None:
    """``msm rebalance ACCOUNT... | --all``."""
    problem = bad_accounts_choice(args)
    if problem:
        return args.usage_error(problem)
    store = open_store(args)
    result = msm.rebalance(
        store,
        None if args.all else args.accounts,
        weights=msm_portfolios.duckdb_weights_source(store),
        **passed(args, "as_of", "mode", "to", "band_abs", "band_rel"),  # which positions trade
        **passed(args, "cash_flow", "cash_reserve", "min_trade", "whole_units", "include_drafts"),  # cash, orders
    )
    if args.out:
        _write_orders(args.out, args.format, result)
    elif args.format == "json":
        write_json(result.to_dict())
    elif args.format == "csv":
        write_csv(result.orders.iter_rows(named=True), ORDER_COLUMNS)
    else:
        _tables(result)
    _warn(result)
    return None


def _write_orders(path: str, fmt: str, result: msm.Rebalance) -> None:
    """The trading desk's orders file at ``path`` and one line on stdout saying what it holds."""
    orders = result.desk_orders()
    if fmt == "parquet":
        write_file(path, orders.write_parquet)
    else:
        fmt = "json" if fmt == "json" else "csv"
        write_file(path, lambda target: _write_text(target, fmt, orders))
    n, accounts = orders.height, result.accounts.height
    write_lines(
        f"wrote {n:,} order{'s' if n != 1 else ''} of {accounts:,} account{'s' if accounts != 1 else ''} "
        f"({fmt}; quantities in units, values in each account's base currency) to {path}"
    )


def _write_text(target: Path, fmt: str, orders: pl.DataFrame) -> None:
    from msm.services.rebalance import DESK_COLUMNS

    with target.open("w", encoding="utf-8", newline="") as out:
        if fmt == "json":
            write_json({"orders": orders.to_dicts()}, out)
        else:
            write_csv(orders.iter_rows(named=True), DESK_COLUMNS, out=out)


def _warn(result: msm.Rebalance) -> None:
    """On stderr: compositions that do not sum to 1, and accounts listed without a proposal."""
    if result.diagnostics is not None:
        warn_diagnostics(result.diagnostics)
    skipped = result.accounts.filter(pl.col("status") != "ok").select("account", "status")
    for account, status in skipped.iter_rows():
        sys.stderr.write(f"note: account '{account}' has no proposal: {status}\n")


# -- the table ----------------------------------------------------------------------------------------------
def _tables(result: msm.Rebalance) -> None:
    document = result.to_dict()
    options = result.options
    write_lines(
        f"rebalance at {document['valuation_time']}: mode {options.mode}"
        + (f" to {'the band edge' if options.to == 'edge' else 'target'}" if options.mode == "bands" else "")
    )
    statuses = dict(result.accounts.select("account", "status").iter_rows())
    for account in document["accounts"]:
        write_lines("")
        if statuses[account["account"]] != "ok":
            write_lines(f"account {account['account']!r}: no proposal ({statuses[account['account']]})")
            continue
        currency = account["base_currency"]
        write_lines(
            f"account {account['account']!r}: NAV {money(account['nav'])} {currency}; cash "
            f"{money(account['cash_before'])} -> {money(account['cash_after'])} {currency}, leftover "
            f"{money(account['leftover_cash'])} {currency}; turnover {percent(account['turnover'])}; max |drift| "
            f"{points(account['max_abs_drift_before'])} -> {points(account['max_abs_drift_after'])}"
        )
        write_table(_table_rows(account["orders"]), _table_columns(currency), empty="(no positions to trade)")


def _table_rows(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **o,
            **position_cells(o),
            "value": money(o["value"]),
            "projected_weight": percent(o["projected_weight"]),
        }
        for o in orders
    ]


def _table_columns(currency: str) -> list[Column]:
    return [
        "asset",
        "side",
        *PRICED_COLUMNS,
        ("value", f"value ({currency})"),
        *WEIGHT_COLUMNS,
        ("projected_weight", "projected"),
        "reason",
    ]


COMMANDS = (
    Command(
        "rebalance",
        rebalance,
        help="propose the orders that move accounts toward their targets",
        description="Compute each account's drift at --as-of (default now) and propose orders: --mode full (every "
        "asset to its target), bands (only positions in breach, to the target or to the band edge) or buy-only (no "
        "sells; cash spent on underweight assets). Cash available = base-currency cash + sells + --cash-flow - "
        "--cash-reserve x NAV'; buys are scaled down pro rata to it. Quantities are in units, values in each "
        "account's base currency. Reads only: nothing is written to the database.",
        options=(
            add_accounts_choice,
            Arg("--mode", choices=REBALANCE_MODES, default="full", help="which positions trade (default: full)"),
            Arg(
                "--to", choices=REBALANCE_TO, default="target", help="bands mode: trade to the target or the band edge"
            ),
            Arg(
                "--band-abs",
                type=_band,
                default=DEFAULT_BAND_ABS,
                metavar="X",
                help="absolute band on drift_abs, a fraction > 0 (default 0.05 = 5 points; 'none' to not check it)",
            ),
            Arg("--band-rel", type=_band, default=None, metavar="Y", help="relative band on drift_rel (0.2 = 20%%)"),
            Arg(
                "--cash-flow",
                type=float,
                default=0.0,
                metavar="AMOUNT",
                help="deposit (> 0) or withdrawal (< 0), in each account's base currency (default 0)",
            ),
            Arg(
                "--cash-reserve", type=float, default=0.0, metavar="W", help="cash kept, a fraction of NAV' (default 0)"
            ),
            Arg(
                "--min-trade",
                type=float,
                default=0.0,
                metavar="VALUE",
                help="drop orders worth less than this, in base currency (default 0)",
            ),
            Arg("--whole-units", action="store_true", help="round order quantities toward zero to whole units"),
            formats("table", "json", "csv", "parquet"),
            Arg(
                "--out",
                metavar="F",
                help="write the orders file a trading desk loads (orders that trade: account, asset, side, quantity, "
                "price, currency, value) to F: CSV, or JSON/Parquet with --format json/parquet",
            ),
            add_usage_error,
        ),
    ),
)
