"""Market data for valuation: asset prices (``asset_price``) and FX rates (``fx_rate``).

:func:`import_prices` takes rows with ``asset``, ``time``, ``price``, ``currency`` (a price is in
``currency`` per unit of the asset); :func:`import_fx_rates` rows with ``base``, ``quote``,
``time``, ``rate`` (1 ``base`` = ``rate`` ``quote``). Both take CSV, JSON, Parquet or Excel files,
frames or records (an optional ``source`` column records provenance), validate every row first and
report every bad one (row, field, value, rule), then write all rows in one transaction or none
(``dry_run`` checks everything against the database and returns the plan without writing).
A row whose key (asset and time; base, quote and time) is stored already is refused unless
``upsert``, which replaces its values. Currencies are ISO codes as given: ``usd`` or ``US`` is
refused, never upper-cased. A cash asset is worth 1 of its currency and takes no price.

:func:`read_prices` and :func:`read_fx_rates` list what is stored: by default the latest price of
each asset (the latest rate of each pair) at or before a time, which is what a valuation at that
time uses; with ``history``, every one up to that time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from msm import audit
from msm.errors import NotFoundError, RowError, ValidationError
from msm.services.bulk import ImportResult
from msm.services.rowfiles import (
    CURRENCY_PATTERN,
    CURRENCY_RULE,
    FileRules,
    Rule,
    input_frame,
    known,
    lookup_keys,
    number_column,
    text_column,
    time_column,
)
from msm.store.connection import Store, fetch, quote_ident
from msm.timeutil import parse_utc
from msm.validation import ROW

__all__ = [
    "FX_COLUMNS",
    "FX_LIST_COLUMNS",
    "PRICE_COLUMNS",
    "PRICE_LIST_COLUMNS",
    "delete_fx_rates",
    "delete_prices",
    "import_fx_rates",
    "import_prices",
    "read_fx_rates",
    "read_prices",
]

#: The columns of a price file (``source`` is optional).
PRICE_COLUMNS = ("asset", "time", "price", "currency")
#: The columns of an FX file (``source`` is optional): 1 ``base`` = ``rate`` ``quote``.
FX_COLUMNS = ("base", "quote", "time", "rate")
#: The columns of :func:`read_prices`: ``price`` is in ``currency`` per unit of the asset, at ``time``.
PRICE_LIST_COLUMNS = ("asset", "asset_uid", "time", "price", "currency", "source")
#: The columns of :func:`read_fx_rates`: 1 ``base`` = ``rate`` ``quote`` at ``time``.
FX_LIST_COLUMNS = ("base", "quote", "time", "rate", "source")

Source = pl.DataFrame | str | Path | Sequence[Mapping[str, Any]]


def _currency(frame: pl.DataFrame, column: str, rules: FileRules) -> pl.DataFrame:
    frame = text_column(frame, column, rules, required=True)
    rules.add(
        Rule(
            column,
            f"{column}_code",
            CURRENCY_RULE,
            pl.col(column).is_not_null() & ~pl.col(column).str.contains(CURRENCY_PATTERN),
        )
    )
    return frame


def _positive(rules: FileRules, column: str) -> None:
    rules.add(Rule(column, f"{column}_positive", "must be > 0", pl.col(column) <= 0, pl.col(f"__given_{column}")))


def _shown_time() -> pl.Expr:
    return pl.col("time").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")


# -- prices --------------------------------------------------------------------------------------------
def import_prices(
    store: Store,
    rows: Source,
    *,
    upsert: bool = False,
    dry_run: bool = False,
    source: str | None = None,
    sheet: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> ImportResult:
    """Validate price rows and write them in one transaction (``upsert`` replaces stored prices at the same time).

    The import is one audit event (``import``: counts, times and assets) by ``actor`` for ``reason``;
    ``dry_run`` checks every row against the database and returns the plan, writing nothing.
    """
    with audit.acting(actor, reason):
        return _import_prices(store, rows, upsert=upsert, dry_run=dry_run, source=source, sheet=sheet)


def _import_prices(
    store: Store, rows: Source, *, upsert: bool, dry_run: bool, source: str | None, sheet: str | None
) -> ImportResult:
    rules = FileRules("prices")
    frame = input_frame(rows, entity="prices", required=PRICE_COLUMNS, optional=("source",), sheet=sheet)
    frame = text_column(frame, "asset", rules, required=True)
    frame = time_column(frame, "time", rules).with_columns(pl.col("time").alias("time_index"))
    frame = number_column(frame, "price", rules)
    _positive(rules, "price")
    frame = _currency(frame, "currency", rules)
    frame = text_column(frame, "source", rules).with_columns(pl.col("source").fill_null(pl.lit(source, pl.String)))
    with store.connect() as con:
        assets = lookup_keys(con, "asset", frame["asset"], extra=("unique_identifier", "asset_type", "currency"))
        assets = assets.rename({"key": "asset", "uid": "asset_uid", "currency": "__cash_currency"})
        frame = frame.join(assets, on="asset", how="left", maintain_order="left")
        first = pl.col(ROW).min().over(pl.coalesce("asset_uid", "asset"), "time")
        rules.add(
            known("asset", "msm assets add ID"),
            Rule(
                "asset",
                "cash_takes_no_price",
                pl.lit("is a cash asset, worth 1 ")
                + pl.col("__cash_currency")
                + pl.lit(" by definition; it takes no price"),
                pl.col("asset_type").str.strip_chars().str.to_lowercase() == "cash",
            ),
            Rule(
                "time",
                "price_once_per_time",
                pl.lit("duplicate price of '")
                + pl.col("asset")
                + pl.lit("' at this time; first given at row ")
                + first.cast(pl.String),
                pl.col("asset").is_not_null() & pl.col("time").is_not_null() & (pl.col(ROW) > first),
                _shown_time(),
            ),
        )
        frame = _existing(con, frame, "asset_price", ("asset_uid", "time_index"), ("price", "currency", "source"))
        _refuse_existing(rules, upsert, "a price of this asset at this time")
        rules.enforce(frame, summary="prices import")
    key, values = ("asset_uid", "time_index"), ("price", "currency", "source")
    return _write(store, frame, "prices", "asset_price", key, values, dry_run=dry_run)


# -- FX rates -----------------------------------------------------------------------------------------
def import_fx_rates(
    store: Store,
    rows: Source,
    *,
    upsert: bool = False,
    dry_run: bool = False,
    source: str | None = None,
    sheet: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> ImportResult:
    """Validate FX rows (1 ``base`` = ``rate`` ``quote``) and write them in one transaction.

    The import is one audit event (``import``: counts, times and pairs) by ``actor`` for ``reason``;
    ``dry_run`` checks every row against the database and returns the plan, writing nothing.
    """
    with audit.acting(actor, reason):
        return _import_fx_rates(store, rows, upsert=upsert, dry_run=dry_run, source=source, sheet=sheet)


def _import_fx_rates(
    store: Store, rows: Source, *, upsert: bool, dry_run: bool, source: str | None, sheet: str | None
) -> ImportResult:
    rules = FileRules("fx rates")
    frame = input_frame(rows, entity="fx rates", required=FX_COLUMNS, optional=("source",), sheet=sheet)
    frame = _currency(frame, "base", rules)
    frame = _currency(frame, "quote", rules)
    frame = time_column(frame, "time", rules).with_columns(pl.col("time").alias("time_index"))
    frame = number_column(frame, "rate", rules)
    _positive(rules, "rate")
    frame = text_column(frame, "source", rules).with_columns(pl.col("source").fill_null(pl.lit(source, pl.String)))
    first = pl.col(ROW).min().over("base", "quote", "time")
    rules.add(
        Rule(
            "quote",
            "two_currencies",
            "must differ from base (a currency's rate to itself is 1 by definition)",
            pl.col("base") == pl.col("quote"),
        ),
        Rule(
            "time",
            "rate_once_per_time",
            pl.lit("duplicate rate ")
            + pl.col("base")
            + pl.lit("/")
            + pl.col("quote")
            + pl.lit(" at this time; first given at row ")
            + first.cast(pl.String),
            pl.col("base").is_not_null()
            & pl.col("quote").is_not_null()
            & pl.col("time").is_not_null()
            & (pl.col(ROW) > first),
            _shown_time(),
        ),
    )
    frame = frame.with_columns(pl.col("base").alias("base_currency"), pl.col("quote").alias("quote_currency"))
    key = ("time_index", "base_currency", "quote_currency")
    with store.connect() as con:
        frame = _existing(con, frame, "fx_rate", key, ("rate", "source"))
        _refuse_existing(rules, upsert, "a rate of this pair at this time")
        rules.enforce(frame, summary="fx rates import")
    return _write(store, frame, "fx rates", "fx_rate", key, ("rate", "source"), dry_run=dry_run)


# -- shared: stored rows, the plan, the write -----------------------------------------------------------------
def _existing(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, table: str, key: Sequence[str], values: Sequence[str]
) -> pl.DataFrame:
    """``frame`` with ``__exists`` and ``__stored_<value>`` columns from the stored rows of the same key."""
    keys = frame.select(*key).drop_nulls().unique()
    con.register("__market_keys", keys.to_arrow())
    try:
        joins = " AND ".join(f"t.{quote_ident(c)} = k.{quote_ident(c)}{_cast(c)}" for c in key)
        selected = [f"k.{quote_ident(c)}" for c in key] + [f"t.{quote_ident(c)} AS __stored_{c}" for c in values]
        stored = fetch(
            con,
            f"SELECT {', '.join(selected)}, true AS __exists "
            f"FROM {quote_ident(table)} AS t JOIN __market_keys AS k ON {joins}",
        )
    finally:
        con.unregister("__market_keys")
    if stored.height == 0:
        return frame.with_columns(
            pl.lit(False).alias("__exists"), *[pl.lit(None).alias(f"__stored_{c}") for c in values]
        )
    stored = stored.with_columns(pl.col("time_index").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    frame = frame.join(stored, on=list(key), how="left", maintain_order="left", nulls_equal=False)
    return frame.with_columns(pl.col("__exists").fill_null(False))


def _cast(column: str) -> str:
    return "::UUID" if column.endswith("_uid") else ""


def _refuse_existing(rules: FileRules, upsert: bool, what: str) -> None:
    if not upsert:
        rules.add(
            Rule(
                "time",
                "not_stored_yet",
                f"{what} is stored already; pass --upsert (upsert=True) to replace it",
                pl.col("__exists"),
                _shown_time(),
            )
        )


def _summary(frame: pl.DataFrame) -> dict[str, Any]:
    """What an import's event says: counts by action, the times covered, and what was priced (asset or pair)."""
    counts = dict(frame["__action"].value_counts().iter_rows())
    written = frame.filter(pl.col("__action") != "unchanged")
    if "asset_uid" in frame.columns:
        what = {"assets": written["asset_uid"].n_unique()}
    else:
        pairs = written.select((pl.col("base_currency") + "/" + pl.col("quote_currency")).unique().sort())
        what = {"pairs": pairs.to_series().to_list()}
    return {
        "added": counts.get("add", 0),
        "updated": counts.get("update", 0),
        "unchanged": counts.get("unchanged", 0),
        "from": written["time_index"].min(),
        "to": written["time_index"].max(),
        **what,
    }


