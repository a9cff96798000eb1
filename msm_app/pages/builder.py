"""Target set builder: pick an account and a UTC time, edit targets (assets and portfolios) in a grid,
see every rule checked and the look-through preview live, then save one snapshot atomically.

Address: ``/builder?account=ID`` opens the builder on that account (see :mod:`msm_app.links`).
The grid, its checks, the preview and the save buttons are one ``st.fragment``: an edit in the grid
reruns only them, not the whole page.
"""

from datetime import UTC, datetime

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import charts, links, ui
from msm_app import grid as grids

SS = st.session_state
#: Grid column widths in pixels (fixed, so the layout is the same at every window size).
TARGET_WIDTH, EXPOSURE_WIDTH = 240, 100
#: Blank rows the grid starts with (not targets until something is typed in them).
STARTER_ROWS = 2
PREVIEW_MODES = {"the snapshot time": "position-set", "now": "now"}


def main() -> None:
    """The Target set builder page."""
    SS.setdefault("builder_version", 0)
    SS.setdefault("builder_base", grids.empty_grid(STARTER_ROWS))
    links.show("builder", render)


def _reset_grid(frame: pl.DataFrame) -> None:
    """Replace the grid's rows (a new editor key drops the old edits)."""
    SS.builder_base = frame
    SS.builder_version += 1


def render() -> None:
    """The page body: which account, mandate and time; where the rows start from; then the grid fragment."""
    path = ui.db_path()
    accounts = ui.accounts(path)
    if accounts.height == 0:
        st.info(
            "There is no account yet. Add one (and its target allocation) under **Reference data**, or load the demo "
            "data from the **Overview**."
        )
        links.link("reference", "Reference data")
        return
    top = st.columns([3, 3, 2, 2])
    account = ui.account_picker(
        accounts, key="builder_account", wanted=links.read("builder").get("account"), where=top[0]
    )
    links.keep("builder", account=account)
    allocation = _allocation(top[1], account)
    if allocation is None:
        return
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    day = top[2].date_input("Date (UTC)", value=now.date(), key="builder_date", help="Snapshot date, in UTC.")
    clock = top[3].time_input(
        "Time (UTC)",
        value=now.time(),
        key="builder_time",
        step=60,
        help="Snapshot time of day, in UTC (every time in the workbench is UTC).",
    )
    at = ui.utc_datetime(day, clock, now)
    st.caption(f"Snapshot time: **{ui.when(at)}** ({at.isoformat()})")
    options = ui.target_options(path)
    _start_from(account, options)
    _grid_section(account, allocation, at, options)


def _allocation(where, account: str) -> str | None:
    """The account's active target allocation to save under (``None``, with advice, when it has none)."""
    allocations = ui.allocations(ui.db_path(), account)
    if allocations.height == 0:
        where.selectbox(
            "Target allocation", [], key="builder_allocation", help="The account's mandate the snapshot belongs to."
        )
        st.warning(
            f"Account {ui.escape_md(account)} has no active target allocation (mandate). Create one under **Reference "
            "data → Target allocations**, or with `msm allocations add ID --account ACCOUNT --model MODEL`."
        )
        links.link("reference", "Reference data")
        return None
    return where.selectbox(
        "Target allocation",
        allocations["unique_identifier"].to_list(),
        key="builder_allocation",
        help="The mandate (account → allocation model) this snapshot belongs to.",
    )


def _start_from(account: str, options: pl.DataFrame) -> None:
    """Load a stored snapshot of the account, an empty set, or a file into the grid."""
    history = ui.history(ui.db_path(), account)
    with st.expander("Start from a snapshot or a file", expanded=False):
        start = st.columns([2, 3, 2])
        choices = ["Empty set"] + (["Latest snapshot", "An earlier snapshot"] if history.height else [])
        source = start[0].radio("Start from", choices, key="builder_start", help="Which rows to load into the grid.")
        chosen_time = None
        if source == "An earlier snapshot":
            chosen_time = start[1].selectbox(
                "Snapshot",
                history["position_set_time"].to_list(),
                format_func=ui.when,
                key="builder_start_time",
                help="Any stored snapshot of this account.",
            )
        if start[2].button("Load into the grid", key="builder_load", help="Replaces the rows in the grid."):
            if source == "Empty set":
                _reset_grid(grids.empty_grid(STARTER_ROWS))
            else:
                snap = msm.read_snapshot(ui.store(), account, at=chosen_time)
                _reset_grid(grids.grid_from_rows(snap.positions, options))
            st.rerun()
        upload = st.file_uploader(
            "…or import rows from a file",
            type=ui.UPLOAD_TYPES,
            key=f"builder_upload_{SS.builder_version}",
            help="CSV, JSON, Parquet or Excel with `asset` or `portfolio` (unique identifiers), one exposure "
            "column and optional `metadata_json`, like `msm targets save --file`.",
        )
        if upload is not None:
            _import(upload, options)


