"""The ``msm`` command line (the design's command line contract): JSON round trips, exit codes, refused input.

Commands run in-process through ``msm_cli.main.main(argv)`` (fast); one test runs the installed
console script, and one runs the shell examples of ``docs/cli.md``. Every database is a real
DuckDB file under ``tmp_path``. Each refused input asserts that the database holds exactly what
it held before.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import msm
from msm.store import MSM_MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
MSM_SCRIPT = Path(sys.executable).parent / "msm"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
T1, T2 = "2026-05-25T00:00:00Z", "2026-06-01T00:00:00Z"
W = "weight_notional_exposure"


# -- harness -------------------------------------------------------------------------------------
from cli_harness import Cli, contents, write_rows  # noqa: E402


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSM_DB", raising=False)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A runner bound to ``tmp_path/msm.duckdb`` (not created yet)."""
    return Cli(tmp_path / "msm.duckdb")


@dataclass
class World:
    """A database built through the CLI, and the uids it printed (by identifier)."""

    cli: Cli
    uids: dict[str, str]


def _copy(source: Path, target: Path) -> None:
    for suffix in ("", ".wal"):
        if source.with_name(source.name + suffix).exists():
            shutil.copyfile(source.with_name(source.name + suffix), target.with_name(target.name + suffix))


def _build_world(cli: Cli) -> dict[str, str]:
    cli.ok("init")
    uids: dict[str, str] = {}
    for ident, name in (("BTC", "Bitcoin"), ("ETH", "Ether"), ("SOL", "Solana")):
        uids[ident] = cli.ok(
            "assets", "add", ident, "--name", name, "--ticker", ident, "--type", "crypto", "--format", "json"
        ).json()["uid"]
    uids["CRYPTO-EW"] = cli.ok(
        "portfolios", "add", "CRYPTO-EW", "--name", "Crypto Majors EW", "--format", "json"
    ).json()["uid"]
    cli.ok("models", "add", "core")
    for account in ("ACC-0", "ACC-1", "ACC-2"):
        uids[account] = cli.ok("accounts", "add", account, "--name", f"Account {account}", "--format", "json").json()[
            "uid"
        ]
    for allocation, account in (("ACC-1-CORE", "ACC-1"), ("ACC-2-A", "ACC-2"), ("ACC-2-B", "ACC-2")):
        uids[allocation] = cli.ok(
            "allocations", "add", allocation, "--account", account, "--model", "core", "--format", "json"
        ).json()["uid"]
    return uids


def _add_two_snapshots(cli: Cli, folder: Path) -> None:
    """ACC-1 at T1: BTC 0.6, CRYPTO-EW 0.3 (with metadata), ETH 0.1.

    At T2: BTC 0.5, CRYPTO-EW 0.3 (other metadata), SOL notional 500.
    """
    first = [
        {"asset": "BTC", "portfolio": None, W: "0.6", "constant_notional_exposure": None, "metadata_json": None},
        {
            "asset": None,
            "portfolio": "CRYPTO-EW",
            W: "0.3",
            "constant_notional_exposure": None,
            "metadata_json": '{"portfolio_role": "satellite_sleeve"}',
        },
        {"asset": "ETH", "portfolio": None, W: "0.1", "constant_notional_exposure": None, "metadata_json": None},
    ]
    second = [
        {"asset": "BTC", "portfolio": None, W: "0.5", "constant_notional_exposure": None, "metadata_json": None},
        {
            "asset": None,
            "portfolio": "CRYPTO-EW",
            W: "0.3",
            "constant_notional_exposure": None,
            "metadata_json": '{"portfolio_role": "core"}',
        },
        {"asset": "SOL", "portfolio": None, W: None, "constant_notional_exposure": "500", "metadata_json": None},
    ]
    _save(cli, "ACC-1", T1, write_rows(folder / "first.csv", first))
    _save(cli, "ACC-1", T2, write_rows(folder / "second.csv", second))


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """Built once per session through the CLI, then copied per test (the uids are the same in every test)."""
    folder = tmp_path_factory.mktemp("cli-templates")
    world_cli = Cli(folder / "world.duckdb")
    uids = _build_world(world_cli)
    _copy(world_cli.db, folder / "two.duckdb")
    _add_two_snapshots(Cli(folder / "two.duckdb"), folder)
    return world_cli.db, folder / "two.duckdb", uids


@pytest.fixture
def world(cli: Cli, _templates: tuple[Path, Path, dict[str, str]]) -> World:
    """Assets BTC/ETH/SOL, portfolio CRYPTO-EW, model core; account ACC-1 with one active allocation
    ACC-1-CORE, ACC-0 with none, ACC-2 with two (ACC-2-A, ACC-2-B). No snapshot."""
    _copy(_templates[0], cli.db)
    return World(cli, dict(_templates[2]))


@pytest.fixture
def two_snapshots(cli: Cli, _templates: tuple[Path, Path, dict[str, str]]) -> World:
    """``world`` plus two snapshots of ACC-1 (see :func:`_add_two_snapshots`)."""
    _copy(_templates[1], cli.db)
    return World(cli, dict(_templates[2]))


# -- init and the database checks ------------------------------------------------------------------
def test_init_creates_then_reports_up_to_date(cli: Cli) -> None:
    first = cli.ok("init", "--format", "json").json()
    assert first["database"] == str(cli.db) and first["created"] is True
    assert [(m["namespace"], m["version"]) for m in first["applied"]] == [
        ("msm", 1),
        ("msm", 2),
        ("msm", 3),
        ("msm", 4),
        ("msm", 5),
        ("msm_portfolios", 1),
        ("msm_portfolios", 2),
    ]
    assert all(set(m) == {"namespace", "version", "name"} for m in first["applied"])
    assert cli.ok("init", "--format", "json").json() == {"database": str(cli.db), "created": False, "applied": []}
    assert "is up to date" in cli.ok("init").out


def test_init_text_lists_applied_migrations(cli: Cli) -> None:
    out = cli.ok("init").out
    assert f"created database {cli.db}" in out
    assert "applied migration msm 0001 registry_and_asset_targets" in out
    assert "applied migration msm 0002 adr_0027_portfolio_aware_targets" in out
    assert "applied migration msm 0003 holdings_prices_fx" in out
    assert "applied migration msm_portfolios 0001 portfolio_weights" in out
    assert "applied migration msm_portfolios 0002 nested_portfolios" in out


