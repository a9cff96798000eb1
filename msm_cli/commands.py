"""The command tree: how per-area modules declare their commands and how the ``msm`` parser is built.

Each area module (``registry``, ``targets``, ...) declares its commands as data, a tuple
``COMMANDS`` of :class:`Command` (path, handler, help, description, options), and
:meth:`CommandTree.add` builds their argparse parsers. An option is anything that adds itself to a
parser: an :class:`Arg` (one ``add_argument`` call, written as argparse takes it) or one of the
shared option builders of :mod:`msm_cli.context` (``add_account``, ``add_format``, ...), so an
option that recurs is written once. Groups (``msm targets ...``, ``msm portfolios ...``) are
created on first use and shared, so a later module can add ``msm targets expand`` or
``msm portfolios weights`` without touching the module that created the group. A command that
several groups declare alike has a builder: :func:`history_command` (``msm targets history``, ...).

A handler takes the parsed ``argparse.Namespace`` and returns an exit code (``None`` means 0).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arg", "Command", "CommandTree", "Handler", "Option", "add_audit_options", "history_command"]

Handler = Callable[[argparse.Namespace], "int | None"]
#: What a command's parser takes: a callable that adds one or more arguments (or defaults) to it.
Option = Callable[[argparse.ArgumentParser], None]


class Arg:
    """One argument, declared as ``add_argument`` takes it: ``Arg("--limit", type=int, metavar="N", help=...)``."""

    def __init__(self, *flags: str, **settings: Any) -> None:
        self.flags, self.settings = flags, settings

    def __call__(self, parser: argparse.ArgumentParser) -> None:
        """Add the argument to ``parser``."""
        parser.add_argument(*self.flags, **self.settings)

    def __repr__(self) -> str:
        return f"Arg({', '.join(map(repr, self.flags))}, **{self.settings!r})"


@dataclass(frozen=True)
class Command:
    """One command, declared: its ``path`` (``"audit"``, ``"targets save"``), handler, help and options.

    ``description`` defaults to ``help``; ``group_help`` is the help of the group (``msm targets``)
    when this command creates it; ``writes``: it takes ``--as`` and ``--reason``; ``defaults`` are
    set on the parsed arguments (what a shared handler needs to know of its command).
    """

    path: str
    handler: Handler
    help: str
    description: str | None = None
    options: Sequence[Option] = ()
    writes: bool = False
    group_help: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)


def history_command(group: str, handler: Handler, listed: str, *options: Option) -> Command:
    """``msm GROUP history``: list every ``listed`` (``"snapshot of an account"``), newest first."""
    return Command(f"{group} history", handler, help=f"list every {listed}, newest first", options=options)


def _common() -> argparse.ArgumentParser:
    # Lets `--db` also follow the command (`msm targets show A --db x.duckdb`); SUPPRESS keeps a
    # value given before the command when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", metavar="PATH", default=argparse.SUPPRESS, help="database file (default: $MSM_DB or data/msm.duckdb)"
    )
    return common


def _audited() -> argparse.ArgumentParser:
    # `--as` and `--reason` after a write command (`msm targets save ... --as alice`); SUPPRESS keeps
    # the values given before the command (`msm --as alice targets save ...`).
    audited = argparse.ArgumentParser(add_help=False)
    add_audit_options(audited, default=argparse.SUPPRESS)
    return audited


def add_audit_options(parser: argparse.ArgumentParser, *, default: object = None) -> None:
    """``--as NAME`` and ``--reason TEXT``: who makes a write and why, for the audit trail (``msm audit``)."""
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        default=default,
        help="who makes this change, for the audit trail (default: $MSM_USER, else the OS user)",
    )
    parser.add_argument(
        "--reason", metavar="TEXT", default=default, help="why this change is made, recorded in the audit trail"
    )


class CommandTree:
    """Adds leaf commands and command groups to the top-level ``msm`` subparsers."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:
        self._top = subparsers
        self._groups: dict[str, argparse._SubParsersAction] = {}
        self._common = _common()
        self._audited = _audited()

    def _parents(self, writes: bool) -> list[argparse.ArgumentParser]:
        return [self._common, self._audited] if writes else [self._common]

    def group(self, name: str, *, help: str | None = None) -> argparse._SubParsersAction:
        """The subcommands of ``msm NAME`` (created the first time; ``help`` is used then)."""
        if name not in self._groups:
            parser = self._top.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
        return self._groups[name]

    def add(self, *commands: Command) -> None:
        """Build the parser of each of ``commands``: its place in the tree, its options, its defaults."""
        for command in commands:
            *group, name = command.path.split()
            place = self.group(*group, help=command.group_help) if group else self._top
            parser = place.add_parser(
                name,
                help=command.help,
                description=command.description or command.help,
                parents=self._parents(command.writes),
            )
            parser.set_defaults(handler=command.handler)
            for option in command.options:
                option(parser)
            parser.set_defaults(**command.defaults)
