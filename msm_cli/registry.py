"""Reference data: ``msm assets|portfolios|groups|accounts|models|allocations add|list|import``.

Every command here is derived from the entity catalog (:mod:`msm.catalog`): an entity's command
group, its ``add`` arguments (a field's ``flag``), its ``list`` table (a field's ``heading``) and
its ``import`` file columns. ``add`` prints what it created with its uid (``--format json``: the
stored row); ``list`` prints a table (``--format json``: ``{"<entities>": [rows]}``, ordered by
business key, each reference's key beside its uid); ``import FILE`` loads a whole file through
:func:`msm.import_reference` (``--format json``: ``{"added": N, "updated": N, "unchanged": N}``).

A reference to an entity that has no ``add`` command of its own (an account's ``--group``) creates
the referenced row when it does not exist yet, and says so; both rows are written in one
transaction, so a refused add creates neither.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import msm
from msm.catalog import CATALOG, Catalog, Entity
from msm.catalog import Field as CatalogField
from msm_cli.commands import Arg, Command, CommandTree
from msm_cli.context import add_format, add_sheet, open_store, passed
from msm_cli.output import frame_records, write_document, write_lines, write_table

__all__ = ["COMMANDS", "commands", "register"]

#: ``msm allocations list --account A``: the one listing with a filter (:func:`msm.list_allocations`).
_ACCOUNT_FILTER = Arg("--account", metavar="A", help="only this account's allocations (unique identifier or uid)")


def commands(catalog: Catalog = CATALOG) -> tuple[Command, ...]:
    """Every entity's ``add``, ``list`` and ``import`` commands, as ``catalog`` describes them."""
    declared: list[Command] = []
    for entity in catalog:
        defaults = {"registry_entity": entity, "catalog": catalog}
        if entity.add_help is not None:
            flags = [partial(_add_argument, field=f) for f in entity.fields if f.flag is not None]
            declared.append(
                Command(
                    f"{entity.command} add",
                    add_row,
                    writes=True,
                    help=entity.add_help or "",
                    description=entity.add_description,
                    group_help=entity.command_help,
                    options=(*flags, add_format),
                    defaults=defaults,
                )
            )
        account_filter = (_ACCOUNT_FILTER,) if entity.table == "account_target_allocation" else ()
        declared.append(
            Command(
                f"{entity.command} list",
                list_rows,
                help=f"list {entity.title.lower()}",
                group_help=entity.command_help,
                options=(*account_filter, add_format),
                defaults=defaults,
            )
        )
    declared.extend(_import_command(entity, catalog) for entity in catalog)
    return tuple(declared)


def register(tree: CommandTree, catalog: Catalog = CATALOG) -> None:
    """Add the commands of ``catalog`` (:func:`commands`) to ``tree``."""
    tree.add(*commands(catalog))


def _add_argument(parser: argparse.ArgumentParser, field: CatalogField) -> None:
    flag = field.flag
    assert flag is not None
    if flag.positional:
        parser.add_argument(field.name, metavar=flag.shown, help=flag.help)
    elif field.kind == "bool" and flag.negative:
        both = parser.add_mutually_exclusive_group()
        both.add_argument(flag.name, dest=field.name, action="store_true", default=field.default, help=flag.help)
        both.add_argument(flag.negative, dest=field.name, action="store_false", help=flag.negative_help)
    elif field.kind == "bool":
        parser.add_argument(
            flag.name, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default, help=flag.help
        )
    else:
        parser.add_argument(
            flag.name,
            dest=field.name,
            metavar=flag.shown,
            required=field.required,
            default=field.default,
            help=flag.help + (f" (default {field.default})" if field.default is not None else ""),
        )


def _import_command(entity: Entity, catalog: Catalog) -> Command:
    """``msm COMMAND import FILE``: the entity's bulk import."""
    what = entity.plural.replace("_", " ")
    columns = ", ".join(f.name + ("*" if f.required else "") for f in entity.fields)
    return Command(
        f"{entity.command} import",
        import_file,
        writes=True,
        help=f"add (or with --upsert update) {what} from a file",
        description=f"Import {what} from a CSV, JSON (a list of objects), Parquet or Excel (.xlsx) file "
        f"with the columns {columns} (* required). The whole file is checked first and every bad row is reported; then "
        "all rows are written in one transaction, or none. Empty cells are not given: a new row gets the default, an "
        "existing row (with --upsert) keeps its value.",
        options=(
            Arg("file", metavar="FILE", help="the file (.csv, .json, .parquet or .xlsx)"),
            Arg("--upsert", action="store_true", help="update rows whose key exists (default: refuse them)"),
            add_sheet,
            Arg(
                "--dry-run",
                action="store_true",
                help="check the file against the database and say what would change; write nothing",
            ),
            add_format,
        ),
        defaults={"import_name": entity.plural, "catalog": catalog},
    )


