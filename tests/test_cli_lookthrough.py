"""The look-through part of the ``msm`` command line: ``portfolios weights|composition|history``,
``targets expand``, ``export`` and ``demo`` (design sections 4 and 5).

Commands run in-process through ``msm_cli.main.main(argv)``; every database is a real DuckDB file
under ``tmp_path`` (built once per session through the CLI, then copied per test). Outputs are
read back the way their users read them: ``json.loads``, polars, pyarrow datasets and DuckDB's
``read_parquet``. Every refused input asserts that the database holds exactly what it held before.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

from msm.expansion import EXPANSION_COLUMNS, NET_COLUMNS
from msm_examples import account_portfolio_workflow as account_example

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
W, N, Q = "weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity"
#: Compositions of portfolio P: C1 (BTC 0.25, ETH 0.75), C2 (BTC 0.5, ETH 0.3, SOL 0.2).
C1, C2 = "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"
#: Snapshots of account A: S1 between C1 and C2, S2 after C2.
S1, S2 = "2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z"
BETWEEN = "2026-02-15T00:00:00Z"  # after C1, before C2 (and after S1)
COMPOSITION_KEYS = {"portfolio", "weights_time", "n_assets", "weight_sum", "sums_to_one", "rows"}
COMPOSITION_ROW_KEYS = [
    *("portfolio_uid", "portfolio", "weights_time", "asset_uid", "asset", "weight"),
    *("constituent_type", "constituent_portfolio_uid", "constituent_portfolio"),
]


# -- harness -------------------------------------------------------------------------------------
from cli_harness import Cli, contents, write_rows  # noqa: E402


@pytest.fixture(autouse=True)
def _no_env_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSM_DB", raising=False)


def _copy(source: Path, target: Path) -> None:
    for suffix in ("", ".wal"):
        if source.with_name(source.name + suffix).exists():
            shutil.copyfile(source.with_name(source.name + suffix), target.with_name(target.name + suffix))


@dataclass
class World:
    cli: Cli
    uids: dict[str, str]
    folder: Path

    def rows(self, *argv: str) -> list[dict[str, Any]]:
        return self.cli.ok(*argv, "--format", "json").json()["rows"]


def _build_world(cli: Cli, folder: Path) -> dict[str, str]:
    """Assets BTC/ETH/SOL; portfolio P with compositions C1 and C2 (stored with `portfolios weights`),
    portfolio Q with none; account A (allocation A-main) with snapshots S1 (BTC 0.3, P 0.5) and S2
    (BTC 0.2, P notional 1,000,000, SOL quantity 5); account EMPTY (allocation EMPTY-main), no snapshot."""
    cli.ok("init")
    uids: dict[str, str] = {}
    for ident in ("BTC", "ETH", "SOL"):
        uids[ident] = cli.ok("assets", "add", ident, "--name", ident.title(), "--format", "json").json()["uid"]
    for ident in ("P", "Q"):
        uids[ident] = cli.ok("portfolios", "add", ident, "--format", "json").json()["uid"]
    cli.ok("models", "add", "m")
    for account in ("A", "EMPTY"):
        uids[account] = cli.ok("accounts", "add", account, "--name", account, "--format", "json").json()["uid"]
        cli.ok("allocations", "add", f"{account}-main", "--account", account, "--model", "m")
    cli.ok(
        "portfolios",
        "weights",
        "P",
        "--at",
        C1,
        "--file",
        str(write_rows(folder / "c1.csv", [{"asset": "BTC", "weight": 0.25}, {"asset": "ETH", "weight": 0.75}])),
    )
    cli.ok(
        "portfolios",
        "weights",
        "P",
        "--at",
        C2,
        "--file",
        str(
            write_rows(
                folder / "c2.json",
                [{"asset": "BTC", "weight": 0.5}, {"asset": "ETH", "weight": 0.3}, {"asset": "SOL", "weight": 0.2}],
            )
        ),
    )
    cli.ok(
        "targets",
        "save",
        "A",
        "--at",
        S1,
        "--file",
        str(
            write_rows(
                folder / "s1.csv",
                [{"asset": "BTC", "portfolio": None, W: 0.3}, {"asset": None, "portfolio": "P", W: 0.5}],
            )
        ),
    )
    cli.ok(
        "targets",
        "save",
        "A",
        "--at",
        S2,
        "--file",
        str(
            write_rows(
                folder / "s2.json", [{"asset": "BTC", W: 0.2}, {"portfolio": "P", N: 1_000_000}, {"asset": "SOL", Q: 5}]
            )
        ),
    )
    return uids


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    folder = tmp_path_factory.mktemp("lookthrough-templates")
    world_cli = Cli(folder / "world.duckdb")
    uids = _build_world(world_cli, folder)
    demo_cli = Cli(folder / "demo.duckdb")
    demo_cli.ok("demo")
    return world_cli.db, uids, demo_cli.db


@pytest.fixture
def world(tmp_path: Path, _templates: tuple[Path, dict[str, str], Path]) -> World:
    cli = Cli(tmp_path / "msm.duckdb")
    _copy(_templates[0], cli.db)
    return World(cli, dict(_templates[1]), tmp_path)


@pytest.fixture
def demo(tmp_path: Path, _templates: tuple[Path, dict[str, str], Path]) -> Cli:
    cli = Cli(tmp_path / "msm.duckdb")
    _copy(_templates[2], cli.db)
    return cli


# -- portfolios weights | composition | history ----------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_weights_json_round_trip(world: World, suffix: str) -> None:
    cli, uids = world.cli, world.uids
    path = write_rows(world.folder / f"q{suffix}", [{"asset": "ETH", "weight": 0.75}, {"asset": "BTC", "weight": 0.25}])
    doc = cli.ok(
        "portfolios", "weights", "Q", "--at", "2026-05-25T09:00:00+09:00", "--file", str(path), "--format", "json"
    ).json()
    assert set(doc) == COMPOSITION_KEYS | {"replaced"}
    assert doc["portfolio"] == {"uid": uids["Q"], "unique_identifier": "Q"}
    assert doc["weights_time"] == "2026-05-25T00:00:00Z"  # stored in UTC
    assert doc["n_assets"] == 2 and doc["weight_sum"] == 1.0 and doc["sums_to_one"] is True and doc["replaced"] is False
    assert all(list(r) == COMPOSITION_ROW_KEYS for r in doc["rows"])
    assert [(r["asset"], r["asset_uid"], r["weight"]) for r in doc["rows"]] == [
        ("BTC", uids["BTC"], 0.25),
        ("ETH", uids["ETH"], 0.75),
    ]
    assert {(r["portfolio_uid"], r["portfolio"], r["weights_time"]) for r in doc["rows"]} == {
        (uids["Q"], "Q", "2026-05-25T00:00:00Z")
    }

    shown = cli.ok("portfolios", "composition", "Q", "--format", "json").json()
    assert shown == {k: v for k, v in doc.items() if k != "replaced"}
    history = cli.ok("portfolios", "history", "Q", "--format", "json").json()
    assert history == {
        "portfolio": {"uid": uids["Q"], "unique_identifier": "Q"},
        "compositions": [
            {"weights_time": "2026-05-25T00:00:00Z", "n_assets": 2, "weight_sum": 1.0, "sums_to_one": True}
        ],
    }


def test_weights_in_percent_from_an_issuer_file(world: World) -> None:
    cli = world.cli
    path = world.folder / "issuer.csv"
    path.write_text("asset;weight\nBTC;60\nETH;39.5%\n")  # semicolons, percent, one with a % sign: as issuers send them
    doc = cli.ok("portfolios", "weights", "Q", "--at", C1, "--file", str(path), "--percent", "--format", "json").json()
    assert [(r["asset"], r["weight"]) for r in doc["rows"]] == [("BTC", 0.6), ("ETH", 0.395)]
    assert (
        doc["weights_in_percent"] is True and doc["sums_to_one"] is False
    )  # 99.5%: stored as given, never renormalized
    out = cli.ok("portfolios", "weights", "Q", "--at", C2, "--file", str(path), "--percent").out
    assert "weights were read in percent and divided by 100 (file sum 99.5, stored sum 0.995; not renormalized)" in out
    # without --percent nothing is guessed: '39.5%' is not a number
    cli.fails(
        "portfolios",
        "weights",
        "P",
        "--at",
        "2030-01-01T00:00:00Z",
        "--file",
        str(path),
        match=r"row 2: `weight` = '39.5%': must be a number",
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("asset\tweight\nBTC\tsixty\nETH\t\n", r"row 1.*weight.*'sixty'.*must be a number in percent"),
        ("asset,weight\nBTC,60\n", None),  # fine: the control case
        (
            "asset;weight,x\nBTC;60\n",
            r"header row with both comma \(','\) and semicolon \(';'\) in it; use one delimiter",
        ),
        ("asset,notes\nBTC,x\n", r"weight.*column is missing: percent applies to it"),
    ],
)
def test_weights_in_percent_refusals(world: World, text: str, match: str | None) -> None:
    path = world.folder / "bad.csv"
    path.write_text(text)
    argv = ("portfolios", "weights", "Q", "--at", C1, "--file", str(path), "--percent")
    if match is None:
        world.cli.ok(*argv)
        return
    before = contents(world.cli.store)
    world.cli.fails(*argv, match=match)
    assert contents(world.cli.store) == before


def test_targets_save_in_percent_from_a_tab_separated_file(world: World) -> None:
    path = world.folder / "targets.tsv.csv"
    path.write_text(f"asset\tportfolio\t{W}\tconstant_notional_exposure\nBTC\t\t60\t\n\tP\t\t1000\nETH\t\t25%\t\n")
    doc = world.cli.ok(
        "targets", "save", "EMPTY", "--at", S1, "--file", str(path), "--percent", "--format", "json"
    ).json()
    assert doc["weights_in_percent"] is True
    rows = {r["unique_identifier"]: r for r in doc["positions"]}
    assert (
        rows["BTC"][W] == 0.6 and rows["ETH"][W] == 0.25 and rows["P"]["constant_notional_exposure"] == 1000
    )  # notionals untouched


def test_weights_by_asset_uid_not_summing_to_one_is_stored_as_given(world: World) -> None:
    cli, uids = world.cli, world.uids
    path = write_rows(
        world.folder / "q.csv", [{"asset_uid": uids["BTC"], "weight": 0.6}, {"asset_uid": uids["ETH"], "weight": 0.3}]
    )
    out = cli.ok("portfolios", "weights", "Q", "--at", C1, "--file", str(path)).out
    assert f"stored composition of portfolio 'Q' at {C1}" in out
    assert re.search(r"weight sum +0\.9 +\(does not sum to 1: stored as given, never renormalized\)", out)
    doc = cli.ok("portfolios", "composition", "Q", "--format", "json").json()
    assert [r["weight"] for r in doc["rows"]] == [0.6, 0.3]  # not renormalized
    assert doc["sums_to_one"] is False and doc["weight_sum"] == pytest.approx(0.9)
    assert "does not sum to 1" in cli.ok("portfolios", "history", "Q").out
    # csv: the rows, readable by polars with the JSON's columns
    frame = pl.read_csv(io.StringIO(cli.ok("portfolios", "composition", "Q", "--format", "csv").out))
    assert frame.columns == COMPOSITION_ROW_KEYS and frame["weight"].to_list() == [0.6, 0.3]


def test_weights_existing_composition_needs_overwrite(world: World) -> None:
    cli = world.cli
    path = write_rows(world.folder / "p.csv", [{"asset": "SOL", "weight": 1.0}])
    before = contents(cli.store)
    cli.fails(
        "portfolios",
        "weights",
        "P",
        "--at",
        C1,
        "--file",
        str(path),
        match=f"composition of portfolio 'P' at {C1} already exists",
    )
    assert contents(cli.store) == before
    doc = cli.ok(
        "portfolios", "weights", "P", "--at", C1, "--file", str(path), "--overwrite", "--format", "json"
    ).json()
    assert doc["replaced"] is True and [(r["asset"], r["weight"]) for r in doc["rows"]] == [("SOL", 1.0)]
    assert (
        "(replaced the whole previous composition)"
        in cli.ok("portfolios", "weights", "P", "--at", C1, "--file", str(path), "--overwrite").out
    )
    # a new time is not a replacement
    assert (
        cli.ok("portfolios", "weights", "P", "--at", S2, "--file", str(path), "--overwrite", "--format", "json").json()[
            "replaced"
        ]
        is False
    )


def test_composition_history_table_and_as_of(world: World) -> None:
    cli = world.cli
    table = cli.ok("portfolios", "history", "P").out.splitlines()
    assert table[0] == "portfolio 'P': 2 compositions, newest first"
    assert [line.split()[:3] for line in table[3:]] == [[C2, "3", "1"], [C1, "2", "1"]]
    between = cli.ok("portfolios", "composition", "P", "--as-of", BETWEEN, "--format", "json").json()
    assert between["weights_time"] == C1 and [r["asset"] for r in between["rows"]] == ["BTC", "ETH"]
    cli.fails(
        "portfolios",
        "composition",
        "P",
        "--as-of",
        "2025-12-31T00:00:00Z",
        match="portfolio 'P' has no composition at or before 2025-12-31T00:00:00Z",
    )
    assert "(no compositions" in cli.ok("portfolios", "history", "Q").out


@dataclass(frozen=True)
class BadWeights:
    id: str
    portfolio: str
    file: str
    body: str
    match: str
    at: str = "2026-07-01T00:00:00Z"


BAD_WEIGHTS = [
    BadWeights(
        "unknown portfolio",
        "NOPE",
        "w.csv",
        "asset,weight\nBTC,1\n",
        "portfolio with unique_identifier 'NOPE' does not exist",
    ),
    BadWeights(
        "unknown asset",
        "P",
        "w.csv",
        "asset,weight\nBTC,0.5\nDOGE,0.5\n",
        r"composition row 2: `asset` = 'DOGE': no asset has this unique_identifier",
    ),
    BadWeights("NaN weight", "P", "w.csv", "asset,weight\nBTC,NaN\n", r"row 1: `weight` = 'NaN': must be finite"),
    BadWeights("inf weight", "P", "w.csv", "asset,weight\nBTC,inf\n", r"row 1: `weight` = 'inf': must be finite"),
    BadWeights(
        "-inf weight in JSON",
        "P",
        "w.json",
        '[{"asset": "BTC", "weight": -Infinity}]',
        r"`weight` = '-inf': must be finite",
    ),
    BadWeights("text weight", "P", "w.csv", "asset,weight\nBTC,half\n", r"row 1: `weight` = 'half': must be a number"),
    BadWeights("missing weight", "P", "w.csv", "asset,weight\nBTC,\n", r"row 1: `weight`: is required"),
    BadWeights(
        "duplicate asset",
        "P",
        "w.csv",
        "asset,weight\nBTC,0.5\nETH,0.25\nBTC,0.25\n",
        r"row 3: `asset` = 'BTC': duplicate asset 'BTC' in one composition; first given at row 1",
    ),
    BadWeights("unknown column", "P", "w.csv", "asset,weight,note\nBTC,1,x\n", r"`note`: is not a known column"),
    BadWeights("no weight column", "P", "w.csv", "asset\nBTC\n", r"`weight`: column is missing"),
    BadWeights("header only", "P", "w.csv", "asset,weight\n", "has no rows"),
    BadWeights("unknown extension", "P", "w.txt", "asset,weight\nBTC,1\n", "unknown extension"),
    BadWeights("naive time", "P", "w.csv", "asset,weight\nBTC,1\n", "has no UTC offset", at="2026-07-01T00:00:00"),
    BadWeights(
        "date, not a time", "P", "w.csv", "asset,weight\nBTC,1\n", "is not a time|has no UTC offset", at="2026-07-01"
    ),
    # nested portfolios (design section 12)
    BadWeights(
        "both an asset and a portfolio",
        "Q",
        "w.csv",
        "asset,portfolio,weight\nBTC,P,1\n",
        r"row 1: `portfolio` = 'P': names both an asset \('BTC'\) and a portfolio; give one constituent per row",
    ),
    BadWeights(
        "unknown constituent portfolio",
        "Q",
        "w.json",
        '[{"portfolio": "P", "weight": 0.5}, {"portfolio": "NOPE", "weight": 0.5}]',
        r"row 2: `portfolio` = 'NOPE': no portfolio has this unique_identifier",
    ),
    BadWeights(
        "a portfolio holding itself",
        "Q",
        "w.csv",
        "portfolio,weight\nQ,1\n",
        r"row 1: `portfolio` = 'Q': would make portfolio 'Q' contain itself: Q -> Q",
    ),
    BadWeights(
        "the same portfolio twice",
        "Q",
        "w.csv",
        "portfolio,weight\nP,0.5\nP,0.5\n",
        r"row 2: `portfolio` = 'P': duplicate portfolio 'P' in one composition; first given at row 1",
    ),
]


@pytest.mark.parametrize("case", BAD_WEIGHTS, ids=lambda c: c.id)
def test_weights_bad_input_is_refused_and_nothing_changes(world: World, case: BadWeights) -> None:
    path = world.folder / case.file
    path.write_text(case.body)
    before = contents(world.cli.store)
    world.cli.fails("portfolios", "weights", case.portfolio, "--at", case.at, "--file", str(path), match=case.match)
    assert contents(world.cli.store) == before


def test_weights_nested_portfolio_round_trip(world: World) -> None:
    path = write_rows(world.folder / "q.csv", [{"portfolio": "P", "weight": 0.6}, {"asset": "SOL", "weight": 0.4}])
    document = world.cli.ok("portfolios", "weights", "Q", "--at", C2, "--file", str(path), "--format", "json").json()
    by_kind = {r["constituent_type"]: r for r in document["rows"]}
    assert by_kind["portfolio"]["constituent_portfolio"] == "P" and by_kind["portfolio"]["asset"] is None
    assert by_kind["portfolio"]["constituent_portfolio_uid"] == world.uids["P"]
    assert by_kind["asset"]["asset"] == "SOL" and document["sums_to_one"] is True
    table = world.cli.ok("portfolios", "composition", "Q").out
    assert "portfolio" in table and " P " in f" {table} "


def test_weights_closing_a_cycle_at_any_time_is_refused_naming_the_path(world: World) -> None:
    nested = write_rows(world.folder / "q.csv", [{"portfolio": "P", "weight": 1.0}])
    world.cli.ok("portfolios", "weights", "Q", "--at", C1, "--file", str(nested))
    back = write_rows(world.folder / "p.csv", [{"asset": "BTC", "weight": 0.5}, {"portfolio": "Q", "weight": 0.5}])
    before = contents(world.cli.store)
    # P's later composition would hold Q, which (at C1) holds P: a loop across times is a loop
    world.cli.fails(
        "portfolios",
        "weights",
        "P",
        "--at",
        "2026-09-01T00:00:00Z",
        "--file",
        str(back),
        match=r"row 2: `portfolio` = 'Q': would make portfolio 'P' contain itself: P -> Q -> P",
    )
    assert contents(world.cli.store) == before


def test_weights_missing_file_and_usage(world: World) -> None:
    world.cli.fails(
        "portfolios", "weights", "P", "--at", C1, "--file", str(world.folder / "nope.csv"), match="does not exist"
    )
    world.cli.fails("portfolios", "weights", "P", "--file", "w.csv", match="--at", code=2)
    world.cli.fails("portfolios", "weights", "P", "--at", C1, match="--file", code=2)


# -- targets expand ------------------------------------------------------------------------------
def test_expand_reference_case_json(world: World) -> None:
    """Composition C1 (BTC 0.25) stored with `portfolios weights`; target P at 0.5 -> BTC 0.5 x 0.25 = 0.125."""
    uids = world.uids
    doc = world.cli.ok(
        "targets", "expand", "A", "--at", S1, "--weights-as-of", "position-set", "--format", "json"
    ).json()
    assert list(doc) == ["rows"]  # every composition sums to 1: nothing else to report
    rows = doc["rows"]
    assert all(list(r) == list(EXPANSION_COLUMNS) for r in rows)
    position_set = rows[0]["position_set_uid"]
    assert {r["position_set_uid"] for r in rows} == {position_set} and {r["time_index"] for r in rows} == {S1}
    assert [(r["source_target_type"], r["asset"], r[W]) for r in rows] == [
        ("asset", "BTC", 0.3),
        ("portfolio", "BTC", 0.125),
        ("portfolio", "ETH", 0.375),
    ]
    direct, via_btc, via_eth = rows
    assert direct == {
        "position_set_uid": position_set,
        "time_index": S1,
        "source_target_type": "asset",
        "source_target_uid": uids["BTC"],
        "portfolio_uid": None,
        "asset_uid": uids["BTC"],
        "asset": "BTC",
        "portfolio_weight": None,
        "weights_time": None,
        W: 0.3,
        N: None,
        Q: None,
        "path": None,  # design section 12: a direct asset has no path, depth 0
        "depth": 0,
    }
    assert via_btc == {
        "position_set_uid": position_set,
        "time_index": S1,
        "source_target_type": "portfolio",
        "source_target_uid": uids["P"],
        "portfolio_uid": uids["P"],
        "asset_uid": uids["BTC"],
        "asset": "BTC",
        "portfolio_weight": 0.25,
        "weights_time": C1,
        W: 0.125,
        N: None,
        Q: None,
        "path": "P",
        "depth": 1,
    }
    assert via_eth["asset_uid"] == uids["ETH"] and via_eth["portfolio_weight"] == 0.75 and via_eth["weights_time"] == C1
    assert (
        position_set == world.cli.ok("targets", "show", "A", "--at", S1, "--format", "json").json()["position_set_uid"]
    )


def test_expand_weights_as_of_choices(world: World) -> None:
    def used(*argv: str) -> set[tuple[str | None, float | None]]:
        return {
            (r["weights_time"], r["portfolio_weight"])
            for r in world.rows("targets", "expand", "A", *argv)
            if r["source_target_type"] == "portfolio"
        }

    # position-set: each snapshot's own time picks the composition in force then
    assert used("--at", S1, "--weights-as-of", "position-set") == {(C1, 0.25), (C1, 0.75)}
    assert used("--at", S2, "--weights-as-of", "position-set") == {(C2, 0.5), (C2, 0.3), (C2, 0.2)}
    # an explicit time between the compositions picks the earlier one, whatever the snapshot's time
    assert used("--at", S2, "--weights-as-of", BETWEEN) == {(C1, 0.25), (C1, 0.75)}
    assert used("--at", S1, "--weights-as-of", "2026-02-15T09:00:00+09:00") == {(C1, 0.25), (C1, 0.75)}
    assert used("--at", S2, "--weights-as-of", C2) == {
        (C2, 0.5),
        (C2, 0.3),
        (C2, 0.2),
    }  # "at or before" includes the time itself
    # now (the default): the latest composition
    assert used("--at", S1) == used("--at", S1, "--weights-as-of", "now") == {(C2, 0.5), (C2, 0.3), (C2, 0.2)}
    # the latest snapshot by default; --as-of picks the latest at or before
    assert {r["time_index"] for r in world.rows("targets", "expand", "A")} == {S2}
    assert {r["time_index"] for r in world.rows("targets", "expand", "A", "--as-of", "2026-03-31T23:59:59Z")} == {S1}


def test_expand_scales_notional_and_passes_quantity_through(world: World) -> None:
    rows = world.rows("targets", "expand", "A", "--at", S2, "--weights-as-of", "position-set")
    shown = sorted((r["source_target_type"], r["asset"], r[W], r[N], r[Q]) for r in rows)  # sets keep target-uid order
    assert shown == [
        ("asset", "BTC", 0.2, None, None),
        ("asset", "SOL", None, None, 5.0),
        ("portfolio", "BTC", None, 500_000.0, None),
        ("portfolio", "ETH", None, 300_000.0, None),
        ("portfolio", "SOL", None, 200_000.0, None),
    ]


def test_expand_net_sums_direct_and_via_portfolio(world: World) -> None:
    uids = world.uids
    doc = world.cli.ok(
        "targets", "expand", "A", "--at", S1, "--weights-as-of", "position-set", "--net", "--format", "json"
    ).json()
    rows = doc["rows"]
    assert all(list(r) == list(NET_COLUMNS) for r in rows)
    assert [(r["asset"], r["asset_uid"], r[W], r["n_sources"]) for r in rows] == [
        ("BTC", uids["BTC"], pytest.approx(0.425), 2),  # 0.3 direct + 0.5 x 0.25 via P
        ("ETH", uids["ETH"], 0.375, 1),
    ]
    assert all(r[N] is None and r[Q] is None and r["time_index"] == S1 for r in rows)
    assert len({(r["position_set_uid"], r["asset_uid"]) for r in rows}) == len(rows)
    # each exposure kind is summed on its own: BTC has a weight (direct) and a notional (via P)
    s2 = {
        r["asset"]: r
        for r in world.rows("targets", "expand", "A", "--at", S2, "--weights-as-of", "position-set", "--net")
    }
    assert (s2["BTC"][W], s2["BTC"][N], s2["BTC"][Q], s2["BTC"]["n_sources"]) == (0.2, 500_000.0, None, 2)
    assert (s2["SOL"][W], s2["SOL"][N], s2["SOL"][Q], s2["SOL"]["n_sources"]) == (None, 200_000.0, 5.0, 2)


def _typed(records: list[dict[str, Any]], columns: list[str]) -> pl.DataFrame:
    """JSON records as a frame with the expansion's types (times parsed from ISO-8601 Z)."""
    frame = pl.DataFrame(
        records, schema_overrides={c: pl.Float64 for c in ("portfolio_weight", W, N, Q)}, infer_schema_length=None
    )
    times = [c for c in ("time_index", "weights_time") if c in columns]
    return frame.with_columns(
        pl.col(c).cast(pl.String).str.to_datetime(time_zone="UTC", time_unit="us") for c in times
    ).select(columns)


