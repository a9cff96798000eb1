"""Links between the workbench's pages, declared once: each page's address, title and parameters.

A page that opens another passes what the other needs in the address, as query parameters, so a
link can be shared, bookmarked and reloaded (``/lookthrough?account=alpha&at=2026-06-01T00:00:00Z``).
Pages hand nothing to each other through ``st.session_state``.

- :data:`PAGES` declares every page: its module in ``msm_app/pages/``, title, icon, url path and
  the query parameters it reads (:data:`ACCOUNT`, :data:`AT`, :data:`WEIGHTS`).
- :func:`page` is the router's entry for one page (``app.py`` lists them in navigation order);
  :func:`show` draws a page's declared title and caption, then runs its body (with the accounts
  and its parameters, for a page about accounts).
- :func:`link` draws a link to a page with values for its parameters; :func:`go` switches to it.
- :func:`read` gives a page its parameters from the address, parsed (an unreadable value is named
  in a warning and left out); :func:`keep` writes what the page shows back into the address, so
  the browser's address is always a link to the current view.
- :func:`account_sets` is the first step of a page about an account's dated sets (snapshots,
  holdings): the account picker, then the account's sets, or a message and no ``at`` while it has none.

Adding a page: its module ``msm_app/pages/NAME.py`` (a ``main()`` calling ``links.show("NAME", render)``,
run under ``__main__``), one :class:`Page` entry in :data:`PAGES` (title, icon, caption, parameters),
and ``links.page("NAME")`` in ``app.py``.

>>> from datetime import UTC
>>> encode("lookthrough", account="alpha", at=datetime(2026, 6, 1, tzinfo=UTC), weights="now")
{'account': 'alpha', 'at': '2026-06-01T00:00:00Z', 'weights': 'now'}
>>> decode("lookthrough", {"account": "alpha", "at": "2026-06-01T00:00:00Z", "utm": "x"})
({'account': 'alpha', 'at': datetime.datetime(2026, 6, 1, 0, 0, tzinfo=datetime.timezone.utc)}, [])
>>> decode("lookthrough", {"at": "2026-06-01 00:00"})[1]  # doctest: +ELLIPSIS
["The link's `at` = '2026-06-01 00:00' is ignored: has no UTC offset (naive times are refused); ..."]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl
import streamlit as st

from msm.errors import MsmError
from msm.timeutil import format_utc, parse_utc
from msm_app import ui
from msm_app.ui import escape_md

__all__ = [
    "ACCOUNT",
    "AT",
    "PAGES",
    "WEIGHTS",
    "Page",
    "Param",
    "decode",
    "encode",
    "go",
    "keep",
    "link",
    "missing_market_data",
    "page",
    "read",
    "show",
]


@dataclass(frozen=True)
class Param:
    """One query parameter: its name in the address, how its text is read, and what it means."""

    name: str
    kind: Literal["text", "time", "weights"]
    help: str

    def encode(self, value: Any) -> str:
        """The value as it is written in the address (times as ISO-8601 UTC with ``Z``)."""
        if isinstance(value, datetime):
            return str(format_utc(value))
        return str(value)

    def decode(self, text: str) -> Any:
        """The value a page works with; :class:`msm.MsmError` when the text is not one."""
        if self.kind == "time" or (self.kind == "weights" and text not in WEIGHTS_WORDS):
            return parse_utc(text, field=self.name, entity="link")
        return text


#: ``weights`` may be one of these words instead of a UTC time.
WEIGHTS_WORDS = ("now", "position-set")
ACCOUNT = Param("account", "text", "an account's unique identifier")
AT = Param("at", "time", "a snapshot's time, ISO-8601 with a UTC offset (e.g. 2026-06-01T00:00:00Z)")
WEIGHTS = Param("weights", "weights", "which compositions expand portfolios: now, position-set or a UTC time")


@dataclass(frozen=True)
class Page:
    """A page of the workbench: its module ``msm_app/pages/<name>.py``, title, icon and parameters."""

    name: str
    title: str
    icon: str
    params: tuple[Param, ...] = ()
    default: bool = False
    caption: str = ""  # the line under the title: what the page shows

    @property
    def script(self) -> str:
        """The page's file, relative to ``app.py`` (what ``st.Page`` and ``AppTest.switch_page`` take)."""
        return f"msm_app/pages/{self.name}.py"

    @property
    def url_path(self) -> str:
        """The page's address under the app's root (the default page is the root itself)."""
        return "" if self.default else self.name