COMMANDS_NEEDING_A_DATABASE = [
    ["assets", "list"],
    ["assets", "add", "BTC"],
    ["portfolios", "add", "P"],
    ["accounts", "add", "A", "--name", "n", "--group", "G"],
    ["models", "add", "M"],
    ["allocations", "list"],
    ["targets", "show", "ACC-1"],
    ["targets", "history", "ACC-1"],
    ["targets", "diff", "ACC-1", "--from", T1, "--to", T2],
    ["candidates", "btc"],
]


@pytest.mark.parametrize("argv", COMMANDS_NEEDING_A_DATABASE, ids=lambda a: " ".join(a[:2]))
def test_no_database_is_an_error_and_no_file_is_created(cli: Cli, argv: list[str], tmp_path: Path) -> None:
    cli.fails(*argv, match=r"no database at .*msm\.duckdb; create it with `msm init`")
    assert not cli.db.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_without_database_creates_no_file(cli: Cli, tmp_path: Path) -> None:
    f = write_rows(tmp_path / "t.csv", [{"asset": "BTC", "weight_notional_exposure": 1}])
    cli.fails("targets", "save", "ACC-1", "--at", T1, "--file", str(f), match="no database at")
    assert not cli.db.exists()


def test_empty_database_file_needs_init(cli: Cli) -> None:
    duckdb.connect(str(cli.db)).close()
    before = contents(cli.store)
    cli.fails("assets", "list", match=r"needs migrations \(msm 0 < 5.*run `msm init`")
    assert contents(cli.store) == before


def test_partially_migrated_database_needs_init(cli: Cli) -> None:
    store = cli.store
    with store.connect() as con:
        con.execute(
            "CREATE TABLE schema_migrations (namespace VARCHAR, version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ "
            "DEFAULT now())"
        )
        first = MSM_MIGRATIONS.migrations[0]
        con.execute(first.sql)
        con.execute(
            "INSERT INTO schema_migrations (namespace, version, name) VALUES (?, ?, ?)",
            [first.namespace, first.version, first.name],
        )
    before = contents(store)
    cli.fails("targets", "show", "ACC-1", match=r"needs migrations \(msm 1 < 5")
    assert contents(store) == before
    applied = cli.ok("init", "--format", "json").json()["applied"]
    assert ("msm", 2) in [(m["namespace"], m["version"]) for m in applied]
    assert ("msm", 3) in [(m["namespace"], m["version"]) for m in applied]
    assert cli.ok("assets", "list", "--format", "json").json() == {"assets": []}


