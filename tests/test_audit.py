"""The audit trail (issue 19): every write appends its events in its own transaction, overwrites keep the
replaced rows, a restore gives them back byte for byte, and the command line says who and why."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from msm import audit
from tests.cli_harness import Cli, contents, write_rows

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_TEXT = "2026-01-01T00:00:00Z"


def events(store: msm.Store, **filters: Any) -> list[dict[str, Any]]:
    """The events (oldest first), JSON sides parsed."""
    rows = msm.audit_events(store, **filters).reverse().to_dicts()
    for row in rows:
        for side in ("before_json", "after_json"):
            row[side] = json.loads(row[side]) if row[side] is not None else None
    return rows


def stored_rows(store: msm.Store, set_uid: str) -> bytes:
    """A set's target rows as Parquet bytes (every column as stored, in key order)."""
    arrow = store.query(
        "SELECT * FROM target_positions WHERE position_set_uid = ?::UUID ORDER BY target_type, target_uid", [set_uid]
    ).to_arrow()
    sink = io.BytesIO()
    pq.write_table(arrow, sink)
    return sink.getvalue()


def _book(seeded) -> None:
    """The seeded registry with the portfolio tables and CRYPTO-EW's composition at T0."""
    msm.migrate(seeded.store, msm_portfolios.MIGRATIONS)
    msm_portfolios.save_composition(seeded.store, "CRYPTO-EW", T0, {"BTC": 0.5, "ETH": 0.5})


@pytest.fixture
def book(seeded_with):
    return seeded_with("audit-book", _book)[0]


@pytest.fixture
def store(book) -> msm.Store:
    return book.store


def _rows(*weights: float) -> list[dict[str, Any]]:
    names = ("BTC", "ETH", "SOL")
    return [{"asset": a, "weight_notional_exposure": w} for a, w in zip(names, weights, strict=False)]


# -- actor and reason ---------------------------------------------------------------------------------
def test_actor_is_explicit_else_msm_user_else_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSM_USER", "env-user")
    assert audit.resolve_actor("given") == "given"
    assert audit.resolve_actor() == "env-user"
    with audit.acting("outer", "because"):
        assert audit.current() == audit.Acting("outer", "because")
        with audit.acting(reason="inner reason"):  # an inner service keeps the caller's actor
            assert audit.current() == audit.Acting("outer", "inner reason")
    monkeypatch.setenv("MSM_USER", "")
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "os-user")
    assert audit.resolve_actor() == "os-user"


def test_with_nobody_known_reads_work_and_writes_are_refused(store: msm.Store, monkeypatch) -> None:
    monkeypatch.setenv("MSM_USER", "")

    def nobody() -> str:
        raise OSError("no user name")

    monkeypatch.setattr(audit.getpass, "getuser", nobody)
    cli = Cli(Path(store.path))
    before = contents(store)
    assert "BTC" in cli.ok("assets", "list").out
    cli.fails("assets", "add", "NEW", match=r"`actor`: nobody is known to record this write as: give --as NAME")
    assert contents(store) == before
    cli.ok("assets", "add", "NEW", "--as", "alice")


@pytest.mark.parametrize(
    ("actor", "reason", "message"),
    [
        ("", None, r"`actor` = '': must not be blank; give --as NAME"),
        ("   ", None, r"`actor` = '   ': must not be blank"),
        ("x" * 201, None, r"`actor` = 'x+\.\.\.x+' \(201 characters\): is longer than 200 characters"),
        ("alice", "  ", r"`reason` = '  ': must not be blank when given; leave it out instead"),
        ("alice", "r" * 2001, r"`reason` = 'r+\.\.\.r+' \(2001 characters\): is longer than 2000"),
    ],
)
def test_a_bad_actor_or_reason_is_refused_and_nothing_is_written(
    store: msm.Store, actor: str, reason: str | None, message: str
) -> None:
    before = contents(store)
    with pytest.raises(msm.ValidationError, match=message):
        msm.add_asset(store, "NEW", actor=actor, reason=reason)
    assert contents(store) == before