PAGES: dict[str, Page] = {
    p.name: p
    for p in (
        Page(
            "overview",
            "Overview",
            ":material/dashboard:",
            default=True,
            caption="What the open database holds, and the latest target snapshot of every account.",
        ),
        Page(
            "builder",
            "Target set builder",
            ":material/edit_note:",
            (ACCOUNT,),
            caption=(
                "Build an account's target set from direct assets and portfolios, check it as you type, preview its "
                "look-through exposure, and save it as a UTC-stamped snapshot."
            ),
        ),
        Page(
            "snapshots",
            "Snapshots",
            ":material/history:",
            (ACCOUNT, AT),
            caption=(
                "Every target snapshot of an account: its history, one snapshot in full, and what changed between two."
            ),
        ),
        Page(
            "review",
            "Review",
            ":material/fact_check:",
            (ACCOUNT,),
            caption=(
                "Draft target snapshots waiting for review, each with what publishing it changes against the "
                "published snapshot. Publish or discard them here."
            ),
        ),
        Page(
            "lookthrough",
            "Look-through",
            ":material/account_tree:",
            (ACCOUNT, AT, WEIGHTS),
            caption=(
                "Portfolio targets are stored as mandate intent. Here one snapshot is expanded, on request, into the "
                "asset exposure it stands for, using each portfolio's stored composition."
            ),
        ),
        Page(
            "holdings",
            "Holdings",
            ":material/inventory_2:",
            (ACCOUNT, AT),
            caption=(
                "What each account holds, as UTC-stamped holdings sets (quantities in units). Drift compares them "
                "with the account's targets."
            ),
        ),
        Page(
            "drift",
            "Drift",
            ":material/balance:",
            (ACCOUNT, AT),
            caption=(
                "Holdings valued with the latest prices and FX rates at the valuation time, compared with the latest "
                "target snapshot expanded through its portfolios. The unallocated part of a target is held in "
                "base-currency cash."
            ),
        ),
        Page(
            "rebalance",
            "Rebalance",
            ":material/swap_horiz:",
            (ACCOUNT,),
            caption=(
                "What to buy and sell so that accounts move toward their targets, with every trade rule reported. A "
                "proposal only: nothing is written. Quantities in units; values in each account's base currency."
            ),
        ),
        Page(
            "reference",
            "Reference data",
            ":material/database:",
            caption=(
                "Assets, portfolios, accounts and their mandates. Everything a target set points at is defined here."
            ),
        ),
        Page(
            "marketdata",
            "Market data",
            ":material/currency_exchange:",
            (AT,),
            caption=(
                "The asset prices and FX rates that value holdings (Drift, Rebalance): what a valuation at a time "
                "uses, every one stored, and an import of a file of either."
            ),
        ),
        Page(
            "export",
            "Export",
            ":material/download:",
            caption=(
                "Write snapshots as hive-partitioned Parquet (by snapshot date) that polars, DuckDB, Spark and Trino "
                "read natively, with the compositions and assets a look-through needs."
            ),
        ),
        Page(
            "audit",
            "Audit",
            ":material/policy:",
            (ACCOUNT,),
            caption="Every change: who made it, when and why, with the values before and after.",
        ),
    )
}


def page(name: str) -> Any:
    """The router's ``st.Page`` for the declared page ``name``."""
    spec = PAGES[name]
    if spec.default:
        return st.Page(spec.script, title=spec.title, icon=spec.icon, default=True)
    return st.Page(spec.script, title=spec.title, icon=spec.icon, url_path=spec.url_path)


