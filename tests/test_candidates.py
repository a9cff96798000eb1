"""Candidate search: assignable assets and portfolios, matched literally and case-insensitively, paged with a total."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import msm
from msm.errors import ValidationError
from msm.services.candidates import MAX_LIMIT, search_candidates

# ordered by type, then label (case-insensitive), then identifier: "100% Reserve" < "Bitcoin" < ... < "XX"
ALL_BY_TYPE_AND_LABEL = ["PCT", "BTC", "ETH", "SOL", "USD_C", "XX", "CRYPTO-EW", "DEFI-EW", "PLAIN"]
RESULT_COLUMNS = [
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    "unique_identifier",
    "display_label",
    "secondary_label",
]


@dataclass(frozen=True)
class Catalog:
    store: msm.Store
    uids: dict[str, str]

    def uid(self, identifier: str) -> str:
        return self.uids[identifier]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A read-only catalog shared by the module's searches (searches never write)."""
    store = msm.Store(tmp_path_factory.mktemp("candidates") / "msm.duckdb")
    msm.migrate(store)
    rows = [
        msm.add_asset(store, "BTC", name="Bitcoin", ticker="BTC"),
        msm.add_asset(store, "ETH", name="Ether", ticker="ETH"),
        msm.add_asset(store, "SOL", name="Solana", ticker="SOL"),
        msm.add_asset(store, "USD_C", name="USD Coin", ticker="USDC"),
        msm.add_asset(store, "PCT", name="100% Reserve", ticker="PCT"),
        msm.add_asset(store, "XX", ticker="XX"),  # no name: the label falls back to the identifier
        msm.add_portfolio(store, "CRYPTO-EW", portfolio_name="Crypto Majors EW"),
        msm.add_portfolio(store, "DEFI-EW", portfolio_name="DeFi Bitcoin-free basket"),
        msm.add_portfolio(store, "PLAIN"),  # no name
    ]
    return Catalog(store, {r["unique_identifier"]: r["uid"] for r in rows})


def _ids(page: msm.CandidatePage) -> list[str]:
    return page.results["unique_identifier"].to_list()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ALL_BY_TYPE_AND_LABEL),
        ("   ", ALL_BY_TYPE_AND_LABEL),
        ("btc", ["BTC"]),  # identifier and ticker, any case
        ("BITCOIN", ["BTC", "DEFI-EW"]),  # name, any case, assets and portfolios
        ("usdc", ["USD_C"]),  # ticker
        ("sol", ["SOL"]),
        ("crypto", ["CRYPTO-EW"]),
        ("majors", ["CRYPTO-EW"]),  # portfolio name
        ("-ew", ["CRYPTO-EW", "DEFI-EW"]),
        ("%", ["PCT"]),  # literal, not a wildcard
        ("_", ["USD_C"]),  # literal, not a wildcard
        ("d_c", ["USD_C"]),
        ("100%", ["PCT"]),
        ("'; DROP TABLE asset; --", []),
        ("zzz", []),
    ],
)
def test_text_matches_identifier_name_and_ticker(catalog, text: str, expected: list[str]) -> None:
    page = search_candidates(catalog.store, text, limit=100)
    assert _ids(page) == expected
    assert page.count == len(expected)


def test_results_shape_and_labels(catalog) -> None:
    page = search_candidates(catalog.store, "", limit=100)
    assert page.results.columns == RESULT_COLUMNS
    rows = {r["unique_identifier"]: r for r in page.results.iter_rows(named=True)}
    assert rows["BTC"] == {
        "target_type": "asset",
        "target_uid": catalog.uid("BTC"),
        "asset_uid": catalog.uid("BTC"),
        "portfolio_uid": None,
        "unique_identifier": "BTC",
        "display_label": "Bitcoin",
        "secondary_label": "BTC",
    }
    assert rows["CRYPTO-EW"] == {
        "target_type": "portfolio",
        "target_uid": catalog.uid("CRYPTO-EW"),
        "asset_uid": None,
        "portfolio_uid": catalog.uid("CRYPTO-EW"),
        "unique_identifier": "CRYPTO-EW",
        "display_label": "Crypto Majors EW",
        "secondary_label": None,
    }
    assert rows["XX"]["display_label"] == "XX"
    assert rows["PLAIN"]["display_label"] == "PLAIN"
    doc = page.to_dict()
    assert doc["count"] == 9 and len(doc["results"]) == 9 and list(doc["results"][0]) == RESULT_COLUMNS


