"""Snapshot services on a real database: the one write path, reads, history, diff, and all-or-nothing failures.

Every refused write is checked against the database's full contents before and after.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm.services.snapshots as snapshots_module
from msm.errors import NotFoundError, SnapshotExistsError, ValidationError
from msm.models import TargetPositionIn

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)
T2 = datetime(2026, 3, 1, tzinfo=UTC)
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"
W = "weight_notional_exposure"

GOOD = [
    {"asset": "BTC", W: 0.6, "metadata_json": {"role": "core"}},
    {"asset": "ETH", W: 0.3},
    {"portfolio": "CRYPTO-EW", W: 0.1, "metadata_json": {"portfolio_role": "satellite_sleeve"}},
]
POSITION_KEYS = [
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    "unique_identifier",
    "display_label",
    "weight_notional_exposure",
    "constant_notional_exposure",
    "single_asset_quantity",
    "metadata_json",
]


def _counts(store: msm.Store) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in ("position_set", "target_positions")}


# -- bad rows through the service --------------------------------------------------------------------
BAD_ROWS = [
    ("both", lambda s: [{"asset": "BTC", "portfolio": "CRYPTO-EW", W: 0.5}], r"row 1: `asset_uid` = .*got both"),
    ("both uids", lambda s: [{"asset_uid": s.uid("BTC"), "portfolio_uid": s.uid("CRYPTO-EW"), W: 0.5}], r"got both"),
    ("neither", lambda s: [{"asset": "BTC", W: 0.5}, {"asset": None, W: 0.5}], r"row 2: `asset_uid`: .*got neither"),
    (
        "target_uid mismatch",
        lambda s: [{"asset_uid": s.uid("BTC"), "target_uid": s.uid("ETH"), W: 0.5}],
        r"`target_uid` = .*must equal asset_uid " + "[0-9a-f-]{36}",
    ),
    (
        "target_type mismatch",
        lambda s: [{"portfolio": "CRYPTO-EW", "target_type": "asset", W: 0.5}],
        r"does not match the target given \(portfolio\)",
    ),
    (
        "target_type fund",
        lambda s: [{"asset": "BTC", "target_type": "fund", W: 0.5}],
        r"`target_type` = 'fund': must be 'asset' or 'portfolio'",
    ),
    ("zero exposures", lambda s: [{"asset": "BTC", W: None}], r"`exposure`: exactly one of .* must be set, none was"),
    ("two exposures", lambda s: [{"asset": "BTC", W: 0.5, "constant_notional_exposure": 10.0}], r"must be set, got 2"),
    (
        "three exposures",
        lambda s: [{"asset": "BTC", W: 0.5, "constant_notional_exposure": 10.0, "single_asset_quantity": 1.0}],
        r"must be set, got 3",
    ),
    ("NaN", lambda s: [{"asset": "BTC", W: float("nan")}], r"`weight_notional_exposure` = 'NaN': must be finite"),
    (
        "inf",
        lambda s: [{"asset": "BTC", "constant_notional_exposure": float("inf")}],
        r"`constant_notional_exposure` = 'inf': must be finite",
    ),
    (
        "text exposure",
        lambda s: [{"asset": "BTC", W: "half"}],
        r"`weight_notional_exposure` = 'half': must be a number",
    ),
    (
        "quantity on portfolio",
        lambda s: [{"portfolio": "CRYPTO-EW", "single_asset_quantity": 2.0}],
        r"a portfolio target cannot use single_asset_quantity",
    ),
    (
        "asset_identifier key",
        lambda s: [{"asset_identifier": "BTC", W: 0.5}],
        r"`asset_identifier` = 'BTC': target rows use `asset_uid`.*not `asset_identifier`",
    ),
    (
        "asset_identifier column",
        lambda s: pl.DataFrame({"asset_identifier": ["BTC"], W: [0.5]}),
        r"`asset_identifier`: target rows use `asset_uid`",
    ),
    ("unknown asset", lambda s: [{"asset": "DOGE", W: 0.5}], r"`asset` = 'DOGE': no asset has this unique_identifier"),
    (
        "unknown portfolio",
        lambda s: [{"portfolio": "NOPE", W: 0.5}],
        r"`portfolio` = 'NOPE': no portfolio has this unique_identifier",
    ),
    (
        "unknown asset uid",
        lambda s: [{"asset_uid": UNKNOWN, W: 0.5}],
        r"`asset_uid` = '" + UNKNOWN + "': no asset has this uid",
    ),
    (
        "unknown portfolio uid",
        lambda s: [{"portfolio_uid": UNKNOWN, W: 0.5}],
        r"`portfolio_uid` = '" + UNKNOWN + "': no portfolio has this uid",
    ),
    (
        "portfolio uid given as asset uid",
        lambda s: [{"asset_uid": s.uid("CRYPTO-EW"), W: 0.5}],
        r"no asset has this uid",
    ),
    ("malformed uuid", lambda s: [{"asset_uid": "BTC", W: 0.5}], r"`asset_uid` = 'BTC': must be a UUID"),
    (
        "duplicate",
        lambda s: [{"asset": "BTC", W: 0.5}, {"asset_uid": s.uid("BTC"), W: 0.1}],
        r"row 2: .*duplicate target 'BTC' \(asset\) in one snapshot; first given at row 1",
    ),
    (
        "metadata array",
        lambda s: [{"asset": "BTC", W: 0.5, "metadata_json": [1]}],
        r"`metadata_json` = '\[1\]': must be a JSON object",
    ),
    (
        "metadata string",
        lambda s: [{"asset": "BTC", W: 0.5, "metadata_json": '"core"'}],
        r"`metadata_json` = '\"core\"': must be a JSON object",
    ),
    ("metadata malformed", lambda s: [{"asset": "BTC", W: 0.5, "metadata_json": "{oops"}], r"is not valid JSON"),
    ("unknown column", lambda s: [{"asset": "BTC", W: 0.5, "comment": "x"}], r"`comment`: is not a known column"),
    ("missing target column", lambda s: [{W: 0.5}], r"`asset_uid`: column is missing"),
    ("missing exposure column", lambda s: [{"asset": "BTC"}], r"`weight_notional_exposure`: column is missing"),
    ("empty", lambda s: [], r"`rows`: the target set is empty"),
    ("empty frame", lambda s: pl.DataFrame(schema={"asset": pl.String, W: pl.Float64}), r"the target set is empty"),
    (
        "several bad rows",
        lambda s: [{"asset": "BTC", W: 0.5}, {"asset": "XRP", W: 0.5}, {"asset": "ETH", W: float("nan")}],
        r"2 problems found; nothing was stored:\n  target set row 2: `asset` = 'XRP'.*\n  target set row 3: "
        r"`weight_notional_exposure`",
    ),
]


def _good_at_t0(seeded) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, GOOD)


@pytest.mark.parametrize(("build", "message"), [pytest.param(b, m, id=i) for i, b, m in BAD_ROWS])
def test_bad_rows_are_refused_and_nothing_changes(seeded_with, db_contents, build, message: str) -> None:
    seeded, _ = seeded_with("test_snapshots.good_at_t0", _good_at_t0)
    store = seeded.store
    before = db_contents(store)
    with pytest.raises(ValidationError, match=message):
        msm.save_snapshot(store, "alpha", T1, build(seeded))
    assert db_contents(store) == before
    with pytest.raises(ValidationError, match=message):  # replacing the existing set is refused the same way
        msm.save_snapshot(store, "alpha", T0, build(seeded), overwrite=True)
    assert db_contents(store) == before


# -- times ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "message"),
    [
        (
            "2026-01-01T00:00:00",
            r"snapshot: `position_set_time` = '2026-01-01T00:00:00': has no UTC offset \(naive times are refused\)",
        ),
        ("2026-01-01 00:00", r"has no UTC offset"),
        (datetime(2026, 1, 1), r"`position_set_time` = '2026-01-01T00:00:00': has no UTC offset"),
        ("yesterday", r"`position_set_time` = 'yesterday': is not a time; give an ISO-8601 time with a UTC offset"),
        ("2026-13-01T00:00:00Z", r"is not a time"),
        ("", r"must be an ISO-8601 time with a UTC offset"),
        (date(2026, 1, 1), r"`position_set_time` = '2026-01-01': is a date, not a time"),
        (1767225600, r"`position_set_time` = 1767225600: must be an ISO-8601 time"),
    ],
    ids=[
        "naive text",
        "naive text with space",
        "naive datetime",
        "words",
        "bad month",
        "empty",
        "date",
        "epoch number",
    ],
)
def test_naive_or_unparsable_times_are_refused(seeded, db_contents, at: Any, message: str) -> None:
    before = db_contents(seeded.store)
    with pytest.raises(ValidationError, match=message):
        msm.save_snapshot(seeded.store, "alpha", at, GOOD)
    assert db_contents(seeded.store) == before


def test_times_with_offsets_are_stored_in_utc(seeded) -> None:
    snap = msm.save_snapshot(seeded.store, "alpha", "2026-01-01T09:00:00+09:00", GOOD)
    assert snap.position_set_time == T0
    assert snap.to_dict()["position_set_time"] == "2026-01-01T00:00:00Z"
    assert (
        msm.read_snapshot(seeded.store, "alpha", at="2025-12-31T19:00:00-05:00").position_set_uid
        == snap.position_set_uid
    )


def test_microseconds_are_kept(seeded) -> None:
    at = T0 + timedelta(microseconds=123456)
    snap = msm.save_snapshot(seeded.store, "alpha", at, GOOD)
    assert snap.position_set_time == at
    assert snap.to_dict()["position_set_time"] == "2026-01-01T00:00:00.123456Z"
    assert msm.read_snapshot(seeded.store, "alpha", at=at).position_set_uid == snap.position_set_uid


# -- which allocation ------------------------------------------------------------------------------------
def _other_account(store: msm.Store, name: str = "beta", *, allocations: int = 1) -> dict[str, Any]:
    account = msm.add_account(store, name, account_name=name.title())
    for i in range(allocations):
        msm.add_allocation(store, f"{name}-{i}", account=name, model="balanced")
    return account


@pytest.mark.parametrize(
    ("setup", "call", "error", "message"),
    [
        (
            "none",
            dict(account="nobody"),
            NotFoundError,
            r"account with unique_identifier 'nobody' does not exist; create it with `msm accounts add ID --name N`",
        ),
        (
            "none",
            dict(account=UNKNOWN),
            NotFoundError,
            r"account with uid or unique_identifier '" + UNKNOWN + "' does not exist",
        ),
        (
            "none",
            dict(account="alpha", allocation="nope"),
            NotFoundError,
            r"target allocation with unique_identifier 'nope' does not exist",
        ),
        (
            "beta",
            dict(account="alpha", allocation="beta-0"),
            ValidationError,
            r"snapshot: `allocation` = 'beta-0': belongs to another account, not 'alpha'",
        ),
        (
            "inactive",
            dict(account="alpha", allocation="alpha-old"),
            ValidationError,
            r"`allocation` = 'alpha-old': is inactive; reactivate it or choose an active one",
        ),
        (
            "solo",
            dict(account="solo"),
            ValidationError,
            r"account: `account` = 'solo': has no active target allocation; create one with `msm allocations add ID "
            r"--account solo --model MODEL`",
        ),
        (
            "only inactive",
            dict(account="alpha"),
            ValidationError,
            r"`account` = 'alpha': has no active target allocation",
        ),
        (
            "two active",
            dict(account="alpha"),
            ValidationError,
            r"`account` = 'alpha': has 2 active target allocations \(alpha-alt, alpha-main\); choose one with "
            r"`allocation` \(--allocation\)",
        ),
    ],
    ids=[
        "unknown account",
        "unknown account uid",
        "unknown allocation",
        "allocation of another account",
        "inactive allocation",
        "no allocation",
        "only an inactive allocation",
        "several active",
    ],
)
def test_account_and_allocation_rules(
    seeded, db_contents, setup: str, call: dict[str, Any], error: type, message: str
) -> None:
    store = seeded.store
    if setup == "beta":
        _other_account(store)
    elif setup == "inactive":
        msm.add_allocation(store, "alpha-old", account="alpha", model="balanced", is_active=False)
    elif setup == "solo":
        msm.add_account(store, "solo", account_name="Solo")
    elif setup == "only inactive":
        msm.update_allocation(store, "alpha-main", is_active=False)
    elif setup == "two active":
        msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    before = db_contents(store)
    with pytest.raises(error, match=message):
        msm.save_snapshot(store, call.pop("account"), T0, GOOD, **call)
    assert db_contents(store) == before


def test_explicit_allocation_by_uid_or_identifier(seeded) -> None:
    store = seeded.store
    alt = msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    a = msm.save_snapshot(store, "alpha", T0, GOOD, allocation="alpha-alt")
    b = msm.save_snapshot(store, seeded.account["uid"], T0, GOOD, allocation=seeded.allocation["uid"])
    assert a.account_target_allocation_uid == alt["uid"] and a.allocation == "alpha-alt"
    assert b.account_target_allocation_uid == seeded.allocation["uid"]
    assert a.position_set_uid != b.position_set_uid


# -- exists / overwrite ----------------------------------------------------------------------------------
def test_existing_snapshot_is_refused_without_overwrite(seeded, db_contents) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, GOOD)
    before = db_contents(store)
    with pytest.raises(
        SnapshotExistsError,
        match=r"snapshot exists: account 'alpha' \(allocation 'alpha-main'\) at 2026-01-01T00:00:00Z; pass overwrite "
        r"\(--overwrite\) to replace the whole set",
    ):
        msm.save_snapshot(store, "alpha", T0, [{"asset": "SOL", W: 1.0}])
    assert db_contents(store) == before


def test_overwrite_replaces_the_whole_set_and_keeps_the_uid(seeded) -> None:
    store = seeded.store
    first = msm.save_snapshot(store, "alpha", T0, GOOD, source="ui", metadata_json={"v": 1})
    second = msm.save_snapshot(
        store,
        "alpha",
        T0,
        [{"asset": "SOL", "single_asset_quantity": 3.0}],
        overwrite=True,
        source="cli",
        metadata_json={"v": 2},
    )
    assert second.position_set_uid == first.position_set_uid
    assert second.positions["unique_identifier"].to_list() == ["SOL"]
    assert _counts(store) == {"position_set": 1, "target_positions": 1}
    assert (second.source, second.metadata_json) == ("cli", {"v": 2})
    rows = store.query("SELECT asset_uid::VARCHAR AS a, single_asset_quantity AS q FROM target_positions").rows()
    assert rows == [(seeded.uid("SOL"), 3.0)]


def test_overwrite_with_the_same_targets_replaces_their_values(seeded) -> None:
    store = seeded.store
    first = msm.save_snapshot(store, "alpha", T0, GOOD)
    again = msm.save_snapshot(
        store,
        "alpha",
        T0,
        [
            {"asset": "BTC", W: 0.7},
            {"asset": "ETH", "constant_notional_exposure": 5.0},
            {"portfolio": "CRYPTO-EW", W: 0.3},
        ],
        overwrite=True,
    )
    assert again.position_set_uid == first.position_set_uid
    assert again.positions.select("unique_identifier", W, "constant_notional_exposure", "metadata_json").rows() == [
        ("BTC", 0.7, None, None),
        ("ETH", None, 5.0, None),
        ("CRYPTO-EW", 0.3, None, None),
    ]
    assert _counts(store) == {"position_set": 1, "target_positions": 3}


def test_overwrite_on_a_new_time_just_creates(seeded) -> None:
    snap = msm.save_snapshot(seeded.store, "alpha", T0, GOOD, overwrite=True)
    assert snap.positions.height == 3
    assert _counts(seeded.store) == {"position_set": 1, "target_positions": 3}


# -- atomicity: a failure inside the write transaction ------------------------------------------------------
def _let_one_bad_row_through(monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]) -> None:
    """Make the validation used by the write path return a row DuckDB's constraints will refuse."""
    real = snapshots_module.validate_target_rows

    def sloppy(frame: pl.DataFrame, **kwargs: Any) -> pl.DataFrame:
        valid = real(frame, **kwargs)
        last = pl.int_range(pl.len()) == pl.len() - 1
        return valid.with_columns(
            pl.when(last).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in change.items()
        )

    monkeypatch.setattr(snapshots_module, "validate_target_rows", sloppy)