def _write(
    store: Store,
    frame: pl.DataFrame,
    entity: str,
    table: str,
    key: Sequence[str],
    values: Sequence[str],
    *,
    dry_run: bool,
) -> ImportResult:
    """Write the checked rows (each one's action: add, update or unchanged) in one transaction, unless ``dry_run``."""
    changed = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"__stored_{c}")) for c in values)
    action = (
        pl.when(~pl.col("__exists"))
        .then(pl.lit("add"))
        .when(changed)
        .then(pl.lit("update"))
        .otherwise(pl.lit("unchanged"))
    )
    frame = frame.with_columns(action.alias("__action"))
    rows = frame.select(pl.col(ROW).alias("row"), pl.col("__action").alias("action"))
    counts = dict(rows["action"].value_counts().iter_rows())
    result = ImportResult(entity, counts.get("add", 0), counts.get("update", 0), counts.get("unchanged", 0), rows)
    if dry_run:
        return replace(result, dry_run=True)
    columns = [*key, *values]
    names = ", ".join(quote_ident(c) for c in columns)
    with store.transaction() as con:
        inserts = frame.filter(pl.col("__action") == "add").select(columns)
        if inserts.height:
            con.register("__market_new", inserts.to_arrow())
            typed = ", ".join(f"{quote_ident(c)}{_cast(c)}" for c in columns)
            con.execute(f"INSERT INTO {quote_ident(table)} ({names}) SELECT {typed} FROM __market_new")
        updates = frame.filter(pl.col("__action") == "update").select(columns)
        if updates.height:
            con.register("__market_updates", updates.to_arrow())
            sets = ", ".join(f"{quote_ident(c)} = u.{quote_ident(c)}" for c in values)
            where = " AND ".join(f"t.{quote_ident(c)} = u.{quote_ident(c)}{_cast(c)}" for c in key)
            con.execute(f"UPDATE {quote_ident(table)} AS t SET {sets} FROM __market_updates AS u WHERE {where}")
        if inserts.height or updates.height:
            audit.record(con, "import", "price" if table == "asset_price" else "fx_rate", after=_summary(frame))
    return result