@pytest.mark.parametrize(
    ("target_type", "expected"),
    [
        ("all", 9),
        ("asset", 6),
        ("portfolio", 3),
        ("ASSET", 6),
        (" portfolio ", 3),
        ("", 9),
        (None, 9),
    ],
)
def test_type_filter(catalog, target_type: Any, expected: int) -> None:
    page = search_candidates(catalog.store, target_type=target_type, limit=100)
    assert page.count == expected
    kind = (target_type or "all").strip().lower()
    if kind != "all":
        assert set(page.results["target_type"]) == {kind}


def test_type_filter_with_text(catalog) -> None:
    assert _ids(search_candidates(catalog.store, "bitcoin", target_type="portfolio")) == ["DEFI-EW"]
    assert _ids(search_candidates(catalog.store, "bitcoin", target_type="asset")) == ["BTC"]


def test_paging_keeps_the_total_and_walks_every_result_once(catalog) -> None:
    everything = _ids(search_candidates(catalog.store, limit=100))
    seen = []
    for offset in range(0, 12, 2):
        page = search_candidates(catalog.store, limit=2, offset=offset)
        assert page.count == 9
        assert (page.limit, page.offset) == (2, offset)
        assert page.results.height == min(2, max(0, 9 - offset))
        seen += _ids(page)
    assert seen == everything
    beyond = search_candidates(catalog.store, limit=5, offset=50)
    assert beyond.count == 9 and beyond.results.height == 0 and beyond.results.columns == RESULT_COLUMNS


def test_the_default_limit_is_25(seeded) -> None:
    seeded.store.execute(
        "INSERT INTO asset (uid, unique_identifier)"
        " SELECT gen_random_uuid(), 'Z' || lpad(i::VARCHAR, 3, '0') FROM range(40) t(i)"
    )
    page = search_candidates(seeded.store, "z")
    assert page.count == 40
    assert page.results.height == 25
    assert search_candidates(seeded.store, "z", limit=MAX_LIMIT).results.height == 40


@pytest.mark.parametrize(
    ("kwargs", "errors"),
    [
        (dict(target_type="fund"), [("target_type", "'fund': must be one of: all, asset, portfolio")]),
        (dict(limit=0), [("limit", "0: must be a whole number from 1 to 1000")]),
        (dict(limit=MAX_LIMIT + 1), [("limit", "1001: must be a whole number from 1 to 1000")]),
        (dict(limit=2.5), [("limit", "2.5: must be a whole number from 1 to 1000")]),
        (dict(limit="10"), [("limit", "'10': must be a whole number from 1 to 1000")]),
        (dict(offset=-1), [("offset", "-1: must be a whole number >= 0")]),
        (dict(offset=None), [("offset", "None: must be a whole number >= 0")]),
        (dict(target_type="x", limit=-5, offset=-1), [("limit", "-5"), ("offset", "-1"), ("target_type", "'x'")]),
    ],
    ids=[
        "bad type",
        "zero limit",
        "limit too large",
        "fractional limit",
        "text limit",
        "negative offset",
        "no offset",
        "all at once",
    ],
)
def test_bad_type_limit_offset(seeded, kwargs: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    with pytest.raises(ValidationError) as info:
        search_candidates(seeded.store, "b", **kwargs)
    assert [e.field for e in info.value.errors] == [f for f, _ in errors]
    message = str(info.value)
    for field, text in errors:
        assert f"candidate search: `{field}` = {text}" in message


def test_empty_database_has_no_candidates(store) -> None:
    page = search_candidates(store, "")
    assert page.count == 0 and page.results.height == 0
