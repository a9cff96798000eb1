"""``msm init``: create or migrate the database."""

from __future__ import annotations

import argparse

import msm
from msm_cli.commands import Command
from msm_cli.context import add_format, migration_sets
from msm_cli.output import write_json, write_lines

__all__ = ["COMMANDS"]


def init(args: argparse.Namespace) -> None:
    """``msm init``: create the database when missing and apply every pending migration."""
    store = msm.Store(args.db)
    existed = store.exists
    applied = msm.migrate(store, migration_sets())
    if args.format == "json":
        write_json(
            {
                "database": store.path,
                "created": not existed,
                "applied": [{"namespace": m.namespace, "version": m.version, "name": m.name} for m in applied],
            }
        )
        return
    if not existed:
        write_lines(f"created database {store.path}")
    if applied:
        write_lines(*(f"applied migration {m}" for m in applied))
    else:
        write_lines(f"database {store.path} is up to date")


COMMANDS = (
    Command(
        "init",
        init,
        help="create or migrate the database",
        description="Create the database file (and its folder) when it does not exist, then apply every pending "
        "migration (msm, then msm_portfolios), each in its own transaction. Re-running is a no-op.",
        options=(add_format,),
    ),
)
