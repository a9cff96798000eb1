"""What a database holds, at a glance: rows per table and the latest snapshot of each account.

>>> from msm.store import Store, migrate
>>> store = Store(":memory:"); _ = migrate(store)
>>> table_counts(store).filter(pl.col("table") == "asset").row(0)
('asset', 0)
"""

from __future__ import annotations

from typing import Any

import polars as pl

from msm.store.connection import Store, fetch, quote_ident

__all__ = ["latest_snapshots", "market_data_summary", "table_counts"]


def table_counts(store: Store) -> pl.DataFrame:
    """Rows in every table of the database (``table``, ``rows``), by table name.

    Every table is counted, those of ``msm_portfolios`` too, without core naming them. DuckDB's
    ``estimated_size`` is exact for tables that were not deleted from, so this counts for real.
    """
    with store.connect() as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal ORDER BY table_name"
            ).fetchall()
        ]
        if not names:
            return pl.DataFrame(schema={"table": pl.String, "rows": pl.Int64})
        # Table names come from the catalog, never from a user; each is quoted as an identifier.
        union = " UNION ALL ".join(f'SELECT ? AS "table", count(*) AS rows FROM {quote_ident(n)}' for n in names)
        frame = fetch(con, union, names)
    return frame.with_columns(pl.col("rows").cast(pl.Int64)).sort("table")


def latest_snapshots(store: Store, *, limit: int | None = None) -> pl.DataFrame:
    """The latest snapshot of every account (over its active allocations), newest first.

    Columns ``account``, ``account_name``, ``allocation``, ``position_set_uid``,
    ``position_set_time``, ``rows``, ``weight_sum``, ``residual`` (``1 - weight_sum``, never
    hidden), ``source``. Accounts without a published snapshot are not listed (drafts are not read).
    """
    sql = """
        WITH ranked AS (
            SELECT p.uid, p.position_set_time, p.source, al.unique_identifier AS allocation,
                   a.unique_identifier AS account,
                   a.account_name,
                   row_number() OVER (PARTITION BY a.uid ORDER BY p.position_set_time DESC, p.uid DESC) AS rank
            FROM position_set AS p
            JOIN account_target_allocation AS al ON al.uid = p.account_target_allocation_uid AND al.is_active
            JOIN account AS a ON a.uid = al.account_uid
            WHERE p.status = 'published'  -- drafts are on the Review page
        )
        SELECT r.account, r.account_name, r.allocation, r.uid::VARCHAR AS position_set_uid, r.position_set_time,
               count(t.position_set_uid) AS rows, coalesce(sum(t.weight_notional_exposure), 0.0) AS weight_sum,
               1.0 - coalesce(sum(t.weight_notional_exposure), 0.0) AS residual, r.source
        FROM ranked AS r
        LEFT JOIN target_positions AS t ON t.position_set_uid = r.uid AND t.time_index = r.position_set_time
        WHERE r.rank = 1
        GROUP BY ALL
        ORDER BY r.position_set_time DESC, r.account
        LIMIT ?
    """
    return store.query(sql, [limit])


def market_data_summary(store: Store) -> dict[str, Any]:
    """How much market data there is and how fresh: ``{"assets", "latest_price", "pairs", "latest_rate"}``.

    ``assets``: assets with at least one price; ``pairs``: currency pairs with at least one rate (in
    the direction stored); the latest times are ``None`` while there is none.
    """
    with store.connect() as con:
        summary = fetch(
            con,
            """
            SELECT (SELECT count(DISTINCT asset_uid) FROM asset_price) AS assets,
                   (SELECT max(time_index) FROM asset_price) AS latest_price,
                   (SELECT count(*) FROM (SELECT DISTINCT base_currency, quote_currency FROM fx_rate)) AS pairs,
                   (SELECT max(time_index) FROM fx_rate) AS latest_rate
            """,
        )
    return summary.row(0, named=True)