@pytest.mark.parametrize(
    "change",
    [{W: float("nan")}, {"metadata_json": "[1, 2]"}, {"asset_uid": UNKNOWN, "target_uid": UNKNOWN}],
    ids=["NaN", "metadata array", "unknown asset uid"],
)
def test_a_failure_half_way_leaves_no_new_position_set(seeded, db_contents, monkeypatch, change) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, GOOD)
    before = db_contents(store)
    _let_one_bad_row_through(monkeypatch, change)
    with pytest.raises(duckdb.ConstraintException):
        msm.save_snapshot(store, "alpha", T1, [{"asset": "BTC", W: 0.5}, {"asset": "SOL", W: 0.5}])
    assert db_contents(store) == before
    assert _counts(store) == {"position_set": 1, "target_positions": 3}


def test_a_failure_half_way_through_an_overwrite_keeps_the_previous_snapshot(seeded, db_contents, monkeypatch) -> None:
    store = seeded.store
    old = msm.save_snapshot(store, "alpha", T0, GOOD, source="first")
    before = db_contents(store)
    _let_one_bad_row_through(monkeypatch, {W: float("inf")})
    with pytest.raises(duckdb.ConstraintException):
        msm.save_snapshot(
            store, "alpha", T0, [{"asset": "SOL", W: 0.5}, {"asset": "ETH", W: 0.5}], overwrite=True, source="second"
        )
    assert db_contents(store) == before
    monkeypatch.undo()
    again = msm.read_snapshot(store, "alpha")
    assert again.position_set_uid == old.position_set_uid and again.source == "first"
    assert again.positions.equals(old.positions)


