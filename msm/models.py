"""Pydantic models for single records at the edges: forms, JSON payloads, CLI arguments.

Whole target sets are validated as frames by :mod:`msm.validation` (vectorized); these models
describe one record each and reject unknown fields, so a typo is an error rather than lost data.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
]


Identifier = Field(min_length=1, max_length=255, pattern=r"\S")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @field_validator("metadata_json", mode="before", check_fields=False)
    @classmethod
    def _metadata_is_object(cls, value: Any) -> Any:
        return metadata_object(value)


class AssetIn(_Record):
    unique_identifier: str = Identifier
    name: str | None = None
    ticker: str | None = None
    asset_type: str | None = None
    metadata_json: dict[str, Any] | None = None

    @field_validator("asset_type")
    @classmethod
    def _not_a_portfolio(cls, value: str | None) -> str | None:
        if value is not None and value.lower() == "portfolio":
            raise ValueError("an asset never represents a portfolio; add it with `msm portfolios add` instead")
        return value


class PortfolioIn(_Record):
    unique_identifier: str = Identifier
    portfolio_name: str | None = None
    metadata_json: dict[str, Any] | None = None


class AccountGroupIn(_Record):
    group_name: str = Identifier
    group_description: str | None = None
    metadata_json: dict[str, Any] | None = None


class AccountIn(_Record):
    unique_identifier: str = Identifier
    account_name: str = Identifier
    is_paper: bool = True
    account_is_active: bool = True
    account_group_uid: UUID | None = None
    metadata_json: dict[str, Any] | None = None


class AccountAllocationModelIn(_Record):
    allocation_model_name: str = Identifier
    allocation_model_description: str | None = None
    metadata_json: dict[str, Any] | None = None


class AccountTargetAllocationIn(_Record):
    unique_identifier: str = Identifier
    account_uid: UUID
    account_allocation_model_uid: UUID
    display_name: str | None = None
    is_active: bool = True
    source: str | None = None
    metadata_json: dict[str, Any] | None = None


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
                "a portfolio target cannot use single_asset_quantity; use weight_notional_exposure or constant_notional_exposure"
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
