"""Portfolio compositions: ``msm portfolios weights|composition|history``.

A composition is every ``(asset, weight)`` row of one portfolio at one UTC time
(:mod:`msm_portfolios.compositions`); it is in force until the portfolio's next one. Weights are
stored exactly as given: a composition that does not sum to 1 is stored, shown with its sum and
flagged, never renormalized (expansion reports it again when it uses it).
"""

from __future__ import annotations

import argparse
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.timeutil import format_utc
from msm_cli.commands import Command, history_command
from msm_cli.context import (
    add_format,
    add_portfolio,
    add_rows_file,
    as_of_option,
    at_option,
    formats,
    open_store,
    overwrite_option,
    percent_option,
)
from msm_cli.output import counted, number, write_document, write_lines, write_table

__all__ = ["COMMANDS", "composition_document"]


def sums_to_one(weight_sum: float) -> bool:
    """Whether a composition's weight sum is 1 within :data:`msm.expansion.WEIGHT_SUM_TOLERANCE`."""
    from msm.expansion import WEIGHT_SUM_TOLERANCE

    return abs(weight_sum - 1.0) <= WEIGHT_SUM_TOLERANCE


def composition_document(frame: pl.DataFrame) -> dict[str, Any]:
    """``{"portfolio": {uid, unique_identifier}, "weights_time", "n_assets", "weight_sum", "sums_to_one", "rows"}``.

    ``rows`` have the columns of :func:`msm_portfolios.read_composition`, in its order (the ``csv`` columns too).
    """
    first = frame.row(0, named=True)
    weight_sum = float(frame["weight"].sum())
    return {
        "portfolio": {"uid": first["portfolio_uid"], "unique_identifier": first["portfolio"]},
        "weights_time": first["weights_time"],
        "n_assets": frame.height,
        "weight_sum": weight_sum,
        "sums_to_one": sums_to_one(weight_sum),
        "rows": frame.to_dicts(),
    }


def _print_composition(document: dict[str, Any], *heading: str) -> None:
    write_lines(*heading, "")
    columns = ["asset", "weight", ("asset_uid", "asset uid")]
    if any(r.get("constituent_type") == "portfolio" for r in document["rows"]):
        columns[1:1] = [("constituent_portfolio", "portfolio")]  # nested portfolios: name them beside the assets
    write_table(document["rows"], columns)
    weight_sum = document["weight_sum"]
    note = "" if document["sums_to_one"] else "  (does not sum to 1: stored as given, never renormalized)"
    write_lines(
        "", f"  assets        {document['n_assets']}", f"  weight sum    {number(weight_sum, decimals=12)}{note}"
    )


# -- weights -------------------------------------------------------------------------------------
def weights(args: argparse.Namespace) -> None:
    """``msm portfolios weights``: store a composition read from a file."""
    store = open_store(args)
    before: set[Any] = set()
    if args.overwrite:  # to say whether a composition was replaced
        before = set(msm_portfolios.composition_history(store, args.portfolio)["weights_time"].to_list())
    frame = msm_portfolios.save_composition_file(
        store, args.portfolio, args.at, args.file, overwrite=args.overwrite, percent=args.percent, sheet=args.sheet
    )
    document = composition_document(frame)
    replaced = document["weights_time"] in before
    if write_document(
        args.format, {**document, "replaced": replaced, **({"weights_in_percent": True} if args.percent else {})}
    ):
        return
    if args.percent:
        write_lines(
            f"weights were read in percent and divided by 100 (file sum "
            f"{number(document['weight_sum'] * 100, decimals=10)}, "
            f"stored sum {number(document['weight_sum'], decimals=12)}; not renormalized)"
        )
    where = f"portfolio {document['portfolio']['unique_identifier']!r} at {format_utc(document['weights_time'])}"
    _print_composition(
        document,
        f"stored composition of {where}{' (replaced the whole previous composition)' if replaced else ''}",
        f"  portfolio uid {document['portfolio']['uid']}; in force from {format_utc(document['weights_time'])} until "
        f"the next composition",
    )


# -- composition ---------------------------------------------------------------------------------
def composition(args: argparse.Namespace) -> None:
    """``msm portfolios composition``: the composition in force at a time."""
    store = open_store(args)
    frame = msm_portfolios.read_composition(store, args.portfolio, as_of=args.as_of)
    document = composition_document(frame)
    if write_document(args.format, document, rows="rows", columns=frame.columns):
        return
    when = f"at {args.as_of}" if args.as_of else "now"
    _print_composition(
        document,
        f"portfolio {document['portfolio']['unique_identifier']!r}: composition in force {when}, "
        f"stored at {format_utc(document['weights_time'])}",
    )


# -- history -------------------------------------------------------------------------------------
def history(args: argparse.Namespace) -> None:
    """``msm portfolios history``: every composition of a portfolio, newest first."""
    from msm.expansion import WEIGHT_SUM_TOLERANCE
    from msm.services.registry import identity

    store = open_store(args)
    portfolio = msm.get_portfolio(store, args.portfolio)
    frame = msm_portfolios.composition_history(store, portfolio["uid"])
    weight_sum = pl.col("weight_sum").cast(pl.Float64)
    compositions = frame.select(
        "weights_time",
        pl.col("n_assets").cast(pl.Int64),
        weight_sum,
        ((weight_sum - 1.0).abs() <= WEIGHT_SUM_TOLERANCE).alias("sums_to_one"),
    ).to_dicts()
    if write_document(args.format, {"portfolio": identity(portfolio), "compositions": compositions}):
        return
    write_lines(
        f"portfolio {portfolio['unique_identifier']!r}: {counted(len(compositions), 'composition')}, newest first"
    )
    write_table(
        [
            {
                **c,
                "weight_sum": round(c["weight_sum"], 12),
                "note": "" if c["sums_to_one"] else "does not sum to 1 (as stored)",
            }
            for c in compositions
        ],
        [("weights_time", "weights time"), ("n_assets", "assets"), ("weight_sum", "weight sum"), "note"],
        empty="(no compositions; store one with `msm portfolios weights ID --at TS --file F`)",
    )


COMMANDS = (
    Command(
        "portfolios weights",
        weights,
        writes=True,
        help="store a composition (asset or nested portfolio weights from a time on) from a CSV/JSON/Parquet file",
        description="Validate every row of the --file (columns: `asset` (unique identifier) or `asset_uid`, or "
        "`portfolio` for a nested portfolio, one per row, and `weight`), then store the composition of portfolio ID "
        "taking effect at --at, in one transaction. Weights are stored as given: they need not sum to 1 (the output "
        "says when they do not) and are never renormalized. A portfolio never contains itself at any depth, at any "
        "time, and nests at most 8 levels deep. Nothing is stored when any row is bad.",
        options=(
            add_portfolio,
            at_option("time the composition takes effect, ISO-8601 with a UTC offset"),
            add_rows_file,
            percent_option(
                "weights are in percent (e.g. an issuer file summing to 100): divided by 100, never renormalized"
            ),
            overwrite_option("replace the whole composition when one exists at that time"),
            add_format,
        ),
    ),
    Command(
        "portfolios composition",
        composition,
        help="show the composition in force at a time",
        description="The portfolio's composition in force at --as-of (its latest at or before that time; default now), "
        "with its weight sum.",
        options=(
            add_portfolio,
            as_of_option("the time (default: now)"),
            formats("table", "json", "csv"),
        ),
    ),
    history_command("portfolios", history, "composition of a portfolio", add_portfolio, add_format),
)