@pytest.mark.parametrize("net", [False, True], ids=["rows", "net"])
def test_expand_csv_and_parquet_read_back_with_the_same_columns(world: World, net: bool) -> None:
    argv = ["targets", "expand", "A", "--at", S2, "--weights-as-of", "position-set", *(["--net"] if net else [])]
    columns = list(NET_COLUMNS if net else EXPANSION_COLUMNS)
    expected = _typed(world.rows(*argv), columns)

    from_csv = pl.read_csv(io.StringIO(world.cli.ok(*argv, "--format", "csv").out), infer_schema_length=None)
    assert from_csv.columns == columns
    assert from_csv.height == expected.height
    assert _typed(from_csv.to_dicts(), columns).equals(expected)

    target = world.folder / "expansion.parquet"
    result = world.cli.ok(*argv, "--format", "parquet", "--out", str(target))
    assert result.out == f"wrote {expected.height} {'netted ' if net else ''}rows (parquet) to {target}\n"
    from_parquet = pl.read_parquet(target)
    assert from_parquet.columns == columns
    assert from_parquet.schema["time_index"] == pl.Datetime("us", "UTC")
    if net:
        assert from_parquet.schema["n_sources"] == pl.UInt32
        from_parquet = from_parquet.with_columns(pl.col("n_sources").cast(pl.Int64))  # JSON has no integer widths
    assert from_parquet.equals(expected)

    # --out with json / csv writes the file instead of stdout
    for fmt in ("json", "csv"):
        out = world.folder / f"expansion.{fmt}"
        assert world.cli.ok(*argv, "--format", fmt, "--out", str(out)).out.startswith(f"wrote {expected.height} ")
    assert _typed(json.loads((world.folder / "expansion.json").read_text())["rows"], columns).equals(expected)
    assert pl.read_csv(world.folder / "expansion.csv").columns == columns