# -- bulk ------------------------------------------------------------------------------------------------
def _bulk_frame(times: list[datetime], accounts: list[str]) -> pl.DataFrame:
    rows = []
    for account in accounts:
        for i, when in enumerate(times):
            rows += [
                {"account": account, "position_set_time": when, "asset": "BTC", "portfolio": None, W: 0.5 - i / 100},
                {"account": account, "position_set_time": when, "asset": None, "portfolio": "CRYPTO-EW", W: 0.5},
            ]
            if account != "alpha":
                rows.append({"account": account, "position_set_time": when, "asset": "SOL", "portfolio": None, W: 0.01})
    return pl.DataFrame(rows, schema_overrides={"position_set_time": pl.Datetime("us", "UTC")})


def test_bulk_save_many_snapshots_for_several_accounts(seeded) -> None:
    store = seeded.store
    _other_account(store, "beta")
    _other_account(store, "gamma")
    frame = _bulk_frame([T0, T1, T2], ["alpha", "beta", "gamma"])
    written = msm.save_snapshots(store, frame, source="bulk")
    assert written.columns == [
        "position_set_uid",
        "account_target_allocation_uid",
        "position_set_time",
        "rows",
        "replaced",
    ]
    assert written.height == 9
    assert sorted(written["rows"].to_list()) == [2, 2, 2, 3, 3, 3, 3, 3, 3]
    assert not written["replaced"].any()
    assert _counts(store) == {"position_set": 9, "target_positions": frame.height}
    for account in ("alpha", "beta", "gamma"):
        history = msm.snapshot_history(store, account)
        assert history["position_set_time"].to_list() == [T2, T1, T0]
        assert history["source"].to_list() == ["bulk"] * 3
    beta = msm.read_snapshot(store, "beta", at=T1)
    assert beta.positions.select("unique_identifier", W).rows() == [("BTC", 0.49), ("SOL", 0.01), ("CRYPTO-EW", 0.5)]


