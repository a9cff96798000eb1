"""Market data: the asset prices and FX rates a valuation uses, as of a time, and an import of a file of either.

Address: ``/marketdata?at=TIME`` shows what a valuation at TIME uses (parameters declared in
:mod:`msm_app.links`). The lists come from :func:`msm.read_prices` and :func:`msm.read_fx_rates`;
the import checks the whole file against the database first (``dry_run``) and writes only when
asked, every row in one transaction.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl
import streamlit as st

import msm
from msm_app import links, ui

PRICES_CONFIG = {
    "asset": "Asset",
    "time": ui.utc_column("Time (UTC)"),
    "price": st.column_config.NumberColumn(
        "Price", format=ui.UNITS_FORMAT, help="In its currency, per unit of the asset"
    ),
    "currency": "Currency",
    "source": "Source",
}
FX_CONFIG = {
    "pair": st.column_config.TextColumn("Pair", help="BASE/QUOTE: 1 base = rate quote"),
    "time": ui.utc_column("Time (UTC)"),
    "rate": st.column_config.NumberColumn("Rate (quote per base)", format=ui.UNITS_FORMAT),
    "source": "Source",
}
PLAN_CONFIG = {
    "row": st.column_config.NumberColumn("Row", help="The file's row (1 is the first row under the header)"),
    "action": st.column_config.TextColumn("Action", help="add: new; update: replaces a stored value; unchanged"),
}
#: How many rows a table sends to the browser at most (every one stored can be millions).
LIMIT = 10_000
#: What each import reads: the label, the file's columns, and the service.
IMPORTS: dict[str, tuple[str, Callable[..., msm.ImportResult]]] = {
    "Prices": ("asset, time, price and currency (a price is in its currency per unit)", msm.import_prices),
    "FX rates": ("base, quote, time and rate (1 base = rate quote)", msm.import_fx_rates),
}


def main() -> None:
    """The Market data page."""
    links.show("marketdata", render)


def render() -> None:
    """The page body: the time and the choice of latest or every one, then the prices, the rates and the import."""
    asked = links.read("marketdata")
    at, history = _controls(asked.get("at"))
    links.keep("marketdata", at=at)
    tab_prices, tab_fx, tab_import = st.tabs(["Prices", "FX rates", "Import a file"])
    with tab_prices:
        options = ui.target_options(ui.db_path()).filter(pl.col("kind") == "asset")["unique_identifier"].to_list()
        chosen = st.multiselect("Assets", options, key="marketdata_assets", placeholder="Every asset")
        prices = msm.read_prices(ui.store(), chosen or None, as_of=at, history=history)
        _caption(prices, "price", "asset", at, history)
        shown = _newest(prices, "msm prices list")
        ui.table(shown, PRICES_CONFIG, key="marketdata_prices")
        label = pl.col("asset") + " at " + _when("time") + " (" + _number("price") + " " + pl.col("currency") + ")"
        _delete(shown, label, ("asset", "time"), msm.delete_prices, ("price", "prices"))
    with tab_fx:
        rates = msm.read_fx_rates(ui.store(), as_of=at, history=history)
        rates = rates.with_columns(pair=pl.col("base") + "/" + pl.col("quote"))
        _caption(rates, "rate", "pair", at, history)
        shown = _newest(rates, "msm fx list")
        ui.table(shown, FX_CONFIG, key="marketdata_fx")
        label = pl.col("pair") + " at " + _when("time") + " (" + _number("rate") + ")"
        _delete(shown, label, ("base", "quote", "time"), msm.delete_fx_rates, ("FX rate", "FX rates"))
    with tab_import:
        _import()


def _controls(asked_at: datetime | None) -> tuple[datetime, bool]:
    now = asked_at or datetime.now(UTC).replace(second=0, microsecond=0)
    cols = st.columns([2, 2, 3])
    day = cols[0].date_input("As of date (UTC)", value=now.date(), key="marketdata_date")
    clock = cols[1].time_input("As of time (UTC)", value=now.time(), key="marketdata_clock", step=60)
    history = cols[2].checkbox(
        "Every one stored up to then", key="marketdata_history", help="Not only the latest of each asset or pair"
    )
    return ui.utc_datetime(day, clock, now), history


def _when(column: str) -> pl.Expr:
    """A UTC time as the page shows it (``2026-06-02 00:00 UTC``), for every row at once."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M UTC")


def _number(column: str) -> pl.Expr:
    """A number as text, exactly as stored (``3000``, ``0.00001234``), for every row at once."""
    return pl.col(column).cast(pl.String).str.replace(r"\.0$", "")