def test_expand_table(world: World) -> None:
    out = world.cli.ok("targets", "expand", "A", "--at", S1, "--weights-as-of", "position-set").out
    lines = out.splitlines()
    assert lines[0] == f"account 'A': snapshot at {S1}, look-through"
    assert "portfolio weights as of the snapshot's own time (position-set)" in out
    header = lines.index(next(line for line in lines if line.startswith("source type")))
    assert lines[header].split() == [
        "source",
        "type",
        "source",
        "asset",
        "portfolio",
        "weight",
        "weights",
        "time",
        "weight",
        "notional",
        "quantity",
    ]
    assert [line.split() for line in lines[header + 2 : header + 5]] == [
        ["asset", "BTC", "BTC", "0.3"],
        ["portfolio", "P", "BTC", "0.25", C1, "0.125"],
        ["portfolio", "P", "ETH", "0.75", C1, "0.375"],
    ]
    assert re.search(r"weight sum +0\.8 ", out) and re.search(r"residual +0\.2 ", out)
    netted = world.cli.ok("targets", "expand", "A", "--at", S1, "--weights-as-of", BETWEEN, "--net").out
    assert f"portfolio weights as of {BETWEEN}" in netted
    assert ["BTC", "0.425", "2"] in [line.split() for line in netted.splitlines()]