# -- every write path -----------------------------------------------------------------------------------
def test_registry_add_update_delete_record_the_row_before_and_after(store: msm.Store) -> None:
    msm.add_asset(store, "DOGE", name="Doge", actor="alice", reason="listing")
    msm.update_asset(store, "DOGE", name="Dogecoin", actor="bob")
    msm.delete_asset(store, "DOGE", actor="carol", reason="delisted")
    added, updated, deleted = events(store, entity_type="asset")[-3:]
    assert (added["actor"], added["action"], added["reason"]) == ("alice", "add", "listing")
    assert added["before_json"] is None and added["after_json"]["name"] == "Doge"
    assert (updated["actor"], updated["action"]) == ("bob", "update")
    assert (updated["before_json"]["name"], updated["after_json"]["name"]) == ("Doge", "Dogecoin")
    assert (deleted["actor"], deleted["action"], deleted["reason"]) == ("carol", "delete", "delisted")
    assert deleted["before_json"]["name"] == "Dogecoin" and deleted["after_json"] is None
    assert added["entity_uid"] == updated["entity_uid"] == deleted["entity_uid"]


def test_a_bulk_import_is_one_event_per_row_written_in_one_statement(store: msm.Store) -> None:
    n = len(events(store))
    msm.import_reference(store, "assets", [{"unique_identifier": f"N{i}"} for i in range(500)], actor="loader")
    msm.import_reference(
        store,
        "assets",
        [{"unique_identifier": "N1", "name": "one"}, {"unique_identifier": "N2"}, {"unique_identifier": "BTC"}],
        upsert=True,
        reason="names",
    )
    new = events(store)[n:]
    assert [e["action"] for e in new].count("add") == 500 and {e["actor"] for e in new[:500]} == {"loader"}
    (update,) = new[500:]  # N2 and BTC are unchanged: no event
    assert update["action"] == "update" and update["reason"] == "names"
    assert (update["before_json"]["name"], update["after_json"]["name"]) == (None, "one")


def test_accounts_and_allocations_carry_their_account(store: msm.Store) -> None:
    msm.add_account(store, "beta", account_name="Beta")
    msm.add_allocation(store, "beta-main", account="beta", model="balanced")
    beta = msm.get_account(store, "beta")["uid"]
    assert [(e["entity_type"], e["account_uid"]) for e in events(store, account="beta")] == [
        ("account", beta),
        ("allocation", beta),
    ]


def test_snapshot_save_and_overwrite_keep_the_old_rows(store: msm.Store) -> None:
    first = msm.save_snapshot(store, "alpha", T0, _rows(0.5, 0.3), source="v1", actor="alice")
    old = stored_rows(store, first.position_set_uid)
    msm.save_snapshot(store, "alpha", T0, _rows(0.1), overwrite=True, actor="bob", reason="risk off")
    save, overwrite = events(store, entity_type="position_set")
    assert (save["action"], save["actor"], save["after_json"]["rows"]) == ("save", "alice", 2)
    assert (overwrite["action"], overwrite["actor"], overwrite["reason"]) == ("overwrite", "bob", "risk off")
    assert overwrite["before_json"] == {"kept_as_version": 1, "rows": 2, "weight_sum": 0.8, "source": "v1"}
    assert overwrite["after_json"]["rows"] == 1 and overwrite["account"] == "alpha"
    versions = msm.snapshot_versions(store, "alpha", T0)
    assert versions.select("version", "replaced_by", "rows", "source").rows() == [(1, "bob", 2, "v1")]
    kept = store.query(
        "SELECT * EXCLUDE (version, replaced_at, replaced_by, set_source, set_metadata_json) "
        "FROM target_positions_replaced ORDER BY target_type, target_uid"
    ).to_arrow()
    sink = io.BytesIO()
    pq.write_table(kept, sink)
    assert sink.getvalue() == old


