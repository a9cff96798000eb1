"""Portfolio compositions (msm_portfolios): migration, writes, reads, file import, builders, weights source.

Every refused write is checked against the whole database: it must hold exactly what it held before.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

import msm_portfolios
from msm.errors import ConflictError, NestingError, NotFoundError, ValidationError
from msm.expansion import MissingCompositionError
from msm.services.registry import add_asset, add_portfolio, delete_asset, delete_portfolio
from msm.store import MSM_MIGRATIONS, Store, migrate, schema_versions
from msm_portfolios import (
    composition_history,
    duckdb_weights_source,
    equal_weights,
    fixed_weights,
    read_composition,
    save_composition,
    save_composition_file,
)

T1 = datetime(2026, 1, 1, tzinfo=UTC)
T2 = datetime(2026, 2, 1, tzinfo=UTC)
#: The columns a read composition gained with nested portfolios (design section 12).
NESTED_COLUMNS = ["constituent_type", "constituent_portfolio_uid", "constituent_portfolio"]


@dataclass(frozen=True)
class Book:
    store: Store
    uid: dict[str, str]  # unique identifier -> uid, assets and portfolios


@pytest.fixture(scope="session")
def _book_template(tmp_path_factory: pytest.TempPathFactory) -> Book:
    store = Store(tmp_path_factory.mktemp("compositions") / "t.duckdb")
    migrate(store, msm_portfolios.MIGRATIONS)
    uid = {ident: add_asset(store, ident)["uid"] for ident in ("BTC", "ETH", "SOL")}
    uid |= {ident: add_portfolio(store, ident)["uid"] for ident in ("CRYPTO-EW", "DEFI")}
    return Book(store, uid)


@pytest.fixture
def book(tmp_path: Path, _book_template: Book) -> Book:
    """A database migrated with both namespaces, assets BTC/ETH/SOL, portfolios CRYPTO-EW and DEFI (copied per test)."""
    path = tmp_path / "t.duckdb"
    for suffix in ("", ".wal"):
        if Path(_book_template.store.path + suffix).exists():
            shutil.copyfile(_book_template.store.path + suffix, str(path) + suffix)
    return Book(Store(path), dict(_book_template.uid))


def weights_of(frame: pl.DataFrame) -> dict[str, float]:
    return dict(zip(frame["asset"].to_list(), frame["weight"].to_list(), strict=True))


# -- migrations ---------------------------------------------------------------------------------------
def test_migrations_apply_core_first_then_portfolios_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb")
    applied = migrate(store, msm_portfolios.MIGRATIONS)
    assert [str(m) for m in applied][-2:] == [
        "msm_portfolios 0001 portfolio_weights",
        "msm_portfolios 0002 nested_portfolios",
    ]
    assert [m.namespace for m in applied].index("msm_portfolios") > max(
        i for i, m in enumerate(applied) if m.namespace == "msm"
    )
    assert migrate(store, msm_portfolios.MIGRATIONS) == []
    assert schema_versions(store) == {"msm": MSM_MIGRATIONS.latest, "msm_portfolios": 2}
    assert msm_portfolios.MIGRATIONS == (MSM_MIGRATIONS, msm_portfolios.PORTFOLIO_MIGRATIONS)


def test_init_store_creates_and_migrates_both_namespaces(tmp_path: Path) -> None:
    store = msm_portfolios.init_store(tmp_path / "sub" / "new.duckdb")
    assert schema_versions(store) == {"msm": MSM_MIGRATIONS.latest, "msm_portfolios": 2}
    columns = store.query(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'portfolio_weights' ORDER BY "
        "column_index"
    ).rows()
    assert columns == [
        ("time_index", "TIMESTAMP WITH TIME ZONE"),
        ("portfolio_uid", "UUID"),
        ("constituent_type", "VARCHAR"),
        ("constituent_uid", "UUID"),
        ("asset_uid", "UUID"),
        ("constituent_portfolio_uid", "UUID"),
        ("weight", "DOUBLE"),
    ]


#: A raw asset row of a composition: (time, portfolio uid, asset uid), the weight spliced in.
_ASSET_ROW = (
    "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, asset_uid, weight) "
    "VALUES ($1, $2, 'asset', $3, $3, {weight})"
)


@pytest.mark.parametrize(
    ("weight", "match"),
    [("'NaN'::DOUBLE", "isfinite"), ("'inf'::DOUBLE", "isfinite"), ("NULL", "NOT NULL")],
)
def test_the_database_itself_refuses_non_finite_or_missing_weights(book: Book, weight: str, match: str) -> None:
    with pytest.raises(duckdb.ConstraintException, match=match), book.store.connect() as con:
        con.execute(_ASSET_ROW.format(weight=weight), [T1, book.uid["CRYPTO-EW"], book.uid["BTC"]])


def test_the_database_refuses_a_second_row_for_the_same_asset_and_unknown_references(book: Book) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 1.0})
    with pytest.raises(duckdb.ConstraintException, match="Duplicate key"), book.store.connect() as con:
        con.execute(_ASSET_ROW.format(weight=0.5), [T1, book.uid["CRYPTO-EW"], book.uid["BTC"]])
    with pytest.raises(duckdb.ConstraintException, match="foreign key"), book.store.connect() as con:
        con.execute(_ASSET_ROW.format(weight=0.5), [T1, book.uid["CRYPTO-EW"], book.uid["CRYPTO-EW"]])


def test_an_asset_or_portfolio_in_a_composition_cannot_be_deleted(book: Book) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.5})
    with pytest.raises(ConflictError, match=r"asset 'BTC' is still referenced by 1 row in portfolio_weights.asset_uid"):
        delete_asset(book.store, "BTC")
    with pytest.raises(
        ConflictError, match=r"'CRYPTO-EW' is still referenced by 2 rows in portfolio_weights.portfolio_uid"
    ):
        delete_portfolio(book.store, "CRYPTO-EW")
    delete_asset(book.store, "SOL")  # not in any composition


# -- writes and reads -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights",
    [
        pytest.param(lambda uid: {"BTC": 0.25, "ETH": 0.75}, id="dict-by-identifier"),
        pytest.param(lambda uid: {uid["BTC"]: 0.25, uid["ETH"].upper(): 0.75}, id="dict-by-uid"),
        pytest.param(
            lambda uid: [{"asset": "BTC", "weight": 0.25}, {"asset_uid": uid["ETH"], "weight": 0.75}], id="records"
        ),
        pytest.param(lambda uid: pl.DataFrame({"asset": [" BTC ", "ETH"], "weight": [0.25, 0.75]}), id="frame"),
        pytest.param(
            lambda uid: pl.DataFrame({"asset_uid": [uid["BTC"], uid["ETH"]], "weight": ["0.25", " 0.75 "]}),
            id="text-weights",
        ),
        pytest.param(
            lambda uid: pl.DataFrame(
                {"asset": ["BTC", "ETH"], "asset_uid": [uid["BTC"], None], "weight": [0.25, 0.75]}
            ),
            id="both-agree",
        ),
    ],
)
def test_save_accepts_frames_records_and_dicts_by_identifier_or_uid(
    book: Book, weights: Callable[[dict[str, str]], Any]
) -> None:
    stored = save_composition(book.store, "CRYPTO-EW", "2026-01-01T09:00:00+09:00", weights(book.uid))
    assert stored.columns == [
        "portfolio_uid",
        "portfolio",
        "weights_time",
        "asset_uid",
        "asset",
        "weight",
        *NESTED_COLUMNS,
    ]
    assert stored.drop(NESTED_COLUMNS).rows() == [
        (book.uid["CRYPTO-EW"], "CRYPTO-EW", T1, book.uid["BTC"], "BTC", 0.25),
        (book.uid["CRYPTO-EW"], "CRYPTO-EW", T1, book.uid["ETH"], "ETH", 0.75),
    ]


def test_weights_are_stored_as_given_negative_and_not_summing_to_one(book: Book) -> None:
    stored = save_composition(book.store, book.uid["CRYPTO-EW"], T1, {"BTC": 1.3, "ETH": -0.5})
    assert weights_of(stored) == {"BTC": 1.3, "ETH": -0.5}
    assert composition_history(book.store, "CRYPTO-EW")["weight_sum"].to_list() == [pytest.approx(0.8)]


def test_read_composition_is_the_latest_at_or_before_the_time(book: Book) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.5})
    save_composition(book.store, "CRYPTO-EW", T2, equal_weights(["BTC", "ETH", "SOL"]))
    assert weights_of(read_composition(book.store, "CRYPTO-EW", as_of="2026-01-15T00:00:00Z")) == {
        "BTC": 0.5,
        "ETH": 0.5,
    }
    assert read_composition(book.store, "CRYPTO-EW", as_of=T2)["weights_time"].unique().to_list() == [
        T2
    ]  # at: inclusive
    assert read_composition(book.store, "CRYPTO-EW").height == 3  # default: now
    with pytest.raises(
        MissingCompositionError, match=r"portfolio 'CRYPTO-EW' has no composition at or before 2025-12-31T00:00:00Z"
    ) as info:
        read_composition(book.store, "CRYPTO-EW", as_of="2025-12-31T00:00:00Z")
    assert isinstance(info.value, NotFoundError)
    assert "msm portfolios weights CRYPTO-EW --at TS --file F" in str(info.value)
    with pytest.raises(ValidationError, match="has no UTC offset"):
        read_composition(book.store, "CRYPTO-EW", as_of="2026-01-15T00:00:00")


def test_composition_history_is_newest_first_with_counts_and_sums(book: Book) -> None:
    assert composition_history(book.store, "CRYPTO-EW").height == 0
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.4})
    save_composition(book.store, "CRYPTO-EW", T2, equal_weights(["BTC", "ETH", "SOL"]))
    save_composition(book.store, "DEFI", T2, {"SOL": 1.0})
    history = composition_history(book.store, "CRYPTO-EW")
    assert history.columns == ["portfolio_uid", "portfolio", "weights_time", "n_assets", "weight_sum", "n_portfolios"]
    assert history.select("weights_time", "n_assets").rows() == [(T2, 3), (T1, 2)]
    assert history["weight_sum"].to_list() == [pytest.approx(1.0), pytest.approx(0.9)]


def test_overwrite_replaces_the_whole_composition(book: Book, db_contents: Callable[[Store], Any]) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.3, "SOL": 0.2})
    save_composition(book.store, "CRYPTO-EW", T2, {"BTC": 1.0})
    replaced = save_composition(book.store, "CRYPTO-EW", T1, {"ETH": 1.0}, overwrite=True)
    assert weights_of(replaced) == {"ETH": 1.0}
    assert weights_of(read_composition(book.store, "CRYPTO-EW", as_of=T1)) == {"ETH": 1.0}
    assert weights_of(read_composition(book.store, "CRYPTO-EW", as_of=T2)) == {"BTC": 1.0}  # other times untouched
    # A refused overwrite (bad rows) leaves the old composition in place.
    before = db_contents(book.store)
    with pytest.raises(ValidationError):
        save_composition(book.store, "CRYPTO-EW", T1, {"ETH": float("nan")}, overwrite=True)
    assert db_contents(book.store) == before


# -- every bad input is refused, and nothing is stored ------------------------------------------------
BAD_INPUTS: list[Any] = [
    pytest.param(
        "NOPE",
        T1,
        {"BTC": 1.0},
        NotFoundError,
        r"portfolio with unique_identifier 'NOPE' does not exist",
        id="unknown-portfolio",
    ),
    pytest.param(
        "CRYPTO-EW",
        "2026-01-01T00:00:00",
        {"BTC": 1.0},
        ValidationError,
        r"composition: `at` = '2026-01-01T00:00:00': has no UTC offset \(naive times are refused\)",
        id="naive-text-time",
    ),
    pytest.param(
        "CRYPTO-EW",
        datetime(2026, 1, 1),
        {"BTC": 1.0},
        ValidationError,
        r"`at` = '2026-01-01T00:00:00': has no UTC offset",
        id="naive-datetime",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        {"XRP": 1.0},
        ValidationError,
        r"composition row 1: `asset` = 'XRP': no asset has this unique_identifier; add it first",
        id="unknown-asset",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset_uid": "123e4567-e89b-42d3-a456-426614174000", "weight": 1.0}],
        ValidationError,
        r"row 1: `asset_uid` = '123e4567-e89b-42d3-a456-426614174000': no asset has this uid",
        id="unknown-asset-uid",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset_uid": "not-a-uuid", "weight": 1.0}],
        ValidationError,
        r"row 1: `asset_uid` = 'not-a-uuid': must be a UUID",
        id="malformed-uid",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        {"BTC": float("nan")},
        ValidationError,
        r"row 1: `weight` = 'NaN': must be finite \(NaN and infinity are refused\)",
        id="nan-weight",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        {"BTC": 0.5, "ETH": float("inf")},
        ValidationError,
        r"row 2: `weight` = 'inf': must be finite",
        id="inf-weight",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset": "BTC", "weight": "half"}],
        ValidationError,
        r"row 1: `weight` = 'half': must be a number",
        id="text-weight",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset": "BTC", "weight": None}],
        ValidationError,
        r"row 1: `weight`: is required",
        id="missing-weight",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset": "BTC", "weight": 0.5}, {"asset": "BTC", "weight": 0.5}],
        ValidationError,
        r"row 2: `asset` = 'BTC': duplicate asset 'BTC' in one composition; first given at row 1",
        id="duplicate-asset",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"weight": 0.5}],
        ValidationError,
        r"`asset`: column is missing: give `asset` \(unique identifier\) or `asset_uid`",
        id="no-asset-column",
    ),
    pytest.param(
        "CRYPTO-EW", T1, [{"asset": "BTC"}], ValidationError, r"`weight`: column is missing", id="no-weight-column"
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset": "BTC", "weight": 1.0, "sector": "L1"}],
        ValidationError,
        r"`sector`: is not a known column; allowed: asset_uid, asset, weight",
        id="unknown-column",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset_identifier": "BTC", "weight": 1.0}],
        ValidationError,
        r"`asset_identifier`: compositions name assets by `asset` \(unique identifier\) or `asset_uid`",
        id="asset-identifier",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        [{"asset": None, "weight": 1.0}],
        ValidationError,
        r"row 1: `asset`: is required: give `asset` \(unique identifier\) or `asset_uid`",
        id="no-asset-named",
    ),
    pytest.param("CRYPTO-EW", T1, {}, ValidationError, r"the composition is empty", id="empty-dict"),
    pytest.param("CRYPTO-EW", T1, [], ValidationError, r"the composition is empty", id="empty-list"),
    pytest.param(
        "CRYPTO-EW",
        T1,
        pl.DataFrame(schema={"asset": pl.String, "weight": pl.Float64}),
        ValidationError,
        r"the composition is empty",
        id="empty-frame",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        pl.DataFrame({"asset": ["BTC"], "weight": [True]}),
        ValidationError,
        r"`weight`: must hold numbers, got a Boolean column",
        id="boolean-column",
    ),
    pytest.param(
        "CRYPTO-EW",
        T1,
        ["BTC"],
        ValidationError,
        r"row 1: `row`: must be a mapping such as \{\"asset\": \"BTC\", \"weight\": 0.5\}, got a str",
        id="not-records",
    ),
]


@pytest.mark.parametrize(("portfolio", "at", "weights", "error", "match"), BAD_INPUTS)
def test_bad_input_is_refused_and_nothing_is_stored(
    book: Book,
    db_contents: Callable[[Store], Any],
    portfolio: str,
    at: Any,
    weights: Any,
    error: type[Exception],
    match: str,
) -> None:
    save_composition(book.store, "CRYPTO-EW", T2, {"ETH": 1.0})  # something stored, to compare against
    before = db_contents(book.store)
    with pytest.raises(error, match=match):
        save_composition(book.store, portfolio, at, weights)
    assert db_contents(book.store) == before


def test_a_composition_at_a_taken_time_is_refused_without_overwrite(
    book: Book, db_contents: Callable[[Store], Any]
) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.5})
    before = db_contents(book.store)
    with pytest.raises(
        ConflictError,
        match=r"composition of portfolio 'CRYPTO-EW' at 2026-01-01T00:00:00Z already exists \(2 assets\); pass "
        r"overwrite=True",
    ):
        save_composition(book.store, "CRYPTO-EW", "2026-01-01T01:00:00+01:00", {"SOL": 1.0})  # the same instant
    assert db_contents(book.store) == before


def test_every_bad_row_is_reported_at_once_with_the_portfolio_and_time(book: Book) -> None:
    rows = [
        {"asset": "BTC", "weight": "0.5"},
        {"asset": "XRP", "weight": "0.1"},
        {"asset": "ETH", "weight": "nan"},
        {"asset_uid": book.uid["BTC"], "weight": "0.2"},
        {"asset": "SOL", "asset_uid": book.uid["ETH"], "weight": "1,5"},
    ]
    with pytest.raises(ValidationError) as info:
        save_composition(book.store, "CRYPTO-EW", T1, rows)
    message = str(info.value)
    assert message.startswith(
        "composition of portfolio 'CRYPTO-EW' at 2026-01-01T00:00:00Z: 5 problems found; nothing was stored:"
    )
    assert [(e.row, e.field) for e in info.value.errors] == [
        (2, "asset"),
        (3, "weight"),
        (4, "asset_uid"),
        (5, "asset_uid"),
        (5, "weight"),
    ]
    assert "duplicate asset 'BTC' in one composition; first given at row 1" in message
    assert "names a different asset than `asset` = 'SOL'" in message


# -- files --------------------------------------------------------------------------------------------
def test_save_from_csv_json_and_parquet(book: Book, tmp_path: Path) -> None:
    csv = tmp_path / "w.csv"
    csv.write_text("asset,weight\nBTC,0.6\nETH, 0.4\n", encoding="utf-8")
    assert weights_of(save_composition_file(book.store, "CRYPTO-EW", T1, csv)) == {"BTC": 0.6, "ETH": 0.4}
    js = tmp_path / "w.json"
    js.write_text(json.dumps([{"asset_uid": book.uid["SOL"], "weight": 1}]), encoding="utf-8")
    assert weights_of(save_composition_file(book.store, "CRYPTO-EW", T2, js)) == {"SOL": 1.0}
    pq = tmp_path / "w.parquet"
    equal_weights(["BTC", "ETH", "SOL"]).write_parquet(pq)
    stored = save_composition_file(book.store, "DEFI", T1, pq)
    assert stored["weight"].to_list() == pytest.approx([1 / 3] * 3)


def test_save_from_excel_first_sheet_or_named_sheet(book: Book, tmp_path: Path) -> None:
    import xlsxwriter

    path = tmp_path / "w.xlsx"
    with xlsxwriter.Workbook(path) as workbook:
        first, second = workbook.add_worksheet("Index"), workbook.add_worksheet("Other")
        for sheet, rows in (
            (first, [("asset", "weight"), ("BTC", 0.25), ("ETH", 0.75)]),
            (second, [("asset", "weight"), ("SOL", "x")]),
        ):
            for r, row in enumerate(rows):
                sheet.write_row(r, 0, row)
    assert weights_of(save_composition_file(book.store, "CRYPTO-EW", T1, path)) == {"BTC": 0.25, "ETH": 0.75}
    from msm.io import read_table_file

    other = read_table_file(path, sheet="Other")
    assert other.rows() == [("SOL", "x")]  # cells kept as text: validation names 'x'
    with pytest.raises(ValidationError, match=r"could not be read as EXCEL: .*Nope"):
        read_table_file(path, sheet="Nope")


def test_csv_cells_that_are_not_numbers_are_named_and_nothing_is_stored(
    book: Book, tmp_path: Path, db_contents: Callable[[Store], Any]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("asset,weight\nBTC,0.5\nETH,abc\nSOL,\nBTC,inf\n", encoding="utf-8")
    before = db_contents(book.store)
    with pytest.raises(ValidationError) as info:
        save_composition_file(book.store, "CRYPTO-EW", T1, path)
    assert [(e.row, e.field, e.as_dict()["value"], e.rule) for e in info.value.errors] == [
        (2, "weight", "abc", "must be a number"),
        (3, "weight", None, "is required"),
        (4, "asset", "BTC", "duplicate asset 'BTC' in one composition; first given at row 1"),
        (4, "weight", "inf", "must be finite (NaN and infinity are refused)"),
    ]
    assert db_contents(book.store) == before


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("w.txt", "asset,weight\n", r"has an unknown extension"),
        ("w.csv", "asset,weight\n", r"w.csv has no rows"),
        ("w.json", '{"asset": "BTC"}', r"must hold a JSON list of objects"),
    ],
)
def test_unreadable_files_are_refused(book: Book, tmp_path: Path, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValidationError, match=match):
        save_composition_file(book.store, "CRYPTO-EW", T1, path)


def test_a_naive_time_is_refused_before_the_file_is_read(book: Book, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="has no UTC offset"):
        save_composition_file(book.store, "CRYPTO-EW", "2026-01-01 00:00", tmp_path / "missing.csv")


# -- builders -------------------------------------------------------------------------------------------
def test_builders() -> None:
    assert equal_weights(["BTC", "ETH", "SOL", "ADA"]).rows() == [
        ("BTC", 0.25),
        ("ETH", 0.25),
        ("SOL", 0.25),
        ("ADA", 0.25),
    ]
    assert fixed_weights({"BTC": 0.6, "ETH": 0.3}).rows() == [("BTC", 0.6), ("ETH", 0.3)]
    assert fixed_weights({"BTC": 0.6, "ETH": "x"})["weight"].to_list() == ["0.6", "x"]  # kept, for validation to name
    with pytest.raises(ValidationError, match="equal weights need at least one asset"):
        equal_weights([])
    with pytest.raises(ValidationError, match=r"row 3: `asset` = 'BTC': is listed twice \(first at row 1\)"):
        equal_weights(["BTC", "ETH", "BTC"])


# -- the weights source -------------------------------------------------------------------------------
def test_duckdb_weights_source_reads_only_the_asked_portfolios_up_to_the_bound(book: Book) -> None:
    save_composition(book.store, "CRYPTO-EW", T1, {"BTC": 0.5, "ETH": 0.5})
    save_composition(book.store, "CRYPTO-EW", T2, {"SOL": 1.0})
    save_composition(book.store, "DEFI", T1, {"ETH": 1.0})
    source = duckdb_weights_source(book.store)
    frame = source([book.uid["CRYPTO-EW"]], T1)
    assert frame.columns == [
        "time_index",
        "portfolio_uid",
        "asset_uid",
        "asset",
        "portfolio",
        "weight",
        *NESTED_COLUMNS,
    ]
    assert frame.schema["time_index"] == pl.Datetime("us", "UTC")
    assert sorted(frame.select("asset", "portfolio", "weight").rows()) == [
        ("BTC", "CRYPTO-EW", 0.5),
        ("ETH", "CRYPTO-EW", 0.5),
    ]
    assert source([book.uid["CRYPTO-EW"], book.uid["DEFI"]], None).height == 4
    assert source([], None).height == 0
    assert source(["not-a-uuid"], T2).height == 0


# -- nested portfolios (design section 12) ---------------------------------------------------------------
def _chain(book: Book, names: list[str], at: datetime = T1) -> None:
    """Portfolios ``names`` each holding the next; the last holds BTC."""
    for name in names:
        if name not in book.uid:
            book.uid[name] = add_portfolio(book.store, name)["uid"]
    save_composition(book.store, names[-1], at, {"BTC": 1.0})
    for parent, child in reversed(list(itertools.pairwise(names))):
        save_composition(book.store, parent, at, [{"portfolio": child, "weight": 1.0}])


def test_a_composition_may_hold_portfolios_and_assets(book: Book) -> None:
    save_composition(book.store, "DEFI", T1, {"SOL": 1.0})
    stored = save_composition(
        book.store, "CRYPTO-EW", T1, [{"asset": "BTC", "weight": 0.5}, {"portfolio": "DEFI", "weight": 0.5}]
    )
    assert stored.select("constituent_type", "asset", "constituent_portfolio", "weight").rows() == [
        ("asset", "BTC", None, 0.5),
        ("portfolio", None, "DEFI", 0.5),
    ]
    by_uid = save_composition(
        book.store, "CRYPTO-EW", T2, [{"constituent_portfolio_uid": book.uid["DEFI"], "weight": 1.0}]
    )
    assert by_uid["constituent_portfolio_uid"].to_list() == [book.uid["DEFI"]]
    assert composition_history(book.store, "CRYPTO-EW")["n_portfolios"].to_list() == [1, 1]
    # the source hands expansion the nested portfolio's compositions too, though only the parent was asked
    frame = duckdb_weights_source(book.store)([book.uid["CRYPTO-EW"]], None)
    assert sorted(frame["portfolio"].unique().to_list()) == ["CRYPTO-EW", "DEFI"]
    with pytest.raises(ConflictError, match=r"portfolio 'DEFI' is still referenced by 2 rows in portfolio_weights"):
        delete_portfolio(book.store, "DEFI")


NESTED_BAD = [
    pytest.param(
        [{"asset": "BTC", "portfolio": "DEFI", "weight": 1.0}],
        r"row 1: `portfolio` = 'DEFI': names both an asset \('BTC'\) and a portfolio",
        id="both",
    ),
    pytest.param(
        [{"asset_uid": "@BTC", "constituent_portfolio_uid": "@DEFI", "weight": 1.0}],
        r"names both an asset .* and a portfolio",
        id="both-by-uid",
    ),
    pytest.param(
        [{"portfolio": "NOPE", "weight": 1.0}],
        r"row 1: `portfolio` = 'NOPE': no portfolio has this unique_identifier",
        id="unknown-portfolio",
    ),
    pytest.param(
        [{"constituent_portfolio_uid": "00000000-0000-4000-8000-000000000000", "weight": 1.0}],
        r"`constituent_portfolio_uid` = '00000000-0000-4000-8000-000000000000': no portfolio has this uid",
        id="unknown-portfolio-uid",
    ),
    pytest.param(
        [{"portfolio": "CRYPTO-EW", "weight": 1.0}],
        r"row 1: `portfolio` = 'CRYPTO-EW': would make portfolio 'CRYPTO-EW' contain itself: CRYPTO-EW -> CRYPTO-EW",
        id="itself",
    ),
    pytest.param(
        [{"asset": "BTC", "weight": 0.5}, {"portfolio": "DEFI", "weight": 0.5}],
        r"row 2: `portfolio` = 'DEFI': would make portfolio 'CRYPTO-EW' contain itself: CRYPTO-EW -> DEFI -> CRYPTO-EW",
        id="two-cycle",
    ),
    pytest.param(
        [{"portfolio": "DEFI", "weight": 0.5}, {"portfolio": "DEFI", "weight": 0.5}],
        r"row 2: `portfolio` = 'DEFI': duplicate portfolio 'DEFI' in one composition; first given at row 1",
        id="twice",
    ),
]


@pytest.mark.parametrize(("rows", "match"), NESTED_BAD)
def test_bad_nested_compositions_are_refused_and_nothing_is_stored(
    book: Book, db_contents: Callable[[Store], Any], rows: list[dict[str, Any]], match: str
) -> None:
    # DEFI holds CRYPTO-EW at T2: CRYPTO-EW holding DEFI at any time closes a loop
    save_composition(book.store, "DEFI", T2, [{"portfolio": "CRYPTO-EW", "weight": 1.0}])
    rows = [{k: book.uid[v[1:]] if isinstance(v, str) and v.startswith("@") else v for k, v in r.items()} for r in rows]
    before = db_contents(book.store)
    with pytest.raises(ValidationError, match=match):
        save_composition(book.store, "CRYPTO-EW", T1, rows)
    assert db_contents(book.store) == before


def test_a_longer_cycle_names_its_whole_path(book: Book, db_contents: Callable[[Store], Any]) -> None:
    _chain(book, ["A", "B", "C", "D"])
    before = db_contents(book.store)
    with pytest.raises(NestingError, match=r"would make portfolio 'D' contain itself: D -> A -> B -> C -> D") as info:
        save_composition(book.store, "D", T2, [{"portfolio": "A", "weight": 1.0}])
    assert info.value.path == ["D", "A", "B", "C", "D"] and info.value.kind == "cycle"
    assert info.value.to_dict()["errors"][0]["code"] == "portfolio_nesting_cycle"
    assert db_contents(book.store) == before


def test_nesting_is_at_most_eight_levels(book: Book, db_contents: Callable[[Store], Any]) -> None:
    names = [f"L{i}" for i in range(1, 9)]
    _chain(book, names)  # L1 -> ... -> L8 -> BTC: BTC is 8 compositions below L1
    book.uid["L0"] = add_portfolio(book.store, "L0")["uid"]
    before = db_contents(book.store)
    chain = " -> ".join(["L0", *names])
    with pytest.raises(NestingError, match=rf"would nest portfolios 9 levels deep: {chain}; nesting is at most 8"):
        save_composition(book.store, "L0", T1, [{"portfolio": "L1", "weight": 1.0}])
    assert db_contents(book.store) == before
    # the same limit holds when the new edge is in the middle of a chain (ancestors above, descendants below)
    save_composition(book.store, "L4", T2, {"ETH": 1.0})  # L4's latest composition holds assets only
    with pytest.raises(NestingError, match=r"9 levels deep"):
        save_composition(book.store, "L0", T1, [{"portfolio": "L1", "weight": 1.0}])  # its T1 edge still counts


def test_overwriting_a_nested_composition_is_not_a_cycle(book: Book) -> None:
    _chain(book, ["A", "B"])
    stored = save_composition(book.store, "A", T1, [{"portfolio": "B", "weight": 0.5}], overwrite=True)
    assert stored["weight"].to_list() == [0.5]
    with pytest.raises(ConflictError, match=r"already exists \(1 portfolio\)"):
        save_composition(book.store, "A", T1, [{"portfolio": "B", "weight": 1.0}])
