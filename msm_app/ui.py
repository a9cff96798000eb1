"""Helpers every page uses: the store handle, cached reads, formatting, safe text, error display.

Rules the pages rely on:
- :func:`store` is a :class:`msm.Store` from ``st.cache_resource``: a path and a policy, never an
  open connection, so the file is free between reruns for the CLI and notebooks.
- Cached reads (``st.cache_data``) are keyed by the database path and cleared by
  :func:`after_write`, which every page calls after it writes. They also expire after
  :data:`CACHE_SECONDS` so that a write by the CLI or a notebook shows up without a restart.
- User text (names, identifiers, notes, error messages that quote them) is shown through
  :func:`escape_md` or as data in a table, never as Markdown or HTML.
- :func:`guard` runs a page body: a busy file shows a message and a retry button; a domain error
  shows its message; anything else shows a short message, never a traceback. Its writes are
  audited as :func:`current_actor`.
- Every write a page makes offers :func:`reason` beside its button and passes what was typed as
  the service's ``reason=``, so the audit trail says why.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

import msm
import msm_portfolios
from msm.audit import MAX_REASON, acting
from msm.drift import DEFAULT_BAND_ABS
from msm.errors import MsmError, SnapshotExistsError, StoreBusyError, ValidationError
from msm.io import read_table_file
from msm_app import auth

CACHE_SECONDS = 30
#: Largest file the app reads from an upload (bytes); larger ones are refused before parsing.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_TYPES = ["csv", "json", "parquet", "xlsx"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$:])")


# -- the database ------------------------------------------------------------------------------------
def db_path() -> str:
    """The database the app opens: ``$MSM_DB`` or ``data/msm.duckdb``."""
    return msm.default_db_path()


@st.cache_resource(show_spinner=False)
def _store_for(path: str) -> msm.Store:
    store = msm.Store(path, busy_timeout=3.0)
    msm.migrate(store, msm_portfolios.MIGRATIONS)  # creates the file when missing; a no-op when current
    return store


def store() -> msm.Store:
    """The workbench's :class:`msm.Store` (created and migrated on first use)."""
    return _store_for(db_path())


def current_actor() -> str | None:
    """Who the app's writes are recorded as (:func:`msm_app.auth.current_actor`).

    The signed-in user when login is configured, else ``$MSM_USER``, else the OS user. :func:`guard`
    runs every page body as this actor (:func:`msm.audit.acting`), so each write a page makes is
    audited under it. ``None`` when nobody is known: reads work, and a write is refused with a
    message saying to set ``MSM_USER``.
    """
    return auth.current_actor()


def after_write() -> None:
    """Forget every cached read (call after any write)."""
    st.cache_data.clear()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def target_options(path: str) -> pl.DataFrame:
    """Every asset and portfolio as a grid option: ``label``, ``kind``, ``unique_identifier``, ``name``."""
    page = msm.search_candidates(_store_for(path), "", limit=msm.services.candidates.MAX_LIMIT)
    frame = page.results
    if page.count > frame.height:  # more than one page: read them all (reference data is small next to targets)
        frames = [frame]
        for offset in range(frame.height, page.count, msm.services.candidates.MAX_LIMIT):
            frames.append(
                msm.search_candidates(
                    _store_for(path), "", limit=msm.services.candidates.MAX_LIMIT, offset=offset
                ).results
            )
        frame = pl.concat(frames)
    return frame.select(
        label=option_label(pl.col("unique_identifier"), pl.col("display_label"), pl.col("target_type")),
        kind=pl.col("target_type"),
        unique_identifier=pl.col("unique_identifier"),
        name=pl.col("display_label"),
    )


def option_label(identifier: pl.Expr, name: pl.Expr, kind: pl.Expr) -> pl.Expr:
    """``BTC — Bitcoin (BTC) · asset``: the identifier first (unique per kind), then the name, then the kind."""
    named = pl.when(name.is_not_null() & (name != identifier)).then(pl.lit(" — ") + name).otherwise(pl.lit(""))
    return identifier + named + pl.lit(" · ") + kind


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def allocations(path: str, account: str) -> pl.DataFrame:
    """The account's active target allocations."""
    return msm.list_allocations(_store_for(path), account=account, active_only=True)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def history(path: str, account: str) -> pl.DataFrame:
    """The account's snapshots, newest first (:func:`msm.snapshot_history`)."""
    return msm.snapshot_history(_store_for(path), account)


