"""The audit trail: who changed what, when and why, recorded in the same transaction as the change.

Every write service of the workbench takes ``actor=None, reason=None`` and runs inside
:func:`acting`; inside its own transaction it calls :func:`record` (one event) or
:func:`record_select` (many events from one ``INSERT ... SELECT``, never a Python loop over rows).
So a write that commits has its events, and a write that is refused or rolled back has none.

The actor is, in order: the ``actor`` given to the service (``msm ... --as NAME``), else the actor of
an enclosing :func:`acting` block (a service called by another service), else ``$MSM_USER``, else
the operating-system user. It must not be blank; a reason, when given, must not be blank either.
Both rules are declared once here (:data:`ACTOR_RULES`, run by the rule engine) and once as CHECKs
in ``msm/store/sql/msm_0004_audit_trail.sql``.

>>> import msm
>>> store = msm.Store(":memory:"); _ = msm.migrate(store)
>>> _ = msm.add_asset(store, "BTC", actor="alice", reason="new coin")
>>> msm.audit_events(store).select("actor", "action", "entity_type", "reason").row(0)
('alice', 'add', 'asset', 'new coin')
>>> resolve_actor("  ")
Traceback (most recent call last):
msm.errors.ValidationError: 1 problem found; nothing was stored:
  audit event: `actor` = '  ': must not be blank; give --as NAME (actor=...) or set MSM_USER
"""

from __future__ import annotations

import functools
import getpass
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from msm.contract import STORAGE_COLUMNS as TARGET_COLUMNS
from msm.errors import NotFoundError, ValidationError
from msm.rules import Rule, clean_text, find_violations, raise_violations
from msm.store.connection import Store, fetch
from msm.timeutil import format_utc, parse_utc

__all__ = [
    "ACTIONS",
    "ACTOR_RULES",
    "ENTITY_TYPES",
    "TARGET_COLUMNS",
    "Acting",
    "acting",
    "audit_events",
    "current",
    "default_actor",
    "event_labels",
    "keep_target_rows",
    "record",
    "record_select",
    "resolve_actor",
]

#: What an event says happened (the CHECK ``ck_audit_event_action``).
ACTIONS = ("add", "update", "delete", "save", "overwrite", "restore", "import", "publish", "discard")
#: What an event is about (the CHECK ``ck_audit_event_entity_type``).
ENTITY_TYPES = (
    "asset",
    "portfolio",
    "account_group",
    "account",
    "allocation_model",
    "allocation",
    "position_set",
    "composition",
    "holdings_set",
    "price",
    "fx_rate",
)
MAX_ACTOR = 200
MAX_REASON = 2000
_ENTITY = "audit event"

#: The rules on who and why (one row: ``actor``, ``reason``), as the CHECKs of msm 0004 say.
ACTOR_RULES = (
    Rule(
        _ENTITY,
        "actor",
        "actor_known",
        "nobody is known to record this write as: give --as NAME (actor=...) or set MSM_USER",
        pl.col("actor").is_null(),
    ),
    Rule(
        _ENTITY,
        "actor",
        "actor_not_blank",
        "must not be blank; give --as NAME (actor=...) or set MSM_USER",
        pl.col("actor").is_not_null() & clean_text("actor").is_null(),
    ),
    Rule(
        _ENTITY,
        "actor",
        "actor_length",
        f"is longer than {MAX_ACTOR} characters",
        pl.col("actor").str.len_chars() > MAX_ACTOR,
    ),
    Rule(
        _ENTITY,
        "reason",
        "reason_not_blank",
        "must not be blank when given; leave it out instead",
        pl.col("reason").is_not_null() & clean_text("reason").is_null(),
    ),
    Rule(
        _ENTITY,
        "reason",
        "reason_length",
        f"is longer than {MAX_REASON} characters",
        pl.col("reason").str.len_chars() > MAX_REASON,
    ),
)


@dataclass(frozen=True)
class Acting:
    """Who is writing and why (``reason`` may be ``None``; inside :func:`acting`, ``actor`` ``None`` is the default)."""

    actor: str | None
    reason: str | None = None


_CURRENT: ContextVar[Acting | None] = ContextVar("msm_audit_acting", default=None)


def default_actor() -> str | None:
    """``$MSM_USER`` (when set and not empty), else the operating-system user (``None`` when unknown)."""
    user = os.environ.get("MSM_USER", "").strip()  # a blank $MSM_USER names nobody
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor in the password database
        return None


@functools.lru_cache(maxsize=256)
def _check(actor: str | None, reason: str | None) -> None:
    """:data:`ACTOR_RULES` on one actor and reason (a pair found good is remembered: it is checked on every write)."""
    frame = pl.DataFrame({"actor": [actor], "reason": [reason]}, schema={"actor": pl.String, "reason": pl.String})
    violations = find_violations(frame, ACTOR_RULES, row="__one")
    raise_violations(violations.with_columns(pl.lit(None, pl.Int64).alias("row")))


