"""Target sets being built (the workbench's builder): check without writing, save to many accounts.

:func:`check_target_set` runs the one validation of :mod:`msm.validation` over a draft target set
and returns every problem instead of raising, together with the rows that passed (storage shape)
and the weight sum of those rows, so that a surface can show each rule beside the row that breaks
it while the analyst is still editing. Nothing is written.

:func:`save_target_set_to_accounts` saves one target set, at one time, to several accounts through
the bulk write path (:func:`msm.services.snapshots.save_snapshots`): one validation, one
transaction, all or none.

>>> from msm.store import Store, migrate
>>> from msm.services.registry import add_asset
>>> store = Store(":memory:"); _ = migrate(store); _ = add_asset(store, "BTC")
>>> check = check_target_set(store, [{"asset": "BTC", "weight_notional_exposure": 0.6},
...                                  {"asset": "XYZ", "weight_notional_exposure": 0.1}])
>>> check.ok, check.weight_sum
(False, 0.6)
>>> [(e.row, e.field, e.value, e.code) for e in check.errors]
[(2, 'asset', 'XYZ', 'asset_exists')]
>>> print(check.errors[0])
target set row 2: `asset` = 'XYZ': no asset has this unique_identifier; add it first (msm assets add ID)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from msm.errors import NO_VALUE, RowError, ValidationError
from msm.rules import empty_target_set
from msm.services.registry import get_allocation_model, reference_frame
from msm.services.snapshots import save_snapshots
from msm.store.connection import Store, fetch
from msm.timeutil import parse_utc
from msm.validation import ROW, target_rows_frame, validate_target_rows

if TYPE_CHECKING:  # pydantic is imported only by the code that builds records
    from msm.models import TargetPositionIn

__all__ = ["TargetSetCheck", "accounts_following_model", "check_target_set", "save_target_set_to_accounts"]


@dataclass(frozen=True)
class TargetSetCheck:
    """The result of :func:`check_target_set`.

    ``rows``: the rows that pass every rule, in storage shape (``__row`` is their 1-based number in
    the draft, plus ``target_type``, ``target_uid``, ``asset_uid``, ``portfolio_uid``, the three
    exposures, ``metadata_json`` and ``unique_identifier``). ``errors``: every problem, each with the
    row it is on (``None`` for the set as a whole). ``n_rows``: rows in the draft.
    """

    rows: pl.DataFrame
    errors: list[RowError]
    n_rows: int

    @property
    def ok(self) -> bool:
        """Every row passes and there is at least one."""
        return not self.errors and self.n_rows > 0

    @property
    def weight_sum(self) -> float:
        """Sum of ``weight_notional_exposure`` over the rows that pass (never renormalized)."""
        return float(self.rows["weight_notional_exposure"].sum() or 0.0) if self.rows.height else 0.0

    @property
    def residual(self) -> float:
        """``1 - weight_sum``: the unallocated part of the mandate."""
        return 1.0 - self.weight_sum

    def messages_by_row(self) -> dict[int | None, list[str]]:
        """Each row's problems as ``field = value: rule`` texts (key ``None``: the set as a whole)."""
        found: dict[int | None, list[str]] = {}
        for error in self.errors:
            found.setdefault(error.row, []).append(error.problem)
        return found


def check_target_set(
    store: Store, rows: pl.DataFrame | Iterable[Mapping[str, Any] | TargetPositionIn], *, entity: str = "target set"
) -> TargetSetCheck:
    """Validate a draft target set against the database without writing anything.

    ``rows`` name targets as an import file or the builder does (``asset`` / ``portfolio`` unique
    identifiers, or ``asset_uid`` / ``portfolio_uid``), with one exposure each and optional
    ``metadata_json``. Rows are numbered 1..n in the order given.
    """
    try:
        frame = target_rows_frame(rows)
    except ValidationError as exc:  # an `asset_identifier` key: refused before any row is read
        return TargetSetCheck(_empty_rows(), exc.errors, 0)
    n = frame.height
    if n == 0:
        return TargetSetCheck(_empty_rows(), empty_target_set(entity).errors, 0)
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    with store.connect():
        assets = reference_frame(store, "asset", uids=_col(frame, "asset_uid"), identifiers=_col(frame, "asset"))
        portfolios = reference_frame(
            store, "portfolio", uids=_col(frame, "portfolio_uid"), identifiers=_col(frame, "portfolio")
        )
    try:
        return TargetSetCheck(validate_target_rows(frame, assets=assets, portfolios=portfolios, entity=entity), [], n)
    except ValidationError as exc:
        errors = exc.errors
    bad_rows = {e.row for e in errors}
    if None in bad_rows:  # a problem with the set as a whole (a missing column): no row can pass
        return TargetSetCheck(_empty_rows(), errors, n)
    good = frame.filter(~pl.col(ROW).is_in(sorted(bad_rows)))
    if good.height == 0:
        return TargetSetCheck(_empty_rows(), errors, n)
    try:
        valid = validate_target_rows(good, assets=assets, portfolios=portfolios, entity=entity)
    except ValidationError as again:  # rules between rows (duplicates) may now fire on a kept row
        errors = errors + again.errors
        valid = _empty_rows()
    return TargetSetCheck(valid, errors, n)


