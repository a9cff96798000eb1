"""Target snapshots: ``msm targets save|show|history|diff|versions|restore``.

Every command goes through the snapshot services (:mod:`msm.services.snapshots`), the same path
as the app and notebooks. Weight sums are reported with their residual (``1 - weight sum``),
never renormalized.
"""

from __future__ import annotations

import argparse
from typing import Any

import polars as pl

import msm
from msm.timeutil import format_utc
from msm_cli.commands import Arg, Command, history_command
from msm_cli.context import (
    ALLOCATION,
    add_account,
    add_format,
    add_include_drafts,
    add_rows_file,
    add_snapshot_choice,
    at_option,
    formats,
    open_store,
    overwrite_option,
    passed,
    percent_option,
    read_chosen_snapshot,
    source_option,
)
from msm_cli.output import (
    cell,
    counted,
    number,
    write_document,
    write_lines,
    write_table,
)

__all__ = ["COMMANDS", "rounded_sums", "set_records"]

_EXPOSURES = (
    ("weight_notional_exposure", "weight"),
    ("constant_notional_exposure", "notional"),
    ("single_asset_quantity", "quantity"),
)
_GROUP_HELP = "account target snapshots (save from a file, show, history, diff, versions, restore, expand)"


def set_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Stored snapshots (drafts, replaced versions) as records for JSON: ``rows`` an int, ``weight_sum`` a float."""
    return [{**r, "rows": int(r["rows"]), "weight_sum": float(r["weight_sum"])} for r in frame.to_dicts()]


def rounded_sums(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` with ``weight_sum`` rounded to 12 decimal places, as a table shows it."""
    return [{**r, "weight_sum": round(r["weight_sum"], 12)} for r in records]


def versions(args: argparse.Namespace) -> None:
    """``msm targets versions``: the kept versions of one snapshot, oldest first."""
    store = open_store(args)
    frame = msm.snapshot_versions(
        store, args.account, args.at, allocation=args.allocation, include_drafts=args.include_drafts
    )
    rows = set_records(frame)
    if write_document(args.format, {"account": args.account, "at": args.at, "versions": rows}):
        return
    write_lines(f"account {args.account!r} at {args.at}: {len(rows)} replaced version{'s' if len(rows) != 1 else ''}")
    write_table(
        rounded_sums(rows),
        [
            "version",
            ("replaced_at", "replaced at"),
            ("replaced_by", "replaced by"),
            "rows",
            ("weight_sum", "weight sum"),
            "source",
        ],
        empty="(no replaced versions: the snapshot was never overwritten)",
    )


def restore(args: argparse.Namespace) -> None:
    """``msm targets restore``: one kept version written again, as an audited overwrite."""
    store = open_store(args)
    snap = msm.restore_snapshot(store, args.account, args.at, **passed(args, "version", "allocation", "include_drafts"))
    if write_document(args.format, {**snap.to_dict(), "restored_version": args.version}):
        return
    write_lines(
        f"restored version {args.version} of the snapshot of account {snap.account['unique_identifier']!r} at "
        f"{format_utc(snap.position_set_time)} (the rows it replaced are kept as the next version)",
        f"  position set  {snap.position_set_uid}",
        f"  rows          {snap.positions.height}",
        *_sums(snap),
    )


# -- save ----------------------------------------------------------------------------------------
def save(args: argparse.Namespace) -> None:
    """``msm targets save``: one snapshot from a file, written atomically."""
    from msm.io import percent_to_fraction, read_table_file

    store = open_store(args)
    rows = read_table_file(args.file, entity="import file", sheet=args.sheet)
    if args.percent:
        rows = percent_to_fraction(rows, "weight_notional_exposure", entity="import file")
    history = msm.snapshot_history(store, args.account, include_drafts=True) if args.overwrite else None
    before = set(history["position_set_uid"].to_list()) if history is not None else set()
    snap = msm.save_snapshot(
        store, args.account, args.at, rows, **passed(args, "allocation", "overwrite", "source", "draft")
    )
    if write_document(args.format, {**snap.to_dict(), **({"weights_in_percent": True} if args.percent else {})}):
        return
    kinds = snap.positions["target_type"].value_counts(sort=True).rows() if snap.positions.height else []
    counted = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in kinds)
    replaced = ""
    if snap.position_set_uid in before:
        kept = msm.snapshot_versions(
            store, snap.account["uid"], snap.position_set_time, allocation=snap.allocation, include_drafts=True
        )
        replaced = f" (replaced the whole previous set), its rows kept as version {kept.height}"
    kind = "draft" if snap.is_draft else "snapshot"
    write_lines(
        f"saved {kind} of account {snap.account['unique_identifier']!r} at "
        f"{format_utc(snap.position_set_time)}{replaced}",
        f"  allocation    {snap.allocation} (uid {snap.account_target_allocation_uid})",
        f"  position set  {snap.position_set_uid}",
        f"  rows          {snap.positions.height} ({counted})",
        *_sums(snap),
        *(["  weights were read in percent and divided by 100 (not renormalized)"] if args.percent else []),
        *(
            [f"  a draft: reads leave it out until `msm targets publish {args.account} --at {args.at}`"]
            if snap.is_draft
            else []
        ),
    )