def test_db_from_environment_and_after_the_command(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSM_DB", str(tmp_path / "env.duckdb"))
    assert cli("init", db=False).code == 0
    assert (tmp_path / "env.duckdb").exists()
    assert cli("assets", "add", "BTC", db=False).code == 0
    # --db after the command wins over the environment
    assert cli("init", "--db", str(cli.db), db=False).code == 0
    assert cli("assets", "list", "--format", "json", "--db", str(cli.db), db=False).json() == {"assets": []}
    assert [a["unique_identifier"] for a in cli("assets", "list", "--format", "json", db=False).json()["assets"]] == [
        "BTC"
    ]


# -- reference data: JSON round trips ----------------------------------------------------------
def test_registry_add_and_list_round_trip(cli: Cli) -> None:
    cli.ok("init")
    asset = cli.ok(
        "assets", "add", "BTC", "--name", "Bitcoin", "--ticker", "XBT", "--type", "crypto", "--format", "json"
    ).json()
    assert asset == {
        "uid": asset["uid"],
        "unique_identifier": "BTC",
        "name": "Bitcoin",
        "ticker": "XBT",
        "asset_type": "crypto",
        "metadata_json": None,
        "currency": None,
    }
    assert cli.ok("assets", "list", "--format", "json").json() == {"assets": [asset]}

    portfolio = cli.ok("portfolios", "add", "CRYPTO-EW", "--name", "Crypto Majors EW", "--format", "json").json()
    assert portfolio == {
        "uid": portfolio["uid"],
        "unique_identifier": "CRYPTO-EW",
        "portfolio_name": "Crypto Majors EW",
        "metadata_json": None,
    }
    assert cli.ok("portfolios", "list", "--format", "json").json() == {"portfolios": [portfolio]}

    model = cli.ok("models", "add", "core", "--description", "Core model", "--format", "json").json()
    assert model == {
        "uid": model["uid"],
        "allocation_model_name": "core",
        "allocation_model_description": "Core model",
        "metadata_json": None,
    }
    assert cli.ok("models", "list", "--format", "json").json() == {"models": [model]}

    account = cli.ok("accounts", "add", "ACC-1", "--name", "Account one", "--live", "--format", "json").json()
    assert account["unique_identifier"] == "ACC-1" and account["account_name"] == "Account one"
    assert account["is_paper"] is False and account["account_is_active"] is True
    assert account["account_group_uid"] is None and account["account_group"] is None
    assert account["base_currency"] == "USD"  # the default
    listed = cli.ok("accounts", "list", "--format", "json").json()["accounts"]
    assert listed == [account]  # the add row, and account_group (the group's name) is None

    allocation = cli.ok(
        "allocations",
        "add",
        "ACC-1-CORE",
        "--account",
        "ACC-1",
        "--model",
        "core",
        "--display-name",
        "Core",
        "--format",
        "json",
    ).json()
    assert allocation == {
        "uid": allocation["uid"],
        "unique_identifier": "ACC-1-CORE",
        "account_uid": account["uid"],
        "account_allocation_model_uid": model["uid"],
        "display_name": "Core",
        "is_active": True,
        "source": None,
        "metadata_json": None,
    }
    assert cli.ok("allocations", "list", "--format", "json").json() == {
        "allocations": [{**allocation, "account": "ACC-1", "allocation_model": "core"}]
    }
    assert (
        cli.ok("allocations", "list", "--account", "ACC-1", "--format", "json").json()["allocations"][0]["uid"]
        == allocation["uid"]
    )


def test_registry_text_output_names_what_was_created(cli: Cli) -> None:
    cli.ok("init")
    out = cli.ok("assets", "add", "BTC", "--name", "Bitcoin").out
    assert re.fullmatch(r"added asset 'BTC' \(uid [0-9a-f-]{36}\)\n", out)
    assert "added portfolio 'CRYPTO-EW'" in cli.ok("portfolios", "add", "CRYPTO-EW").out
    assert "added allocation model 'core'" in cli.ok("models", "add", "core").out
    assert "added account 'A'" in cli.ok("accounts", "add", "A", "--name", "n").out
    assert (
        "added target allocation 'A-CORE'"
        in cli.ok("allocations", "add", "A-CORE", "--account", "A", "--model", "core").out
    )
    table = cli.ok("assets", "list").out.splitlines()
    assert table[0].split() == ["asset", "name", "ticker", "type", "currency", "uid"] and table[2].startswith("BTC")
    assert cli.ok("accounts", "list").out.splitlines()[2].split()[:4] == ["A", "n", "paper", "true"]
    assert "A-CORE" in cli.ok("allocations", "list").out
    assert "(no portfolios)" not in cli.ok("portfolios", "list").out
    assert "core" in cli.ok("models", "list").out


def test_account_group_is_created_on_the_fly_then_reused(cli: Cli) -> None:
    cli.ok("init")
    first = cli.ok("accounts", "add", "A", "--name", "n", "--group", "Core")
    assert re.search(r"created account group 'Core' \(uid [0-9a-f-]{36}\)\nadded account 'A'", first.out)
    second = cli.ok("accounts", "add", "B", "--name", "n", "--group", "Core", "--format", "json").json()
    assert second["account_group"]["group_name"] == "Core" and second["account_group"]["created"] is False
    groups = msm.list_account_groups(cli.store)
    assert groups["group_name"].to_list() == ["Core"]
    assert second["account_group_uid"] == groups["uid"][0] == second["account_group"]["uid"]
    assert [a["account_group"] for a in cli.ok("accounts", "list", "--format", "json").json()["accounts"]] == [
        "Core",
        "Core",
    ]


def test_refused_account_leaves_no_new_group(cli: Cli) -> None:
    cli.ok("init")
    cli.ok("accounts", "add", "A", "--name", "n")
    before = contents(cli.store)
    cli.fails("accounts", "add", "A", "--name", "other", "--group", "Fresh", match="account 'A' already exists")
    assert contents(cli.store) == before


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["assets", "add", "BTC"], "asset 'BTC' already exists"),
        (
            ["assets", "add", "X", "--type", "portfolio"],
            "never represents a portfolio; add it with `msm portfolios add`",
        ),
        (["assets", "add", " "], "unique_identifier"),
        (["portfolios", "add", "CRYPTO-EW"], "portfolio 'CRYPTO-EW' already exists"),
        (["models", "add", "core"], "allocation model 'core' already exists"),
        (["accounts", "add", "NEW", "--name", " "], "account_name"),
        (
            ["accounts", "add", "NEW", "--name", "n", "--group", "123e4567-e89b-42d3-a456-426614174000"],
            "account group with uid or group_name",
        ),
        (
            ["allocations", "add", "X", "--account", "NOPE", "--model", "core"],
            "account with unique_identifier 'NOPE' does not exist",
        ),
        (
            ["allocations", "add", "X", "--account", "ACC-1", "--model", "nope"],
            "allocation model with allocation_model_name 'nope' does not exist",
        ),
        (
            ["allocations", "add", "ACC-1-CORE", "--account", "ACC-1", "--model", "core"],
            "target allocation 'ACC-1-CORE' already exists",
        ),
        (["allocations", "list", "--account", "NOPE"], "account with unique_identifier 'NOPE' does not exist"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v[:3]),
)
def test_registry_refusals(world: World, argv: list[str], match: str) -> None:
    before = contents(world.cli.store)
    world.cli.fails(*argv, match=match)
    assert contents(world.cli.store) == before


# -- targets: JSON round trips ------------------------------------------------------------------
def _save(cli: Cli, account: str, at: str, path: Path, *extra: str) -> dict[str, Any]:
    return cli.ok("targets", "save", account, "--at", at, "--file", str(path), *extra, "--format", "json").json()


POSITION_COLUMNS = [
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
POSITION_KEYS = set(POSITION_COLUMNS)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_targets_save_and_show_round_trip(world: World, tmp_path: Path, suffix: str) -> None:
    cli, uids = world.cli, world.uids
    rows = [
        {"asset": "BTC", "portfolio": None, "weight_notional_exposure": 0.6, "metadata_json": None},
        {
            "asset": None,
            "portfolio": "CRYPTO-EW",
            "weight_notional_exposure": 0.3,
            "metadata_json": json.dumps({"portfolio_role": "satellite_sleeve"}),
        },
    ]
    saved = _save(cli, "ACC-1", "2026-05-25T09:00:00+09:00", write_rows(tmp_path / f"t{suffix}", rows))
    assert set(saved) == {
        "account",
        "position_set_uid",
        "position_set_time",
        "account_target_allocation_uid",
        "status",
        "positions",
    }
    assert saved["status"] == "published"
    assert saved["account"] == {"uid": uids["ACC-1"], "unique_identifier": "ACC-1"}
    assert saved["position_set_time"] == T1  # stored in UTC
    assert saved["account_target_allocation_uid"] == uids["ACC-1-CORE"]
    assert [set(p) for p in saved["positions"]] == [POSITION_KEYS, POSITION_KEYS]
    btc, crypto = saved["positions"]
    assert btc == {
        "target_type": "asset",
        "target_uid": uids["BTC"],
        "asset_uid": uids["BTC"],
        "portfolio_uid": None,
        "unique_identifier": "BTC",
        "display_label": "Bitcoin (BTC)",
        "weight_notional_exposure": 0.6,
        "constant_notional_exposure": None,
        "single_asset_quantity": None,
        "metadata_json": None,
    }
    assert crypto["target_type"] == "portfolio" and crypto["target_uid"] == crypto["portfolio_uid"] == uids["CRYPTO-EW"]
    assert crypto["asset_uid"] is None and crypto["display_label"] == "Crypto Majors EW"
    assert crypto["metadata_json"] == {"portfolio_role": "satellite_sleeve"}
    assert isinstance(crypto["weight_notional_exposure"], float)
    # show (latest, exact, as-of) returns the same document
    assert cli.ok("targets", "show", "ACC-1", "--format", "json").json() == saved
    assert cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "json").json() == saved
    assert (
        cli.ok("targets", "show", uids["ACC-1"], "--as-of", "2026-05-30T00:00:00Z", "--format", "json").json() == saved
    )