def _delete(
    shown: pl.DataFrame, label: pl.Expr, keys: tuple[str, ...], service: Callable[..., int], nouns: tuple[str, str]
) -> None:
    """Delete some of the rows shown (a wrong import), all in one transaction, with a reason; then show the rest."""
    one, many = nouns
    prefix = f"marketdata_delete_{many.split()[-1].lower()}"
    done = st.session_state.pop(f"{prefix}_done", None)
    if done:
        st.success(done)
    if shown.height == 0:
        return
    with st.expander(f"Delete {many}"):
        st.caption(
            f"Corrects a wrong import: the chosen {many} are deleted in one transaction, and the audit trail keeps "
            "them. A valuation then uses the latest earlier one."
        )
        labels = shown.select(label.alias("label"))["label"]
        chosen = st.multiselect(f"{many[0].upper()}{many[1:]} to delete", labels.to_list(), key=prefix)
        reason = ui.reason(f"{prefix}_reason")
        n = len(chosen)
        if st.button(f"Delete {n} {one if n == 1 else many}", key=f"{prefix}_write", disabled=not chosen):
            deleted = service(ui.store(), shown.filter(labels.is_in(chosen)).select(*keys), reason=reason)
            ui.after_write()
            st.session_state[f"{prefix}_done"] = (
                f"Deleted {deleted:,} {one if deleted == 1 else many}; the audit trail keeps "
                f"{'it' if deleted == 1 else 'them'}."
            )
            st.rerun()


def _newest(frame: pl.DataFrame, command: str) -> pl.DataFrame:
    """At most :data:`LIMIT` rows for the browser (the newest), in the frame's order; a caption says when cut."""
    if frame.height <= LIMIT:
        return frame
    st.caption(f"The table shows the newest {LIMIT:,} of them; `{command} --history` lists every one.")
    return frame.with_row_index("__i").sort("time", "__i").tail(LIMIT).sort("__i").drop("__i")


def _caption(frame: pl.DataFrame, noun: str, per: str, at: datetime, history: bool) -> None:
    if frame.height == 0:
        st.info(f"No {noun} is stored at or before {ui.when(at)}. Import a file under **Import a file**.")
        return
    n = frame[per].n_unique()
    which = f"Every {noun}" if history else f"The latest {noun} of each {per}"
    st.caption(
        f"{which} at or before {ui.when(at)}: {frame.height:,} {noun}{'s' if frame.height != 1 else ''}, {n:,} "
        f"{per}{'s' if n != 1 else ''}. A valuation at that time (Drift, Rebalance) uses the latest"
        + (", and a rate either way round." if noun == "rate" else "; a cash asset is worth 1 of its currency.")
    )


def _import() -> None:
    kind = st.radio("What the file holds", list(IMPORTS), horizontal=True, key="marketdata_kind")
    columns, service = IMPORTS[kind]
    st.caption(
        f"A CSV, JSON, Parquet or Excel file with the columns {columns}, and optionally source. Times carry a UTC "
        "offset; currencies are ISO codes in upper case (USD). Every row is checked first; then all rows are written "
        "in one transaction, or none."
    )
    upload = st.file_uploader(
        f"{kind} file", type=["csv", "json", "parquet", "xlsx"], key="marketdata_upload", help="One row per value"
    )
    upsert = st.checkbox(
        "Replace values stored at the same time", key="marketdata_upsert", help="Without it, such a row is refused"
    )
    if upload is None:
        return
    frame = ui.read_upload(upload, entity=f"{kind.lower()} file")
    if frame is None:
        return
    st.dataframe(frame.head(200), hide_index=True, placeholder="—", key="marketdata_file")
    try:
        plan = service(ui.store(), frame, upsert=upsert, dry_run=True)
    except msm.MsmError as exc:
        ui.show_error(exc)
        if isinstance(exc, msm.ValidationError) and all(e.code == "not_stored_yet" for e in exc.errors):
            st.info("Each of these is stored already. Tick **Replace values stored at the same time** to replace them.")
        return
    _plan(plan)
    reason = ui.reason("marketdata_reason")
    if st.button("Import", type="primary", key="marketdata_write", help=f"Write the {kind.lower()} of this file"):
        done = service(ui.store(), frame, upsert=upsert, source="app", reason=reason)
        ui.after_write()
        st.success(f"Imported {kind.lower()}: {_counts(done)}.")


def _plan(plan: msm.ImportResult) -> None:
    st.success(f"Every row passes every check: {_counts(plan)}. Nothing is written until you import.")
    ui.table(plan.rows, PLAN_CONFIG, key="marketdata_plan")


def _counts(result: msm.ImportResult) -> str:
    return f"{result.added:,} added, {result.updated:,} updated, {result.unchanged:,} unchanged"


if __name__ == "__main__":
    main()
