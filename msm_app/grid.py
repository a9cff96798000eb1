"""The builder's editable grid and target rows, both ways (vectorized, no database).

The grid has one row per target: ``target`` (an option label such as ``BTC — Bitcoin · asset``,
see :func:`msm_app.ui.option_label`), the three exposure columns (one is filled) and ``notes``.
Notes are stored in ``metadata_json``: free text as ``{"notes": text}``; a JSON object (text
starting with ``{``) as given, so metadata loaded from a snapshot is kept whole.

>>> options = pl.DataFrame({"label": ["BTC · asset", "EW · portfolio"], "kind": ["asset", "portfolio"],
...                         "unique_identifier": ["BTC", "EW"]})
>>> grid = pl.DataFrame({"target": ["BTC · asset", "EW · portfolio"], "weight_notional_exposure": [0.6, 0.4],
...                      "constant_notional_exposure": [None, None], "single_asset_quantity": [None, None],
...                      "notes": [None, "core sleeve"]})
>>> rows_from_grid(grid, options).select("asset", "portfolio", "metadata_json").rows()
[('BTC', None, None), (None, 'EW', '{"notes":"core sleeve"}')]
"""

from __future__ import annotations

import polars as pl

from msm.contract import EXPOSURE_COLUMNS

__all__ = [
    "GRID_COLUMNS",
    "ROW_COLUMNS",
    "empty_grid",
    "grid_from_rows",
    "problems_table",
    "rows_from_grid",
    "without_blank_rows",
]

GRID_COLUMNS = ("target", *EXPOSURE_COLUMNS, "notes")
#: The target-row columns the grid becomes (the CLI's import file columns).
ROW_COLUMNS = ("asset", "portfolio", *EXPOSURE_COLUMNS, "metadata_json")
_SCHEMA = {"target": pl.String, **{c: pl.Float64 for c in EXPOSURE_COLUMNS}, "notes": pl.String}


def empty_grid(rows: int = 0) -> pl.DataFrame:
    """A grid with ``rows`` blank rows."""
    return pl.DataFrame({c: [None] * rows for c in GRID_COLUMNS}, schema=_SCHEMA)


def without_blank_rows(grid: pl.DataFrame) -> pl.DataFrame:
    """The grid without its blank rows: a row with nothing typed in it (a starter row) is not a target yet.

    >>> without_blank_rows(empty_grid(2)).height
    0
    """
    if grid.height == 0:
        return grid
    blank = [
        pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") if dtype == pl.String else pl.col(c).is_null()
        for c, dtype in grid.schema.items()
    ]
    return grid.filter(~pl.all_horizontal(blank))


