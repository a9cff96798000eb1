"""Holdings and market data: ``msm holdings import|show|history``, ``msm prices|fx import|list|delete``.

Every command goes through the core services (:mod:`msm.services.holdings`,
:mod:`msm.services.marketdata`), the same path as the app and notebooks: the whole file is checked
first, every bad row is reported, and all rows are written in one transaction or none.
"""

from __future__ import annotations

import argparse

import polars as pl

import msm
from msm.timeutil import format_utc, parse_utc
from msm_cli.commands import Arg, Command, Handler, history_command
from msm_cli.context import (
    add_account,
    add_format,
    add_sheet,
    as_of_option,
    at_option,
    formats,
    open_store,
    overwrite_option,
    source_option,
)
from msm_cli.output import Column, counted, write_document, write_lines, write_table

__all__ = ["COMMANDS"]

#: ``FILE``: the file an import reads.
_FILE = Arg("file", metavar="FILE", help="the file (.csv, .json (a list of objects), .parquet or .xlsx)")


# -- holdings ----------------------------------------------------------------------------------------------
def import_holdings(args: argparse.Namespace) -> None:
    """``msm holdings import FILE --at TS``."""
    store = open_store(args)
    result = msm.import_holdings(
        store, args.file, at=args.at, overwrite=args.overwrite, source=args.source, sheet=args.sheet
    )
    document = result.to_dict()
    if write_document(args.format, document):
        return
    replaced = f" ({document['replaced']:,} replaced whole)" if document["replaced"] else ""
    n = document["accounts"]
    write_lines(
        f"imported holdings at {document['holdings_time']} from {args.file}: "
        f"{document['rows']:,} rows, {n:,} account{'s' if n != 1 else ''}{replaced}"
    )


def show(args: argparse.Namespace) -> None:
    """``msm holdings show ACCOUNT [--as-of TS]``."""
    from msm.services.holdings import HOLDINGS_POSITION_COLUMNS

    store = open_store(args)
    holdings = msm.read_holdings(store, args.account, as_of=args.as_of)
    document = holdings.to_dict()
    if write_document(args.format, document, rows="positions", columns=HOLDINGS_POSITION_COLUMNS):
        return
    if holdings.is_empty:
        when = f" at or before {args.as_of}" if args.as_of else ""
        write_lines(f"account {holdings.account['unique_identifier']!r} has no holdings{when}")
        return
    write_lines(
        f"account {holdings.account['unique_identifier']!r}: holdings at {format_utc(holdings.holdings_time)} "
        f"(set {holdings.holdings_set_uid}, source {holdings.source or '-'})",
        "",
    )
    write_table(
        document["positions"],
        [
            "asset",
            "name",
            ("asset_type", "type"),
            "currency",
            ("quantity", "quantity (units)"),
        ],
    )
    write_lines("", f"  rows  {holdings.positions.height}")


def history(args: argparse.Namespace) -> None:
    """``msm holdings history ACCOUNT``."""
    from msm.services.registry import identity

    store = open_store(args)
    account = msm.get_account(store, args.account)
    frame = msm.holdings_history(store, account["uid"])
    sets = frame.select("holdings_set_uid", "holdings_time", pl.col("rows").cast(pl.Int64), "source").to_dicts()
    if write_document(args.format, {"account": identity(account), "sets": sets}):
        return
    write_lines(f"account {account['unique_identifier']!r}: {counted(len(sets), 'holdings set')}")
    write_table(
        sets,
        [("holdings_time", "time"), "rows", "source", ("holdings_set_uid", "holdings set")],
        empty="(no holdings)",
    )


# -- market data ---------------------------------------------------------------------------------------------
def import_prices(args: argparse.Namespace) -> None:
    """``msm prices import FILE [--upsert]``."""
    _report(
        args,
        "prices",
        msm.import_prices(open_store(args), args.file, upsert=args.upsert, source=args.source, sheet=args.sheet),
    )


def import_fx(args: argparse.Namespace) -> None:
    """``msm fx import FILE [--upsert]``."""
    _report(
        args,
        "FX rates",
        msm.import_fx_rates(open_store(args), args.file, upsert=args.upsert, source=args.source, sheet=args.sheet),
    )


