"""Export: snapshots (all, or chosen accounts and dates) as hive-partitioned Parquet under the export
root, and as a zip. The page names folders as the user gave them (the root as configured, the folder
as typed), never as a resolved temporary path."""

import io
import zipfile
from datetime import date
from pathlib import Path

import streamlit as st

import msm
import msm_portfolios
from msm.services.export import default_export_root, resolve_export_dir
from msm_app import links, ui

SS = st.session_state
#: What the form adds to the export, a tick each: widget key -> (export keyword, label, help).
TICKS = {
    "export_expanded": (
        "expanded",
        "Include the look-through (target_exposure)",
        "Also writes every snapshot expanded with the portfolio compositions.",
    ),
    "export_drift": (
        "drift",
        "Include the drift (drift/, now)",
        "Also writes every active account's drift valued now, with the accounts, allocations, prices and FX rates "
        "another engine needs to recompute it (msm export --drift).",
    ),
    "export_drafts": (
        "include_drafts",
        "Include drafts",
        "Draft snapshots are left out unless this is ticked (msm export --include-drafts).",
    ),
}


def main() -> None:
    """The Export page."""
    links.show("export", render)


def _zip(folder: Path) -> bytes:
    """The folder's files as one zip (paths inside it start with the folder's name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


def render() -> None:
    """The page body: the export form, then the last export's datasets and its zip."""
    root = default_export_root()
    st.text(f"Export root: {root}", help=_root_help(root))
    with st.form("export_form"):
        folder = st.text_input(
            "Folder (under the export root)",
            value="snapshots",
            key="export_folder",
            help="A folder name or relative path inside the export root; absolute paths, `..` and links out of the "
            "root are refused.",
        )
        choice = _choices()
        submitted = st.form_submit_button("Export", type="primary")
    if submitted:
        _export(root, folder, **choice)
    _last_export(root)


def _root_help(root: Path) -> str:
    where = "" if root.is_absolute() else " (relative to the folder the workbench was started in)"
    return f"Set by the environment variable MSM_EXPORT_ROOT (default data/exports){where}."


def _choices() -> dict:
    """The form's choices of what to export (accounts, dates, look-through, drift, drafts, overwrite)."""
    accounts = ui.accounts(ui.db_path())["unique_identifier"].to_list()
    chosen = st.multiselect("Accounts", accounts, key="export_accounts", help="Leave empty to export every account.")
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
    ticked = {keyword: st.checkbox(label, key=key, help=help) for key, (keyword, label, help) in TICKS.items()}
    weights = st.radio(
        "Look-through weights as of",
        ["now", "position-set"],
        horizontal=True,
        key="export_weights",
        help="now: the latest composition; position-set: each snapshot's own time.",
    )
    overwrite = st.checkbox("Replace an export already in that folder", key="export_overwrite")
    return {
        "accounts": chosen or None,
        "date_from": date_from if isinstance(date_from, date) else None,
        "date_to": date_to if isinstance(date_to, date) else None,
        **ticked,
        "weights_as_of": weights,
        "overwrite": overwrite,
    }


def _export(root: Path, folder: str, **choice) -> None:
    """Run the export into ``folder`` under ``root``; remember it (as the user named it) for the result."""
    try:
        out = resolve_export_dir(root, folder)
        with st.spinner("Writing Parquet…"):
            result = msm_portfolios.export_snapshots(ui.store(), out, **choice)
    except msm.MsmError as exc:
        ui.show_error(exc)
        return
    except OSError as exc:
        ui.show_error(msm.MsmError(f"cannot export to {folder}: {exc.strerror or exc}"))
        return
    SS.export_last = {
        "folder": folder.strip(),
        "out": str(result.out),
        "snapshots": result.snapshots,
        "datasets": result.datasets,
    }


def _last_export(root: Path) -> None:
    last = SS.get("export_last")
    if not last:
        return
    st.success(
        f"Exported {last['snapshots']:,} snapshots to the folder {ui.escape_md(last['folder'])} under the export root "
        f"{ui.escape_md(root)}."
    )
    st.dataframe(
        [{"dataset": f"{last['folder']}/{name}/", "rows": rows} for name, rows in last["datasets"].items()],
        hide_index=True,
        placeholder="—",
        key="export_datasets",
        column_config={"dataset": "Dataset", "rows": st.column_config.NumberColumn("Rows", format="localized")},
    )
    out = Path(last["out"])
    if out.is_dir():
        ui.download(
            "Download as zip",
            _zip(out),
            f"{out.name}.zip",
            key="export_zip",
            help="The exported folder, as one zip file.",
        )


if __name__ == "__main__":
    main()
