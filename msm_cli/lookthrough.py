"""Look-through: ``msm targets expand``, and what the look-through commands share.

A command expands on explicit request only, through the one look-through entry
:func:`msm_portfolios.look_through` (``msm export --expanded``: :func:`msm_portfolios.export_snapshots`,
see :mod:`msm_cli.export`); nothing is ever written back to ``target_positions``. Compositions
whose weights do not sum to 1 are expanded as stored and reported: in the JSON document
(``"diagnostics"``, present only when there is something to report), and as ``warning:`` lines on
stderr whenever the report is not in a JSON document on stdout.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.timeutil import format_utc, parse_utc
from msm_cli.commands import Arg, Command
from msm_cli.context import (
    OUT_FILE,
    add_snapshot_choice,
    add_usage_error,
    formats,
    open_store,
    read_chosen_snapshot,
)
from msm_cli.output import number, write_csv, write_json, write_lines, write_table

__all__ = [
    "COMMANDS",
    "WEIGHTS_HELP",
    "diagnostics_records",
    "warn_diagnostics",
    "weights_as_of",
    "write_file",
    "write_output",
]

#: The help of ``--weights-as-of`` (``targets expand`` and ``export``).
WEIGHTS_HELP = (
    "which composition each portfolio target uses: 'now' (the latest; default), 'position-set' (the latest at or "
    "before each snapshot's own time), or a time TS with a UTC offset (the latest at or before TS)"
)
_EXPOSURES = (
    ("weight_notional_exposure", "weight"),
    ("constant_notional_exposure", "notional"),
    ("single_asset_quantity", "quantity"),
)
_LINEAGE = (
    ("source_target_type", "source type"),
    "source",
    "asset",
    ("portfolio_weight", "portfolio weight"),
    ("weights_time", "weights time"),
    *_EXPOSURES,
)


def weights_as_of(value: str) -> str:
    """``now`` / ``position-set`` as given, or the time checked (naive or unparsable -> exit 1)."""
    if value.strip().lower() in ("now", "position-set"):
        return value.strip().lower()
    parse_utc(value, field="weights_as_of", entity="expansion")
    return value


def warn_diagnostics(diagnostics: pl.DataFrame) -> None:
    """One ``warning:`` line on stderr per composition whose weights do not sum to 1."""
    for d in diagnostics.iter_rows(named=True):
        name = d["portfolio"] or d["portfolio_uid"]
        sys.stderr.write(
            f"warning: the composition of portfolio '{name}' at {format_utc(d['weights_time'])} sums to "
            f"{number(d['weight_sum'], decimals=12)}, not 1; expanded as stored (never renormalized)\n"
        )


def diagnostics_records(diagnostics: pl.DataFrame) -> list[dict[str, Any]]:
    """The diagnostics as the JSON document's ``"diagnostics"`` list."""
    return diagnostics.select("portfolio_uid", "portfolio", "weights_time", "weight_sum").to_dicts()


def write_file(path: str, write: Callable[[Path], None]) -> None:
    """Write an output file through ``write``; a path that cannot be written is an msm error, not a traceback."""
    target = Path(path)
    try:
        write(target)
    except OSError as exc:
        raise msm.MsmError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_output(
    args: argparse.Namespace,
    render: Callable[[], None],
    *,
    parquet: Callable[[Path], None],
    diagnostics: pl.DataFrame | None,
    json_has_diagnostics: bool = False,
) -> bool:
    """A command's output, where ``--format`` and ``--out`` say; True when it went to the file ``--out``.

    ``parquet`` writes the ``--format parquet`` file; any other format is what ``render`` prints,
    to stdout or (with ``--out``) to the file. The ``diagnostics`` (compositions not summing to 1)
    are warned on stderr, except on stdout in JSON when ``json_has_diagnostics`` (the document
    holds them). The caller says what a file holds.
    """
    if args.format == "parquet":
        write_file(args.out, parquet)
    else:
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            render()
        if not args.out:
            sys.stdout.write(buffer.getvalue())
            if diagnostics is not None and not (json_has_diagnostics and args.format == "json"):
                warn_diagnostics(diagnostics)
            return False
        write_file(args.out, lambda path: path.write_text(buffer.getvalue(), encoding="utf-8"))
    if diagnostics is not None:
        warn_diagnostics(diagnostics)  # the output went to a file: say it here too
    return True


