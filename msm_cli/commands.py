"""The command tree: how per-area modules add their commands to the ``msm`` parser.

Each area module (``registry``, ``targets``, ...) has a ``register(tree)`` function that adds its
commands through a :class:`CommandTree`. Groups (``msm targets ...``, ``msm portfolios ...``) are
created on first use and shared, so a later module can add ``msm targets expand`` or
``msm portfolios weights`` without touching the module that created the group.

A handler takes the parsed ``argparse.Namespace`` and returns an exit code (``None`` means 0).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["CommandTree", "Handler", "add_audit_options"]

Handler = Callable[[argparse.Namespace], "int | None"]


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

    def command(
        self, name: str, handler: Handler, *, help: str, description: str | None = None, writes: bool = False
    ) -> argparse.ArgumentParser:
        """A top-level command: ``msm NAME ...`` (``writes``: it takes ``--as`` and ``--reason``)."""
        parser = self._top.add_parser(name, help=help, description=description or help, parents=self._parents(writes))
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, *, help: str | None = None) -> argparse._SubParsersAction:
        """The subcommands of ``msm NAME`` (created the first time; ``help`` is used then)."""
        if name not in self._groups:
            parser = self._top.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
        return self._groups[name]

    def subcommand(
        self,
        group: str,
        name: str,
        handler: Handler,
        *,
        help: str,
        description: str | None = None,
        group_help: str | None = None,
        writes: bool = False,
    ) -> argparse.ArgumentParser:
        """A command of a group: ``msm GROUP NAME ...`` (``writes``: it takes ``--as`` and ``--reason``)."""
        parser = self.group(group, help=group_help).add_parser(
            name, help=help, description=description or help, parents=self._parents(writes)
        )
        parser.set_defaults(handler=handler)
        return parser
