"""The one vectorized validation of target rows (ADR 0027), before the database is touched.

The same rules are written once more, on purpose, as DuckDB constraints in
``msm/store/sql/msm_0002_adr_0027_portfolio_aware_targets.sql`` so that no path can store a bad
row. Here they are declared as data (:func:`target_rules`, :class:`msm.rules.Rule` each) and run by
the one rule engine (:mod:`msm.rules`) over a whole polars frame at once (any number of rows and
snapshots), which reports *every* bad row with its 1-based row number, field, value and rule.

A target row names exactly one target: an asset (``asset_uid``, or the ``asset`` unique
identifier in import files and the UI) or a portfolio (``portfolio_uid`` / ``portfolio``).
``target_type`` and ``target_uid`` are derived; declared ones must match. Exactly one of the
three exposures is given and it is finite; a portfolio row never uses ``single_asset_quantity``;
``metadata_json`` is a JSON object or empty; a target appears once per snapshot.

>>> import polars as pl
>>> assets = pl.DataFrame({"uid": ["0b8e8a4c-6f43-4c43-9a52-3a3f8e1f0001"], "unique_identifier": ["BTC"]})
>>> frame = target_rows_frame([{"asset": "BTC", "weight_notional_exposure": 0.6}])
>>> valid = validate_target_rows(frame, assets=assets, portfolios=empty_reference())
>>> valid.select("target_type", "target_uid", "weight_notional_exposure")
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

from msm import rules
from msm.contract import EXPOSURE_COLUMNS, STORAGE_COLUMNS, TARGET_TYPES
from msm.errors import NO_VALUE, RowError, ValidationError
from msm.io import frame_from_records
from msm.rules import ROW, Rule, clean_text, empty_target_set, enforce, find_violations, is_uuid

if TYPE_CHECKING:  # pydantic is imported only by the code that builds records
    from msm.models import TargetPositionIn

__all__ = [
    "NO_EXPOSURE_COLUMN",
    "ONE_EXPOSURE",
    "PORTFOLIO_QUANTITY",
    "ROW",
    "SET_KEY",
    "STORAGE_COLUMNS",
    "TARGET_INPUT_COLUMNS",
    "RowChecks",
    "check_columns",
    "empty_reference",
    "metadata_rules",
    "normalize_metadata",
    "portfolio_quantity_rule",
    "target_rows_frame",
    "target_rules",
    "target_type_rule",
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
#: What a frame of target rows without any exposure column is told.
NO_EXPOSURE_COLUMN = f"column is missing: give one of {', '.join(EXPOSURE_COLUMNS)}"
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
                NO_EXPOSURE_COLUMN,
            )
        )
    if errors:
        raise ValidationError(errors)


def _exposure_count_message() -> pl.Expr:
    given = _given_exposures()
    listing = pl.concat_str(
        [
            pl.when(pl.col(f"__raw_{c}").is_not_null()).then(pl.lit(f"{c}=") + pl.col(f"__raw_{c}").cast(pl.String))
            for c in EXPOSURE_COLUMNS
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        pl.when(given == 0)
        .then(pl.lit(f"{ONE_EXPOSURE}, none was"))
        .otherwise(pl.lit(f"{ONE_EXPOSURE}, got ") + given.cast(pl.String) + pl.lit(": ") + listing)
    )


def _given_exposures() -> pl.Expr:
    return pl.sum_horizontal(pl.col(f"__raw_{c}").is_not_null().cast(pl.Int32) for c in EXPOSURE_COLUMNS)


#: What a target row needs: exactly one of the three exposures.
ONE_EXPOSURE = f"exactly one of {', '.join(EXPOSURE_COLUMNS)} must be set"
#: What a portfolio row with a quantity is told.
PORTFOLIO_QUANTITY = (
    "a portfolio target cannot use single_asset_quantity; use weight_notional_exposure or constant_notional_exposure"
)


def portfolio_quantity_rule(entity: str, target_type: pl.Expr, value: pl.Expr | None = None) -> Rule:
    """A portfolio row (``target_type`` is 'portfolio') never uses ``single_asset_quantity``."""
    return Rule(
        entity,
        "single_asset_quantity",
        "portfolio_without_quantity",
        PORTFOLIO_QUANTITY,
        (target_type == "portfolio") & pl.col("single_asset_quantity").is_not_null(),
        value,
    )


def target_type_rule(entity: str, *, required: bool) -> Rule:
    """``target_type`` is 'asset' or 'portfolio' (or, unless ``required``, not given)."""
    allowed = pl.col("target_type").is_in(TARGET_TYPES)
    bad = ~allowed.fill_null(False) if required else pl.col("target_type").is_not_null() & ~allowed
    return Rule(entity, "target_type", "target_type_allowed", "must be 'asset' or 'portfolio'", bad)


def _exposure_rules(entity: str) -> list[Rule]:
    """Each exposure parses as a number and is finite; exactly one is given."""
    return [
        *(rules.number(entity, c, pl.col(f"__raw_{c}")) for c in EXPOSURE_COLUMNS),
        Rule(entity, "exposure", "one_exposure", _exposure_count_message(), _given_exposures() != 1, pl.lit(None)),
        *(rules.finite(entity, c, pl.col(f"__raw_{c}")) for c in EXPOSURE_COLUMNS),
    ]


def _reference_rules(entity: str, kind: str) -> list[Rule]:
    """The uid and the unique identifier of a ``kind`` (asset, portfolio) name one that exists, the same one."""
    resolved = pl.col(f"__{kind}_resolved")
    well_formed = pl.col(f"__wellformed_{kind}_uid")
    return [
        rules.known_identifier(entity, kind, kind, resolved=resolved),
        rules.known_uid(entity, kind, f"{kind}_uid", well_formed=well_formed, found=pl.col(f"__{kind}_identifier")),
        rules.names_agree(entity, kind, uid=f"{kind}_uid", identifier=kind, resolved=resolved),
    ]


def _target_rules(entity: str) -> list[Rule]:
    """Exactly one target; a declared ``target_type`` / ``target_uid`` agrees with it."""
    has_asset, has_portfolio = pl.col("__asset_target").is_not_null(), pl.col("__portfolio_target").is_not_null()
    named_asset = pl.col("asset_uid").is_not_null() | pl.col("asset").is_not_null()
    named_portfolio = pl.col("portfolio_uid").is_not_null() | pl.col("portfolio").is_not_null()
    declared, derived = pl.col("target_type"), pl.col("__type")
    return [
        Rule(
            entity,
            "asset_uid",
            "one_target",
            pl.lit("exactly one of `asset_uid` / `portfolio_uid` must be set, got both (portfolio_uid=")
            + pl.col("__portfolio_target")
            + pl.lit(")"),
            has_asset & has_portfolio,
            pl.col("__asset_target"),
        ),
        Rule(
            entity,
            "asset_uid",
            "one_target",
            "exactly one of `asset_uid` / `portfolio_uid` must be set "
            "(or `asset` / `portfolio` in an import file), got neither",
            ~named_asset & ~named_portfolio,
            pl.lit(None, pl.String),
        ),
        target_type_rule(entity, required=False),
        Rule(
            entity,
            "target_type",
            "target_type_matches",
            pl.lit("does not match the target given (") + derived + pl.lit(")"),
            declared.is_in(TARGET_TYPES) & derived.is_not_null() & (declared != derived),
        ),
        Rule(
            entity,
            "target_uid",
            "target_uid_matches",
            pl.lit("must equal ") + derived + pl.lit("_uid ") + pl.col("__uid"),
            pl.col("__wellformed_target_uid")
            & pl.col("__uid").is_not_null()
            & (pl.col("target_uid") != pl.col("__uid")),
        ),
        portfolio_quantity_rule(entity, derived, pl.col("__raw_single_asset_quantity")),
    ]


def _duplicate_rule(entity: str, snapshot_key: Sequence[str]) -> Rule:
    """A target appears once per snapshot."""
    name = pl.coalesce(
        pl.when(pl.col("__type") == "asset").then(pl.col("__asset_name")).otherwise(pl.col("__portfolio_name")),
        pl.col("__uid"),
    )
    return rules.unique_within(
        entity,
        "target_uid",
        key=[*snapshot_key, "__type", "__uid"],
        label=pl.lit("target '") + name + pl.lit("' (") + pl.col("__type") + pl.lit(")"),
        scope="snapshot",
        value=pl.col("__uid"),
    )


def target_rules(entity: str = "target set", *, snapshot_key: Sequence[str] = (SET_KEY,)) -> list[Rule]:
    """Every row rule of target rows, as data, over the columns :func:`validate_target_rows` prepares."""
    return [
        *_exposure_rules(entity),
        *(
            rules.well_formed_uuid(entity, c, well_formed=pl.col(f"__wellformed_{c}"), value=pl.col(f"__given_{c}"))
            for c in UUID_COLUMNS
        ),
        *_reference_rules(entity, "asset"),
        *_reference_rules(entity, "portfolio"),
        *_target_rules(entity),
        *metadata_rules(entity),
        _duplicate_rule(entity, snapshot_key),
    ]


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

    The rules are :func:`target_rules`; this prepares the columns they read and runs them once.
    """
    check_columns(frame, entity=entity, extra=passthrough)
    carried = [c for c in frame.columns if (c.startswith("__") and c not in (ROW, SET_KEY)) or c in passthrough]
    if frame.height == 0:
        raise empty_target_set(entity)
    if ROW not in frame.columns:
        frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    snapshot_key = list(snapshot_key)
    if snapshot_key == [SET_KEY] and SET_KEY not in frame.columns:
        frame = frame.with_columns(pl.lit("").alias(SET_KEY))
    missing = [c for c in TARGET_INPUT_COLUMNS if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)

    frame = _prepare_exposures(frame, entity)
    frame = _prepare_uuids(frame)
    frame = frame.with_columns(clean_text("asset").alias("asset"), clean_text("portfolio").alias("portfolio"))
    for kind, ref in (("asset", assets), ("portfolio", portfolios)):
        frame = _resolve(frame, kind, ref)
    frame = _derive_target(frame)
    frame = normalize_metadata(frame)
    enforce(frame, target_rules(entity, snapshot_key=snapshot_key))
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


