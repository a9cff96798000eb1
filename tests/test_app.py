"""The Streamlit workbench driven with AppTest: every page, the builder's whole flow, bad input.

Every test runs the real router (``app.py``) against its own copy of a demo database file. What
AppTest cannot do (type into the grid's cells, open the searchable dropdown, see the rendered
page) is covered by tests/test_browser.py in headless Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from app_harness import (
    PAGES,
    TITLES,
    assert_clean,
    label,
    messages,
    open_page,
    table,
)

import msm
import msm_portfolios

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


def test_first_run_offers_the_demo_data_in_one_click(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "fresh.duckdb"
    at = open_page(monkeypatch, db, "overview")
    assert_clean(at)
    assert any("This database is empty" in m for m in messages(at, "info"))
    next(b for b in at.button if b.label == "Load demo data").click().run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Accounts"] == "2"
    assert msm.read_snapshot(msm.Store(db), ALPHA).positions.height == 2


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
    share = dict(zip(composition["asset"], composition["weight"]))
    preview = table(at, "asset", "n_sources")
    net = dict(zip(preview["asset"], preview["weight_notional_exposure"]))
    assert net == pytest.approx({a: (0.5 if a == "BTC" else 0.0) + 0.3 * w for a, w in share.items()})

    at.button(key="builder_save").click().run()
    assert_clean(at)
    assert any(
        "Saved the snapshot of example-account-alpha at 2026-07-01 09:30 UTC (2 rows)" in m
        for m in messages(at, "success")
    )
    saved = msm.read_snapshot(store, ALPHA, at=AT)
    assert saved.source == "workbench"
    assert sorted(zip(saved.positions["unique_identifier"], saved.positions["weight_notional_exposure"])) == [
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
    text = dict(zip(problems["row"], problems["check"]))
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
    share = dict(zip(composition["asset"], composition["weight"]))
    net = table(at, "asset", "direct")
    got = dict(zip(net["asset"], net["weight_notional_exposure"]))
    assert got["BTC"] == pytest.approx(0.6 + 0.4 * share["BTC"])
    assert dict(zip(net["asset"], net["direct"]))["BTC"] == pytest.approx(0.6)
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


def test_builder_imports_the_grid_from_a_file_and_refuses_a_bad_one(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _builder(monkeypatch, demo)
    good = f'asset,portfolio,weight_notional_exposure,metadata_json\nBTC,,0.5,\n,{PORTFOLIO},0.5,"{{""notes"": ""sleeve""}}"\n'
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
