"""Target set builder: pick an account and a UTC time, edit targets (assets and portfolios) in a grid,
see every rule checked and the look-through preview live, then save one snapshot atomically."""

import tempfile
from datetime import UTC, date, datetime, time
from pathlib import Path

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm.io import read_table_file
from msm_app import charts, ui
from msm_app import grid as grids

st.title("Target set builder")
st.caption(
    "Build an account's target set from direct assets and portfolios, check it as you type, preview its "
    "look-through exposure, and save it as a UTC-stamped snapshot."
)

SS = st.session_state
#: Grid column widths in pixels (fixed, so the layout is the same at every window size).
TARGET_WIDTH, EXPOSURE_WIDTH = 240, 100
SS.setdefault("builder_version", 0)
SS.setdefault("builder_base", grids.empty_grid(2))


def _reset_grid(frame: pl.DataFrame) -> None:
    """Replace the grid's rows (a new editor key drops the old edits)."""
    SS.builder_base = frame
    SS.builder_version += 1


@st.dialog("Replace the existing snapshot?")
def _confirm_overwrite() -> None:
    pending = SS.get("builder_pending")
    if not pending:
        st.rerun()
    st.write(
        f"Account {ui.escape_md(pending['account'])} already has a snapshot at {ui.when(pending['at'])}. "
        "Replacing it swaps the whole set for the rows in the grid; the old rows are not kept."
    )
    left, right = st.columns(2)
    if left.button(
        "Replace it", type="primary", key="builder_confirm_replace", help="Overwrite the stored snapshot at this time"
    ):
        _save(pending, overwrite=True)
        SS.builder_pending = None
        st.rerun()
    if right.button("Cancel", key="builder_confirm_cancel", help="Keep the stored snapshot; nothing is written"):
        SS.builder_pending = None
        st.rerun()


def _save(pending: dict, *, overwrite: bool) -> None:
    saved = msm.save_snapshot(
        ui.store(),
        pending["account"],
        pending["at"],
        pending["rows"],
        allocation=pending["allocation"],
        overwrite=overwrite,
        source="workbench",
    )
    ui.after_write()
    SS.builder_saved = {
        "account": pending["account"],
        "at": saved.position_set_time,
        "uid": saved.position_set_uid,
        "rows": saved.positions.height,
        "replaced": overwrite,
    }