def _import(upload, options: pl.DataFrame) -> None:
    """Rows from an uploaded file into the grid, or every problem listed and the grid left as it was."""
    frame = ui.read_upload(upload, entity="target file")
    if frame is None:
        return
    check = msm.check_target_set(ui.store(), frame)
    if check.errors:
        summary = f"{len(check.errors)} problem(s) in {upload.name}; the grid was not changed"
        ui.show_error(msm.ValidationError(check.errors, summary=summary))
        return
    _reset_grid(grids.grid_from_rows(frame, options))
    st.rerun()


@st.fragment
def _grid_section(account: str, allocation: str, at: datetime, options: pl.DataFrame) -> None:
    """The grid, its checks, the preview and the saves: rerun alone on each edit (a fragment)."""
    ui.guard(lambda: _grid_body(account, allocation, at, options))


def _grid_body(account: str, allocation: str, at: datetime, options: pl.DataFrame) -> None:
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.subheader("Targets")
        grid = _grid(options)
        rows = grids.rows_from_grid(grid, options)
        check = msm.check_target_set(ui.store(), rows)
        _show_checks(grid, check)
    with right:
        _preview(check, at)
    st.divider()
    _save_row(account, allocation, at, rows, check)
    _apply_to_many(rows, check, at)


def _grid(options: pl.DataFrame) -> pl.DataFrame:
    """The editable grid; its rows as typed, without the blank ones (a blank row is not a target yet)."""
    edited = st.data_editor(
        SS.builder_base.to_pandas(),
        key=f"builder_grid_{SS.builder_version}",
        num_rows="dynamic",
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={
            # Not `required`: the grid would mark its blank starter rows as errors before anything is typed.
            # A row with an exposure and no target is named by the checks below instead.
            "target": st.column_config.SelectboxColumn(
                "Target",
                options=options["label"].to_list(),
                width=TARGET_WIDTH,
                help="An asset (held directly) or a portfolio (held as a sleeve, expanded only on request). "
                "Type to search.",
            ),
            **{c: {**config, "width": EXPOSURE_WIDTH} for c, config in ui.EXPOSURE_CONFIG.items()},
            "notes": st.column_config.TextColumn(
                "Notes", help='Stored in metadata_json as {"notes": …}; a JSON object is stored as given.'
            ),
        },
    )
    grid = pl.from_pandas(edited) if len(edited.columns) else grids.empty_grid()
    return grids.without_blank_rows(grid)


def _show_checks(grid: pl.DataFrame, check: msm.TargetSetCheck) -> None:
    """The weight sum, the residual, and each row that breaks a rule with the rule it breaks."""
    by_row = check.messages_by_row()
    metrics = st.columns(3)
    metrics[0].metric(
        "Weight sum",
        ui.pct(check.weight_sum),
        help="Sum of the weight targets that pass every rule; never renormalized.",
    )
    metrics[1].metric("Residual", ui.pct(check.residual), help="1 − weight sum: the unallocated part of the mandate.")
    metrics[2].metric("Rows with problems", f"{len({r for r in by_row if r is not None}):,}")
    if grid.height == 0:
        st.info(
            "Add a row per target: pick an asset or a portfolio and give one exposure (a weight, a notional or a "
            "quantity)."
        )
        return
    for message in by_row.get(None, []):
        st.error(ui.escape_md(message))
    bad = grids.problems_table(grid, by_row)
    if bad.height:
        many = bad.height != 1
        st.error(
            f"{bad.height} row{'s break' if many else ' breaks'} a rule; nothing can be saved until "
            f"{'they are' if many else 'it is'} fixed."
        )
        st.dataframe(
            bad,
            hide_index=True,
            placeholder="—",
            key="builder_problems",
            column_config={
                "row": st.column_config.NumberColumn("Row", help="Row number in the grid, from the top"),
                "target": "Target",
                "check": st.column_config.TextColumn("Problem", width="large"),
            },
        )


