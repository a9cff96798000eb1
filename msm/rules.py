"""The one rule engine: row rules declared as data, run vectorized, violations returned as data.

A :class:`Rule` names the entity and field it is about, its own name, the message the user reads
and a polars expression that is true where a row is bad (plus, optionally, the value the message
shows). :func:`find_violations` evaluates any number of rules over a whole frame at once and
returns every violation as a frame (``row, entity, field, value, rule, message``);
:func:`raise_violations` turns that frame into one :class:`~msm.errors.ValidationError` listing
every bad row, and :func:`enforce` does both. Rule expressions are evaluated on the whole frame
before anything is filtered, so a window (the first row of a duplicate) sees every row.

The small expressions every validation needs live here once: :func:`clean_text` (stripped text,
blank as null), :func:`uid_text` (UUID text compared in lower case), :func:`is_uuid` and
:data:`UUID_HINT`.

>>> import polars as pl
>>> rules = [
...     Rule("target set", "weight", "weight_finite", "must be finite", pl.col("weight").is_infinite()),
...     Rule("target set", "weight", "weight_positive", "must not be negative", pl.col("weight") < 0),
... ]
>>> frame = pl.DataFrame({"weight": [0.5, float("inf"), -1.0]})
>>> find_violations(frame, rules).select("row", "field", "value", "rule")
shape: (2, 4)
┌─────┬────────┬───────┬─────────────────┐
│ row ┆ field  ┆ value ┆ rule            │
│ --- ┆ ---    ┆ ---   ┆ ---             │
│ i64 ┆ str    ┆ str   ┆ str             │
╞═════╪════════╪═══════╪═════════════════╡
│ 2   ┆ weight ┆ inf   ┆ weight_finite   │
│ 3   ┆ weight ┆ -1.0  ┆ weight_positive │
└─────┴────────┴───────┴─────────────────┘
>>> enforce(frame, rules)
Traceback (most recent call last):
msm.errors.ValidationError: 2 problems found; nothing was stored:
  target set row 2: `weight` = 'inf': must be finite
  target set row 3: `weight` = '-1.0': must not be negative
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from msm.errors import NO_VALUE, RowError, ValidationError

__all__ = [
    "EMPTY_TARGET_SET",
    "ROW",
    "UUID_HINT",
    "UUID_PATTERN",
    "VIOLATION_SCHEMA",
    "Rule",
    "clean_text",
    "empty_target_set",
    "enforce",
    "find_violations",
    "is_uuid",
    "is_uuid_text",
    "no_violations",
    "raise_violations",
    "uid_text",
    "violation_errors",
]

#: Column holding each row's 1-based number as the user sees it (file row, list position).
ROW = "__row"
#: Canonical UUID text (lower case, hyphenated), as DuckDB prints a ``UUID``.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
#: What a malformed UUID is told.
UUID_HINT = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000"
#: The message of a target set without rows (saving, checking, expanding or exporting one).
EMPTY_TARGET_SET = "the target set is empty; give at least one target row"
#: The columns (and types) of the frame :func:`find_violations` returns.
VIOLATION_SCHEMA = {
    "row": pl.Int64,
    "entity": pl.String,
    "field": pl.String,
    "value": pl.String,
    "rule": pl.String,
    "message": pl.String,
}

_UUID = re.compile(UUID_PATTERN)


@dataclass(frozen=True)
class Rule:
    """One row rule: rows where ``bad`` is true violate it.

    ``message`` is text or a per-row string expression; ``value`` is what the message shows
    (default: the ``field`` column; ``pl.lit(None)`` shows no value). A null in ``bad`` counts as
    not bad.
    """

    entity: str
    field: str
    name: str
    message: str | pl.Expr
    bad: pl.Expr
    value: pl.Expr | None = None

    def shown(self) -> pl.Expr:
        """The value the message shows, as text."""
        return (self.value if self.value is not None else pl.col(self.field)).cast(pl.String)

    def text(self) -> pl.Expr:
        """The message, as a string expression."""
        return self.message.cast(pl.String) if isinstance(self.message, pl.Expr) else pl.lit(self.message)

    def mask(self) -> pl.Expr:
        """``bad`` with null read as not bad."""
        return self.bad.fill_null(False)


def no_violations() -> pl.DataFrame:
    """An empty violations frame (:data:`VIOLATION_SCHEMA`)."""
    return pl.DataFrame(schema=VIOLATION_SCHEMA)


def find_violations(
    frame: pl.DataFrame, rules: Iterable[Rule], *, row: str = ROW, entity: str | None = None
) -> pl.DataFrame:
    """Every violation of ``rules`` in ``frame``, as a frame of :data:`VIOLATION_SCHEMA`.

    ``row`` names the column holding the rows' 1-based numbers (default: positions 1..n when the
    frame has no such column); ``entity`` (when given) replaces each rule's own entity, for a
    caller that names its input (``'targets.csv'``). One pass evaluates only the masks; messages
    and values are built only when some row is bad.
    """
    rules = [replace(r, entity=entity) if entity is not None else r for r in rules]
    if not rules or frame.height == 0:
        return no_violations()
    if row not in frame.columns:
        frame = frame.with_row_index(row, offset=1)
    if not frame.select(pl.any_horizontal(*(r.mask().any() for r in rules))).item():
        return no_violations()
    found = pl.concat(
        [
            frame.lazy()
            .select(
                pl.col(row).cast(pl.Int64).alias("row"),
                rule.mask().alias("__bad"),
                pl.lit(rule.entity, pl.String).alias("entity"),
                pl.lit(rule.field, pl.String).alias("field"),
                rule.shown().alias("value"),
                pl.lit(rule.name, pl.String).alias("rule"),
                rule.text().alias("message"),
            )
            .filter("__bad")
            .drop("__bad")
            for rule in rules
        ]
    ).collect()
    return found.sort("row", maintain_order=True, nulls_last=False)


def violation_errors(violations: pl.DataFrame) -> list[RowError]:
    """The violations frame as :class:`~msm.errors.RowError` values (a null value shows none)."""
    return [
        RowError(
            v["entity"],
            v["row"],
            v["field"],
            NO_VALUE if v["value"] is None else v["value"],
            v["message"],
            v["rule"],
        )
        for v in violations.iter_rows(named=True)
    ]


def raise_violations(violations: pl.DataFrame, *, summary: str | None = None) -> None:
    """Raise one :class:`~msm.errors.ValidationError` with every violation (none: return).

    ``summary`` names what was checked (``'composition of portfolio ...'``); the message then reads
    ``{summary}: N problems found; nothing was stored``.
    """
    if violations.height == 0:
        return
    n = violations.height
    head = f"{summary}: {n} problem{'s' if n != 1 else ''} found; nothing was stored" if summary else None
    raise ValidationError(violation_errors(violations), summary=head)


def enforce(
    frame: pl.DataFrame,
    rules: Iterable[Rule],
    *,
    row: str = ROW,
    entity: str | None = None,
    summary: str | None = None,
) -> None:
    """:func:`find_violations` then :func:`raise_violations`: raise with every bad row, or return."""
    raise_violations(find_violations(frame, rules, row=row, entity=entity), summary=summary)


def empty_target_set(entity: str = "target set") -> ValidationError:
    """The error for a target set without rows (:data:`EMPTY_TARGET_SET`)."""
    return ValidationError([RowError(entity, None, "rows", NO_VALUE, EMPTY_TARGET_SET, "target_set_not_empty")])


# -- the small expressions every validation shares ---------------------------------------------------------------


def clean_text(column: str | pl.Expr) -> pl.Expr:
    """A column as stripped text, blank text as null (CSV and grid cells).

    >>> pl.DataFrame({"a": [" x ", "  ", None]}).select(clean_text("a"))["a"].to_list()
    ['x', None, None]
    """
    expr = pl.col(column) if isinstance(column, str) else column
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def uid_text(column: str | pl.Expr) -> pl.Expr:
    """UUID text as compared: stripped, lower case (blank stays blank and is not a UUID)."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.cast(pl.String).str.strip_chars().str.to_lowercase()