def test_targets_save_by_uid_with_every_exposure_kind(world: World, tmp_path: Path) -> None:
    cli, uids = world.cli, world.uids
    rows = [
        {"asset_uid": uids["BTC"], "target_type": "asset", "target_uid": uids["BTC"], "single_asset_quantity": 2.5},
        {"asset_uid": uids["ETH"], "constant_notional_exposure": 1_000_000},
        {
            "portfolio_uid": uids["CRYPTO-EW"].upper(),
            "weight_notional_exposure": 0.25,
            "metadata_json": {"sleeve": "satellite"},
        },
    ]
    saved = _save(cli, "ACC-1", T1, write_rows(tmp_path / "t.json", rows), "--allocation", "ACC-1-CORE")
    by = {p["unique_identifier"]: p for p in saved["positions"]}
    assert by["BTC"]["single_asset_quantity"] == 2.5 and by["BTC"]["weight_notional_exposure"] is None
    assert by["ETH"]["constant_notional_exposure"] == 1_000_000.0
    assert by["CRYPTO-EW"]["portfolio_uid"] == uids["CRYPTO-EW"] and by["CRYPTO-EW"]["metadata_json"] == {
        "sleeve": "satellite"
    }


def test_targets_save_text_reports_sum_and_residual(world: World, tmp_path: Path) -> None:
    f = write_rows(
        tmp_path / "t.csv",
        [{"asset": "BTC", "weight_notional_exposure": 0.6}, {"asset": "ETH", "weight_notional_exposure": 0.3}],
    )
    out = world.cli.ok("targets", "save", "ACC-1", "--at", T1, "--file", str(f)).out
    assert f"saved snapshot of account 'ACC-1' at {T1}\n" in out
    assert re.search(r"rows +2 \(2 assets\)", out)
    assert re.search(r"weight sum +0\.9\n", out)
    assert re.search(r"residual +0\.1 ", out)


def test_show_without_snapshot(world: World) -> None:
    cli = world.cli
    doc = cli.ok("targets", "show", "ACC-1", "--format", "json").json()
    assert doc == {
        "account": {"uid": world.uids["ACC-1"], "unique_identifier": "ACC-1"},
        "position_set_uid": None,
        "position_set_time": None,
        "account_target_allocation_uid": None,
        "status": None,
        "positions": [],
    }
    assert cli.ok("targets", "show", "ACC-1").out == "account 'ACC-1' has no snapshot\n"
    assert (
        cli.ok("targets", "show", "ACC-1", "--as-of", T1).out == f"account 'ACC-1' has no snapshot at or before {T1}\n"
    )
    assert cli.ok("targets", "show", "ACC-1", "--format", "csv").out == ",".join(POSITION_COLUMNS) + "\n"  # header only


def test_show_table_and_csv(two_snapshots: World) -> None:
    cli = two_snapshots.cli
    table = cli.ok("targets", "show", "ACC-1", "--at", T1).out
    lines = table.splitlines()
    assert lines[0] == f"account 'ACC-1': snapshot at {T1}"
    header = next(line for line in lines if line.startswith("label"))
    assert header.split() == ["label", "type", "identifier", "weight", "notional", "quantity", "metadata"]
    assert any(
        line.startswith("Crypto Majors EW") and '{"portfolio_role":"satellite_sleeve"}' in line for line in lines
    )
    assert re.search(r"weight sum +1\n", table) and re.search(
        r"residual +0 ", table
    )  # 0.6 + 0.3 + 0.1, float noise not shown

    as_json = cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "json").json()
    rows = list(csv.DictReader(io.StringIO(cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "csv").out)))
    assert [r["unique_identifier"] for r in rows] == [p["unique_identifier"] for p in as_json["positions"]]
    assert list(rows[0]) == POSITION_COLUMNS
    for row, pos in zip(rows, as_json["positions"], strict=True):
        assert float(row["weight_notional_exposure"]) == pos["weight_notional_exposure"]
        assert (json.loads(row["metadata_json"]) if row["metadata_json"] else None) == pos["metadata_json"]
        assert row["constant_notional_exposure"] == ""


def test_history_round_trip(two_snapshots: World) -> None:
    cli, uids = two_snapshots.cli, two_snapshots.uids
    doc = cli.ok("targets", "history", "ACC-1", "--format", "json").json()
    assert doc["account"] == {"uid": uids["ACC-1"], "unique_identifier": "ACC-1"}
    assert [s["position_set_time"] for s in doc["snapshots"]] == [T2, T1]  # newest first
    keys = {
        "position_set_uid",
        "position_set_time",
        "account_target_allocation_uid",
        "allocation",
        "rows",
        "weight_sum",
        "source",
        "status",
    }
    assert all(set(s) == keys for s in doc["snapshots"])
    assert all(ISO_Z.match(s["position_set_time"]) for s in doc["snapshots"])
    newest, oldest = doc["snapshots"]
    assert (newest["rows"], newest["weight_sum"], newest["source"]) == (3, 0.8, "cli")
    assert oldest["rows"] == 3 and math.isclose(oldest["weight_sum"], 1.0)
    assert newest["account_target_allocation_uid"] == uids["ACC-1-CORE"] and newest["allocation"] == "ACC-1-CORE"
    history = msm.snapshot_history(cli.store, "ACC-1")
    assert [s["position_set_uid"] for s in doc["snapshots"]] == history["position_set_uid"].to_list()
    table = cli.ok("targets", "history", "ACC-1").out.splitlines()
    assert table[0] == "account 'ACC-1': 2 snapshots, newest first"
    assert table[1].split() == ["time", "allocation", "rows", "weight", "sum", "residual", "source", "position", "set"]
    assert table[3].split()[:6] == [T2, "ACC-1-CORE", "3", "0.8", "0.2", "cli"]


