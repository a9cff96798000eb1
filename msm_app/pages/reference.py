"""Reference data: browse, search, add, edit, delete and bulk-import the registry; portfolio compositions."""

from datetime import UTC, datetime, time

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm_app import charts, links, ui
from msm_app.entities import ENTITIES, Entity, Field, column_headers, form_values


def main() -> None:
    """The Reference data page."""
    links.show("reference", render)


def _choices(store: msm.Store, kind: str) -> list[str]:
    if kind == "group":
        return msm.list_account_groups(store)["group_name"].sort().to_list()
    if kind == "account":
        return ui.accounts(ui.db_path())["unique_identifier"].to_list()
    return msm.list_allocation_models(store)["allocation_model_name"].sort().to_list()


def _shown(field: Field, current: object) -> object:
    """What a field's widget shows (and returns, untouched) for the stored value ``current``."""
    if field.kind == "bool":
        return bool(current) if current is not None else True
    if field.kind in ("group", "account", "model"):
        return current
    return "" if current is None else str(current)


def _input(store: msm.Store, field: Field, key: str, current: object = None, *, disabled: bool = False) -> object:
    label = field.label + (" *" if field.required else "")
    if field.kind == "bool":
        return st.checkbox(label, value=_shown(field, current), key=key, help=field.help, disabled=disabled)
    if field.kind in ("group", "account", "model"):
        options = ["—", *_choices(store, field.kind)]
        index = options.index(current) if current in options else 0
        chosen = st.selectbox(label, options, index=index, key=key, help=field.help, disabled=disabled)
        return None if chosen == "—" else chosen
    value = _shown(field, current)
    if field.kind == "json":
        return st.text_area(label, value=value, key=key, help=field.help, height=68, disabled=disabled)
    return st.text_input(label, value=value, key=key, help=field.help, disabled=disabled)


def _browse(store: msm.Store, entity: Entity) -> pl.DataFrame:
    frame = entity.list(store)
    text = st.text_input(
        f"Search {entity.title.lower()}",
        key=f"ref_search_{entity.import_name}",
        help="Case-insensitive text anywhere in the row; % and _ are plain characters.",
    )
    shown = frame.select([c for c in entity.columns if c in frame.columns])
    if text.strip():
        needle = text.strip().lower()
        shown = shown.filter(
            pl.any_horizontal(pl.col(pl.String).str.to_lowercase().str.contains(needle, literal=True).fill_null(False))
        )
    st.dataframe(
        shown,
        hide_index=True,
        placeholder="—",
        key=f"ref_table_{entity.import_name}",
        column_config=column_headers(entity, shown.columns),
    )
    st.caption(f"{shown.height:,} of {frame.height:,} {entity.title.lower()}")
    return frame


def _done(entity: Entity, message: str) -> None:
    """After a write: clear cached reads, then rerun so every table and list of the page shows it."""
    ui.after_write()
    st.session_state[f"ref_flash_{entity.import_name}"] = message
    st.rerun()


def _flash(entity: Entity) -> None:
    message = st.session_state.pop(f"ref_flash_{entity.import_name}", None)
    if message:
        st.success(message)


def _add(store: msm.Store, entity: Entity) -> None:
    with st.form(f"ref_add_{entity.import_name}", clear_on_submit=False):
        st.markdown(f"**Add {entity.noun}**")
        values = {f.name: _input(store, f, f"ref_add_{entity.import_name}_{f.name}") for f in entity.fields}
        reason = ui.reason(f"ref_add_{entity.import_name}_reason")
        if st.form_submit_button(f"Add {entity.noun}", type="primary"):
            try:
                key, kwargs = form_values(entity, values)
                added = entity.add(store, key, reason=reason, **kwargs)
            except msm.MsmError as exc:
                ui.show_error(exc)
                return
            _done(entity, f"Added {entity.noun} {ui.escape_md(added.get(entity.key))}.")


