"""Assignable targets: assets and portfolios an analyst can put in a target set.

A case-insensitive substring search over unique identifier, name and ticker (assets) or unique
identifier and name (portfolios), filtered by type, paginated, with the total count before
paging. The user's text is a query parameter, matched literally (``%`` and ``_`` are not
wildcards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from msm.errors import RowError, ValidationError
from msm.store.connection import Store, fetch

__all__ = ["CANDIDATE_TYPES", "CandidatePage", "search_candidates"]

CANDIDATE_TYPES = ("all", "asset", "portfolio")
MAX_LIMIT = 1000

_CANDIDATES = """
WITH candidates AS (
    SELECT 'asset' AS target_type, uid::VARCHAR AS target_uid, uid::VARCHAR AS asset_uid,
           NULL::VARCHAR AS portfolio_uid,
           unique_identifier, coalesce(name, unique_identifier) AS display_label, ticker AS secondary_label,
           lower(concat_ws(' ', unique_identifier, name, ticker)) AS haystack
    FROM asset
    UNION ALL
    SELECT 'portfolio', uid::VARCHAR, NULL, uid::VARCHAR,
           unique_identifier, coalesce(portfolio_name, unique_identifier), NULL,
           lower(concat_ws(' ', unique_identifier, portfolio_name))
    FROM portfolio
)
SELECT target_type, target_uid, asset_uid, portfolio_uid, unique_identifier, display_label, secondary_label
FROM candidates
WHERE contains(haystack, lower($text)) AND ($type = 'all' OR target_type = $type)
"""


@dataclass(frozen=True)
class CandidatePage:
    """One page of a candidate search: the matches of this page and the number of all matches."""

    count: int  # every match, before paging
    results: pl.DataFrame
    limit: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        """``{"count", "results"}``, JSON-ready (``msm candidates --format json``)."""
        return {"count": self.count, "results": self.results.to_dicts()}


def search_candidates(
    store: Store, text: str = "", *, target_type: str = "all", limit: int = 25, offset: int = 0
) -> CandidatePage:
    """Assets and portfolios matching ``text``, ordered by type, label and identifier.

    >>> from msm.store import Store, migrate
    >>> from msm.services.registry import add_asset, add_portfolio
    >>> store = Store(":memory:"); _ = migrate(store)
    >>> _ = add_asset(store, "BTC", name="Bitcoin", ticker="BTC")
    >>> _ = add_portfolio(store, "CRYPTO-EW", portfolio_name="Crypto EW")
    >>> page = search_candidates(store, "crypto")
    >>> page.count, page.results["unique_identifier"].to_list()
    (1, ['CRYPTO-EW'])
    """
    kind = (target_type or "all").strip().lower()
    errors = []
    if kind not in CANDIDATE_TYPES:
        errors.append(("target_type", target_type, f"must be one of: {', '.join(CANDIDATE_TYPES)}"))
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors.append(("limit", limit, f"must be a whole number from 1 to {MAX_LIMIT}"))
    if not isinstance(offset, int) or offset < 0:
        errors.append(("offset", offset, "must be a whole number >= 0"))
    if errors:
        raise ValidationError([RowError("candidate search", None, f, v, r) for f, v, r in errors])
    params = {"text": (text or "").strip(), "type": kind}
    with store.connect() as con:
        ((count,),) = con.execute(f"SELECT count(*) FROM ({_CANDIDATES})", params).fetchall()
        page = fetch(
            con,
            f"{_CANDIDATES} ORDER BY target_type, lower(display_label), unique_identifier, target_uid"
            " LIMIT $limit OFFSET $offset",
            {**params, "limit": limit, "offset": offset},
        )
    return CandidatePage(count=int(count), results=page, limit=limit, offset=offset)