def resolve_actor(actor: str | None = None) -> str:
    """``actor`` when given, else the enclosing :func:`acting` block's, else ``$MSM_USER``, else the OS user."""
    if actor is None:
        outer = _CURRENT.get()
        actor = outer.actor if outer is not None and outer.actor is not None else default_actor()
    _check(actor, None)
    return actor  # type: ignore[return-value]  # _check refused None


@contextmanager
def acting(actor: str | None = None, reason: str | None = None) -> Iterator[Acting]:
    """Within the block, writes are recorded as made by ``actor`` for ``reason``.

    What is not given comes from an enclosing block, so a service called by another service records
    the caller's actor and reason. Values given are checked at once; the default actor
    (:func:`default_actor`) only when a write records, so a read never needs one.
    """
    outer = _CURRENT.get()
    who = actor if actor is not None else (outer.actor if outer is not None else None)
    why = reason if reason is not None else (outer.reason if outer is not None else None)
    _check(who if who is not None else "default", why)
    token = _CURRENT.set(Acting(who, why))
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        _CURRENT.reset(token)


def current() -> Acting:
    """The actor (resolved: :func:`resolve_actor`) and reason a write records now."""
    found = _CURRENT.get()
    return Acting(resolve_actor(), found.reason if found is not None else None)


def _plain(value: Any) -> str:
    """A value JSON cannot hold as such: a time as ISO-8601 UTC text, anything else as text."""
    return format_utc(value) if isinstance(value, datetime) else str(value)


