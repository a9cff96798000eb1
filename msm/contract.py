"""The contract's constants and small checks, without pydantic (cheap to import).

:mod:`msm.models` (pydantic records) re-exports them; code on the read path imports them from
here so that a command that only reads never pays for pydantic.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EXPOSURE_COLUMNS", "SCALED_EXPOSURES", "STORAGE_COLUMNS", "TARGET_TYPES", "metadata_object"]

TARGET_TYPES = ("asset", "portfolio")
EXPOSURE_COLUMNS = ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
#: The exposures a look-through multiplies by the constituent weight (a quantity exists only on asset rows).
SCALED_EXPOSURES = ("weight_notional_exposure", "constant_notional_exposure")
#: The columns of ``target_positions`` in table order (and the first columns of ``target_positions_replaced``).
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


def metadata_object(value: Any) -> dict[str, Any] | None:
    """``None``, a dict, or JSON text of an object -> a dict (or ``None``); anything else is refused."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata_json is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"metadata_json must be a JSON object (or empty), got a {type(value).__name__}")
    return value
