"""``msm drift``: how far each account's holdings are from its targets.

One call of :func:`msm.account_drift` for every account asked (or ``--all`` active accounts), with
the DuckDB weights source of ``msm_portfolios`` for the look-through. ``--format json`` prints the
drift document; ``csv`` / ``parquet`` one row per (account, asset), ``account`` first; the table
gives each account's NAV in its base currency, weights in percent and drift in percentage points.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import msm
import msm_portfolios
from msm.drift import DEFAULT_BAND_ABS, ROW_COLUMNS
from msm_cli.commands import Arg, Command
from msm_cli.context import (
    OUT_FILE,
    add_accounts_choice,
    add_usage_error,
    bad_accounts_choice,
    formats,
    open_store,
    passed,
)
from msm_cli.lookthrough import weights_as_of, write_output
from msm_cli.output import Column, money, percent, points, price_text, write_csv, write_json, write_lines, write_table

__all__ = ["COMMANDS", "PRICED_COLUMNS", "WEIGHT_COLUMNS", "position_cells"]

#: A position's units and price (its ``price_text``), as the drift and rebalance tables show them.
PRICED_COLUMNS: tuple[Column, ...] = (("quantity", "quantity (units)"), ("price_text", "price"))
#: A position's current and target weights, as the drift and rebalance tables show them.
WEIGHT_COLUMNS: tuple[Column, ...] = (("current_weight", "current"), ("target_weight", "target"))


def position_cells(row: dict[str, Any]) -> dict[str, str]:
    """A position's price and weights as table cells, for :data:`PRICED_COLUMNS` and :data:`WEIGHT_COLUMNS`."""
    return {
        "price_text": price_text(row),
        "current_weight": percent(row["current_weight"]),
        "target_weight": percent(row["target_weight"]),
    }


def _band(text: str) -> float | None:
    """A band as a fraction >= 0 (``0.05`` = 5 points), or ``none`` to leave it unchecked."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number >= 0 (0.05 = 5 points) or 'none', got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"takes a number >= 0 (0.05 = 5 points) or 'none', got {text!r}")
    return value


def drift(args: argparse.Namespace) -> int | None:
    """``msm drift ACCOUNT... | --all``."""
    problem = bad_accounts_choice(args)
    if problem:
        return args.usage_error(problem)
    asked = weights_as_of(args.weights_as_of) if args.weights_as_of is not None else None
    store = open_store(args)
    result = msm.account_drift(
        store,
        None if args.all else args.accounts,
        weights=msm_portfolios.duckdb_weights_source(store),
        weights_as_of=asked,
        **passed(args, "as_of", "band_abs", "band_rel", "include_drafts"),
    )
    render = partial(_render, args.format, result)
    if not write_output(
        args, render, parquet=lambda path: result.rows().write_parquet(path), diagnostics=result.diagnostics
    ):
        return None
    n = result.positions.height
    accounts = result.accounts.height
    write_lines(
        f"wrote {n:,} position{'s' if n != 1 else ''} of {accounts:,} account{'s' if accounts != 1 else ''} "
        f"({args.format}) to {args.out}"
    )
    return None


def _render(fmt: str, result: msm.Drift) -> None:
    if fmt == "json":
        write_json(result.to_dict())
    elif fmt == "csv":
        write_csv(result.rows().iter_rows(named=True), ROW_COLUMNS)
    else:
        _tables(result)


# -- the table ----------------------------------------------------------------------------------------------
def _tables(result: msm.Drift) -> None:
    document = result.to_dict()
    bands = [f"|drift_abs| > {points(result.band_abs)}" if result.band_abs is not None else None]
    bands.append(f"|drift_rel| > {percent(result.band_rel)}" if result.band_rel is not None else None)
    shown = " or ".join(b for b in bands if b) or "no band checked"
    write_lines(f"drift at {document['valuation_time']} (breach: {shown})")
    for account in document["accounts"]:
        write_lines("")
        if account["status"] != "ok":
            write_lines(
                f"account {account['account']!r}: {account['status']} at or before {document['valuation_time']}"
            )
            continue
        currency = account["base_currency"]
        write_lines(
            f"account {account['account']!r}: NAV {money(account['nav'])} {currency}; holdings at "
            f"{account['holdings_time']}, targets at {account['position_set_time']}, portfolio weights as of "
            f"{account['weights_time']}",
            f"  max |drift| {points(account['max_abs_drift'])}, {account['n_breaches']} in breach",
        )
        write_table(_table_rows(account["positions"]), _table_columns(currency))


def _table_rows(positions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **p,
            **position_cells(p),
            "market_value": money(p["market_value"]),
            "target_value": money(p["target_value"]),
            "drift_abs": points(p["drift_abs"], signed=True),
            "drift_rel": percent(p["drift_rel"]),
            "breach": "BREACH" if p["breach"] else "",
        }
        for p in positions
    ]


def _table_columns(currency: str) -> list[Column]:
    return [
        "asset",
        ("asset_type", "type"),
        *PRICED_COLUMNS,
        ("fx_rate", f"fx to {currency}"),
        ("market_value", f"value ({currency})"),
        *WEIGHT_COLUMNS,
        ("target_value", f"target ({currency})"),
        ("drift_abs", "drift"),
        ("drift_rel", "drift rel"),
        "breach",
    ]


COMMANDS = (
    Command(
        "drift",
        drift,
        help="how far accounts' holdings are from their targets",
        description="Value each account's latest holdings at or before --as-of (default now) with the latest prices "
        "and FX rates at or before it, in the account's base currency, and compare them with its latest target "
        "snapshot, expanded through its portfolios and netted per asset. The unallocated residual is the target of the "
        "base-currency cash asset. A position is in breach when |drift_abs| > --band-abs or |drift_rel| > --band-rel. "
        "Name accounts, or give --all: every active account, where one without holdings or targets is reported as "
        "such.",
        options=(
            add_accounts_choice,
            Arg(
                "--weights-as-of",
                default=None,
                metavar="now|position-set|TS",
                help="which compositions portfolio targets use: the latest at or before the valuation time (default), "
                "'now', 'position-set' (each snapshot's own time) or a time TS",
            ),
            Arg(
                "--band-abs",
                type=_band,
                default=DEFAULT_BAND_ABS,
                metavar="X",
                help="absolute band on drift_abs, a fraction (default 0.05 = 5 points; 'none' to not check it)",
            ),
            Arg(
                "--band-rel",
                type=_band,
                default=None,
                metavar="Y",
                help="relative band on drift_rel, a fraction (0.2 = 20%%)",
            ),
            formats("table", "json", "csv", "parquet"),
            OUT_FILE,
            add_usage_error,
        ),
    ),
)
