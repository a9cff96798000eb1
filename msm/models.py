"""Pydantic models for single records at the edges: forms, JSON payloads, CLI arguments.

Whole target sets are validated as frames by :mod:`msm.validation` (vectorized); these models
describe one record each and reject unknown fields, so a typo is an error rather than lost data.
The registry records (``AssetIn``, ... ``AccountTargetAllocationIn``) are built from the entity
catalog (:mod:`msm.catalog`) by :func:`record_model`: a column added there is a field here.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from msm.catalog import CATALOG, MAX_TEXT, Entity, Pattern, Refusal
from msm.catalog import Field as CatalogField
from msm.contract import EXPOSURE_COLUMNS, TARGET_TYPES, metadata_object
from msm.timeutil import parse_utc

__all__ = [
    "EXPOSURE_COLUMNS",
    "TARGET_TYPES",
    "AccountAllocationModelIn",
    "AccountGroupIn",
    "AccountIn",
    "AccountTargetAllocationIn",
    "AssetIn",
    "PortfolioIn",
    "TargetPositionIn",
    "record_model",
]


Identifier = Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class _Record(_Strict):
    @field_validator("metadata_json", mode="before", check_fields=False)
    @classmethod
    def _metadata_is_object(cls, value: Any) -> Any:
        return metadata_object(value)


# -- registry records: one per catalog entity ----------------------------------------------------
def _refusing(refusal: Refusal) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is not None and value.lower() == refusal.value.lower():
            raise ValueError(f"{refusal.reason}; {refusal.fix}")
        return value

    return AfterValidator(check)


def _matching(pattern: Pattern) -> AfterValidator:
    compiled = re.compile(pattern.regex)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.search(value):
            raise ValueError(pattern.message)
        return value

    return AfterValidator(check)


def _checks(field: CatalogField) -> list[AfterValidator]:
    """The text rules of a field (a refused value, a pattern) as validators."""
    return [
        *([_refusing(field.refuse)] if field.refuse else []),
        *([_matching(field.pattern)] if field.pattern else []),
    ]


def _definition(field: CatalogField) -> tuple[Any, Any]:
    """A catalog field as a pydantic field definition: ``(type, default)``.

    Text is ``str`` (a required one an :data:`Identifier`), a flag ``bool``, JSON a ``dict`` (an
    object), a reference the referenced row's ``UUID``; a field that is neither required nor
    defaulted also takes ``None``.
    """
    optional = not field.required and field.default is None
    kind: Any = {"key": str, "text": str, "bool": bool, "json": dict[str, Any], "ref": UUID}[field.kind]
    if optional or field.kind == "json":
        kind = kind | None
    if field.kind == "json":
        kind = Annotated[kind, BeforeValidator(metadata_object)]
    elif checks := _checks(field):
        kind = Annotated[kind, *checks]
    if field.required:
        return kind, Identifier if field.kind in ("key", "text") else ...
    return kind, field.default


@cache
def record_model(entity: Entity) -> type[BaseModel]:
    """The pydantic record of one catalog entity: a field per column (``account_group_uid``, not ``group``).

    >>> record_model(CATALOG["asset"]) is AssetIn, list(AssetIn.model_fields)
    (True, ['unique_identifier', 'name', 'ticker', 'asset_type', 'metadata_json', 'currency'])
    """
    return create_model(
        entity.model,
        __base__=_Strict,
        __module__=__name__,
        __doc__=f"One {entity.label} row as a form, a payload or a CLI argument gives it (from the catalog).",
        **{field.column: _definition(field) for field in entity.fields},
    )


AssetIn = record_model(CATALOG["asset"])
PortfolioIn = record_model(CATALOG["portfolio"])
AccountGroupIn = record_model(CATALOG["account_group"])
AccountIn = record_model(CATALOG["account"])
AccountAllocationModelIn = record_model(CATALOG["account_allocation_model"])
AccountTargetAllocationIn = record_model(CATALOG["account_target_allocation"])


class TargetPositionIn(_Record):
    """One target row as a form or a JSON payload gives it.

    Exactly one of ``asset_uid`` / ``portfolio_uid`` (or, in import files and the UI, the
    ``asset`` / ``portfolio`` unique identifier), exactly one finite exposure. ``target_type`` and
    ``target_uid`` are derived; when given they must agree.
    """

    asset_uid: UUID | None = None
    portfolio_uid: UUID | None = None
    asset: str | None = None
    portfolio: str | None = None
    target_type: Literal["asset", "portfolio"] | None = None
    target_uid: UUID | None = None
    weight_notional_exposure: float | None = None
    constant_notional_exposure: float | None = None
    single_asset_quantity: float | None = None
    metadata_json: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_asset_identifier(cls, data: Any) -> Any:
        if isinstance(data, dict) and "asset_identifier" in data:
            raise ValueError(
                "target rows use `asset_uid` (or the `asset` column in an import file), not `asset_identifier`"
            )
        return data

    @model_validator(mode="after")
    def _one_target_one_exposure(self) -> TargetPositionIn:
        asset = self.asset_uid is not None or bool(self.asset)
        portfolio = self.portfolio_uid is not None or bool(self.portfolio)
        if asset == portfolio:
            raise ValueError(
                "exactly one of `asset_uid` / `portfolio_uid` must be set, got " + ("both" if asset else "neither")
            )
        derived = "asset" if asset else "portfolio"
        if self.target_type is not None and self.target_type != derived:
            raise ValueError(f"target_type {self.target_type!r} does not match the target given ({derived})")
        concrete = self.asset_uid if asset else self.portfolio_uid
        if self.target_uid is not None and concrete is not None and self.target_uid != concrete:
            raise ValueError(f"target_uid {self.target_uid} must equal {derived}_uid {concrete}")
        given = [c for c in EXPOSURE_COLUMNS if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of {', '.join(EXPOSURE_COLUMNS)} must be set, got {len(given)}")
        if not math.isfinite(getattr(self, given[0])):
            raise ValueError(f"{given[0]} must be finite, got {getattr(self, given[0])}")
        if derived == "portfolio" and self.single_asset_quantity is not None:
            raise ValueError(
                "a portfolio target cannot use single_asset_quantity; "
                "use weight_notional_exposure or constant_notional_exposure"
            )
        return self

    def to_row(self) -> dict[str, Any]:
        """The record as a row for :func:`msm.validation.target_rows_frame` (UUIDs as text)."""
        row = self.model_dump(exclude_none=True)
        for key in ("asset_uid", "portfolio_uid", "target_uid"):
            if key in row:
                row[key] = str(row[key])
        return row


class PositionSetKey(BaseModel):
    """Which snapshot: an account (unique identifier) at an aware time, optionally an allocation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    account: str = Identifier
    position_set_time: datetime
    allocation: str | None = None

    @field_validator("position_set_time", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> datetime:
        return parse_utc(value, field="position_set_time", entity="position set")