# -- deleting ---------------------------------------------------------------------------------------------
def delete_prices(
    store: Store, rows: Source, *, sheet: str | None = None, actor: str | None = None, reason: str | None = None
) -> int:
    """Delete stored prices by key: ``rows`` (a frame, file or records) with ``asset`` and ``time``.

    Every key must name a stored price, once; otherwise one :class:`ValidationError` names each row
    that does not, and nothing is deleted. All are deleted in one transaction with one audit event
    (``delete``: the deleted prices, as they were) by ``actor`` for ``reason``. Returns how many.
    """
    with audit.acting(actor, reason):
        rules = FileRules("prices delete")
        frame = input_frame(rows, entity="prices", required=("asset", "time"), sheet=sheet, action="delete")
        frame = text_column(frame, "asset", rules, required=True)
        frame = time_column(frame, "time", rules).with_columns(pl.col("time").alias("time_index"))
        key, values = ("asset_uid", "time_index"), ("price", "currency", "source")
        with store.connect() as con:
            assets = lookup_keys(con, "asset", frame["asset"]).rename({"key": "asset", "uid": "asset_uid"})
            frame = frame.join(assets, on="asset", how="left", maintain_order="left")
            frame = _existing(con, frame, "asset_price", key, values)
        unknown = pl.col("asset").is_not_null() & pl.col("asset_uid").is_null()
        rules.add(Rule("asset", "asset_exists", "no asset has this unique_identifier or uid", unknown))
        _refuse_missing(rules, frame, ("asset", "time"), "price of this asset", ~unknown)
        rules.enforce(frame, summary="prices delete", outcome="nothing was deleted")
        deleted = frame.select("asset", "asset_uid", "time", *(pl.col(f"__stored_{c}").alias(c) for c in values))
        return _delete(store, frame, "asset_price", key, "price", deleted)


