"""Bulk reference data (the design's bulk reference data contract): msm.import_reference and `msm ... import FILE`.

Every refusal names the row, field and value, and leaves the database exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from tests.cli_harness import Cli, contents, write_rows


def _import(store: msm.Store, entity: str, rows: list[dict[str, Any]], **kwargs: Any) -> msm.ImportResult:
    return msm.import_reference(store, entity, rows, **kwargs)


# -- what is written -------------------------------------------------------------------------------
def test_assets_added_in_one_go(store: msm.Store) -> None:
    result = _import(
        store,
        "assets",
        [
            {"unique_identifier": " BTC ", "name": "Bitcoin", "metadata_json": '{"sector": "L1"}'},
            {"unique_identifier": "ETH", "ticker": "ETH", "asset_type": "crypto"},
        ],
    )
    assert (result.added, result.updated, result.unchanged) == (2, 0, 0)
    assert result.rows.to_dicts() == [
        {"row": 1, "unique_identifier": "BTC", "action": "add"},
        {"row": 2, "unique_identifier": "ETH", "action": "add"},
    ]
    btc = msm.get_asset(store, "BTC")
    assert (btc["name"], btc["metadata_json"]) == ("Bitcoin", {"sector": "L1"})
    assert msm.get_asset(store, "ETH")["asset_type"] == "crypto"


def test_upsert_updates_given_cells_and_keeps_the_rest(seeded: Any) -> None:
    store = seeded.store
    result = _import(
        store,
        "assets",
        [
            {"unique_identifier": "BTC", "name": "Bitcoin (new)", "ticker": None},
            {"unique_identifier": "ETH", "name": "Ether"},
            {"unique_identifier": "ADA", "name": "Cardano"},
        ],
        upsert=True,
    )
    assert (result.added, result.updated, result.unchanged) == (1, 1, 1)
    btc = msm.get_asset(store, "BTC")
    assert (btc["name"], btc["ticker"], btc["asset_type"]) == ("Bitcoin (new)", "BTC", "crypto")  # empty ticker: kept
    assert msm.get_asset(store, "ADA")["uid"]


def test_dry_run_plans_without_writing(seeded: Any, db_contents: Any) -> None:
    before = db_contents(seeded.store)
    plan = _import(
        seeded.store,
        "assets",
        [{"unique_identifier": "BTC", "name": "X"}, {"unique_identifier": "ADA"}],
        upsert=True,
        dry_run=True,
    )
    assert (plan.added, plan.updated, plan.dry_run) == (1, 1, True)
    assert db_contents(seeded.store) == before


def test_accounts_and_allocations_by_reference(seeded: Any) -> None:
    store = seeded.store
    _import(store, "account_groups", [{"group_name": "satellite", "group_description": "small books"}])
    _import(
        store,
        "accounts",
        [
            {"unique_identifier": "beta", "account_name": "Beta", "group": "satellite", "is_paper": "no"},
            {"unique_identifier": "gamma", "account_name": "Gamma", "account_is_active": False},
        ],
    )
    beta, gamma = msm.get_account(store, "beta"), msm.get_account(store, "gamma")
    assert beta["account_group_uid"] == msm.get_account_group(store, "satellite")["uid"]
    assert (beta["is_paper"], beta["account_is_active"]) == (False, True)
    assert (gamma["is_paper"], gamma["account_is_active"], gamma["account_group_uid"]) == (True, False, None)
    _import(store, "allocation_models", [{"allocation_model_name": "growth"}])
    _import(
        store,
        "allocations",
        [{"unique_identifier": "beta-main", "account": "beta", "model": "growth", "is_active": "1"}],
    )
    allocation = msm.get_allocation(store, "beta-main")
    assert (allocation["account_uid"], allocation["is_active"]) == (beta["uid"], True)
    # an account without allocations may change group on upsert
    assert (
        _import(
            store, "accounts", [{"unique_identifier": "gamma", "account_name": "Gamma", "group": "core"}], upsert=True
        ).updated
        == 1
    )
    assert msm.get_account(store, "gamma")["account_group_uid"] == seeded.group["uid"]


def test_file_sources(store: msm.Store, tmp_path: Path) -> None:
    rows = [{"unique_identifier": f"A{i}", "name": f"Asset {i}"} for i in range(3)]
    for suffix in (".csv", ".json", ".parquet"):
        path = write_rows(
            tmp_path / f"assets{suffix}", [{**r, "unique_identifier": r["unique_identifier"] + suffix} for r in rows]
        )
        assert msm.import_reference(store, "assets", path).added == 3
    xlsx = tmp_path / "assets.xlsx"
    pl.DataFrame(rows).with_columns(pl.col("unique_identifier") + "-x").write_excel(xlsx)
    assert msm.import_reference(store, "assets", xlsx).added == 3
    assert msm.list_assets(store).height == 12


# -- refusals: every bad row named, nothing stored ------------------------------------------------
BAD = [
    (
        "assets",
        [{"unique_identifier": "A"}, {"unique_identifier": "A"}],
        r"row 2.*unique_identifier.*'A'.*duplicate unique_identifier in the file; first given at row 1",
    ),
    (
        "assets",
        [{"unique_identifier": "A", "colour": "red"}],
        r"colour.*is not a column of a asset file; allowed: unique_identifier, name",
    ),
    ("assets", [{"name": "no key"}], r"unique_identifier.*column is missing \(required\)"),
    ("assets", [{"unique_identifier": "  "}], r"row 1.*unique_identifier.*must not be empty"),
    (
        "assets",
        [{"unique_identifier": "A", "asset_type": "Portfolio"}],
        r"row 1.*asset_type.*'Portfolio'.*an asset never represents a portfolio",
    ),
    (
        "assets",
        [{"unique_identifier": "A", "metadata_json": "[1, 2]"}],
        r"row 1.*metadata_json.*must be a JSON object \(or empty\), got a JSON array",
    ),
    ("assets", [{"unique_identifier": "A", "metadata_json": "{oops"}], r"row 1.*metadata_json.*is not valid JSON"),
    ("assets", [{"unique_identifier": "BTC"}], r"row 1.*unique_identifier.*'BTC'.*already exists; pass --upsert"),
    ("assets", [{"unique_identifier": "A", "uid": "x"}], r"uid.*uids are assigned by the database"),
    ("assets", [{"unique_identifier": "x" * 300}], r"row 1.*unique_identifier.*longer than 255 characters"),
    (
        "accounts",
        [{"unique_identifier": "b", "account_name": "B", "group": "nowhere"}],
        r"row 1.*group.*'nowhere'.*no account group has this group_name; add it first",
    ),
    (
        "accounts",
        [{"unique_identifier": "b", "account_name": "B", "is_paper": "maybe"}],
        r"row 1.*is_paper.*'maybe'.*must be true or false",
    ),
    ("accounts", [{"unique_identifier": "b"}], r"account_name.*column is missing"),
    (
        "accounts",
        [{"unique_identifier": "b", "account_name": "B", "account_group_uid": "x"}],
        r"account_group_uid.*name the group in a `group` column",
    ),
    (
        "allocations",
        [{"unique_identifier": "x", "account": "ghost", "model": "balanced"}],
        r"row 1.*account.*'ghost'.*no account has this unique_identifier",
    ),
    (
        "allocations",
        [{"unique_identifier": "x", "account": "alpha", "model": "ghost"}],
        r"row 1.*model.*'ghost'.*no allocation model has this allocation_model_name",
    ),
    ("nonsense", [{"a": 1}], r"entity.*'nonsense'.*is not importable; use one of assets, portfolios"),
]


@pytest.mark.parametrize(("entity", "rows", "message"), BAD, ids=[f"{e}-{i}" for i, (e, *_r) in enumerate(BAD)])
def test_bad_rows_refused_with_their_message(
    seeded: Any, db_contents: Any, entity: str, rows: list[dict[str, Any]], message: str
) -> None:
    before = db_contents(seeded.store)
    with pytest.raises(msm.ValidationError, match=message):
        _import(seeded.store, entity, rows)
    assert db_contents(seeded.store) == before


def test_every_bad_row_is_reported_at_once(seeded: Any, db_contents: Any) -> None:
    before = db_contents(seeded.store)
    rows = [
        {"unique_identifier": "OK1"},
        {"unique_identifier": "BTC"},
        {"unique_identifier": ""},
        {"unique_identifier": "OK1"},
        {"unique_identifier": "P", "asset_type": "portfolio"},
    ]
    with pytest.raises(msm.ValidationError) as caught:
        _import(seeded.store, "assets", rows)
    assert sorted(e.row for e in caught.value.errors) == [2, 3, 4, 5]
    assert "asset import: 4 problems found; nothing was stored" in str(caught.value)
    assert db_contents(seeded.store) == before


def test_upsert_refuses_what_cannot_change(seeded: Any, db_contents: Any) -> None:
    store = seeded.store
    msm.add_allocation_model(store, "growth")
    before = db_contents(store)
    with pytest.raises(
        msm.ValidationError, match=r"row 1.*model.*'growth'.*cannot be changed on an existing target allocation"
    ):
        _import(
            store,
            "allocations",
            [{"unique_identifier": "alpha-main", "account": "alpha", "model": "growth"}],
            upsert=True,
        )
    msm.add_account_group(store, "other")
    before = db_contents(store)
    with pytest.raises(msm.ValidationError, match=r"row 1.*group.*cannot move an account that has 1 target allocation"):
        _import(
            store, "accounts", [{"unique_identifier": "alpha", "account_name": "Alpha", "group": "other"}], upsert=True
        )
    assert db_contents(store) == before


def test_empty_and_headerless_files(store: msm.Store, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("unique_identifier,name\n")
    with pytest.raises(msm.ValidationError, match="has no rows"):
        msm.import_reference(store, "assets", empty)
    with pytest.raises(msm.ValidationError, match="the file has no rows"):
        msm.import_reference(store, "assets", pl.DataFrame(schema={"unique_identifier": pl.String}))
    second_header = tmp_path / "twice.xlsx"
    pl.DataFrame({"unique_identifier": ["A", "unique_identifier"], "name": ["a", "name"]}).write_excel(second_header)
    with pytest.raises(msm.ValidationError, match=r"row 2.*repeats the header row"):
        msm.import_reference(store, "assets", second_header)
    empty_xlsx = tmp_path / "empty.xlsx"
    pl.DataFrame(schema={"unique_identifier": pl.String}).write_excel(empty_xlsx)
    with pytest.raises(msm.ValidationError, match="has no rows"):
        msm.import_reference(store, "assets", empty_xlsx)
    assert msm.list_assets(store).height == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"unique_identifier": st.text(min_size=0, max_size=6), "name": st.one_of(st.none(), st.text(max_size=8))}
        ),
        min_size=1,
        max_size=8,
    )
)
def test_imported_rows_read_back_or_refused_cleanly(store: msm.Store, rows: list[dict[str, Any]]) -> None:
    before = msm.list_assets(store)
    try:
        result = _import(store, "assets", rows, upsert=True)
    except msm.ValidationError:
        assert msm.list_assets(store).equals(before)
        return
    stored = {r["unique_identifier"]: r for r in msm.list_assets(store).iter_rows(named=True)}

    def stripped(text: str | None) -> str | None:  # the service's own definition of surrounding whitespace
        return None if text is None else (pl.Series([text]).str.strip_chars().item() or None)

    for row in rows:
        key, name = stripped(row["unique_identifier"]), stripped(row["name"])
        if name is not None:
            assert stored[key]["name"] == name
    assert result.added + result.updated + result.unchanged == len(rows)


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def cli(seeded: Any) -> Cli:
    msm.migrate(seeded.store, msm_portfolios.MIGRATIONS)  # the CLI wants every migration
    return Cli(Path(seeded.store.path))


def test_cli_import_and_upsert(cli: Cli, tmp_path: Path) -> None:
    path = write_rows(
        tmp_path / "assets.csv", [{"unique_identifier": "ADA", "name": "Cardano"}, {"unique_identifier": "DOT"}]
    )
    assert (
        cli.ok("assets", "import", str(path)).out == f"imported assets from {path}: 2 added, 0 updated, 0 unchanged\n"
    )
    cli.fails("assets", "import", str(path), match=r"row 1.*unique_identifier.*'ADA'.*already exists; pass --upsert")
    path = write_rows(
        tmp_path / "again.json",
        [{"unique_identifier": "ADA", "name": "Cardano"}, {"unique_identifier": "DOT", "ticker": "DOT"}],
    )
    assert cli.ok("assets", "import", str(path), "--upsert", "--dry-run").out.startswith(
        "dry run, nothing written: 0 assets would be added, 1 updated, 1 unchanged"
    )
    assert json.loads(cli.ok("assets", "import", str(path), "--upsert", "--format", "json").out) == {
        "added": 0,
        "updated": 1,
        "unchanged": 1,
    }


def test_cli_imports_every_entity(cli: Cli, tmp_path: Path) -> None:
    steps = [
        ("portfolios", [{"unique_identifier": "P2", "portfolio_name": "Two"}]),
        ("groups", [{"group_name": "g2"}]),
        ("accounts", [{"unique_identifier": "acc2", "account_name": "Two", "group": "g2"}]),
        ("models", [{"allocation_model_name": "m2"}]),
        ("allocations", [{"unique_identifier": "acc2-main", "account": "acc2", "model": "m2"}]),
    ]
    for group, rows in steps:
        path = write_rows(tmp_path / f"{group}.parquet", rows)
        assert cli.ok(group, "import", str(path), "--format", "json").json() == {
            "added": 1,
            "updated": 0,
            "unchanged": 0,
        }
    assert [
        a["unique_identifier"] for a in cli.ok("allocations", "list", "--format", "json").json()["allocations"]
    ] == ["acc2-main", "alpha-main"]
    assert "g2" in cli.ok("groups", "list").out


def test_cli_refusal_names_every_row_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    before = contents(cli.store)
    path = write_rows(
        tmp_path / "accounts.csv",
        [
            {"unique_identifier": "a1", "account_name": "A", "group": "nope"},
            {"unique_identifier": "a2", "account_name": "", "is_paper": "sometimes"},
        ],
    )
    result = cli.fails("accounts", "import", str(path), match=r"account import: 3 problems found; nothing was stored")
    for expected in (
        r"row 1.*group.*'nope'",
        r"row 2.*account_name.*must not be empty",
        r"row 2.*is_paper.*'sometimes'",
    ):
        assert __import__("re").search(expected, result.err), result.err
    assert contents(cli.store) == before
    cli.fails("assets", "import", str(tmp_path / "missing.csv"), match="does not exist")


def _xlsx(path: Path, frame: pl.DataFrame) -> Path:
    frame.write_excel(path)
    return path


CLI_BAD = [
    (
        "assets",
        lambda d: write_rows(d / "dup.csv", [{"unique_identifier": "Z"}, {"unique_identifier": "Z"}]),
        r"row 2.*duplicate unique_identifier",
    ),
    (
        "assets",
        lambda d: write_rows(d / "col.json", [{"unique_identifier": "Z", "colour": "red"}]),
        r"`colour`.*is not a column",
    ),
    (
        "accounts",
        lambda d: write_rows(d / "miss.parquet", [{"unique_identifier": "z"}]),
        r"`account_name`.*column is missing",
    ),
    (
        "allocations",
        lambda d: write_rows(d / "ref.csv", [{"unique_identifier": "z", "account": "nope", "model": "balanced"}]),
        r"row 1.*`account` = 'nope'",
    ),
    (
        "portfolios",
        lambda d: write_rows(d / "meta.json", [{"unique_identifier": "Z", "metadata_json": "[1]"}]),
        r"row 1.*must be a JSON object",
    ),
    ("assets", lambda d: (d / "empty.csv").write_text("") or d / "empty.csv", r"is empty"),
    ("assets", lambda d: _xlsx(d / "none.xlsx", pl.DataFrame(schema={"unique_identifier": pl.String})), r"has no rows"),
    (
        "assets",
        lambda d: _xlsx(d / "twice.xlsx", pl.DataFrame({"unique_identifier": ["Z", "unique_identifier"]})),
        r"row 2.*repeats the header row",
    ),
]


@pytest.mark.parametrize(("group", "make", "message"), CLI_BAD, ids=[m for *_, m in CLI_BAD])
def test_cli_refuses_bad_files_and_stores_nothing(
    cli: Cli, tmp_path: Path, group: str, make: Any, message: str
) -> None:
    before = contents(cli.store)
    cli.fails(group, "import", str(make(tmp_path)), match=message)
    assert contents(cli.store) == before


def test_bulk_rules_are_named(seeded: Any) -> None:
    """Each refused row names the declared rule it broke (``RowError.code``), not only its message."""
    rows = [
        {"unique_identifier": "A"},
        {"unique_identifier": "A"},
        {"unique_identifier": "BTC"},
        {"unique_identifier": " "},
        {"unique_identifier": "P", "asset_type": "portfolio"},
    ]
    with pytest.raises(msm.ValidationError) as caught:
        _import(seeded.store, "assets", rows)
    assert [(e.row, e.code) for e in caught.value.errors] == [
        (2, "unique_identifier_unique_in_file"),
        (3, "unique_identifier_new"),
        (4, "unique_identifier_required"),
        (5, "asset_type_refused"),
    ]