def is_uuid(expr: str | pl.Expr) -> pl.Expr:
    """True where the text is a canonical (lower-case) UUID, null where it is null."""
    expr = pl.col(expr) if isinstance(expr, str) else expr
    return expr.cast(pl.String).str.contains(UUID_PATTERN)


def is_uuid_text(value: Any) -> bool:
    """One value: is it a UUID (any case, surrounding spaces allowed, as :func:`uid_text` reads it)?

    >>> is_uuid_text(" 123E4567-E89B-42D3-A456-426614174000 "), is_uuid_text("BTC")
    (True, False)
    """
    return isinstance(value, str) and _UUID.match(value.strip().lower()) is not None


# -- rules every entity's validation words the same way ----------------------------------------------------------
#: What a non-finite number is told.
FINITE = "must be finite (NaN and infinity are refused)"


def required(
    entity: str,
    field: str,
    bad: pl.Expr | None = None,
    *,
    message: str | pl.Expr = "is required",
    value: pl.Expr | None = None,
) -> Rule:
    """``field`` must be given (``bad`` defaults to the column being null)."""
    return Rule(entity, field, f"{field}_required", message, pl.col(field).is_null() if bad is None else bad, value)


def number(entity: str, field: str, raw: pl.Expr) -> Rule:
    """A cell given as text (``raw``) that did not parse as a number (``field`` is the parsed column)."""
    return Rule(entity, field, f"{field}_number", "must be a number", raw.is_not_null() & pl.col(field).is_null(), raw)


