"""Holdings: what each account holds, as UTC-stamped sets (``account_holdings_set`` / ``account_holdings``).

:func:`import_holdings` takes one file (or frame, or rows) with ``account``, ``asset`` and
``quantity`` columns for any number of accounts, stamped with one time ``at``. The whole file is
validated first and every bad row reported (row, field, value, rule); then one holdings set per
account and all their rows are written in one transaction, or nothing is. A set that exists at
that (account, time) is refused unless ``overwrite``, which replaces the whole set.
:func:`read_holdings` returns an account's latest set at or before a time.

The rules are written once more in the DDL (``msm/store/sql/msm_0003_holdings_prices_fx.sql``):
a quantity is finite and >= 0 (long-only), each asset appears once per set, a row's
``time_index`` is its set's ``holdings_time``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from msm import audit
from msm.errors import ConflictError
from msm.services.registry import get_account, identity, records_with_metadata
from msm.services.rowfiles import FileRules, Rule, input_frame, known, lookup_keys, number_column, text_column
from msm.store.connection import Store, fetch
from msm.timeutil import format_utc, parse_utc
from msm.validation import ROW, normalize_metadata

__all__ = [
    "HOLDINGS_COLUMNS",
    "HOLDINGS_POSITION_COLUMNS",
    "Holdings",
    "HoldingsImport",
    "HoldingsSetExistsError",
    "holdings_history",
    "import_holdings",
    "read_holdings",
]

#: The columns of a holdings file (``metadata_json``, a JSON object per row, is optional).
HOLDINGS_COLUMNS = ("account", "asset", "quantity")
#: The columns of :attr:`Holdings.positions`.
HOLDINGS_POSITION_COLUMNS = ("asset", "asset_uid", "name", "asset_type", "currency", "quantity", "metadata_json")

_ENTITY = "holdings"
_INSTEAD = {
    "account_uid": "name the account in an `account` column (its unique_identifier or uid)",
    "asset_uid": "name the asset in an `asset` column (its unique_identifier or uid)",
    "time": "the holdings time is given once for the whole file (--at TS, `at=`), not per row",
    "holdings_time": "the holdings time is given once for the whole file (--at TS, `at=`), not per row",
}


class HoldingsSetExistsError(ConflictError):
    """A holdings set already exists at that (account, time) and overwrite was not asked."""


@dataclass(frozen=True)
class HoldingsImport:
    """What :func:`import_holdings` wrote: one row per holdings set (``sets``) and the totals."""

    holdings_time: datetime
    sets: pl.DataFrame  # account, account_uid, holdings_set_uid, rows, replaced
    dry_run: bool = False  # nothing was written: what would be

    @property
    def rows(self) -> int:
        """How many holdings rows were written."""
        return int(self.sets["rows"].sum()) if self.sets.height else 0

    def to_dict(self) -> dict[str, Any]:
        """The ``holdings import --format json`` document."""
        return {
            "holdings_time": format_utc(self.holdings_time),
            "accounts": self.sets.height,
            "rows": self.rows,
            "replaced": int(self.sets["replaced"].sum()),
            "sets": [
                {"account": r["account"], "holdings_set_uid": r["holdings_set_uid"], "rows": r["rows"]}
                for r in self.sets.iter_rows(named=True)
            ],
        }


@dataclass(frozen=True)
class Holdings:
    """One holdings set of an account with its rows (``positions``), or an empty one."""

    account: dict[str, Any]
    holdings_set_uid: str | None
    holdings_time: datetime | None
    positions: pl.DataFrame
    source: str | None = None

    @property
    def is_empty(self) -> bool:
        """True when the account has no holdings set (at or before the time asked)."""
        return self.holdings_set_uid is None

    def to_dict(self) -> dict[str, Any]:
        """The ``holdings show --format json`` document."""
        return {
            "account": identity(self.account),
            "holdings_set_uid": self.holdings_set_uid,
            "holdings_time": format_utc(self.holdings_time),
            "source": self.source,
            "positions": records_with_metadata(self.positions),
        }


# -- import ------------------------------------------------------------------------------------------
def import_holdings(
    store: Store,
    rows: pl.DataFrame | str | Path | Sequence[Mapping[str, Any]],
    *,
    at: datetime | str,
    overwrite: bool = False,
    source: str | None = None,
    sheet: str | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    reason: str | None = None,
) -> HoldingsImport:
    """Validate ``rows`` (a frame, a file path, or records) and write one holdings set per account at ``at``.

    Raises :class:`~msm.errors.ValidationError` naming every bad row (nothing is written), and
    :class:`HoldingsSetExistsError` when a set exists at ``at`` for an account of the file and
    ``overwrite`` is not given (with it, each such set is replaced whole). ``dry_run`` runs every
    check against the database and returns what would be written, writing nothing. Each set
    written gets one audit event (``save`` or ``overwrite``, with the row counts before and after)
    by ``actor`` for ``reason``, in the same transaction.
    """
    when = parse_utc(at, field="holdings_time", entity=_ENTITY)
    frame = input_frame(
        rows, entity=_ENTITY, required=HOLDINGS_COLUMNS, optional=("metadata_json",), instead=_INSTEAD, sheet=sheet
    )
    with audit.acting(actor, reason), store.connect() as con:
        frame = _validate(frame, con)
        return _write(store, frame, when, overwrite=overwrite, source=source, dry_run=dry_run)


def _validate(frame: pl.DataFrame, con: Any) -> pl.DataFrame:
    """Typed, resolved rows (``account_uid``, ``asset_uid``, ``quantity``, ``metadata_json``), or every error."""
    rules = FileRules(_ENTITY)
    frame = text_column(frame, "account", rules, required=True)
    frame = text_column(frame, "asset", rules, required=True)
    frame = number_column(frame, "quantity", rules)
    frame = normalize_metadata(
        frame,
        lambda mask, field, rule, value=None, name=None: rules.add(
            Rule(field, name or "metadata_json_object", rule, mask, value)
        ),
    )
    accounts = lookup_keys(con, "account", frame["account"], extra=("unique_identifier",)).rename(
        {"key": "account", "uid": "account_uid", "unique_identifier": "__account_name"}
    )
    assets = lookup_keys(con, "asset", frame["asset"], extra=("unique_identifier",)).rename(
        {"key": "asset", "uid": "asset_uid", "unique_identifier": "__asset_name"}
    )
    frame = frame.join(accounts, on="account", how="left", maintain_order="left").join(
        assets, on="asset", how="left", maintain_order="left"
    )
    account_key = pl.coalesce("account_uid", "account")
    asset_key = pl.coalesce("asset_uid", "asset")
    first = pl.col(ROW).min().over(account_key, asset_key)
    rules.add(
        known("account", "msm accounts add ID --name N"),
        known("asset", "msm assets add ID"),
        Rule(
            "quantity",
            "quantity_long_only",
            "must be >= 0 (holdings are long-only)",
            pl.col("quantity") < 0,
            pl.col("__given_quantity"),
        ),
        Rule(
            "asset",
            "asset_once_per_set",
            pl.lit("duplicate asset for account '")
            + pl.coalesce("__account_name", "account")
            + pl.lit("' in one file; first given at row ")
            + first.cast(pl.String),
            pl.col("account").is_not_null() & pl.col("asset").is_not_null() & (pl.col(ROW) > first),
        ),
    )
    rules.enforce(frame, summary="holdings import")
    return frame.select(
        ROW, "account_uid", pl.col("__account_name").alias("account"), "asset_uid", "quantity", "metadata_json"
    )


def _existing_sets(con: Any, when: datetime, *, overwrite: bool) -> pl.DataFrame:
    """The stored sets at ``when`` of the accounts in ``__holdings_sets``; refused unless ``overwrite``."""
    existing = fetch(
        con,
        """
        SELECT s.uid::VARCHAR AS holdings_set_uid, s.account_uid::VARCHAR AS account_uid, n.account
        FROM account_holdings_set AS s JOIN __holdings_sets AS n ON s.account_uid = n.account_uid::UUID
        WHERE s.holdings_time = ?
        ORDER BY n.account
        """,
        [when],
    )
    if existing.height and not overwrite:
        listed = ", ".join(f"'{a}'" for a in existing["account"].head(10))
        more = f" and {existing.height - 10} more" if existing.height > 10 else ""
        raise HoldingsSetExistsError(
            f"holdings set exists at {format_utc(when)} for account {listed}{more}; "
            "pass overwrite (--overwrite) to replace the whole set"
        )
    return existing


#: The sets about to be replaced: their row count and source (for their events).
_BEFORE_SQL = """
SELECT s.uid::VARCHAR AS holdings_set_uid, count(h.asset_uid) AS n, any_value(s.source) AS source
FROM account_holdings_set AS s
LEFT JOIN account_holdings AS h ON h.holdings_set_uid = s.uid AND h.time_index = s.holdings_time
WHERE s.uid IN (SELECT holdings_set_uid::UUID FROM __holdings_existing)
GROUP BY s.uid
"""
#: One event per set just written (parameter: the holdings time).
_EVENTS_SQL = """
SELECT CASE WHEN b.holdings_set_uid IS NULL THEN 'save' ELSE 'overwrite' END AS action, s.uid AS entity_uid,
       s.account_uid,
       CASE WHEN b.holdings_set_uid IS NOT NULL THEN json_object('rows', b.n, 'source', b.source) END AS before_json,
       json_object('holdings_time', strftime(s.holdings_time, '%Y-%m-%dT%H:%M:%S.%fZ'), 'rows', n.rows,
                   'source', s.source) AS after_json