def test_expand_reports_compositions_not_summing_to_one(world: World) -> None:
    cli = world.cli
    cli.ok(
        "portfolios",
        "weights",
        "P",
        "--at",
        "2026-05-01T00:00:00Z",
        "--file",
        str(write_rows(world.folder / "p.csv", [{"asset": "BTC", "weight": 0.6}, {"asset": "ETH", "weight": 0.3}])),
    )
    warning = (
        "warning: the composition of portfolio 'P' at 2026-05-01T00:00:00Z sums to 0.9, not 1; "
        "expanded as stored (never renormalized)\n"
    )
    doc = cli.ok("targets", "expand", "A", "--at", S1, "--format", "json").json()
    assert [(r["asset"], r[W]) for r in doc["rows"] if r["source_target_type"] == "portfolio"] == [
        ("BTC", 0.3),
        ("ETH", 0.15),
    ]  # as stored
    assert all(list(r) == list(EXPANSION_COLUMNS) for r in doc["rows"])
    assert doc["diagnostics"] == [
        {
            "portfolio_uid": world.uids["P"],
            "portfolio": "P",
            "weights_time": "2026-05-01T00:00:00Z",
            "weight_sum": pytest.approx(0.9),
        }
    ]
    table = cli.ok("targets", "expand", "A", "--at", S1, warnings=True)
    assert table.err == warning  # never hidden
    assert cli.ok("targets", "expand", "A", "--at", S1, "--format", "csv", warnings=True).err == warning
    assert (
        cli.ok(
            "targets",
            "expand",
            "A",
            "--at",
            S1,
            "--format",
            "json",
            "--out",
            str(world.folder / "e.json"),
            warnings=True,
        ).err
        == warning
    )
    assert cli.ok("targets", "expand", "A", "--at", S1, "--weights-as-of", "position-set").err == ""  # C1 sums to 1


