"""Review: the draft snapshots, each with its diff to the published snapshot, published or discarded here.

Address: ``/review?account=ID`` shows that account's drafts (parameters declared in
:mod:`msm_app.links`). Drafts come from :func:`msm.list_drafts`; the diff is
:func:`msm.diff_draft` (the Snapshots page's diff); publishing and discarding are
:func:`msm.publish_snapshot` and :func:`msm.discard_draft`, audited writes recorded as the app's
actor with the reason typed here. With four-eyes on (``MSM_FOUR_EYES=1``), whoever saved a draft
cannot publish it: the refusal is shown beside the buttons.
"""

import polars as pl
import streamlit as st

import msm
from msm_app import links, ui

ALL = "(all)"
SS = st.session_state
TABLE_CONFIG = {
    "account": "Account",
    "position_set_time": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "allocation": "Allocation",
    "rows": "Rows",
    "weight_sum": ui.WEIGHT_SUM_COLUMN,
    "saved_by": "Saved by",
    "saved_at": st.column_config.DatetimeColumn("Saved at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "reason": st.column_config.TextColumn("Reason", help="The reason given when the draft was last saved"),
}
DIFF_CONFIG = ui.diff_config(sides=("{} (published)", "{} (draft)"))


def main() -> None:
    """The Review page."""
    links.show("review", render)


def render() -> None:
    """The page body: the drafts, one draft's diff, and its publish / discard buttons."""
    done = SS.pop("review_done", None)
    if done:
        st.success(done)
    who = ui.current_actor() or "nobody known: set MSM_USER"
    rule = "on: whoever saved a draft cannot publish it" if msm.four_eyes_on() else "off (MSM_FOUR_EYES=1 turns it on)"
    st.caption(f"You act as **{ui.escape_md(who)}**. Four-eyes is {rule}.")
    asked = links.read("review")
    drafts = msm.list_drafts(ui.store())
    names = [ALL, *sorted(set(drafts["account"].to_list()))]
    wanted = asked.get("account")
    account = st.selectbox("Account", names, index=names.index(wanted) if wanted in names else 0, key="review_account")
    links.keep("review", account=None if account == ALL else account)
    if account != ALL:
        drafts = drafts.filter(pl.col("account") == account)
    if drafts.height == 0:
        st.info("No draft waits for review. Save one from the Target set builder (**Save as draft**).")
        return
    st.caption(f"{drafts.height} draft{'s' if drafts.height != 1 else ''}, oldest first")
    ui.table(drafts, TABLE_CONFIG, key="review_table")
    rows = drafts.to_dicts()
    index = st.selectbox("Draft", range(len(rows)), format_func=lambda i: _label(rows[i]), key="review_draft")
    _one_draft(rows[index])


def _label(row: dict) -> str:
    return f"{row['account']} at {ui.when(row['position_set_time'])} ({row['allocation']}, saved by {row['saved_by']})"


def _one_draft(row: dict) -> None:
    """The chosen draft against the published snapshot, then the reason box and the two buttons."""
    diff = msm.diff_draft(ui.store(), row["account"], row["position_set_time"], allocation=row["allocation"])
    st.subheader("What publishing changes")
    if diff.before.is_empty:
        st.caption("The account has no published snapshot yet: every row of the draft is new.")
    else:
        st.caption(f"Against the published snapshot at {ui.when(diff.before.position_set_time)}.")
    changes = diff.to_frame()
    st.caption(
        f"{diff.added.height} added, {diff.removed.height} removed, {diff.changed.height} changed, "
        f"{diff.unchanged} unchanged"
    )
    if changes.height:
        shown = {c: config for c, config in DIFF_CONFIG.items() if c in changes.columns}
        ui.table(changes, shown, key="review_diff")
    reason = ui.reason("review_reason")
    left, right, note = st.columns([2, 2, 6])
    where = {"account": row["account"], "at": row["position_set_time"], "allocation": row["allocation"]}
    if left.button("Publish", type="primary", key="review_publish", help="Reads see the draft from then on"):
        _act(msm.publish_snapshot, where, reason, note, "Published")
    if right.button("Discard", key="review_discard", help="Delete the draft (its rows are kept in the audit trail)"):
        _act(msm.discard_draft, where, reason, note, "Discarded")


def _act(write, where: dict, reason: str | None, note, verb: str) -> None:
    """Publish or discard one draft; a refusal (four-eyes, published meanwhile) is shown beside the buttons."""
    try:
        write(ui.store(), where["account"], where["at"], allocation=where["allocation"], reason=reason)
    except msm.MsmError as exc:  # nothing was written
        ui.show_error(exc, where=note)
        return
    ui.after_write()
    SS.review_done = f"{verb} the draft of {ui.escape_md(where['account'])} at {ui.when(where['at'])}."
    st.rerun()


if __name__ == "__main__":
    main()