def snapshot_sets(account: str) -> pl.DataFrame:
    """The account's snapshots in this database, newest first (:func:`history`, cached)."""
    return history(db_path(), account)


def holdings_sets(account: str) -> pl.DataFrame:
    """The account's holdings sets, newest first (:func:`msm.holdings_history`, read each time)."""
    return msm.holdings_history(store(), account)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def model_names(path: str) -> list[str]:
    """Every allocation model's name, sorted."""
    return msm.list_allocation_models(_store_for(path))["allocation_model_name"].sort().to_list()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def accounts_of_model(path: str, model: str) -> list[str]:
    """The accounts whose active allocation follows ``model``."""
    return msm.accounts_following_model(_store_for(path), model)["account"].to_list()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def accounts(path: str) -> pl.DataFrame:
    """Every account: ``unique_identifier``, ``account_name``, ``account_is_active``, ``uid``."""
    return (
        msm.list_accounts(_store_for(path))
        .select("unique_identifier", "account_name", "account_is_active", "uid")
        .sort("unique_identifier")
    )


# -- widgets shared by the pages -------------------------------------------------------------------------
#: The label of every write's reason box (:func:`reason`).
REASON_LABEL = "Reason (optional, recorded in the audit trail)"


def reason(key: str, *, value: str | None = None, where: Any = st) -> str | None:
    """A write's optional reason box: the text typed, stripped, or ``None`` when empty (give it as ``reason=``).

    ``value`` fills the box the first time it is shown (a dialog carrying on a reason typed before).
    """
    text = where.text_input(
        REASON_LABEL,
        value=value or "",
        key=key,
        max_chars=MAX_REASON,
        help="Why you make this change; the audit trail records it with the change (the Audit page shows it).",
    )
    return (text or "").strip() or None


def account_picker(accounts: pl.DataFrame, *, key: str, wanted: str | None = None, where: Any = st) -> str:
    """The searchable account list (identifier — name); ``wanted`` (a link's account) is chosen first.

    A ``wanted`` account that is not in the database is named in a warning and the first one is shown.
    """
    idents = accounts["unique_identifier"].to_list()
    names = dict(zip(idents, accounts["account_name"].to_list(), strict=True))
    if wanted is not None and wanted not in names:
        st.warning(f"The link's account {escape_md(wanted)} is not in this database; showing another account.")
    return where.selectbox(
        "Account",
        idents,
        index=idents.index(wanted) if wanted in names else 0,
        key=key,
        format_func=lambda a: f"{a} — {names[a]}" if names[a] and names[a] != a else a,
        help="Type to search by identifier or name.",
    )


def time_picker(
    label: str, times: list[datetime], *, asked: dict[str, Any], account: str, key: str, where: Any = st
) -> datetime:
    """A choice among ``times`` (newest first) that starts on the link's ``at`` when the link is about ``account``."""
    wanted = asked.get("at") if asked.get("account", account) == account else None
    return where.selectbox(
        label,
        times,
        index=times.index(wanted) if wanted in times else 0,
        format_func=when,
        key=key,
        help="Newest first.",
    )


def weights_choice(
    modes: dict[str, Any], *, key: str, help: str, index: int = 0, horizontal: bool = False, where: Any = st
) -> Any:
    """The **Portfolio weights as of** choice among ``modes`` (label: ``weights_as_of``), as the chosen value."""
    label = where.radio("Portfolio weights as of", list(modes), index=index, horizontal=horizontal, key=key, help=help)
    return modes[label]


def read_upload(upload: Any, *, entity: str) -> pl.DataFrame | None:
    """An uploaded CSV, JSON, Parquet or Excel file as a frame (read as ``msm`` reads such files).

    A file over :data:`MAX_UPLOAD_BYTES` is refused before it is read: a message, and ``None``.
    A file that cannot be read raises the reader's :class:`msm.MsmError`.
    """
    if upload.size > MAX_UPLOAD_BYTES:
        st.error(
            f"{escape_md(upload.name)} is {upload.size:,} bytes; the limit is {MAX_UPLOAD_BYTES:,}. Nothing was read."
        )
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        return read_table_file(path, entity=entity)