def delete_fx_rates(
    store: Store, rows: Source, *, sheet: str | None = None, actor: str | None = None, reason: str | None = None
) -> int:
    """Delete stored FX rates by key: ``rows`` (a frame, file or records) with ``base``, ``quote`` and ``time``.

    As :func:`delete_prices`: every key must name a stored rate (in the direction it was stored),
    once, or nothing is deleted; one transaction, one audit event. Returns how many.
    """
    with audit.acting(actor, reason):
        rules = FileRules("fx rates delete")
        frame = input_frame(rows, entity="fx rates", required=("base", "quote", "time"), sheet=sheet, action="delete")
        frame = _currency(_currency(frame, "base", rules), "quote", rules)
        frame = time_column(frame, "time", rules).with_columns(
            pl.col("time").alias("time_index"),
            pl.col("base").alias("base_currency"),
            pl.col("quote").alias("quote_currency"),
        )
        key, values = ("time_index", "base_currency", "quote_currency"), ("rate", "source")
        with store.connect() as con:
            frame = _existing(con, frame, "fx_rate", key, values)
        _refuse_missing(rules, frame, ("base", "quote", "time"), "rate of this pair", pl.lit(True))
        rules.enforce(frame, summary="fx rates delete", outcome="nothing was deleted")
        deleted = frame.select("base", "quote", "time", *(pl.col(f"__stored_{c}").alias(c) for c in values))
        return _delete(store, frame, "fx_rate", key, "fx_rate", deleted)


def _refuse_missing(rules: FileRules, frame: pl.DataFrame, given: Sequence[str], what: str, named: pl.Expr) -> None:
    """A key given twice, or naming nothing stored, is refused (at its ``time``)."""
    complete = pl.all_horizontal(pl.col(c).is_not_null() for c in given)
    first = pl.col(ROW).min().over(*given)
    rules.add(
        Rule(
            "time",
            "delete_once",
            pl.lit("given twice; first at row ") + first.cast(pl.String),
            complete & (pl.col(ROW) > first),
            _shown_time(),
        ),
        Rule(
            "time",
            "stored",
            f"no {what} is stored at this time; nothing to delete",
            complete & named & ~pl.col("__exists"),
            _shown_time(),
        ),
    )


