"""Drafts and publishing: ``msm targets drafts|publish|discard`` (``msm targets save --draft`` saves one).

Every command goes through :mod:`msm.services.drafts`, the path the app's Review page takes. A
publish or a discard is an audited write (``--as``, ``--reason``); with four-eyes on
(``MSM_FOUR_EYES=1`` or ``--four-eyes``) whoever saved a draft cannot publish it.
"""

from __future__ import annotations

import argparse

import msm
from msm.timeutil import format_utc
from msm_cli.commands import Arg, Command
from msm_cli.context import ALLOCATION, add_account, add_format, at_option, open_store
from msm_cli.output import counted, number, write_document, write_lines, write_table
from msm_cli.targets import rounded_sums, set_records

__all__ = ["COMMANDS"]


def drafts(args: argparse.Namespace) -> None:
    """``msm targets drafts``: every draft, oldest first."""
    store = open_store(args)
    rows = set_records(msm.list_drafts(store, args.account))
    if write_document(args.format, {"drafts": rows}):
        return
    write_lines(f"{counted(len(rows), 'draft')}, oldest first")
    write_table(
        rounded_sums(rows),
        [
            "account",
            ("position_set_time", "time"),
            "allocation",
            "rows",
            ("weight_sum", "weight sum"),
            ("saved_by", "saved by"),
            ("saved_at", "saved at"),
        ],
        empty="(no drafts)",
    )


def publish(args: argparse.Namespace) -> None:
    """``msm targets publish``: one draft published (audited; four-eyes when on)."""
    store = open_store(args)
    snap = msm.publish_snapshot(store, args.account, args.at, allocation=args.allocation, four_eyes=args.four_eyes)
    if write_document(args.format, snap.to_dict()):
        return
    write_lines(
        f"published the draft of account {snap.account['unique_identifier']!r} at {format_utc(snap.position_set_time)}",
        f"  position set  {snap.position_set_uid}",
        f"  rows          {snap.positions.height}",
        f"  weight sum    {number(snap.weight_sum, decimals=12)}",
    )


def discard(args: argparse.Namespace) -> None:
    """``msm targets discard``: one draft deleted (its rows kept; audited)."""
    store = open_store(args)
    gone = msm.discard_draft(store, args.account, args.at, allocation=args.allocation)
    if write_document(args.format, gone):
        return
    write_lines(
        f"discarded the draft of account {gone['account']!r} at {format_utc(gone['position_set_time'])} "
        f"({counted(gone['rows'], 'row')} kept as version {gone['kept_as_version']})"
    )


#: ``ACCOUNT --at TS [--allocation ID]``: the one draft a command works on.
_DRAFT_CHOICE = (add_account, at_option("the draft's time, ISO-8601 with a UTC offset"), ALLOCATION)
COMMANDS = (
    Command(
        "targets drafts",
        drafts,
        help="list the draft snapshots (saved with --draft, not yet published)",
        description="List every draft snapshot, oldest first, with its rows, weight sum and who saved it last.",
        options=(
            Arg("--account", metavar="ID", help="only this account's drafts (unique identifier or uid)"),
            add_format,
        ),
    ),
    Command(
        "targets publish",
        publish,
        writes=True,
        help="publish a draft snapshot (reads see it from then on)",
        description="Publish the account's draft exactly at --at: its status becomes published, in one transaction "
        "with a `publish` event (--as, --reason). With four-eyes on (MSM_FOUR_EYES=1 or --four-eyes), whoever saved "
        "the draft cannot publish it.",
        options=(
            *_DRAFT_CHOICE,
            Arg(
                "--four-eyes",
                action="store_true",
                default=None,
                help="refuse the publish when the actor saved the draft (default: on when MSM_FOUR_EYES=1)",
            ),
            add_format,
        ),
    ),
    Command(
        "targets discard",
        discard,
        writes=True,
        help="discard a draft snapshot (its rows are kept in the audit trail)",
        description="Delete the account's draft exactly at --at; its rows are kept (target_positions_replaced) and a "
        "`discard` event is recorded (--as, --reason). A published snapshot cannot be discarded.",
        options=(*_DRAFT_CHOICE, add_format),
    ),
)
