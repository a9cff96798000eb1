"""Drafts, publishing and four-eyes approval (design section 13).

A draft is a position set saved with ``draft=True`` (:func:`msm.save_snapshot`): it has its own
(allocation, time), like any set, and reads leave it out unless asked (``include_drafts``).
:func:`publish_snapshot` flips its status to ``published`` and :func:`discard_draft` deletes it
(its rows are kept in ``target_positions_replaced``); each change is in one transaction with its
audit event (a discard removes the emptied set in a second one: DuckDB checks foreign keys
against committed rows).
Who saved a draft is the actor of its ``save`` / ``overwrite`` / ``restore`` events. With four-eyes
on (``four_eyes=True``, or ``MSM_FOUR_EYES=1`` when not given), none of them may publish it.

>>> import msm
>>> store = msm.Store(":memory:"); _ = msm.migrate(store)
>>> _ = msm.add_asset(store, "BTC"); _ = msm.add_account(store, "alpha", account_name="Alpha")
>>> _ = msm.add_allocation_model(store, "m"); _ = msm.add_allocation(store, "alpha-main", account="alpha", model="m")
>>> rows = [{"asset": "BTC", "weight_notional_exposure": 1.0}]
>>> _ = msm.save_snapshot(store, "alpha", "2026-03-01T00:00:00Z", rows, draft=True, actor="alice")
>>> msm.read_snapshot(store, "alpha").is_empty, list_drafts(store)["saved_by"].to_list()
(True, ['alice'])
>>> try:
...     publish_snapshot(store, "alpha", "2026-03-01T00:00:00Z", actor="alice", four_eyes=True)
... except msm.FourEyesError as refused:
...     print(refused.actor, refused.saved_by)
alice ['alice']
>>> publish_snapshot(store, "alpha", "2026-03-01T00:00:00Z", actor="bob", four_eyes=True).status
'published'
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import polars as pl

from msm import audit
from msm.errors import FourEyesError, NotADraftError, NotFoundError
from msm.services.registry import get_account
from msm.services.snapshots import Snapshot, SnapshotDiff, compare_snapshots, read_snapshot
from msm.store.connection import Store, fetch
from msm.timeutil import format_utc, parse_utc

__all__ = ["diff_draft", "discard_draft", "four_eyes_on", "list_drafts", "publish_snapshot"]

#: The events whose actor saved (wrote the rows of) a draft.
_SAVING_ACTIONS = ("save", "overwrite", "restore")


def four_eyes_on(four_eyes: bool | None = None) -> bool:
    """``four_eyes`` when given, else whether ``$MSM_FOUR_EYES`` is ``1`` (or ``true`` / ``yes`` / ``on``)."""
    if four_eyes is not None:
        return four_eyes
    return os.environ.get("MSM_FOUR_EYES", "").strip().lower() in ("1", "true", "yes", "on")


def _draft(store: Store, account: str | uuid.UUID, at: datetime | str, allocation: Any, refused: str) -> Snapshot:
    """The account's snapshot exactly at ``at`` (any status); refused unless it is a draft."""
    when = parse_utc(at, field="at", entity="snapshot")
    snap = read_snapshot(store, account, at=when, allocation=allocation, include_drafts=True)
    name = snap.account["unique_identifier"]
    if snap.is_empty:
        raise NotFoundError(
            "draft", f"account {name!r} at", format_utc(when), f"see `msm targets drafts --account {name}`"
        )
    if not snap.is_draft:
        raise NotADraftError(
            name,
            snap.position_set_time,  # type: ignore[arg-type]  # not empty
            snap.position_set_uid,  # type: ignore[arg-type]
            status=snap.status or "published",
            refused=refused,
            allocation=snap.allocation,
        )
    return snap


