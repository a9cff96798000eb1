"""UTC timestamps: the one place that decides what a valid time is.

Every time the workbench stores is a timezone-aware instant kept in UTC. A value without an offset
is refused everywhere (never assumed to be UTC), because "2026-05-25 00:00" means a different
instant in New York and in Tokyo.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from msm.errors import ValidationError

__all__ = ["ensure_utc_column", "format_utc", "parse_utc", "utc_now"]

_HAS_OFFSET = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)
_ALLOWED = "an ISO-8601 time with a UTC offset, e.g. 2026-05-25T00:00:00Z or 2026-05-25T09:00:00+09:00"


def utc_now() -> datetime:
    """The current instant in UTC, to the microsecond (DuckDB's TIMESTAMPTZ precision)."""
    return datetime.now(UTC)


def parse_utc(value: Any, *, field: str = "time", entity: str = "timestamp", row: int | None = None) -> datetime:
    """Parse ``value`` (an aware ``datetime`` or an ISO-8601 string with an offset) to UTC.

    >>> parse_utc("2026-05-25T09:00:00+09:00")
    datetime.datetime(2026, 5, 25, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_utc("2026-05-25T00:00:00")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    msm.errors.ValidationError: 1 problem found; nothing was stored:
      timestamp: `time` = '2026-05-25T00:00:00': has no UTC offset (naive times are refused); give an ISO-8601 ...
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValidationError.single(
                entity, field, value.isoformat(), f"has no UTC offset (naive times are refused); give {_ALLOWED}", row
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        raise ValidationError.single(entity, field, value.isoformat(), f"is a date, not a time; give {_ALLOWED}", row)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.single(entity, field, value, f"must be {_ALLOWED}", row)
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise ValidationError.single(entity, field, value, f"is not a time; give {_ALLOWED}", row) from None
    if parsed.tzinfo is None:
        raise ValidationError.single(
            entity, field, value, f"has no UTC offset (naive times are refused); give {_ALLOWED}", row
        )
    return parsed.astimezone(UTC)


def format_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z``: ``2026-05-25T00:00:00Z`` (microseconds only when present)."""
    if value is None:
        return None
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def ensure_utc_column(frame: pl.DataFrame, column: str, *, entity: str, row_column: str | None = None) -> pl.DataFrame:
    """Return ``frame`` with ``column`` as ``Datetime(us, UTC)``, refusing naive or unparsable values.

    Accepts an aware Datetime column (converted to UTC) or a String column of ISO-8601 times with
    offsets. Every bad row is reported at once.
    """
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            raise ValidationError.single(
                entity, column, str(dtype), f"is a naive datetime column (naive times are refused); give {_ALLOWED}"
            )
        return frame.with_columns(pl.col(column).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    if dtype != pl.String:
        raise ValidationError.single(
            entity, column, str(dtype), f"must hold times, got a {dtype} column; give {_ALLOWED}"
        )
    text = pl.col(column).str.strip_chars()
    parsed = (
        text.str.replace(r"(?i)z$", "+00:00")
        .str.replace(r"([+-]\d{2})$", "${1}:00")
        .str.replace(" ", "T", literal=True)
        .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC", time_unit="us")
    )
    has_offset = text.str.contains(_HAS_OFFSET.pattern)
    checked = frame.with_columns(parsed.alias("__parsed"), has_offset.alias("__has_offset"))
    failed = pl.col("__parsed").is_null() | ~pl.col("__has_offset").fill_null(False)
    if checked.select(failed.any()).item():
        # The vectorized parse covers the usual shapes. Whatever it missed goes through parse_utc,
        # the reference rule, one value at a time: a bulk column accepts and refuses exactly the
        # texts a single time does, with the same messages.
        from msm.errors import RowError

        checked = checked.with_row_index("__i")
        bad = checked.filter(failed)
        rows = bad[row_column].to_list() if row_column else [None] * bad.height
        errors: list[RowError] = []
        recovered: dict[int, datetime] = {}
        for i, raw, row in zip(bad["__i"].to_list(), bad[column].to_list(), rows, strict=True):
            if raw is None:
                errors.append(RowError(entity, row, column, raw, f"is required; give {_ALLOWED}"))
                continue
            try:
                recovered[i] = parse_utc(raw, field=column, entity=entity, row=row)
            except ValidationError as exc:
                errors.extend(exc.errors)
        if errors:
            raise ValidationError(errors)
        fixes = pl.DataFrame(
            {"__i": list(recovered), "__fixed": list(recovered.values())},
            schema={"__i": pl.UInt32, "__fixed": pl.Datetime("us", "UTC")},
        )
        checked = (
            checked.join(fixes, on="__i", how="left", maintain_order="left")
            .with_columns(pl.coalesce("__fixed", "__parsed").alias("__parsed"))
            .drop("__i", "__fixed")
        )
    return checked.with_columns(pl.col("__parsed").alias(column)).drop("__parsed", "__has_offset")
