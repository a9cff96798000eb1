"""Rendering for the command line: JSON documents, aligned text tables, CSV.

Commands build plain Python values (dicts, lists, numbers, strings, ``datetime``) and hand them to
one of the writers here, so every command formats the same way:

- :func:`write_json` prints ONE JSON document; numbers stay JSON numbers, times become ISO-8601
  UTC with a ``Z`` (:func:`msm.timeutil.format_utc`), NaN/infinity are refused (never printed).
- :func:`write_table` prints a simple aligned text table for humans (numbers right-aligned).
- :func:`write_csv` prints CSV with a header row (empty cell = null, objects as JSON text).
- :func:`report_error` prints an error: ``error: MESSAGE`` on stderr, and with ``--format json``
  also the error as data (:meth:`msm.errors.MsmError.to_dict`), one JSON line, last on stderr.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

import polars as pl

from msm.errors import MsmError
from msm.timeutil import format_utc

__all__ = [
    "FORMATS",
    "Column",
    "cell",
    "counted",
    "frame_records",
    "money",
    "number",
    "percent",
    "points",
    "price_text",
    "report_error",
    "write_csv",
    "write_document",
    "write_json",
    "write_lines",
    "write_table",
]

#: The formats a command may offer; each command lists the ones it supports.
FORMATS = ("table", "json", "csv")
#: A column of :func:`write_table`: ``(key, header)``, or the key alone where the header is the key.
Column = str | tuple[str, str]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(document: Any, out: TextIO | None = None) -> None:
    """Print ``document`` as one JSON document (indented, times as UTC ``...Z``)."""
    out = out or sys.stdout
    out.write(json.dumps(document, default=_default, allow_nan=False, indent=2, ensure_ascii=False) + "\n")


def write_lines(*lines: str, out: TextIO | None = None) -> None:
    """Print each of ``lines`` on its own line."""
    out = out or sys.stdout
    for line in lines:
        out.write(line + "\n")


def number(value: float | int | None, *, decimals: int | None = None) -> str:
    """A number for people: up to 15 significant digits (float noise like ``0.30000000000000004``
    reads ``0.3``); ``decimals`` first rounds to that many decimal places (for sums and residuals).

    >>> number(0.6), number(0.1 + 0.2), number(1.0 - (0.6 + 0.3 + 0.1), decimals=12), number(2500000.0), number(3)
    ('0.6', '0.3', '0', '2500000', '3')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if decimals is not None:
        value = round(value, decimals)
    text = format(value, ".15g")
    return "0" if text == "-0" else text


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1.

    >>> counted(1, "snapshot"), counted(3, "holdings set")
    ('1 snapshot', '3 holdings sets')
    """
    return f"{n} {noun}{'s' if n != 1 else ''}"


def money(value: float | None) -> str:
    """An amount with thousands separators and two decimals; empty for null; never ``-0.00``.

    >>> money(1234567.891), money(-1e-9), money(None)
    ('1,234,567.89', '0.00', '')
    """
    return "" if value is None else f"{value:z,.2f}"


def percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals; empty for null.

    >>> percent(0.6), percent(-1e-9), percent(None)
    ('60.00%', '0.00%', '')
    """
    return "" if value is None else f"{value:z.2%}"


def points(value: float | None, *, signed: bool = False) -> str:
    """A difference of weights in percentage points (``signed``: with its sign, ``+`` too); empty for null.

    >>> points(0.0123), points(0.0123, signed=True), points(-0.05, signed=True), points(-1e-9, signed=True)
    ('1.23 pp', '+1.23 pp', '-5.00 pp', '+0.00 pp')
    """
    if value is None:
        return ""
    return f"{value * 100:+z.2f} pp" if signed else f"{value * 100:z.2f} pp"


def price_text(row: Mapping[str, Any]) -> str:
    """A row's ``price`` with its ``price_currency`` (``65,000 USD``); empty when it has no price."""
    return "" if row["price"] is None else f"{row['price']:,.6g} {row['price_currency']}"