def test_overwrite_then_restore_gives_back_the_original_rows_byte_for_byte(store: msm.Store) -> None:
    rows = [
        {"asset": "BTC", "weight_notional_exposure": 0.1 / 3, "metadata_json": {"b": [1, 2.5], "a": "x"}},
        {"portfolio": "CRYPTO-EW", "constant_notional_exposure": 1e6},
        {"asset": "ETH", "single_asset_quantity": 3.0},
    ]
    first = msm.save_snapshot(store, "alpha", T0, rows, source="analyst", metadata_json={"note": "q1"})
    original = stored_rows(store, first.position_set_uid)
    set_row = store.query("SELECT source, metadata_json::VARCHAR FROM position_set").rows()
    msm.save_snapshot(store, "alpha", T0, _rows(0.9), overwrite=True, source="other")
    restored = msm.restore_snapshot(store, "alpha", T0, version=1, actor="carol", reason="undo")
    assert restored.position_set_uid == first.position_set_uid
    assert stored_rows(store, first.position_set_uid) == original
    assert store.query("SELECT source, metadata_json::VARCHAR FROM position_set").rows() == set_row
    assert msm.snapshot_versions(store, "alpha", T0)["version"].to_list() == [1, 2]  # the restore kept "other"
    last = events(store, entity_type="position_set")[-1]
    assert (last["action"], last["actor"], last["reason"]) == ("restore", "carol", "undo")
    assert last["before_json"]["kept_as_version"] == 2 and last["after_json"]["rows"] == 3


def test_restore_of_an_unknown_version_or_time_says_what_exists(store: msm.Store) -> None:
    msm.save_snapshot(store, "alpha", T0, _rows(0.5))
    with pytest.raises(msm.NotFoundError, match=r"version '1'.*msm targets versions alpha --at 2026-01-01T00:00:00Z"):
        msm.restore_snapshot(store, "alpha", T0, version=1)
    with pytest.raises(msm.NotFoundError, match=r"msm targets history alpha"):
        msm.snapshot_versions(store, "alpha", "2030-01-01T00:00:00Z")


def test_deleting_a_snapshot_keeps_its_rows_and_records_each_level(store: msm.Store) -> None:
    snap = msm.save_snapshot(store, "alpha", T0, _rows(0.5, 0.2))
    msm.delete_position_set(store, snap.position_set_uid, actor="dora", reason="mistake")
    rows_gone, set_gone = events(store, action="delete")
    assert rows_gone["before_json"] == {
        "position_set_time": "2026-01-01 00:00:00+00",
        "target_rows": 2,
        "kept_as_version": 1,
    }
    assert set_gone["before_json"]["uid"] == snap.position_set_uid and set_gone["after_json"] is None
    assert {e["actor"] for e in (rows_gone, set_gone)} == {"dora"}
    assert store.query("SELECT count(*) FROM target_positions_replaced").item() == 2


def test_a_deleted_accounts_trail_is_still_found_by_its_name(store: msm.Store) -> None:
    msm.save_snapshot(store, "alpha", T0, _rows(0.5))
    msm.delete_account(store, "alpha", actor="erin", reason="mandate ended")
    with pytest.raises(msm.NotFoundError):
        msm.get_account(store, "alpha")
    trail = events(store, account="alpha")
    assert {e["account"] for e in trail} == {"alpha"}
    assert [e["entity_type"] for e in trail if e["action"] == "delete"] == [
        "position_set",  # its target rows (kept as a version), then the set, the allocation, the account
        "position_set",
        "allocation",
        "account",
    ]
    assert trail[-1]["actor"] == "erin" and trail[-1]["before_json"]["unique_identifier"] == "alpha"
    with pytest.raises(msm.NotFoundError):
        msm.audit_events(store, account="never-was")