def _prepare_exposures(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Each exposure as Float64, and ``__raw_{exposure}`` as given (text stripped) for the messages.

    A column of another kind (dates, lists) is refused as a whole before any row rule runs.
    """
    errors: list[RowError] = []
    for column in EXPOSURE_COLUMNS:
        dtype, raw = frame.schema[column], f"__raw_{column}"
        if dtype == pl.String:
            text = clean_text(column)
            frame = frame.with_columns(text.alias(raw), text.cast(pl.Float64, strict=False).alias(column))
        elif dtype.is_numeric():
            frame = frame.with_columns(pl.col(column).cast(pl.Float64).alias(raw), pl.col(column).cast(pl.Float64))
        elif dtype == pl.Null:
            frame = frame.with_columns(pl.col(column).cast(pl.Float64), pl.lit(None, pl.String).alias(raw))
        else:
            errors.append(RowError(entity, None, column, NO_VALUE, f"must hold numbers, got a {dtype} column"))
    if errors:
        raise ValidationError(errors)
    return frame


def _prepare_uuids(frame: pl.DataFrame) -> pl.DataFrame:
    """Each uid column in lower case, ``__given_{c}`` as given and ``__wellformed_{c}``."""
    for column in UUID_COLUMNS:
        given = pl.col(column).cast(pl.String)
        if frame.select((is_uuid(given) | given.is_null()).all()).item():
            # already canonical (the common case for machine-made frames): no text clean-up needed
            frame = frame.with_columns(
                given.alias(f"__given_{column}"),
                given.alias(column),
                given.is_not_null().alias(f"__wellformed_{column}"),
            )
        else:
            lowered = clean_text(column).str.to_lowercase()
            frame = frame.with_columns(
                clean_text(column).alias(f"__given_{column}"),
                lowered.alias(column),
                is_uuid(lowered).alias(f"__wellformed_{column}"),
            )
    return frame


def _resolve(frame: pl.DataFrame, kind: str, ref: pl.DataFrame) -> pl.DataFrame:
    """Resolve ``kind`` (asset, portfolio) by unique identifier and by uid, keeping the frame's order.

    Adds ``__{kind}_resolved`` (the uid the identifier names), ``__{kind}_identifier`` (the
    identifier the uid names), ``__{kind}_target`` (the uid) and ``__{kind}_name``.
    """
    ref = ref.select(pl.col("uid").cast(pl.String).str.to_lowercase(), pl.col("unique_identifier").cast(pl.String))
    for key, names in (
        (kind, {"uid": f"__{kind}_resolved", "unique_identifier": kind}),
        (f"{kind}_uid", {"uid": f"{kind}_uid", "unique_identifier": f"__{kind}_identifier"}),
    ):
        added = next(n for n in names.values() if n != key)
        if frame[key].null_count() == frame.height:  # a column that is entirely empty needs no join
            frame = frame.with_columns(pl.lit(None, pl.String).alias(added))
        else:
            frame = frame.join(ref.rename(names), on=key, how="left", maintain_order="left")
    return frame.with_columns(
        pl.coalesce(f"{kind}_uid", f"__{kind}_resolved").alias(f"__{kind}_target"),
        pl.coalesce(f"__{kind}_identifier", kind).alias(f"__{kind}_name"),
    )


def _derive_target(frame: pl.DataFrame) -> pl.DataFrame:
    """``__type`` and ``__uid``: the one target a row names (null when it names none or two)."""
    has_asset, has_portfolio = pl.col("__asset_target").is_not_null(), pl.col("__portfolio_target").is_not_null()
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
    return frame.with_columns(
        clean_text("target_type").alias("target_type"), derived_type.alias("__type"), derived_uid.alias("__uid")
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


def metadata_rules(entity: str) -> list[Rule]:
    """``metadata_json`` is valid JSON and an object (over ``__meta_kind``, which :func:`normalize_metadata` adds)."""
    kind = pl.col("__meta_kind")
    return [
        Rule(
            entity,
            "metadata_json",
            "metadata_json_valid",
            'is not valid JSON; give a JSON object such as {"portfolio_role": "satellite_sleeve"}',
            kind == "INVALID",
        ),
        Rule(
            entity,
            "metadata_json",
            "metadata_json_object",
            pl.lit("must be a JSON object (or empty), got a JSON ") + kind.replace_strict(_JSON_KINDS, default="value"),
            kind.is_not_null() & (kind != "INVALID") & (kind != "OBJECT"),
        ),
    ]


def normalize_metadata(frame: pl.DataFrame, bad: Any = None) -> pl.DataFrame:
    """``metadata_json`` as JSON object text (or null), with ``__meta_kind`` for :func:`metadata_rules`.

    ``bad`` (a :meth:`RowChecks.bad`, for callers that collect rules one by one) receives the
    metadata rules; without it the caller runs :func:`metadata_rules` itself.
    """
    if bad is not None:
        for rule in metadata_rules("metadata"):
            bad(rule.bad, rule.field, rule.message, rule.value, name=rule.name)
    dtype = frame.schema["metadata_json"]
    if isinstance(dtype, pl.Struct):
        frame = frame.with_columns(pl.col("metadata_json").struct.json_encode())
    elif dtype == pl.Null:
        return frame.with_columns(pl.col("metadata_json").cast(pl.String), pl.lit(None, pl.String).alias("__meta_kind"))
    elif dtype != pl.String:
        frame = frame.with_columns(pl.col("metadata_json").cast(pl.String, strict=False))
    frame = frame.with_columns(clean_text("metadata_json").alias("metadata_json"))
    # JSON parsing, vectorized, by DuckDB's JSON functions over the Arrow column (no file touched).
    scratch = duckdb.connect(":memory:")
    scratch.register("meta", frame.select("metadata_json").to_arrow())
    kinds = scratch.sql(
        "SELECT CASE WHEN metadata_json IS NULL THEN NULL WHEN json_valid(metadata_json) "
        "THEN json_type(metadata_json) ELSE 'INVALID' END AS k FROM meta"
    ).to_arrow_table()
    return frame.with_columns(pl.Series("__meta_kind", pl.from_arrow(kinds).to_series(), dtype=pl.String))


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