def _still_a_draft(con: Any, snap: Snapshot, refused: str) -> None:
    """Inside the write's transaction: the set is still a draft (nobody published or discarded it since)."""
    found = con.execute("SELECT status FROM position_set WHERE uid = ?::UUID", [snap.position_set_uid]).fetchall()
    if found != [("draft",)]:
        raise NotADraftError(
            snap.account["unique_identifier"],
            snap.position_set_time,  # type: ignore[arg-type]  # not empty
            str(snap.position_set_uid),
            status=found[0][0] if found else "gone",
            refused=refused,
            allocation=snap.allocation,
        )


def _event_time(snap: Snapshot) -> str:
    """The set's time as the save events write it (``...T00:00:00.000000Z``)."""
    return snap.position_set_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[union-attr]


def _saved_by(con: Any, position_set_uid: str) -> list[str]:
    """Every actor who saved the set's rows (its save / overwrite / restore events), sorted."""
    found = con.execute(
        "SELECT DISTINCT actor FROM audit_event WHERE entity_type = 'position_set' AND entity_uid = ?::UUID "
        "AND list_contains(?, action) ORDER BY actor",
        [position_set_uid, list(_SAVING_ACTIONS)],
    ).fetchall()
    return [actor for (actor,) in found]


def _summary(con: Any, position_set_uid: str) -> dict[str, Any]:
    """Rows and weight sum of a set (for its event)."""
    ((rows, weight_sum),) = con.execute(
        "SELECT count(*), coalesce(sum(weight_notional_exposure), 0.0) FROM target_positions "
        "WHERE position_set_uid = ?::UUID",
        [position_set_uid],
    ).fetchall()
    return {"rows": rows, "weight_sum": weight_sum}


def publish_snapshot(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    *,
    allocation: str | uuid.UUID | None = None,
    actor: str | None = None,
    reason: str | None = None,
    four_eyes: bool | None = None,
) -> Snapshot:
    """Publish the account's draft exactly at ``at``: its status becomes ``published``, with one ``publish`` event.

    Refused when there is no snapshot at ``at`` (:class:`NotFoundError`), when it is published
    already (:class:`NotADraftError`), and, with four-eyes on (:func:`four_eyes_on`), when the
    actor is one who saved it (:class:`FourEyesError`). One transaction: the flip and its event.
    """
    with audit.acting(actor, reason), store.connect():
        snap = _draft(store, account, at, allocation, "publish")
        uid, name = str(snap.position_set_uid), snap.account["unique_identifier"]
        with store.transaction() as con:
            who = audit.current().actor
            saved_by = _saved_by(con, uid)
            if four_eyes_on(four_eyes) and who in saved_by:
                raise FourEyesError(name, snap.position_set_time, uid, actor=who, saved_by=saved_by)  # type: ignore[arg-type]
            _still_a_draft(con, snap, "publish")
            # no RETURNING: DuckDB refuses an UPDATE ... RETURNING on a row a foreign key references
            con.execute("UPDATE position_set SET status = 'published' WHERE uid = ?::UUID", [uid])
            facts = {"position_set_time": _event_time(snap), "allocation": snap.allocation, **_summary(con, uid)}
            audit.record(
                con,
                "publish",
                "position_set",
                entity_uid=uid,
                account_uid=snap.account["uid"],
                before={**facts, "status": "draft", "saved_by": saved_by},
                after={**facts, "status": "published"},
            )
        return read_snapshot(store, snap.account["uid"], at=snap.position_set_time, allocation=snap.allocation)


