"""Registry services: add / get / update / list for every entity, unique conflicts, cascading and refused deletes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

import msm
from msm.errors import ConflictError, NotFoundError, ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)
W = "weight_notional_exposure"


def _is_uuid(text: str) -> bool:
    return str(uuid.UUID(text)) == text


# -- one table for the six entities ---------------------------------------------------------------------
# (name, add(store) -> row, get, list, update, changes, key column, expected key)
ENTITIES: list[tuple[str, Callable[..., dict[str, Any]], Callable, Callable, Callable, dict[str, Any], str, str]] = [
    (
        "asset",
        lambda s: msm.add_asset(
            s, "ADA", name="Cardano", ticker="ADA", asset_type="crypto", metadata_json={"chain": "cardano"}
        ),
        msm.get_asset,
        msm.list_assets,
        msm.update_asset,
        {"name": "Cardano (renamed)", "ticker": None},
        "unique_identifier",
        "ADA",
    ),
    (
        "portfolio",
        lambda s: msm.add_portfolio(s, "DEFI-EW", portfolio_name="DeFi EW", metadata_json={"style": "equal"}),
        msm.get_portfolio,
        msm.list_portfolios,
        msm.update_portfolio,
        {"portfolio_name": "DeFi Equal Weight"},
        "unique_identifier",
        "DEFI-EW",
    ),
    (
        "account group",
        lambda s: msm.add_account_group(s, "satellite", group_description="satellite accounts"),
        msm.get_account_group,
        msm.list_account_groups,
        msm.update_account_group,
        {"group_description": "moved", "metadata_json": {"a": 1}},
        "group_name",
        "satellite",
    ),
    (
        "account",
        lambda s: msm.add_account(s, "beta", account_name="Beta", is_paper=False, group="core"),
        msm.get_account,
        msm.list_accounts,
        msm.update_account,
        {"account_name": "Beta Two", "account_is_active": False},
        "unique_identifier",
        "beta",
    ),
    (
        "allocation model",
        lambda s: msm.add_allocation_model(s, "aggressive", allocation_model_description="more beta"),
        msm.get_allocation_model,
        msm.list_allocation_models,
        msm.update_allocation_model,
        {"allocation_model_description": "even more"},
        "allocation_model_name",
        "aggressive",
    ),
    (
        "target allocation",
        lambda s: msm.add_allocation(
            s, "alpha-alt", account="alpha", model="balanced", display_name="Alt", source="test"
        ),
        msm.get_allocation,
        msm.list_allocations,
        msm.update_allocation,
        {"display_name": "Alternative", "is_active": False},
        "unique_identifier",
        "alpha-alt",
    ),
]
IDS = [e[0] for e in ENTITIES]


@pytest.mark.parametrize(("name", "add", "get", "list_", "update", "changes", "key", "value"), ENTITIES, ids=IDS)
def test_add_get_list_update(seeded, name, add, get, list_, update, changes, key, value) -> None:
    store = seeded.store
    row = add(store)
    assert _is_uuid(row["uid"])
    assert row[key] == value
    assert get(store, value) == row
    assert get(store, row["uid"]) == row
    assert get(store, uuid.UUID(row["uid"])) == row
    listed = list_(store)
    assert isinstance(listed, pl.DataFrame)
    assert value in listed[key].to_list()
    assert listed[key].to_list() == sorted(listed[key].to_list())
    assert listed.filter(pl.col("uid") == row["uid"]).height == 1
    updated = update(store, value, **changes)
    assert updated == {**row, **changes}
    assert get(store, row["uid"]) == updated


@pytest.mark.parametrize(("name", "add", "get", "list_", "update", "changes", "key", "value"), ENTITIES, ids=IDS)
def test_unique_conflicts(seeded, db_contents, name, add, get, list_, update, changes, key, value) -> None:
    store = seeded.store
    add(store)
    before = db_contents(store)
    with pytest.raises(ConflictError, match=rf"{name} '{value}' already exists \({key} must be unique\)"):
        add(store)
    assert db_contents(store) == before


@pytest.mark.parametrize(("name", "add", "get", "list_", "update", "changes", "key", "value"), ENTITIES, ids=IDS)
def test_unknown_rows_are_not_found(seeded, name, add, get, list_, update, changes, key, value) -> None:
    with pytest.raises(NotFoundError, match=rf"{name} with {key} 'missing' does not exist; create it with `msm "):
        get(seeded.store, "missing")
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError, match=rf"{name} with uid or {key} '{missing}' does not exist"):
        get(seeded.store, missing)
    with pytest.raises(NotFoundError):
        update(seeded.store, "missing", **changes)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: msm.add_asset(s, ""), r"asset: `unique_identifier` = '': String should have at least 1 character"),
        (lambda s: msm.add_asset(s, "   "), r"asset: `unique_identifier` = '   '"),
        (
            lambda s: msm.add_asset(s, "X", asset_type="portfolio"),
            r"`asset_type` = 'portfolio': an asset never represents a portfolio; add "
            r"it with `msm portfolios add` instead",
        ),
        (
            lambda s: msm.add_asset(s, "X", metadata_json=[1]),
            r"`metadata_json` = \[1\]: metadata_json must be a JSON object \(or empty\), got a list",
        ),
        (
            lambda s: msm.add_asset(s, "X", metadata_json="[1]"),
            r"metadata_json must be a JSON object \(or empty\), got a list",
        ),
        (
            lambda s: msm.add_portfolio(s, "X", metadata_json="{bad"),
            r"`metadata_json` = '\{bad': metadata_json is not valid JSON",
        ),
        (lambda s: msm.add_account(s, "X", account_name=""), r"account: `account_name` = ''"),
        (
            lambda s: msm.add_account(s, "X", account_name="X", group="nogroup"),
            r"account group with group_name 'nogroup' does not exist",
        ),
        (
            lambda s: msm.add_allocation(s, "X", account="nobody", model="balanced"),
            r"account with unique_identifier 'nobody' does not exist",
        ),
        (
            lambda s: msm.add_allocation(s, "X", account="alpha", model="nomodel"),
            r"allocation model with allocation_model_name 'nomodel' does not exist",
        ),
        (
            lambda s: msm.update_asset(s, "BTC", unique_identifier="XBT"),
            r"asset: `unique_identifier` = 'XBT': cannot be changed; create a new row instead",
        ),
        (
            lambda s: msm.update_asset(s, "BTC", uid=str(uuid.uuid4())),
            r"asset: `uid` = '[0-9a-f-]+': cannot be changed",
        ),
        (
            lambda s: msm.update_asset(s, "BTC", colour="orange"),
            r"asset: `colour` = 'orange': is not a field of asset; allowed: "
            r"unique_identifier, name, ticker, asset_type, metadata_json",
        ),
        (lambda s: msm.update_asset(s, "BTC", asset_type="portfolio"), r"an asset never represents a portfolio"),
        (
            lambda s: msm.update_account(s, "alpha", unique_identifier="omega"),
            r"account: `unique_identifier` = 'omega': cannot be changed",
        ),
        (
            lambda s: msm.update_allocation(s, "alpha-main", account_uid=str(uuid.uuid4())),
            r"target allocation: `account_uid` = '[0-9a-f-]+': cannot be changed",
        ),
        (
            lambda s: msm.update_allocation(s, "alpha-main", is_active="sometimes"),
            r"target allocation: `is_active` = 'sometimes': Input should be a valid boolean",
        ),
    ],
    ids=[
        "empty id",
        "blank id",
        "asset typed portfolio",
        "metadata list",
        "metadata json array",
        "metadata malformed",
        "empty account name",
        "unknown group",
        "unknown account",
        "unknown model",
        "frozen key",
        "frozen uid",
        "unknown field",
        "update to portfolio type",
        "frozen account key",
        "frozen allocation account",
        "bad boolean",
    ],
)
def test_bad_registry_input_is_refused_and_nothing_changes(seeded, db_contents, call, message: str) -> None:
    before = db_contents(seeded.store)
    with pytest.raises((ValidationError, NotFoundError), match=message):
        call(seeded.store)
    assert db_contents(seeded.store) == before


def test_a_business_key_that_looks_like_a_uuid_is_still_found(seeded) -> None:
    key = str(uuid.uuid4())
    row = msm.add_portfolio(seeded.store, key, portfolio_name="named by a uuid")
    assert row["uid"] != key
    assert msm.get_portfolio(seeded.store, key) == row
    assert msm.get_portfolio(seeded.store, row["uid"]) == row


def test_seeded_rows_are_linked(seeded) -> None:
    assert seeded.account["account_group_uid"] == seeded.group["uid"]
    assert seeded.account["is_paper"] is True and seeded.account["account_is_active"] is True
    assert seeded.allocation["account_uid"] == seeded.account["uid"]
    assert seeded.allocation["account_allocation_model_uid"] == seeded.model["uid"]
    assert seeded.allocation["is_active"] is True


def test_metadata_is_stored_as_an_object_and_read_back_parsed(seeded) -> None:
    row = msm.add_asset(seeded.store, "DOT", metadata_json='{"chain": "polkadot", "n": [1, 2]}')
    assert row["metadata_json"] == {"chain": "polkadot", "n": [1, 2]}
    stored = seeded.store.query("SELECT json_type(metadata_json) AS t FROM asset WHERE unique_identifier = 'DOT'")["t"][
        0
    ]
    assert stored == "OBJECT"


def test_account_group_can_be_changed_and_cleared(seeded) -> None:
    store = seeded.store
    msm.add_account(store, "beta", account_name="Beta", group="core")
    other = msm.add_account_group(store, "satellite")
    assert msm.update_account(store, "beta", group="satellite")["account_group_uid"] == other["uid"]
    assert msm.update_account(store, "beta", group=None)["account_group_uid"] is None


def test_an_account_with_allocations_cannot_change_group_and_says_why(seeded, db_contents) -> None:
    # A known DuckDB limitation (documented in docs/architecture.md): updating an indexed (foreign
    # key) column rewrites the row, which DuckDB refuses while other rows reference it. The refusal
    # must say so, change nothing, and the group-delete advice must not promise a way out.
    store = seeded.store
    msm.add_account_group(store, "satellite")
    before = db_contents(store)
    for group in ("satellite", None):
        with pytest.raises(
            ConflictError,
            match=(
                r"account 'alpha': account_group_uid cannot be changed while other rows reference "
                r"it .*known DuckDB foreign-key limitation"
            ),
        ):
            msm.update_account(store, "alpha", group=group)
        assert db_contents(store) == before
    with pytest.raises(
        ConflictError,
        match=(
            r"account group 'core' is still referenced by 1 row in account\.account_group_uid; .*an "
            r"account that has target allocations cannot be moved"
        ),
    ):
        msm.delete_account_group(store, "core")
    assert db_contents(store) == before
    msm.delete_account(store, "alpha")  # the way out the advice names
    msm.delete_account_group(store, "core")


def test_list_allocations_by_account_and_activity(seeded) -> None:
    store = seeded.store
    msm.add_allocation(store, "alpha-old", account="alpha", model="balanced", is_active=False)
    msm.add_account(store, "beta", account_name="Beta")
    msm.add_allocation(store, "beta-main", account="beta", model="balanced")
    assert msm.list_allocations(store)["unique_identifier"].to_list() == ["alpha-main", "alpha-old", "beta-main"]
    assert msm.list_allocations(store, account="alpha")["unique_identifier"].to_list() == ["alpha-main", "alpha-old"]
    assert msm.list_allocations(store, account="alpha", active_only=True)["unique_identifier"].to_list() == [
        "alpha-main"
    ]
    assert msm.list_allocations(store, active_only=True)["unique_identifier"].to_list() == ["alpha-main", "beta-main"]


def test_referenced_rows_can_still_be_updated(seeded) -> None:
    store = seeded.store
    msm.save_snapshot(store, "alpha", T0, [{"asset": "BTC", W: 0.6}, {"portfolio": "CRYPTO-EW", W: 0.4}])
    assert msm.update_asset(store, "BTC", name="Bitcoin Core")["name"] == "Bitcoin Core"
    assert msm.update_portfolio(store, "CRYPTO-EW", portfolio_name="Majors")["portfolio_name"] == "Majors"
    assert msm.update_account(store, "alpha", account_name="Alpha II")["account_name"] == "Alpha II"
    assert msm.update_allocation(store, "alpha-main", display_name="Main")["display_name"] == "Main"
    assert (
        msm.update_allocation_model(store, "balanced", allocation_model_description="x")["allocation_model_description"]
        == "x"
    )
    assert msm.update_account_group(store, "core", group_description="y")["group_description"] == "y"
    labels = msm.read_snapshot(store, "alpha").positions["display_label"].to_list()
    assert labels == ["Bitcoin Core (BTC)", "Majors"]


def test_reference_frame_finds_by_uid_or_identifier(seeded) -> None:
    from msm.services.registry import reference_frame

    frame = reference_frame(
        seeded.store,
        "asset",
        uids=pl.Series([seeded.uid("ETH").upper(), "not-a-uuid", None]),
        identifiers=pl.Series(["BTC", "DOGE"]),
    )
    assert sorted(frame.rows()) == sorted([(seeded.uid("BTC"), "BTC"), (seeded.uid("ETH"), "ETH")])


# -- deletes that cascade -----------------------------------------------------------------------------------
def _two_accounts(seeded) -> None:
    store = seeded.store
    msm.add_allocation(store, "alpha-alt", account="alpha", model="balanced")
    msm.save_snapshot(
        store, "alpha", T0, [{"asset": "BTC", W: 0.6}, {"portfolio": "CRYPTO-EW", W: 0.4}], allocation="alpha-main"
    )
    msm.save_snapshot(store, "alpha", T1, [{"asset": "ETH", W: 1.0}], allocation="alpha-main")
    msm.save_snapshot(store, "alpha", T0, [{"asset": "SOL", W: 1.0}], allocation="alpha-alt")
    msm.add_account(store, "beta", account_name="Beta")
    msm.add_allocation(store, "beta-main", account="beta", model="balanced")
    msm.save_snapshot(store, "beta", T0, [{"asset": "BTC", W: 0.5}, {"asset": "ETH", W: 0.5}])


@pytest.fixture
def two_accounts(seeded_with):
    """alpha (two allocations, three snapshots) and beta (one allocation, one snapshot)."""
    seeded, _ = seeded_with("test_registry.two_accounts", _two_accounts)
    return seeded


def _count(store: msm.Store, table: str) -> int:
    return store.query(f"SELECT count(*) AS n FROM {table}")["n"][0]


def test_delete_account_removes_its_allocations_sets_and_rows(two_accounts, db_contents) -> None:
    store = two_accounts.store
    before = db_contents(store)
    deleted = msm.delete_account(store, "alpha")
    assert deleted["unique_identifier"] == "alpha"
    with pytest.raises(NotFoundError):
        msm.get_account(store, "alpha")
    assert msm.list_allocations(store)["unique_identifier"].to_list() == ["beta-main"]
    assert _count(store, "position_set") == 1
    assert _count(store, "target_positions") == 2
    assert msm.read_snapshot(store, "beta").positions.height == 2  # the other account is untouched
    after = db_contents(store)
    for table in ("asset", "portfolio", "account_group", "account_allocation_model"):
        assert after[table] == before[table]


def test_delete_allocation_removes_its_sets_and_rows_only(two_accounts) -> None:
    store = two_accounts.store
    msm.delete_allocation(store, "alpha-main")
    assert msm.list_allocations(store, account="alpha")["unique_identifier"].to_list() == ["alpha-alt"]
    assert _count(store, "position_set") == 2
    assert _count(store, "target_positions") == 3
    assert msm.read_snapshot(store, "alpha").positions["unique_identifier"].to_list() == ["SOL"]


def test_delete_position_set_removes_its_rows_only(two_accounts) -> None:
    store = two_accounts.store
    latest = msm.read_snapshot(store, "alpha", allocation="alpha-main")
    deleted = msm.delete_position_set(store, latest.position_set_uid)
    assert deleted["uid"] == latest.position_set_uid
    assert deleted["position_set_time"] == T1
    assert _count(store, "position_set") == 3
    assert _count(store, "target_positions") == 5
    assert msm.read_snapshot(store, "alpha", allocation="alpha-main").position_set_time == T0
    with pytest.raises(NotFoundError, match=r"position set with uid '[0-9a-f-]+' does not exist"):
        msm.delete_position_set(store, latest.position_set_uid)
    with pytest.raises(NotFoundError, match=r"position set with uid 'junk' does not exist"):
        msm.delete_position_set(store, "junk")


def test_delete_of_unknown_rows(seeded) -> None:
    for delete in (
        msm.delete_account,
        msm.delete_allocation,
        msm.delete_asset,
        msm.delete_portfolio,
        msm.delete_allocation_model,
        msm.delete_account_group,
    ):
        with pytest.raises(NotFoundError):
            delete(seeded.store, "missing")


# -- deletes that are refused while rows reference them ------------------------------------------------------------
@pytest.mark.parametrize(
    ("delete", "ref", "message"),
    [
        (
            msm.delete_asset,
            "BTC",
            r"asset 'BTC' is still referenced by 2 rows in target_positions\.asset_uid; "
            r"delete or retarget those rows first",
        ),
        (msm.delete_asset, "ETH", r"asset 'ETH' is still referenced by 2 rows in target_positions\.asset_uid"),
        (
            msm.delete_portfolio,
            "CRYPTO-EW",
            r"portfolio 'CRYPTO-EW' is still referenced by 1 row in "
            r"target_positions\.portfolio_uid; delete or retarget account target positions",
        ),
        (
            msm.delete_allocation_model,
            "balanced",
            r"allocation model 'balanced' is still referenced by 3 rows in "
            r"account_target_allocation\.account_allocation_model_uid; delete those target allocations first",
        ),
        (
            msm.delete_account_group,
            "core",
            r"account group 'core' is still referenced by 1 row in account\.account_group_uid; move "
            r"those accounts to another group \(or none\) first",
        ),
    ],
    ids=["asset", "asset by two sets", "portfolio", "model", "group"],
)
def test_deletes_of_referenced_rows_are_refused_with_counts(
    two_accounts, db_contents, delete, ref: str, message: str
) -> None:
    store = two_accounts.store
    before = db_contents(store)
    with pytest.raises(ConflictError, match=message):
        delete(store, ref)
    assert db_contents(store) == before


@pytest.mark.parametrize(
    ("delete", "ref", "getter"),
    [
        (msm.delete_asset, "SOL", msm.get_asset),
        (msm.delete_portfolio, "CRYPTO-EW", msm.get_portfolio),
        (msm.delete_allocation_model, "balanced", msm.get_allocation_model),
        (msm.delete_account_group, "core", msm.get_account_group),
    ],
    ids=["asset", "portfolio", "model", "group"],
)
def test_unreferenced_rows_can_be_deleted(seeded, delete, ref: str, getter) -> None:
    store = seeded.store
    if ref == "balanced":
        msm.delete_allocation(store, "alpha-main")
    if ref == "core":
        ref = msm.add_account_group(store, "empty")["group_name"]
    row = delete(store, ref)
    assert row["uid"]
    with pytest.raises(NotFoundError):
        getter(store, ref)


def test_an_asset_becomes_deletable_once_its_rows_are_gone(two_accounts) -> None:
    store = two_accounts.store
    with pytest.raises(ConflictError, match=r"still referenced by 1 row in target_positions\.asset_uid"):
        msm.delete_asset(store, "SOL")
    msm.delete_allocation(store, "alpha-alt")
    msm.delete_asset(store, "SOL")
    assert "SOL" not in msm.list_assets(store)["unique_identifier"].to_list()


# -- errors as data: the fields a caller reads instead of the message -----------------------------------------
def test_refusals_carry_their_fields(two_accounts) -> None:
    store = two_accounts.store
    with pytest.raises(ConflictError) as refused:
        msm.delete_asset(store, "BTC")
    assert (refused.value.entity, refused.value.key, refused.value.value) == ("asset", "unique_identifier", "BTC")
    assert refused.value.references == {"target_positions.asset_uid": 2}
    with pytest.raises(ConflictError) as taken:
        msm.add_allocation_model(store, "balanced")
    assert taken.value.to_dict() | {"message": None} == {
        "error": "ConflictError",
        "message": None,
        "entity": "allocation model",
        "key": "allocation_model_name",
        "value": "balanced",
        "references": None,
    }
    msm.add_account_group(store, "satellite")
    with pytest.raises(ConflictError) as moved:
        msm.update_account(store, "alpha", group="satellite")
    assert moved.value.references == {"account_target_allocation.account_uid": 2}
    with pytest.raises(NotFoundError) as missing:
        msm.get_account(store, "nobody")
    assert (missing.value.entity, missing.value.key, missing.value.value) == ("account", "unique_identifier", "nobody")