def test_history_of_account_without_snapshots(world: World) -> None:
    doc = world.cli.ok("targets", "history", "ACC-0", "--format", "json").json()
    assert doc == {"account": {"uid": world.uids["ACC-0"], "unique_identifier": "ACC-0"}, "snapshots": []}
    assert "(no snapshots)" in world.cli.ok("targets", "history", "ACC-0").out


def test_diff_round_trip(two_snapshots: World) -> None:
    cli, uids = two_snapshots.cli, two_snapshots.uids
    doc = cli.ok("targets", "diff", "ACC-1", "--from", T1, "--to", "2026-06-02T00:00:00Z", "--format", "json").json()
    assert {"from", "to", "added", "removed", "changed"} <= set(doc)
    assert doc["from"]["position_set_time"] == T1 and doc["to"]["position_set_time"] == T2
    history = {
        s["position_set_time"]: s["position_set_uid"]
        for s in cli.ok("targets", "history", "ACC-1", "--format", "json").json()["snapshots"]
    }
    assert doc["from"]["position_set_uid"] == history[T1] and doc["to"]["position_set_uid"] == history[T2]
    assert [(e["unique_identifier"], e["target_type"]) for e in doc["added"]] == [("SOL", "asset")]
    assert [(e["unique_identifier"], e["target_type"]) for e in doc["removed"]] == [("ETH", "asset")]
    assert [(e["unique_identifier"], e["target_type"]) for e in doc["changed"]] == [
        ("BTC", "asset"),
        ("CRYPTO-EW", "portfolio"),
    ]
    (sol,) = doc["added"]
    assert sol["constant_notional_exposure_before"] is None and sol["constant_notional_exposure_after"] == 500.0
    assert sol["target_uid"] == uids["SOL"]
    (eth,) = doc["removed"]
    assert eth["weight_notional_exposure_before"] == 0.1 and eth["weight_notional_exposure_after"] is None
    btc, crypto = doc["changed"]
    assert (btc["weight_notional_exposure_before"], btc["weight_notional_exposure_after"]) == (0.6, 0.5)
    assert crypto["weight_notional_exposure_before"] == crypto["weight_notional_exposure_after"] == 0.3
    assert crypto["metadata_json_before"] == {"portfolio_role": "satellite_sleeve"} and crypto[
        "metadata_json_after"
    ] == {"portfolio_role": "core"}

    table = cli.ok("targets", "diff", "ACC-1", "--from", T1, "--to", T2).out
    assert table.splitlines()[0] == f"account 'ACC-1': {T1} -> {T2}"
    assert re.search(r"added +asset +SOL +notional=500\n", table)
    assert re.search(r"removed +asset +ETH +weight=0\.1\n", table)
    assert re.search(r"changed +asset +BTC +weight=0\.6 +weight=0\.5\n", table)
    assert "1 added, 1 removed, 2 changed, 0 unchanged" in table


def test_diff_without_a_snapshot_at_from(two_snapshots: World) -> None:
    two_snapshots.cli.fails(
        "targets",
        "diff",
        "ACC-1",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        T2,
        match=r"snapshot with account 'ACC-1' at or before '2026-01-01T00:00:00Z' does not exist",
    )


def test_overwrite_replaces_the_whole_set(two_snapshots: World, tmp_path: Path) -> None:
    cli = two_snapshots.cli
    before = cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "json").json()
    f = write_rows(tmp_path / "replace.parquet", [{"asset": "SOL", "weight_notional_exposure": 1.0}])
    cli.fails(
        "targets",
        "save",
        "ACC-1",
        "--at",
        T1,
        "--file",
        str(f),
        match=(
            r"snapshot exists: account 'ACC-1' \(allocation 'ACC-1-CORE'\) at 2026-05-25T00:00:00Z; pass overwrite "
            r"\(--overwrite\)"
        ),
    )
    assert cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "json").json() == before
    out = cli.ok("targets", "save", "ACC-1", "--at", T1, "--file", str(f), "--overwrite").out
    assert "(replaced the whole previous set)" in out
    after = cli.ok("targets", "show", "ACC-1", "--at", T1, "--format", "json").json()
    assert after["position_set_uid"] == before["position_set_uid"]
    assert [(p["unique_identifier"], p["weight_notional_exposure"]) for p in after["positions"]] == [("SOL", 1.0)]
    history = cli.ok("targets", "history", "ACC-1", "--format", "json").json()["snapshots"]
    assert [(s["position_set_time"], s["rows"]) for s in history] == [(T2, 3), (T1, 1)]


# -- targets save: refused input leaves the database as it was ------------------------------------
@dataclass(frozen=True)
class Bad:
    id: str
    file: str  # the file name: its extension picks CSV / JSON / Parquet
    rows: list[dict[str, Any]] | str | None  # rows, or the raw file text; "{BTC}" etc. become uids
    match: str
    args: tuple[str, ...] = ()
    account: str = "ACC-1"