def utc_datetime(day: Any, clock: Any, fallback: datetime) -> datetime:
    """A UTC time from a date input and a time input (each empty one taken from ``fallback``)."""
    return datetime.combine(
        day if isinstance(day, date) else fallback.date(),
        clock if isinstance(clock, time) else fallback.time(),
        tzinfo=UTC,
    )


def band_inputs(abs_where: Any, rel_where: Any, *, prefix: str) -> tuple[float | None, float | None]:
    """The absolute and relative drift bands as inputs (keys ``{prefix}band_abs``, ``{prefix}band_rel``), as fractions.

    The Drift and Rebalance pages ask for them the same way: points and percent, empty for ``None`` (not checked).
    """
    band_abs = abs_where.number_input(
        "Absolute band (pp)",
        min_value=0.0,
        max_value=100.0,
        value=DEFAULT_BAND_ABS * 100,
        step=0.5,
        key=f"{prefix}band_abs",
        help="In breach when |current − target| is more than this many percentage points (empty: not checked)",
    )
    band_rel = rel_where.number_input(
        "Relative band (%)",
        min_value=0.0,
        value=None,
        step=5.0,
        key=f"{prefix}band_rel",
        help="In breach when |drift / target| is more than this percentage (empty: not checked)",
    )
    return (None if band_abs is None else band_abs / 100), (None if band_rel is None else band_rel / 100)


def table(frame: pl.DataFrame, config: dict[str, Any], *, key: str, where: Any = st) -> None:
    """``frame``'s columns named in ``config`` (in its order), headed and formatted by it; no index, empty cells "—"."""
    where.dataframe(frame.select(*config), hide_index=True, placeholder="—", key=key, column_config=config)


#: The media type of each file a page offers to download, by its ending.
MIME_TYPES = {"csv": "text/csv", "parquet": "application/octet-stream", "zip": "application/zip"}


def download(label: str, data: bytes | str, file_name: str, *, key: str, help: str, where: Any = st) -> None:
    """A download button for the file ``file_name`` holding ``data`` (its media type from :data:`MIME_TYPES`)."""
    mime = MIME_TYPES[Path(file_name).suffix.removeprefix(".")]
    where.download_button(label, data, file_name=file_name, mime=mime, key=key, help=help)


def composition_warnings(diagnostics: pl.DataFrame) -> None:
    """A warning per composition whose weights do not sum to 100% (a look-through's ``diagnostics``)."""
    for row in diagnostics.iter_rows(named=True):
        st.warning(
            f"Composition of {escape_md(row['portfolio'] or row['portfolio_uid'])} at {when(row['weights_time'])} "
            f"sums to {pct(row['weight_sum'], 4)}, not 100%: expanded as stored, not renormalized."
        )


# -- formatting ----------------------------------------------------------------------------------------
#: How a table shows a price, a rate or a quantity: up to 10 significant digits, so that a small one
#: (a price of 0.00001, a holding of 0.0004 BTC) never reads 0 as the default format (3 decimals) shows it.
UNITS_FORMAT = "%.10g"


def pct(value: float | None, decimals: int = 2) -> str:
    """A weight as a percentage: ``0.6`` -> ``60.00%``.

    A value that rounds to zero reads ``0.00%``, never ``-0.00%``.

    >>> pct(0.6), pct(0.123456, 4), pct(-1e-9), pct(None)
    ('60.00%', '12.3456%', '0.00%', '—')
    """
    return "—" if value is None else f"{value * 100:z,.{decimals}f}%"


def pp(value: float | None, decimals: int = 2) -> str:
    """A difference of weights in percentage points: ``0.1182`` -> ``11.82 pp``, ``-0.05`` -> ``-5.00 pp``.

    >>> pp(-0.05), pp(-1e-9)
    ('-5.00 pp', '0.00 pp')
    """
    return "—" if value is None else f"{value * 100:z,.{decimals}f} pp"