def test_bulk_snapshots_holdings_prices_fx_and_compositions_are_audited(store: msm.Store) -> None:
    frame = pl.DataFrame(
        {
            "account": ["alpha", "alpha"],
            "position_set_time": [T0, datetime(2026, 2, 1, tzinfo=UTC)],
            "asset": ["BTC", "ETH"],
            "weight_notional_exposure": [0.5, 0.6],
        }
    )
    msm.save_snapshots(store, frame, actor="bulk")
    msm.import_holdings(store, [{"account": "alpha", "asset": "BTC", "quantity": 1}], at=T0, actor="ops")
    msm.import_holdings(store, [{"account": "alpha", "asset": "ETH", "quantity": 2}], at=T0, overwrite=True)
    msm.import_prices(store, [{"asset": "BTC", "time": T0_TEXT, "price": 1, "currency": "USD"}], reason="close")
    msm.import_fx_rates(store, [{"base": "EUR", "quote": "USD", "time": T0_TEXT, "rate": 1.1}])
    msm_portfolios.save_composition(store, "CRYPTO-EW", T0, {"BTC": 0.6, "ETH": 0.4}, overwrite=True, actor="pm")
    found = [(e["entity_type"], e["action"], e["actor"]) for e in events(store)]
    assert found[-7:] == [
        ("position_set", "save", "bulk"),
        ("position_set", "save", "bulk"),
        ("holdings_set", "save", "ops"),
        ("holdings_set", "overwrite", found[-4][2]),
        ("price", "import", found[-3][2]),
        ("fx_rate", "import", found[-2][2]),
        ("composition", "overwrite", "pm"),
    ]
    composition = events(store, entity_type="composition")[-1]
    assert composition["before_json"]["weights"] == {"BTC": 0.5, "ETH": 0.5}
    assert composition["after_json"]["weights"] == {"BTC": 0.6, "ETH": 0.4}
    price = events(store, entity_type="price")[-1]
    assert price["reason"] == "close" and price["after_json"]["added"] == 1


def test_every_event_is_labelled_with_what_it_is_about(store: msm.Store) -> None:
    """``event_labels``: the row's key, a set's time, an import's counts; a deleted row by its before-image."""
    msm.add_asset(store, "XRP", name="Ripple")
    msm.delete_asset(store, "XRP")
    msm.save_snapshot(store, "alpha", "2026-03-01T00:00:00Z", _rows(0.5))
    msm.import_prices(store, [{"asset": "BTC", "time": T0_TEXT, "price": 1, "currency": "USD"}])
    msm_portfolios.save_composition(store, "CRYPTO-EW", T0, {"BTC": 0.6, "ETH": 0.4}, overwrite=True)
    trail = msm.audit_events(store)
    keys = zip(trail["entity_type"], trail["action"], strict=True)
    labels = dict(reversed(list(zip(keys, audit.event_labels(trail), strict=True))))  # the newest of each
    assert labels[("asset", "delete")] == "XRP"  # nothing after a delete: the row before it
    assert labels[("position_set", "save")] == "2026-03-01T00:00:00.000000Z"
    assert labels[("price", "import")] == "1 added, 0 updated"
    assert labels[("composition", "overwrite")] == "CRYPTO-EW"
    assert audit.event_labels(trail).null_count() == 0 and audit.event_labels(trail.head(0)).len() == 0


# -- an aborted write leaves no event -------------------------------------------------------------------
@pytest.mark.parametrize(
    "write",
    [
        lambda s: msm.add_asset(s, "BTC"),  # a duplicate key
        lambda s: msm.save_snapshot(s, "alpha", T0, _rows(float("nan"))),
        lambda s: msm.import_reference(s, "assets", [{"unique_identifier": "Z"}, {"unique_identifier": "Z"}]),
        lambda s: msm.import_holdings(s, [{"account": "alpha", "asset": "NOPE", "quantity": 1}], at=T0),
        lambda s: msm.delete_asset(s, "BTC"),  # referenced by the composition
        lambda s: msm_portfolios.save_composition(s, "CRYPTO-EW", "2026-01-01T00:00:00Z", {"BTC": 1.0}),
    ],
    ids=["duplicate", "nan-weight", "bulk-duplicate", "unknown-asset", "referenced", "composition-exists"],
)
def test_a_refused_write_leaves_no_event(store: msm.Store, write: Any) -> None:
    before = contents(store)
    with pytest.raises(msm.MsmError):
        write(store)
    assert contents(store) == before


