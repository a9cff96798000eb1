"""The Streamlit workbench driven with AppTest: every page, the builder's whole flow, bad input,
the links between pages (query parameters), errors shown from their attributes, and what a user sees.

Every test runs the real router (``app.py``) against its own copy of a demo database file. What
AppTest cannot do (type into the grid's cells, open the searchable dropdown, see the rendered
page, rerun only the builder's grid fragment) is covered by tests/test_browser.py in headless Chromium.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from app_harness import (
    PAGES,
    ROOT,
    TITLES,
    assert_clean,
    follow,
    label,
    messages,
    open_page,
    page_links,
    table,
)

import msm
import msm_portfolios
from msm.errors import RowError, SnapshotExistsError, ValidationError
from msm_app import links, ui

ALPHA = "example-account-alpha"
BETA = "example-account-beta"
PORTFOLIO = "CRYPTO-MAJORS-EW"
AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_on_the_demo_database(page: str, demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo, page)
    assert_clean(at)
    assert [t.value for t in at.title] == [TITLES[page]]
    assert any(str(demo) in t.value for t in at.text)  # the sidebar names the open database file


def test_overview_counts_and_latest_snapshots(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo, "overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Assets": "3", "Portfolios": "1", "Accounts": "2", "Snapshots": "3", "Target rows": "6"}
    latest = at.dataframe[0].value
    assert sorted(latest["account"]) == [ALPHA, BETA]
    assert latest["weight_sum"].tolist() == pytest.approx([1.0, 1.0]) and latest["residual"].abs().max() < 1e-12


def test_overview_says_which_drafts_wait_for_review(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo, "overview")
    assert not any("for review" in m for m in messages(at, "info")) and "Review the drafts" not in page_links(at)
    store = msm.Store(demo)
    rows = [{"asset": "BTC", "weight_notional_exposure": 1.0}]
    msm.save_snapshot(store, BETA, "2026-07-01T00:00:00Z", rows, draft=True)
    msm.save_snapshot(store, ALPHA, "2026-08-01T00:00:00Z", rows, draft=True)
    at = open_page(monkeypatch, demo, "overview")
    assert_clean(at)
    assert any(
        f"2 drafts wait for review, the oldest: {BETA} at 2026-07-01 00:00 UTC" in m for m in messages(at, "info")
    )
    assert page_links(at)["Review the drafts"][0] == "review"


def test_first_run_offers_the_demo_data_in_one_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "fresh.duckdb"
    at = open_page(monkeypatch, db, "overview")
    assert_clean(at)
    assert any("This database is empty" in m for m in messages(at, "info"))
    next(b for b in at.button if b.label == "Load demo data").click().run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Accounts"] == "3"  # what `msm demo` loads, the nested example's too
    assert msm.read_snapshot(msm.Store(db), ALPHA).positions.height == 2
    assert msm.holdings_history(msm.Store(db), ALPHA).height == 1  # holdings, so Drift has something to show


def _builder(monkeypatch: pytest.MonkeyPatch, db: Path, account: str = ALPHA):
    at = open_page(monkeypatch, db, "builder")
    at.selectbox(key="builder_account").set_value(account)
    at.date_input(key="builder_date").set_value(AT.date())
    at.time_input(key="builder_time").set_value(AT.time())
    at.run()
    return at


def _edit(at, rows: list[dict]) -> None:
    """Set the grid's rows (the edit state a user's typing produces) and rerun."""
    key = f"builder_grid_{at.session_state['builder_version']}"
    base = len(at.data_editor[0].value)
    edited = {i: row for i, row in enumerate(rows[:base])}
    added = rows[base:]
    at.session_state[key] = {"edited_rows": edited, "added_rows": added, "deleted_rows": []}
    at.run()


def test_builder_full_flow(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    at = _builder(monkeypatch, demo)
    assert_clean(at)
    _edit(
        at,
        [
            {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.5},
            {"target": label(store, PORTFOLIO, "portfolio"), "weight_notional_exposure": 0.3, "notes": "core sleeve"},
        ],
    )
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert (
        metrics["Weight sum"] == "80.00%" and metrics["Residual"] == "20.00%" and metrics["Rows with problems"] == "0"
    )
    # the live look-through preview: BTC direct 0.5 plus its share of the 0.3 sleeve, at the snapshot's time
    composition = msm_portfolios.read_composition(store, PORTFOLIO, as_of=AT)
    share = dict(zip(composition["asset"], composition["weight"], strict=False))
    preview = table(at, "asset", "n_sources")
    net = dict(zip(preview["asset"], preview["weight_notional_exposure"], strict=False))
    assert net == pytest.approx({a: (0.5 if a == "BTC" else 0.0) + 0.3 * w for a, w in share.items()})

    at.button(key="builder_save").click().run()
    assert_clean(at)
    assert any(
        "Saved the snapshot of example-account-alpha at 2026-07-01 09:30 UTC (2 rows)" in m
        for m in messages(at, "success")
    )
    saved = msm.read_snapshot(store, ALPHA, at=AT)
    assert saved.source == "workbench"
    stored = zip(saved.positions["unique_identifier"], saved.positions["weight_notional_exposure"], strict=True)
    assert sorted(stored) == [
        ("BTC", 0.5),
        (PORTFOLIO, 0.3),
    ]
    assert saved.positions.filter(pl.col("target_type") == "portfolio")["metadata_json"].to_list() == [
        '{"notes":"core sleeve"}'
    ]
    assert AT in msm.snapshot_history(store, ALPHA)["position_set_time"].to_list()

    # the snapshot is in the Snapshots page's history
    snaps = open_page(monkeypatch, demo, "snapshots")
    snaps.selectbox(key="snapshots_pick").set_value(ALPHA).run()
    assert AT in table(snaps, "position_set_time", "allocation")["position_set_time"].dt.to_pydatetime().tolist()

    # saving again at the same time is refused until the overwrite is confirmed
    _edit(
        at,
        [
            {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.7},
            {"target": label(store, PORTFOLIO, "portfolio"), "weight_notional_exposure": 0.3, "notes": "core sleeve"},
        ],
    )
    at.button(key="builder_save").click().run()
    assert_clean(at)
    assert msm.read_snapshot(store, ALPHA, at=AT).weight_sum == pytest.approx(0.8)  # not yet replaced
    assert [b.label for b in at.button if b.key and b.key.startswith("builder_confirm")] == ["Replace it", "Cancel"]
    at.button(key="builder_confirm_cancel").click().run()
    assert msm.read_snapshot(store, ALPHA, at=AT).weight_sum == pytest.approx(0.8)
    at.button(key="builder_save").click().run()
    at.button(key="builder_confirm_replace").click().run()
    assert_clean(at)
    assert msm.read_snapshot(store, ALPHA, at=AT).weight_sum == pytest.approx(1.0)
    assert any(m.startswith("Replaced the snapshot") for m in messages(at, "success"))


def test_builder_shows_each_rule_on_its_row_and_writes_nothing(
    demo: Path, monkeypatch: pytest.MonkeyPatch, db_contents
) -> None:
    store = msm.Store(demo)
    before = db_contents(store)
    at = _builder(monkeypatch, demo)
    _edit(
        at,
        [
            {
                "target": label(store, "BTC", "asset"),
                "weight_notional_exposure": 0.5,
                "constant_notional_exposure": 1000.0,
            },
            {"target": label(store, PORTFOLIO, "portfolio"), "single_asset_quantity": 3.0},
            {"target": label(store, "ETH", "asset"), "weight_notional_exposure": 0.2, "notes": '{"not": json'},
            {"target": label(store, "SOL", "asset"), "weight_notional_exposure": 0.1},
        ],
    )
    problems = table(at, "row", "check")
    assert problems["row"].tolist() == [1, 2, 3]
    text = dict(zip(problems["row"], problems["check"], strict=False))
    assert "exactly one" in text[1]
    assert "single_asset_quantity" in text[2] and "portfolio" in text[2]
    assert "metadata_json" in text[3]
    assert {m.label: m.value for m in at.metric}["Weight sum"] == "10.00%"  # only the row that passes counts
    assert at.button(key="builder_save").disabled
    assert db_contents(store) == before


def test_builder_warns_about_a_portfolio_without_composition(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    msm.add_portfolio(store, "EMPTY-P", portfolio_name="No composition yet")
    at = _builder(monkeypatch, demo)
    _edit(
        at,
        [
            {"target": label(store, "EMPTY-P", "portfolio"), "weight_notional_exposure": 0.5},
            {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.5},
        ],
    )
    assert_clean(at)
    assert any("EMPTY-P has no composition at or before 2026-07-01 09:30 UTC" in w for w in messages(at, "warning"))
    assert not at.button(key="builder_save").disabled  # intent may be saved before its composition exists


def test_builder_starts_from_the_latest_snapshot(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _builder(monkeypatch, demo)
    at.radio(key="builder_start").set_value("Latest snapshot")
    at.button(key="builder_load").click().run()
    assert_clean(at)
    grid = at.data_editor[0].value
    assert len(grid) == 2 and sorted(grid["weight_notional_exposure"].tolist()) == [0.45, 0.55]
    # the demo's sleeve metadata is kept whole (it is not a plain note)
    assert '{"portfolio_role":"satellite_sleeve"}' in grid["notes"].dropna().str.replace(" ", "").tolist()
    assert {m.label: m.value for m in at.metric}["Weight sum"] == "100.00%"


def test_builder_saves_one_set_to_every_account_of_a_model(
    demo: Path, monkeypatch: pytest.MonkeyPatch, db_contents
) -> None:
    store = msm.Store(demo)
    at = _builder(monkeypatch, demo)
    _edit(at, [{"target": label(store, "BTC", "asset"), "weight_notional_exposure": 1.0}])
    model = "Example Balanced Account Model"
    at.selectbox(key="builder_many_model").set_value(model).run()
    assert sorted(at.multiselect(key=f"builder_many_accounts_{model}").value) == [ALPHA, BETA]
    at.button(key="builder_many_save").click().run()
    assert_clean(at)
    for account in (ALPHA, BETA):
        assert msm.read_snapshot(store, account, at=AT).weight_sum == pytest.approx(1.0)
    # again, without overwrite: refused for both, nothing changed, the refusal shown beside the button
    before = db_contents(store)
    at.button(key="builder_many_save").click().run()
    assert any("snapshot exists" in e for e in messages(at, "error"))
    assert db_contents(store) == before


def test_snapshots_history_one_and_diff(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, demo, "snapshots")
    at.selectbox(key="snapshots_pick").set_value(ALPHA).run()
    assert_clean(at)
    history = table(at, "position_set_time", "allocation")
    assert len(history) == 2
    diff = table(at, "change")
    assert set(diff["change"]) == {"changed"} and sorted(diff["unique_identifier"]) == ["BTC", PORTFOLIO]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Changed"] == "2" and metrics["Added"] == "0"


def test_lookthrough_of_the_demo_snapshot(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    at = open_page(monkeypatch, demo, "lookthrough")
    at.selectbox(key="lookthrough_account").set_value(BETA).run()
    assert_clean(at)
    composition = msm_portfolios.read_composition(store, PORTFOLIO)
    share = dict(zip(composition["asset"], composition["weight"], strict=False))
    net = table(at, "asset", "direct")
    got = dict(zip(net["asset"], net["weight_notional_exposure"], strict=False))
    assert got["BTC"] == pytest.approx(0.6 + 0.4 * share["BTC"])
    assert dict(zip(net["asset"], net["direct"], strict=False))["BTC"] == pytest.approx(0.6)
    rows = table(at, "source", "portfolio_weight")
    assert set(rows["source"]) == {"BTC", PORTFOLIO}
    assert [b.label for b in at.download_button] == ["Download Parquet", "Download CSV"]
    # weights as of the snapshot's own time
    at.radio(key="lookthrough_mode").set_value("the snapshot's time").run()
    assert_clean(at)


def test_reference_data_add_and_refused_delete(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    at = open_page(monkeypatch, demo, "reference")
    at.text_input(key="ref_add_assets_unique_identifier").set_value("ADA")
    at.text_input(key="ref_add_assets_name").set_value("Cardano")
    at.text_area(key="ref_add_assets_metadata_json").set_value('{"sector": "L1"}')
    next(b for b in at.button if b.label == "Add asset").click().run()
    assert_clean(at)
    assert msm.get_asset(store, "ADA")["metadata_json"] == {"sector": "L1"}
    # shown at once: the confirmation, the table and the edit list already hold the new row
    assert "Added asset ADA." in messages(at, "success")
    assert "ADA" in list(at.dataframe[0].value["unique_identifier"])  # the first tab's table: assets
    assert "ADA" in at.selectbox(key="ref_pick_assets").options
    # a bad metadata value is refused with the field named
    at.text_input(key="ref_add_assets_unique_identifier").set_value("DOT")
    at.text_area(key="ref_add_assets_metadata_json").set_value("[1, 2]")
    next(b for b in at.button if b.label == "Add asset").click().run()
    assert any("metadata_json" in e and "must be a JSON object, got an array" in e for e in messages(at, "error"))
    # deleting BTC, which targets and compositions reference, is refused with counts
    at.selectbox(key="ref_pick_assets").set_value("BTC").run()
    at.checkbox(key="ref_del_sure_assets").check().run()
    at.button(key="ref_del_assets").click().run()
    refused = " ".join(messages(at, "error"))
    assert "BTC" in refused and "target_positions" in refused
    assert msm.get_asset(store, "BTC")


def test_reference_bulk_import_previews_then_writes(demo: Path, monkeypatch: pytest.MonkeyPatch, db_contents) -> None:
    store = msm.Store(demo)
    at = open_page(monkeypatch, demo, "reference")
    good = 'unique_identifier,name,metadata_json\nADA,Cardano,\nBTC,Bitcoin (renamed),"{""sector"": ""L1""}"\n'
    at.file_uploader(key="ref_upload_assets").upload("assets.csv", good.encode(), "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "BTC" in refused and "already exists" in refused  # without upsert, an existing key is refused
    before = db_contents(store)
    at.checkbox(key="ref_upsert_assets").check().run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["To add"] == "1" and {m.label: m.value for m in at.metric}[
        "To update"
    ] == "1"
    assert db_contents(store) == before  # the preview writes nothing
    at.button(key="ref_import_assets").click().run()
    assert_clean(at)
    assert any("1 added, 1 updated" in m for m in messages(at, "success"))
    assert (
        msm.get_asset(store, "BTC")["name"] == "Bitcoin (renamed)" and msm.get_asset(store, "ADA")["name"] == "Cardano"
    )
    # a file with bad rows: every row named, nothing written
    bad = "unique_identifier,account_name,is_paper\nz1,,maybe\n"
    at.file_uploader(key="ref_upload_accounts").upload("accounts.csv", bad.encode(), "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "account_name" in refused and "must not be empty" in refused and "maybe" in refused


def test_user_text_is_shown_as_text(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    hostile = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) **bold**"
    msm.add_account(store, "x-1", account_name=hostile)
    msm.add_asset(store, "<b>X</b>", name=hostile)
    for page in PAGES:
        at = open_page(monkeypatch, demo, page)
        assert_clean(at)
        for element in [*at.markdown, *at.caption, *at.info, *at.warning, *at.success]:
            assert "<img" not in element.value and "](javascript" not in element.value, (page, element.value)


def test_a_busy_database_file_gives_a_message_and_a_retry(
    demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(demo)!r})
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        at = open_page(monkeypatch, demo, "builder")
        assert not at.exception
        assert any("The database file is busy" in w for w in messages(at, "warning"))
        assert [b.label for b in at.button if b.key == "busy_retry"] == ["Retry"]
        assert time.monotonic() - started < 30  # a bounded wait, never a hang
    finally:
        holder.kill()
        holder.wait()
    at.button(key="busy_retry").click().run()
    assert_clean(at)


def test_export_writes_parquet_under_the_root_and_refuses_escapes(
    demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    monkeypatch.setenv("MSM_EXPORT_ROOT", str(root))
    at = open_page(monkeypatch, demo, "export")
    at.text_input(key="export_folder").set_value("daily")
    at.checkbox(key="export_expanded").check()
    next(b for b in at.button if b.label == "Export").click().run()
    assert_clean(at)
    assert (root / "daily" / "target_positions").is_dir() and (root / "daily" / "target_exposure").is_dir()
    assert pl.read_parquet(root / "daily" / "target_positions", hive_partitioning=True).height == 6
    assert [b.label for b in at.download_button] == ["Download as zip"]
    for bad in ("../outside", "/etc", ""):
        at.text_input(key="export_folder").set_value(bad)
        next(b for b in at.button if b.label == "Export").click().run()
        assert any("folder" in e for e in messages(at, "error")), bad
    assert not (tmp_path / "outside").exists()


def test_export_of_chosen_accounts_and_dates(demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "exports"
    monkeypatch.setenv("MSM_EXPORT_ROOT", str(root))
    at = open_page(monkeypatch, demo, "export")
    at.multiselect(key="export_accounts").set_value([ALPHA])
    at.date_input(key="export_from").set_value(date(2026, 5, 26))
    next(b for b in at.button if b.label == "Export").click().run()
    assert_clean(at)
    rows = pl.read_parquet(root / "snapshots" / "target_positions", hive_partitioning=True)
    assert set(rows["account"]) == {ALPHA} and rows["time_index"].min() == datetime(2026, 6, 1, tzinfo=UTC)


def test_export_with_the_drift_and_the_drafts(demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "exports"
    monkeypatch.setenv("MSM_EXPORT_ROOT", str(root))
    store = msm.Store(demo)
    rows = [{"asset": "BTC", "weight_notional_exposure": 1.0}]
    draft = msm.save_snapshot(store, ALPHA, "2026-07-01T00:00:00Z", rows, draft=True, overwrite=True)
    at = open_page(monkeypatch, demo, "export")
    at.text_input(key="export_folder").set_value("plain")
    next(b for b in at.button if b.label == "Export").click().run()
    assert_clean(at)
    plain = pl.read_parquet(root / "plain" / "target_positions", hive_partitioning=True)
    assert str(draft.position_set_uid) not in set(plain["position_set_uid"])  # drafts are left out by default
    assert not (root / "plain" / "drift").exists()
    at.text_input(key="export_folder").set_value("full")
    at.checkbox(key="export_drift").check()
    at.checkbox(key="export_drafts").check()
    next(b for b in at.button if b.label == "Export").click().run()
    assert_clean(at)
    full = pl.read_parquet(root / "full" / "target_positions", hive_partitioning=True)
    assert str(draft.position_set_uid) in set(full["position_set_uid"])
    written = {d.removeprefix("full/") for d in at.dataframe[-1].value["dataset"]}
    assert {"drift/", "accounts/", "asset_prices/", "fx_rates/"} <= written  # this book holds nothing: no drift rows
    assert all((root / "full" / name).is_dir() for name in written)


def test_builder_imports_the_grid_from_a_file_and_refuses_a_bad_one(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _builder(monkeypatch, demo)
    good = (
        "asset,portfolio,weight_notional_exposure,metadata_json\n"
        f'BTC,,0.5,\n,{PORTFOLIO},0.5,"{{""notes"": ""sleeve""}}"\n'
    )
    at.file_uploader(key="builder_upload_0").upload("targets.csv", good.encode(), "text/csv").run()
    assert_clean(at)
    grid = at.data_editor[0].value
    assert len(grid) == 2 and grid["notes"].fillna("").tolist() == ["", "sleeve"]
    assert {m.label: m.value for m in at.metric}["Weight sum"] == "100.00%"
    # a file naming an unknown asset is refused whole, with the row; the grid keeps its rows
    version = at.session_state["builder_version"]
    bad = "asset,weight_notional_exposure\nNOPE,0.5\nBTC,x\n"
    at.file_uploader(key=f"builder_upload_{version}").upload("bad.csv", bad.encode(), "text/csv").run()
    refused = " ".join(messages(at, "error"))
    assert "row 1" in refused and "NOPE" in refused and "row 2" in refused and "must be a number" in refused
    assert at.session_state["builder_version"] == version and len(at.data_editor[0].value) == 2
    # the grid exports as the CSV `msm targets save --file` reads
    assert "Export grid as CSV" in [b.label for b in at.download_button]


# -- links between pages: what a page needs travels in the address -------------------------------------------
FIRST, SECOND = "2026-05-25T00:00:00Z", "2026-06-01T00:00:00Z"  # the demo's two snapshots of alpha
FIRST_AT = datetime(2026, 5, 25, tzinfo=UTC)


def test_a_snapshots_link_opens_that_account_and_snapshot_and_leads_on(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo, "snapshots", query={"account": ALPHA, "at": FIRST})
    assert_clean(at)
    assert at.selectbox(key="snapshots_pick").value == ALPHA
    assert at.selectbox(key="snapshots_one").value == FIRST_AT
    assert at.query_params == {"account": ALPHA, "at": FIRST}  # the address is a link to what is shown
    assert page_links(at)["Look through this snapshot"] == ("lookthrough", {"account": ALPHA, "at": FIRST})
    follow(at, "Look through this snapshot")
    assert_clean(at)
    assert [t.value for t in at.title] == ["Look-through"]
    assert at.selectbox(key="lookthrough_account").value == ALPHA
    assert at.selectbox(key="lookthrough_time").value == FIRST_AT
    assert at.query_params == {"account": ALPHA, "at": FIRST, "weights": "now"}
    at.radio(key="lookthrough_mode").set_value("the snapshot's time").run()
    assert at.query_params["weights"] == "position-set"
    at.selectbox(key="lookthrough_time").set_value(datetime(2026, 6, 1, tzinfo=UTC)).run()
    assert at.query_params == {"account": ALPHA, "at": SECOND, "weights": "position-set"}


def test_a_reloaded_lookthrough_link_restores_the_weights_time(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(
        monkeypatch, demo, "lookthrough", query={"account": BETA, "at": FIRST, "weights": "2026-04-15T06:30:00Z"}
    )
    assert_clean(at)
    assert at.radio(key="lookthrough_mode").value == "a chosen time"
    assert at.date_input(key="lookthrough_wdate").value == date(2026, 4, 15)
    assert any("weights as of a chosen time (2026-04-15 06:30 UTC)" in c.value for c in at.caption)
    assert at.query_params["weights"] == "2026-04-15T06:30:00Z"


@pytest.mark.parametrize(
    ("page", "query", "warning"),
    [
        (
            "lookthrough",
            {"at": "2026-05-25 00:00"},
            "The link's `at` = '2026-05-25 00:00' is ignored: has no UTC offset",
        ),
        ("snapshots", {"at": "yesterday"}, "The link's `at` = 'yesterday' is ignored"),
        ("lookthrough", {"weights": "later"}, "The link's `weights` = 'later' is ignored"),
        ("snapshots", {"account": "nobody"}, "The link's account nobody is not in this database"),
        ("builder", {"account": "<b>x</b>"}, "The link's account <b>x</b> is not in this database"),
    ],
)
def test_a_bad_link_is_named_and_the_page_still_opens(
    demo: Path, monkeypatch: pytest.MonkeyPatch, page: str, query: dict[str, str], warning: str
) -> None:
    at = open_page(monkeypatch, demo, page, query=query)
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == [TITLES[page]]
    assert any(warning in w for w in messages(at, "warning")), messages(at, "warning")


def test_the_builder_opens_on_the_linked_account_and_links_to_the_saved_snapshot(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = msm.Store(demo)
    at = open_page(monkeypatch, demo, "builder", query={"account": BETA})
    assert at.selectbox(key="builder_account").value == BETA
    at.date_input(key="builder_date").set_value(AT.date())
    at.time_input(key="builder_time").set_value(AT.time())
    at.run()
    _edit(at, [{"target": label(store, "BTC", "asset"), "weight_notional_exposure": 1.0}])
    at.button(key="builder_save").click().run()
    assert_clean(at)
    assert page_links(at)["Open it in Snapshots"] == ("snapshots", {"account": BETA, "at": "2026-07-01T09:30:00Z"})
    follow(at, "Open it in Snapshots")
    assert_clean(at)
    assert at.selectbox(key="snapshots_pick").value == BETA and at.selectbox(key="snapshots_one").value == AT


def test_a_link_names_only_declared_parameters() -> None:
    assert links.encode("snapshots", account="a", at=FIRST_AT) == {"account": "a", "at": FIRST}
    with pytest.raises(TypeError, match="page 'overview' declares no parameter account"):
        links.encode("overview", account="a")
    assert set(links.PAGES) == set(PAGES) and all((ROOT / p.script).is_file() for p in links.PAGES.values())
    router = (ROOT / "app.py").read_text()
    assert sorted(re.findall(r'links\.page\("(\w+)"\)', router)) == sorted(links.PAGES)  # one line per page


#: The prefix of every session-state key (widget keys included) of each page: a page keeps its own state only.
STATE_PREFIX = {
    "overview": "overview_",
    "builder": "builder_",
    "snapshots": "snapshots_",
    "lookthrough": "lookthrough_",
    "holdings": "holdings_",
    "drift": "drift_",
    "reference": "ref_",
    "export": "export_",
    "marketdata": "marketdata_",
}
_STATE_KEY = re.compile(
    r"""(?:key=|SS\.(?:get|setdefault|pop)\(|session_state\[|session_state\.(?:get|setdefault|pop)\()f?["']([A-Za-z_]+)"""
    r"""|\bSS\.(?!get\b|setdefault\b|pop\b|update\b)([a-z_]+)"""
)


def test_every_table_shows_an_empty_cell_as_a_dash() -> None:
    """Each ``st.dataframe`` of the app says ``placeholder="—"`` (or goes through ``ui.table``): never "None"."""
    bare = []
    for path in sorted((ROOT / "msm_app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "dataframe":
                given = {k.arg: k.value for k in node.keywords}
                if not (isinstance(given.get("placeholder"), ast.Constant) and given["placeholder"].value == "—"):
                    bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, bare


def test_pages_hand_nothing_to_each_other_through_session_state() -> None:
    owners: dict[str, set[str]] = {}
    for name, prefix in STATE_PREFIX.items():
        source = (ROOT / links.PAGES[name].script).read_text()
        keys = {a or b for a, b in _STATE_KEY.findall(source)}
        assert all(k.startswith(prefix) for k in keys), (name, sorted(k for k in keys if not k.startswith(prefix)))
        for key in keys:
            owners.setdefault(key, set()).add(name)
    assert all(len(pages) == 1 for pages in owners.values())
    helpers = "".join((ROOT / "msm_app" / f).read_text() for f in ("ui.py", "grid.py", "charts.py", "links.py"))
    assert {a or b for a, b in _STATE_KEY.findall(helpers)} == {"busy_retry"}


# -- errors are shown from their attributes --------------------------------------------------------------------
class _Shown:
    """Stands in for ``st``: records what ``ui.show_error`` would show."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def error(self, text: str) -> None:
        self.texts.append(text)


def _existing(account: str) -> dict[str, Any]:
    return {
        "account": account,
        "allocation": f"{account}-target",
        "account_target_allocation_uid": None,
        "position_set_time": AT,
        "position_set_uid": None,
    }


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            ValidationError([RowError("target set", 2, "weight", "x", "must be a number")], summary="Bad file: see"),
            ["Bad file: see", "- target set row 2: `weight` = 'x': must be a number"],
        ),
        (
            ValidationError([RowError("asset", None, "metadata_json", [1], "must be a JSON object")]),
            ["1 problem found; nothing was stored", "- asset: `metadata_json` = [1]: must be a JSON object"],
        ),
        (
            SnapshotExistsError.from_rows([_existing(ALPHA), _existing(BETA)]),
            [
                "A snapshot exists at that time for 2 accounts; nothing was written",
                f"- {ALPHA} (allocation {ALPHA}-target) at 2026-07-01 09:30 UTC",
                f"- {BETA} (allocation {BETA}-target) at 2026-07-01 09:30 UTC",
            ],
        ),
        (
            msm.NotFoundError("asset", "unique_identifier", "NOPE"),
            ["asset with unique_identifier 'NOPE' does not exist"],
        ),
    ],
)
def test_errors_are_shown_from_their_fields(error: Exception, shown: list[str]) -> None:
    where = _Shown()
    ui.show_error(error, where=where)
    text = "\n".join(re.sub(r"\\(.)", r"\1", t) for t in where.texts)
    lines = text.splitlines()
    assert lines[: len(shown)] == shown


# -- what a user sees -----------------------------------------------------------------------------------------
def _x_axis(at) -> dict[str, Any]:
    spec = json.loads(next(iter(at.get("vega_lite_chart"))).proto.spec)
    return spec["encoding"]["x"]


def test_the_snapshot_timeline_shows_dates_when_snapshots_are_days_apart(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo, "snapshots", query={"account": ALPHA})  # 2026-05-25 and 2026-06-01
    axis = _x_axis(at)
    assert axis["axis"]["format"] == "%Y-%m-%d" and axis["axis"]["tickCount"] == {"interval": "day", "step": 1}
    assert axis["scale"] == {"type": "utc"}
    store = msm.Store(demo)  # two more snapshots, six hours apart: the axis shows the time of day too
    for hour in (9, 15):
        msm.save_snapshot(
            store, BETA, datetime(2026, 6, 2, hour, tzinfo=UTC), [{"asset": "BTC", "weight_notional_exposure": 1.0}]
        )
    at = open_page(monkeypatch, demo, "snapshots", query={"account": BETA})
    assert _x_axis(at)["axis"]["format"] == "%Y-%m-%d %H:%M" and "tickCount" not in _x_axis(at)["axis"]


def test_the_builder_starts_with_blank_rows_that_are_not_errors(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(demo)
    at = _builder(monkeypatch, demo)
    assert_clean(at)
    assert len(at.data_editor[0].value) == 2 and at.data_editor[0].value.isna().all().all()
    columns = json.loads(at.data_editor[0].proto.columns)
    assert not any(c.get("required") for c in columns.values())  # the grid marks no blank cell as missing
    assert {m.label: m.value for m in at.metric}["Rows with problems"] == "0"
    # once something is typed, a row without a target is named by the checks
    _edit(
        at,
        [{"weight_notional_exposure": 0.5}, {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.5}],
    )
    problems = table(at, "row", "check")
    assert problems["row"].tolist() == [1]


def test_export_names_the_folder_as_the_user_chose_it(
    demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    monkeypatch.setenv("MSM_EXPORT_ROOT", str(root))
    at = open_page(monkeypatch, demo, "export")
    at.text_input(key="export_folder").set_value(" daily ")
    next(b for b in at.button if b.label == "Export").click().run()
    assert_clean(at)
    done = messages(at, "success")
    assert done == [f"Exported 3 snapshots to the folder daily under the export root {root}."]
    datasets = table(at, "dataset", "rows")
    assert datasets["dataset"].tolist() == [
        "daily/target_positions/",
        "daily/portfolio_weights/",
        "daily/assets/",
        "daily/account_holdings/",
    ]
    resolved = str((root / "daily").resolve())
    shown = [*messages(at, "success"), *[t.value for t in at.text], *[c.value for c in at.caption]]
    assert not any(resolved in text for text in shown)  # never the resolved output path


def test_a_snapshot_diff_is_one_frame(demo: Path) -> None:
    store = msm.Store(demo)
    diff = msm.diff_snapshots(store, ALPHA, before=FIRST, after=SECOND)
    frame = diff.to_frame()
    assert frame.columns[0] == "change" and frame.columns[1:] == diff.changed.columns
    assert frame["change"].to_list() == ["changed", "changed"] and frame.height == diff.changed.height
    same = msm.diff_snapshots(store, ALPHA, before=SECOND, after=SECOND).to_frame()
    assert same.height == 0 and same.columns == frame.columns


def test_reference_tables_head_their_columns_with_the_catalogs_labels(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(monkeypatch, demo, "reference")
    headers = [{c: v["label"] for c, v in json.loads(df.proto.columns).items() if "label" in v} for df in at.dataframe]
    accounts = next(h for h in headers if "account_is_active" in h)
    assert accounts["is_paper"] == "Paper account"  # a boolean column too, not only text
    assert accounts["account_is_active"] == "Active"
    assert accounts["metadata_json"] == "Metadata (JSON object)"
    assert accounts["account_group_uid"] == "Account group uid"  # no form field: the name in words