def test_bulk_times_may_be_text_and_allocations_explicit(seeded) -> None:
    store = seeded.store
    msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    frame = pl.DataFrame(
        {
            "account": ["alpha", "alpha", seeded.account["uid"]],
            "allocation": ["alpha-main", "alpha-alt", "alpha-alt"],
            "position_set_time": ["2026-01-01T00:00:00Z", "2026-01-01T09:00:00+09:00", "2026-02-01T00:00:00+00:00"],
            "asset": ["BTC", "BTC", "ETH"],
            W: [1.0, 0.9, 0.8],
        }
    )
    written = msm.save_snapshots(store, frame)
    assert written.height == 3
    assert msm.read_snapshot(store, "alpha", at=T0, allocation="alpha-alt").positions[W].to_list() == [0.9]
    assert msm.read_snapshot(store, "alpha", at=T0, allocation="alpha-main").positions[W].to_list() == [1.0]


def test_bulk_with_one_bad_row_anywhere_refuses_everything(seeded, db_contents) -> None:
    store = seeded.store
    _other_account(store, "beta")
    msm.save_snapshot(store, "alpha", T0, GOOD)
    before = db_contents(store)
    frame = _bulk_frame([T1, T2], ["alpha", "beta"])
    bad_row = frame.height - 2  # 0-based; reported 1-based
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == bad_row).then(pl.lit(float("nan"))).otherwise(pl.col(W)).alias(W)
    )
    with pytest.raises(
        ValidationError,
        match=rf"^1 problem found; nothing was stored:\n  target set row {bad_row + 1}: `weight_notional_exposure` = "
        rf"'NaN'",
    ):
        msm.save_snapshots(store, frame)
    assert db_contents(store) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"account": "nobody"},
            r"target set row 3: `account` = 'nobody': no account has this unique_identifier or uid",
        ),
        (
            {"position_set_time": "2026-02-01T00:00:00"},
            r"target set row 3: `position_set_time` = '2026-02-01T00:00:00': has no UTC offset",
        ),
        ({"position_set_time": "soon"}, r"target set row 3: `position_set_time` = 'soon': is not a time"),
        (
            {"allocation": "beta-0"},
            r"target set row 3: `allocation` = 'beta-0': belongs to another account, not 'alpha'",
        ),
        (
            {"allocation": "nope"},
            r"target set row 3: `allocation` = 'nope': no target allocation has this unique_identifier or uid",
        ),
        ({"account": "solo"}, r"account row 3: `account` = 'solo': has no active target allocation"),
    ],
    ids=[
        "unknown account",
        "naive time",
        "bad time",
        "allocation of another account",
        "unknown allocation",
        "no active allocation",
    ],
)
def test_bulk_key_errors_name_the_row(seeded, db_contents, change: dict[str, str], message: str) -> None:
    store = seeded.store
    _other_account(store, "beta")
    msm.add_account(store, "solo", account_name="Solo")
    frame = pl.DataFrame(
        {
            "account": ["alpha", "beta", "alpha"],
            "allocation": [None, None, None],
            "position_set_time": ["2026-01-01T00:00:00Z"] * 3,
            "asset": ["BTC", "BTC", "ETH"],
            W: [0.5, 0.5, 0.5],
        },
        schema_overrides={"allocation": pl.String},
    )
    for column, value in change.items():
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 2).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
        )
    before = db_contents(store)
    with pytest.raises(ValidationError, match=message):
        msm.save_snapshots(store, frame)
    assert db_contents(store) == before