def show(name: str, render: Callable[..., None], *, accounts: bool = False, no_account: str = ui.NO_ACCOUNT) -> None:
    """Page ``name``: its declared title and caption, then its body under the app's error policy (:func:`ui.guard`).

    With ``accounts`` the body is ``render(accounts, asked)``: every account, and the page's parameters
    read from the address (:func:`read`); while there is no account it is not run, and ``no_account``
    says how to add one.
    """
    spec = PAGES[name]
    st.title(spec.title)
    st.caption(spec.caption)
    if not accounts:
        ui.guard(render)
        return

    def body() -> None:
        """The accounts, then the page's parameters, then the page."""
        found = ui.accounts_or_info(no_account)
        if found is not None:
            render(found, read(name))

    ui.guard(body)


def account_sets(
    name: str,
    accounts: pl.DataFrame,
    asked: dict[str, Any],
    *,
    key: str,
    sets: Callable[[str], pl.DataFrame],
    none: str,
    where: Any = st,
) -> tuple[str, pl.DataFrame]:
    """Page ``name``'s account picker (the link's account first) and that account's dated ``sets``.

    While it has none, the address drops ``at`` and ``none`` is shown (``{account}``: the account, escaped).
    """
    account = ui.account_picker(accounts, key=key, wanted=asked.get("account"), where=where)
    found = sets(account)
    if found.height == 0:
        keep(name, account=account, at=None)
        st.info(none.format(account=escape_md(account)))
    return account, found


def encode(name: str, **values: Any) -> dict[str, str]:
    """The query parameters of a link to page ``name`` (``None`` values left out).

    A name the page does not declare is a programming error (:class:`TypeError`).
    """
    declared = {p.name: p for p in PAGES[name].params}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise TypeError(f"page {name!r} declares no parameter {', '.join(unknown)} (see msm_app.links.PAGES)")
    return {key: declared[key].encode(value) for key, value in values.items() if value is not None}


def decode(name: str, query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Page ``name``'s parameters read from ``query``, and a message for each unreadable one.

    Parameters the page does not declare are ignored (an address may carry others).
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for param in PAGES[name].params:
        text = query.get(param.name)
        if text is None or text == "":
            continue
        try:
            values[param.name] = param.decode(text)
        except MsmError as exc:
            rows = getattr(exc, "errors", None)  # a ValidationError: its first row says what is wrong
            problem = rows[0].rule if rows else str(exc)
            problems.append(f"The link's `{param.name}` = {text!r} is ignored: {problem}")
    return values, problems


def read(name: str) -> dict[str, Any]:
    """Page ``name``'s parameters from the address; each unreadable one is named in a warning."""
    values, problems = decode(name, st.query_params.to_dict())
    for problem in problems:
        st.warning(escape_md(problem))
    return values


def keep(name: str, **values: Any) -> None:
    """Write what page ``name`` shows into the address (only its declared parameters; ``None`` removes one)."""
    wanted = encode(name, **values)
    current = st.query_params.to_dict()
    if {k: v for k, v in current.items() if k in wanted or k in values} != wanted:
        for key in values:
            if key not in wanted and key in current:
                del st.query_params[key]
        st.query_params.update(wanted)


def missing_market_data(exc: Any) -> None:
    """A valuation's :class:`msm.MissingMarketDataError` (what is missing, at what time) and a link to
    the Market data page at that time, where the prices and rates are seen and imported."""
    ui.show_error(exc)
    link("marketdata", "See and import prices and FX rates", at=exc.at)


def link(name: str, label: str, *, help: str | None = None, **values: Any) -> None:
    """A link to page ``name`` that opens it with ``values`` for its parameters."""
    spec = PAGES[name]
    st.page_link(spec.script, label=label, icon=spec.icon, help=help, query_params=encode(name, **values) or None)


def go(name: str, **values: Any) -> None:
    """Switch to page ``name`` now, with ``values`` for its parameters (ends this run)."""
    st.switch_page(PAGES[name].script, query_params=encode(name, **values) or None)