def accounts_following_model(store: Store, model: str | uuid.UUID) -> pl.DataFrame:
    """Accounts with an active target allocation on the allocation model ``model`` (name or uid).

    Columns ``account`` (unique identifier), ``account_name``, ``account_uid``, ``allocation``
    (the allocation's unique identifier), ``active_allocations`` (how many the account has: a
    bulk save needs exactly one, or the allocation named).
    """
    chosen = get_allocation_model(store, model)
    with store.connect() as con:
        return fetch(
            con,
            """
            SELECT a.unique_identifier AS account, a.account_name, a.uid::VARCHAR AS account_uid,
                   al.unique_identifier AS allocation,
                   (SELECT count(*) FROM account_target_allocation AS x
                    WHERE x.account_uid = a.uid AND x.is_active) AS active_allocations
            FROM account_target_allocation AS al
            JOIN account AS a ON a.uid = al.account_uid
            WHERE al.is_active AND al.account_allocation_model_uid = ?::UUID
            ORDER BY a.unique_identifier, al.unique_identifier
            """,
            [chosen["uid"]],
        )


def save_target_set_to_accounts(
    store: Store,
    accounts: Sequence[str] | pl.DataFrame,
    at: datetime | str,
    rows: pl.DataFrame | Iterable[Mapping[str, Any] | TargetPositionIn],
    *,
    overwrite: bool = False,
    source: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    draft: bool = False,
) -> pl.DataFrame:
    """Save the same target set at the same time to every account in ``accounts``: all or none.

    ``accounts``: unique identifiers or uids, or a frame with ``account`` and optionally
    ``allocation`` columns (for accounts with several active allocations). Returns the
    :func:`save_snapshots` summary (one row per position set written). Every refusal (an unknown
    account, an account with no or several active allocations, an existing snapshot without
    ``overwrite``, a bad row) is raised before anything is written. Each set written gets its
    audit event by ``actor`` for ``reason``. ``draft`` saves every set as a draft.
    """
    when = parse_utc(at, field="position_set_time", entity="snapshot")
    targets = target_rows_frame(rows)
    if isinstance(accounts, pl.DataFrame):
        keys = accounts.select([c for c in ("account", "allocation") if c in accounts.columns])
    else:
        keys = pl.DataFrame({"account": [str(a) for a in accounts]}, schema={"account": pl.String})
    if keys.height == 0:
        raise ValidationError([RowError("target set", None, "accounts", NO_VALUE, "choose at least one account")])
    duplicated = keys.filter(pl.col("account").is_duplicated())["account"].unique().sort().to_list()
    if duplicated:
        raise ValidationError([RowError("target set", None, "accounts", a, "is chosen twice") for a in duplicated])
    if targets.height == 0:
        raise empty_target_set()
    bulk = keys.join(targets, how="cross").with_columns(pl.lit(when).dt.cast_time_unit("us").alias("position_set_time"))
    return save_snapshots(store, bulk, overwrite=overwrite, source=source, actor=actor, reason=reason, draft=draft)


def _col(frame: pl.DataFrame, name: str) -> pl.Series | None:
    return frame[name] if name in frame.columns else None


def _empty_rows() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            ROW: pl.Int64,
            "target_type": pl.String,
            "target_uid": pl.String,
            "asset_uid": pl.String,
            "portfolio_uid": pl.String,
            "weight_notional_exposure": pl.Float64,
            "constant_notional_exposure": pl.Float64,
            "single_asset_quantity": pl.Float64,
            "metadata_json": pl.String,
            "unique_identifier": pl.String,
        }
    )