def test_bulk_needs_its_key_columns(seeded) -> None:
    with pytest.raises(
        ValidationError,
        match=r"`position_set_time`: column is missing: bulk rows need `account` and `position_set_time`",
    ):
        msm.save_snapshots(seeded.store, pl.DataFrame({"account": ["alpha"], "asset": ["BTC"], W: [1.0]}))
    with pytest.raises(ValidationError, match=r"the target set is empty"):
        msm.save_snapshots(seeded.store, pl.DataFrame(schema={"account": pl.String}))


def test_bulk_exists_and_overwrite(seeded, db_contents) -> None:
    store = seeded.store
    _other_account(store, "beta")
    msm.save_snapshot(store, "beta", T1, [{"asset": "ETH", W: 1.0}])
    frame = _bulk_frame([T0, T1], ["alpha", "beta"])
    before = db_contents(store)
    with pytest.raises(
        SnapshotExistsError, match=r"snapshot exists: account 'beta' \(allocation 'beta-0'\) at 2026-02-01T00:00:00Z"
    ):
        msm.save_snapshots(store, frame)
    assert db_contents(store) == before
    written = msm.save_snapshots(store, frame, overwrite=True)
    assert written.filter("replaced")["rows"].to_list() == [3]
    assert written.filter(~pl.col("replaced")).height == 3
    assert msm.read_snapshot(store, "beta", at=T1).positions["unique_identifier"].to_list() == [
        "BTC",
        "SOL",
        "CRYPTO-EW",
    ]


def test_the_same_target_in_two_snapshots_of_one_frame_is_fine_but_not_twice_in_one(seeded) -> None:
    store = seeded.store
    frame = pl.DataFrame(
        {
            "account": ["alpha"] * 3,
            "position_set_time": ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-01-01T00:00:00+00:00"],
            "asset": ["BTC", "BTC", "BTC"],
            W: [0.1, 0.2, 0.3],
        }
    )
    with pytest.raises(
        ValidationError, match=r"row 3: .*duplicate target 'BTC' \(asset\) in one snapshot; first given at row 1"
    ):
        msm.save_snapshots(store, frame)
    assert msm.save_snapshots(store, frame.head(2)).height == 2


# -- size ------------------------------------------------------------------------------------------------
def test_a_5000_row_set_reads_back_whole(seeded) -> None:
    store = seeded.store
    n = 5000
    store.execute(
        "INSERT INTO asset (uid, unique_identifier, name) SELECT gen_random_uuid(), 'X' || lpad(i::VARCHAR, 5, '0'), "
        "'asset ' || i FROM range(?) t(i)",
        [n],
    )
    frame = pl.DataFrame({"asset": [f"X{i:05d}" for i in range(n)], W: [1 / n] * n})
    snap = msm.save_snapshot(store, "alpha", T0, frame)
    assert snap.positions.height == n
    assert len(snap.to_dict()["positions"]) == n
    assert msm.read_snapshot(store, "alpha").positions.height == n
    assert msm.read_target_rows(store, [snap.position_set_uid]).height == n
    history = msm.snapshot_history(store, "alpha")
    assert history["rows"].to_list() == [n]
    assert math.isclose(history["weight_sum"][0], 1.0)
    assert sorted(snap.positions["unique_identifier"].to_list()) == sorted(frame["asset"].to_list())


