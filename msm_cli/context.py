"""What every command needs: the database (checked, never created by accident) and shared options.

The shared options are :data:`msm_cli.commands.Option` values (``add_account``, ``formats("table",
"json", "csv")``, :data:`OUT_FILE`, ...): a command's declaration lists them beside its own
:class:`~msm_cli.commands.Arg` options, so an option that recurs is written here once. An option
that recurs with its own help text in each command (``--at TS``, ``--as-of TS``, ``--overwrite``,
``--percent``, ``--source S``) has a builder taking that text: ``at_option("the draft's time")``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import msm
import msm_portfolios
from msm.store import MigrationSet
from msm_cli.commands import Arg, Option

__all__ = [
    "ALLOCATION",
    "OUT_FILE",
    "add_account",
    "add_accounts_choice",
    "add_format",
    "add_portfolio",
    "add_rows_file",
    "add_sheet",
    "add_usage_error",
    "as_of_option",
    "at_option",
    "bad_accounts_choice",
    "formats",
    "migration_sets",
    "open_store",
    "overwrite_option",
    "passed",
    "percent_option",
    "read_chosen_snapshot",
    "source_option",
    "usage_error",
]


def migration_sets() -> tuple[MigrationSet, ...]:
    """Every migration namespace the workbench uses, in order (``msm``, then ``msm_portfolios``)."""
    return tuple(msm_portfolios.MIGRATIONS)


def open_store(args: argparse.Namespace) -> msm.Store:
    """The ``--db`` store, after checking that it exists and has every migration.

    Raises :class:`msm.SchemaError` (exit 1) when the file does not exist or needs ``msm init``;
    checking first also means a command never creates an empty database file as a side effect.
    Under ``main`` the file stays open until the command ends (``args.held``, an ExitStack).
    """
    store = msm.Store(args.db)
    held = getattr(args, "held", None)
    if held is not None and store.exists:
        # One open of the file for the whole command (its services reuse the connection), so a busy
        # file costs one retry budget, not one per step; `main` releases it when the command ends.
        held.enter_context(store.connect())
    msm.check_schema(store, migration_sets())
    return store


def add_format(parser: argparse.ArgumentParser, choices: Sequence[str] = ("table", "json")) -> None:
    """``--format`` with ``choices`` (the first is the default)."""
    parser.add_argument(
        "--format",
        choices=tuple(choices),
        default=choices[0],
        help=f"output format (default: {choices[0]})",
    )


def formats(*choices: str) -> Option:
    """``--format`` with ``choices`` (the first is the default), as an option of a command's declaration."""
    return partial(add_format, choices=choices)


def add_snapshot_choice(parser: argparse.ArgumentParser) -> None:
    """``ACCOUNT [--at TS | --as-of TS] [--allocation ID]``: which snapshot a command works on."""
    add_account(parser)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="TS", help="the snapshot exactly at this time")
    when.add_argument("--as-of", metavar="TS", help="the latest snapshot at or before this time")
    parser.add_argument("--allocation", metavar="ID", help="only this target allocation")
    add_include_drafts(parser)


def passed(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` as keyword arguments, for a service that takes them by the same names."""
    return {name: getattr(args, name) for name in names}


def read_chosen_snapshot(store: msm.Store, args: argparse.Namespace) -> msm.Snapshot:
    """The snapshot :func:`add_snapshot_choice` asked for: the latest, the one ``--at`` or the latest ``--as-of``."""
    return msm.read_snapshot(store, args.account, **passed(args, "at", "as_of", "allocation", "include_drafts"))


def add_accounts_choice(parser: argparse.ArgumentParser) -> None:
    """``ACCOUNT... | --all [--as-of TS]``: which accounts a valuation command works on, and when."""
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account unique identifiers or uids")
    parser.add_argument("--all", action="store_true", help="every active account")
    parser.add_argument("--as-of", metavar="TS", help="valuation time, ISO-8601 with a UTC offset (default: now)")
    add_include_drafts(parser)


def bad_accounts_choice(args: argparse.Namespace) -> str | None:
    """What is wrong with the accounts asked (:func:`add_accounts_choice`) or a parquet output without ``--out``."""
    if bool(args.accounts) == bool(args.all):
        return "name one or more accounts, or give --all (not both)"
    if args.format == "parquet" and not args.out:
        return "--format parquet writes a file: give --out F"
    return None


def add_account(parser: argparse.ArgumentParser) -> None:
    """``ACCOUNT``: the one account a command works on."""
    parser.add_argument("account", metavar="ACCOUNT", help="account unique identifier or uid")


def add_portfolio(parser: argparse.ArgumentParser) -> None:
    """``ID``: the one portfolio a command works on."""
    parser.add_argument("portfolio", metavar="ID", help="portfolio unique identifier or uid")


def add_sheet(parser: argparse.ArgumentParser) -> None:
    """``--sheet NAME``: which sheet of an Excel file to read."""
    parser.add_argument("--sheet", metavar="NAME", help="Excel: the sheet to read (default: the first)")


def add_rows_file(parser: argparse.ArgumentParser) -> None:
    """``--file F [--sheet NAME]``: the file a command reads its rows from."""
    parser.add_argument(
        "--file", required=True, metavar="F", help="rows: a .csv, .json (list of objects), .parquet or .xlsx file"
    )
    add_sheet(parser)


def add_include_drafts(parser: argparse.ArgumentParser) -> None:
    """``--include-drafts``: a read sees draft snapshots too (by default it sees published ones only)."""
    parser.add_argument(
        "--include-drafts",
        action="store_true",
        help="see draft snapshots too (default: published snapshots only; see `msm targets drafts`)",
    )


#: ``--allocation ID``: which of the account's target allocations (a write or a read of one snapshot).
ALLOCATION = Arg("--allocation", metavar="ID", help="target allocation (default: the account's active ones)")
#: ``--out F``: a report written to a file (``--format parquet`` needs one).
OUT_FILE = Arg("--out", metavar="F", help="write the output to this file instead of stdout (required for parquet)")


def at_option(help: str) -> Arg:
    """``--at TS`` (required): the one time a write or a read of one stored set is at."""
    return Arg("--at", required=True, metavar="TS", help=help)


def as_of_option(help: str) -> Arg:
    """``--as-of TS``: a read of the latest set at or before a time."""
    return Arg("--as-of", metavar="TS", help=help)


def overwrite_option(help: str) -> Arg:
    """``--overwrite``: a write replaces what is stored already (by default it is refused)."""
    return Arg("--overwrite", action="store_true", help=help)


def percent_option(help: str) -> Arg:
    """``--percent``: the file's weights are in percent, divided by 100 (never renormalized)."""
    return Arg("--percent", action="store_true", help=help)


def source_option(help: str, *, default: str | None = None) -> Arg:
    """``--source S``: the provenance a write records."""
    return Arg("--source", default=default, metavar="S", help=help)


def usage_error(parser: argparse.ArgumentParser) -> Callable[[str], int]:
    """Report a usage error the way argparse does (usage + message on stderr), returning exit code 2."""

    def report(message: str) -> int:
        """Print ``message`` as argparse prints a usage error; exit code 2."""
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        return 2

    return report


def add_usage_error(parser: argparse.ArgumentParser) -> None:
    """``args.usage_error(message)``: the command reports a usage error found after parsing (exit code 2)."""
    parser.set_defaults(usage_error=usage_error(parser))