BAD_INPUT = [
    Bad(
        "both asset and portfolio",
        "t.csv",
        [{"asset": "BTC", "portfolio": "CRYPTO-EW", W: 0.5}],
        r"row 1: `asset_uid` = '.*': exactly one of `asset_uid` / `portfolio_uid` must be set, got both",
    ),
    Bad("both uids", "t.json", [{"asset_uid": "{BTC}", "portfolio_uid": "{CRYPTO-EW}", W: 0.5}], "got both"),
    Bad(
        "neither",
        "t.csv",
        [{"asset": "BTC", W: 0.5}, {"asset": None, W: 0.5}],
        r"row 2: `asset_uid`: exactly one of .* got neither",
    ),
    Bad(
        "target_type mismatch",
        "t.json",
        [{"asset": "BTC", "target_type": "portfolio", W: 0.5}],
        r"`target_type` = 'portfolio': does not match the target given \(asset\)",
    ),
    Bad(
        "target_type unknown",
        "t.csv",
        [{"asset": "BTC", "target_type": "fund", W: 0.5}],
        r"`target_type` = 'fund': must be 'asset' or 'portfolio'",
    ),
    Bad(
        "target_uid mismatch",
        "t.json",
        [{"asset_uid": "{BTC}", "target_uid": "{ETH}", W: 0.5}],
        r"`target_uid` = '.*': must equal asset_uid",
    ),
    Bad(
        "zero exposures",
        "t.csv",
        [{"asset": "BTC", W: None, "constant_notional_exposure": None}],
        r"row 1: `exposure`: exactly one of .* must be set, none was",
    ),
    Bad(
        "two exposures",
        "t.json",
        [{"asset": "BTC", W: 0.5, "constant_notional_exposure": 100}],
        r"must be set, got 2: weight_notional_exposure=0.5, constant_notional_exposure=100",
    ),
    Bad(
        "NaN exposure csv",
        "t.csv",
        "asset,weight_notional_exposure\nBTC,NaN\n",
        r"`weight_notional_exposure` = 'NaN': must be finite",
    ),
    Bad(
        "inf exposure csv",
        "t.csv",
        "asset,weight_notional_exposure\nBTC,inf\n",
        r"must be finite \(NaN and infinity are refused\)",
    ),
    Bad(
        "NaN exposure parquet",
        "t.parquet",
        [{"asset": "BTC", W: float("nan")}],
        r"`weight_notional_exposure` = 'NaN': must be finite",
    ),
    Bad(
        "-inf exposure json",
        "t.json",
        '[{"asset": "BTC", "constant_notional_exposure": -Infinity}]',
        r"`constant_notional_exposure` = '-inf': must be finite",
    ),
    Bad(
        "text exposure",
        "t.csv",
        [{"asset": "BTC", W: "sixty percent"}],
        r"`weight_notional_exposure` = 'sixty percent': must be a number",
    ),
    Bad(
        "text exposure json",
        "t.json",
        [{"asset": "BTC", W: 0.5}, {"asset": "ETH", W: "abc"}],
        r"row 2: `weight_notional_exposure` = 'abc': must be a number",
    ),
    Bad(
        "quantity on a portfolio",
        "t.csv",
        [{"portfolio": "CRYPTO-EW", "single_asset_quantity": 3}],
        r"a portfolio target cannot use single_asset_quantity",
    ),
    Bad(
        "asset_identifier column",
        "t.csv",
        [{"asset_identifier": "BTC", W: 0.5}],
        r"`asset_identifier`: target rows use `asset_uid` \(or the `asset` column in an import file\)",
    ),
    Bad(
        "unknown asset", "t.csv", [{"asset": "DOGE", W: 0.5}], r"`asset` = 'DOGE': no asset has this unique_identifier"
    ),
    Bad(
        "unknown portfolio",
        "t.json",
        [{"portfolio": "NOPE", W: 0.5}],
        r"`portfolio` = 'NOPE': no portfolio has this unique_identifier",
    ),
    Bad(
        "unknown asset uid",
        "t.parquet",
        [{"asset_uid": "123e4567-e89b-42d3-a456-426614174000", W: 0.5}],
        r"no asset has this uid",
    ),
    Bad("portfolio uid given as asset", "t.json", [{"asset_uid": "{CRYPTO-EW}", W: 0.5}], r"no asset has this uid"),
    Bad(
        "malformed uuid", "t.csv", [{"asset_uid": "not-a-uuid", W: 0.5}], r"`asset_uid` = 'not-a-uuid': must be a UUID"
    ),
    Bad(
        "duplicate target",
        "t.csv",
        [{"asset": "BTC", W: 0.5}, {"asset": "ETH", W: 0.2}, {"asset": "BTC", W: 0.3}],
        r"row 3: `target_uid` = .*duplicate target 'BTC' \(asset\) in one snapshot; first given at row 1",
    ),
    Bad(
        "duplicate by uid and name",
        "t.json",
        [{"asset": "BTC", W: 0.5}, {"asset_uid": "{BTC}", W: 0.3}],
        r"duplicate target 'BTC'",
    ),
    Bad(
        "metadata array",
        "t.csv",
        [{"asset": "BTC", W: 0.5, "metadata_json": "[1, 2]"}],
        r"`metadata_json` = '\[1, 2\]': must be a JSON object \(or empty\), got a JSON array",
    ),
    Bad("metadata array json", "t.json", [{"asset": "BTC", W: 0.5, "metadata_json": [1, 2]}], r"got a JSON array"),
    Bad(
        "metadata string",
        "t.csv",
        [{"asset": "BTC", W: 0.5, "metadata_json": '"just text"'}],
        r"must be a JSON object \(or empty\), got a JSON string",
    ),
    Bad("metadata number", "t.parquet", [{"asset": "BTC", W: 0.5, "metadata_json": "42"}], r"got a JSON number"),
    Bad(
        "metadata malformed",
        "t.csv",
        [{"asset": "BTC", W: 0.5, "metadata_json": "{oops"}],
        r"`metadata_json` = '\{oops': is not valid JSON",
    ),
    Bad("empty file (header only)", "t.csv", "asset,weight_notional_exposure\n", r"t\.csv has no rows"),
    Bad("empty json list", "t.json", "[]", r"t\.json has no rows"),
    Bad("empty parquet", "t.parquet", None, r"t\.parquet has no rows"),
    Bad(
        "missing exposure column",
        "t.csv",
        [{"asset": "BTC"}],
        r"`weight_notional_exposure`: column is missing: give one of",
    ),
    Bad(
        "missing target column",
        "t.json",
        [{W: 0.5}],
        r"`asset_uid`: column is missing: give `asset_uid` or `portfolio_uid`",
    ),
    Bad(
        "unknown column",
        "t.csv",
        [{"asset": "BTC", W: 0.5, "colour": "red"}],
        r"`colour`: is not a known column; allowed:",
    ),
    Bad(
        "every bad row listed",
        "t.csv",
        [{"asset": "DOGE", W: 0.5}, {"asset": "BTC", W: "x"}],
        r"2 problems found; nothing was stored:\n  .*row 1: `asset`.*\n  .*row 2: `weight_notional_exposure`",
    ),
    Bad(
        "naive --at",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"`position_set_time` = '2026-05-25T00:00:00': has no UTC offset \(naive times are refused\)",
        args=("--at", "2026-05-25T00:00:00"),
    ),
    Bad(
        "unparsable --at",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"`position_set_time` = 'yesterday': is not a time",
        args=("--at", "yesterday"),
    ),
    Bad(
        "date as --at",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"is not a time|has no UTC offset",
        args=("--at", "2026-05-25"),
    ),
    Bad(
        "unknown account",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"account with unique_identifier 'NOPE' does not exist; create it with `msm accounts add",
        account="NOPE",
    ),
    Bad(
        "unknown allocation",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"target allocation with unique_identifier 'NOPE' does not exist",
        args=("--allocation", "NOPE"),
    ),
    Bad(
        "allocation of another account",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"`allocation` = 'ACC-2-A': belongs to another account, not 'ACC-1'",
        args=("--allocation", "ACC-2-A"),
    ),
    Bad(
        "no active allocation",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"`account` = 'ACC-0': has no active target allocation; create one with `msm allocations add ID --account "
        r"ACC-0",
        account="ACC-0",
    ),
    Bad(
        "several active allocations",
        "t.csv",
        [{"asset": "BTC", W: 0.5}],
        r"`account` = 'ACC-2': has 2 active target allocations \(ACC-2-A, ACC-2-B\); choose one with `allocation` "
        r"\(--allocation\)",
        account="ACC-2",
    ),
    Bad(
        "existing snapshot",
        "t.csv",
        [{"asset": "SOL", W: 1.0}],
        r"snapshot exists: account 'ACC-1' \(allocation 'ACC-1-CORE'\) at 2026-05-25T00:00:00Z",
        args=("--at", T1),
    ),
    Bad(
        "unknown file extension",
        "t.xls",
        "",
        r"`file` = '.*t\.xls': has an unknown extension; use one of \.csv, \.json, \.parquet, \.pq, \.xlsx",
    ),
    Bad("missing file", "absent.csv", None, r"`file` = '.*absent\.csv': does not exist"),
    Bad("malformed json file", "t.json", '[{"asset": "BTC",', r"is not valid JSON"),
    Bad(
        "json not a list",
        "t.json",
        '{"asset": "BTC", "weight_notional_exposure": 0.5}',
        r"must hold a JSON list of objects, one per row",
    ),
    Bad("not a parquet file", "t.parquet", "hello", r"could not be read as PARQUET"),
]