def test_a_write_that_fails_after_its_event_rolls_the_event_back(store: msm.Store, monkeypatch) -> None:
    """The event is written inside the write's transaction: when a later statement fails, both go."""
    from msm.services import snapshots

    def boom(con: Any, valid: Any) -> None:
        raise duckdb.ConstraintException("simulated failure after the event")

    msm.save_snapshot(store, "alpha", T0, _rows(0.5))
    before = contents(store)
    monkeypatch.setattr(snapshots, "_insert_rows", boom)  # after keep_target_rows and the DELETE
    with pytest.raises(duckdb.ConstraintException):
        msm.save_snapshot(store, "alpha", T0, _rows(0.2), overwrite=True)
    assert contents(store) == before


# -- an invariant: events match changes --------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["save", "overwrite", "restore"]), min_size=1, max_size=6))
def test_every_overwrite_is_one_event_and_one_kept_version(seeded_with, steps: list[str]) -> None:
    store = seeded_with("audit-book", _book)[0].store
    for i, step in enumerate(steps):
        exists = not msm.read_snapshot(store, "alpha", at=T0).is_empty
        kept = msm.snapshot_versions(store, "alpha", T0).height if exists else 0
        if step == "restore" and kept:
            msm.restore_snapshot(store, "alpha", T0, version=1 + i % kept)
        else:
            msm.save_snapshot(store, "alpha", T0, _rows(0.1 + i / 100), overwrite=exists)
    written = events(store, entity_type="position_set")
    versions = msm.snapshot_versions(store, "alpha", T0)
    assert written[0]["action"] == "save"
    assert sum(e["action"] in ("overwrite", "restore") for e in written) == versions.height
    assert versions["version"].to_list() == list(range(1, versions.height + 1))


# -- the command line -----------------------------------------------------------------------------------
def test_cli_records_as_and_reason_and_lists_the_trail(store: msm.Store, tmp_path: Path) -> None:
    cli = Cli(Path(store.path))
    first = write_rows(tmp_path / "a.csv", _rows(0.5))
    second = write_rows(tmp_path / "b.csv", _rows(0.2, 0.2))
    cli.ok("targets", "save", "alpha", "--at", T0_TEXT, "--file", str(first), "--as", "alice")
    cli.ok("--as", "bob", "--reason", "new view", "targets", "save", "alpha", "--at", T0_TEXT, "--file", str(second),
           "--overwrite")  # fmt: skip
    out = cli.ok("targets", "versions", "alpha", "--at", T0_TEXT).out
    assert "1 replaced version" in out and "bob" in out
    restored = cli.ok("targets", "restore", "alpha", "--at", T0_TEXT, "--version", "1", "--reason", "undo").out
    assert "restored version 1" in restored
    assert msm.read_snapshot(cli.store, "alpha", at=T0).positions["weight_notional_exposure"].to_list() == [0.5]
    trail = cli.ok("audit", "--account", "alpha", "--format", "json").json()["events"]
    assert [(e["actor"], e["action"], e["reason"]) for e in trail[:3]] == [
        (trail[0]["actor"], "restore", "undo"),
        ("bob", "overwrite", "new view"),
        ("alice", "save", None),
    ]
    assert trail[1]["before_json"]["kept_as_version"] == 1
    only_bob = cli.ok("audit", "--actor", "bob", "--format", "csv").out.splitlines()
    assert len(only_bob) == 2 and only_bob[0].startswith("event_time,actor,action")
    table = cli.ok("audit", "--action", "overwrite").out
    assert "1 audit event, newest first" in table and "new view" in table
    assert "0 audit events" in cli.ok("audit", "--until", "2000-01-01T00:00:00Z").out


def test_cli_refuses_a_blank_actor_and_writes_nothing(store: msm.Store) -> None:
    cli = Cli(Path(store.path))
    before = contents(cli.store)
    cli.fails("assets", "add", "NEW", "--as", " ", match=r"`actor` = ' ': must not be blank")
    cli.fails("audit", "--since", "yesterday", match=r"since")
    assert contents(cli.store) == before