# -- reads -----------------------------------------------------------------------------------------------
def _three_sets(seeded) -> dict[datetime, Any]:
    return {
        when: msm.save_snapshot(seeded.store, "alpha", when, [{"asset": "BTC", W: w}])
        for when, w in ((T0, 0.1), (T1, 0.2), (T2, 0.3))
    }


@pytest.fixture
def three_sets(seeded_with):
    return seeded_with("test_snapshots.three_sets", _three_sets)


def test_read_latest_exact_and_as_of(three_sets) -> None:
    seeded, sets = three_sets
    store = seeded.store
    assert msm.read_snapshot(store, "alpha").position_set_uid == sets[T2].position_set_uid
    assert msm.read_snapshot(store, "alpha", at=T1).position_set_uid == sets[T1].position_set_uid
    assert msm.read_snapshot(store, "alpha", at=T1 + timedelta(seconds=1)).is_empty
    assert msm.read_snapshot(store, "alpha", as_of=T1).position_set_uid == sets[T1].position_set_uid
    assert (
        msm.read_snapshot(store, "alpha", as_of=T2 - timedelta(microseconds=1)).position_set_uid
        == sets[T1].position_set_uid
    )
    assert msm.read_snapshot(store, "alpha", as_of="2030-01-01T00:00:00Z").position_set_uid == sets[T2].position_set_uid
    early = msm.read_snapshot(store, "alpha", as_of=T0 - timedelta(days=1))
    assert early.is_empty and early.positions.height == 0 and early.positions.columns == POSITION_KEYS
    assert msm.read_snapshot(store, seeded.account["uid"], at=T0).positions[W].to_list() == [0.1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(at=T0, as_of=T1), r"give `at` \(exact time\) or `as_of` \(latest at or before\), not both"),
        (dict(at="2026-01-01T00:00:00"), r"snapshot: `at` = '2026-01-01T00:00:00': has no UTC offset"),
        (dict(as_of=datetime(2026, 1, 1)), r"snapshot: `as_of` = '2026-01-01T00:00:00': has no UTC offset"),
    ],
    ids=["both", "naive at", "naive as_of"],
)
def test_read_refuses_bad_times(three_sets, kwargs: dict[str, Any], message: str) -> None:
    seeded, _ = three_sets
    with pytest.raises(ValidationError, match=message):
        msm.read_snapshot(seeded.store, "alpha", **kwargs)


def test_read_unknown_account(seeded) -> None:
    with pytest.raises(NotFoundError, match="account with unique_identifier 'nobody' does not exist"):
        msm.read_snapshot(seeded.store, "nobody")


def test_reads_look_across_the_active_allocations(three_sets) -> None:
    seeded, sets = three_sets
    store = seeded.store
    msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    between = T1 + timedelta(days=1)
    alt = msm.save_snapshot(store, "alpha", between, [{"portfolio": "CRYPTO-EW", W: 1.0}], allocation="alpha-alt")
    assert msm.read_snapshot(store, "alpha").position_set_uid == sets[T2].position_set_uid
    assert (
        msm.read_snapshot(store, "alpha", as_of=between + timedelta(hours=1)).position_set_uid == alt.position_set_uid
    )
    assert msm.read_snapshot(store, "alpha", as_of=between).allocation == "alpha-alt"
    assert (
        msm.read_snapshot(store, "alpha", as_of=between, allocation="alpha-main").position_set_uid
        == sets[T1].position_set_uid
    )
    assert msm.read_snapshot(store, "alpha", allocation="alpha-alt").position_set_uid == alt.position_set_uid
    # an inactive allocation's sets are not read
    msm.update_allocation(store, "alpha-alt", is_active=False)
    assert msm.read_snapshot(store, "alpha", as_of=between).position_set_uid == sets[T1].position_set_uid
    # ... but history shows them, marked
    history = msm.snapshot_history(store, "alpha")
    assert history.height == 4
    assert history.filter(pl.col("allocation") == "alpha-alt")["allocation_is_active"].to_list() == [False]


def test_two_allocations_at_the_same_time_resolve_deterministically(seeded) -> None:
    store = seeded.store
    msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    a = msm.save_snapshot(store, "alpha", T0, [{"asset": "BTC", W: 1.0}], allocation="alpha-main")
    b = msm.save_snapshot(store, "alpha", T0, [{"asset": "ETH", W: 1.0}], allocation="alpha-alt")
    chosen = {msm.read_snapshot(store, "alpha").position_set_uid for _ in range(3)}
    assert chosen == {max(a.position_set_uid, b.position_set_uid)}


def test_positions_carry_identity_labels_exposures_and_metadata(seeded) -> None:
    snap = msm.save_snapshot(
        seeded.store,
        "alpha",
        T0,
        [
            {
                "portfolio": "CRYPTO-EW",
                "constant_notional_exposure": 40000.0,
                "metadata_json": {"portfolio_role": "satellite_sleeve"},
            },
            {"asset_uid": seeded.uid("SOL"), "single_asset_quantity": 12.5},
            {"asset": "BTC", W: 0.6, "metadata_json": '{"role": "core", "tags": ["a", "b"]}'},
        ],
    )
    p = snap.positions
    assert p.columns == POSITION_KEYS
    assert p.schema["metadata_json"] == pl.String
    assert p.select("target_type", "unique_identifier", "display_label").rows() == [
        ("asset", "BTC", "Bitcoin (BTC)"),
        ("asset", "SOL", "Solana (SOL)"),
        ("portfolio", "CRYPTO-EW", "Crypto Majors EW"),
    ]
    assert p.select(W, "constant_notional_exposure", "single_asset_quantity").rows() == [
        (0.6, None, None),
        (None, None, 12.5),
        (None, 40000.0, None),
    ]
    meta = p["metadata_json"].to_list()
    assert json.loads(meta[0]) == {"role": "core", "tags": ["a", "b"]}
    assert meta[1] is None
    assert json.loads(meta[2]) == {"portfolio_role": "satellite_sleeve"}
    assert p["target_uid"].to_list() == [seeded.uid("BTC"), seeded.uid("SOL"), seeded.uid("CRYPTO-EW")]
    assert p["asset_uid"].to_list() == [seeded.uid("BTC"), seeded.uid("SOL"), None]
    assert p["portfolio_uid"].to_list() == [None, None, seeded.uid("CRYPTO-EW")]