def _sums(snap: msm.Snapshot) -> list[str]:
    return [
        f"  weight sum    {number(snap.weight_sum, decimals=12)}",
        f"  residual      {number(snap.residual, decimals=12)}  (1 - weight sum; unallocated, never renormalized)",
    ]


# -- show ----------------------------------------------------------------------------------------
def show(args: argparse.Namespace) -> None:
    """``msm targets show``: one snapshot's rows, sums and residual."""
    from msm.services.snapshots import POSITION_COLUMNS

    store = open_store(args)
    snap = read_chosen_snapshot(store, args)
    document = snap.to_dict()
    if write_document(args.format, document, rows="positions", columns=POSITION_COLUMNS):
        return
    if snap.is_empty:
        when = f" at {args.at}" if args.at else f" at or before {args.as_of}" if args.as_of else ""
        write_lines(f"account {snap.account['unique_identifier']!r} has no snapshot{when}")
        return
    write_lines(
        f"account {snap.account['unique_identifier']!r}: {'draft' if snap.is_draft else 'snapshot'} at "
        f"{format_utc(snap.position_set_time)}",
        f"allocation {snap.allocation} (uid {snap.account_target_allocation_uid}), "
        f"position set {snap.position_set_uid}",
        "",
    )
    write_table(
        document["positions"],
        [
            ("display_label", "label"),
            ("target_type", "type"),
            ("unique_identifier", "identifier"),
            *_EXPOSURES,
            ("metadata_json", "metadata"),
        ],
    )
    write_lines("", f"  rows          {snap.positions.height}", *_sums(snap))


# -- history -------------------------------------------------------------------------------------
def history(args: argparse.Namespace) -> None:
    """``msm targets history``: every snapshot of an account, newest first."""
    from msm.services.registry import identity

    store = open_store(args)
    account = msm.get_account(store, args.account)
    frame = msm.snapshot_history(store, account["uid"], include_drafts=args.include_drafts)
    snapshots = frame.select(
        "position_set_uid",
        "position_set_time",
        "account_target_allocation_uid",
        "allocation",
        pl.col("rows").cast(pl.Int64),
        pl.col("weight_sum").cast(pl.Float64),
        "source",
        "status",
    ).to_dicts()
    if write_document(args.format, {"account": identity(account), "snapshots": snapshots}):
        return
    active = dict(zip(frame["position_set_uid"].to_list(), frame["allocation_is_active"].to_list(), strict=True))
    table = [
        {
            **s,
            "allocation": s["allocation"] + ("" if active[s["position_set_uid"]] else " (inactive)"),
            "weight_sum": round(s["weight_sum"], 12),
            "residual": round(1.0 - s["weight_sum"], 12),
        }
        for s in snapshots
    ]
    write_lines(f"account {account['unique_identifier']!r}: {counted(len(snapshots), 'snapshot')}, newest first")
    write_table(
        table,
        [
            ("position_set_time", "time"),
            "allocation",
            "rows",
            ("weight_sum", "weight sum"),
            "residual",
            "source",
            *(["status"] if args.include_drafts else []),
            ("position_set_uid", "position set"),
        ],
        empty="(no snapshots)",
    )


# -- diff ----------------------------------------------------------------------------------------
def diff(args: argparse.Namespace) -> None:
    """``msm targets diff``: what changed between two snapshots of an account."""
    store = open_store(args)
    result = msm.diff_snapshots(store, args.account, **passed(args, "before", "after", "allocation", "include_drafts"))
    document = result.to_dict()
    if write_document(args.format, document):
        return
    rows = [
        {
            "change": change,
            "target_type": r["target_type"],
            "unique_identifier": r["unique_identifier"],
            "before": _exposure_text(r, "_before", change),
            "after": _exposure_text(r, "_after", change),
        }
        for change in ("added", "removed", "changed")
        for r in document[change]
    ]
    write_lines(
        f"account {document['account']['unique_identifier']!r}: "
        f"{document['from']['position_set_time']} -> {document['to']['position_set_time']}",
    )
    write_table(
        rows,
        [
            "change",
            ("target_type", "type"),
            ("unique_identifier", "identifier"),
            "before",
            "after",
        ],
        empty="(no differences)",
    )
    write_lines(
        f"{len(document['added'])} added, {len(document['removed'])} removed, "
        f"{len(document['changed'])} changed, {document['unchanged']} unchanged"
    )


