"""``msm``: the workbench command line.

``msm [--db PATH] [--as NAME] [--reason TEXT] COMMAND ...`` (the three options may also follow the
command). ``--as`` and ``--reason`` say who makes the command's writes and why (:mod:`msm.audit`).
Exit codes: 0 success; 1 a domain or validation error (one
``error: ...`` message on stderr, no traceback; a command given ``--format json`` adds the error
as data, :meth:`msm.errors.MsmError.to_dict`, as one JSON line last on stderr); 2 a usage error
(argparse). Any other exception is a bug and is left to raise.

The parser is built from per-area modules, each declaring its commands as data, ``COMMANDS`` (see
:mod:`msm_cli.commands`); adding an area means adding its module to :data:`MODULES` and its
commands to :data:`AREAS`. A command imports and builds only the areas that declare it, so
``msm targets show`` does not pay for the export or the demo (``msm --help`` builds them all).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from msm.audit import acting
from msm.errors import MsmError
from msm.store import default_db_path
from msm_cli.commands import CommandTree, add_audit_options
from msm_cli.output import report_error

__all__ = ["AREAS", "MODULES", "build_parser", "main"]

#: Area modules (in ``msm_cli``), in the order their commands appear in ``msm --help``.
MODULES = (
    "database",
    "demo",
    "registry",
    "portfolios",
    "targets",
    "drafts",
    "candidates",
    "lookthrough",
    "export",
    "holdings",
    "drift",
    "rebalance",
    "audit",
)
#: Each top-level command, and the area modules that declare it or its subcommands.
AREAS = {
    "init": ("database",),
    "demo": ("demo",),
    "assets": ("registry",),
    "portfolios": ("registry", "portfolios"),
    "accounts": ("registry",),
    "models": ("registry",),
    "allocations": ("registry",),
    "groups": ("registry",),
    "targets": ("targets", "drafts", "lookthrough"),
    "candidates": ("candidates",),
    "export": ("export",),
    "holdings": ("holdings",),
    "prices": ("holdings",),
    "fx": ("holdings",),
    "drift": ("drift",),
    "rebalance": ("rebalance",),
    "audit": ("audit",),
}


#: The options ``msm`` takes before the command, each with a value.
_GLOBAL_OPTIONS = ("--db", "--as", "--reason")


def _command(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names (after the global ``--db PATH``), or ``None``."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif not word.startswith(tuple(f"{o}=" for o in _GLOBAL_OPTIONS)):
            return None  # --help, or a usage error: build everything so argparse can say it all
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``msm`` parser: every command, or (given ``argv``) only the areas its command needs."""
    needed = AREAS.get(_command(argv) or "", MODULES) if argv is not None else MODULES
    parser = argparse.ArgumentParser(
        prog="msm",
        description="msm workbench: account target positions over an embedded DuckDB database.",
        epilog="Exit codes: 0 success, 1 domain or validation error (message on stderr), 2 usage error.",
    )
    parser.add_argument(
        "--db", metavar="PATH", default=None, help="database file (default: $MSM_DB or data/msm.duckdb)"
    )
    add_audit_options(parser)
    tree = CommandTree(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    for name in MODULES:
        if name in needed:
            tree.add(*import_module(f"msm_cli.{name}").COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``msm`` command; return its exit code (the console script passes it to ``sys.exit``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed the message
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.db is None:
        args.db = default_db_path()
    try:
        with contextlib.ExitStack() as held:  # what the command holds open (the database file), released at its end
            args.held = held
            # every write of the command is recorded as made by --as (else $MSM_USER, else the OS user) for --reason
            held.enter_context(acting(args.actor, args.reason))
            return args.handler(args) or 0
    except MsmError as exc:
        report_error(exc, as_json=getattr(args, "format", None) == "json")
        return 1
    except BrokenPipeError:  # `msm ... | head`: the reader left; not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