def finite(entity: str, field: str, value: pl.Expr | None = None, *, message: str | pl.Expr = FINITE) -> Rule:
    """A number column must be finite; ``value`` is what the message shows (default: the column)."""
    column = pl.col(field)
    return Rule(entity, field, f"{field}_finite", message, column.is_nan() | column.is_infinite(), value)


def well_formed_uuid(
    entity: str, field: str, *, well_formed: pl.Expr | None = None, value: pl.Expr | None = None
) -> Rule:
    """A given ``field`` must be UUID text (``well_formed`` defaults to :func:`is_uuid` of the column)."""
    ok = is_uuid(field) if well_formed is None else well_formed
    return Rule(entity, field, f"{field}_uuid", UUID_HINT, pl.col(field).is_not_null() & ~ok, value)


def known_uid(entity: str, kind: str, field: str, *, well_formed: pl.Expr, found: pl.Expr) -> Rule:
    """A well-formed uid in ``field`` must name an existing ``kind`` (``found`` is null when none does)."""
    return Rule(entity, field, f"{kind}_uid_exists", f"no {kind} has this uid", well_formed & found.is_null())


def known_identifier(entity: str, kind: str, field: str, *, resolved: pl.Expr) -> Rule:
    """A unique identifier in ``field`` must name an existing ``kind`` (``resolved``: its uid, or null)."""
    return Rule(
        entity,
        field,
        f"{kind}_exists",
        f"no {kind} has this unique_identifier; add it first (msm {kind}s add ID)",
        pl.col(field).is_not_null() & resolved.is_null(),
    )


def names_agree(entity: str, kind: str, *, uid: str, identifier: str, resolved: pl.Expr) -> Rule:
    """A row naming ``kind`` twice (``uid`` and ``identifier``, which resolved to ``resolved``) must agree."""
    given = pl.col(uid)
    return Rule(
        entity,
        uid,
        f"{kind}_names_agree",
        pl.lit(f"names a different {kind} than `{identifier}` = '")
        + pl.col(identifier)
        + pl.lit("' (")
        + resolved
        + pl.lit("); give one or make them agree"),
        given.is_not_null() & resolved.is_not_null() & (given != resolved),
    )


def unique_within(
    entity: str,
    field: str,
    *,
    key: Sequence[str | pl.Expr],
    label: pl.Expr,
    scope: str,
    where: pl.Expr | None = None,
    value: pl.Expr | None = None,
    row: str = ROW,
) -> Rule:
    """Rows with the same non-null ``key`` (the last of which is the thing itself) must not repeat.

    Every repeat after the first is bad (``where`` narrows which repeats this rule reports); the
    message reads ``duplicate {label} in one {scope}; first given at row N``.
    """
    first = pl.col(row).min().over(*key)
    thing = key[-1] if isinstance(key[-1], pl.Expr) else pl.col(key[-1])
    bad = thing.is_not_null() & (pl.col(row) > first)
    return Rule(
        entity,
        field,
        f"{field}_unique",
        pl.lit("duplicate ") + label + pl.lit(f" in one {scope}; first given at row ") + first.cast(pl.String),
        bad & where if where is not None else bad,
        value,
    )