FROM account_holdings_set AS s
JOIN __holdings_sets AS n ON s.account_uid = n.account_uid::UUID AND s.holdings_time = ?
LEFT JOIN __holdings_before AS b ON b.holdings_set_uid::UUID = s.uid
"""


def _write(
    store: Store, frame: pl.DataFrame, when: datetime, *, overwrite: bool, source: str | None, dry_run: bool
) -> HoldingsImport:
    sets = frame.group_by("account_uid", "account").agg(pl.len().cast(pl.Int64).alias("rows")).sort("account")
    with store.transaction() as con:
        con.register("__holdings_sets", sets.to_arrow())
        existing = _existing_sets(con, when, overwrite=overwrite)
        if dry_run:
            planned = sets.join(existing.select("account_uid", "holdings_set_uid"), on="account_uid", how="left")
            planned = planned.with_columns(pl.col("holdings_set_uid").is_not_null().alias("replaced"))
            return HoldingsImport(
                when, planned.select("account", "account_uid", "holdings_set_uid", "rows", "replaced"), True
            )
        con.register("__holdings_existing", existing.select("holdings_set_uid").to_arrow())
        before = fetch(con, _BEFORE_SQL)
        con.register("__holdings_before", before.to_arrow())
        if existing.height:
            con.execute(
                "DELETE FROM account_holdings WHERE holdings_set_uid IN "
                "(SELECT holdings_set_uid::UUID FROM __holdings_existing)"
            )
            con.execute(
                "UPDATE account_holdings_set SET source = ? "
                "WHERE uid IN (SELECT holdings_set_uid::UUID FROM __holdings_existing)",
                [source],
            )
        con.execute(
            """
            INSERT INTO account_holdings_set (uid, account_uid, holdings_time, source)
            SELECT gen_random_uuid(), n.account_uid::UUID, $at, $source FROM __holdings_sets AS n
            WHERE NOT EXISTS (SELECT 1 FROM account_holdings_set AS s
                              WHERE s.account_uid = n.account_uid::UUID AND s.holdings_time = $at)
            """,
            {"at": when, "source": source},
        )
        con.register(
            "__holdings_rows", frame.select("account_uid", "asset_uid", "quantity", "metadata_json").to_arrow()
        )
        con.execute(
            """
            INSERT INTO account_holdings (time_index, holdings_set_uid, asset_uid, quantity, metadata_json)
            SELECT s.holdings_time, s.uid, r.asset_uid::UUID, r.quantity, r.metadata_json::JSON
            FROM __holdings_rows AS r
            JOIN account_holdings_set AS s ON s.account_uid = r.account_uid::UUID AND s.holdings_time = ?
            """,
            [when],
        )
        audit.record_select(con, "holdings_set", _EVENTS_SQL, [when])
        written = fetch(
            con,
            """
            SELECT s.uid::VARCHAR AS holdings_set_uid, s.account_uid::VARCHAR AS account_uid
            FROM account_holdings_set AS s JOIN __holdings_sets AS n ON s.account_uid = n.account_uid::UUID
            WHERE s.holdings_time = ?
            """,
            [when],
        )
    replaced = pl.col("account_uid").is_in(existing["account_uid"].implode())
    result = sets.join(written, on="account_uid").with_columns(replaced.alias("replaced"))
    return HoldingsImport(when, result.select("account", "account_uid", "holdings_set_uid", "rows", "replaced"))


# -- read ----------------------------------------------------------------------------------------------
_EMPTY_POSITIONS = pl.DataFrame(
    schema={
        "asset": pl.String,
        "asset_uid": pl.String,
        "name": pl.String,
        "asset_type": pl.String,
        "currency": pl.String,
        "quantity": pl.Float64,
        "metadata_json": pl.String,
    }
)


def read_holdings(store: Store, account: str | uuid.UUID, *, as_of: datetime | str | None = None) -> Holdings:
    """The account's latest holdings set (at or before ``as_of`` when given); empty when there is none."""
    bound = parse_utc(as_of, field="as_of", entity=_ENTITY) if as_of is not None else None
    with store.connect() as con:
        acct = get_account(store, account)
        chosen = fetch(
            con,
            """
            SELECT uid::VARCHAR AS uid, holdings_time, source FROM account_holdings_set
            WHERE account_uid = $account AND ($bound IS NULL OR holdings_time <= $bound)
            ORDER BY holdings_time DESC LIMIT 1
            """,
            {"account": acct["uid"], "bound": bound},
        )
        if chosen.height == 0:
            return Holdings(acct, None, None, _EMPTY_POSITIONS)
        set_uid, when, source = chosen.row(0)
        positions = fetch(
            con,
            """
            SELECT a.unique_identifier AS asset, h.asset_uid::VARCHAR AS asset_uid, a.name, a.asset_type, a.currency,
                   h.quantity, h.metadata_json::VARCHAR AS metadata_json
            FROM account_holdings AS h JOIN asset AS a ON a.uid = h.asset_uid
            WHERE h.holdings_set_uid = ?::UUID AND h.time_index = ?
            ORDER BY a.unique_identifier
            """,
            [set_uid, when],
        )
    return Holdings(acct, set_uid, when, positions if positions.height else _EMPTY_POSITIONS, source)


def holdings_history(store: Store, account: str | uuid.UUID) -> pl.DataFrame:
    """Every holdings set of the account, newest first, with its row count and source."""
    acct = get_account(store, account)
    return store.query(
        """
        SELECT s.uid::VARCHAR AS holdings_set_uid, s.holdings_time, count(h.asset_uid) AS rows, s.source
        FROM account_holdings_set AS s
        LEFT JOIN account_holdings AS h ON h.holdings_set_uid = s.uid AND h.time_index = s.holdings_time
        WHERE s.account_uid = ?
        GROUP BY ALL
        ORDER BY s.holdings_time DESC
        """,
        [acct["uid"]],
    )