def problems_table(grid: pl.DataFrame, by_row: dict[int | None, list[str]]) -> pl.DataFrame:
    """One row per grid row that breaks a rule: ``row`` (1-based), ``target`` and ``check`` (its problems).

    ``by_row`` is :meth:`msm.TargetSetCheck.messages_by_row` (key ``None``, the set as a whole, is left out).

    >>> grid = pl.DataFrame({"target": ["BTC · asset", "EW · portfolio"]})
    >>> problems_table(grid, {2: ["a", "b"], None: ["empty"]}).rows()
    [(2, 'EW · portfolio', 'a; b')]
    """
    numbered = {row: "; ".join(found) for row, found in by_row.items() if row is not None}
    problems = pl.DataFrame(
        {"row": list(numbered), "check": list(numbered.values())}, schema={"row": pl.Int64, "check": pl.String}
    )
    targets = grid.select(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"), pl.col("target").cast(pl.String))
    return targets.join(problems, on="row", how="inner").sort("row").select("row", "target", "check")


def rows_from_grid(grid: pl.DataFrame, options: pl.DataFrame) -> pl.DataFrame:
    """Target rows (:data:`ROW_COLUMNS`) from grid rows, in the grid's order.

    A ``target`` that is not an option (typed in, or from an old session) keeps its text in the
    ``asset`` column, so validation names it as an unknown asset rather than losing the row.
    """
    grid = grid.with_columns(
        pl.col(c).cast(t, strict=False) if c != "target" else pl.col(c).cast(pl.String)
        for c, t in _SCHEMA.items()
        if c in grid.columns
    )
    for column, dtype in _SCHEMA.items():
        if column not in grid.columns:
            grid = grid.with_columns(pl.lit(None, dtype).alias(column))
    joined = (
        grid.with_row_index("__order")
        .join(options.select(pl.col("label").alias("target"), "kind", "unique_identifier"), on="target", how="left")
        .sort("__order")
    )
    notes = pl.col("notes").str.strip_chars()
    notes = pl.when(notes.str.len_chars() > 0).then(notes)
    metadata = (
        pl.when(notes.is_null())
        .then(None)
        .when(notes.str.starts_with("{"))
        .then(notes)
        .otherwise(pl.struct(notes.alias("notes")).struct.json_encode())
    )
    unknown = pl.col("kind").is_null() & pl.col("target").is_not_null()
    return joined.select(
        pl.when(pl.col("kind") == "asset")
        .then(pl.col("unique_identifier"))
        .when(unknown)
        .then(pl.col("target"))
        .alias("asset"),
        pl.when(pl.col("kind") == "portfolio").then(pl.col("unique_identifier")).alias("portfolio"),
        *[pl.col(c) for c in EXPOSURE_COLUMNS],
        metadata.alias("metadata_json"),
    )


def grid_from_rows(rows: pl.DataFrame, options: pl.DataFrame) -> pl.DataFrame:
    """Grid rows from target rows that name targets by identifier.

    ``rows`` has ``target_type`` and ``unique_identifier`` (a snapshot's positions), or ``asset`` /
    ``portfolio`` columns (an import file); exposures and ``metadata_json`` as stored.
    """
    if "target_type" in rows.columns:
        keyed = rows.select(pl.col("target_type").alias("kind"), pl.col("unique_identifier").cast(pl.String))
    else:
        asset = (
            rows["asset"].cast(pl.String)
            if "asset" in rows.columns
            else pl.Series([None] * rows.height, dtype=pl.String)
        )
        portfolio = (
            rows["portfolio"].cast(pl.String)
            if "portfolio" in rows.columns
            else pl.Series([None] * rows.height, dtype=pl.String)
        )
        keyed = pl.DataFrame({"asset": asset, "portfolio": portfolio}).select(
            pl.when(pl.col("portfolio").is_not_null())
            .then(pl.lit("portfolio"))
            .otherwise(pl.lit("asset"))
            .alias("kind"),
            pl.coalesce("portfolio", "asset").alias("unique_identifier"),
        )
    metadata = (
        rows["metadata_json"].cast(pl.String)
        if "metadata_json" in rows.columns
        else pl.Series([None] * rows.height, dtype=pl.String)
    )
    only_notes = pl.col("metadata_json").str.json_path_match("$.notes")
    notes = (
        pl.when(
            pl.struct(only_notes.alias("notes")).struct.json_encode()
            == pl.col("metadata_json").str.replace_all(r'":\s+', '":')
        )
        .then(only_notes)
        .otherwise(pl.col("metadata_json"))
    )
    exposures = [
        (
            rows[c].cast(pl.Float64, strict=False)
            if c in rows.columns
            else pl.Series(c, [None] * rows.height, dtype=pl.Float64)
        ).alias(c)
        for c in EXPOSURE_COLUMNS
    ]
    frame = keyed.with_columns(*exposures, metadata.alias("metadata_json")).with_row_index("__order")
    frame = frame.join(
        options.select("label", "kind", "unique_identifier"), on=["kind", "unique_identifier"], how="left"
    ).sort("__order")
    return frame.select(
        pl.coalesce("label", pl.col("unique_identifier") + pl.lit(" · ") + pl.col("kind")).alias("target"),
        *EXPOSURE_COLUMNS,
        notes.alias("notes"),
    )