def _services(entity: Entity, catalog: Catalog) -> Any:
    """The registry services of ``entity``, imported on first use (``msm --help`` does not pay for them)."""
    from msm.services.registry import services

    return services(entity, catalog)


# -- add -----------------------------------------------------------------------------------------
def _find_or_create(store: msm.Store, target: Entity, catalog: Catalog, ref: str) -> tuple[dict[str, Any], bool]:
    """The ``target`` row named ``ref`` (key or uid), created when missing; whether it was created.

    A uid names an existing row: a row keyed like a uid is never invented.
    """
    from msm.rules import is_uuid_text

    found = _services(target, catalog)
    try:
        return found.get(store, ref), False
    except msm.NotFoundError:
        if is_uuid_text(ref):
            raise
        return found.add(store, ref), True


def add_row(args: argparse.Namespace) -> None:
    """``msm COMMAND add``: add one row from the arguments; references without an add command are created."""
    entity, catalog = args.registry_entity, args.catalog
    store = open_store(args)
    values = {f.name: getattr(args, f.name) for f in entity.fields[1:] if f.flag is not None}
    named = [f for f in entity.references if f.name in values and catalog[f.ref].add_help is None]
    made: dict[CatalogField, tuple[Entity, dict[str, Any] | None, bool]] = {}
    # One transaction: a refused add leaves the database as it was (no orphan group, no event of one).
    with store.transaction():
        for field in named:
            target, given = catalog[field.ref], values[field.name]
            row, created = _find_or_create(store, target, catalog, given) if given is not None else (None, False)
            values[field.name] = row["uid"] if row is not None else None
            made[field] = (target, row, created)
        row = _services(entity, catalog).add(store, getattr(args, entity.key), **values)
    if write_document(args.format, {**row, **{f.listed_as or f.ref: _made(*found) for f, found in made.items()}}):
        return
    notes = [f"created {t.label} {r[t.key]!r} (uid {r['uid']})" for t, r, c in made.values() if c and r is not None]
    write_lines(*notes, f"added {entity.label} {row[entity.key]!r} (uid {row['uid']})")


def _made(target: Entity, row: dict[str, Any] | None, created: bool) -> dict[str, Any] | None:
    return None if row is None else {"uid": row["uid"], target.key: row[target.key], "created": created}


# -- list ----------------------------------------------------------------------------------------
def _keys_by_uid(store: msm.Store, entity: Entity, catalog: Catalog) -> dict[str, Any]:
    frame = _services(entity, catalog).list(store)
    return dict(zip(frame["uid"].to_list(), frame[entity.key].to_list(), strict=True))


def list_rows(args: argparse.Namespace) -> None:
    """``msm COMMAND list``: every row, each reference's key beside its uid (``listed_as``)."""
    entity, catalog = args.registry_entity, args.catalog
    store = open_store(args)
    if entity.table == "account_target_allocation":
        frame = msm.list_allocations(store, account=args.account)
    else:
        frame = _services(entity, catalog).list(store)
    rows = frame_records(frame)
    for field in (f for f in entity.references if f.listed_as):
        keys = _keys_by_uid(store, catalog[field.ref], catalog)
        rows = [{**r, field.listed_as: keys.get(r[field.column])} for r in rows]
    if write_document(args.format, {entity.command: rows}):
        return
    headed = [f for f in entity.fields if f.heading]
    table = [{**{f.heading: _cell(f, r) for f in headed}, "uid": r["uid"]} for r in rows]
    columns = [f.heading for f in headed] + ["uid"]
    write_table(table, columns, empty=f"(no {entity.command})")


def _cell(field: CatalogField, row: dict[str, Any]) -> Any:
    """A field's value in a ``list`` table: a reference's key, a bool's word, else the stored value."""
    if field.listed_as:
        return row[field.listed_as]
    value = row[field.column]
    if field.shown is not None and value is not None:
        return field.shown[bool(value)]
    return value


# -- import ----------------------------------------------------------------------------------------
def import_file(args: argparse.Namespace) -> None:
    """``msm COMMAND import FILE``: the whole file in one transaction, or nothing."""
    store = open_store(args)
    result = msm.import_reference(
        store, args.import_name, args.file, **passed(args, "upsert", "dry_run", "sheet", "catalog")
    )
    if write_document(args.format, result.to_dict()):
        return
    what = args.import_name.replace("_", " ")
    counts = f"{result.added:,} added, {result.updated:,} updated, {result.unchanged:,} unchanged"
    if args.dry_run:
        write_lines(
            f"dry run, nothing written: {result.added:,} {what} would be added, {result.updated:,} updated, "
            f"{result.unchanged:,} unchanged"
        )
    else:
        write_lines(f"imported {what} from {args.file}: {counts}")


COMMANDS = commands()