def amount(value: float | None, decimals: int = 2) -> str:
    """A notional or quantity with thousands separators: ``1000000`` -> ``1,000,000.00``.

    >>> amount(1000000), amount(2.5, 0), amount(-1e-9), amount(None)
    ('1,000,000.00', '2', '0.00', '—')
    """
    return "—" if value is None else f"{value:z,.{decimals}f}"


def when(value: datetime | None) -> str:
    """A UTC time as analysts read it: ``2026-05-25 00:00 UTC`` (seconds shown when not zero).

    >>> from datetime import timedelta, timezone
    >>> when(datetime(2026, 5, 25, 2, 0, tzinfo=timezone(timedelta(hours=2))))  # shown in UTC
    '2026-05-25 00:00 UTC'
    >>> when(datetime(2026, 5, 25, 0, 0, 30, tzinfo=UTC)), when(None)
    ('2026-05-25 00:00:30 UTC', '—')
    """
    if value is None:
        return "—"
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if value.second or value.microsecond else "%Y-%m-%d %H:%M UTC")


def escape_md(text: Any) -> str:
    r"""Text safe to put in Markdown: every character Markdown or HTML would act on is escaped.

    An account named ``*VIP* <b>`` shows as typed, neither bold nor HTML:

    >>> print(escape_md("*VIP* <b> [x](y)"))
    \*VIP\* \<b\> \[x\]\(y\)
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


WEIGHT_COLUMN = st.column_config.NumberColumn(
    "Weight", format="percent", help="weight_notional_exposure, a share of the mandate: type 0.6 for 60%"
)
NOTIONAL_COLUMN = st.column_config.NumberColumn(
    "Notional", format="localized", help="constant_notional_exposure: an amount in the account's currency"
)
QUANTITY_COLUMN = st.column_config.NumberColumn(
    "Quantity", format="localized", help="single_asset_quantity: units of one asset (asset rows only)"
)
#: A target set's weight sum, in every table that shows one.
WEIGHT_SUM_COLUMN = st.column_config.NumberColumn(
    "Weight sum", format="percent", help="Sum of the weight targets (never renormalized)"
)
EXPOSURE_CONFIG = {
    "weight_notional_exposure": WEIGHT_COLUMN,
    "constant_notional_exposure": NOTIONAL_COLUMN,
    "single_asset_quantity": QUANTITY_COLUMN,
}


#: How a snapshot diff shows each exposure: weights in percent, notionals and quantities with separators.
DIFF_FORMATS = {
    "weight_notional_exposure": "percent",
    "constant_notional_exposure": "localized",
    "single_asset_quantity": "localized",
}


def diff_config(*, sides: tuple[str, str], formats: dict[str, str] = DIFF_FORMATS) -> dict[str, Any]:
    """The columns of a snapshot diff (``to_frame()`` of :func:`msm.diff_snapshots`, :func:`msm.diff_draft`).

    Each exposure has a column per side, headed ``sides`` with the exposure's name in ``{}`` (``"{} before"``);
    an exposure in ``formats`` is a number in that format, any other plain.
    """
    config: dict[str, Any] = {"change": "Change", "target_type": "Kind", "unique_identifier": "Target"}
    for column, exposure in EXPOSURE_CONFIG.items():
        for suffix, side in zip(("before", "after"), sides, strict=True):
            label = side.format(exposure["label"])
            config[f"{column}_{suffix}"] = (
                st.column_config.NumberColumn(label, format=formats[column]) if column in formats else label
            )
    return config


# -- errors ----------------------------------------------------------------------------------------------
def show_error(exc: BaseException, *, where: Any = st) -> None:
    """One error as a message, built from the error's attributes (its rows as a list), user text escaped."""
    if isinstance(exc, ValidationError):
        where.error(_validation_text(exc))
    elif isinstance(exc, SnapshotExistsError):
        where.error(_snapshot_exists_text(exc))
    elif isinstance(exc, MsmError):
        where.error(escape_md(str(exc)))
    else:
        where.error(
            f"Something went wrong ({escape_md(type(exc).__name__)}: {escape_md(exc)}). Nothing was written by this "
            "step; try again, and if it persists run the same action with the `msm` command line to see details."
        )


def _bullets(lines: list[str], total: int) -> str:
    """Markdown list items of ``lines`` (escaped), with a last item counting the ``total`` not listed."""
    body = "".join(f"\n- {escape_md(line)}" for line in lines)
    return body + (f"\n- … and {total - len(lines):,} more" if total > len(lines) else "")