def list_prices(args: argparse.Namespace) -> None:
    """``msm prices list [ASSET ...] [--as-of TS] [--history]``."""
    from msm.services.marketdata import PRICE_LIST_COLUMNS

    frame = msm.read_prices(open_store(args), args.assets or None, as_of=args.as_of, history=args.history)
    shown: list[Column] = ["asset", "time", ("price", "price (currency per unit)"), "currency", "source"]
    _listed(args, frame, PRICE_LIST_COLUMNS, shown, noun="prices", per="asset")


def list_fx(args: argparse.Namespace) -> None:
    """``msm fx list [CCY ...] [--as-of TS] [--history]``."""
    from msm.services.marketdata import FX_LIST_COLUMNS

    frame = msm.read_fx_rates(open_store(args), args.currencies or None, as_of=args.as_of, history=args.history)
    frame = frame.with_columns(pair=pl.col("base") + "/" + pl.col("quote"))
    shown: list[Column] = ["pair", "time", ("rate", "rate (quote per base)"), "source"]
    _listed(args, frame, FX_LIST_COLUMNS, shown, noun="fx_rates", per="pair")


def _listed(
    args: argparse.Namespace, frame: pl.DataFrame, columns: tuple[str, ...], shown: list[Column], *, noun: str, per: str
) -> None:
    """A market-data list: JSON ``{"as_of", "history", noun: [...]}``, its rows as CSV, or a table under a headline."""
    as_of = format_utc(parse_utc(args.as_of, field="as_of")) if args.as_of else None
    document = {"as_of": as_of, "history": args.history, noun: frame.select(columns).to_dicts()}
    if write_document(args.format, document, rows=noun, columns=columns):
        return
    label = noun.replace("fx_rates", "FX rates")
    bound = f" at or before {as_of}" if as_of else ""
    which = "every one stored" if args.history else f"the latest of each {per}"
    if frame.height == 0:
        write_lines(f"(no {label}{bound})")
        return
    write_lines(f"{label}: {which}{bound} ({counted(frame.height, 'row')}, {counted(frame[per].n_unique(), per)})")
    write_table(frame.to_dicts(), shown)


def delete_prices(args: argparse.Namespace) -> None:
    """``msm prices delete ASSET... --at TS``."""
    rows = [{"asset": asset, "time": args.at} for asset in args.assets]
    _deleted(args, "price", msm.delete_prices(open_store(args), rows))


def delete_fx(args: argparse.Namespace) -> None:
    """``msm fx delete BASE/QUOTE... --at TS``."""
    pairs = [pair.partition("/") for pair in args.pairs]
    rows = [{"base": base, "quote": quote or None, "time": args.at} for base, _, quote in pairs]
    _deleted(args, "FX rate", msm.delete_fx_rates(open_store(args), rows))


def _deleted(args: argparse.Namespace, noun: str, n: int) -> None:
    if not write_document(args.format, {"deleted": n}):
        write_lines(f"deleted {counted(n, noun)} at {format_utc(parse_utc(args.at, field='at'))}")


def _report(args: argparse.Namespace, what: str, result: msm.ImportResult) -> None:
    if write_document(args.format, result.to_dict()):
        return
    write_lines(
        f"imported {what} from {args.file}: {result.added:,} added, {result.updated:,} updated, "
        f"{result.unchanged:,} unchanged"
    )


def _list_market_data(group: str, handler: Handler, filters: Arg, description: str) -> Command:
    """``msm prices list`` or ``msm fx list``: what is stored, the latest of each by default."""
    return Command(
        f"{group} list",
        handler,
        help=f"list the stored {'prices' if group == 'prices' else 'FX rates'} (the latest of each by default)",
        description=description,
        options=(
            filters,
            as_of_option("the latest at or before this time, ISO-8601 with a UTC offset (default: the latest)"),
            Arg("--history", action="store_true", help="every one stored (up to --as-of), not only the latest"),
            formats("table", "json", "csv"),
        ),
    )