def _delete(
    store: Store, frame: pl.DataFrame, table: str, key: Sequence[str], entity_type: str, deleted: pl.DataFrame
) -> int:
    """Delete the rows of ``table`` with ``frame``'s ``key``, in one transaction with one ``delete`` event."""
    with store.transaction() as con:
        con.register("__market_deleted", frame.select(*key).to_arrow())
        try:
            where = " AND ".join(f"t.{quote_ident(c)} = d.{quote_ident(c)}{_cast(c)}" for c in key)
            con.execute(f"DELETE FROM {quote_ident(table)} AS t USING __market_deleted AS d WHERE {where}")
            audit.record(con, "delete", entity_type, before={"deleted": deleted.height, "rows": deleted.to_dicts()})
        finally:
            con.unregister("__market_deleted")
    return deleted.height


# -- reading ----------------------------------------------------------------------------------------------
def read_prices(
    store: Store,
    assets: Sequence[str] | None = None,
    *,
    as_of: datetime | str | None = None,
    history: bool = False,
) -> pl.DataFrame:
    """Each asset's latest stored price (at or before ``as_of`` when given); with ``history``, every one.

    The latest price at or before T is the one a valuation at T uses. ``assets`` (unique identifiers
    or uids) narrows the list; one that names no asset is a :class:`NotFoundError`. Columns
    :data:`PRICE_LIST_COLUMNS`, sorted by asset, then time (oldest first).
    """
    bound = parse_utc(as_of, field="as_of", entity="prices") if as_of is not None else None
    with store.connect() as con:
        uids = None if assets is None else _asset_uids(con, assets)
        return fetch(
            con,
            """
            SELECT a.unique_identifier AS asset, p.asset_uid::VARCHAR AS asset_uid, p.time_index AS time, p.price,
                   p.currency, p.source
            FROM asset_price AS p JOIN asset AS a ON a.uid = p.asset_uid
            WHERE ($bound IS NULL OR p.time_index <= $bound)
              AND ($uids IS NULL OR list_contains($uids::UUID[], p.asset_uid))
            QUALIFY $history OR p.time_index = max(p.time_index) OVER (PARTITION BY p.asset_uid)
            ORDER BY a.unique_identifier, p.time_index
            """,
            {"bound": bound, "uids": uids, "history": history},
        )


def read_fx_rates(
    store: Store,
    currencies: Sequence[str] | None = None,
    *,
    as_of: datetime | str | None = None,
    history: bool = False,
) -> pl.DataFrame:
    """Each pair's latest stored rate (at or before ``as_of`` when given); with ``history``, every one.

    A pair is stored in the direction it was imported; a valuation also uses it inverted.
    ``currencies`` (ISO codes such as ``EUR``) keeps the pairs that have one of them on either side.
    Columns :data:`FX_LIST_COLUMNS`, sorted by base, quote, then time (oldest first).
    """
    bound = parse_utc(as_of, field="as_of", entity="fx rates") if as_of is not None else None
    codes = None if currencies is None else list(currencies)
    for code in codes or ():
        if not isinstance(code, str) or re.fullmatch(CURRENCY_PATTERN, code) is None:
            raise ValidationError(
                [RowError("fx rates", None, "currency", code, CURRENCY_RULE)], summary="1 problem found"
            )
    with store.connect() as con:
        return fetch(
            con,
            """
            SELECT base_currency AS base, quote_currency AS quote, time_index AS time, rate, source FROM fx_rate
            WHERE ($bound IS NULL OR time_index <= $bound)
              AND ($codes IS NULL OR list_contains($codes, base_currency) OR list_contains($codes, quote_currency))
            QUALIFY $history OR time_index = max(time_index) OVER (PARTITION BY base_currency, quote_currency)
            ORDER BY base_currency, quote_currency, time_index
            """,
            {"bound": bound, "codes": codes, "history": history},
        )


def _asset_uids(con: duckdb.DuckDBPyConnection, assets: Sequence[str]) -> list[str]:
    """The uids of ``assets`` (unique identifiers or uids); a :class:`NotFoundError` names every unknown one."""
    given = pl.Series("asset", [str(a) for a in assets], dtype=pl.String)
    found = lookup_keys(con, "asset", given)
    unknown = given.filter(~given.is_in(found["key"].implode())).unique(maintain_order=True).to_list()
    if unknown:
        raise NotFoundError("asset", "unique_identifier or uid", ", ".join(unknown), "see `msm assets list`")
    return found["uid"].to_list()