def test_rows_may_be_a_frame_or_models(seeded) -> None:
    store = seeded.store
    a = msm.save_snapshot(store, "alpha", T0, pl.DataFrame({"asset": ["BTC"], W: [0.6]}))
    b = msm.save_snapshot(
        store, "alpha", T1, [TargetPositionIn(portfolio_uid=seeded.uid("CRYPTO-EW"), weight_notional_exposure=0.4)]
    )
    assert a.positions["unique_identifier"].to_list() == ["BTC"]
    assert b.positions["unique_identifier"].to_list() == ["CRYPTO-EW"]


def test_to_dict_is_the_targets_show_document(seeded) -> None:
    snap = msm.save_snapshot(seeded.store, "alpha", T0, GOOD)
    doc = snap.to_dict()
    assert list(doc) == [
        "account",
        "position_set_uid",
        "position_set_time",
        "account_target_allocation_uid",
        "status",
        "positions",
    ]
    assert doc["account"] == {"uid": seeded.account["uid"], "unique_identifier": "alpha"}
    assert doc["position_set_uid"] == snap.position_set_uid
    uuid.UUID(doc["position_set_uid"])
    assert doc["position_set_time"] == "2026-01-01T00:00:00Z"
    assert doc["account_target_allocation_uid"] == seeded.allocation["uid"]
    assert [list(p) for p in doc["positions"]] == [POSITION_KEYS] * 3
    btc, eth, ew = doc["positions"]
    assert btc == {
        "target_type": "asset",
        "target_uid": seeded.uid("BTC"),
        "asset_uid": seeded.uid("BTC"),
        "portfolio_uid": None,
        "unique_identifier": "BTC",
        "display_label": "Bitcoin (BTC)",
        "weight_notional_exposure": 0.6,
        "constant_notional_exposure": None,
        "single_asset_quantity": None,
        "metadata_json": {"role": "core"},
    }
    assert eth["metadata_json"] is None
    assert (
        ew["target_type"] == "portfolio" and ew["portfolio_uid"] == seeded.uid("CRYPTO-EW") and ew["asset_uid"] is None
    )
    assert ew["metadata_json"] == {"portfolio_role": "satellite_sleeve"}
    assert json.loads(json.dumps(doc)) == doc  # plain JSON: numbers are numbers, no objects left


def test_to_dict_of_an_empty_snapshot(seeded) -> None:
    doc = msm.read_snapshot(seeded.store, "alpha").to_dict()
    assert doc == {
        "account": {"uid": seeded.account["uid"], "unique_identifier": "alpha"},
        "position_set_uid": None,
        "position_set_time": None,
        "account_target_allocation_uid": None,
        "status": None,
        "positions": [],
    }


def test_residual_is_reported_not_hidden(seeded) -> None:
    snap = msm.save_snapshot(seeded.store, "alpha", T0, [{"asset": "BTC", W: 0.5}, {"portfolio": "CRYPTO-EW", W: 0.2}])
    assert sorted(snap.positions[W].to_list()) == [0.2, 0.5]  # stored as given, not renormalized
    assert math.isclose(snap.weight_sum, 0.7)
    assert math.isclose(snap.residual, 0.3)
    stored = seeded.store.query("SELECT weight_notional_exposure AS w FROM target_positions ORDER BY w")["w"].to_list()
    assert stored == [0.2, 0.5]
    assert math.isclose(msm.snapshot_history(seeded.store, "alpha")["weight_sum"][0], 0.7)


def test_over_allocation_and_shorts_are_kept_too(seeded) -> None:
    snap = msm.save_snapshot(seeded.store, "alpha", T0, [{"asset": "BTC", W: 1.5}, {"asset": "ETH", W: -0.7}])
    assert math.isclose(snap.weight_sum, 0.8)
    assert math.isclose(snap.residual, 0.2)


# -- history ---------------------------------------------------------------------------------------------
def test_history_newest_first_with_rows_and_weight_sum(seeded) -> None:
    store = seeded.store
    a = msm.save_snapshot(store, "alpha", T0, GOOD, source="ui")
    b = msm.save_snapshot(
        store, "alpha", T2, [{"asset": "BTC", W: 0.25}, {"asset": "SOL", "constant_notional_exposure": 1000.0}]
    )
    c = msm.save_snapshot(store, "alpha", T1, [{"asset": "ETH", "single_asset_quantity": 2.0}])
    history = msm.snapshot_history(store, "alpha")
    assert {
        "position_set_uid",
        "position_set_time",
        "account_target_allocation_uid",
        "rows",
        "weight_sum",
        "source",
    } <= set(history.columns)
    assert history["position_set_uid"].to_list() == [b.position_set_uid, c.position_set_uid, a.position_set_uid]
    assert history["position_set_time"].to_list() == [T2, T1, T0]
    assert history["rows"].to_list() == [2, 1, 3]
    assert [round(x, 12) for x in history["weight_sum"].to_list()] == [0.25, 0.0, 1.0]
    assert history["source"].to_list() == [None, None, "ui"]
    assert history["account_target_allocation_uid"].to_list() == [seeded.allocation["uid"]] * 3