def discard_draft(
    store: Store,
    account: str | uuid.UUID,
    at: datetime | str,
    *,
    allocation: str | uuid.UUID | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Delete the account's draft exactly at ``at`` (its rows are kept as a version), with one ``discard`` event.

    Refused when there is no snapshot at ``at`` or it is published. Returns the discarded set's
    ``position_set_uid``, ``account``, ``allocation``, ``position_set_time``, ``rows``, ``kept_as_version``.
    """
    with audit.acting(actor, reason), store.connect():
        snap = _draft(store, account, at, allocation, "discard")
        uid = str(snap.position_set_uid)
        with store.transaction() as con:
            _still_a_draft(con, snap, "discard")
            facts = {"position_set_time": _event_time(snap), "allocation": snap.allocation, **_summary(con, uid)}
            audit.keep_target_rows(con, "SELECT * FROM target_positions WHERE position_set_uid = ?::UUID", [uid])
            ((version,),) = con.execute(
                "SELECT max(version) FROM target_positions_replaced WHERE position_set_uid = ?::UUID", [uid]
            ).fetchall()
            con.execute("DELETE FROM target_positions WHERE position_set_uid = ?::UUID", [uid])
            audit.record(
                con,
                "discard",
                "position_set",
                entity_uid=uid,
                account_uid=snap.account["uid"],
                before={**facts, "status": "draft", "kept_as_version": version, "saved_by": _saved_by(con, uid)},
            )
        # DuckDB checks a foreign key against committed rows, so the emptied set goes in a second
        # transaction (as msm.delete_position_set's cascade does). Interrupted here, an empty draft
        # stays listed; discarding it again removes it (with its own event, of 0 rows).
        with store.transaction() as con:
            con.execute("DELETE FROM position_set WHERE uid = ?::UUID AND status = 'draft'", [uid])
    return {
        "position_set_uid": uid,
        "account": snap.account["unique_identifier"],
        "allocation": snap.allocation,
        "position_set_time": snap.position_set_time,
        "rows": facts["rows"],
        "kept_as_version": version,
    }


def list_drafts(store: Store, account: str | uuid.UUID | None = None) -> pl.DataFrame:
    """Every draft (of one account, or of all), oldest first, with who saved it last, when and why.

    Columns: ``account, allocation, position_set_time, rows, weight_sum, saved_by, saved_at,
    source, position_set_uid, reason`` (``reason``: the last save's, ``None`` when it gave none).
    """
    with store.connect() as con:
        account_uid = get_account(store, account)["uid"] if account is not None else None
        return fetch(
            con,
            """
            WITH saves AS (
                SELECT entity_uid, arg_max(actor, event_time) AS saved_by, max(event_time) AS saved_at,
                       arg_max_null(reason, event_time) AS reason
                FROM audit_event WHERE entity_type = 'position_set' AND list_contains($actions, action)
                GROUP BY entity_uid
            )
            SELECT a.unique_identifier AS account, al.unique_identifier AS allocation, p.position_set_time,
                   count(t.position_set_uid) AS rows, coalesce(sum(t.weight_notional_exposure), 0.0) AS weight_sum,
                   any_value(s.saved_by) AS saved_by, any_value(s.saved_at) AS saved_at, p.source,
                   p.uid::VARCHAR AS position_set_uid, any_value(s.reason) AS reason
            FROM position_set AS p
            JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid
            JOIN account AS a ON a.uid = al.account_uid
            LEFT JOIN target_positions AS t ON t.position_set_uid = p.uid AND t.time_index = p.position_set_time
            LEFT JOIN saves AS s ON s.entity_uid = p.uid
            WHERE p.status = 'draft' AND ($account IS NULL OR al.account_uid = $account::UUID)
            GROUP BY a.unique_identifier, al.unique_identifier, p.position_set_time, p.source, p.uid
            ORDER BY p.position_set_time, a.unique_identifier, allocation
            """,
            {"account": account_uid, "actions": list(_SAVING_ACTIONS)},
        )


def diff_draft(
    store: Store, account: str | uuid.UUID, at: datetime | str, *, allocation: str | uuid.UUID | None = None
) -> SnapshotDiff:
    """The draft exactly at ``at`` against the account's latest published snapshot (what publishing would change).

    With no published snapshot yet, every row of the draft is ``added``.
    """
    draft = _draft(store, account, at, allocation, "compare")
    published = read_snapshot(store, draft.account["uid"])
    return compare_snapshots(published, draft)