def _validation_text(exc: ValidationError) -> str:
    n = len(exc.errors)
    head = exc.summary or f"{n} problem{'s' if n != 1 else ''} found; nothing was stored"
    shown = [str(e) for e in exc.errors[: msm.errors.MAX_LISTED_ERRORS]]
    return escape_md(head) + _bullets(shown, n)


def _snapshot_exists_text(exc: SnapshotExistsError) -> str:
    n = len(exc.existing)
    head = f"A snapshot exists at that time for {n} account{'s' if n != 1 else ''}; nothing was written"
    shown = [
        f"{e['account']} (allocation {e.get('allocation') or e.get('account_target_allocation_uid')}) at "
        f"{when(e['position_set_time'])}"
        for e in exc.existing[: msm.errors.MAX_LISTED_ERRORS]
    ]
    return escape_md(head) + _bullets(shown, n) + "\n\nReplace it on purpose with the overwrite option."


def busy_text(exc: StoreBusyError) -> str:
    """The message for a busy database file: who holds it (when known) and how long the page waited."""
    who = f"{exc.program or 'a program'} (PID {exc.pid})" if exc.pid is not None else "another program"
    return (
        f"The database file is busy: it is in use by {escape_md(who)}, which is writing to it "
        f"(waited {exc.waited:g} s). Nothing was "
        "lost; try again in a moment."
    )


def guard(render: Callable[[], None]) -> None:
    """Run a page body with the app's error policy (no traceback is ever shown).

    The body runs inside one :meth:`msm.Store.connect` block: every service call of this rerun
    reuses one open of the file (opening it costs tens of milliseconds), and the file is released
    when the rerun ends, so the command line and notebooks can use it between reruns.
    """
    try:
        with acting(current_actor()), store().connect():
            render()
    except StoreBusyError as exc:
        st.warning(busy_text(exc))
        st.button(
            "Retry", key="busy_retry", help="Try again now; the write that holds the file is usually over in a moment."
        )
    except Exception as exc:  # a domain error shows its message; anything else a short one, never a traceback
        show_error(exc)


#: What a page that works on an account says when there is none.
NO_ACCOUNT = "There is no account yet. Load the demo data from the **Overview**."


def accounts_or_info(message: str = NO_ACCOUNT) -> pl.DataFrame | None:
    """Every account (:func:`accounts`), or ``None`` after showing ``message`` when there is none yet."""
    found = accounts(db_path())
    if found.height == 0:
        st.info(message)
        return None
    return found


def utc_column(label: str) -> Any:
    """A table column of UTC times, shown to the minute."""
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm", timezone="UTC")


def sidebar() -> None:
    """The signed-in user (when login is on), the database in use and a refresh button, on every page."""
    with st.sidebar:
        auth.user_box()
        st.caption("Database")
        st.text(os.path.abspath(db_path()))
        if st.button(
            "Refresh data", help="Read the database again (shows changes made by the command line or a notebook)."
        ):
            after_write()
            st.rerun()


#: The columns of the lineage tree (:func:`lineage_tree`).
TREE_CONFIG = {
    "label": st.column_config.TextColumn("Target → portfolio → … → asset", help="Indented by nesting level"),
    "kind": "Kind",
    **EXPOSURE_CONFIG,
}
#: What indents one level of the tree (em spaces: Streamlit cells keep them).
_INDENT = "\u2003\u2003"


def lineage_tree(view: Any, *, key: str) -> None:
    """A look-through's lineage as an indented tree (portfolio target, nested portfolios, assets), in an expander.

    Open by default when some portfolio is nested; nothing when no target is a portfolio.
    """
    tree = view.tree
    if tree.height == 0:
        return
    nested = bool(view.rows.height) and int(view.rows["depth"].max() or 0) > 1
    with st.expander("Lineage tree: target → portfolio → nested portfolio → asset", expanded=nested):
        shown = tree.with_columns(
            (pl.lit(_INDENT).repeat_by(pl.col("level")).list.join("") + pl.col("label")).alias("label")
        )
        table(shown, TREE_CONFIG, key=key)
