"""Audit: every change to the workbench, who made it, when and why, with the values before and after.

Address: ``/audit?account=ID`` shows that account's events (parameters declared in
:mod:`msm_app.links`). The events come from :func:`msm.audit_events`; every write of the app, the
command line and notebooks records them in the same transaction as the change.
"""

from datetime import UTC, date, datetime, time

import polars as pl
import streamlit as st

import msm
from msm.audit import ACTIONS, ENTITY_TYPES, event_labels
from msm_app import links, ui

ALL = "(all)"
#: How many events the table shows at most (the newest).
LIMIT = 1000
#: The earliest day the time filters offer.
EARLIEST = date(2000, 1, 1)
TABLE_CONFIG = {
    "event_time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "actor": "Actor",
    "action": "Action",
    "entity_type": "Entity",
    "what": st.column_config.TextColumn("What", help="Its key (an identifier, a snapshot's time) or its counts"),
    "account": "Account",
    "reason": "Reason",
    "entity_uid": "Entity uid",
}


def main() -> None:
    """The Audit page."""
    links.show("audit", render)


def render() -> None:
    """The page body: the filters, the events table, and one event's before and after."""
    who = ui.current_actor() or "nobody known: set MSM_USER"
    st.caption(f"Writes from this app are recorded as **{ui.escape_md(who)}**.")
    asked = links.read("audit")
    accounts = ui.accounts(ui.db_path())
    names = [ALL, *accounts["unique_identifier"].to_list()] if accounts.height else [ALL]
    wanted = asked.get("account")
    left, middle, right = st.columns(3)
    account = left.selectbox("Account", names, index=names.index(wanted) if wanted in names else 0, key="audit_account")
    action = middle.selectbox("Action", [ALL, *ACTIONS], key="audit_action")
    entity_type = right.selectbox("Entity", [ALL, *ENTITY_TYPES], key="audit_entity")
    left, middle, right = st.columns(3)
    actor = left.text_input("Actor", key="audit_actor", help="Only this actor's changes (exact name).").strip()
    since = middle.date_input("From (UTC)", value=None, min_value=EARLIEST, key="audit_since")
    until = right.date_input("To (UTC, inclusive)", value=None, min_value=EARLIEST, key="audit_until")
    links.keep("audit", account=None if account == ALL else account)
    events = msm.audit_events(
        ui.store(),
        account=None if account == ALL else account,
        actor=actor or None,
        action=None if action == ALL else action,
        entity_type=None if entity_type == ALL else entity_type,
        since=datetime.combine(since, time.min, UTC) if since else None,
        until=datetime.combine(until, time.max, UTC) if until else None,
        limit=LIMIT,
    )
    if events.height == 0:
        st.info("No change matches these filters.")
        return
    events = events.with_columns(event_labels(events))
    shown = f"the newest {LIMIT:,}" if events.height == LIMIT else f"{events.height:,}"
    st.caption(f"{shown} event{'s' if events.height != 1 else ''}, newest first")
    ui.table(events, TABLE_CONFIG, key="audit_table")
    _one_event(events)


def _label(row: dict) -> str:
    when = row["event_time"].strftime("%Y-%m-%d %H:%M:%S")
    about = f" of {row['account']}" if row["account"] else ""
    return f"{when} · {row['actor']} · {row['action']} {row['entity_type']} {row['what']}{about}"


def _one_event(events: pl.DataFrame) -> None:
    """One chosen event's reason and its values before and after."""
    st.subheader("Before and after")
    rows = events.to_dicts()
    index = st.selectbox(
        "Event", range(len(rows)), format_func=lambda i: _label(rows[i]), key="audit_event", help="Newest first."
    )
    row = rows[index]
    if row["reason"]:
        st.markdown(f"**Reason:** {ui.escape_md(row['reason'])}")
    before, after = st.columns(2)
    for column, title, value in ((before, "Before", row["before_json"]), (after, "After", row["after_json"])):
        with column:
            st.caption(title)
            if value is None:
                st.text("(nothing)")
            else:
                st.json(value, expanded=True)


if __name__ == "__main__":
    main()
