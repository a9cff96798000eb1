"""Look-through: ``msm targets expand`` and ``msm export``.

Both expand on explicit request only, through :func:`msm.expansion.expand_targets` with the
DuckDB weights source of ``msm_portfolios``; nothing is ever written back to ``target_positions``.
Compositions whose weights do not sum to 1 are expanded as stored and reported: in the JSON
document (``"diagnostics"``, present only when there is something to report), and as ``warning:``
lines on stderr whenever the report is not in a JSON document on stdout.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.expansion import Expansion, expand_targets
from msm.timeutil import format_utc, parse_utc
from msm_cli.commands import CommandTree
from msm_cli.context import add_format, add_snapshot_choice, open_store
from msm_cli.output import number, write_csv, write_json, write_lines, write_table

__all__ = ["register"]

_WEIGHTS_HELP = (
    "which composition each portfolio target uses: 'now' (the latest; default), 'position-set' (the latest at or "
    "before each snapshot's own time), or a time TS with a UTC offset (the latest at or before TS)"
)
_EXPOSURES = (
    ("weight_notional_exposure", "weight"),
    ("constant_notional_exposure", "notional"),
    ("single_asset_quantity", "quantity"),
)


def register(tree: CommandTree) -> None:
    p = tree.subcommand(
        "targets",
        "expand",
        expand,
        help="look-through: a snapshot's portfolio targets expanded to asset exposure",
        description="Expand the account's latest snapshot (or the one exactly at --at, or the latest at or before "
        "--as-of): asset targets pass through; each portfolio target becomes one row per constituent of the "
        "portfolio's composition at the weights time, its weight and notional exposures multiplied by the "
        "constituent weight. --net sums the rows per asset. Nothing is stored.",
    )
    add_snapshot_choice(p)
    p.add_argument("--weights-as-of", default="now", metavar="now|position-set|TS", help=_WEIGHTS_HELP)
    p.add_argument("--net", action="store_true", help="one row per asset with summed exposures and n_sources")
    add_format(p, ("table", "json", "csv", "parquet"))
    p.add_argument("--out", metavar="F", help="write the output to this file instead of stdout (required for parquet)")
    p.set_defaults(usage_error=_usage_error(p))

    p = tree.command(
        "export",
        export,
        help="write every snapshot as hive-partitioned Parquet",
        description="Write OUT/target_positions/snapshot_date=YYYY-MM-DD/*.parquet: every stored target row, with its "
        "account, allocation and target labels; with --expanded also OUT/target_exposure/...: the look-through rows of "
        "the same snapshots. polars, pyarrow, DuckDB, Spark and Trino read the datasets natively. The export is "
        "staged and moved into place at the end: a failed export leaves nothing behind.",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write the datasets into (created when missing)"
    )
    p.add_argument("--expanded", action="store_true", help="also write the look-through dataset target_exposure")
    p.add_argument(
        "--weights-as-of", default=None, metavar="now|position-set|TS", help=f"with --expanded: {_WEIGHTS_HELP}"
    )
    p.add_argument(
        "--drift",
        action="store_true",
        help="also write drift/ (every active account) and its inputs: accounts, allocations, asset_prices, fx_rates",
    )
    p.add_argument("--drift-as-of", metavar="TS", help="with --drift: the valuation time (default: now)")
    p.add_argument("--overwrite", action="store_true", help="replace datasets that already exist under --out")
    p.add_argument(
        "--account",
        action="append",
        default=None,
        metavar="ID",
        help="export only this account's snapshots (unique identifier or uid; repeat for several)",
    )
    p.add_argument(
        "--from",
        dest="date_from",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="only snapshots on or after this UTC date",
    )
    p.add_argument(
        "--to",
        dest="date_to",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="only snapshots on or before this UTC date",
    )
    add_format(p)
    p.set_defaults(usage_error=_usage_error(p))


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a date as YYYY-MM-DD, got {text!r}") from None


def _usage_error(parser: argparse.ArgumentParser) -> Callable[[str], int]:
    """Report a usage error the way argparse does (usage + message on stderr), returning exit code 2."""

    def report(message: str) -> int:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        return 2

    return report


def weights_as_of(value: str) -> str:
    """``now`` / ``position-set`` as given, or the time checked (naive or unparsable -> exit 1)."""
    if value.strip().lower() in ("now", "position-set"):
        return value.strip().lower()
    parse_utc(value, field="weights_as_of", entity="expansion")
    return value


def _warn_diagnostics(diagnostics: pl.DataFrame) -> None:
    for d in diagnostics.iter_rows(named=True):
        name = d["portfolio"] or d["portfolio_uid"]
        sys.stderr.write(
            f"warning: the composition of portfolio '{name}' at {format_utc(d['weights_time'])} sums to "
            f"{number(d['weight_sum'], decimals=12)}, not 1; expanded as stored (never renormalized)\n"
        )


def _diagnostics_records(diagnostics: pl.DataFrame) -> list[dict[str, Any]]:
    return diagnostics.select("portfolio_uid", "portfolio", "weights_time", "weight_sum").to_dicts()


def _write_file(path: str, write: Callable[[Path], None]) -> None:
    target = Path(path)
    try:
        write(target)
    except OSError as exc:
        raise msm.MsmError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- targets expand ------------------------------------------------------------------------------
def expand(args: argparse.Namespace) -> int | None:
    if args.format == "parquet" and not args.out:
        return args.usage_error("--format parquet writes a file: give --out F")
    asked = weights_as_of(args.weights_as_of)
    store = open_store(args)
    snap = msm.read_snapshot(store, args.account, at=args.at, as_of=args.as_of, allocation=args.allocation)
    targets = msm.read_target_rows(store, [] if snap.is_empty else [snap.position_set_uid])
    result = expand_targets(targets, msm_portfolios.duckdb_weights_source(store), weights_as_of=asked, net=args.net)

    if args.format == "parquet":
        _write_file(args.out, result.rows.write_parquet)
    else:
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            _render(args, snap, targets, result)
        if not args.out:
            sys.stdout.write(buffer.getvalue())
            if args.format != "json":  # in JSON the diagnostics are in the document
                _warn_diagnostics(result.diagnostics)
            return None
        _write_file(args.out, lambda path: path.write_text(buffer.getvalue(), encoding="utf-8"))
    _warn_diagnostics(result.diagnostics)  # the output went to a file: say it here too
    n = result.rows.height
    write_lines(f"wrote {n} {'netted ' if args.net else ''}row{'s' if n != 1 else ''} ({args.format}) to {args.out}")
    return None


def _render(args: argparse.Namespace, snap: msm.Snapshot, targets: pl.DataFrame, result: Expansion) -> None:
    if args.format == "json":
        document: dict[str, Any] = {"rows": result.rows.to_dicts()}
        if result.diagnostics.height:
            document["diagnostics"] = _diagnostics_records(result.diagnostics)
        write_json(document)
    elif args.format == "csv":
        write_csv(result.rows.to_dicts(), result.rows.columns)
    else:
        _expansion_table(args, snap, targets, result)


def _when(args: argparse.Namespace) -> str:
    return f" at {args.at}" if args.at else f" at or before {args.as_of}" if args.as_of else ""


def _expansion_table(args: argparse.Namespace, snap: msm.Snapshot, targets: pl.DataFrame, result: Expansion) -> None:
    account = snap.account["unique_identifier"]
    if snap.is_empty:
        write_lines(f"account {account!r} has no snapshot{_when(args)}; nothing to expand")
        return
    if result.weights_as_of == "position-set":
        weights = "as of the snapshot's own time (position-set)"
    elif result.weights_as_of == "now":
        weights = f"as of now ({format_utc(result.weights_time_bound)})"
    else:
        weights = f"as of {format_utc(result.weights_time_bound)}"
    write_lines(
        f"account {account!r}: snapshot at {format_utc(snap.position_set_time)}, "
        f"look-through{' netted per asset' if args.net else ''}",
        f"allocation {snap.allocation} (uid {snap.account_target_allocation_uid}), "
        f"position set {snap.position_set_uid}",
        f"portfolio weights {weights}",
        "",
    )
    rows = result.rows.to_dicts()
    if args.net:
        write_table(rows, [("asset", "asset"), *_EXPOSURES, ("n_sources", "sources")])
    else:
        names = dict(zip(targets["target_uid"].to_list(), targets["unique_identifier"].to_list(), strict=True))
        for row in rows:
            row["source"] = names.get(row["source_target_uid"], row["source_target_uid"])
        write_table(
            rows,
            [
                ("source_target_type", "source type"),
                ("source", "source"),
                ("asset", "asset"),
                ("portfolio_weight", "portfolio weight"),
                ("weights_time", "weights time"),
                *_EXPOSURES,
            ],
        )
    weight_sum = float(result.rows["weight_notional_exposure"].sum() or 0.0)
    write_lines(
        "",
        f"  rows          {result.rows.height} (from {targets.height} target{'s' if targets.height != 1 else ''})",
        f"  weight sum    {number(weight_sum, decimals=12)}  "
        f"(look-through; the snapshot's is {number(snap.weight_sum, decimals=12)})",
        f"  residual      {number(1.0 - weight_sum, decimals=12)}  (1 - weight sum; unallocated, never renormalized)",
    )


# -- export --------------------------------------------------------------------------------------
def export(args: argparse.Namespace) -> int | None:
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
        from msm.services.export import export_snapshots  # pyarrow.dataset: only an export pays for it

        result = export_snapshots(
            store,
            args.out,
            expanded=args.expanded,
            weights=msm_portfolios.duckdb_weights_source(store),
            weights_as_of=asked,
            overwrite=args.overwrite,
            accounts=args.account,
            date_from=args.date_from,
            date_to=args.date_to,
            drift=args.drift,
            drift_as_of=drift_as_of,
        )
    except OSError as exc:  # --out is a file, not writable, ...: nothing was exported
        raise msm.MsmError(f"cannot export to {args.out}: {exc.strerror or exc}") from None
    diagnostics = result.diagnostics if result.diagnostics is not None else pl.DataFrame()
    if args.format == "json":
        document = result.to_dict()
        if diagnostics.height:
            document["diagnostics"] = _diagnostics_records(diagnostics)
        write_json(document)
        return None
    _warn_diagnostics(diagnostics)
    n = result.snapshots
    write_lines(f"exported {n} snapshot{'s' if n != 1 else ''} to {result.out} (hive-partitioned by snapshot_date)")
    document = result.to_dict()
    write_table(
        [{"dataset": name, **entry} for name, entry in document["datasets"].items()],
        [("dataset", "dataset"), ("rows", "rows"), ("path", "path")],
    )
    if args.expanded:
        write_lines(f"look-through weights as of {asked}")
    return None
