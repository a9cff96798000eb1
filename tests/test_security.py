"""Hostile input is data (issue 10, item 5): SQL-injection text, markup and oversized uploads.

What else this item covers lives beside the code it tests: export folders that escape the export
root, absolute paths and symlinks (tests/test_export.py::test_export_folder_must_stay_inside_the_root),
query parameters (tests/test_store.py::test_query_parameters_are_values_never_sql), and a name with
``<img src=x onerror=...>`` and a Markdown ``javascript:`` link rendered as text in a real browser
(tests/test_browser.py::test_html_in_a_name_is_shown_as_text).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_harness import assert_clean, messages, open_page

import msm
import msm_portfolios

INJECTION = [
    "'; DROP TABLE asset; --",
    "x' OR '1'='1",
    "Robert'); DELETE FROM account; --",
    '"; DROP TABLE "target_positions"; --',
    "%' UNION SELECT uid, unique_identifier FROM account --",
    "_%",
    "\\'; SELECT 1; --",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1)) **bold** $x$",
    "Ω ≈ 東京 \u202e",
]


def _counts(store: msm.Store) -> dict[str, int]:
    return dict(msm.table_counts(store).iter_rows())


@pytest.mark.parametrize("text", INJECTION)
def test_hostile_text_is_stored_searched_and_read_back_as_data(demo: Path, text: str) -> None:
    store = msm.Store(demo)
    before = _counts(store)
    asset = msm.add_asset(store, text, name=text, ticker=text, asset_type=text, metadata_json={"note": text})
    msm.add_portfolio(store, "P-" + text, portfolio_name=text)
    msm.import_reference(store, "account_groups", [{"group_name": text, "group_description": text}])
    msm.add_account(store, "acc-" + text, account_name=text, group=text)
    msm.add_allocation_model(store, "model-" + text)
    msm.add_allocation(store, "alloc-" + text, account="acc-" + text, model="model-" + text, display_name=text)
    snap = msm.save_snapshot(
        store,
        "acc-" + text,
        "2026-07-01T00:00:00Z",
        [{"asset": text, "weight_notional_exposure": 1.0, "metadata_json": {"notes": text}}],
    )
    # every value reads back exactly as given
    stored = msm.get_asset(store, text)
    assert (stored["uid"], stored["name"], stored["ticker"], stored["asset_type"], stored["metadata_json"]) == (
        asset["uid"],
        text,
        text,
        text,
        {"note": text},
    )
    assert msm.get_account(store, "acc-" + text)["account_name"] == text
    assert msm.get_account_group(store, text)["group_description"] == text
    assert snap.positions["unique_identifier"].to_list() == [text]
    assert msm.read_snapshot(store, "acc-" + text).positions["metadata_json"].to_list() == [
        f'{{"notes": {__import__("json").dumps(text)}}}'
    ]
    # searching for it finds it (and only by its text), and nothing was dropped or deleted
    found = msm.search_candidates(store, text).results["unique_identifier"].to_list()
    assert text in found
    after = _counts(store)
    assert after["asset"] == before["asset"] + 1 and after["account"] == before["account"] + 1
    assert after["target_positions"] == before["target_positions"] + 1


@pytest.mark.parametrize("text", INJECTION[:5])
def test_hostile_text_in_searches_matches_nothing_it_does_not_contain(demo: Path, text: str) -> None:
    store = msm.Store(demo)
    before = _counts(store)
    assert msm.search_candidates(store, text).results.height == 0
    assert _counts(store) == before


def test_the_app_search_and_forms_take_hostile_text_as_data(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    at = open_page(monkeypatch, demo, "reference")
    at.text_input(key="ref_search_assets").set_value(INJECTION[0]).run()
    assert_clean(at)
    assert at.dataframe[0].value.shape[0] == 0  # searched as text: nothing matches it
    at.text_input(key="ref_search_assets").set_value("").run()
    at.text_input(key="ref_add_assets_unique_identifier").set_value(INJECTION[1])
    at.text_input(key="ref_add_assets_name").set_value(INJECTION[7])
    next(b for b in at.button if b.label == "Add asset").click().run()
    assert_clean(at)
    assert msm.get_asset(store, INJECTION[1])["name"] == INJECTION[7]
    assert INJECTION[1] in list(at.dataframe[0].value["unique_identifier"])
    assert _counts(store)["account"] == 2  # the demo's accounts are all still there


def test_an_upload_over_the_limit_is_refused_before_it_is_read(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import msm_app.ui

    monkeypatch.setattr(msm_app.ui, "MAX_UPLOAD_BYTES", 64)
    at = open_page(monkeypatch, demo, "reference")
    garbage = b"\x00\xff not a csv at all " * 10  # parsing it would give a reader error; the size check comes first
    at.file_uploader(key="ref_upload_assets").upload("huge.csv", garbage, "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "huge.csv is 200 bytes; the limit is 64. Nothing was read." in refused
    assert "could not be read" not in refused
    assert msm_portfolios  # the package the app writes compositions through is importable beside it