def test_history_of_an_account_without_snapshots_is_empty(seeded) -> None:
    assert msm.snapshot_history(seeded.store, "alpha").height == 0


# -- diff ------------------------------------------------------------------------------------------------
def test_diff_added_removed_changed_unchanged(seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, GOOD)
    msm.save_snapshot(
        store,
        "alpha",
        T1,
        [
            {"asset": "BTC", W: 0.5, "metadata_json": {"role": "core"}},  # exposure changed
            {"asset": "ETH", W: 0.3},  # unchanged
            {"asset": "SOL", W: 0.1},  # added
            # CRYPTO-EW removed
        ],
    )
    diff = msm.diff_snapshots(store, "alpha", before=T0, after=T1)
    assert diff.added["unique_identifier"].to_list() == ["SOL"]
    assert diff.removed["unique_identifier"].to_list() == ["CRYPTO-EW"]
    assert diff.changed["unique_identifier"].to_list() == ["BTC"]
    assert diff.unchanged == 1
    changed = diff.changed.row(0, named=True)
    assert (changed["weight_notional_exposure_before"], changed["weight_notional_exposure_after"]) == (0.6, 0.5)
    removed = diff.removed.row(0, named=True)
    assert removed["target_type"] == "portfolio" and removed["weight_notional_exposure_before"] == 0.1
    assert removed["weight_notional_exposure_after"] is None
    added = diff.added.row(0, named=True)
    assert (added["weight_notional_exposure_before"], added["weight_notional_exposure_after"]) == (None, 0.1)
    doc = diff.to_dict()
    assert {"from", "to", "added", "removed", "changed"} <= set(doc)
    assert (
        doc["from"]["position_set_time"] == "2026-01-01T00:00:00Z"
        and doc["to"]["position_set_time"] == "2026-02-01T00:00:00Z"
    )
    for entry in doc["added"] + doc["removed"] + doc["changed"]:
        assert {
            "unique_identifier",
            "target_type",
            "weight_notional_exposure_before",
            "weight_notional_exposure_after",
        } <= set(entry)
    assert doc["removed"][0]["metadata_json_before"] == {"portfolio_role": "satellite_sleeve"}
    assert json.loads(json.dumps(doc)) == doc


def test_diff_sees_metadata_and_exposure_kind_changes(seeded) -> None:
    store = seeded.store
    msm.save_snapshot(
        store, "alpha", T0, [{"asset": "BTC", W: 0.5, "metadata_json": {"v": 1}}, {"asset": "ETH", W: 0.5}]
    )
    msm.save_snapshot(
        store,
        "alpha",
        T1,
        [{"asset": "BTC", W: 0.5, "metadata_json": {"v": 2}}, {"asset": "ETH", "constant_notional_exposure": 0.5}],
    )
    diff = msm.diff_snapshots(store, "alpha", before=T0, after=T1)
    assert diff.changed["unique_identifier"].to_list() == ["BTC", "ETH"]
    assert diff.unchanged == 0 and diff.added.height == 0 and diff.removed.height == 0


def test_diff_uses_the_sets_in_force_and_needs_both(seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, GOOD)
    same = msm.diff_snapshots(store, "alpha", before=T0 + timedelta(days=1), after=T2)
    assert same.before.position_set_uid == same.after.position_set_uid
    assert (same.added.height, same.removed.height, same.changed.height, same.unchanged) == (0, 0, 0, 3)
    with pytest.raises(
        NotFoundError, match=r"snapshot with account 'alpha' at or before '2025-12-01T00:00:00Z' does not exist"
    ):
        msm.diff_snapshots(store, "alpha", before="2025-12-01T00:00:00Z", after=T1)


# -- property: what is saved is what is read --------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
targets = st.lists(st.sampled_from(["BTC", "ETH", "SOL", "CRYPTO-EW"]), min_size=1, max_size=4, unique=True)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(names=targets, data=st.data())
def test_saved_rows_read_back_exactly(seeded, names: list[str], data: st.DataObject) -> None:
    rows = []
    for name in names:
        kind = "portfolio" if name == "CRYPTO-EW" else "asset"
        column = data.draw(
            st.sampled_from(
                ["weight_notional_exposure", "constant_notional_exposure"]
                + (["single_asset_quantity"] if kind == "asset" else [])
            )
        )
        meta = data.draw(
            st.none() | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=2)
        )
        rows.append({kind: name, column: data.draw(finite), **({"metadata_json": meta} if meta is not None else {})})
    snap = msm.save_snapshot(seeded.store, "alpha", T0, rows, overwrite=True)
    got = {r["unique_identifier"]: r for r in snap.to_dict()["positions"]}
    assert set(got) == set(names)
    for row in rows:
        name = row.get("asset") or row.get("portfolio")
        for column in ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity"):
            assert got[name][column] == row.get(column)
        assert got[name]["metadata_json"] == row.get("metadata_json")