def _edit(store: msm.Store, entity: Entity, frame: pl.DataFrame) -> None:
    if frame.height == 0:
        return
    keys = frame[entity.key].sort().to_list()
    chosen = st.selectbox(
        f"Edit or delete {entity.noun}", keys, key=f"ref_pick_{entity.import_name}", help="Type to search."
    )
    record = frame.filter(pl.col(entity.key) == chosen).row(0, named=True)
    current = dict(record)
    if entity.import_name == "accounts":
        groups = msm.list_account_groups(store)
        names = dict(zip(groups["uid"].to_list(), groups["group_name"].to_list(), strict=True))
        current["group"] = names.get(record.get("account_group_uid"))
    with st.form(f"ref_edit_{entity.import_name}"):
        values = {}
        for f in entity.fields:
            value = current.get(f.name)
            values[f.name] = _input(
                store, f, f"ref_edit_{entity.import_name}_{f.name}_{chosen}", value, disabled=not f.editable
            )
        reason = ui.reason(f"ref_edit_{entity.import_name}_reason")
        if st.form_submit_button("Save changes"):
            try:
                _, kwargs = form_values(entity, values)
                # only the fields changed in the form (an unchanged indexed column of a referenced row would be
                # refused by DuckDB); a field emptied is not in kwargs: it is cleared (None)
                changes = {
                    f.name: kwargs.get(f.name)
                    for f in entity.fields[1:]
                    if f.editable and values[f.name] != _shown(f, current.get(f.name))
                }
                entity.update(store, record["uid"], reason=reason, **changes)
            except msm.MsmError as exc:
                ui.show_error(exc)
                return
            _done(entity, f"Saved {entity.noun} {ui.escape_md(chosen)}.")
    with st.container(border=True):
        st.markdown(f"**Delete {entity.noun} {ui.escape_md(chosen)}**")
        if entity.delete_warning:
            st.caption(entity.delete_warning)
        sure = st.checkbox(
            "I want to delete it",
            key=f"ref_del_sure_{entity.import_name}",
            help="A safety catch; deleting cannot be undone.",
        )
        reason = ui.reason(f"ref_del_{entity.import_name}_reason")
        if st.button(
            "Delete",
            key=f"ref_del_{entity.import_name}",
            disabled=not sure,
            help="Refused, with counts, while other rows still reference it.",
        ):
            try:
                entity.delete(store, record["uid"], reason=reason)
            except msm.MsmError as exc:
                ui.show_error(exc)
                return
            _done(entity, f"Deleted {entity.noun} {ui.escape_md(chosen)}.")


def _bulk(store: msm.Store, entity: Entity) -> None:
    upload = st.file_uploader(
        f"Import {entity.title.lower()} from a file",
        type=ui.UPLOAD_TYPES,
        key=f"ref_upload_{entity.import_name}",
        help="CSV, JSON (a list of objects), Parquet or Excel whose columns are the table's own column names; "
        "references by unique identifier (group, account, model).",
    )
    if upload is None:
        return
    upsert = st.checkbox(
        "Update rows that already exist (upsert)",
        key=f"ref_upsert_{entity.import_name}",
        help="Without it, a row whose identifier exists is refused.",
    )
    try:
        frame = ui.read_upload(upload, entity=f"{entity.noun} file")
        if frame is None:
            return
        plan = msm.import_reference(store, entity.import_name, frame, upsert=upsert, dry_run=True)
    except msm.MsmError as exc:
        ui.show_error(exc)
        st.caption("Nothing was written. Fix the file and upload it again.")
        return
    st.caption(
        "Nothing is written yet: this is what the import would do. Empty cells keep a stored value (or get the "
        "default)."
    )
    cols = st.columns(3)
    cols[0].metric("To add", f"{plan.added:,}")
    cols[1].metric("To update", f"{plan.updated:,}")
    cols[2].metric("Unchanged", f"{plan.unchanged:,}")
    st.dataframe(plan.rows, hide_index=True, placeholder="—", key=f"ref_plan_{entity.import_name}")
    reason = ui.reason(f"ref_import_{entity.import_name}_reason")
    if st.button(
        f"Import {plan.added + plan.updated:,} rows",
        type="primary",
        key=f"ref_import_{entity.import_name}",
        disabled=plan.added + plan.updated == 0,
        help="One transaction: every row is written, or none.",
    ):
        try:
            done = msm.import_reference(store, entity.import_name, frame, upsert=upsert, reason=reason)
        except msm.MsmError as exc:
            ui.show_error(exc)
            return
        _done(entity, f"Imported: {done.added:,} added, {done.updated:,} updated, {done.unchanged:,} unchanged.")


def _compositions(store: msm.Store, portfolios: pl.DataFrame) -> None:
    """A portfolio's composition history (table and chart) and the form to store a new one."""
    st.subheader("Portfolio compositions")
    if portfolios.height == 0:
        st.caption("Add a portfolio first.")
        return
    portfolio = st.selectbox(
        "Portfolio",
        portfolios["unique_identifier"].sort().to_list(),
        key="ref_comp_portfolio",
        help="Whose composition history to show or extend.",
    )
    history = msm_portfolios.composition_history(store, portfolio)
    left, right = st.columns([4, 6], gap="medium")
    with left:
        if history.height == 0:
            st.info(
                f"{ui.escape_md(portfolio)} has no composition yet: its targets cannot be looked through until one "
                "is stored."
            )
        else:
            st.dataframe(
                history.select("weights_time", "n_assets", "n_portfolios", "weight_sum"),
                hide_index=True,
                placeholder="—",
                key="ref_comp_history",
                column_config={
                    "weights_time": ui.utc_column("From (UTC)"),
                    "n_assets": "Constituents",
                    "n_portfolios": st.column_config.NumberColumn(
                        "Portfolios", help="Constituents that are portfolios (nested; looked through to assets)"
                    ),
                    "weight_sum": st.column_config.NumberColumn(
                        "Weight sum", format="percent", help="Sum of the constituent weights (never renormalized)"
                    ),
                },
            )
    with right:
        if history.height:
            rows = msm_portfolios.composition_rows(store, portfolio)
            charts.weight_timeline(
                rows.with_columns(pl.coalesce("asset", "constituent_portfolio").alias("constituent")),
                time="weights_time",
                series="constituent",
                legend="Constituent",
                weight="weight",
                title="Composition time (UTC)",
                key="ref_comp_chart",
                height=240,
            )
    with st.expander("Store a new composition"):
        _store_composition(store, portfolio)


