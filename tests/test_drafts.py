"""Drafts, publishing and four-eyes (design section 13): services, audit events, reads that leave drafts out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
from tests.conftest import Seeded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)
W = "weight_notional_exposure"


def _rows(*weights: float) -> list[dict]:
    return [{"asset": a, W: w} for a, w in zip(("BTC", "ETH", "SOL"), weights, strict=False)]


def _events(store: msm.Store, action: str | None = None) -> list[dict]:
    frame = msm.audit_events(store, entity_type="position_set", action=action).reverse()
    return [
        {
            **e,
            "before_json": json.loads(e["before_json"] or "null"),
            "after_json": json.loads(e["after_json"] or "null"),
        }
        for e in frame.iter_rows(named=True)
    ]


def test_a_draft_is_invisible_to_reads_until_published(seeded: Seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, _rows(0.5, 0.5), actor="alice")
    draft = msm.save_snapshot(store, "alpha", T1, _rows(0.9), draft=True, actor="alice")
    assert draft.is_draft and draft.status == "draft" and draft.position_set_time == T1
    assert msm.read_snapshot(store, "alpha").position_set_time == T0
    assert msm.read_snapshot(store, "alpha", at=T1).is_empty
    assert msm.read_snapshot(store, "alpha", include_drafts=True).position_set_uid == draft.position_set_uid
    assert msm.snapshot_history(store, "alpha")["status"].to_list() == ["published"]
    assert msm.snapshot_history(store, "alpha", include_drafts=True)["status"].to_list() == ["draft", "published"]
    assert set(msm.read_target_rows(store)["position_set_uid"]) == {msm.read_snapshot(store, "alpha").position_set_uid}
    assert msm.read_target_rows(store, include_drafts=True).height == 3
    assert msm.read_target_rows(store, [draft.position_set_uid]).height == 1  # chosen by uid: read
    unseen = msm.diff_snapshots(store, "alpha", before=T0, after=T1)
    assert unseen.after.position_set_time == T0 and unseen.unchanged == 2
    seen = msm.diff_snapshots(store, "alpha", before=T0, after=T1, include_drafts=True)
    assert seen.after.is_draft and seen.removed.height == 1 and seen.changed.height == 1
    drafts = msm.list_drafts(store)
    assert drafts.select("account", "allocation", "rows", "saved_by").rows() == [("alpha", "alpha-main", 1, "alice")]
    assert drafts["position_set_time"].to_list() == [T1]

    published = msm.publish_snapshot(store, "alpha", T1, actor="bob", reason="reviewed")
    assert published.status == "published" and published.position_set_uid == draft.position_set_uid
    assert msm.read_snapshot(store, "alpha").position_set_time == T1
    assert msm.list_drafts(store).height == 0
    (event,) = _events(store, "publish")
    assert (event["actor"], event["reason"], event["account"]) == ("bob", "reviewed", "alpha")
    assert event["before_json"]["status"] == "draft" and event["before_json"]["saved_by"] == ["alice"]
    assert event["after_json"]["status"] == "published" and event["after_json"]["rows"] == 1


def test_save_events_say_the_status(seeded: Seeded) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5), draft=True, actor="alice")
    msm.save_snapshot(seeded.store, "alpha", T1, _rows(0.5), actor="alice")
    assert [e["after_json"]["status"] for e in _events(seeded.store, "save")] == ["draft", "published"]


def test_a_draft_is_listed_with_the_reason_of_its_last_save(seeded: Seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T1, _rows(0.9), draft=True, actor="alice", reason="Q3 proposal")
    assert msm.list_drafts(store).select("saved_by", "reason").rows() == [("alice", "Q3 proposal")]
    msm.save_snapshot(store, "alpha", T1, _rows(0.8), draft=True, overwrite=True, actor="carol")
    assert msm.list_drafts(store).select("saved_by", "reason").rows() == [("carol", None)]  # the last save gave none


def test_four_eyes_refuses_every_actor_who_saved_the_draft(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T1, _rows(0.5), draft=True, actor="alice")
    msm.save_snapshot(store, "alpha", T1, _rows(0.6), draft=True, overwrite=True, actor="carol")
    monkeypatch.setenv("MSM_FOUR_EYES", "1")
    for who in ("alice", "carol"):
        with pytest.raises(msm.FourEyesError) as refused:
            msm.publish_snapshot(store, "alpha", T1, actor=who)
        assert refused.value.actor == who and refused.value.saved_by == ["alice", "carol"]
        assert f"four-eyes: '{who}' saved the draft of account 'alpha' at 2026-02-01T00:00:00Z" in str(refused.value)
        assert "another person must publish it" in str(refused.value)
        assert refused.value.to_dict()["error"] == "FourEyesError"
    assert msm.read_snapshot(store, "alpha").is_empty and not _events(store, "publish")
    # the setting passed explicitly wins over the environment
    assert msm.publish_snapshot(store, "alpha", T1, actor="alice", four_eyes=False).status == "published"


def test_without_four_eyes_the_author_may_publish(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSM_FOUR_EYES", raising=False)
    msm.save_snapshot(seeded.store, "alpha", T1, _rows(0.5), draft=True, actor="alice")
    with pytest.raises(msm.FourEyesError):
        msm.publish_snapshot(seeded.store, "alpha", T1, actor="alice", four_eyes=True)
    assert msm.publish_snapshot(seeded.store, "alpha", T1, actor="alice").status == "published"


def test_discard_deletes_the_draft_and_keeps_its_rows(seeded: Seeded) -> None:
    store = seeded.store
    draft = msm.save_snapshot(store, "alpha", T1, _rows(0.5, 0.2), draft=True, actor="alice")
    gone = msm.discard_draft(store, "alpha", T1, actor="alice", reason="wrong model")
    assert gone["position_set_uid"] == draft.position_set_uid and gone["rows"] == 2 and gone["kept_as_version"] == 1
    assert store.query("SELECT count(*) AS n FROM position_set")["n"][0] == 0
    kept = store.query(
        "SELECT count(*) AS n FROM target_positions_replaced WHERE position_set_uid = ?::UUID", [draft.position_set_uid]
    )
    assert kept["n"][0] == 2
    (event,) = _events(store, "discard")
    assert event["reason"] == "wrong model" and event["after_json"] is None
    assert event["before_json"]["status"] == "draft" and event["before_json"]["kept_as_version"] == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            msm.publish_snapshot,
            msm.NotADraftError,
            r"cannot publish the snapshot of account 'alpha' at 2026-01-01T00:00:00Z: it is published, not a draft",
        ),
        (
            msm.discard_draft,
            msm.NotADraftError,
            r"cannot discard the snapshot of account 'alpha' at 2026-01-01T00:00:00Z: it is published, not a draft",
        ),
    ],
)
def test_a_published_set_cannot_be_published_or_discarded(seeded: Seeded, call, error, message) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5))
    before = seeded.store.query("SELECT count(*) AS n FROM audit_event")["n"][0]
    with pytest.raises(error, match=message) as refused:
        call(seeded.store, "alpha", T0)
    assert refused.value.status == "published" and refused.value.to_dict()["refused"] in ("publish", "discard")
    assert seeded.store.query("SELECT count(*) AS n FROM audit_event")["n"][0] == before


def test_publish_with_no_snapshot_at_that_time_says_where_to_look(seeded: Seeded) -> None:
    with pytest.raises(
        msm.NotFoundError, match=r"draft with account 'alpha' at '2026-02-01T00:00:00Z'.*targets drafts"
    ):
        msm.publish_snapshot(seeded.store, "alpha", T1)


@pytest.mark.parametrize(
    ("first_draft", "then_draft", "message"),
    [
        (True, False, r"row 1.*`status` = 'published':.* is a draft; a published save cannot overwrite it"),
        (False, True, r"row 1.*`status` = 'draft':.* is published; a draft cannot overwrite it"),
    ],
)
def test_an_overwrite_keeps_the_status(seeded: Seeded, first_draft: bool, then_draft: bool, message: str) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5), draft=first_draft)
    with pytest.raises(msm.ValidationError, match=message):
        msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.1), overwrite=True, draft=then_draft)
    snap = msm.read_snapshot(seeded.store, "alpha", include_drafts=True)
    assert snap.weight_sum == 0.5 and snap.is_draft == first_draft


def test_a_draft_cannot_share_its_time_with_a_published_set(seeded: Seeded) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5))
    with pytest.raises(msm.SnapshotExistsError):
        msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.1), draft=True)


def test_a_draft_overwritten_and_restored_stays_a_draft(seeded: Seeded) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5), draft=True)
    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.1), draft=True, overwrite=True)
    restored = msm.restore_snapshot(seeded.store, "alpha", T0, version=1, include_drafts=True)
    assert restored.is_draft and restored.weight_sum == 0.5
    assert msm.snapshot_versions(seeded.store, "alpha", T0, include_drafts=True)["version"].to_list() == [1, 2]


def test_diff_of_a_draft_against_the_latest_published_set(seeded: Seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T1, _rows(0.5, 0.5), draft=True)
    first = msm.diff_draft(store, "alpha", T1)
    assert first.before.is_empty and first.added.height == 2 and first.removed.height == 0
    msm.publish_snapshot(store, "alpha", T1)
    msm.save_snapshot(store, "alpha", T1 + timedelta(days=1), _rows(0.5, 0.3, 0.2), draft=True)
    diff = msm.diff_draft(store, "alpha", T1 + timedelta(days=1))
    assert diff.before.position_set_time == T1 and diff.after.is_draft
    assert diff.added["unique_identifier"].to_list() == ["SOL"]
    assert diff.changed["unique_identifier"].to_list() == ["ETH"] and diff.unchanged == 1


def test_save_snapshots_saves_many_drafts_at_once(seeded: Seeded) -> None:
    frame = pl.DataFrame(
        {"account": ["alpha", "alpha"], "position_set_time": [T0, T1], "asset": ["BTC", "ETH"], W: [0.5, 0.4]}
    )
    written = msm.save_snapshots(seeded.store, frame, draft=True, actor="alice")
    assert written.height == 2
    assert msm.list_drafts(seeded.store, "alpha")["position_set_time"].to_list() == [T0, T1]
    assert msm.read_snapshot(seeded.store, "alpha").is_empty


def test_overview_lists_published_snapshots_only(seeded: Seeded) -> None:
    from msm.services.overview import latest_snapshots

    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5))
    msm.save_snapshot(seeded.store, "alpha", T1, _rows(0.9), draft=True)
    assert latest_snapshots(seeded.store)["position_set_time"].to_list() == [T0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_reads_never_see_a_draft_unless_asked(seeded: Seeded, sets: list[tuple[int, bool]]) -> None:
    store = seeded.store
    store.execute("DELETE FROM target_positions")
    store.execute("DELETE FROM position_set")
    for day, draft in sets:
        msm.save_snapshot(store, "alpha", T0 + timedelta(days=day), _rows(0.1 * (day + 1)), draft=draft)
    published = sorted(T0 + timedelta(days=d) for d, draft in sets if not draft)
    everything = sorted(T0 + timedelta(days=d) for d, _ in sets)
    latest = msm.read_snapshot(store, "alpha")
    assert latest.position_set_time == (published[-1] if published else None) and not latest.is_draft
    assert sorted(msm.snapshot_history(store, "alpha")["position_set_time"]) == published
    assert sorted(msm.snapshot_history(store, "alpha", include_drafts=True)["position_set_time"]) == everything
    assert sorted(set(msm.read_target_rows(store)["time_index"])) == published
    assert sorted(set(msm.read_target_rows(store, include_drafts=True)["time_index"])) == everything
    for when in everything:
        exact = msm.read_snapshot(store, "alpha", at=when)
        assert exact.is_empty == (when not in published)
        assert not exact.is_draft
        as_of = msm.read_snapshot(store, "alpha", as_of=when)
        assert as_of.is_empty or as_of.position_set_time in published
    assert msm.list_drafts(store).height == len(everything) - len(published)


def test_export_writes_drafts_only_when_asked(seeded: Seeded, tmp_path) -> None:
    from msm.services.export import export_snapshots

    msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.5))
    msm.save_snapshot(seeded.store, "alpha", T1, _rows(0.9, 0.1), draft=True)
    assert export_snapshots(seeded.store, tmp_path / "published").snapshots == 1
    every = export_snapshots(seeded.store, tmp_path / "every", include_drafts=True)
    assert every.snapshots == 2 and every.datasets["target_positions"] == 3


def test_drift_and_rebalance_read_drafts_only_when_asked(tmp_path) -> None:
    """Alpha of the demo with a newer draft of 100% BTC: drift and rebalance read it only when asked."""
    import msm_portfolios
    from msm_cli.main import main as msm_main

    db = tmp_path / "demo.duckdb"
    assert msm_main(["--db", str(db), "demo"]) == 0
    store, alpha, as_of = msm.Store(db), "example-account-alpha", "2026-06-03T00:00:00Z"
    published = msm.read_snapshot(store, alpha).position_set_time
    msm.save_snapshot(
        store, alpha, "2026-06-01T12:00:00Z", [{"asset": "BTC", "weight_notional_exposure": 1.0}], draft=True
    )
    weights = msm_portfolios.duckdb_weights_source(store)

    def btc_target(result: msm.Drift) -> float:
        return result.positions.filter(pl.col("asset") == "BTC")["target_weight"].item()

    seen = msm.account_drift(store, [alpha], weights=weights, as_of=as_of)
    assert seen.accounts["position_set_time"].item() == published and btc_target(seen) < 1.0
    asked = msm.account_drift(store, [alpha], weights=weights, as_of=as_of, include_drafts=True)
    assert btc_target(asked) == pytest.approx(1.0)
    orders = msm.rebalance(store, [alpha], weights=weights, as_of=as_of).orders
    drafted = msm.rebalance(store, [alpha], weights=weights, as_of=as_of, include_drafts=True).orders
    assert orders.filter(pl.col("asset") == "SOL")["target_weight"].item() > 0  # the published set holds SOL
    assert drafted.filter(pl.col("asset") == "SOL")["target_weight"].item() == 0.0  # the draft does not