def _materialize(case: Bad, tmp_path: Path, uids: dict[str, str]) -> Path:
    path = tmp_path / case.file
    if case.rows is None:
        if case.file.endswith(".parquet"):
            pl.DataFrame(schema={"asset": pl.String, W: pl.Float64}).write_parquet(path)
        return path
    if isinstance(case.rows, str):
        path.write_text(case.rows)
        return path
    rows = [
        {
            k: (uids[v[1:-1]] if isinstance(v, str) and v.startswith("{") and v[1:-1] in uids else v)
            for k, v in row.items()
        }
        for row in case.rows
    ]
    return write_rows(path, rows)


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: c.id)
def test_bad_input_is_refused_and_nothing_changes(two_snapshots: World, tmp_path: Path, case: Bad) -> None:
    cli = two_snapshots.cli
    (tmp_path / "in").mkdir()
    path = _materialize(case, tmp_path / "in", two_snapshots.uids)
    at = case.args[case.args.index("--at") + 1] if "--at" in case.args else "2026-07-01T00:00:00Z"
    extra = [a for i, a in enumerate(case.args) if a != "--at" and (i == 0 or case.args[i - 1] != "--at")]
    before, history = contents(cli.store), _histories(cli.store)
    cli.fails("targets", "save", case.account, "--at", at, "--file", str(path), *extra, match=case.match)
    assert contents(cli.store) == before
    assert _histories(cli.store) == history


def _histories(store: msm.Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.connect():
        return {a: msm.snapshot_history(store, a).rows() for a in ("ACC-0", "ACC-1", "ACC-2")}


def test_validation_error_lists_every_row_with_its_message(world: World, tmp_path: Path) -> None:
    rows = [{"asset": f"NOPE-{i}", W: 0.01} for i in range(60)]
    result = world.cli.fails(
        "targets",
        "save",
        "ACC-1",
        "--at",
        T1,
        "--file",
        str(write_rows(tmp_path / "t.csv", rows)),
        match="60 problems found",
    )
    assert result.err.count("no asset has this unique_identifier") == 50
    assert "... and 10 more" in result.err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["targets", "show", "NOPE"], "account with unique_identifier 'NOPE' does not exist"),
        (["targets", "show", "ACC-1", "--at", "2026-05-25 00:00"], "has no UTC offset"),
        (["targets", "show", "ACC-1", "--as-of", "soon"], "is not a time"),
        (
            ["targets", "show", "ACC-1", "--allocation", "NOPE"],
            "target allocation with unique_identifier 'NOPE' does not exist",
        ),
        (["targets", "history", "NOPE"], "account with unique_identifier 'NOPE' does not exist"),
        (["targets", "diff", "ACC-1", "--from", "2026-05-25", "--to", T2], "is not a time|has no UTC offset"),
        (["targets", "diff", "NOPE", "--from", T1, "--to", T2], "account with unique_identifier 'NOPE' does not exist"),
        (["candidates", "--limit", "0"], r"`limit` = 0: must be a whole number from 1 to 1000"),
        (["candidates", "--offset", "-1"], r"`offset` = -1: must be a whole number >= 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_read_command_refusals(two_snapshots: World, argv: list[str], match: str) -> None:
    before = contents(two_snapshots.cli.store)
    two_snapshots.cli.fails(*argv, match=match)
    assert contents(two_snapshots.cli.store) == before


# -- candidates ----------------------------------------------------------------------------------
def test_candidates_round_trip(world: World) -> None:
    cli, uids = world.cli, world.uids
    everything = cli.ok("candidates", "--format", "json").json()
    assert everything["count"] == 4
    keys = {
        "target_type",
        "target_uid",
        "asset_uid",
        "portfolio_uid",
        "unique_identifier",
        "display_label",
        "secondary_label",
    }
    assert all(set(r) == keys for r in everything["results"])
    assert [r["unique_identifier"] for r in everything["results"]] == ["BTC", "ETH", "SOL", "CRYPTO-EW"]
    btc = everything["results"][0]
    assert btc == {
        "target_type": "asset",
        "target_uid": uids["BTC"],
        "asset_uid": uids["BTC"],
        "portfolio_uid": None,
        "unique_identifier": "BTC",
        "display_label": "Bitcoin",
        "secondary_label": "BTC",
    }
    page = cli.ok("candidates", "--limit", "2", "--offset", "1", "--format", "json").json()
    assert page["count"] == 4 and [r["unique_identifier"] for r in page["results"]] == [
        "ETH",
        "SOL",
    ]  # count is before paging
    portfolios = cli.ok("candidates", "crypto", "--type", "portfolio", "--format", "json").json()
    assert portfolios == {
        "count": 1,
        "results": [
            {
                "target_type": "portfolio",
                "target_uid": uids["CRYPTO-EW"],
                "asset_uid": None,
                "portfolio_uid": uids["CRYPTO-EW"],
                "unique_identifier": "CRYPTO-EW",
                "display_label": "Crypto Majors EW",
                "secondary_label": None,
            }
        ],
    }
    assert cli.ok("candidates", "%", "--format", "json").json() == {
        "count": 0,
        "results": [],
    }  # literal, not a wildcard
    table = cli.ok("candidates", "eth").out.splitlines()
    assert table[0].split() == ["type", "identifier", "label", "secondary", "uid"]
    assert table[2].split()[:4] == ["asset", "ETH", "Ether", "ETH"] and table[-1] == "showing 1-1 of 1"
    assert cli.ok("candidates", "zzz").out == "(no matches)\n0 matches in total\n"


# -- usage errors (exit 2) -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["targets"],
        ["targets", "save", "ACC-1", "--file", "t.csv"],  # --at missing
        ["targets", "save", "ACC-1", "--at", T1],  # --file missing
        ["targets", "show", "ACC-1", "--at", T1, "--as-of", T1],
        ["targets", "show", "ACC-1", "--format", "xml"],
        ["targets", "history", "ACC-1", "--format", "csv"],
        ["targets", "diff", "ACC-1", "--from", T1],
        ["accounts", "add", "A"],  # --name missing
        ["accounts", "add", "A", "--name", "n", "--paper", "--live"],
        ["allocations", "add", "X", "--account", "A"],
        ["candidates", "--limit", "ten"],
        ["candidates", "--type", "fund"],
        ["assets", "add"],
    ],
    ids=lambda a: " ".join(a) or "(nothing)",
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert "usage: msm" in result.err and "Traceback" not in result.err
    assert not cli.db.exists()


