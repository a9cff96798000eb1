"""Target snapshots: write (one or many at once), read (latest / exact / as-of), history, diff.

One write path serves the app, the command line and notebooks: :func:`save_snapshots` takes any
number of snapshots as one frame, validates the whole frame (:mod:`msm.validation`) before the
database is touched, then writes every position set and all their rows in one transaction. A
snapshot lands whole or not at all. :func:`save_snapshot` is the one-snapshot form of the same path.

Rows name targets by UUID (``asset_uid`` / ``portfolio_uid``) or by unique identifier (``asset`` /
``portfolio``). Weight sums are never forced to 1: reads report the sum and the residual.

A set is ``published`` (the default) or a ``draft`` (``draft=True``; :mod:`msm.services.drafts`
publishes and discards drafts). Every read here sees published sets only unless
``include_drafts=True``. A draft is a set at its own (allocation, time): the one key holds for
both, and an overwrite keeps the status (:data:`STATUS_RULES`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from msm import audit
from msm.contract import EXPOSURE_COLUMNS, metadata_object
from msm.errors import NO_VALUE, NotFoundError, RowError, SnapshotExistsError, ValidationError
from msm.rules import Rule, empty_target_set, enforce, find_violations, raise_violations
from msm.services.registry import get_account, get_allocation, identity, records_with_metadata, reference_frame
from msm.store.connection import Store, fetch
from msm.timeutil import ensure_utc_column, format_utc, parse_utc
from msm.validation import ROW, target_rows_frame, validate_target_rows

if TYPE_CHECKING:  # pydantic is imported only by the code that builds records
    from msm.models import TargetPositionIn

__all__ = [
    "SNAPSHOT_KEY_COLUMNS",
    "STATUSES",
    "STATUS_RULES",
    "Snapshot",
    "SnapshotDiff",
    "compare_snapshots",
    "diff_snapshots",
    "read_snapshot",
    "read_target_rows",
    "restore_snapshot",
    "save_snapshot",
    "save_snapshots",
    "snapshot_history",
    "snapshot_versions",
]

#: Columns of a bulk frame that say which snapshot a row belongs to.
SNAPSHOT_KEY_COLUMNS = ("account", "allocation", "position_set_time")

_TARGET_SET = "target set"

#: What ``position_set.status`` may be (the CHECK ``ck_position_set_status`` of msm 0005).
STATUSES = ("draft", "published")

#: The rules on a set's status, over one row per set written (``status``; for a set that exists,
#: ``existing_status``), as the CHECK of msm 0005 says and as an overwrite must keep it.
STATUS_RULES = (
    Rule(
        "position set",
        "status",
        "status_known",
        "must be 'draft' or 'published'",
        pl.col("status").is_null() | ~pl.col("status").is_in(STATUSES),
    ),
    Rule(
        "position set",
        "status",
        "overwrite_keeps_status",
        pl.when(pl.col("existing_status") == "draft")
        .then(
            pl.lit("the snapshot of account '")
            + pl.col("account")
            + pl.lit("' at this time is a draft; a published save cannot overwrite it: publish it (msm targets ")
            + pl.lit("publish) or discard it (msm targets discard) first, or save with --draft to replace the draft")
        )
        .otherwise(
            pl.lit("the snapshot of account '")
            + pl.col("account")
            + pl.lit("' at this time is published; a draft cannot overwrite it: save the draft at another time")
        ),
        pl.col("existing_status").is_not_null() & (pl.col("existing_status") != pl.col("status")),
    ),
)

POSITION_COLUMNS = (
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    "unique_identifier",
    "display_label",
    *EXPOSURE_COLUMNS,
    "metadata_json",
)


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """One position set of an account with its target rows (``positions``), or an empty one."""

    account: dict[str, Any]
    position_set_uid: str | None
    position_set_time: datetime | None
    account_target_allocation_uid: str | None
    positions: pl.DataFrame
    allocation: str | None = None
    source: str | None = None
    metadata_json: dict[str, Any] | None = None
    status: str | None = None

    @property
    def is_draft(self) -> bool:
        """The snapshot is a draft (not yet published)."""
        return self.status == "draft"

    @property
    def is_empty(self) -> bool:
        """No snapshot was found (the account has none at that time)."""
        return self.position_set_uid is None

    @property
    def weight_sum(self) -> float:
        """Sum of ``weight_notional_exposure`` over the rows (0.0 for an empty snapshot)."""
        return float(self.positions["weight_notional_exposure"].sum()) if self.positions.height else 0.0

    @property
    def residual(self) -> float:
        """``1 - weight_sum``: the unallocated part of the mandate (never hidden, never renormalized)."""
        return 1.0 - self.weight_sum

    def to_dict(self) -> dict[str, Any]:
        """The ``targets show --format json`` document."""
        return {
            "account": identity(self.account),
            "position_set_uid": self.position_set_uid,
            "position_set_time": format_utc(self.position_set_time),
            "account_target_allocation_uid": self.account_target_allocation_uid,
            "status": self.status,
            "positions": records_with_metadata(self.positions.select(POSITION_COLUMNS)),
        }


@dataclass(frozen=True)
class SnapshotDiff:
    """Row-by-row differences between two snapshots of one account (keyed by target)."""

    before: Snapshot
    after: Snapshot
    added: pl.DataFrame
    removed: pl.DataFrame
    changed: pl.DataFrame
    unchanged: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        """The ``targets diff --format json`` document."""

        def side(s: Snapshot) -> dict[str, Any]:
            return {
                "position_set_uid": s.position_set_uid,
                "position_set_time": format_utc(s.position_set_time),
                "account_target_allocation_uid": s.account_target_allocation_uid,
            }

        def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (json.loads(v) if k.startswith("metadata_json") and v is not None else v) for k, v in r.items()}
                for r in frame.iter_rows(named=True)
            ]

        return {
            "account": {
                "uid": self.before.account["uid"],
                "unique_identifier": self.before.account["unique_identifier"],
            },
            "from": side(self.before),
            "to": side(self.after),
            "added": rows(self.added),
            "removed": rows(self.removed),
            "changed": rows(self.changed),
            "unchanged": self.unchanged,
        }

    def to_frame(self) -> pl.DataFrame:
        """Every difference as one frame: ``change`` (added, removed, changed), then the target and
        each exposure and metadata before and after, in that order (unchanged targets are left out)."""
        parts = [
            frame.with_columns(pl.lit(change).alias("change"))
            for change, frame in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
        ]
        frame = pl.concat(parts, how="vertical_relaxed")
        return frame.select("change", *[c for c in frame.columns if c != "change"])


# -- write -------------------------------------------------------------------------------------------
def save_snapshot(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    rows: pl.DataFrame | Iterable[Mapping[str, Any] | TargetPositionIn],
    *,
    allocation: str | uuid.UUID | None = None,
    overwrite: bool = False,
    source: str | None = None,
    metadata_json: dict[str, Any] | None = None,
    actor: str | None = None,
    reason: str | None = None,
    draft: bool = False,
) -> Snapshot:
    """Save one snapshot of ``account`` at the aware time ``at``; return it as read back.

    ``allocation`` (unique identifier or uid) chooses the target allocation; without it the
    account's single active allocation is used. An existing snapshot at that time is refused
    (:class:`SnapshotExistsError`) unless ``overwrite``, which replaces the whole set and keeps the
    replaced rows as a version (:func:`snapshot_versions`, :func:`restore_snapshot`). ``actor`` and
    ``reason`` go to the audit trail (:mod:`msm.audit`). ``draft`` saves a draft, which reads do
    not see until it is published (:func:`msm.publish_snapshot`); an overwrite keeps the status.
    """
    when = parse_utc(at, field="position_set_time", entity="snapshot")
    frame = target_rows_frame(rows)
    with audit.acting(actor, reason), store.connect():  # one open of the file for the whole call
        acct = get_account(store, account)
        alloc = _choose_allocation(store, acct, allocation)
        if frame.height == 0:
            raise empty_target_set()
        frame = frame.with_columns(
            pl.lit(alloc["uid"]).alias("__allocation_uid"),
            pl.lit(when).dt.cast_time_unit("us").alias("position_set_time"),
        )
        _write(
            store,
            frame,
            overwrite=overwrite,
            source=source,
            metadata_json=metadata_object(metadata_json),
            status="draft" if draft else "published",
        )
        return read_snapshot(store, acct["uid"], at=when, allocation=alloc["uid"], include_drafts=True)


def save_snapshots(
    store: Store,
    rows: pl.DataFrame,
    *,
    overwrite: bool = False,
    source: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    draft: bool = False,
) -> pl.DataFrame:
    """Save many snapshots at once: one validation of the whole frame, one transaction, one event per set.

    ``rows`` has target columns plus ``account`` (unique identifier or uid), optionally
    ``allocation`` (unique identifier or uid), and ``position_set_time`` (aware). Returns one
    row per position set written: ``position_set_uid``, ``account_target_allocation_uid``,
    ``position_set_time``, ``rows``, ``replaced``. ``draft`` saves every set as a draft.
    """
    if rows.height == 0:
        raise empty_target_set()
    missing = [c for c in ("account", "position_set_time") if c not in rows.columns]
    if missing:
        raise ValidationError(
            [
                RowError(
                    "target set",
                    None,
                    c,
                    NO_VALUE,
                    "column is missing: bulk rows need `account` and `position_set_time`",
                )
                for c in missing
            ]
        )
    frame = rows.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    frame = ensure_utc_column(frame, "position_set_time", entity="target set", row_column=ROW)
    with audit.acting(actor, reason), store.connect():
        frame = _resolve_allocations(store, frame)
        return _write(
            store,
            frame.drop("account", "allocation", strict=False),
            overwrite=overwrite,
            source=source,
            metadata_json=None,
            status="draft" if draft else "published",
        )


def snapshot_versions(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    *,
    allocation: str | uuid.UUID | None = None,
    include_drafts: bool = False,
) -> pl.DataFrame:
    """The replaced versions of the account's snapshot exactly at ``at``, oldest (1) first.

    Version 1 is the first set of rows an overwrite replaced, 2 the next, and so on; the rows in
    force now are not a version. Columns: ``version, replaced_at, replaced_by, rows, weight_sum,
    source, position_set_uid``. :class:`NotFoundError` when the account has no snapshot at ``at``.
    """
    snap = _exact_snapshot(store, account, at, allocation, include_drafts=include_drafts)
    return store.query(
        """
        SELECT version, any_value(replaced_at) AS replaced_at, any_value(replaced_by) AS replaced_by,
               count(*) AS rows, coalesce(sum(weight_notional_exposure), 0.0) AS weight_sum,
               any_value(set_source) AS source, position_set_uid::VARCHAR AS position_set_uid
        FROM target_positions_replaced WHERE position_set_uid = ?::UUID
        GROUP BY version, position_set_uid ORDER BY version
        """,
        [snap.position_set_uid],
    )


def restore_snapshot(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    *,
    version: int,
    allocation: str | uuid.UUID | None = None,
    actor: str | None = None,
    reason: str | None = None,
    include_drafts: bool = False,
) -> Snapshot:
    """Bring back ``version`` of the account's snapshot at ``at`` (see :func:`snapshot_versions`) as a new write.

    The restore is an overwrite: the rows in force become the next version, the version's rows
    (and the set's source and metadata as they were) are validated and written again, and one
    ``restore`` event is recorded, all in one transaction. Returns the snapshot as read back.
    A draft keeps being a draft (``include_drafts`` lets the restore find it).
    """
    when = parse_utc(at, field="position_set_time", entity="snapshot")
    with audit.acting(actor, reason), store.connect():
        snap = _exact_snapshot(store, account, when, allocation, include_drafts=include_drafts)
        kept = store.query(_VERSION_ROWS_SQL, [snap.position_set_uid, version])
        if kept.height == 0:
            name = snap.account["unique_identifier"]
            raise NotFoundError(
                "snapshot version",
                f"account {name!r} at {format_utc(when)}, version",
                str(version),
                f"see `msm targets versions {name} --at {format_utc(when)}` for the kept versions",
            )
        meta = kept["set_metadata_json"][0]
        frame = kept.drop("set_source", "set_metadata_json").with_columns(
            pl.lit(snap.account_target_allocation_uid).alias("__allocation_uid"),
            pl.lit(when).dt.cast_time_unit("us").alias("position_set_time"),
        )
        _write(
            store,
            frame,
            overwrite=True,
            source=kept["set_source"][0],
            metadata_json=json.loads(meta) if meta is not None else None,
            status=snap.status or "published",
            action="restore",
        )
        return read_snapshot(
            store, snap.account["uid"], at=when, allocation=snap.account_target_allocation_uid, include_drafts=True
        )


#: The rows of one kept version (parameters: position set uid, version), by target.
_VERSION_ROWS_SQL = """
SELECT target_type, target_uid::VARCHAR AS target_uid, asset_uid::VARCHAR AS asset_uid,
       portfolio_uid::VARCHAR AS portfolio_uid, weight_notional_exposure, constant_notional_exposure,
       single_asset_quantity, metadata_json::VARCHAR AS metadata_json, set_source,
       set_metadata_json::VARCHAR AS set_metadata_json
FROM target_positions_replaced WHERE position_set_uid = ?::UUID AND version = ?
ORDER BY target_type, target_uid
"""


def _exact_snapshot(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    allocation: str | uuid.UUID | None,
    *,
    include_drafts: bool = False,
) -> Snapshot:
    """The account's snapshot exactly at ``at``; :class:`NotFoundError` when there is none."""
    snap = read_snapshot(store, account, at=at, allocation=allocation, include_drafts=include_drafts)
    if snap.is_empty:
        name = snap.account["unique_identifier"]
        raise NotFoundError(
            "snapshot",
            f"account {name!r} at",
            str(at) if not isinstance(at, datetime) else format_utc(at),
            f"see `msm targets history {name}` for the stored times",
        )
    return snap


def _choose_allocation(store: Store, account: dict[str, Any], allocation: str | uuid.UUID | None) -> dict[str, Any]:
    if allocation is not None:
        alloc = get_allocation(store, allocation)
        if alloc["account_uid"] != account["uid"]:
            raise ValidationError.single(
                "snapshot",
                "allocation",
                str(allocation),
                f"belongs to another account, not {account['unique_identifier']!r}",
            )
        if not alloc["is_active"]:
            raise ValidationError.single("snapshot", "allocation", str(allocation), _INACTIVE)
        return alloc
    active = store.query(
        "SELECT uid::VARCHAR AS uid, unique_identifier FROM account_target_allocation "
        "WHERE account_uid = ? AND is_active ORDER BY unique_identifier",
        [account["uid"]],
    )
    names = active["unique_identifier"].to_list()
    key = pl.DataFrame(
        {
            "account_uid": [account["uid"]],
            "allocation": [None],
            "account_identifier": [account["unique_identifier"]],
            "active_names": [names],
        },
        schema={
            "account_uid": pl.String,
            "allocation": pl.String,
            "account_identifier": pl.String,
            "active_names": pl.List(pl.String),
        },
    )
    # The account as a whole, not a row of the caller's: the violation carries no row number.
    violations = find_violations(key, [_single_active_rule()], row="__key")
    raise_violations(violations.with_columns(pl.lit(None, pl.Int64).alias("row")))
    return get_allocation(store, names[0])


_INACTIVE = "is inactive; reactivate it or choose an active one"


def _single_active_rule() -> Rule:
    """An account named without an allocation has exactly one active target allocation."""
    names = pl.col("active_names")
    n = names.list.len().fill_null(0)
    account = pl.col("account_identifier")
    message = (
        pl.when(n == 0)
        .then(
            pl.lit("has no active target allocation; create one with `msm allocations add ID --account ")
            + account
            + pl.lit(" --model MODEL`")
        )
        .otherwise(
            pl.lit("has ")
            + n.cast(pl.String)
            + pl.lit(" active target allocations (")
            + names.list.join(", ")
            + pl.lit("); choose one with `allocation` (--allocation)")
        )
    )
    bad = pl.col("account_uid").is_not_null() & pl.col("allocation").is_null() & (n != 1)
    return Rule("account", "account", "single_active_allocation", message, bad, account)


def _allocation_rules() -> list[Rule]:
    """Each (account, allocation) of a bulk frame names an account, and an active allocation of it."""
    given, chosen = pl.col("allocation").is_not_null(), pl.col("chosen_uid").is_not_null()
    known = pl.col("account_uid").is_not_null()
    return [
        Rule(
            _TARGET_SET,
            "account",
            "account_exists",
            "no account has this unique_identifier or uid; create it with `msm accounts add ID --name N`",
            ~known,
        ),
        Rule(
            _TARGET_SET,
            "allocation",
            "allocation_exists",
            "no target allocation has this unique_identifier or uid",
            known & given & ~chosen,
        ),
        Rule(
            _TARGET_SET,
            "allocation",
            "allocation_of_account",
            pl.lit("belongs to another account, not '") + pl.col("account_identifier") + pl.lit("'"),
            known & chosen & (pl.col("chosen_account") != pl.col("account_uid")),
        ),
        Rule(
            _TARGET_SET,
            "allocation",
            "allocation_active",
            _INACTIVE,
            known & chosen & (pl.col("chosen_account") == pl.col("account_uid")) & ~pl.col("chosen_active"),
        ),
        _single_active_rule(),
    ]


_ALLOCATIONS_SQL = """
WITH named AS (  -- equality joins only (an OR in a join condition is a nested loop)
    SELECT k.account, k.allocation,
           coalesce(a1.uid, a2.uid) AS account_uid,
           coalesce(a1.unique_identifier, a2.unique_identifier) AS account_identifier,
           coalesce(c1.uid, c2.uid) AS chosen_uid
    FROM __keys AS k
    LEFT JOIN account AS a1 ON a1.unique_identifier = k.account
    LEFT JOIN account AS a2 ON a2.uid = TRY_CAST(k.account AS UUID)
    LEFT JOIN account_target_allocation AS c1 ON c1.unique_identifier = k.allocation
    LEFT JOIN account_target_allocation AS c2 ON c2.uid = TRY_CAST(k.allocation AS UUID)
)
SELECT n.account, n.allocation, n.account_identifier, n.account_uid::VARCHAR AS account_uid,
       list(al.uid::VARCHAR ORDER BY al.unique_identifier) FILTER (WHERE al.is_active) AS active_uids,
       list(al.unique_identifier ORDER BY al.unique_identifier) FILTER (WHERE al.is_active) AS active_names,
       any_value(c.uid::VARCHAR) AS chosen_uid, any_value(c.is_active) AS chosen_active,
       any_value(c.account_uid::VARCHAR) AS chosen_account
FROM named AS n
LEFT JOIN account_target_allocation AS al ON al.account_uid = n.account_uid
LEFT JOIN account_target_allocation AS c ON c.uid = n.chosen_uid
GROUP BY ALL
"""


def _resolve_allocations(store: Store, frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``__allocation_uid`` to every row from its ``account`` / ``allocation`` (vectorized).

    The distinct (account, allocation) pairs are resolved in one query and checked by
    :func:`_allocation_rules`; a bad pair is reported at the first row that names it.
    """
    if "allocation" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("allocation"))
    frame = frame.with_columns(pl.col("account").cast(pl.String), pl.col("allocation").cast(pl.String))
    keys = frame.group_by("account", "allocation").agg(pl.col(ROW).min().alias("first_row"))
    with store.connect() as con:
        con.register("__keys", keys.select("account", "allocation").to_arrow())
        found = fetch(con, _ALLOCATIONS_SQL)
    keys = keys.join(found, on=["account", "allocation"], how="left", nulls_equal=True).sort("first_row")
    enforce(keys, _allocation_rules(), row="first_row")
    mapping = keys.select(
        "account",
        "allocation",
        pl.when(pl.col("allocation").is_not_null())
        .then(pl.col("chosen_uid"))
        .otherwise(pl.col("active_uids").list.first())
        .alias("__allocation_uid"),
    )
    return frame.join(mapping, on=["account", "allocation"], how="left", nulls_equal=True, maintain_order="left")


def _write(
    store: Store,
    frame: pl.DataFrame,
    *,
    overwrite: bool,
    source: str | None,
    metadata_json: dict[str, Any] | None,
    status: str = "published",
    action: str = "overwrite",
) -> pl.DataFrame:
    """Validate ``frame`` (target columns + ``__allocation_uid`` + ``position_set_time``) and write it.

    A replaced set's rows are kept (:func:`msm.audit.keep_target_rows`); every set written gets
    one event: ``save`` (new) or ``action`` (``overwrite``, or ``restore``), in the same transaction.
    New sets get ``status``; an existing one must have it already (:data:`STATUS_RULES`).
    """
    assets = reference_frame(store, "asset", uids=_col(frame, "asset_uid"), identifiers=_col(frame, "asset"))
    portfolios = reference_frame(
        store, "portfolio", uids=_col(frame, "portfolio_uid"), identifiers=_col(frame, "portfolio")
    )
    valid = validate_target_rows(
        frame,
        assets=assets,
        portfolios=portfolios,
        passthrough=("position_set_time",),
        snapshot_key=("__allocation_uid", "position_set_time"),
    )
    sets = valid.group_by("__allocation_uid", "position_set_time").agg(
        pl.len().alias("rows"), pl.col(ROW).min().alias("first_row")
    )
    meta = json.dumps(metadata_json) if metadata_json is not None else None
    with store.transaction() as con:
        con.register("__sets", sets.to_arrow())
        existing = fetch(con, _EXISTING_SQL)
        if existing.height and not overwrite:
            raise SnapshotExistsError.from_rows(
                existing.drop("existing_status")
                .rename({"__allocation_uid": "account_target_allocation_uid"})
                .to_dicts()
            )
        _check_status(sets, existing, status)
        con.register("__existing", existing.select("position_set_uid").to_arrow())
        if existing.height:
            audit.keep_target_rows(
                con,
                "SELECT * FROM target_positions WHERE position_set_uid IN "
                "(SELECT position_set_uid::UUID FROM __existing)",
            )
            con.execute(
                "DELETE FROM target_positions WHERE position_set_uid IN (SELECT position_set_uid::UUID FROM __existing)"
            )
            con.execute(
                "UPDATE position_set SET source = ?, metadata_json = ? "
                "WHERE uid IN (SELECT position_set_uid::UUID FROM __existing)",
                [source, meta],
            )
        created = fetch(con, _CREATE_SETS_SQL, [source, meta, status])
        _insert_rows(con, valid)
        audit.record_select(con, "position_set", _SET_EVENTS_SQL, [action])
    set_uids = pl.concat(
        [
            created.with_columns(pl.lit(False).alias("replaced")),
            existing.select("__allocation_uid", "position_set_time", "position_set_uid").with_columns(
                pl.lit(True).alias("replaced")
            ),
        ],
        how="diagonal_relaxed",
    ).with_columns(pl.col("position_set_time").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))
    return (
        set_uids.join(sets, on=["__allocation_uid", "position_set_time"])
        .select(
            "position_set_uid",
            pl.col("__allocation_uid").alias("account_target_allocation_uid"),
            "position_set_time",
            "rows",
            "replaced",
        )
        .sort("position_set_time", "account_target_allocation_uid")
    )


def _check_status(sets: pl.DataFrame, existing: pl.DataFrame, status: str) -> None:
    """:data:`STATUS_RULES` over every set written: a known status, and an overwrite keeps the stored one."""
    fresh = sets.filter(~pl.col("first_row").is_in(existing["first_row"].implode())).select("first_row")
    checked = pl.concat([existing.select("first_row", "account", "existing_status"), fresh], how="diagonal_relaxed")
    enforce(checked.with_columns(pl.lit(status).alias("status")).sort("first_row"), STATUS_RULES, row="first_row")


#: The position sets of ``__sets`` that exist already, with their account and allocation identifiers.
_EXISTING_SQL = """
SELECT s.__allocation_uid, s.position_set_time, p.uid::VARCHAR AS position_set_uid,
       al.unique_identifier AS allocation, a.unique_identifier AS account, p.status AS existing_status,
       s.first_row
FROM __sets AS s
JOIN position_set AS p
  ON p.account_target_allocation_uid = s.__allocation_uid::UUID AND p.position_set_time = s.position_set_time
JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
JOIN account AS a ON a.uid = al.account_uid
ORDER BY a.unique_identifier, s.position_set_time
"""
#: One event per set of ``__sets`` (just written): ``save``, or the overwrite's action (the parameter).
_SET_EVENTS_SQL = """
WITH written AS (
    SELECT p.uid, p.position_set_time, p.source, p.status, al.account_uid, al.unique_identifier AS allocation,
           e.position_set_uid IS NOT NULL AS replaced
    FROM __sets AS s
    JOIN position_set AS p
      ON p.account_target_allocation_uid = s.__allocation_uid::UUID AND p.position_set_time = s.position_set_time
    JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
    LEFT JOIN __existing AS e ON e.position_set_uid::UUID = p.uid
),
rows_now AS (
    SELECT t.position_set_uid, count(*) AS n, sum(t.weight_notional_exposure) AS weight_sum
    FROM target_positions AS t SEMI JOIN written AS w ON w.uid = t.position_set_uid
    GROUP BY ALL
),
kept AS (  -- the version each replaced set's old rows were kept as (the latest)
    SELECT r.position_set_uid, r.version, count(*) AS n, sum(r.weight_notional_exposure) AS weight_sum,
           any_value(r.set_source) AS source
    FROM target_positions_replaced AS r
    JOIN (SELECT position_set_uid, max(version) AS version FROM target_positions_replaced
          WHERE position_set_uid IN (SELECT uid FROM written WHERE replaced) GROUP BY ALL) AS m
      ON m.position_set_uid = r.position_set_uid AND m.version = r.version
    GROUP BY ALL
)
SELECT CASE WHEN w.replaced THEN ? ELSE 'save' END AS action, w.uid AS entity_uid, w.account_uid,
       CASE WHEN w.replaced THEN json_object('kept_as_version', k.version, 'rows', k.n, 'weight_sum', k.weight_sum,
                                             'source', k.source) END AS before_json,
       json_object('position_set_time', strftime(w.position_set_time, '%Y-%m-%dT%H:%M:%S.%fZ'),
                   'allocation', w.allocation, 'rows', n.n, 'weight_sum', n.weight_sum,
                   'source', w.source, 'status', w.status) AS after_json
FROM written AS w
JOIN rows_now AS n ON n.position_set_uid = w.uid
LEFT JOIN kept AS k ON k.position_set_uid = w.uid
"""
#: Create the position sets of ``__sets`` that do not exist yet (parameters: source, metadata_json).
_CREATE_SETS_SQL = """
INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, source, metadata_json, status)
SELECT gen_random_uuid(), s.__allocation_uid::UUID, s.position_set_time, ?, ?::JSON, ?
FROM __sets AS s
WHERE NOT EXISTS (
    SELECT 1 FROM position_set AS p
    WHERE p.account_target_allocation_uid = s.__allocation_uid::UUID AND p.position_set_time = s.position_set_time
)
RETURNING uid::VARCHAR AS position_set_uid, account_target_allocation_uid::VARCHAR AS __allocation_uid,
          position_set_time
"""


def _insert_rows(con: Any, valid: pl.DataFrame) -> None:
    """Insert the validated rows; each finds its position set in DuckDB (a hash join over the sets just written).

    Rows keep the frame's order, so the insert sees rows grouped by set as the caller gave them.
    """
    con.register(
        "__rows",
        valid.select(
            "__allocation_uid",
            "position_set_time",
            "target_type",
            "target_uid",
            "asset_uid",
            "portfolio_uid",
            *EXPOSURE_COLUMNS,
            "metadata_json",
        ).to_arrow(),
    )
    con.execute(
        """
        INSERT INTO target_positions
        SELECT r.position_set_time, p.uid, r.target_type, r.target_uid::UUID, r.asset_uid::UUID,
               r.portfolio_uid::UUID, r.weight_notional_exposure, r.constant_notional_exposure,
               r.single_asset_quantity, r.metadata_json::JSON
        FROM __rows AS r
        JOIN position_set AS p
          ON p.account_target_allocation_uid = r.__allocation_uid::UUID AND p.position_set_time = r.position_set_time
        """
    )


def _col(frame: pl.DataFrame, name: str) -> pl.Series | None:
    return frame[name] if name in frame.columns else None


# -- read ------------------------------------------------------------------------------------------
_POSITIONS_SQL = """
SELECT t.target_type,
       t.target_uid::VARCHAR    AS target_uid,
       t.asset_uid::VARCHAR     AS asset_uid,
       t.portfolio_uid::VARCHAR AS portfolio_uid,
       coalesce(a.unique_identifier, p.unique_identifier) AS unique_identifier,
       CASE WHEN t.target_type = 'asset'
            THEN coalesce(a.name || ' (' || a.ticker || ')', a.name, a.ticker, a.unique_identifier)
            ELSE coalesce(p.portfolio_name, p.unique_identifier) END AS display_label,
       t.weight_notional_exposure,
       t.constant_notional_exposure,
       t.single_asset_quantity,
       t.metadata_json::VARCHAR AS metadata_json
FROM target_positions AS t
LEFT JOIN asset AS a ON a.uid = t.asset_uid
LEFT JOIN portfolio AS p ON p.uid = t.portfolio_uid
WHERE t.position_set_uid = ?::UUID AND t.time_index = ?
ORDER BY t.target_type, unique_identifier
"""

_EMPTY_POSITIONS = pl.DataFrame(
    schema={**{c: pl.String for c in POSITION_COLUMNS}, **{c: pl.Float64 for c in EXPOSURE_COLUMNS}}
).select(POSITION_COLUMNS)


def read_snapshot(
    store: Store,
    account: str | uuid.UUID,
    *,
    at: datetime | str | None = None,
    as_of: datetime | str | None = None,
    allocation: str | uuid.UUID | None = None,
    include_drafts: bool = False,
) -> Snapshot:
    """The account's snapshot: latest (default), exactly ``at``, or latest at or before ``as_of``.

    Looks across the account's active target allocations (or only ``allocation``, active or
    not, which reads the history of a retired mandate). When two
    allocations have a set at the same time, the one with the larger position-set uid wins, so the
    choice is deterministic. No snapshot -> an empty :class:`Snapshot` (``position_set_uid`` None).
    Drafts are seen only with ``include_drafts`` (``Snapshot.status`` says which it is).
    """
    if at is not None and as_of is not None:
        raise ValidationError.single(
            "snapshot", "at", str(at), "give `at` (exact time) or `as_of` (latest at or before), not both"
        )
    exact = parse_utc(at, field="at", entity="snapshot") if at is not None else None
    bound = parse_utc(as_of, field="as_of", entity="snapshot") if as_of is not None else None
    with store.connect() as con:
        acct = get_account(store, account)
        alloc_uid = get_allocation(store, allocation)["uid"] if allocation is not None else None
        chosen = fetch(
            con,
            """
            SELECT p.uid::VARCHAR AS uid, p.position_set_time,
                   p.account_target_allocation_uid::VARCHAR AS allocation_uid,
                   al.unique_identifier AS allocation, p.source, p.metadata_json::VARCHAR AS metadata_json, p.status
            FROM position_set AS p
            JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
            WHERE al.account_uid = $account
              AND (CASE WHEN $alloc IS NULL THEN al.is_active ELSE al.uid = $alloc::UUID END)
              AND ($exact IS NULL OR p.position_set_time = $exact)
              AND ($bound IS NULL OR p.position_set_time <= $bound)
              AND ($drafts OR p.status = 'published')
            ORDER BY p.position_set_time DESC, p.uid DESC
            LIMIT 1
            """,
            {"account": acct["uid"], "alloc": alloc_uid, "exact": exact, "bound": bound, "drafts": include_drafts},
        )
        if chosen.height == 0:
            return Snapshot(
                account=acct,
                position_set_uid=None,
                position_set_time=None,
                account_target_allocation_uid=None,
                positions=_EMPTY_POSITIONS,
            )
        set_uid, set_time, alloc_uid, alloc_name, source, meta, status = chosen.row(0)
        positions = fetch(con, _POSITIONS_SQL, [set_uid, set_time])
    return Snapshot(
        account=acct,
        position_set_uid=set_uid,
        position_set_time=set_time,
        account_target_allocation_uid=alloc_uid,
        positions=positions.select(POSITION_COLUMNS) if positions.height else _EMPTY_POSITIONS,
        allocation=alloc_name,
        source=source,
        metadata_json=json.loads(meta) if meta else None,
        status=status,
    )


def read_target_rows(
    store: Store,
    position_set_uids: Iterable[str] | None = None,
    *,
    account: str | uuid.UUID | None = None,
    between: tuple[datetime, datetime] | None = None,
    include_drafts: bool = False,
) -> pl.DataFrame:
    """Storage-shaped target rows of many position sets at once (for expansion and export).

    ``position_set_uids`` chooses the sets; ``account`` limits them to one account's active
    allocations; ``between`` (inclusive UTC bounds) to snapshots in that time range, which also
    lets DuckDB skip row groups by ``time_index``; with none, every stored row. Adds
    ``unique_identifier``, ``display_label``, ``account`` and ``allocation`` columns. Sets chosen
    by ``position_set_uids`` are read whatever their status (the caller chose them); otherwise
    drafts are left out unless ``include_drafts``.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if between is not None:
        clauses.append("t.time_index BETWEEN ? AND ?")
        params.extend(between)
    if position_set_uids is not None:
        uids = pl.DataFrame({"uid": [str(u) for u in position_set_uids]}, schema={"uid": pl.String})
    else:
        uids = None
    if account is not None:
        clauses.append("al.account_uid = ? AND al.is_active")
        params.append(get_account(store, account)["uid"])
    if position_set_uids is None and not include_drafts:
        clauses.append("ps.status = 'published'")
    with store.connect() as con:
        if uids is not None:
            con.register("__uids", uids.to_arrow())
            clauses.append("t.position_set_uid IN (SELECT uid::UUID FROM __uids)")
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return fetch(
            con,
            f"""
            SELECT t.time_index, t.position_set_uid::VARCHAR AS position_set_uid, t.target_type,
                   t.target_uid::VARCHAR AS target_uid,
                   t.asset_uid::VARCHAR AS asset_uid, t.portfolio_uid::VARCHAR AS portfolio_uid,
                   t.weight_notional_exposure, t.constant_notional_exposure, t.single_asset_quantity,
                   t.metadata_json::VARCHAR AS metadata_json,
                   coalesce(a.unique_identifier, p.unique_identifier) AS unique_identifier,
                   CASE WHEN t.target_type = 'asset'
                        THEN coalesce(a.name || ' (' || a.ticker || ')', a.name, a.ticker, a.unique_identifier)
                        ELSE coalesce(p.portfolio_name, p.unique_identifier) END AS display_label,
                   acc.unique_identifier AS account, al.unique_identifier AS allocation
            FROM target_positions AS t
            JOIN position_set AS ps ON ps.uid = t.position_set_uid
            JOIN account_target_allocation AS al ON al.uid = ps.account_target_allocation_uid
            JOIN account AS acc ON acc.uid = al.account_uid
            LEFT JOIN asset AS a ON a.uid = t.asset_uid
            LEFT JOIN portfolio AS p ON p.uid = t.portfolio_uid
            {where}
            ORDER BY t.time_index, t.position_set_uid, t.target_type, unique_identifier
            """,
            params,
        )