def _json(value: Mapping[str, Any] | str | None) -> str | None:
    """``value`` as JSON text (text is taken as JSON already, as DuckDB's ``to_json`` wrote it)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=_plain, sort_keys=True)


def record(
    con: duckdb.DuckDBPyConnection,
    action: str,
    entity_type: str,
    *,
    entity_uid: str | None = None,
    account_uid: str | None = None,
    before: Mapping[str, Any] | str | None = None,
    after: Mapping[str, Any] | str | None = None,
) -> None:
    """Append one event on ``con``, inside the caller's transaction (the actor and reason of :func:`current`).

    ``before`` / ``after`` are the row as a mapping, or as JSON text (a row's ``to_json`` read from DuckDB).
    """
    who = current()
    con.execute(
        "INSERT INTO audit_event (uid, event_time, actor, action, entity_type, entity_uid, account_uid, reason, "
        "before_json, after_json) VALUES (gen_random_uuid(), now(), ?, ?, ?, ?::UUID, ?::UUID, ?, ?::JSON, ?::JSON)",
        [who.actor, action, entity_type, entity_uid, account_uid, who.reason, _json(before), _json(after)],
    )


def record_select(
    con: duckdb.DuckDBPyConnection,
    entity_type: str,
    select: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> None:
    """Append one event per row of ``select`` on ``con`` (one ``INSERT ... SELECT``, in the caller's transaction).

    ``select`` (SQL from code, never from a user) yields ``action, entity_uid, account_uid,
    before_json, after_json``; ``params`` are its parameters, positional or named.
    """
    who = current()
    if isinstance(params, Mapping):
        marks = ("$__audit_actor", "$__audit_type", "$__audit_reason")
        bound: Any = {**params, "__audit_actor": who.actor, "__audit_type": entity_type, "__audit_reason": who.reason}
    else:
        marks = ("?", "?", "?")
        bound = [who.actor, entity_type, who.reason, *(params or [])]
    con.execute(
        "INSERT INTO audit_event (uid, event_time, actor, action, entity_type, entity_uid, account_uid, reason, "
        f"before_json, after_json) SELECT gen_random_uuid(), now(), {marks[0]}, e.action, {marks[1]}, "
        f"e.entity_uid::UUID, e.account_uid::UUID, {marks[2]}, e.before_json::JSON, e.after_json::JSON "
        f"FROM ({select}) AS e",
        bound,
    )


def keep_target_rows(con: duckdb.DuckDBPyConnection, rows: str, params: Sequence[Any] = ()) -> None:
    """Copy the target rows ``rows`` selects into ``target_positions_replaced`` (one ``INSERT ... SELECT``).

    Each position set's rows become its next version (1 for the first replaced one), stamped with
    the transaction's time, the current actor and the set's source and metadata. ``rows`` is SQL
    from code selecting ``target_positions`` rows; ``params`` its positional parameters.
    """
    columns = ", ".join(TARGET_COLUMNS)
    con.execute(
        f"""
        INSERT INTO target_positions_replaced ({columns}, version, replaced_at, replaced_by, set_source,
                                               set_metadata_json)
        SELECT {", ".join(f"t.{c}" for c in TARGET_COLUMNS)}, coalesce(v.version, 0) + 1, now(), ?, ps.source,
               ps.metadata_json
        FROM ({rows}) AS t
        JOIN position_set AS ps ON ps.uid = t.position_set_uid
        LEFT JOIN (
            SELECT r.position_set_uid, max(r.version) AS version FROM target_positions_replaced AS r
            WHERE r.position_set_uid IN (SELECT DISTINCT s.position_set_uid FROM ({rows}) AS s)
            GROUP BY ALL
        ) AS v ON v.position_set_uid = t.position_set_uid
        """,
        [current().actor, *params, *params],
    )


def _account_uid(store: Store, con: duckdb.DuckDBPyConnection, account: str) -> str:
    """The uid of ``account`` (unique identifier or uid), or of a deleted account its events name."""
    from msm.services.registry import get_account  # the registry imports this module

    try:
        return get_account(store, account)["uid"]
    except NotFoundError:
        found = con.execute(
            "SELECT entity_uid::VARCHAR FROM audit_event WHERE entity_type = 'account' AND "
            "(entity_uid::VARCHAR = lower(trim($a)) OR json_extract_string(before_json, '$.unique_identifier') = $a "
            "OR json_extract_string(after_json, '$.unique_identifier') = $a) ORDER BY event_time DESC LIMIT 1",
            {"a": account},
        ).fetchall()
        if not found:
            raise
        return found[0][0]


# -- reading ---------------------------------------------------------------------------------------
#: The keys of an event's values that name what it is about, in order of preference.
WHAT_KEYS = (
    "unique_identifier",
    "portfolio",
    "group_name",
    "allocation_model_name",
    "position_set_time",
    "holdings_time",
)


def event_labels(events: pl.DataFrame) -> pl.Series:
    """``what`` each event of :func:`audit_events` is about: its row's key, else its counts, else its entity uid.

    The values after the event (before it, for a delete) are read: the first of :data:`WHAT_KEYS`
    they hold (``BTC``, ``CRYPTO-EW``, a snapshot's time), else a market-data delete's ``N deleted``,
    an import's ``N added, M updated`` or a set's ``N rows``.

    >>> event_labels(pl.DataFrame({"entity_uid": ["u1", None], "before_json": [None, None],
    ...     "after_json": ['{"unique_identifier": "BTC"}', '{"added": 2, "updated": 0}']})).to_list()
    ['BTC', '2 added, 0 updated']
    """
    side = pl.coalesce("after_json", "before_json")

    def value(key: str) -> pl.Expr:
        return side.str.json_path_match(f"$.{key}")

    counts = value("added") + pl.lit(" added, ") + value("updated") + pl.lit(" updated")
    return events.select(
        pl.coalesce(
            *[value(key) for key in WHAT_KEYS],
            value("deleted") + pl.lit(" deleted"),
            value("rows") + pl.lit(" rows"),
            counts,
            pl.col("entity_uid"),
            pl.lit(""),
        ).alias("what")
    ).to_series()


def audit_events(
    store: Store,
    *,
    account: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    entity_type: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int | None = None,
) -> pl.DataFrame:
    """The events, newest first, filtered by account (unique identifier or uid), actor, action, type and time.

    ``since`` / ``until`` are inclusive aware times. Columns: ``event_time, actor, action,
    entity_type, entity_uid, account_uid, account, reason, before_json, after_json, uid``. A deleted
    account is still found by its unique identifier, and named in ``account``, from its own events.
    """

    start = parse_utc(since, field="since", entity=_ENTITY) if since is not None else None
    end = parse_utc(until, field="until", entity=_ENTITY) if until is not None else None
    for field, value, allowed in (("action", action, ACTIONS), ("entity_type", entity_type, ENTITY_TYPES)):
        if value is not None and value not in allowed:
            raise ValidationError.single(_ENTITY, field, value, f"must be one of {', '.join(allowed)}")
    with store.connect() as con:
        account_uid = _account_uid(store, con, account) if account is not None else None
        return fetch(
            con,
            """
            WITH named AS (  -- every account an event names: its identifier now, or as its last event had it
                SELECT entity_uid AS uid,
                       arg_max(coalesce(json_extract_string(after_json, '$.unique_identifier'),
                                        json_extract_string(before_json, '$.unique_identifier')), event_time) AS name
                FROM audit_event WHERE entity_type = 'account' GROUP BY entity_uid
            )
            SELECT e.event_time, e.actor, e.action, e.entity_type, e.entity_uid::VARCHAR AS entity_uid,
                   e.account_uid::VARCHAR AS account_uid, coalesce(a.unique_identifier, n.name) AS account, e.reason,
                   e.before_json::VARCHAR AS before_json, e.after_json::VARCHAR AS after_json, e.uid::VARCHAR AS uid
            FROM audit_event AS e
            LEFT JOIN account AS a ON a.uid = e.account_uid
            LEFT JOIN named AS n ON n.uid = e.account_uid
            WHERE ($account IS NULL OR e.account_uid = $account::UUID)
              AND ($actor IS NULL OR e.actor = $actor)
              AND ($action IS NULL OR e.action = $action)
              AND ($type IS NULL OR e.entity_type = $type)
              AND ($since IS NULL OR e.event_time >= $since)
              AND ($until IS NULL OR e.event_time <= $until)
            ORDER BY e.event_time DESC, e.entity_type, e.entity_uid, e.uid
            LIMIT $limit
            """,
            {
                "account": account_uid,
                "actor": actor,
                "action": action,
                "type": entity_type,
                "since": start,
                "until": end,
                "limit": limit,
            },
        )