def test_help_exits_0(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0 and "targets" in result.out and "candidates" in result.out
    assert cli("targets", "save", "--help").code == 0


# -- the installed console script and the documentation --------------------------------------------
def test_console_script_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MSM_DB"}
    db = tmp_path / "x.duckdb"
    missing = subprocess.run(
        [str(MSM_SCRIPT), "--db", str(db), "assets", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: no database at") and "Traceback" not in missing.stderr
    assert not db.exists()
    done = subprocess.run(
        [str(MSM_SCRIPT), "--db", str(db), "init", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["created"] is True
    usage = subprocess.run(
        [str(MSM_SCRIPT), "--db", str(db), "targets"], capture_output=True, text=True, env=env, timeout=60
    )
    assert usage.returncode == 2 and "usage: msm targets" in usage.stderr


def _doc_sessions() -> list[str]:
    text = (ROOT / "docs" / "cli.md").read_text()
    return [m["code"] for m in re.finditer(r"```bash\n(?P<code>.*?)```", text, re.DOTALL)]


def test_docs_cli_examples_run(tmp_path: Path) -> None:
    """Every ```bash block of docs/cli.md, in order, in one shell, with the installed `msm` first on PATH.

    Lines ending in ``# exit 1`` must fail with exit 1 (they document refusals); every other
    command must succeed.
    """
    blocks = _doc_sessions()
    assert blocks, "docs/cli.md has no bash examples"
    script = "\n".join(blocks)
    script = re.sub(
        r"^(msm .*?)\s*# exit 1$", r"if \1; then exit 99; else test $? -eq 1; fi", script, flags=re.MULTILINE
    )
    env = {k: v for k, v in os.environ.items() if k != "MSM_DB"}
    env["PATH"] = f"{MSM_SCRIPT.parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-xeuo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]  # -x: the trace shows the command that failed
    assert "Traceback" not in done.stderr


def test_helpers_format_numbers_for_people() -> None:
    from msm_cli.output import cell, number

    assert number(0.1 + 0.2) == "0.3" and number(1 - (0.6 + 0.3 + 0.1), decimals=12) == "0"
    assert number(-0.0) == "0" and number(2_500_000.0) == "2500000" and number(1e-20) == "1e-20"
    assert cell(None) == "" and cell(True) == "true" and cell({"a": 1}) == '{"a":1}'


def test_database_held_by_another_process_is_exit_1(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Store retries while another process holds the file, then StoreBusyError -> one message, exit 1."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)",
            str(world.cli.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        real_store = msm.Store
        monkeypatch.setattr(msm, "Store", lambda path: real_store(path, busy_timeout=0.3))  # not 10 s in a test
        world.cli.fails(
            "assets", "list", match=r"database file .*msm\.duckdb is in use by .*\(PID \d+\); waited 0\.3 s"
        )
    finally:
        holder.kill()
        holder.wait()


def _tree(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Every command path of ``parser`` with the option strings of its leaf parser."""
    found: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _tree(sub, (*prefix, name))
    if prefix and not found:
        found[prefix] = sorted(tuple(a.option_strings) or (a.dest,) for a in parser._actions)
    return found


def test_a_command_builds_only_its_areas_and_the_same_commands() -> None:
    """`msm X ...` builds only the area modules of X (fast start-up), with exactly the commands of the full parser."""
    from msm_cli.main import AREAS, build_parser

    full = _tree(build_parser())
    assert {path[0] for path in full} == set(AREAS)  # every top-level command is mapped to its areas
    for command in AREAS:
        partial = _tree(build_parser(["--db", "x.duckdb", command]))
        assert {p: o for p, o in full.items() if p[0] == command} == {
            p: o for p, o in partial.items() if p[0] == command
        }, command
