"""``msm holdings``, ``msm prices``, ``msm fx`` and ``msm drift``: outputs, documents, every refusal.

A refusal is exit 1 with one message, and the database is left as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from msm.drift import POSITION_COLUMNS, ROW_COLUMNS
from tests.cli_harness import Cli, contents, write_rows
from tests.test_holdings import add_cash

DAY = "2026-06-01T00:00:00Z"
AFTER = "2026-06-02T00:00:00Z"


def _setup(cli: Cli, folder: Path) -> None:
    cli.ok("init")
    for asset in ("BTC", "ETH", "SOL"):
        cli.ok("assets", "add", asset, "--type", "crypto")
    add_cash(cli.store, "USD")
    cli.ok("portfolios", "add", "EW")
    cli.ok(
        "portfolios",
        "weights",
        "EW",
        "--at",
        "2026-01-01T00:00:00Z",
        "--file",
        str(write_rows(folder / "w.csv", [{"asset": "ETH", "weight": 0.5}, {"asset": "SOL", "weight": 0.5}])),
    )
    cli.ok("models", "add", "m")
    for account in ("alpha", "beta", "idle"):
        cli.ok("accounts", "add", account, "--name", account.title())
        cli.ok("allocations", "add", f"{account}-main", "--account", account, "--model", "m")
    targets = [{"asset": "BTC", "weight_notional_exposure": 0.5}, {"portfolio": "EW", "weight_notional_exposure": 0.4}]
    cli.ok(
        "targets",
        "save",
        "alpha",
        "--at",
        "2026-05-01T00:00:00Z",
        "--file",
        str(write_rows(folder / "t.json", targets)),
    )
    cli.ok(
        "targets",
        "save",
        "beta",
        "--at",
        "2026-05-01T00:00:00Z",
        "--file",
        str(write_rows(folder / "b.json", [{"asset": "BTC", "weight_notional_exposure": 1.0}])),
    )
    prices = [
        {"asset": a, "time": DAY, "price": p, "currency": "USD"}
        for a, p in (("BTC", 60_000), ("ETH", 3_000), ("SOL", 150))
    ]
    cli.ok("prices", "import", str(write_rows(folder / "p.csv", prices)))
    holdings = [
        {"account": "alpha", "asset": "BTC", "quantity": 1},
        {"account": "alpha", "asset": "ETH", "quantity": 10},
        {"account": "alpha", "asset": "USD", "quantity": 10_000},
    ]
    cli.ok("holdings", "import", str(write_rows(folder / "h.csv", holdings)), "--at", DAY)


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-drift")
    _setup(Cli(folder / "t.duckdb"), folder)
    return folder / "t.duckdb"


@pytest.fixture
def cli(tmp_path: Path, _template: Path) -> Cli:
    shutil.copyfile(_template, tmp_path / "msm.duckdb")
    return Cli(tmp_path / "msm.duckdb")


# -- holdings ----------------------------------------------------------------------------------------------
def test_holdings_import_show_and_history(cli: Cli, tmp_path: Path) -> None:
    rows = [{"account": "beta", "asset": "BTC", "quantity": 2}, {"account": "alpha", "asset": "SOL", "quantity": 5}]
    doc = cli.ok(
        "holdings", "import", str(write_rows(tmp_path / "h.parquet", rows)), "--at", AFTER, "--format", "json"
    ).json()
    assert doc["holdings_time"] == AFTER and doc["accounts"] == 2 and doc["rows"] == 2 and doc["replaced"] == 0
    shown = cli.ok("holdings", "show", "alpha", "--format", "json").json()
    assert set(shown) == {"account", "holdings_set_uid", "holdings_time", "source", "positions"}
    assert [(p["asset"], p["quantity"]) for p in shown["positions"]] == [("SOL", 5.0)] and shown["source"] == "cli"
    earlier = cli.ok("holdings", "show", "alpha", "--as-of", DAY, "--format", "json").json()
    assert [p["asset"] for p in earlier["positions"]] == ["BTC", "ETH", "USD"]
    assert "quantity (units)" in cli.ok("holdings", "show", "alpha").out
    assert cli.ok("holdings", "show", "alpha", "--format", "csv").out.splitlines()[0] == (
        "asset,asset_uid,name,asset_type,currency,quantity,metadata_json"
    )
    assert "has no holdings" in cli.ok("holdings", "show", "idle").out
    history = cli.ok("holdings", "history", "alpha", "--format", "json").json()
    assert [s["rows"] for s in history["sets"]] == [1, 3]
    again = cli.ok("holdings", "import", str(tmp_path / "h.parquet"), "--at", AFTER, "--overwrite").out
    assert "(2 replaced whole)" in again


def test_prices_and_fx_import(cli: Cli, tmp_path: Path) -> None:
    rates = [{"base": "EUR", "quote": "USD", "time": DAY, "rate": 1.1}]
    assert cli.ok("fx", "import", str(write_rows(tmp_path / "fx.csv", rates)), "--format", "json").json() == {
        "added": 1,
        "updated": 0,
        "unchanged": 0,
    }
    out = cli.ok("fx", "import", str(tmp_path / "fx.csv"), "--upsert").out
    assert out.strip().endswith("0 added, 0 updated, 1 unchanged")
    changed = [{"asset": "BTC", "time": DAY, "price": 61_000, "currency": "USD"}]
    assert "1 updated" in cli.ok("prices", "import", str(write_rows(tmp_path / "p.json", changed)), "--upsert").out


def test_prices_and_fx_list(cli: Cli, tmp_path: Path) -> None:
    later = [{"asset": "BTC", "time": AFTER, "price": 61_234.5, "currency": "USD", "source": "feed"}]
    cli.ok("prices", "import", str(write_rows(tmp_path / "p.csv", later)))
    rates = [{"base": "EUR", "quote": "USD", "time": DAY, "rate": 1.1}]
    cli.ok("fx", "import", str(write_rows(tmp_path / "fx.csv", rates)))
    table = cli.ok("prices", "list").out.splitlines()
    assert table[0] == "prices: the latest of each asset (3 rows, 3 assets)"
    assert table[3].split() == ["BTC", AFTER, "61,234.5", "USD", "feed"]
    assert table[3].index("61,234.5") + len("61,234.5") == len(table[1].split("  currency")[0])  # right-aligned
    doc = cli.ok("prices", "list", "BTC", "--history", "--as-of", AFTER, "--format", "json").json()
    assert doc["as_of"] == AFTER and doc["history"] is True
    assert [(p["time"], p["price"]) for p in doc["prices"]] == [(DAY, 60_000.0), (AFTER, 61_234.5)]
    assert set(doc["prices"][0]) == {"asset", "asset_uid", "time", "price", "currency", "source"}
    csv = cli.ok("prices", "list", "--as-of", DAY, "--format", "csv").out.splitlines()
    assert csv[0] == "asset,asset_uid,time,price,currency,source" and len(csv) == 4
    fx = cli.ok("fx", "list", "USD").out.splitlines()
    assert fx[0] == "FX rates: the latest of each pair (1 row, 1 pair)" and fx[3].split() == ["EUR/USD", DAY, "1.1"]
    assert cli.ok("fx", "list", "--as-of", "2026-05-01T00:00:00Z").out.strip() == (
        "(no FX rates at or before 2026-05-01T00:00:00Z)"
    )
    assert cli.ok("fx", "list", "--format", "json").json()["fx_rates"][0]["rate"] == 1.1


def test_prices_and_fx_delete(cli: Cli, tmp_path: Path) -> None:
    rates = [{"base": "EUR", "quote": "USD", "time": DAY, "rate": 1.1}]
    cli.ok("fx", "import", str(write_rows(tmp_path / "fx.csv", rates)))
    assert cli.ok("prices", "delete", "BTC", "ETH", "--at", DAY, "--reason", "bad feed").out.strip() == (
        f"deleted 2 prices at {DAY}"
    )
    assert [p["asset"] for p in cli.ok("prices", "list", "--format", "json").json()["prices"]] == ["SOL"]
    assert cli.ok("fx", "delete", "EUR/USD", "--at", DAY, "--format", "json").json() == {"deleted": 1}
    events = cli.ok("audit", "--action", "delete", "--format", "json").json()
    assert [e["entity_type"] for e in events["events"]] == ["fx_rate", "price"]


# -- drift ---------------------------------------------------------------------------------------------------
def test_drift_json_document(cli: Cli) -> None:
    doc = cli.ok("drift", "alpha", "--as-of", AFTER, "--format", "json").json()
    assert list(doc) == ["valuation_time", "band_abs", "band_rel", "accounts"]
    assert doc["valuation_time"] == AFTER and doc["band_abs"] == 0.05 and doc["band_rel"] is None
    (account,) = doc["accounts"]
    assert list(account) == [
        "account",
        "status",
        "base_currency",
        "nav",
        "holdings_time",
        "position_set_time",
        "weights_time",
        "max_abs_drift",
        "n_breaches",
        "positions",
    ]
    assert account["nav"] == 100_000.0 and account["base_currency"] == "USD" and account["weights_time"] == AFTER
    positions = {p["asset"]: p for p in account["positions"]}
    assert list(positions) == ["BTC", "ETH", "SOL", "USD"]
    assert all(list(p) == list(POSITION_COLUMNS[1:]) for p in positions.values())
    assert positions["SOL"]["quantity"] == 0.0 and positions["SOL"]["target_weight"] == pytest.approx(0.2)
    assert positions["USD"]["target_weight"] == pytest.approx(0.1) and positions["USD"]["price_currency"] == "USD"
    assert account["n_breaches"] == sum(p["breach"] for p in positions.values())


def test_drift_all_reports_accounts_it_cannot_compare(cli: Cli) -> None:
    doc = cli.ok("drift", "--all", "--as-of", AFTER, "--format", "json").json()
    assert [(a["account"], a["status"], len(a["positions"])) for a in doc["accounts"]] == [
        ("alpha", "ok", 4),
        ("beta", "no holdings", 0),
        ("idle", "no holdings and no targets", 0),
    ]
    table = cli.ok("drift", "--all", "--as-of", AFTER).out
    assert "account 'beta': no holdings at or before 2026-06-02T00:00:00Z" in table
    assert "NAV 100,000.00 USD" in table and "value (USD)" in table and " pp" in table


def test_drift_csv_and_parquet_have_one_row_per_account_and_asset(cli: Cli, tmp_path: Path) -> None:
    lines = cli.ok("drift", "--all", "--as-of", AFTER, "--format", "csv").out.splitlines()
    assert lines[0] == ",".join(ROW_COLUMNS) and len(lines) == 5 and lines[1].startswith("alpha,USD,BTC,")
    out = tmp_path / "drift.parquet"
    said = cli.ok("drift", "alpha", "--as-of", AFTER, "--band-rel", "0.5", "--format", "parquet", "--out", str(out))
    assert "wrote 4 positions of 1 account (parquet)" in said.out
    frame = pl.read_parquet(out)
    assert frame.columns == list(ROW_COLUMNS) and frame["account"].to_list() == ["alpha"] * 4
    assert cli.ok(
        "drift", "alpha", "--as-of", AFTER, "--format", "json", "--out", str(tmp_path / "d.json")
    ).out.startswith("wrote")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["drift"], r"name one or more accounts, or give --all"),
        (["drift", "alpha", "--all"], r"name one or more accounts, or give --all \(not both\)"),
        (["drift", "alpha", "--format", "parquet"], r"--format parquet writes a file: give --out F"),
        (["drift", "alpha", "--band-abs", "-0.1"], r"--band-abs: takes a number >= 0"),
        (["drift", "alpha", "--band-rel", "lots"], r"--band-rel: takes a number >= 0"),
        (["holdings", "import", "h.csv"], r"the following arguments are required: --at"),
    ],
)
def test_usage_errors(cli: Cli, argv: list[str], message: str) -> None:
    cli.fails(*argv, match=message, code=2)


def _file(tmp_path: Path, name: str, rows: list[dict[str, Any]]) -> str:
    return str(write_rows(tmp_path / name, rows))


BAD = [
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "alpha", "asset": "NOPE", "quantity": 1}]),
            "--at",
            AFTER,
        ],
        r"holdings row 1: `asset` = 'NOPE': no asset has this unique_identifier",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "ghost", "asset": "BTC", "quantity": 1}]),
            "--at",
            AFTER,
        ],
        r"holdings row 1: `account` = 'ghost': no account has this",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "alpha", "asset": "BTC", "quantity": -3}]),
            "--at",
            AFTER,
        ],
        r"`quantity` = '-3': must be >= 0 \(holdings are long-only\)",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "alpha", "asset": "BTC", "quantity": "NaN"}]),
            "--at",
            AFTER,
        ],
        r"`quantity` = 'NaN': must be finite",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(
                p,
                "h.csv",
                [
                    {"account": "alpha", "asset": "BTC", "quantity": 1},
                    {"account": "alpha", "asset": "BTC", "quantity": 1},
                ],
            ),
            "--at",
            AFTER,
        ],
        r"holdings row 2: `asset` = 'BTC': duplicate asset for account 'alpha' in one file",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "alpha", "asset": "BTC", "quantity": 1}]),
            "--at",
            "2026-06-02T00:00:00",
        ],
        r"`holdings_time` = '2026-06-02T00:00:00': has no UTC offset",
    ),
    (
        lambda p: [
            "holdings",
            "import",
            _file(p, "h.csv", [{"account": "alpha", "asset": "BTC", "quantity": 1}]),
            "--at",
            DAY,
        ],
        r"holdings set exists at 2026-06-01T00:00:00Z for account 'alpha'; pass overwrite \(--overwrite\)",
    ),
    (
        lambda p: [
            "prices",
            "import",
            _file(p, "p.csv", [{"asset": "BTC", "time": AFTER, "price": 0, "currency": "USD"}]),
        ],
        r"prices row 1: `price` = '0': must be > 0",
    ),
    (
        lambda p: [
            "prices",
            "import",
            _file(p, "p.csv", [{"asset": "BTC", "time": AFTER, "price": 1, "currency": "usd"}]),
        ],
        r"prices row 1: `currency` = 'usd': must be a three-letter upper-case ISO 4217 currency code",
    ),
    (
        lambda p: [
            "prices",
            "import",
            _file(p, "p.csv", [{"asset": "BTC", "time": AFTER, "price": 1, "currency": "US"}]),
        ],
        r"prices row 1: `currency` = 'US': must be a three-letter",
    ),
    (
        lambda p: [
            "prices",
            "import",
            _file(p, "p.csv", [{"asset": "BTC", "time": DAY, "price": 1, "currency": "USD"}]),
        ],
        r"a price of this asset at this time is stored already; pass --upsert",
    ),
    (
        lambda p: ["fx", "import", _file(p, "fx.csv", [{"base": "USD", "quote": "USD", "time": AFTER, "rate": 1}])],
        r"fx rates row 1: `quote` = 'USD': must differ from base",
    ),
    (lambda p: ["prices", "list", "BTC", "NOPE"], r"asset with unique_identifier or uid 'NOPE' does not exist"),
    (lambda p: ["prices", "list", "--as-of", "2026-06-02"], r"prices: `as_of` = '2026-06-02': has no UTC offset"),
    (
        lambda p: ["prices", "delete", "BTC", "SOL", "--at", AFTER],
        r"prices delete: 2 problems found; nothing was deleted",
    ),
    (lambda p: ["fx", "delete", "EURUSD", "--at", DAY], r"`base` = 'EURUSD': must be a three-letter"),
    (lambda p: ["fx", "list", "usd"], r"fx rates: `currency` = 'usd': must be a three-letter upper-case ISO 4217"),
    (lambda p: ["drift", "ghost"], r"drift: 1 unknown account:\n  drift: `account` = 'ghost'"),
    (
        lambda p: ["drift", "beta", "idle", "--as-of", AFTER],
        r"2 accounts cannot be compared:\n  drift: `account` = 'beta': has no holdings at or before "
        r"2026-06-02T00:00:00Z",
    ),
    (
        lambda p: ["drift", "alpha", "--as-of", "2026-05-15T00:00:00Z"],
        r"`account` = 'alpha': has no holdings at or before",
    ),
    (lambda p: ["drift", "alpha", "--as-of", "2026-06-02"], r"`as_of` = '2026-06-02': has no UTC offset"),
    (lambda p: ["drift", "alpha", "--weights-as-of", "later"], r"`weights_as_of` = 'later'"),
    (
        lambda p: ["drift", "alpha", "--as-of", "2026-06-01T00:00:00Z", "--weights-as-of", "2025-01-01T00:00:00Z"],
        r"portfolio 'EW' has no composition at or before 2025-01-01T00:00:00Z",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[m for _, m in BAD])
def test_every_refusal_is_one_message_and_stores_nothing(cli: Cli, tmp_path: Path, argv, message: str) -> None:
    before = contents(cli.store)
    cli.fails(*argv(tmp_path), match=message)
    assert contents(cli.store) == before


def test_drift_names_every_missing_price_and_rate(cli: Cli, tmp_path: Path) -> None:
    cli.store.execute("DELETE FROM asset_price WHERE price = 3000")
    eur = [{"asset": "BTC", "time": AFTER, "price": 55_000, "currency": "EUR"}]  # later than the USD price
    cli.ok("prices", "import", _file(tmp_path, "p.csv", eur))
    cli.fails(
        "drift",
        "alpha",
        "--as-of",
        AFTER,
        match=r"no price at or before 2026-06-02T00:00:00Z for 1 asset: 'ETH'; no FX rate at or before "
        r"2026-06-02T00:00:00Z for 1 currency pair: EUR/USD \(nor USD/EUR\)",
    )


def test_drift_without_a_cash_asset_says_how_to_add_it(cli: Cli) -> None:
    cli.store.execute(
        "DELETE FROM account_holdings WHERE asset_uid = (SELECT uid FROM asset WHERE unique_identifier = 'USD')"
    )
    cli.store.execute("DELETE FROM asset WHERE unique_identifier = 'USD'")
    cli.fails(
        "drift",
        "alpha",
        "--as-of",
        AFTER,
        match=r"account 'alpha' leaves 10\.0000% of its NAV unallocated and has no USD cash asset: .*"
        r"add it with `msm assets add USD --type cash --currency USD`",
    )


# -- export ---------------------------------------------------------------------------------------------------
def test_export_writes_holdings_and_with_drift_the_drift_and_its_inputs(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "export"
    doc = cli.ok("export", "--out", str(out), "--drift", "--drift-as-of", AFTER, "--format", "json").json()
    assert list(doc["datasets"]) == [
        "target_positions",
        "portfolio_weights",
        "assets",
        "account_holdings",
        "drift",
        "accounts",
        "allocations",
        "asset_prices",
        "fx_rates",
    ]
    holdings = pl.read_parquet(out / "account_holdings", hive_partitioning=True)
    assert holdings.height == 3 == doc["datasets"]["account_holdings"]["rows"]
    assert holdings["snapshot_date"].cast(pl.String).unique().to_list() == ["2026-06-01"]
    assert sorted(holdings["asset"]) == ["BTC", "ETH", "USD"]
    exported = pl.read_parquet(out / "drift", hive_partitioning=True)
    assert exported["snapshot_date"].cast(pl.String).unique().to_list() == ["2026-06-02"]
    local = tmp_path / "local.parquet"
    cli.ok("drift", "--all", "--as-of", AFTER, "--format", "parquet", "--out", str(local))
    assert exported.select(ROW_COLUMNS).equals(pl.read_parquet(local))
    accounts = pl.read_parquet(out / "accounts")
    assert set(accounts.columns) >= {"uid", "unique_identifier", "base_currency", "account_is_active"}
    assert pl.read_parquet(out / "asset_prices").height == 3
    assert "currency" in pl.read_parquet(out / "assets").columns


def test_export_drift_as_of_needs_drift(cli: Cli, tmp_path: Path) -> None:
    cli.fails("export", "--out", str(tmp_path / "x"), "--drift-as-of", AFTER, match="add --drift", code=2)
