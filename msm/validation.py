"""The one vectorized validation of target rows (ADR 0027), before the database is touched.

The same rules are written once more, on purpose, as DuckDB constraints in
``msm/store/sql/msm_0002_adr_0027_portfolio_aware_targets.sql`` so that no path can store a bad
row. Here they run over a whole polars frame at once (any number of rows and snapshots) and
report *every* bad row with its 1-based row number, field, value and rule.

A target row names exactly one target: an asset (``asset_uid``, or the ``asset`` unique
identifier in import files and the UI) or a portfolio (``portfolio_uid`` / ``portfolio``).
``target_type`` and ``target_uid`` are derived; declared ones must match. Exactly one of the
three exposures is given and it is finite; a portfolio row never uses ``single_asset_quantity``;
``metadata_json`` is a JSON object or empty; a target appears once per snapshot.

>>> import polars as pl
>>> assets = pl.DataFrame({"uid": ["0b8e8a4c-6f43-4c43-9a52-3a3f8e1f0001"], "unique_identifier": ["BTC"]})
>>> frame = target_rows_frame([{"asset": "BTC", "weight_notional_exposure": 0.6}])
>>> validate_target_rows(frame, assets=assets, portfolios=empty_reference()).select("target_type", "target_uid", "weight_notional_exposure")
shape: (1, 3)
┌─────────────┬─────────────────────────────────┬──────────────────────────┐
│ target_type ┆ target_uid                      ┆ weight_notional_exposure │
│ ---         ┆ ---                             ┆ ---                      │
│ str         ┆ str                             ┆ f64                      │
╞═════════════╪═════════════════════════════════╪══════════════════════════╡
│ asset       ┆ 0b8e8a4c-6f43-4c43-9a52-3a3f8e… ┆ 0.6                      │
└─────────────┴─────────────────────────────────┴──────────────────────────┘
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from msm.contract import EXPOSURE_COLUMNS
from msm.errors import NO_VALUE, RowError, ValidationError
from msm.io import frame_from_records
from msm.rules import ROW, Rule, enforce, find_violations

if TYPE_CHECKING:  # pydantic is imported only by the code that builds records
    from msm.models import TargetPositionIn

__all__ = [
    "ROW",
    "SET_KEY",
    "STORAGE_COLUMNS",
    "TARGET_INPUT_COLUMNS",
    "RowChecks",
    "check_columns",
    "empty_reference",
    "normalize_metadata",
    "target_rows_frame",
    "validate_target_rows",
]

#: Column naming the snapshot a row belongs to (duplicates are looked for within it).
SET_KEY = "__set"

UUID_COLUMNS = ("asset_uid", "portfolio_uid", "target_uid")
TARGET_INPUT_COLUMNS = (
    "asset_uid",
    "portfolio_uid",
    "asset",
    "portfolio",
    "target_type",
    "target_uid",
    *EXPOSURE_COLUMNS,
    "metadata_json",
)
STORAGE_COLUMNS = (
    "time_index",
    "position_set_uid",
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    *EXPOSURE_COLUMNS,
    "metadata_json",
)
_UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID_HINT = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000"
_ASSET_IDENTIFIER = "target rows use `asset_uid` (or the `asset` column in an import file), not `asset_identifier`"


def empty_reference() -> pl.DataFrame:
    """An empty ``(uid, unique_identifier)`` reference frame."""
    return pl.DataFrame(schema={"uid": pl.String, "unique_identifier": pl.String})


def target_rows_frame(rows: pl.DataFrame | Iterable[Mapping[str, Any] | TargetPositionIn]) -> pl.DataFrame:
    """Turn rows (a frame, dicts or :class:`TargetPositionIn`) into a frame of target input columns.

    Values are kept as given (text stays text) so that :func:`validate_target_rows` can name a bad
    value exactly; ``metadata_json`` dicts become JSON text. A ``asset_identifier`` key is refused.
    """
    if isinstance(rows, pl.DataFrame):
        return rows
    records: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        record = dict(row) if isinstance(row, Mapping) else row.to_row()  # a TargetPositionIn
        if "asset_identifier" in record:
            raise ValidationError(
                [RowError("target set", i, "asset_identifier", record["asset_identifier"], _ASSET_IDENTIFIER)]
            )
        records.append({k: (str(v) if k in UUID_COLUMNS and v is not None else v) for k, v in record.items()})
    return frame_from_records(records)


def check_columns(frame: pl.DataFrame, *, entity: str = "target set", extra: Sequence[str] = ()) -> None:
    """Refuse unknown columns, ``asset_identifier``, and a frame with no target or exposure column."""
    allowed = set(TARGET_INPUT_COLUMNS) | set(extra)
    errors: list[RowError] = []
    for column in frame.columns:
        if column == "asset_identifier":
            errors.append(RowError(entity, None, column, NO_VALUE, _ASSET_IDENTIFIER))
        elif column not in allowed and not column.startswith("__"):  # __columns are the services' own
            errors.append(
                RowError(
                    entity, None, column, NO_VALUE, f"is not a known column; allowed: {', '.join(sorted(allowed))}"
                )
            )
    if not {"asset_uid", "portfolio_uid", "asset", "portfolio"} & set(frame.columns):
        errors.append(
            RowError(
                entity,
                None,
                "asset_uid",
                NO_VALUE,
                "column is missing: give `asset_uid` or `portfolio_uid` (or `asset` / `portfolio` unique identifiers)",
            )
        )
    if not set(EXPOSURE_COLUMNS) & set(frame.columns):
        errors.append(
            RowError(
                entity,
                None,
                "weight_notional_exposure",
                NO_VALUE,
                f"column is missing: give one of {', '.join(EXPOSURE_COLUMNS)}",
            )
        )
    if errors:
        raise ValidationError(errors)


def _text(column: str) -> pl.Expr:
    """A column as stripped text, empty text as null (CSV cells)."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text)