def _preview(check: msm.TargetSetCheck, at: datetime) -> None:
    """The look-through of the rows that pass: chart and netted table (one expansion)."""
    st.subheader("Look-through preview")
    weights_as_of = ui.weights_choice(
        PREVIEW_MODES,
        horizontal=True,
        key="builder_weights",
        help="Which stored composition expands each portfolio target: the latest at or before this time.",
    )
    if check.rows.height == 0:
        st.caption("Add valid rows to see the asset exposure they would have.")
        return
    view = msm_portfolios.look_through(ui.store(), check.rows, at=at, weights_as_of=weights_as_of, skip_missing=True)
    for name, when in view.missing:
        st.warning(
            f"Portfolio {ui.escape_md(name)} has no composition at or before {ui.when(when)}: it is left out of this "
            "preview (saving is still allowed; expanding it later needs a composition)."
        )
    ui.composition_warnings(view.diagnostics)
    charts.exposure_chart(view.by_source, key="builder_chart")
    st.dataframe(
        view.net.select("asset", *msm.EXPOSURE_COLUMNS, "n_sources"),
        hide_index=True,
        placeholder="—",
        key="builder_preview_table",
        column_config={
            "asset": "Asset",
            **ui.EXPOSURE_CONFIG,
            "n_sources": st.column_config.NumberColumn("Sources", help="Target rows that contribute to this asset"),
        },
    )
    st.caption(f"Look-through weight sum {ui.pct(view.weight_sum)} (the set's own: {ui.pct(check.weight_sum)}).")
    ui.lineage_tree(view, key="builder_tree")  # nested portfolios: each one's path down to the assets


def _save_row(account: str, allocation: str, at: datetime, rows: pl.DataFrame, check: msm.TargetSetCheck) -> None:
    """The reason, **Save snapshot** / **Save as draft** (a replace asks first), **Export grid as CSV**, the result."""
    reason = ui.reason("builder_reason")
    pending = {"account": account, "allocation": allocation, "at": at, "rows": rows, "reason": reason}
    cols = st.columns([2, 2, 2, 4])
    if cols[0].button(
        "Save snapshot",
        type="primary",
        key="builder_save",
        disabled=not check.ok,
        help="Writes the whole set as one snapshot of the chosen allocation at the chosen time.",
    ):
        _first_save({**pending, "draft": False})
    if cols[1].button(
        "Save as draft",
        key="builder_save_draft",
        disabled=not check.ok,
        help="Saves the set as a draft: reads, drift and exports leave it out until it is published (Review page).",
    ):
        _first_save({**pending, "draft": True})
    ui.download(
        "Export grid as CSV",
        rows.write_csv(),
        f"{account}-targets.csv",
        key="builder_export",
        help="The rows as a file `msm targets save --file` reads.",
        where=cols[2],
    )
    if not check.ok:
        cols[3].caption("Fix the problems marked beside the rows to save.")
    if SS.get("builder_pending"):
        _confirm_overwrite()
    saved = SS.get("builder_saved")
    if saved:
        verb = "Replaced" if saved["replaced"] else "Saved"
        kind = "draft" if saved.get("draft") else "snapshot"
        st.success(
            f"{verb} the {kind} of {ui.escape_md(saved['account'])} at {ui.when(saved['at'])} ({saved['rows']} rows)."
        )
        if saved.get("draft"):
            links.link("review", "Review it", account=saved["account"])
        else:
            links.link("snapshots", "Open it in Snapshots", account=saved["account"], at=saved["at"])


