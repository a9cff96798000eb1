"""The audit trail: ``msm audit [--account A] [--actor X] [--action Y] [--since TS] [--until TS]``.

Every write of the workbench records who made it (``--as NAME``, else ``$MSM_USER``, else the OS
user), why (``--reason TEXT``), what it was about and the values before and after, in the same
transaction as the write (:mod:`msm.audit`). This command lists those events, newest first.
"""

from __future__ import annotations

import argparse
import json

import msm
from msm.audit import ACTIONS, ENTITY_TYPES, event_labels
from msm_cli.commands import Arg, Command
from msm_cli.context import formats, open_store, passed
from msm_cli.output import write_csv, write_json, write_lines, write_table

__all__ = ["COMMANDS"]

_COLUMNS = (
    "event_time",
    "actor",
    "action",
    "entity_type",
    "entity_uid",
    "account",
    "account_uid",
    "reason",
    "before_json",
    "after_json",
    "uid",
)


def show(args: argparse.Namespace) -> None:
    """``msm audit``: the events that pass the filters."""
    store = open_store(args)
    filters = passed(args, "account", "actor", "action", "entity_type", "since", "until", "limit")
    frame = msm.audit_events(store, **filters)
    rows = frame.select(_COLUMNS).to_dicts()
    if args.format == "csv":
        write_csv(rows, _COLUMNS)
        return
    if args.format == "json":
        for row in rows:
            for side in ("before_json", "after_json"):
                row[side] = json.loads(row[side]) if row[side] is not None else None
        write_json({"events": rows})
        return
    write_lines(f"{len(rows)} audit event{'s' if len(rows) != 1 else ''}, newest first")
    table = frame.with_columns(event_labels(frame)).select(*_COLUMNS, "what").to_dicts()
    write_table(
        table,
        [
            ("event_time", "time"),
            "actor",
            "action",
            ("entity_type", "entity"),
            "what",
            "account",
            "reason",
        ],
        empty="(no events)",
    )


COMMANDS = (
    Command(
        "audit",
        show,
        help="list the audit trail: who changed what, when and why (newest first)",
        description="List the audit events (newest first): every add, import, save, overwrite, restore and delete, "
        "with its actor, reason and the values before and after. Filters combine (all must hold); --since and "
        "--until are inclusive ISO-8601 times with a UTC offset.",
        options=(
            Arg("--account", metavar="A", help="only events about this account (unique identifier or uid)"),
            Arg("--actor", metavar="X", help="only events made by this actor"),
            Arg("--action", choices=ACTIONS, help="only this action"),
            Arg("--entity-type", choices=ENTITY_TYPES, help="only events about this kind of entity"),
            Arg("--since", metavar="TS", help="only events at or after this time"),
            Arg("--until", metavar="TS", help="only events at or before this time"),
            Arg("--limit", type=int, metavar="N", help="at most N events (the newest)"),
            formats("table", "json", "csv"),
        ),
    ),
)
