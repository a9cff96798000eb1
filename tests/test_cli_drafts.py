"""``msm targets save --draft``, ``drafts``, ``publish``, ``discard`` and ``--include-drafts`` on reads."""

from __future__ import annotations

from pathlib import Path

import pytest

import msm
from tests.cli_harness import Cli, write_rows
from tests.conftest import Seeded

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-02-01T00:00:00Z"
W = "weight_notional_exposure"


@pytest.fixture
def cli(seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("MSM_FOUR_EYES", raising=False)
    runner = Cli(Path(str(seeded.store.path)))
    runner.ok("init")
    runner.ok(
        "targets",
        "save",
        "alpha",
        "--at",
        T0,
        "--file",
        str(write_rows(tmp_path / "a.csv", [{"asset": "BTC", W: 0.5}])),
    )
    return runner


def _save_draft(cli: Cli, tmp: Path, *, who: str = "alice") -> None:
    rows = write_rows(tmp / "d.csv", [{"asset": "BTC", W: 0.4}, {"asset": "ETH", W: 0.4}])
    out = cli.ok("targets", "save", "alpha", "--at", T1, "--file", str(rows), "--draft", "--as", who).out
    assert "saved draft of account 'alpha' at 2026-02-01T00:00:00Z" in out
    assert "reads leave it out until `msm targets publish alpha --at" in out


def test_a_draft_is_left_out_of_reads_unless_asked(cli: Cli, tmp_path: Path) -> None:
    _save_draft(cli, tmp_path)
    assert cli.ok("targets", "show", "alpha", "--format", "json").json()["position_set_time"] == T0
    shown = cli.ok("targets", "show", "alpha", "--include-drafts", "--format", "json").json()
    assert (shown["position_set_time"], shown["status"]) == (T1, "draft")
    assert "draft at 2026-02-01T00:00:00Z" in cli.ok("targets", "show", "alpha", "--include-drafts").out
    history = cli.ok("targets", "history", "alpha", "--format", "json").json()["snapshots"]
    assert [s["status"] for s in history] == ["published"]
    history = cli.ok("targets", "history", "alpha", "--include-drafts", "--format", "json").json()["snapshots"]
    assert [s["status"] for s in history] == ["draft", "published"]
    assert "status" in cli.ok("targets", "history", "alpha", "--include-drafts").out
    diff = cli.ok("targets", "diff", "alpha", "--from", T0, "--to", T1, "--include-drafts", "--format", "json").json()
    assert len(diff["added"]) == 1 and len(diff["changed"]) == 1
    listed = cli.ok("targets", "drafts", "--format", "json").json()["drafts"]
    assert [(d["account"], d["rows"], d["saved_by"]) for d in listed] == [("alpha", 2, "alice")]
    assert "1 draft, oldest first" in cli.ok("targets", "drafts", "--account", "alpha").out


def test_publish_with_four_eyes_and_discard(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save_draft(cli, tmp_path)
    cli.fails(
        "targets",
        "publish",
        "alpha",
        "--at",
        T1,
        "--as",
        "alice",
        "--four-eyes",
        match=r"four-eyes: 'alice' saved the draft of account 'alpha' at 2026-02-01T00:00:00Z.*another person",
    )
    monkeypatch.setenv("MSM_FOUR_EYES", "1")
    cli.fails("targets", "publish", "alpha", "--at", T1, "--as", "alice", match="four-eyes")
    out = cli.ok("targets", "publish", "alpha", "--at", T1, "--as", "bob", "--reason", "checked").out
    assert "published the draft of account 'alpha' at 2026-02-01T00:00:00Z" in out
    assert cli.ok("targets", "show", "alpha", "--format", "json").json()["position_set_time"] == T1
    event = msm.audit_events(cli.store, action="publish").row(0, named=True)
    assert (event["actor"], event["reason"]) == ("bob", "checked")
    cli.fails("targets", "publish", "alpha", "--at", T1, "--as", "carol", match="it is published, not a draft")
    cli.fails("targets", "discard", "alpha", "--at", T0, match="cannot discard .* it is published, not a draft")


def test_discard_keeps_the_rows(cli: Cli, tmp_path: Path) -> None:
    _save_draft(cli, tmp_path)
    out = cli.ok("targets", "discard", "alpha", "--at", T1, "--reason", "wrong").out
    assert "discarded the draft of account 'alpha' at 2026-02-01T00:00:00Z (2 rows kept as version 1)" in out
    assert cli.ok("targets", "drafts", "--format", "json").json() == {"drafts": []}
    cli.fails("targets", "discard", "alpha", "--at", T1, match=r"draft with account 'alpha' at .* does not exist")


def test_a_published_save_over_a_draft_is_refused(cli: Cli, tmp_path: Path) -> None:
    _save_draft(cli, tmp_path)
    rows = write_rows(tmp_path / "p.csv", [{"asset": "BTC", W: 0.1}])
    cli.fails(
        "targets",
        "save",
        "alpha",
        "--at",
        T1,
        "--file",
        str(rows),
        "--overwrite",
        match="is a draft; a published save cannot overwrite it",
    )