def snapshot_history(store: Store, account: str | uuid.UUID, *, include_drafts: bool = False) -> pl.DataFrame:
    """Every published snapshot of the account (all its allocations; drafts too with ``include_drafts``), newest first.

    Each with its row count, weight sum, source and ``status``.
    """
    acct = get_account(store, account)
    return store.query(
        """
        SELECT p.uid::VARCHAR AS position_set_uid, p.position_set_time,
               p.account_target_allocation_uid::VARCHAR AS account_target_allocation_uid,
               al.unique_identifier AS allocation, al.is_active AS allocation_is_active,
               count(t.position_set_uid) AS rows,
               coalesce(sum(t.weight_notional_exposure), 0.0) AS weight_sum,
               count(t.weight_notional_exposure) AS weight_rows,
               p.source, p.status
        FROM position_set AS p
        JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
        LEFT JOIN target_positions AS t ON t.position_set_uid = p.uid AND t.time_index = p.position_set_time
        WHERE al.account_uid = ? AND (? OR p.status = 'published')
        GROUP BY ALL
        ORDER BY position_set_time DESC, position_set_uid DESC
        """,
        [acct["uid"], include_drafts],
    )


def diff_snapshots(
    store: Store,
    account: str | uuid.UUID,
    *,
    before: datetime | str,
    after: datetime | str,
    allocation: str | uuid.UUID | None = None,
    include_drafts: bool = False,
) -> SnapshotDiff:
    """Compare the account's snapshots in force at ``before`` and at ``after`` (each: latest at or before).

    Rows are matched by target (type and uid): ``added`` are only in the later set, ``removed``
    only in the earlier one, ``changed`` in both with a different exposure or metadata. Drafts take
    part only with ``include_drafts``.
    """
    old = read_snapshot(store, account, as_of=before, allocation=allocation, include_drafts=include_drafts)
    new = read_snapshot(store, account, as_of=after, allocation=allocation, include_drafts=include_drafts)
    for name, snap, when in (("from", old, before), ("to", new, after)):
        if snap.is_empty:
            raise NotFoundError(
                "snapshot",
                f"account {snap.account['unique_identifier']!r} at or before",
                str(when),
                f"see `msm targets history {snap.account['unique_identifier']}` for the stored times ({name} side)",
            )
    return compare_snapshots(old, new)


