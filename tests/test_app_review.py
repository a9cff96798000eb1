"""The builder's Save as draft and the Review page (publish, discard, four-eyes), driven with AppTest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from app_harness import assert_clean, build_demo, copy_db, label, messages, open_page, table

import msm

ALPHA = "example-account-alpha"
AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("app-review") / "demo.duckdb")


@pytest.fixture
def book(tmp_path: Path, book_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MSM_FOUR_EYES", raising=False)
    return copy_db(book_template, tmp_path / "msm.duckdb")


def _draft(store: msm.Store, actor: str = "alice") -> None:
    rows = [{"asset": "BTC", "weight_notional_exposure": 0.9}, {"asset": "SOL", "weight_notional_exposure": 0.1}]
    msm.save_snapshot(store, ALPHA, AT, rows, draft=True, actor=actor, reason="Q3 proposal")


def test_builder_saves_a_draft_that_reads_leave_out(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    at = open_page(monkeypatch, book, "builder")
    at.selectbox(key="builder_account").set_value(ALPHA)
    at.date_input(key="builder_date").set_value(AT.date())
    at.time_input(key="builder_time").set_value(AT.time())
    at.run()
    key = f"builder_grid_{at.session_state['builder_version']}"
    base = len(at.data_editor[0].value)
    rows = [{"target": label(store, "BTC", "asset"), "weight_notional_exposure": 1.0}]
    at.session_state[key] = {"edited_rows": dict(enumerate(rows[:base])), "added_rows": rows[base:], "deleted_rows": []}
    at.run()
    at.button(key="builder_save_draft").click().run()
    assert_clean(at)
    assert any("Saved the draft of example-account-alpha at 2026-07-01 09:30 UTC" in m for m in messages(at, "success"))
    assert msm.read_snapshot(store, ALPHA, at=AT).is_empty
    assert msm.read_snapshot(store, ALPHA, at=AT, include_drafts=True).is_draft
    assert msm.list_drafts(store, ALPHA).height == 1


def test_review_lists_the_draft_with_its_diff_and_publishes_it(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    _draft(store)
    monkeypatch.setenv("MSM_USER", "bob")
    at = open_page(monkeypatch, book, "review")
    assert_clean(at)
    drafts = table(at, "account", "position_set_time", "saved_by")
    assert drafts["account"].tolist() == [ALPHA] and drafts["saved_by"].tolist() == ["alice"]
    assert table(at, "reason", "weight_sum")["reason"].tolist() == ["Q3 proposal"]  # why the author saved it
    diff = at.dataframe[1].value
    assert "SOL" in diff["unique_identifier"].tolist()
    assert any("added" in m and "changed" in m for m in messages(at, "caption"))
    at.text_input(key="review_reason").set_value("checked with the PM").run()
    at.button(key="review_publish").click().run()
    assert_clean(at)
    assert any("Published the draft of example-account-alpha" in m for m in messages(at, "success"))
    assert msm.read_snapshot(store, ALPHA).position_set_time == AT
    event = msm.audit_events(store, action="publish").row(0, named=True)
    assert (event["actor"], event["reason"]) == ("bob", "checked with the PM")
    assert any("No draft waits for review" in m for m in messages(at, "info"))


def test_review_refuses_the_author_with_four_eyes_on(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = msm.Store(book)
    _draft(store)
    monkeypatch.setenv("MSM_USER", "alice")
    monkeypatch.setenv("MSM_FOUR_EYES", "1")
    at = open_page(monkeypatch, book, "review", query={"account": ALPHA})
    assert any("Four-eyes is on" in m for m in messages(at, "caption"))
    at.button(key="review_publish").click().run()
    errors = messages(at, "error")
    assert any("four-eyes" in m and "alice" in m and "another person must publish it" in m for m in errors), errors
    assert msm.read_snapshot(store, ALPHA, at=AT).is_empty  # still a draft
    at.button(key="review_discard").click().run()
    assert_clean(at)
    assert any("Discarded the draft" in m for m in messages(at, "success"))
    assert msm.list_drafts(store).height == 0


def test_review_diff_shows_exposures_as_the_snapshots_comparison_does() -> None:
    from msm_app import ui
    from msm_app.pages import review, snapshots

    def formats(config: dict) -> dict:
        return {k: v.get("type_config", {}).get("format") for k, v in config.items() if isinstance(v, dict)}

    assert formats(review.DIFF_CONFIG) == formats(snapshots.DIFF_CONFIG)
    assert formats(review.DIFF_CONFIG)["weight_notional_exposure_after"] == ui.DIFF_FORMATS["weight_notional_exposure"]
