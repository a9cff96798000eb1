"""``msm export``: snapshots as hive-partitioned Parquet, optionally with their look-through.

The export goes through :func:`msm_portfolios.export_snapshots` (the core export with this
workbench's compositions); compositions whose weights do not sum to 1 are reported as in
``msm targets expand`` (:mod:`msm_cli.lookthrough`).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import polars as pl

import msm
import msm_portfolios
from msm.timeutil import parse_utc
from msm_cli.commands import Arg, Command
from msm_cli.context import add_format, add_include_drafts, add_usage_error, open_store, overwrite_option
from msm_cli.lookthrough import WEIGHTS_HELP, diagnostics_records, warn_diagnostics, weights_as_of
from msm_cli.output import write_json, write_lines, write_table

__all__ = ["COMMANDS"]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a date as YYYY-MM-DD, got {text!r}") from None


def export(args: argparse.Namespace) -> int | None:
    """``msm export``: the chosen snapshots (and with --expanded their look-through) as Parquet datasets."""
    if args.weights_as_of is not None and not args.expanded:
        return args.usage_error("--weights-as-of applies to the look-through dataset: add --expanded")
    if args.drift_as_of is not None and not args.drift:
        return args.usage_error("--drift-as-of applies to the drift dataset: add --drift")
    drift_as_of = parse_utc(args.drift_as_of, field="drift_as_of", entity="export") if args.drift_as_of else None
    asked = weights_as_of(args.weights_as_of or "now")
    store = open_store(args)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise msm.MsmError(
            f"cannot export to {args.out}: it is a file, not a folder; --out names the folder the datasets go into"
        )
    try:
        result = msm_portfolios.export_snapshots(
            store,
            args.out,
            expanded=args.expanded,
            weights_as_of=asked,
            overwrite=args.overwrite,
            accounts=args.account,
            date_from=args.date_from,
            date_to=args.date_to,
            drift=args.drift,
            drift_as_of=drift_as_of,
            include_drafts=args.include_drafts,
        )
    except OSError as exc:  # --out is a file, not writable, ...: nothing was exported
        raise msm.MsmError(f"cannot export to {args.out}: {exc.strerror or exc}") from None
    diagnostics = result.diagnostics if result.diagnostics is not None else pl.DataFrame()
    if args.format == "json":
        document = result.to_dict()
        if diagnostics.height:
            document["diagnostics"] = diagnostics_records(diagnostics)
        write_json(document)
        return None
    warn_diagnostics(diagnostics)
    n = result.snapshots
    write_lines(f"exported {n} snapshot{'s' if n != 1 else ''} to {result.out} (hive-partitioned by snapshot_date)")
    document = result.to_dict()
    write_table(
        [{"dataset": name, **entry} for name, entry in document["datasets"].items()],
        ["dataset", "rows", "path"],
    )
    if args.expanded:
        write_lines(f"look-through weights as of {asked}")
    return None


COMMANDS = (
    Command(
        "export",
        export,
        help="write every snapshot as hive-partitioned Parquet",
        description="Write OUT/target_positions/snapshot_date=YYYY-MM-DD/*.parquet: every stored target row, with its "
        "account, allocation and target labels; with --expanded also OUT/target_exposure/...: the look-through rows of "
        "the same snapshots; OUT/account_holdings/...: every holdings row; with --drift also OUT/drift/...: the "
        "drift of every active account, and its inputs. polars, pyarrow, DuckDB, Spark and Trino read the datasets "
        "natively. The export is "
        "staged and moved into place at the end: a failed export leaves nothing behind.",
        options=(
            Arg("--out", required=True, metavar="DIR", help="folder to write the datasets into (created when missing)"),
            Arg("--expanded", action="store_true", help="also write the look-through dataset target_exposure"),
            Arg(
                "--weights-as-of", default=None, metavar="now|position-set|TS", help=f"with --expanded: {WEIGHTS_HELP}"
            ),
            Arg(
                "--drift",
                action="store_true",
                help="also write drift/ (every active account) and its inputs: accounts, allocations, asset_prices, "
                "fx_rates",
            ),
            Arg("--drift-as-of", metavar="TS", help="with --drift: the valuation time (default: now)"),
            add_include_drafts,
            overwrite_option("replace datasets that already exist under --out"),
            Arg(
                "--account",
                action="append",
                default=None,
                metavar="ID",
                help="export only this account's snapshots (unique identifier or uid; repeat for several)",
            ),
            Arg(
                "--from",
                dest="date_from",
                type=_date,
                default=None,
                metavar="YYYY-MM-DD",
                help="only snapshots on or after this UTC date",
            ),
            Arg(
                "--to",
                dest="date_to",
                type=_date,
                default=None,
                metavar="YYYY-MM-DD",
                help="only snapshots on or before this UTC date",
            ),
            add_format,
            add_usage_error,
        ),
    ),
)