def _delete_market_data(group: str, handler: Handler, keys: Arg, what: str) -> Command:
    """``msm prices delete`` or ``msm fx delete``: stored values at one time, removed (the audit trail keeps them)."""
    return Command(
        f"{group} delete",
        handler,
        writes=True,
        help=f"delete stored {what} at one time (a wrong import)",
        description=f"Delete the stored {what} of the keys given at --at, all in one transaction, or none: a key "
        "that names nothing stored at that time (or is given twice) is refused, naming each. The audit trail "
        "keeps every deleted value (msm audit --action delete). Valuations at or after --at then use the "
        "latest earlier one.",
        options=(keys, at_option("the time of the values to delete, ISO-8601 with a UTC offset"), add_format),
    )


def _import_market_data(group: str, what: str, columns: str, key: str, handler: Handler) -> Command:
    """``msm prices import`` or ``msm fx import``: one market-data file, added (or upserted) whole."""
    return Command(
        f"{group} import",
        handler,
        writes=True,
        group_help=f"{what} for valuation",
        help=f"add (or with --upsert replace) {what} from a file",
        description=f"Import {what} from a CSV, JSON, Parquet or Excel file with the columns {columns}, and an "
        "optional source. Times carry a UTC offset; currencies are ISO codes in upper case (USD). The whole file "
        "is checked first and every bad row is reported; then all rows are written in one transaction, or none. "
        f"A row whose key ({key}) is stored already is refused unless --upsert.",
        options=(
            _FILE,
            Arg("--upsert", action="store_true", help="replace stored rows with the same key (default: refuse)"),
            add_sheet,
            source_option("provenance recorded where the file has no source cell"),
            add_format,
        ),
    )


_GROUP_HELP = "what accounts hold (import a file, show, history)"
COMMANDS = (
    Command(
        "holdings import",
        import_holdings,
        writes=True,
        group_help=_GROUP_HELP,
        help="store holdings of one or many accounts from a file",
        description="Import holdings from a CSV, JSON, Parquet or Excel file with the columns account, asset, quantity "
        "(units held, finite and >= 0) and an optional metadata_json, for any number of accounts, all at the time "
        "--at. The whole file is checked first and every bad row is reported; then one holdings set per account is "
        "written, all in one transaction, or nothing. A set that exists at that time is refused unless --overwrite, "
        "which replaces the whole set.",
        options=(
            _FILE,
            at_option("holdings time, ISO-8601 with a UTC offset"),
            overwrite_option("replace the whole set of an account that has one at --at"),
            add_sheet,
            source_option("provenance recorded on each set (default: cli)", default="cli"),
            add_format,
        ),
    ),
    Command(
        "holdings show",
        show,
        help="show an account's holdings",
        description="Show the account's latest holdings set, or the latest at or before --as-of.",
        options=(
            add_account,
            as_of_option("the latest set at or before this time (default: the latest)"),
            formats("table", "json", "csv"),
        ),
    ),
    history_command("holdings", history, "holdings set of an account", add_account, add_format),
    _import_market_data(
        "prices",
        "asset prices",
        "asset, time, price, currency (a price is in `currency` per unit)",
        "asset, time",
        import_prices,
    ),
    _import_market_data(
        "fx", "FX rates", "base, quote, time, rate (1 base = rate quote)", "base, quote, time", import_fx
    ),
    _delete_market_data(
        "prices",
        delete_prices,
        Arg("assets", nargs="+", metavar="ASSET", help="the assets whose price to delete (unique identifier or uid)"),
        "asset prices",
    ),
    _delete_market_data(
        "fx",
        delete_fx,
        Arg("pairs", nargs="+", metavar="BASE/QUOTE", help="the pairs whose rate to delete, as stored (EUR/USD)"),
        "FX rates",
    ),
    _list_market_data(
        "prices",
        list_prices,
        Arg("assets", nargs="*", metavar="ASSET", help="only these assets (unique identifier or uid; default: all)"),
        "List stored asset prices: the latest price of each asset, which is the one a valuation (msm drift) at "
        "--as-of uses, or with --history every price. A price is in its currency per unit of the asset. A cash "
        "asset takes no price (it is worth 1 of its currency) and is not listed.",
    ),
    _list_market_data(
        "fx",
        list_fx,
        Arg("currencies", nargs="*", metavar="CCY", help="only pairs with one of these ISO codes on either side"),
        "List stored FX rates (1 base = rate quote): the latest rate of each pair, which is the one a valuation "
        "(msm drift) at --as-of uses, directly or inverted, or with --history every rate.",
    ),
)