def cell(value: Any) -> str:
    """One table or CSV cell: empty for null, numbers via :func:`number`, times as UTC, objects as JSON.

    >>> from datetime import UTC
    >>> [cell(v) for v in (None, True, 0.1 + 0.2, {"a": 1}, datetime(2026, 6, 1, tzinfo=UTC))]
    ['', 'true', '0.3', '{"a":1}', '2026-06-01T00:00:00Z']
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return number(value)
    if isinstance(value, datetime):
        return format_utc(value) or ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def write_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    out: TextIO | None = None,
    empty: str = "(no rows)",
) -> None:
    """Print ``rows`` as an aligned text table; ``columns`` are ``(key, header)`` pairs, or keys that are their header.

    Numeric columns (every non-null value a number, or a number as text: ``60,000.00``, ``58.18%``,
    ``-11.82 pp``, ``60,000 USD``) are right-aligned, others left-aligned.

    >>> rows = [{"asset": "BTC", "weight": 0.6}, {"asset": "ETH", "weight": 0.35}, {"asset": "SOL", "weight": None}]
    >>> write_table(rows, [("asset", "asset"), ("weight", "weight")])
    asset  weight
    -----  ------
    BTC       0.6
    ETH      0.35
    SOL
    >>> write_table([], [("asset", "asset")], empty="(no holdings)")
    (no holdings)
    >>> write_table(rows[:1], ["asset", ("weight", "w")])
    asset    w
    -----  ---
    BTC    0.6
    >>> write_table([{"a": "BTC", "v": "60,000.00", "d": "-1.50 pp"}, {"a": "USD", "v": "5.00", "d": ""}], "avd")
    a            v         d
    ---  ---------  --------
    BTC  60,000.00  -1.50 pp
    USD       5.00
    """
    out = out or sys.stdout
    if not rows:
        out.write(empty + "\n")
        return
    columns = [(column, column) if isinstance(column, str) else column for column in columns]
    headers = [header for _, header in columns]
    cells = [[_table_cell(row.get(key)) for key, _ in columns] for row in rows]
    numeric = [
        all(_is_number(row.get(key)) for row in rows if row.get(key) not in (None, ""))
        and any(row.get(key) not in (None, "") for row in rows)
        for key, _ in columns
    ]
    widths = [max(len(headers[i]), *(len(line[i]) for line in cells)) for i in range(len(columns))]

    def render(values: Sequence[str], align_numbers: bool) -> str:
        """One table line: numeric columns right-aligned when ``align_numbers``."""
        parts = [
            v.rjust(w) if (align_numbers and numeric[i]) else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out.write(render(headers, True) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for line in cells:
        out.write(render(line, True) + "\n")


def _table_cell(value: Any) -> str:
    """A table cell: :func:`cell`, with thousands separators in a number (``20,000``, ``61,234.5``).

    >>> [_table_cell(v) for v in (20000, 61234.5, -1234.5, 0.000123, 1e-20, "12345")]
    ['20,000', '61,234.5', '-1,234.5', '0.000123', '1e-20', '12345']
    """
    text = cell(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    whole, dot, fraction = text.partition(".")
    digits = whole.removeprefix("-")
    if not digits.isdigit():  # 1e-20, inf, nan
        return text
    return f"{whole[: len(whole) - len(digits)]}{int(digits):,}{dot}{fraction}"


#: A number as a table cell shows it: ``60,000.00``, ``58.18%``, ``-11.82 pp``, ``60,000 USD``.
_NUMBER_TEXT = re.compile(r"[+-]?\d[\d,]*(\.\d+)?(e[+-]?\d+)?(%| pp| [A-Z]{3})?")


def _is_number(value: Any) -> bool:
    """A number, or a number as text (with separators, and a percent sign, ``pp`` or a currency code)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None)


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, out: TextIO | None = None) -> None:
    """Print ``rows`` as CSV with a header (floats keep full precision, nulls are empty cells)."""
    out = out or sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])


def _csv_cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # exact, unlike the rounded human form
    return cell(value)


def write_document(
    fmt: str, document: Mapping[str, Any], *, rows: str | None = None, columns: Sequence[str] = ()
) -> bool:
    """Print ``document`` in a machine format, saying whether it did: ``json`` the whole document, ``csv``
    (when the command gives ``rows``) its list ``rows`` with ``columns``; for any other format (``table``)
    nothing, and False."""
    if fmt == "json":
        write_json(document)
        return True
    if fmt == "csv" and rows is not None:
        write_csv(document[rows], columns)
        return True
    return False


def frame_records(frame: pl.DataFrame, *, json_columns: Sequence[str] = ("metadata_json",)) -> list[dict[str, Any]]:
    """A frame as a list of dicts, JSON-text columns (``metadata_json``) parsed back to objects."""
    records = frame.to_dicts()
    for record in records:
        for key in json_columns:
            if isinstance(record.get(key), str):
                record[key] = json.loads(record[key])
    return records


def report_error(exc: MsmError, *, as_json: bool = False, err: TextIO | None = None) -> None:
    """``error: MESSAGE`` on stderr; with ``as_json`` also the error as data, as the last line of stderr.

    That line is ``exc.to_dict()`` as one compact JSON document (class name, message and the
    error's own fields, never a parse of the message), e.g.
    ``{"error": "SnapshotExistsError", "message": "...", "account": "ACC-1", ...}``. stdout stays
    empty, so a failed command never prints half a result.
    """
    err = err or sys.stderr
    err.write(f"error: {exc}\n")
    if as_json:
        err.write(json.dumps(exc.to_dict(), allow_nan=False, ensure_ascii=False, separators=(",", ":")) + "\n")