def validate_target_rows(
    frame: pl.DataFrame,
    *,
    assets: pl.DataFrame,
    portfolios: pl.DataFrame,
    entity: str = "target set",
    passthrough: Sequence[str] = (),
    snapshot_key: Sequence[str] = (SET_KEY,),
) -> pl.DataFrame:
    """Validate target rows; return them in storage shape, or raise one :class:`ValidationError`.

    ``frame`` holds target input columns, and optionally ``__row`` (1-based row numbers; default
    1..n) and ``__set`` (the snapshot each row belongs to; default: one snapshot). A caller whose
    rows already carry the snapshot's key columns names them in ``snapshot_key`` instead.
    ``assets`` / ``portfolios`` are ``(uid, unique_identifier)`` frames of the existing entities
    the rows may name (more is fine). The result has ``__row``, ``__set``, ``target_type``,
    ``target_uid``, ``asset_uid``, ``portfolio_uid``, the three exposures (Float64),
    ``metadata_json`` (JSON text or null) and ``unique_identifier``, plus the ``passthrough``
    columns (which the caller has checked) and any ``__`` columns of ``frame``.
    """
    check_columns(frame, entity=entity, extra=passthrough)
    carried = [c for c in frame.columns if (c.startswith("__") and c not in (ROW, SET_KEY)) or c in passthrough]
    if frame.height == 0:
        raise ValidationError(
            [RowError(entity, None, "rows", NO_VALUE, "the target set is empty; give at least one target row")]
        )
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    snapshot_key = list(snapshot_key)
    if snapshot_key == [SET_KEY] and SET_KEY not in frame.columns:
        frame = frame.with_columns(pl.lit("").alias(SET_KEY))
    missing = [c for c in TARGET_INPUT_COLUMNS if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)

    checks = RowChecks(entity)
    bad = checks.bad

    # -- exposures: numbers, exactly one, finite -----------------------------------------------
    exposure_errors: list[RowError] = []
    for column in EXPOSURE_COLUMNS:
        dtype = frame.schema[column]
        if dtype == pl.String:
            frame = frame.with_columns(_text(column).alias(column))
            bad(
                pl.col(f"__raw_{column}").is_not_null() & pl.col(column).is_null(),
                column,
                "must be a number",
                value=pl.col(f"__raw_{column}"),
            )
            frame = frame.with_columns(
                pl.col(column).alias(f"__raw_{column}"), pl.col(column).cast(pl.Float64, strict=False)
            )
        elif dtype.is_numeric():
            frame = frame.with_columns(
                pl.col(column).cast(pl.Float64).alias(f"__raw_{column}"), pl.col(column).cast(pl.Float64)
            )
        elif dtype == pl.Null:
            frame = frame.with_columns(
                pl.col(column).cast(pl.Float64), pl.lit(None, pl.String).alias(f"__raw_{column}")
            )
        else:
            exposure_errors.append(RowError(entity, None, column, NO_VALUE, f"must hold numbers, got a {dtype} column"))
            frame = frame.with_columns(
                pl.lit(None, pl.Float64).alias(column), pl.lit(None, pl.String).alias(f"__raw_{column}")
            )
    if exposure_errors:
        raise ValidationError(exposure_errors)
    given = pl.sum_horizontal(pl.col(f"__raw_{c}").is_not_null().cast(pl.Int32) for c in EXPOSURE_COLUMNS)
    listing = pl.concat_str(
        [
            pl.when(pl.col(f"__raw_{c}").is_not_null()).then(pl.lit(f"{c}=") + pl.col(f"__raw_{c}").cast(pl.String))
            for c in EXPOSURE_COLUMNS
        ],
        separator=", ",
        ignore_nulls=True,
    )
    bad(
        given != 1,
        "exposure",
        pl.when(given == 0)
        .then(pl.lit(f"exactly one of {', '.join(EXPOSURE_COLUMNS)} must be set, none was"))
        .otherwise(
            pl.lit(f"exactly one of {', '.join(EXPOSURE_COLUMNS)} must be set, got ")
            + given.cast(pl.String)
            + pl.lit(": ")
            + listing
        ),
        value=pl.lit(None, pl.String),
    )
    for column in EXPOSURE_COLUMNS:
        value = pl.col(column)
        bad(
            value.is_nan() | value.is_infinite(),
            column,
            "must be finite (NaN and infinity are refused)",
            value=pl.col(f"__raw_{column}"),
        )

    # -- UUIDs are well formed ------------------------------------------------------------------
    for column in UUID_COLUMNS:
        # keep the text as given for the message; compare in lower case
        given = pl.col(column).cast(pl.String)
        if frame.select((given.str.contains(_UUID_RE) | given.is_null()).all()).item():
            # already canonical (the common case for machine-made frames): no text clean-up needed
            frame = frame.with_columns(
                given.alias(f"__given_{column}"),
                given.alias(column),
                given.is_not_null().alias(f"__wellformed_{column}"),
            )
        else:
            lowered = _text(column).str.to_lowercase()
            frame = frame.with_columns(
                _text(column).alias(f"__given_{column}"),
                lowered.alias(column),
                lowered.str.contains(_UUID_RE).alias(f"__wellformed_{column}"),
            )
        bad(
            pl.col(column).is_not_null() & ~pl.col(f"__wellformed_{column}"),
            column,
            _UUID_HINT,
            value=pl.col(f"__given_{column}"),
        )
    for column in ("asset", "portfolio"):
        frame = frame.with_columns(_text(column).alias(column))

    # -- resolve unique identifiers, check that named targets exist ----------------------------
    for kind, ref in (("asset", assets), ("portfolio", portfolios)):
        ref = ref.select(pl.col("uid").cast(pl.String).str.to_lowercase(), pl.col("unique_identifier").cast(pl.String))
        # Left joins that keep the frame's order; a column that is entirely empty needs no join.
        for key, names in (
            (kind, {"uid": f"__{kind}_resolved", "unique_identifier": kind}),
            (f"{kind}_uid", {"uid": f"{kind}_uid", "unique_identifier": f"__{kind}_identifier"}),
        ):
            added = next(n for n in names.values() if n != key)
            if frame[key].null_count() == frame.height:
                frame = frame.with_columns(pl.lit(None, pl.String).alias(added))
            else:
                frame = frame.join(ref.rename(names), on=key, how="left", maintain_order="left")
        ident, uid, resolved = pl.col(kind), pl.col(f"{kind}_uid"), pl.col(f"__{kind}_resolved")
        well_formed = pl.col(f"__wellformed_{kind}_uid")
        bad(
            ident.is_not_null() & resolved.is_null(),
            kind,
            f"no {kind} has this unique_identifier; add it first (msm {kind}s add ID)",
        )
        bad(well_formed & pl.col(f"__{kind}_identifier").is_null(), f"{kind}_uid", f"no {kind} has this uid")
        bad(
            ident.is_not_null() & resolved.is_not_null() & uid.is_not_null() & (uid != resolved),
            f"{kind}_uid",
            pl.lit(f"names a different {kind} than `{kind}` = '")
            + ident
            + pl.lit("' (")
            + resolved
            + pl.lit("); give one or make them agree"),
        )
        frame = frame.with_columns(
            pl.coalesce(uid, resolved).alias(f"__{kind}_target"),
            pl.coalesce(pl.col(f"__{kind}_identifier"), ident).alias(f"__{kind}_name"),
        )

    has_asset, has_portfolio = pl.col("__asset_target").is_not_null(), pl.col("__portfolio_target").is_not_null()
    named_asset = pl.col("asset_uid").is_not_null() | pl.col("asset").is_not_null()
    named_portfolio = pl.col("portfolio_uid").is_not_null() | pl.col("portfolio").is_not_null()
    bad(
        has_asset & has_portfolio,
        "asset_uid",
        pl.lit("exactly one of `asset_uid` / `portfolio_uid` must be set, got both (portfolio_uid=")
        + pl.col("__portfolio_target")
        + pl.lit(")"),
        value=pl.col("__asset_target"),
    )
    bad(
        ~named_asset & ~named_portfolio,
        "asset_uid",
        "exactly one of `asset_uid` / `portfolio_uid` must be set (or `asset` / `portfolio` in an import file), got neither",
        value=pl.lit(None, pl.String),
    )
    derived_type = (
        pl.when(has_asset & ~has_portfolio)
        .then(pl.lit("asset"))
        .when(has_portfolio & ~has_asset)
        .then(pl.lit("portfolio"))
    )
    derived_uid = (
        pl.when(derived_type == "asset")
        .then(pl.col("__asset_target"))
        .when(derived_type == "portfolio")
        .then(pl.col("__portfolio_target"))
    )
    frame = frame.with_columns(
        _text("target_type").alias("target_type"), derived_type.alias("__type"), derived_uid.alias("__uid")
    )
    declared = pl.col("target_type")
    bad(
        declared.is_not_null() & ~declared.is_in(["asset", "portfolio"]),
        "target_type",
        "must be 'asset' or 'portfolio'",
    )
    bad(
        declared.is_in(["asset", "portfolio"]) & pl.col("__type").is_not_null() & (declared != pl.col("__type")),
        "target_type",
        pl.lit("does not match the target given (") + pl.col("__type") + pl.lit(")"),
    )
    bad(
        pl.col("__wellformed_target_uid") & pl.col("__uid").is_not_null() & (pl.col("target_uid") != pl.col("__uid")),
        "target_uid",
        pl.lit("must equal ") + pl.col("__type") + pl.lit("_uid ") + pl.col("__uid"),
    )
    bad(
        (pl.col("__type") == "portfolio") & pl.col("single_asset_quantity").is_not_null(),
        "single_asset_quantity",
        "a portfolio target cannot use single_asset_quantity; use weight_notional_exposure or constant_notional_exposure",
        value=pl.col("__raw_single_asset_quantity"),
    )

    # -- metadata_json is a JSON object or empty ------------------------------------------------
    frame = normalize_metadata(frame, bad)

    # -- a target appears once per snapshot ----------------------------------------------------
    name = pl.coalesce(
        pl.when(pl.col("__type") == "asset").then(pl.col("__asset_name")).otherwise(pl.col("__portfolio_name")),
        pl.col("__uid"),
    )
    first = pl.col(ROW).min().over(*snapshot_key, "__type", "__uid")
    bad(
        pl.col("__uid").is_not_null() & (pl.col(ROW) > first),
        "target_uid",
        pl.lit("duplicate target '")
        + name
        + pl.lit("' (")
        + pl.col("__type")
        + pl.lit(") in one snapshot; first given at row ")
        + first.cast(pl.String),
        value=pl.col("__uid"),
    )

    checks.raise_found(frame)
    return frame.select(
        ROW,
        *[c for c in [SET_KEY] if c in frame.columns],
        *carried,
        pl.col("__type").alias("target_type"),
        pl.col("__uid").alias("target_uid"),
        pl.when(pl.col("__type") == "asset").then(pl.col("__uid")).alias("asset_uid"),
        pl.when(pl.col("__type") == "portfolio").then(pl.col("__uid")).alias("portfolio_uid"),
        *[pl.col(c) for c in EXPOSURE_COLUMNS],
        pl.col("metadata_json"),
        pl.coalesce(pl.col("__asset_name"), pl.col("__portfolio_name")).alias("unique_identifier"),
    )