def test_expand_account_without_snapshot(world: World) -> None:
    cli = world.cli
    assert cli.ok("targets", "expand", "EMPTY", "--format", "json").json() == {"rows": []}
    assert cli.ok("targets", "expand", "EMPTY", "--net", "--format", "json").json() == {"rows": []}
    assert cli.ok("targets", "expand", "EMPTY").out == "account 'EMPTY' has no snapshot; nothing to expand\n"  # exit 0
    assert (
        cli.ok("targets", "expand", "A", "--at", "2020-01-01T00:00:00Z").out
        == "account 'A' has no snapshot at 2020-01-01T00:00:00Z; nothing to expand\n"
    )
    assert cli.ok("targets", "expand", "A", "--as-of", "2020-01-01T00:00:00Z", "--format", "json").json() == {
        "rows": []
    }
    assert cli.ok("targets", "expand", "EMPTY", "--format", "csv").out == ",".join(EXPANSION_COLUMNS) + "\n"
    cli.ok("targets", "expand", "EMPTY", "--format", "parquet", "--out", str(world.folder / "e.parquet"))
    empty = pl.read_parquet(world.folder / "e.parquet")
    assert empty.height == 0 and empty.columns == list(EXPANSION_COLUMNS)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["A", "--at", "2026-02-01T00:00:00"], r"`at` = '2026-02-01T00:00:00': has no UTC offset"),
        (["A", "--as-of", "2026-02-01 00:00"], "has no UTC offset"),
        (
            ["A", "--weights-as-of", "2026-02-15T00:00:00"],
            r"`weights_as_of` = '2026-02-15T00:00:00': has no UTC offset",
        ),
        (
            ["EMPTY", "--weights-as-of", "2026-02-15T00:00:00"],
            "has no UTC offset",
        ),  # checked even with nothing to expand
        (["A", "--weights-as-of", "yesterday"], r"`weights_as_of` = 'yesterday': is not a time"),
        (
            ["A", "--weights-as-of", "2025-12-31T00:00:00Z"],
            r"portfolio 'P' has no composition at or before 2025-12-31T00:00:00Z",
        ),
        (
            ["A", "--weights-as-of", "2025-12-31T00:00:00Z", "--net", "--format", "json"],
            r"portfolio 'P' has no composition at or before 2025-12-31T00:00:00Z",
        ),
        (["NOPE"], "account with unique_identifier 'NOPE' does not exist"),
        (["A", "--allocation", "NOPE"], "target allocation with unique_identifier 'NOPE' does not exist"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_expand_refusals(world: World, argv: list[str], match: str) -> None:
    before = contents(world.cli.store)
    world.cli.fails("targets", "expand", *argv, match=match)
    assert contents(world.cli.store) == before


def test_expand_missing_composition_at_position_set_time(world: World) -> None:
    """A snapshot older than every composition of its portfolio: position-set names the portfolio and the set's time."""
    cli = world.cli
    cli.ok(
        "targets",
        "save",
        "A",
        "--at",
        "2025-06-01T00:00:00Z",
        "--file",
        str(write_rows(world.folder / "old.json", [{"portfolio": "P", W: 1.0}])),
    )
    out = world.folder / "never.json"
    cli.fails(
        "targets",
        "expand",
        "A",
        "--at",
        "2025-06-01T00:00:00Z",
        "--weights-as-of",
        "position-set",
        "--format",
        "json",
        "--out",
        str(out),
        match=r"portfolio 'P' has no composition at or before 2025-06-01T00:00:00Z; "
        r"store one with `msm portfolios weights P --at TS --file F`",
    )
    assert not out.exists()
    assert (
        cli.ok("targets", "expand", "A", "--at", "2025-06-01T00:00:00Z", "--format", "json").json()["rows"][0][
            "weights_time"
        ]
        == C2
    )


def test_expand_usage_and_output_errors(world: World) -> None:
    cli = world.cli
    cli.fails(
        "targets", "expand", "A", "--format", "parquet", match="--format parquet writes a file: give --out F", code=2
    )
    cli.fails("targets", "expand", "A", "--at", S1, "--as-of", S1, match="not allowed with argument", code=2)
    cli.fails("targets", "expand", "A", "--format", "xml", match="invalid choice", code=2)
    cli.fails(
        "targets",
        "expand",
        "A",
        "--format",
        "json",
        "--out",
        str(world.folder / "missing" / "x.json"),
        match=r"cannot write .*x\.json",
    )
    cli.fails("targets", "expand", "A", "--format", "parquet", "--out", str(world.folder), match="cannot write")


# -- export --------------------------------------------------------------------------------------
DATA_COLUMNS = [
    "position_set_uid",
    "time_index",
    "account",
    "allocation",
    "target_type",
    "target_uid",
    "asset_uid",
    "portfolio_uid",
    "unique_identifier",
    "display_label",
    W,
    N,
    Q,
    "metadata_json",
]


def _read_three_ways(path: Path) -> list[pl.DataFrame]:
    """One hive-partitioned dataset read by polars, pyarrow.dataset and DuckDB, in one row order, times in UTC."""
    by_polars = pl.read_parquet(path, hive_partitioning=True)
    by_pyarrow = pl.from_arrow(ds.dataset(path, format="parquet", partitioning="hive").to_table())
    with duckdb.connect() as con:
        reader = con.sql(f"SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)").arrow()
        by_duckdb = pl.from_arrow(reader.read_all() if hasattr(reader, "read_all") else reader)
    frames = []
    for frame in (by_polars, by_pyarrow, by_duckdb):
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(
            pl.col(c).dt.convert_time_zone("UTC") for c in ("time_index", "weights_time") if c in frame.columns
        )
        frame = frame.with_columns(pl.col("snapshot_date").cast(pl.String))
        keys = [
            c
            for c in (
                "position_set_uid",
                "source_target_type",
                "target_type",
                "source_target_uid",
                "target_uid",
                "asset",
            )
            if c in frame.columns
        ]
        frames.append(frame.sort(keys, nulls_last=True))
    return frames


def test_export_round_trip(world: World) -> None:
    out = world.folder / "export"
    doc = world.cli.ok("export", "--out", str(out), "--format", "json").json()
    assert doc["out"] == str(out) and doc["snapshots"] == 2
    assert list(doc["datasets"]) == ["target_positions", "portfolio_weights", "assets", "account_holdings"]
    assert doc["datasets"]["target_positions"] == {"path": str(out / "target_positions"), "rows": 5}
    assert sorted(p.name for p in (out / "target_positions").iterdir()) == [
        "snapshot_date=2026-02-01",
        "snapshot_date=2026-04-01",
    ]
    frames = _read_three_ways(out / "target_positions")
    for frame in frames:
        assert [c for c in frame.columns if c != "snapshot_date"] == DATA_COLUMNS
        assert frame.height == 5
        assert frame.schema["time_index"] == pl.Datetime("us", "UTC") and frame.schema[W] == pl.Float64
    first = frames[0]
    for other in frames[1:]:
        assert other.select(DATA_COLUMNS, "snapshot_date").equals(first.select(DATA_COLUMNS, "snapshot_date"))
    assert set(
        zip(
            first["snapshot_date"].to_list(),
            first["time_index"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list(),
            strict=True,
        )
    ) == {("2026-02-01", S1), ("2026-04-01", S2)}
    # the stored rows, as `targets show` has them
    for at in (S1, S2):
        shown = world.cli.ok("targets", "show", "A", "--at", at, "--format", "json").json()
        exported = first.filter(pl.col("position_set_uid") == shown["position_set_uid"])
        assert sorted((p["target_uid"], p[W], p[N], p[Q]) for p in shown["positions"]) == sorted(
            exported.select("target_uid", W, N, Q).rows()
        )
        assert set(exported["account"]) == {"A"} and set(exported["allocation"]) == {"A-main"}

    text = world.cli.ok("export", "--out", str(world.folder / "again")).out.splitlines()
    assert text[0] == f"exported 2 snapshots to {world.folder / 'again'} (hive-partitioned by snapshot_date)"
    assert text[3].split() == ["target_positions", "5", str(world.folder / "again" / "target_positions")]


def test_export_holds_compositions_and_assets(world: World) -> None:
    """An export folder holds everything a look-through needs (the design's Spark scale-out contract)."""
    out = world.folder / "export"
    doc = world.cli.ok("export", "--out", str(out), "--format", "json").json()
    weights = pl.read_parquet(out / "portfolio_weights")
    assert weights.columns == [
        *("time_index", "portfolio_uid", "portfolio", "asset_uid", "asset", "weight"),
        *("constituent_type", "constituent_portfolio_uid", "constituent_portfolio"),
    ]
    assert weights.schema["time_index"] == pl.Datetime("us", "UTC") and weights.schema["weight"] == pl.Float64
    stored = world.cli.store.query("SELECT count(*) AS n FROM portfolio_weights")["n"][0]
    assert weights.height == stored == doc["datasets"]["portfolio_weights"]["rows"]
    assert set(weights["portfolio"]) == {"P"}
    assets = pl.read_parquet(out / "assets")
    assert assets.columns == ["uid", "unique_identifier", "name", "ticker", "asset_type", "metadata_json", "currency"]
    assert (
        assets.height
        == world.cli.store.query("SELECT count(*) AS n FROM asset")["n"][0]
        == doc["datasets"]["assets"]["rows"]
    )
    assert set(weights["asset_uid"]) <= set(assets["uid"])


def test_export_expanded_matches_targets_expand(world: World) -> None:
    out = world.folder / "export"
    doc = world.cli.ok(
        "export", "--out", str(out), "--expanded", "--weights-as-of", "position-set", "--format", "json"
    ).json()
    assert doc["datasets"]["target_exposure"] == {"path": str(out / "target_exposure"), "rows": 8}
    assert "diagnostics" not in doc
    frames = _read_three_ways(out / "target_exposure")
    columns = [*EXPANSION_COLUMNS, "account", "allocation"]
    for frame in frames:
        assert [c for c in frame.columns if c != "snapshot_date"] == columns
        assert frame.select(columns, "snapshot_date").equals(frames[0].select(columns, "snapshot_date"))
    expected = pl.concat(
        [
            _typed(
                world.rows("targets", "expand", "A", "--at", at, "--weights-as-of", "position-set"),
                list(EXPANSION_COLUMNS),
            )
            for at in (S1, S2)
        ]
    )
    key = ["position_set_uid", "source_target_type", "source_target_uid", "asset"]
    assert frames[0].select(EXPANSION_COLUMNS).sort(key).equals(expected.sort(key))

    # an explicit weights time: every portfolio row uses C1
    world.cli.ok("export", "--out", str(out), "--expanded", "--weights-as-of", BETWEEN, "--overwrite")
    exposure = pl.read_parquet(out / "target_exposure", hive_partitioning=True)
    assert set(
        exposure.filter(pl.col("source_target_type") == "portfolio")["weights_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ) == {C1}
    assert (
        "look-through weights as of now" in world.cli.ok("export", "--out", str(out), "--expanded", "--overwrite").out
    )


def test_export_refusals(world: World) -> None:
    cli = world.cli
    out = world.folder / "export"
    cli.ok("export", "--out", str(out))
    written = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    cli.fails(
        "export",
        "--out",
        str(out),
        match=(
            r"already holds an export \(target_positions, portfolio_weights, assets, account_holdings\); "
            r"choose another --out or pass --overwrite"
        ),
    )
    cli.fails(
        "export",
        "--out",
        str(out),
        "--expanded",
        match=r"already holds an export \(target_positions, portfolio_weights, assets, account_holdings\)",
    )
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == written and not (out / "target_exposure").exists()
    cli.fails(
        "export",
        "--out",
        str(world.folder / "x"),
        "--expanded",
        "--weights-as-of",
        "2026-02-15T00:00:00",
        match="has no UTC offset",
    )
    cli.fails(
        "export",
        "--out",
        str(world.folder / "x"),
        "--expanded",
        "--weights-as-of",
        "2025-12-31T00:00:00Z",
        match="portfolio 'P' has no composition at or before 2025-12-31T00:00:00Z",
    )
    assert not (world.folder / "x").exists() or not any(
        (world.folder / "x").iterdir()
    )  # a failed export leaves nothing
    cli.fails("export", "--out", str(world.folder / "y"), "--weights-as-of", "now", match="add --expanded", code=2)
    (world.folder / "a-file").write_text("")
    cli.fails("export", "--out", str(world.folder / "a-file"), match="is a file, not a folder")
    cli.fails("export", match="--out", code=2)
    assert (
        cli.ok("export", "--out", str(out), "--overwrite", "--format", "json").json()["datasets"]["target_positions"][
            "rows"
        ]
        == 5
    )


# -- demo ----------------------------------------------------------------------------------------
def test_demo_creates_the_database_and_is_idempotent(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "sub" / "demo.duckdb")
    first = cli.ok("demo", "--format", "json").json()
    assert first["created"] is True and first["database"] == str(cli.db)
    assert [(m["namespace"], m["version"]) for m in first["applied"]] == [
        ("msm", 1),
        ("msm", 2),
        ("msm", 3),
        ("msm", 4),
        ("msm", 5),
        ("msm_portfolios", 1),
        ("msm_portfolios", 2),
    ]
    assert first["assets"] == ["BTC", "ETH", "SOL"]
    assert first["portfolio"]["unique_identifier"] == "CRYPTO-MAJORS-EW"
    assert first["portfolio"]["compositions"] == [
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
        "2026-06-15T00:00:00Z",
    ]
    assert [(a["unique_identifier"], a["snapshots"]) for a in first["accounts"]] == [
        ("example-account-alpha", [account_example.SNAPSHOT_TIME, account_example.REBALANCE_TIME]),
        ("example-account-beta", [account_example.SNAPSHOT_TIME]),
    ]
    assert first["next"] == [
        f"msm --db {cli.db} targets show example-account-alpha",
        f"msm --db {cli.db} targets expand example-account-alpha --net",
        f"msm --db {cli.db} drift --all --as-of 2026-06-02T00:00:00Z",
    ]
    assert first["holdings"] == {
        "cash": "USD",
        "holdings_time": "2026-06-02T00:00:00Z",
        "accounts": ["example-account-alpha", "example-account-beta"],
    }
    loaded = contents(cli.store)
    second = cli.ok("demo", "--format", "json").json()
    assert second == {**first, "created": False, "applied": []}
    assert contents(cli.store) == loaded  # every table, every row
    text = cli.ok("demo").out
    assert "created database" not in text and "applied migration" not in text
    assert (
        "account     example-account-alpha (Example Account Alpha): snapshots at "
        "2026-05-25T00:00:00Z, 2026-06-01T00:00:00Z" in text
    )
    assert f"msm --db {cli.db} targets show example-account-alpha" in text
    assert contents(cli.store) == loaded


def test_sample_book_is_deterministic_idempotent_and_saved_in_bulk(tmp_path: Path) -> None:
    import msm
    import msm_portfolios
    from msm_examples import sample_book

    store = msm_portfolios.init_store(tmp_path / "book.duckdb")
    first = sample_book.build_sample_book(store, accounts=4, assets=30, rows_per_set=6)
    assert first == {"accounts": 4, "added_accounts": 4, "assets": 30, "portfolios": 5}
    before = contents(store)
    assert sample_book.build_sample_book(store, accounts=4, assets=30, rows_per_set=6)["added_accounts"] == 0
    assert contents(store) == before
    snap = msm.read_snapshot(store, "sample-0003")
    assert snap.positions.height == 6 and snap.weight_sum == pytest.approx(1.0)
    assert set(snap.positions["target_type"]) == {"asset", "portfolio"}
    cli = Cli(tmp_path / "book.duckdb")
    cli.fails("demo", "--accounts", "-1", match="--accounts: takes a whole number >= 0", code=2)


def test_demo_on_an_initialised_database_and_via_the_example(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "msm.duckdb")
    cli.ok("init")
    text = cli.ok("demo").out
    assert "created database" not in text and "demo data loaded" in text
    loaded = contents(cli.store)
    account_example.run(cli.store)  # the example the demo is made of: the same data again
    assert contents(cli.store) == loaded


def test_demo_data_expand_and_show(demo: Cli) -> None:
    snapshot = demo.ok("targets", "show", "example-account-alpha", "--format", "json").json()
    assert snapshot["position_set_time"] == account_example.REBALANCE_TIME
    rows = demo.ok(
        "targets", "expand", "example-account-alpha", "--weights-as-of", "position-set", "--net", "--format", "json"
    ).json()["rows"]
    # 0.55 BTC direct + 0.45 x 1/3 each of BTC, ETH, SOL (composition of 2026-04-01)
    assert [(r["asset"], r["n_sources"]) for r in rows] == [("BTC", 2), ("ETH", 1), ("SOL", 1)]
    assert [r[W] for r in rows] == pytest.approx([0.55 + 0.15, 0.15, 0.15])
    assert sum(r[W] for r in rows) == pytest.approx(1.0)


# -- the database checks, help ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["portfolios", "weights", "P", "--at", C1, "--file", "w.csv"],
        ["portfolios", "history", "P"],
        ["portfolios", "composition", "P"],
        ["targets", "expand", "A"],
        ["export", "--out", "out"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_no_database_is_an_error_and_no_file_is_created(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = Cli(tmp_path / "msm.duckdb")
    cli.fails(*argv, match=r"no database at .*msm\.duckdb; create it with `msm init`")
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_new_commands() -> None:
    cli = Cli(Path("unused.duckdb"))
    top = cli("--help")
    assert top.code == 0 and all(name in top.out for name in ("demo", "export"))
    assert all(name in cli("portfolios", "--help").out for name in ("weights", "composition", "history"))
    assert "expand" in cli("targets", "--help").out
    for argv in (
        ["targets", "expand", "--help"],
        ["export", "--help"],
        ["portfolios", "weights", "--help"],
        ["demo", "--help"],
    ):
        assert cli(*argv).code == 0