def render() -> None:
    store = ui.store()
    path = ui.db_path()
    accounts = ui.accounts(path)
    if accounts.height == 0:
        st.info(
            "There is no account yet. Add one (and its target allocation) under **Reference data**, or load the demo "
            "data from the **Overview**."
        )
        st.page_link("msm_app/pages/reference.py", label="Reference data", icon=":material/database:")
        return
    options = ui.target_options(path)

    # -- which account, mandate and time --------------------------------------------------------
    top = st.columns([3, 3, 2, 2])
    names = dict(zip(accounts["unique_identifier"].to_list(), accounts["account_name"].to_list()))
    account = top[0].selectbox(
        "Account",
        list(names),
        key="builder_account",
        format_func=lambda a: f"{a} — {names[a]}" if names[a] and names[a] != a else a,
        help="Type to search by identifier or name.",
    )
    allocations = ui.allocations(path, account)
    if allocations.height == 0:
        top[1].selectbox(
            "Target allocation", [], key="builder_allocation", help="The account's mandate the snapshot belongs to."
        )
        st.warning(
            f"Account {ui.escape_md(account)} has no active target allocation (mandate). Create one under **Reference data → "
            "Target allocations**, or with `msm allocations add ID --account ACCOUNT --model MODEL`."
        )
        st.page_link("msm_app/pages/reference.py", label="Reference data", icon=":material/database:")
        return
    allocation = top[1].selectbox(
        "Target allocation",
        allocations["unique_identifier"].to_list(),
        key="builder_allocation",
        help="The mandate (account → allocation model) this snapshot belongs to.",
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    day = top[2].date_input("Date (UTC)", value=now.date(), key="builder_date", help="Snapshot date, in UTC.")
    clock = top[3].time_input(
        "Time (UTC)",
        value=now.time(),
        key="builder_time",
        step=60,
        help="Snapshot time of day, in UTC (every time in the workbench is UTC).",
    )
    at = datetime.combine(
        day if isinstance(day, date) else now.date(),
        clock if isinstance(clock, time) else now.time(),
        tzinfo=UTC,
    )
    st.caption(f"Snapshot time: **{ui.when(at)}** ({at.isoformat()})")

    # -- where the rows come from ----------------------------------------------------------------------
    history = ui.history(path, account)
    with st.expander("Start from a snapshot or a file", expanded=False):
        start = st.columns([2, 3, 2])
        choices = ["Empty set"] + (["Latest snapshot", "An earlier snapshot"] if history.height else [])
        source = start[0].radio("Start from", choices, key="builder_start", help="Which rows to load into the grid.")
        chosen_time = None
        if source == "An earlier snapshot":
            times = history["position_set_time"].to_list()
            chosen_time = start[1].selectbox(
                "Snapshot",
                times,
                format_func=ui.when,
                key="builder_start_time",
                help="Any stored snapshot of this account.",
            )
        if start[2].button("Load into the grid", key="builder_load", help="Replaces the rows in the grid."):
            if source == "Empty set":
                _reset_grid(grids.empty_grid(2))
            else:
                snap = (
                    msm.read_snapshot(store, account, at=chosen_time)
                    if chosen_time
                    else msm.read_snapshot(store, account)
                )
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

    # -- the grid and its checks ---------------------------------------------------------------------
    left, right = st.columns([3, 2], gap="medium")
    with left:
        st.subheader("Targets")
        edited = st.data_editor(
            SS.builder_base.to_pandas(),
            key=f"builder_grid_{SS.builder_version}",
            num_rows="dynamic",
            hide_index=True,
            placeholder="—",
            width="stretch",
            column_config={
                "target": st.column_config.SelectboxColumn(
                    "Target",
                    options=options["label"].to_list(),
                    required=True,
                    width=TARGET_WIDTH,
                    help="An asset (held directly) or a portfolio (held as a sleeve, expanded only on request). Type to search.",
                ),
                **{c: {**config, "width": EXPOSURE_WIDTH} for c, config in ui.EXPOSURE_CONFIG.items()},
                "notes": st.column_config.TextColumn(
                    "Notes", help='Stored in metadata_json as {"notes": …}; a JSON object is stored as given.'
                ),
            },
        )
        grid = pl.from_pandas(edited) if len(edited.columns) else grids.empty_grid()
        grid = (
            grid.filter(~pl.all_horizontal(pl.all().is_null())) if grid.height else grid
        )  # a blank new row is not a target yet
        rows = grids.rows_from_grid(grid, options)
        check = msm.check_target_set(store, rows)
        _show_checks(grid, check)

    with right:
        _preview(store, check, at)

    # -- save ---------------------------------------------------------------------------------------------------
    st.divider()
    save_cols = st.columns([2, 2, 6])
    if save_cols[0].button(
        "Save snapshot",
        type="primary",
        key="builder_save",
        disabled=not check.ok,
        help="Writes the whole set as one snapshot of the chosen allocation at the chosen time.",
    ):
        pending = {"account": account, "allocation": allocation, "at": at, "rows": rows}
        try:
            _save(pending, overwrite=False)
        except msm.SnapshotExistsError:
            SS.builder_pending = pending
        except msm.MsmError as exc:  # shown beside the button; nothing was written
            ui.show_error(exc)
    save_cols[1].download_button(
        "Export grid as CSV",
        rows.write_csv(),
        file_name=f"{account}-targets.csv",
        mime="text/csv",
        key="builder_export",
        help="The rows as a file `msm targets save --file` reads.",
    )
    if not check.ok:
        save_cols[2].caption("Fix the problems marked beside the rows to save.")
    if SS.get("builder_pending"):
        _confirm_overwrite()
    saved = SS.get("builder_saved")
    if saved:
        verb = "Replaced" if saved["replaced"] else "Saved"
        st.success(
            f"{verb} the snapshot of {ui.escape_md(saved['account'])} at {ui.when(saved['at'])} ({saved['rows']} rows)."
        )
        SS.snapshots_account = saved["account"]
        st.page_link("msm_app/pages/snapshots.py", label="Open it in Snapshots", icon=":material/history:")

    _apply_to_many(store, rows, check, at)


def _show_checks(grid: pl.DataFrame, check: msm.TargetSetCheck) -> None:
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
            "Add a row per target: pick an asset or a portfolio and give one exposure (a weight, a notional or a quantity)."
        )
        return
    for message in by_row.get(None, []):
        st.error(ui.escape_md(message))
    status = pl.DataFrame(
        {
            "row": list(range(1, grid.height + 1)),
            "target": grid["target"].cast(pl.String),
            "check": ["; ".join(by_row[i]) if i in by_row else "ok" for i in range(1, grid.height + 1)],
        }
    )
    bad = status.filter(pl.col("check") != "ok")
    if bad.height:
        st.error(
            f"{bad.height} row{'s break' if bad.height != 1 else ' breaks'} a rule; nothing can be saved until {'they are' if bad.height != 1 else 'it is'} fixed."
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


def _preview(store: msm.Store, check: msm.TargetSetCheck, at: datetime) -> None:
    st.subheader("Look-through preview")
    mode = st.radio(
        "Portfolio weights as of",
        ["the snapshot time", "now"],
        horizontal=True,
        key="builder_weights",
        help="Which stored composition expands each portfolio target: the latest at or before this time.",
    )
    if check.rows.height == 0:
        st.caption("Add valid rows to see the asset exposure they would have.")
        return
    result = msm_portfolios.look_through(
        store,
        check.rows,
        at=at,
        weights_as_of="position-set" if mode == "the snapshot time" else "now",
        skip_missing=True,
    )
    for name, when in result.missing:
        st.warning(
            f"Portfolio {ui.escape_md(name)} has no composition at or before {ui.when(when)}: it is left out of this preview "
            "(saving is still allowed; expanding it later needs a composition)."
        )
    for row in result.diagnostics.iter_rows(named=True):
        st.warning(
            f"Composition of {ui.escape_md(row['portfolio'] or row['portfolio_uid'])} at {ui.when(row['weights_time'])} sums to "
            f"{ui.pct(row['weight_sum'], 4)}, not 100%; it is expanded as stored."
        )
    charts.exposure_chart(result.by_source, key="builder_chart")
    st.dataframe(
        result.net.select("asset", *msm.EXPOSURE_COLUMNS, "n_sources"),
        hide_index=True,
        placeholder="—",
        key="builder_preview_table",
        column_config={
            "asset": "Asset",
            **ui.EXPOSURE_CONFIG,
            "n_sources": st.column_config.NumberColumn("Sources", help="Target rows that contribute to this asset"),
        },
    )
    st.caption(f"Look-through weight sum {ui.pct(result.weight_sum)} (the set's own: {ui.pct(check.weight_sum)}).")


def _import(upload, options: pl.DataFrame) -> None:
    if upload.size > ui.MAX_UPLOAD_BYTES:
        st.error(
            f"{ui.escape_md(upload.name)} is {upload.size:,} bytes; the limit is {ui.MAX_UPLOAD_BYTES:,}. Nothing was read."
        )
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        frame = read_table_file(path, entity="target file")
    check = msm.check_target_set(ui.store(), frame)
    if check.errors:
        ui.show_error(
            msm.ValidationError(
                check.errors, summary=f"{len(check.errors)} problem(s) in {upload.name}; the grid was not changed"
            )
        )
        return
    _reset_grid(grids.grid_from_rows(frame, options))
    st.rerun()


def _apply_to_many(store: msm.Store, rows: pl.DataFrame, check: msm.TargetSetCheck, at: datetime) -> None:
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
        default = ui.accounts_of_model(ui.db_path(), model) if model in models else []
        everyone = ui.accounts(ui.db_path())["unique_identifier"].to_list()
        chosen = st.multiselect(
            "Accounts",
            everyone,
            default=default,
            key=f"builder_many_accounts_{model}",
            help="Each needs exactly one active target allocation.",
        )
        overwrite = st.checkbox(
            "Replace existing snapshots at this time",
            key="builder_many_overwrite",
            help="Without it, an existing snapshot at this time stops the whole save.",
        )
        if st.button(
            f"Save to {len(chosen)} account{'s' if len(chosen) != 1 else ''}",
            key="builder_many_save",
            disabled=not (check.ok and chosen),
            help="One transaction: every account is saved, or none.",
        ):
            try:
                written = msm.save_target_set_to_accounts(
                    store, chosen, at, rows, overwrite=overwrite, source="workbench"
                )
            except msm.MsmError as exc:  # shown here, beside the button; nothing was written
                ui.show_error(exc)
                return
            ui.after_write()
            st.success(
                f"Saved {written.height} snapshots at {ui.when(at)} ({int(written['replaced'].sum())} replaced)."
            )


ui.guard(render)
