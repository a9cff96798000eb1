"""Reading import files: CSV, JSON (a list of objects), Parquet and Excel (.xlsx), into polars frames.

Nothing is coerced on the way in: CSV and Excel cells are read as text (the validation that follows names
any cell that is not a number, a UUID or a time), JSON values keep their JSON types, nested
objects (``metadata_json``) stay JSON text. A file with no rows is refused here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from msm.errors import NO_VALUE, RowError, ValidationError

__all__ = [
    "CSV_DELIMITERS",
    "FILE_FORMATS",
    "frame_from_records",
    "percent_to_fraction",
    "read_rows",
    "read_table_file",
]

FILE_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel"}
#: The delimiters a CSV header may use, as messages name them.
CSV_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def read_table_file(path: str | Path, *, entity: str = "import file", sheet: str | None = None) -> pl.DataFrame:
    """Read a CSV / JSON / Parquet / Excel (.xlsx) file (chosen by its extension) into a frame.

    CSV and Excel cells are read as text, so validation sees (and names) each value as the user
    wrote it. A CSV is split on the one delimiter its header row uses (comma, semicolon or tab; a
    header mixing them is refused). Excel: the first sheet, or ``sheet``; blank rows are skipped.
    """
    path = Path(path)
    kind = FILE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValidationError.single(
            entity, "file", path, f"has an unknown extension; use one of {', '.join(sorted(FILE_FORMATS))}"
        )
    if not path.is_file():
        raise ValidationError.single(entity, "file", path, "does not exist")
    if path.stat().st_size <= 1024 and not path.read_bytes().strip():  # nothing, or only blank lines
        raise ValidationError.single(entity, "file", path, "is empty: give a header row and at least one row")
    try:
        if kind == "csv":
            frame = pl.read_csv(
                path, infer_schema=False, separator=_csv_delimiter(path, entity)
            )  # empty cells are null
        elif kind == "parquet":
            frame = pl.read_parquet(path)
        elif kind == "excel":
            frame = _read_excel(path, sheet)
        else:
            frame = _read_json(path, entity)
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError.single(
            entity, "file", path, f"could not be read as {kind.upper()}: {str(exc).splitlines()[0]}"
        ) from None
    if frame.height == 0:
        raise ValidationError([RowError(entity, None, "rows", NO_VALUE, f"{path.name} has no rows")])
    return frame


def _csv_delimiter(path: Path, entity: str) -> str:
    """The delimiter the header row uses; refused when it mixes several."""
    with path.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
    seen = [d for d in CSV_DELIMITERS if d in header]
    if len(seen) > 1:
        names = " and ".join(f"{CSV_DELIMITERS[d]} ({d!r})" for d in seen)
        raise ValidationError.single(
            entity,
            "file",
            path,
            f"has a header row with both {names} in it; use one delimiter (comma, semicolon or tab) throughout",
        )
    return seen[0] if seen else ","


def percent_to_fraction(frame: pl.DataFrame, column: str, *, entity: str = "import file") -> pl.DataFrame:
    """``column`` given in percent (``60`` or ``"60%"``) as a fraction: divided by 100, never renormalized.

    Empty cells stay empty. Every cell that is not a number is refused with its row, and a frame
    without the column is refused (``--percent`` would silently do nothing).

    >>> percent_to_fraction(pl.DataFrame({"weight": ["60", "40%"]}), "weight")["weight"].to_list()
    [0.6, 0.4]
    """
    if column not in frame.columns:
        raise ValidationError.single(
            entity, column, NO_VALUE, "column is missing: percent applies to it (there is nothing to divide by 100)"
        )
    dtype = frame.schema[column]
    if dtype.is_numeric():
        return frame.with_columns(pl.col(column).cast(pl.Float64) / 100)
    text = pl.col(column).cast(pl.String).str.strip_chars()
    number = text.str.strip_suffix("%").str.strip_chars().cast(pl.Float64, strict=False)
    checked = frame.with_row_index("__percent_row", offset=1).with_columns(
        number.alias("__percent"), text.alias("__given")
    )
    bad = checked.filter(pl.col("__given").str.len_chars().fill_null(0).gt(0) & pl.col("__percent").is_null())
    if bad.height:
        raise ValidationError(
            [
                RowError(
                    entity, r["__percent_row"], column, r["__given"], "must be a number in percent (e.g. 12.5 or 12.5%)"
                )
                for r in bad.iter_rows(named=True)
            ]
        )
    return frame.with_columns((checked["__percent"] / 100).alias(column))


def _read_excel(path: Path, sheet: str | None) -> pl.DataFrame:
    frame = pl.read_excel(path, sheet_name=sheet, engine="calamine", infer_schema_length=0, raise_if_empty=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _read_json(path: Path, entity: str) -> pl.DataFrame:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError.single(
            entity, "file", path, f"is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValidationError.single(entity, "file", path, "must hold a JSON list of objects, one per row")
    return frame_from_records(data)


def frame_from_records(records: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame from Python records, one column per key seen (missing keys are null).

    Nested dicts and lists become JSON text. A column whose values do not share one type is kept
    as text (``0.5`` and ``"abc"`` become ``"0.5"`` and ``"abc"``), so no value is nulled or coerced.
    """
    if not records:
        return pl.DataFrame()
    keys = list(dict.fromkeys(key for record in records for key in record))
    series = []
    for key in keys:
        values = [record.get(key) for record in records]
        values = [json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for v in values]
        try:
            series.append(pl.Series(key, values, strict=True))
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            series.append(
                pl.Series(
                    key,
                    [None if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in values],
                    dtype=pl.String,
                )
            )
    return pl.DataFrame(series)


def read_rows(
    source: pl.DataFrame | str | Path | Sequence[Mapping[str, Any]], *, entity: str, sheet: str | None = None
) -> pl.DataFrame:
    """The rows of an import as a frame: a frame as given, a file read by :func:`read_table_file`
    (named ``ENTITY file`` in messages), or records by :func:`frame_from_records`."""
    if isinstance(source, (str, Path)):
        return read_table_file(source, entity=f"{entity} file", sheet=sheet)
    if isinstance(source, pl.DataFrame):
        return source
    return frame_from_records([dict(r) for r in source])