def _store_composition(store: msm.Store, portfolio: str) -> None:
    """A grid (or a file) of constituents (an asset or a portfolio per row) and weights, stored from a UTC time."""
    cols = st.columns(2)
    day = cols[0].date_input(
        "Takes effect on (UTC)", key="ref_comp_date", help="From this UTC time on, expansion uses this composition."
    )
    clock = cols[1].time_input("at (UTC)", value=time(0, 0), key="ref_comp_time", step=60)
    at = ui.utc_datetime(day, clock, datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    assets = msm.list_assets(store)["unique_identifier"].sort().to_list()
    others = [p for p in msm.list_portfolios(store)["unique_identifier"].sort().to_list() if p != portfolio]
    start = pl.DataFrame(
        {"asset": [None], "portfolio": [None], "weight": [None]},
        schema={"asset": pl.String, "portfolio": pl.String, "weight": pl.Float64},
    )
    edited = st.data_editor(
        start.to_pandas(),
        num_rows="dynamic",
        hide_index=True,
        placeholder="—",
        key="ref_comp_grid",
        column_config={  # not `required`: the blank starter row is not an error before anything is typed
            "asset": st.column_config.SelectboxColumn("Asset", options=assets, help="A constituent asset"),
            "portfolio": st.column_config.SelectboxColumn(
                "…or portfolio",
                options=others,
                help="A nested portfolio (one constituent per row: an asset or a portfolio). Its own "
                "compositions are looked through; a portfolio never contains itself at any depth.",
            ),
            "weight": st.column_config.NumberColumn(
                "Weight", format="percent", help="Share of the portfolio (25% = 0.25)"
            ),
        },
    )
    grid = pl.from_pandas(edited)
    if "portfolio" not in grid.columns:  # a grid state set from outside the page (a test) may omit it
        grid = grid.with_columns(pl.lit(None, pl.String).alias("portfolio"))
    grid = grid.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in ("asset", "portfolio", "weight")))
    if grid["portfolio"].null_count() == grid.height:
        grid = grid.drop("portfolio")  # an asset-only composition, as before nesting
    total = float(grid["weight"].sum() or 0.0) if grid.height else 0.0
    st.metric(
        "Weight sum",
        ui.pct(total, 4),
        help="Stored as entered: a sum other than 100% is kept and reported, never renormalized.",
    )
    upload = st.file_uploader(
        "…or from a file",
        type=ui.UPLOAD_TYPES,
        key="ref_comp_upload",
        help="Columns `asset` (or `asset_uid`) or `portfolio` (a nested portfolio), one per row, and `weight`.",
    )
    overwrite = st.checkbox("Replace a composition stored at this exact time", key="ref_comp_overwrite")
    reason = ui.reason("ref_comp_reason")
    if not st.button(
        "Store composition",
        type="primary",
        key="ref_comp_save",
        help="All rows are checked first; then stored in one transaction.",
    ):
        return
    try:
        rows = ui.read_upload(upload, entity="composition file") if upload is not None else grid
        if rows is None:
            return
        stored = msm_portfolios.save_composition(store, portfolio, at, rows, overwrite=overwrite, reason=reason)
    except msm.MsmError as exc:
        ui.show_error(exc)
        return
    ui.after_write()
    nested = int((stored["constituent_type"] == "portfolio").sum())
    held = f"{stored.height} assets" if not nested else f"{stored.height} constituents, {nested} of them portfolios"
    st.session_state["ref_flash_portfolios"] = (
        f"Stored the composition of {ui.escape_md(portfolio)} from {ui.when(at)} ({held})."
    )
    st.rerun()


def render() -> None:
    """The page body: one tab per entity (browse, add, edit or delete, bulk import; compositions on Portfolios)."""
    store = ui.store()
    tabs = st.tabs([e.title for e in ENTITIES])
    for tab, entity in zip(tabs, ENTITIES, strict=True):
        with tab:
            _flash(entity)
            frame = _browse(store, entity)
            add_col, edit_col = st.columns(2, gap="medium")
            with add_col:
                _add(store, entity)
            with edit_col:
                _edit(store, entity, frame)
            with st.expander(f"Bulk import {entity.title.lower()}"):
                _bulk(store, entity)
            if entity.import_name == "portfolios":
                _compositions(store, frame)


if __name__ == "__main__":
    main()