def _exposure_text(row: dict[str, Any], side: str, change: str) -> str:
    if (change == "added" and side == "_before") or (change == "removed" and side == "_after"):
        return ""
    parts = [f"{label}={number(row[column + side])}" for column, label in _EXPOSURES if row[column + side] is not None]
    if change == "changed" and row["metadata_json_before"] != row["metadata_json_after"]:
        parts.append(f"metadata={cell(row['metadata_json' + side]) or 'null'}")
    return " ".join(parts)


#: ``ACCOUNT --at TS``: the one stored snapshot whose replaced versions a command reads or restores.
_SNAPSHOT_AT = (add_account, at_option("the snapshot's time"))
COMMANDS = (
    Command(
        "targets save",
        save,
        writes=True,
        group_help=_GROUP_HELP,
        help="save a snapshot from a CSV/JSON/Parquet file",
        description="Validate every row of the --file, then write the snapshot (position set and all its rows) in one "
        "transaction. Rows name targets by asset_uid/portfolio_uid or by unique identifier (asset/portfolio columns), "
        "with exactly one of weight_notional_exposure, constant_notional_exposure, single_asset_quantity, and an "
        "optional metadata_json object. Nothing is stored when any row is bad.",
        options=(
            add_account,
            at_option("snapshot time, ISO-8601 with a UTC offset (e.g. 2026-05-25T00:00:00Z)"),
            add_rows_file,
            percent_option("weight_notional_exposure is in percent (60 = 60%%): divided by 100, never renormalized"),
            Arg("--allocation", metavar="ID", help="target allocation (default: the account's single active one)"),
            overwrite_option("replace the whole snapshot when one exists at that time"),
            Arg(
                "--draft",
                action="store_true",
                help="save a draft: reads leave it out until `msm targets publish` (an overwrite keeps the status)",
            ),
            source_option("provenance recorded on the position set (default: cli)", default="cli"),
            add_format,
        ),
    ),
    Command(
        "targets show",
        show,
        help="show one snapshot",
        description="Show the account's latest snapshot, the one exactly at --at, or the latest at or before --as-of "
        "(across its active target allocations).",
        options=(add_snapshot_choice, formats("table", "json", "csv")),
    ),
    history_command("targets", history, "snapshot of an account", add_account, add_include_drafts, add_format),
    Command(
        "targets diff",
        diff,
        help="differences between two snapshots",
        description="Compare the snapshots in force at --from and at --to (each: the latest at or before that time), "
        "row by row: added, removed and changed targets.",
        options=(
            add_account,
            Arg("--from", dest="before", required=True, metavar="TS", help="the earlier time"),
            Arg("--to", dest="after", required=True, metavar="TS", help="the later time"),
            Arg("--allocation", metavar="ID", help="only this target allocation"),
            add_include_drafts,
            add_format,
        ),
    ),
    Command(
        "targets versions",
        versions,
        help="list the replaced versions of one snapshot (what each overwrite kept)",
        description="List the versions an overwrite replaced of the account's snapshot exactly at --at: version 1 is "
        "the first set of rows replaced, 2 the next, and so on (the rows in force now are not a version). Each has its "
        "time, who replaced it, its rows and weight sum.",
        options=(*_SNAPSHOT_AT, ALLOCATION, add_include_drafts, add_format),
    ),
    Command(
        "targets restore",
        restore,
        writes=True,
        help="bring a replaced version of a snapshot back (as a new, audited overwrite)",
        description="Write version --version of the account's snapshot at --at (see `msm targets versions`) again: "
        "an overwrite, so the rows in force now are kept as the next version, and one `restore` event is recorded "
        "(--as, --reason). The rows are checked against the registry as any save is.",
        options=(
            *_SNAPSHOT_AT,
            Arg("--version", required=True, type=int, metavar="N", help="the version to bring back (1 = the first)"),
            ALLOCATION,
            add_include_drafts,
            add_format,
        ),
    ),
)