#: DuckDB's json_type() names, in JSON's own words.
_JSON_KINDS = {
    "ARRAY": "array",
    "VARCHAR": "string",
    "BIGINT": "number",
    "UBIGINT": "number",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "NULL": "null",
}


def normalize_metadata(frame: pl.DataFrame, bad: Any) -> pl.DataFrame:
    """``metadata_json`` as JSON object text (or null); declares the rules on ``bad`` (:meth:`RowChecks.bad`)."""
    dtype = frame.schema["metadata_json"]
    if isinstance(dtype, pl.Struct):
        frame = frame.with_columns(pl.col("metadata_json").struct.json_encode())
    elif dtype == pl.Null:
        return frame.with_columns(pl.col("metadata_json").cast(pl.String))
    elif dtype != pl.String:
        frame = frame.with_columns(pl.col("metadata_json").cast(pl.String, strict=False))
    frame = frame.with_columns(_text("metadata_json").alias("metadata_json"))
    # JSON parsing, vectorized, by DuckDB's JSON functions over the Arrow column (no file touched).
    scratch = duckdb.connect(":memory:")
    scratch.register("meta", frame.select("metadata_json").to_arrow())
    kinds = scratch.sql(
        "SELECT CASE WHEN metadata_json IS NULL THEN NULL WHEN json_valid(metadata_json) THEN json_type(metadata_json) ELSE 'INVALID' END AS k FROM meta"
    ).to_arrow_table()
    frame = frame.with_columns(pl.Series("__meta_kind", pl.from_arrow(kinds).to_series(), dtype=pl.String))
    kind = pl.col("__meta_kind")
    bad(
        kind == "INVALID",
        "metadata_json",
        'is not valid JSON; give a JSON object such as {"portfolio_role": "satellite_sleeve"}',
    )
    bad(
        kind.is_not_null() & (kind != "INVALID") & (kind != "OBJECT"),
        "metadata_json",
        pl.lit("must be a JSON object (or empty), got a JSON ") + kind.replace_strict(_JSON_KINDS, default="value"),
    )
    return frame