# -- targets expand ------------------------------------------------------------------------------
def expand(args: argparse.Namespace) -> int | None:
    """``msm targets expand``: one snapshot looked through, as rows (with lineage) or netted per asset."""
    if args.format == "parquet" and not args.out:
        return args.usage_error("--format parquet writes a file: give --out F")
    asked = weights_as_of(args.weights_as_of)
    store = open_store(args)
    snap = read_chosen_snapshot(store, args)
    view = msm_portfolios.look_through(store, snap, weights_as_of=asked)
    rows = view.net if args.net else view.rows
    render = partial(_render, args, snap, view, rows)
    if not write_output(
        args, render, parquet=rows.write_parquet, diagnostics=view.diagnostics, json_has_diagnostics=True
    ):
        return None
    n = rows.height
    write_lines(f"wrote {n} {'netted ' if args.net else ''}row{'s' if n != 1 else ''} ({args.format}) to {args.out}")
    return None


def _render(args: argparse.Namespace, snap: msm.Snapshot, view: msm_portfolios.LookThrough, rows: pl.DataFrame) -> None:
    if args.format == "json":
        document: dict[str, Any] = {"rows": rows.to_dicts()}
        if view.diagnostics.height:
            document["diagnostics"] = diagnostics_records(view.diagnostics)
        write_json(document)
    elif args.format == "csv":
        write_csv(rows.to_dicts(), rows.columns)
    else:
        _expansion_table(args, snap, view, rows)


def _when(args: argparse.Namespace) -> str:
    return f" at {args.at}" if args.at else f" at or before {args.as_of}" if args.as_of else ""


def _weights_text(view: msm_portfolios.LookThrough) -> str:
    if view.weights_as_of == "position-set":
        return "as of the snapshot's own time (position-set)"
    if view.weights_as_of == "now":
        return f"as of now ({format_utc(view.weights_time_bound)})"
    return f"as of {format_utc(view.weights_time_bound)}"


def _expansion_table(
    args: argparse.Namespace, snap: msm.Snapshot, view: msm_portfolios.LookThrough, rows: pl.DataFrame
) -> None:
    account = snap.account["unique_identifier"]
    if snap.is_empty:
        write_lines(f"account {account!r} has no snapshot{_when(args)}; nothing to expand")
        return
    netted = " netted per asset" if args.net else ""
    write_lines(
        f"account {account!r}: snapshot at {format_utc(snap.position_set_time)}, look-through{netted}",
        f"allocation {snap.allocation} (uid {snap.account_target_allocation_uid}), "
        f"position set {snap.position_set_uid}",
        f"portfolio weights {_weights_text(view)}",
        "",
    )
    if args.net:
        write_table(view.net.to_dicts(), ["asset", *_EXPOSURES, ("n_sources", "sources")])
    else:
        columns = list(_LINEAGE)
        if rows.height and (rows["depth"].max() or 0) > 1:  # nested portfolios: show each row's path
            columns.insert(2, "path")
        write_table(view.lineage.to_dicts(), columns)
    n_targets = view.targets.height
    weight_sum = float(rows["weight_notional_exposure"].sum() or 0.0)
    write_lines(
        "",
        f"  rows          {rows.height} (from {n_targets} target{'s' if n_targets != 1 else ''})",
        f"  weight sum    {number(weight_sum, decimals=12)}  (look-through; the snapshot's is "
        f"{number(snap.weight_sum, decimals=12)})",
        f"  residual      {number(1.0 - weight_sum, decimals=12)}  (1 - weight sum; unallocated, never renormalized)",
    )


COMMANDS = (
    Command(
        "targets expand",
        expand,
        help="look-through: a snapshot's portfolio targets expanded to asset exposure",
        description="Expand the account's latest snapshot (or the one exactly at --at, or the latest at or before "
        "--as-of): asset targets pass through; each portfolio target becomes one row per constituent of the "
        "portfolio's composition at the weights time, its weight and notional exposures multiplied by the "
        "constituent weight. --net sums the rows per asset. Nothing is stored.",
        options=(
            add_snapshot_choice,
            Arg("--weights-as-of", default="now", metavar="now|position-set|TS", help=WEIGHTS_HELP),
            Arg("--net", action="store_true", help="one row per asset with summed exposures and n_sources"),
            formats("table", "json", "csv", "parquet"),
            OUT_FILE,
            add_usage_error,
        ),
    ),
)