def compare_snapshots(old: Snapshot, new: Snapshot) -> SnapshotDiff:
    """Row-by-row differences from ``old`` to ``new`` (either may be empty: then every row is added or removed)."""
    keys = ["target_type", "target_uid"]
    values = [*EXPOSURE_COLUMNS, "metadata_json"]
    joined = old.positions.join(new.positions, on=keys, how="full", suffix="_after", coalesce=True)
    joined = joined.with_columns(
        pl.coalesce("unique_identifier", "unique_identifier_after").alias("unique_identifier"),
        pl.coalesce("display_label", "display_label_after").alias("display_label"),
    )
    in_old = pl.col("asset_uid").is_not_null() | pl.col("portfolio_uid").is_not_null()
    in_new = pl.col("asset_uid_after").is_not_null() | pl.col("portfolio_uid_after").is_not_null()
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_after")) for c in values)
    shape = [
        "target_type",
        "target_uid",
        "unique_identifier",
        "display_label",
        *[pl.col(c).alias(f"{c}_before") for c in values],
        *[pl.col(f"{c}_after") for c in values],
    ]
    ordered = joined.sort("target_type", "unique_identifier")
    return SnapshotDiff(
        before=old,
        after=new,
        added=ordered.filter(~in_old & in_new).select(shape),
        removed=ordered.filter(in_old & ~in_new).select(shape),
        changed=ordered.filter(in_old & in_new & differs).select(shape),
        unchanged=ordered.filter(in_old & in_new & ~differs).height,
    )
