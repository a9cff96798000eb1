"""Reference data: ``msm assets|portfolios|groups|accounts|models|allocations add|list|import``.

``add`` prints what it created with its uid (``--format json``: the stored row); ``list`` prints
a table (``--format json``: ``{"<entities>": [rows]}``, ordered by business key); ``import FILE``
loads a whole file through :func:`msm.import_reference` (``--format json``:
``{"added": N, "updated": N, "unchanged": N}``).
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import msm
from msm_cli.commands import CommandTree
from msm_cli.context import add_format, open_store
from msm_cli.output import frame_records, write_json, write_lines, write_table

__all__ = ["register"]


def register(tree: CommandTree) -> None:
    # -- assets ----------------------------------------------------------------------------------
    help_ = "single instruments a target can name"
    p = tree.subcommand("assets", "add", add_asset, help="add an asset", group_help=help_)
    p.add_argument("id", metavar="ID", help="unique identifier, e.g. BTC")
    p.add_argument("--name", help="display name, e.g. Bitcoin")
    p.add_argument("--ticker", help="ticker, e.g. BTC")
    p.add_argument("--type", dest="asset_type", metavar="X", help="asset type, e.g. crypto (never 'portfolio')")
    add_format(p)
    add_format(tree.subcommand("assets", "list", list_assets, help="list assets"))

    # -- portfolios ------------------------------------------------------------------------------
    help_ = "constructed portfolios a target can name"
    p = tree.subcommand("portfolios", "add", add_portfolio, help="add a portfolio", group_help=help_)
    p.add_argument("id", metavar="ID", help="unique identifier, e.g. CRYPTO-MAJORS-EW")
    p.add_argument("--name", help="portfolio name, e.g. 'Crypto Majors EW'")
    add_format(p)
    add_format(tree.subcommand("portfolios", "list", list_portfolios, help="list portfolios"))

    # -- accounts --------------------------------------------------------------------------------
    help_ = "the holders of target allocations"
    p = tree.subcommand(
        "accounts",
        "add",
        add_account,
        group_help=help_,
        help="add an account (active)",
        description="Add an active account. --group names an account group; it is created when it does not exist yet "
        "(the output says so).",
    )
    p.add_argument("id", metavar="ID", help="unique identifier, e.g. ACC-001")
    p.add_argument("--name", required=True, help="account name")
    p.add_argument("--group", metavar="G", help="account group name (created when missing) or uid")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--paper", dest="is_paper", action="store_true", default=True, help="a paper account (default)")
    mode.add_argument("--live", dest="is_paper", action="store_false", help="a live account")
    add_format(p)
    add_format(tree.subcommand("accounts", "list", list_accounts, help="list accounts"))

    # -- allocation models -----------------------------------------------------------------------
    help_ = "allocation models (strategies) a target allocation follows"
    p = tree.subcommand("models", "add", add_model, help="add an allocation model", group_help=help_)
    p.add_argument("name", metavar="NAME", help="allocation model name (unique)")
    p.add_argument("--description", metavar="D", help="description")
    add_format(p)
    add_format(tree.subcommand("models", "list", list_models, help="list allocation models"))

    # -- target allocations ----------------------------------------------------------------------
    help_ = "account target allocations (account -> allocation model)"
    p = tree.subcommand("allocations", "add", add_allocation, help="add an active target allocation", group_help=help_)
    p.add_argument("id", metavar="ID", help="unique identifier, e.g. ACC-001-CORE")
    p.add_argument("--account", required=True, metavar="A", help="account unique identifier or uid")
    p.add_argument("--model", required=True, metavar="M", help="allocation model name or uid")
    p.add_argument("--display-name", metavar="N", help="display name")
    add_format(p)
    p = tree.subcommand("allocations", "list", list_allocations, help="list target allocations")
    p.add_argument("--account", metavar="A", help="only this account's allocations (unique identifier or uid)")
    add_format(p)

    # -- account groups --------------------------------------------------------------------------
    help_ = "account groups (accounts name theirs in a `group` column)"
    add_format(tree.subcommand("groups", "list", list_groups, help="list account groups", group_help=help_))

    # -- bulk import: one command per entity ----------------------------------------------------
    for group, entity in IMPORTS.items():
        spec = msm.BULK_ENTITIES[entity]
        columns = ", ".join(c.name + ("*" if c.required else "") for c in spec.columns)
        p = tree.subcommand(
            group,
            "import",
            import_file,
            help=f"add (or with --upsert update) {entity.replace('_', ' ')} from a file",
            description=f"Import {entity.replace('_', ' ')} from a CSV, JSON (a list of objects), Parquet or Excel (.xlsx) file "
            f"with the columns {columns} (* required). The whole file is checked first and every bad row is reported; then "
            "all rows are written in one transaction, or none. Empty cells are not given: a new row gets the default, an "
            "existing row (with --upsert) keeps its value.",
        )
        p.set_defaults(entity=entity)
        p.add_argument("file", metavar="FILE", help="the file (.csv, .json, .parquet or .xlsx)")
        p.add_argument("--upsert", action="store_true", help="update rows whose key exists (default: refuse them)")
        p.add_argument("--sheet", metavar="NAME", help="Excel: the sheet to read (default: the first)")
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="check the file against the database and say what would change; write nothing",
        )
        add_format(p)


#: ``msm GROUP import`` -> the entity it imports (msm.BULK_ENTITIES).
IMPORTS = {
    "assets": "assets",
    "portfolios": "portfolios",
    "groups": "account_groups",
    "accounts": "accounts",
    "models": "allocation_models",
    "allocations": "allocations",
}


def _created(args: argparse.Namespace, entity: str, key: str, row: dict[str, Any], *notes: str) -> None:
    if args.format == "json":
        write_json(row)
    else:
        write_lines(*notes, f"added {entity} {row[key]!r} (uid {row['uid']})")


# -- add -----------------------------------------------------------------------------------------
def add_asset(args: argparse.Namespace) -> None:
    store = open_store(args)
    row = msm.add_asset(store, args.id, name=args.name, ticker=args.ticker, asset_type=args.asset_type)
    _created(args, "asset", "unique_identifier", row)


def add_portfolio(args: argparse.Namespace) -> None:
    store = open_store(args)
    row = msm.add_portfolio(store, args.id, portfolio_name=args.name)
    _created(args, "portfolio", "unique_identifier", row)


def add_account(args: argparse.Namespace) -> None:
    store = open_store(args)
    group, created_group = None, False
    if args.group is not None:
        try:
            group = msm.get_account_group(store, args.group)
        except msm.NotFoundError:
            if _is_uuid(args.group):  # a uid names an existing group; never invent a group named like one
                raise
            group, created_group = msm.add_account_group(store, args.group), True
    try:
        row = msm.add_account(
            store, args.id, account_name=args.name, is_paper=args.is_paper, group=group["uid"] if group else None
        )
    except BaseException:
        if created_group:  # leave the database as it was: no orphan group from a refused account
            msm.delete_account_group(store, group["uid"])
        raise
    if args.format == "json":
        write_json(
            {
                **row,
                "account_group": None
                if group is None
                else {"uid": group["uid"], "group_name": group["group_name"], "created": created_group},
            }
        )
        return
    notes = [f"created account group {group['group_name']!r} (uid {group['uid']})"] if created_group else []
    _created(args, "account", "unique_identifier", row, *notes)


def add_model(args: argparse.Namespace) -> None:
    store = open_store(args)
    row = msm.add_allocation_model(store, args.name, allocation_model_description=args.description)
    _created(args, "allocation model", "allocation_model_name", row)


def add_allocation(args: argparse.Namespace) -> None:
    store = open_store(args)
    row = msm.add_allocation(store, args.id, account=args.account, model=args.model, display_name=args.display_name)
    _created(args, "target allocation", "unique_identifier", row)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# -- list ----------------------------------------------------------------------------------------
def _listed(args: argparse.Namespace, key: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    if args.format == "json":
        write_json({key: rows})
    else:
        write_table(rows, columns, empty=f"(no {key})")


def _mode(row: dict[str, Any]) -> str:
    return "paper" if row["is_paper"] else "live"


def list_assets(args: argparse.Namespace) -> None:
    rows = frame_records(msm.list_assets(open_store(args)))
    _listed(
        args,
        "assets",
        rows,
        [
            ("unique_identifier", "asset"),
            ("name", "name"),
            ("ticker", "ticker"),
            ("asset_type", "type"),
            ("uid", "uid"),
        ],
    )


def list_portfolios(args: argparse.Namespace) -> None:
    rows = frame_records(msm.list_portfolios(open_store(args)))
    _listed(args, "portfolios", rows, [("unique_identifier", "portfolio"), ("portfolio_name", "name"), ("uid", "uid")])


def list_accounts(args: argparse.Namespace) -> None:
    store = open_store(args)
    groups = {g["uid"]: g["group_name"] for g in msm.list_account_groups(store).iter_rows(named=True)}
    rows = [{**r, "account_group": groups.get(r["account_group_uid"])} for r in frame_records(msm.list_accounts(store))]
    if args.format == "json":
        write_json({"accounts": rows})
        return
    write_table(
        [{**r, "mode": _mode(r)} for r in rows],
        [
            ("unique_identifier", "account"),
            ("account_name", "name"),
            ("mode", "mode"),
            ("account_is_active", "active"),
            ("account_group", "group"),
            ("uid", "uid"),
        ],
        empty="(no accounts)",
    )


def list_models(args: argparse.Namespace) -> None:
    rows = frame_records(msm.list_allocation_models(open_store(args)))
    _listed(
        args,
        "models",
        rows,
        [("allocation_model_name", "model"), ("allocation_model_description", "description"), ("uid", "uid")],
    )


def list_allocations(args: argparse.Namespace) -> None:
    store = open_store(args)
    accounts = {a["uid"]: a["unique_identifier"] for a in msm.list_accounts(store).iter_rows(named=True)}
    models = {m["uid"]: m["allocation_model_name"] for m in msm.list_allocation_models(store).iter_rows(named=True)}
    rows = [
        {
            **r,
            "account": accounts.get(r["account_uid"]),
            "allocation_model": models.get(r["account_allocation_model_uid"]),
        }
        for r in frame_records(msm.list_allocations(store, account=args.account))
    ]
    _listed(
        args,
        "allocations",
        rows,
        [
            ("unique_identifier", "allocation"),
            ("account", "account"),
            ("allocation_model", "model"),
            ("is_active", "active"),
            ("display_name", "display name"),
            ("uid", "uid"),
        ],
    )


def list_groups(args: argparse.Namespace) -> None:
    rows = frame_records(msm.list_account_groups(open_store(args)))
    _listed(args, "groups", rows, [("group_name", "group"), ("group_description", "description"), ("uid", "uid")])


# -- import ----------------------------------------------------------------------------------------
def import_file(args: argparse.Namespace) -> None:
    store = open_store(args)
    result = msm.import_reference(
        store, args.entity, args.file, upsert=args.upsert, dry_run=args.dry_run, sheet=args.sheet
    )
    if args.format == "json":
        write_json(result.to_dict())
        return
    what = args.entity.replace("_", " ")
    if args.dry_run:
        write_lines(
            f"dry run, nothing written: {result.added:,} {what} would be added, {result.updated:,} updated, "
            f"{result.unchanged:,} unchanged"
        )
    else:
        write_lines(
            f"imported {what} from {args.file}: {result.added:,} added, {result.updated:,} updated, {result.unchanged:,} unchanged"
        )
