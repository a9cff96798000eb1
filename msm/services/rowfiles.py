"""What the holdings, price and FX imports share: the input frame, its columns, typed cells, the rules.

Each import takes a frame, a file (CSV, JSON, Parquet, Excel; :func:`msm.io.read_table_file`) or
rows, checks its columns, turns cells into typed columns while *declaring* the rules a bad cell
breaks, resolves references in DuckDB, and only then evaluates every declared rule over the whole
frame at once (:class:`FileRules`), so one error lists every bad row with its row number, field,
value and rule. Nothing is coerced: a cell that is not a number, a time or a currency code is
named as given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from msm import rules as engine
from msm.errors import NO_VALUE, RowError, ValidationError
from msm.io import read_rows
from msm.store.connection import fetch, quote_ident
from msm.timeutil import ensure_utc_column
from msm.validation import ROW

__all__ = [
    "CURRENCY_PATTERN",
    "CURRENCY_RULE",
    "FileRules",
    "Rule",
    "input_frame",
    "lookup_keys",
    "number_column",
    "text_column",
    "time_column",
]

#: A currency is an ISO 4217 code: three upper-case letters (the DDL's CHECK says the same).
CURRENCY_PATTERN = r"^[A-Z]{3}$"
CURRENCY_RULE = "must be a three-letter upper-case ISO 4217 currency code, such as USD or EUR"


@dataclass(frozen=True)
class Rule:
    """One row rule of an import whose entity :class:`FileRules` knows: rows where ``bad`` is true are bad in ``field``.

    ``value`` is what the message shows (default: the column). :meth:`FileRules.enforce` declares it
    on the rule engine as :class:`msm.rules.Rule`.
    """

    field: str
    name: str
    message: str | pl.Expr
    bad: pl.Expr
    value: pl.Expr | None = None


@dataclass
class FileRules:
    """The rules declared for one import, and the errors already found about whole columns."""

    entity: str
    rules: list[Rule] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def add(self, *rules: Rule) -> None:
        """Declare rules (evaluated later, over the whole frame, by :meth:`enforce`)."""
        self.rules.extend(rules)

    def enforce(self, frame: pl.DataFrame, *, summary: str, outcome: str = "nothing was stored") -> None:
        """Raise one :class:`ValidationError` with every column error and every row that breaks a rule.

        The rules run on the one rule engine (:func:`msm.rules.find_violations`), so each error also
        carries its rule's name (``quantity_long_only``); the heading ends in ``outcome``.
        """
        declared = [engine.Rule(self.entity, r.field, r.name, r.message, r.bad, r.value) for r in self.rules]
        errors = [*self.errors, *engine.violation_errors(engine.find_violations(frame, declared))]
        if errors:
            n = len(errors)
            raise ValidationError(errors, summary=f"{summary}: {n} problem{'s' if n != 1 else ''} found; {outcome}")


def known(field: str, hint: str) -> Rule:
    """``field`` (a unique identifier or uid) must name a stored ``field``: its lookup ``FIELD_uid`` is not null.

    ``hint`` is how to add one (``msm assets add ID``).
    """
    return Rule(
        field,
        f"{field}_exists",
        f"no {field} has this unique_identifier or uid; add it first ({hint})",
        pl.col(field).is_not_null() & pl.col(f"{field}_uid").is_null(),
    )


def input_frame(
    source: pl.DataFrame | str | Path | Sequence[Mapping[str, Any]],
    *,
    entity: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    instead: Mapping[str, str] | None = None,
    sheet: str | None = None,
    action: str = "import",
) -> pl.DataFrame:
    """The rows as a frame with a 1-based ``__row`` column; refuses unknown and missing columns, and no rows.

    ``action`` names what the rows are for in a refusal's heading (``prices import: ...``, ``prices delete: ...``).
    """
    frame = read_rows(source, entity=entity, sheet=sheet)
    outcome = "nothing was deleted" if action == "delete" else "nothing was stored"
    if frame.height == 0:
        raise ValidationError(
            [RowError(entity, None, "rows", NO_VALUE, "there are no rows; give at least one")],
            summary=f"{entity} {action}: nothing to {action}; {outcome}",
        )
    allowed = [*required, *optional]
    errors = []
    for column in frame.columns:
        if column not in allowed and not column.startswith("__"):
            hint = (instead or {}).get(column, f"allowed: {', '.join(allowed)}")
            errors.append(RowError(entity, None, column, NO_VALUE, f"is not a column of a {entity} file; {hint}"))
    errors += [
        RowError(entity, None, c, NO_VALUE, "column is missing (required)") for c in required if c not in frame.columns
    ]
    if errors:
        raise ValidationError(errors, summary=f"{entity} {action}: the columns do not fit; {outcome}")
    frame = frame.with_columns(pl.lit(None, pl.String).alias(c) for c in optional if c not in frame.columns)
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return frame


def text_column(frame: pl.DataFrame, column: str, rules: FileRules, *, required: bool = False) -> pl.DataFrame:
    """``column`` as stripped text (blank is empty); ``required`` declares that it must not be empty."""
    dtype = frame.schema[column]
    if not (dtype == pl.String or dtype == pl.Null or dtype.is_integer()):
        rules.errors.append(RowError(rules.entity, None, column, NO_VALUE, f"must hold text, got a {dtype} column"))
        return frame.with_columns(pl.lit(None, pl.String).alias(column))
    text = pl.col(column).cast(pl.String).str.strip_chars()
    frame = frame.with_columns(pl.when(text.str.len_chars() > 0).then(text).alias(column))
    if required:
        rules.add(Rule(column, f"{column}_required", "must not be empty", pl.col(column).is_null(), pl.lit(None)))
    return frame


def number_column(frame: pl.DataFrame, column: str, rules: FileRules) -> pl.DataFrame:
    """``column`` as Float64, the cell as given kept in ``__given_<column>``; declares required, a number, finite."""
    given = f"__given_{column}"
    dtype = frame.schema[column]
    if dtype == pl.String or dtype == pl.Null:
        text = pl.col(column).cast(pl.String).str.strip_chars()
        frame = frame.with_columns(pl.when(text.str.len_chars() > 0).then(text).alias(given))
        frame = frame.with_columns(pl.col(given).cast(pl.Float64, strict=False).alias(column))
    elif dtype.is_numeric():
        frame = frame.with_columns(pl.col(column).cast(pl.String).alias(given), pl.col(column).cast(pl.Float64))
    else:
        rules.errors.append(RowError(rules.entity, None, column, NO_VALUE, f"must hold numbers, got a {dtype} column"))
        return frame.with_columns(pl.lit(None, pl.String).alias(given), pl.lit(None, pl.Float64).alias(column))
    value = pl.col(column)
    rules.add(
        Rule(column, f"{column}_required", "must not be empty", pl.col(given).is_null(), pl.lit(None)),
        Rule(
            column, f"{column}_number", "must be a number", pl.col(given).is_not_null() & value.is_null(), pl.col(given)
        ),
        Rule(
            column,
            f"{column}_finite",
            "must be finite (NaN and infinity are refused)",
            value.is_nan() | value.is_infinite(),
            pl.col(given),
        ),
    )
    return frame


def time_column(frame: pl.DataFrame, column: str, rules: FileRules) -> pl.DataFrame:
    """``column`` as UTC times; every naive, unparsable or empty cell becomes an error of ``rules`` (and null)."""
    try:
        return ensure_utc_column(frame, column, entity=rules.entity, row_column=ROW)
    except ValidationError as exc:
        rules.errors.extend(exc.errors)
    if isinstance(frame.schema[column], pl.Datetime):  # a naive datetime column: nothing in it is usable
        return frame.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias(column))
    text = pl.col(column).cast(pl.String).str.strip_chars()
    parsed = (
        text.str.replace(r"(?i)z$", "+00:00")
        .str.replace(r"([+-]\d{2})$", "${1}:00")
        .str.replace(" ", "T", literal=True)
        .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC", time_unit="us")
    )
    return frame.with_columns(parsed.alias(column))


def lookup_keys(
    con: duckdb.DuckDBPyConnection, table: str, values: pl.Series, *, extra: Sequence[str] = ()
) -> pl.DataFrame:
    """``(key, uid, *extra)`` of ``table``'s rows whose unique_identifier, or uid, is one of ``values``.

    ``table`` and ``extra`` come from code, never from a user. Two equality joins (by identifier,
    by uid): an OR in a join condition would be a nested loop. Keys that name no row are left out.
    """
    keys = pl.DataFrame({"key": values.cast(pl.String).drop_nulls().unique()}, schema={"key": pl.String})
    columns = "".join(f", coalesce(a.{quote_ident(c)}, b.{quote_ident(c)}) AS {quote_ident(c)}" for c in extra)
    con.register("__lookup_keys", keys.to_arrow())
    try:
        return fetch(
            con,
            f"""
            SELECT k.key, coalesce(a.uid, b.uid)::VARCHAR AS uid{columns}
            FROM __lookup_keys AS k
            LEFT JOIN {quote_ident(table)} AS a ON a.unique_identifier = k.key
            LEFT JOIN {quote_ident(table)} AS b ON b.uid = TRY_CAST(k.key AS UUID)
            WHERE coalesce(a.uid, b.uid) IS NOT NULL
            """,
        )
    finally:
        con.unregister("__lookup_keys")
