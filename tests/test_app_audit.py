"""The Audit page, driven with AppTest on a copy of the demo database, and the app's writes recorded as its actor."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from app_harness import assert_clean, build_demo, copy_db, messages, open_page, page_links, table

import msm

ALPHA = "example-account-alpha"


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("app-audit") / "demo.duckdb")


@pytest.fixture
def book(tmp_path: Path, book_template: Path) -> Path:
    return copy_db(book_template, tmp_path / "msm.duckdb")


def test_audit_page_lists_events_and_filters_by_account_actor_and_action(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = msm.Store(book)
    msm.update_account(store, ALPHA, account_name="Alpha, renamed", actor="alice", reason="the client asked")
    at = open_page(monkeypatch, book, "audit", query={"account": ALPHA})
    assert_clean(at)
    events = table(at, "event_time", "actor", "action", "entity_type", "account")
    assert len(events) > 1 and set(events["account"]) == {ALPHA}
    assert at.query_params["account"] == ALPHA
    at.text_input(key="audit_actor").set_value("alice").run()
    assert_clean(at)
    events = table(at, "actor", "action")
    assert events["actor"].tolist() == ["alice"] and events["action"].tolist() == ["update"]
    assert table(at, "what")["what"].tolist() == [ALPHA]  # what the event is about, as `msm audit` names it
    assert any("the client asked" in m for m in messages(at, "markdown"))
    before, after = (j.value for j in at.json)
    assert '"account_name": "Alpha, renamed"' in after.replace('":"', '": "') or "Alpha, renamed" in after
    assert "Alpha, renamed" not in before
    at.selectbox(key="audit_action").set_value("delete").run()
    assert_clean(at)
    assert any("No change matches" in m for m in messages(at, "info"))


def test_audit_page_filters_by_time(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(monkeypatch, book, "audit")
    assert_clean(at)
    assert len(table(at, "event_time")) > 0
    at.date_input(key="audit_until").set_value(date.today() - timedelta(days=1)).run()
    assert_clean(at)
    assert any("No change matches" in m for m in messages(at, "info"))
    at.date_input(key="audit_until").set_value(None).run()
    at.date_input(key="audit_since").set_value(date.today()).run()
    assert_clean(at)
    assert len(table(at, "event_time")) > 0
    at.date_input(key="audit_since").set_value(date(2000, 1, 1)).run()
    at.date_input(key="audit_until").set_value(date(2000, 1, 2)).run()
    assert_clean(at)
    assert any("No change matches" in m for m in messages(at, "info"))


def test_a_write_from_the_app_is_recorded_as_the_apps_actor(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSM_USER", "app-analyst")
    at = open_page(monkeypatch, book, "holdings")
    at.date_input(key="holdings_date").set_value(date(2026, 6, 3)).run()
    at.file_uploader(key="holdings_upload").upload(
        "holdings.csv", f"account,asset,quantity\n{ALPHA},BTC,6\n".encode(), "text/csv"
    ).run()
    at.button(key="holdings_write").click().run()
    assert_clean(at)
    (event,) = msm.audit_events(msm.Store(book), entity_type="holdings_set").to_dicts()
    assert (event["actor"], event["action"], event["account"]) == ("app-analyst", "save", ALPHA)


def test_snapshots_page_lists_replaced_versions_and_restores_one(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSM_USER", "app-analyst")
    store = msm.Store(book)
    first = "2026-05-25T00:00:00Z"  # the demo's first snapshot of alpha
    original = msm.read_snapshot(store, ALPHA, at=first).positions
    at = open_page(monkeypatch, book, "snapshots", query={"account": ALPHA, "at": first})
    assert_clean(at)
    assert any("never overwritten" in m for m in messages(at, "caption"))
    assert page_links(at)["Audit trail of this account"] == ("audit", {"account": ALPHA})
    btc = original.filter(original["unique_identifier"] == "BTC").select("asset_uid", "weight_notional_exposure")
    msm.save_snapshot(store, ALPHA, first, btc.with_columns(weight_notional_exposure=0.9), overwrite=True, actor="bob")
    at = open_page(monkeypatch, book, "snapshots", query={"account": ALPHA, "at": first})
    assert_clean(at)
    versions = table(at, "version", "replaced_by")
    assert versions["version"].tolist() == [1] and versions["replaced_by"].tolist() == ["bob"]
    at.text_input(key="snapshots_reason").set_value("back to the demo targets").run()
    at.button(key="snapshots_restore").click().run()
    assert_clean(at)
    assert any("Restored version 1" in m and "kept as version 2" in m for m in messages(at, "success"))
    assert msm.read_snapshot(store, ALPHA, at=first).positions.equals(original)
    (event,) = msm.audit_events(store, action="restore").to_dicts()
    assert (event["actor"], event["reason"], event["account"]) == ("app-analyst", "back to the demo targets", ALPHA)
