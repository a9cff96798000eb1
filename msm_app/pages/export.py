"""Export: snapshots (all, or chosen accounts and dates) as hive-partitioned Parquet under the export root, and as a zip."""

import io
import zipfile
from datetime import date
from pathlib import Path

import streamlit as st

import msm
import msm_portfolios
from msm.services.export import default_export_root, export_snapshots, resolve_export_dir
from msm_app import ui

st.title("Export")
st.caption(
    "Write snapshots as hive-partitioned Parquet (by snapshot date) that polars, DuckDB, Spark and Trino read "
    "natively, with the compositions and assets a look-through needs."
)

SS = st.session_state


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


def render() -> None:
    store = ui.store()
    root = Path(default_export_root())
    st.text(f"Export root: {root.resolve()}")
    accounts = ui.accounts(ui.db_path())["unique_identifier"].to_list()
    with st.form("export_form"):
        folder = st.text_input(
            "Folder (under the export root)",
            value="snapshots",
            key="export_folder",
            help="A folder name or relative path inside the export root; absolute paths, `..` and links out of the root are refused.",
        )
        chosen = st.multiselect(
            "Accounts", accounts, key="export_accounts", help="Leave empty to export every account."
        )
        cols = st.columns(2)
        date_from = cols[0].date_input(
            "From date (UTC)",
            value=None,
            key="export_from",
            help="Snapshots on or after this UTC date; empty: no lower bound.",
        )
        date_to = cols[1].date_input(
            "To date (UTC)",
            value=None,
            key="export_to",
            help="Snapshots on or before this UTC date; empty: no upper bound.",
        )
        expanded = st.checkbox(
            "Include the look-through (target_exposure)",
            key="export_expanded",
            help="Also writes every snapshot expanded with the portfolio compositions.",
        )
        weights = st.radio(
            "Look-through weights as of",
            ["now", "position-set"],
            horizontal=True,
            key="export_weights",
            help="now: the latest composition; position-set: each snapshot's own time.",
        )
        overwrite = st.checkbox("Replace an export already in that folder", key="export_overwrite")
        submitted = st.form_submit_button("Export", type="primary")
    if submitted:
        try:
            out = resolve_export_dir(root, folder)
            with st.spinner("Writing Parquet…"):
                result = export_snapshots(
                    store,
                    out,
                    expanded=expanded,
                    weights=msm_portfolios.duckdb_weights_source(store),
                    weights_as_of=weights,
                    overwrite=overwrite,
                    accounts=chosen or None,
                    date_from=date_from if isinstance(date_from, date) else None,
                    date_to=date_to if isinstance(date_to, date) else None,
                )
        except msm.MsmError as exc:
            ui.show_error(exc)
            return
        except OSError as exc:
            ui.show_error(msm.MsmError(f"cannot export to {folder}: {exc.strerror or exc}"))
            return
        SS.export_last = {"out": str(result.out), "snapshots": result.snapshots, "datasets": result.datasets}
    last = SS.get("export_last")
    if last:
        st.success(f"Exported {last['snapshots']:,} snapshots to {ui.escape_md(last['out'])}.")
        st.dataframe(
            [{"dataset": name, "rows": rows} for name, rows in last["datasets"].items()],
            hide_index=True,
            placeholder="—",
            key="export_datasets",
            column_config={"dataset": "Dataset", "rows": st.column_config.NumberColumn("Rows", format="localized")},
        )
        out = Path(last["out"])
        if out.is_dir():
            st.download_button(
                "Download as zip",
                _zip(out),
                file_name=f"{out.name}.zip",
                mime="application/zip",
                key="export_zip",
                help="The exported folder, as one zip file.",
            )


ui.guard(render)