class RowChecks:
    """Row rules collected one by one, then run by the engine (:func:`msm.rules.enforce`).

    ``bad(mask, field, rule, value=None, name=None)`` declares a :class:`~msm.rules.Rule`: rows
    where ``mask`` is true are bad in ``field``; ``value`` (default: the field's column) is what the
    message shows; ``rule`` is the message, text or a per-row expression; ``name`` the rule's name
    (default: the field). ``raise_found(frame)`` evaluates every rule over the whole frame at once
    and raises with each bad row's number (from the ``row`` column), or returns when all pass.
    """

    def __init__(self, entity: str, *, row: str = ROW) -> None:
        self.entity, self.row = entity, row
        self.rules: list[Rule] = []

    def bad(
        self, mask: pl.Expr, field: str, rule: str | pl.Expr, value: pl.Expr | None = None, *, name: str | None = None
    ) -> None:
        """Declare one rule (see the class)."""
        self.rules.append(Rule(self.entity, field, name or field, rule, mask, value))

    def add(self, rules: Iterable[Rule]) -> None:
        """Declare rules written as data (their entity becomes this collector's)."""
        self.rules.extend(replace(r, entity=self.entity) for r in rules)

    def violations(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Every violation of the declared rules, as data (:func:`msm.rules.find_violations`)."""
        return find_violations(frame, self.rules, row=self.row)

    def raise_found(self, frame: pl.DataFrame, *, summary: str | None = None) -> None:
        """Raise one :class:`ValidationError` with every violation, or return when all pass."""
        enforce(frame, self.rules, row=self.row, summary=summary)
