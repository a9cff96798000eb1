"""Every write the app makes takes an optional reason (``ui.reason``) that goes to the audit trail, driven with AppTest.

One case per kind of write: type a reason in the write's box, press its button, then every audit
event the write recorded carries that reason, as the app's actor. An empty box records no reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from app_harness import assert_clean, build_demo, copy_db, label, open_page
from streamlit.testing.v1 import AppTest

import msm
from msm_app import ui

ALPHA = "example-account-alpha"
AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
FIRST = "2026-05-25T00:00:00Z"  # the demo's first snapshot of alpha
WHY = "  the PM asked, ticket 42  "  # typed with spaces around: recorded stripped
ACTOR = "app-analyst"


@pytest.fixture(scope="module")
def book_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("app-reasons") / "demo.duckdb")


@pytest.fixture
def book(tmp_path: Path, book_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MSM_USER", ACTOR)
    monkeypatch.delenv("MSM_FOUR_EYES", raising=False)
    return copy_db(book_template, tmp_path / "msm.duckdb")


# -- each write, driven as a user would: set up, type the reason, press the button ----------------------------------
def _builder(mp: pytest.MonkeyPatch, db: Path, weight: float = 1.0) -> AppTest:
    """The builder on alpha at :data:`AT`, with one BTC row in the grid."""
    at = open_page(mp, db, "builder")
    at.selectbox(key="builder_account").set_value(ALPHA)
    at.date_input(key="builder_date").set_value(AT.date())
    at.time_input(key="builder_time").set_value(AT.time())
    at.run()
    key = f"builder_grid_{at.session_state['builder_version']}"
    row = {"target": label(msm.Store(db), "BTC", "asset"), "weight_notional_exposure": weight}
    at.session_state[key] = {"edited_rows": {0: row}, "added_rows": [], "deleted_rows": []}
    return at.run()


def _save(button: str) -> Callable[[pytest.MonkeyPatch, Path, str], AppTest]:
    def drive(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
        at = _builder(mp, db)
        at.text_input(key="builder_reason").set_value(reason)
        return at.button(key=button).click().run()

    return drive


def _replace(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    msm.save_snapshot(msm.Store(db), ALPHA, AT, [{"asset": "BTC", "weight_notional_exposure": 0.5}], actor="bob")
    at = _builder(mp, db)
    at.button(key="builder_save").click().run()  # refused: a snapshot exists; the dialog asks
    at.text_input(key="builder_replace_reason").set_value(reason)
    return at.button(key="builder_confirm_replace").click().run()


def _many(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = _builder(mp, db)
    model = "Example Balanced Account Model"
    at.selectbox(key="builder_many_model").set_value(model).run()
    at.text_input(key="builder_many_reason").set_value(reason)
    return at.button(key="builder_many_save").click().run()


def _add(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = open_page(mp, db, "reference")
    at.text_input(key="ref_add_assets_unique_identifier").set_value("ADA")
    at.text_input(key="ref_add_assets_reason").set_value(reason)
    return next(b for b in at.button if b.label == "Add asset").click().run()


def _edit(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = open_page(mp, db, "reference")
    at.selectbox(key="ref_pick_accounts").set_value(ALPHA).run()
    at.text_input(key=f"ref_edit_accounts_account_name_{ALPHA}").set_value("Alpha, renamed")
    at.text_input(key="ref_edit_accounts_reason").set_value(reason)
    return next(b for b in at.button if b.form_id == "ref_edit_accounts").click().run()


def _delete(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    msm.add_asset(msm.Store(db), "ADA", actor="bob")
    at = open_page(mp, db, "reference")
    at.selectbox(key="ref_pick_assets").set_value("ADA").run()
    at.checkbox(key="ref_del_sure_assets").check().run()
    at.text_input(key="ref_del_assets_reason").set_value(reason)
    return at.button(key="ref_del_assets").click().run()


def _bulk(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = open_page(mp, db, "reference")
    csv = b"unique_identifier,name\nADA,Cardano\nDOT,Polkadot\n"
    at.file_uploader(key="ref_upload_assets").upload("assets.csv", csv, "text/csv").run()
    at.checkbox(key="ref_upsert_assets").check().run()  # the page reruns on the file after the import
    at.text_input(key="ref_import_assets_reason").set_value(reason)
    return at.button(key="ref_import_assets").click().run()


def _composition(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = open_page(mp, db, "reference")
    at.selectbox(key="ref_comp_portfolio").set_value("CRYPTO-MAJORS-EW").run()
    at.date_input(key="ref_comp_date").set_value(date(2026, 7, 1))
    at.time_input(key="ref_comp_time").set_value(time(0, 0))
    at.session_state["ref_comp_grid"] = {
        "edited_rows": {0: {"asset": "BTC", "weight": 0.5}},
        "added_rows": [{"asset": "ETH", "weight": 0.5}],
        "deleted_rows": [],
    }
    at.run()
    at.text_input(key="ref_comp_reason").set_value(reason)
    return at.button(key="ref_comp_save").click().run()


def _holdings(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    at = open_page(mp, db, "holdings")
    at.date_input(key="holdings_date").set_value(date(2026, 6, 3)).run()
    at.file_uploader(key="holdings_upload").upload(
        "holdings.csv", f"account,asset,quantity\n{ALPHA},BTC,6\n".encode(), "text/csv"
    ).run()
    at.text_input(key="holdings_reason").set_value(reason)
    return at.button(key="holdings_write").click().run()


def _restore(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
    store = msm.Store(db)
    rows = [{"asset": "BTC", "weight_notional_exposure": 0.9}]
    msm.save_snapshot(store, ALPHA, FIRST, rows, overwrite=True, actor="bob")
    at = open_page(mp, db, "snapshots", query={"account": ALPHA, "at": FIRST})
    at.text_input(key="snapshots_reason").set_value(reason)
    return at.button(key="snapshots_restore").click().run()


def _review(button: str) -> Callable[[pytest.MonkeyPatch, Path, str], AppTest]:
    def drive(mp: pytest.MonkeyPatch, db: Path, reason: str) -> AppTest:
        rows = [{"asset": "BTC", "weight_notional_exposure": 1.0}]
        msm.save_snapshot(msm.Store(db), ALPHA, AT, rows, draft=True, actor="bob")
        at = open_page(mp, db, "review")
        at.text_input(key="review_reason").set_value(reason)
        return at.button(key=button).click().run()

    return drive


#: Each kind of write: how the app makes it, and the (action, entity type) of every event it records.
WRITES = {
    "builder save": (_save("builder_save"), {("save", "position_set")}),
    "builder save as draft": (_save("builder_save_draft"), {("save", "position_set")}),
    "builder replace dialog": (_replace, {("overwrite", "position_set")}),
    "builder save to many accounts": (_many, {("save", "position_set")}),
    "reference add": (_add, {("add", "asset")}),
    "reference edit": (_edit, {("update", "account")}),
    "reference delete": (_delete, {("delete", "asset")}),
    "reference bulk import": (_bulk, {("add", "asset")}),
    "composition": (_composition, {("save", "composition")}),
    "holdings import": (_holdings, {("save", "holdings_set")}),
    "snapshot restore": (_restore, {("restore", "position_set")}),
    "review publish": (_review("review_publish"), {("publish", "position_set")}),
    "review discard": (_review("review_discard"), {("discard", "position_set")}),
}


def _new_events(store: msm.Store, before: set[str]) -> list[dict]:
    return [e for e in msm.audit_events(store).to_dicts() if e["uid"] not in before]


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize(("typed", "recorded"), [(WHY, WHY.strip()), ("   ", None)], ids=["reason", "blank"])
def test_every_write_records_the_reason_typed_beside_it(
    write: str, typed: str, recorded: str | None, book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = msm.Store(book)
    drive, kinds = WRITES[write]
    before = set(msm.audit_events(store)["uid"].to_list())
    at = drive(monkeypatch, book, typed)
    assert_clean(at)
    events = [e for e in _new_events(store, before) if e["actor"] == ACTOR]
    assert events, f"{write}: no audit event recorded"
    assert {(e["action"], e["entity_type"]) for e in events} <= kinds
    assert {e["reason"] for e in events} == {recorded}


def test_the_replace_dialog_carries_on_the_reason_typed_before_saving(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    msm.save_snapshot(msm.Store(book), ALPHA, AT, [{"asset": "BTC", "weight_notional_exposure": 0.5}], actor="bob")
    at = _builder(monkeypatch, book)
    at.text_input(key="builder_reason").set_value("new quarter")
    at.button(key="builder_save").click().run()
    assert at.text_input(key="builder_replace_reason").value == "new quarter"
    at.button(key="builder_confirm_replace").click().run()
    assert_clean(at)
    event = msm.audit_events(msm.Store(book), action="overwrite").row(0, named=True)
    assert (event["actor"], event["reason"]) == (ACTOR, "new quarter")


def test_loading_the_demo_data_records_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSM_USER", ACTOR)
    db = tmp_path / "fresh.duckdb"
    at = open_page(monkeypatch, db, "overview")
    at.text_input(key="overview_reason").set_value("a first look")
    next(b for b in at.button if b.label == "Load demo data").click().run()
    assert_clean(at)
    events = msm.audit_events(msm.Store(db))
    assert events.height > 10 and set(events["reason"].to_list()) == {"a first look"}
    assert set(events["actor"].to_list()) == {ACTOR}


def test_every_reason_box_is_the_shared_one(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The boxes on the pages are ``ui.reason``'s: one label, its length limit the audit trail's."""
    at = _builder(monkeypatch, book)
    boxes = [w for w in at.text_input if w.key and w.key.endswith("_reason")]
    assert {w.key for w in boxes} == {"builder_reason", "builder_many_reason"}
    assert {w.label for w in boxes} == {ui.REASON_LABEL}
    assert {w.proto.max_chars for w in boxes} == {msm.audit.MAX_REASON}


def test_an_edit_writes_only_the_fields_changed_and_clears_an_emptied_one(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = msm.Store(book)
    msm.update_asset(store, "BTC", ticker="XBT", actor="bob")
    at = open_page(monkeypatch, book, "reference")
    at.selectbox(key="ref_pick_assets").set_value("BTC").run()
    at.text_input(key="ref_edit_assets_ticker_BTC").set_value("")  # BTC is referenced by targets and compositions
    next(b for b in at.button if b.form_id == "ref_edit_assets").click().run()
    assert_clean(at)
    assert msm.get_asset(store, "BTC")["ticker"] is None
    event = msm.audit_events(store, action="update", entity_type="asset").row(0, named=True)
    assert event["actor"] == ACTOR and '"ticker":"XBT"' in event["before_json"].replace(" ", "")