def _first_save(pending: dict) -> None:
    """Save without replacing; when a snapshot exists at that time, ask (the dialog) before replacing it."""
    try:
        _save(pending, overwrite=False)
    except msm.SnapshotExistsError as exc:
        SS.builder_pending = {**pending, "existing": exc}
    except msm.MsmError as exc:  # shown beside the button; nothing was written
        ui.show_error(exc)


@st.dialog("Replace the existing snapshot?")
def _confirm_overwrite() -> None:
    """Ask before a save replaces the snapshot stored at that time (named from the refusal's fields)."""
    pending = SS.get("builder_pending")
    if not pending:
        st.rerun()
    existing: msm.SnapshotExistsError = pending["existing"]
    st.write(
        f"Account {ui.escape_md(existing.account)} already has a snapshot at {ui.when(existing.position_set_time)} "
        f"(allocation {ui.escape_md(existing.allocation or existing.account_target_allocation_uid)}). Replacing it "
        "swaps the whole set for the rows in the grid; the old rows are kept as a version that the Snapshots page "
        "(or `msm targets restore`) can bring back."
    )
    reason = ui.reason("builder_replace_reason", value=pending.get("reason"))
    left, right = st.columns(2)
    if left.button(
        "Replace it", type="primary", key="builder_confirm_replace", help="Overwrite the stored snapshot at this time"
    ):
        try:
            _save({**pending, "reason": reason}, overwrite=True)
        except msm.MsmError as exc:  # e.g. a draft over a published snapshot: shown here, nothing was written
            ui.show_error(exc)
            return
        SS.builder_pending = None
        st.rerun()
    if right.button("Cancel", key="builder_confirm_cancel", help="Keep the stored snapshot; nothing is written"):
        SS.builder_pending = None
        st.rerun()


def _save(pending: dict, *, overwrite: bool) -> None:
    """Write the pending set as one snapshot and remember what was saved for the confirmation."""
    saved = msm.save_snapshot(
        ui.store(),
        pending["account"],
        pending["at"],
        pending["rows"],
        allocation=pending["allocation"],
        overwrite=overwrite,
        source="workbench",
        draft=pending.get("draft", False),
        reason=pending.get("reason"),
    )
    ui.after_write()
    SS.builder_saved = {
        "account": pending["account"],
        "at": saved.position_set_time,
        "uid": saved.position_set_uid,
        "rows": saved.positions.height,
        "replaced": overwrite,
        "draft": saved.is_draft,
    }


def _apply_to_many(rows: pl.DataFrame, check: msm.TargetSetCheck, at: datetime) -> None:
    """Save the same rows at the same time to several accounts, in one transaction."""
    with st.expander("Save the same set to several accounts"):
        st.caption(
            "Saves these rows at the same time to every chosen account, in one transaction: all accounts or none."
        )
        models = ui.model_names(ui.db_path())
        model = st.selectbox(
            "Accounts following the allocation model",
            ["(choose accounts by hand)", *models],
            key="builder_many_model",
            help="Pre-selects every account whose active allocation follows this model.",
        )
        chosen = st.multiselect(
            "Accounts",
            ui.accounts(ui.db_path())["unique_identifier"].to_list(),
            default=ui.accounts_of_model(ui.db_path(), model) if model in models else [],
            key=f"builder_many_accounts_{model}",
            help="Each needs exactly one active target allocation.",
        )
        overwrite = st.checkbox(
            "Replace existing snapshots at this time",
            key="builder_many_overwrite",
            help="Without it, an existing snapshot at this time stops the whole save.",
        )
        reason = ui.reason("builder_many_reason")
        if st.button(
            f"Save to {len(chosen)} account{'s' if len(chosen) != 1 else ''}",
            key="builder_many_save",
            disabled=not (check.ok and chosen),
            help="One transaction: every account is saved, or none.",
        ):
            try:
                written = msm.save_target_set_to_accounts(
                    ui.store(), chosen, at, rows, overwrite=overwrite, source="workbench", reason=reason
                )
            except msm.MsmError as exc:  # shown here, beside the button; nothing was written
                ui.show_error(exc)
                return
            ui.after_write()
            st.success(
                f"Saved {written.height} snapshots at {ui.when(at)} ({int(written['replaced'].sum())} replaced)."
            )


if __name__ == "__main__":
    main()
