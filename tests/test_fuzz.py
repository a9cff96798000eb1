"""Fuzzing the write paths (issue 10): hostile payloads and files, a clean error or a faithful write.

Four targets, each with a Hypothesis strategy: target-set payloads (``msm.save_snapshot``), import
files for a target set (CSV with any delimiter and encoding, JSON, Parquet, Excel; random columns,
types and sizes; what ``msm targets save --file`` does), composition files
(``msm_portfolios.save_composition_file``) and bulk registry files (``msm.import_reference``).

The property, for every example: the call raises an error of the project's hierarchy
(``msm.MsmError``), or it stores data that reads back equal to what was given. Any other exception
fails the test, and after every example the database holds no invalid row and no partial write.

``make test`` runs ``MSM_FUZZ_EXAMPLES`` examples per target (default 40); ``make fuzz`` runs 1,000.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from msm.io import read_table_file

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MSM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
W, N, Q = "weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity"
ASSETS = ("BTC", "ETH", "SOL", "ADA")
T0 = datetime(2027, 1, 1, tzinfo=UTC)

HOSTILE = [
    "'; DROP TABLE asset; --",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "Ω≈ç√",
    "\x00",
    "  ",
    "",
    "NaN",
    "1e309",
    "0x10",
    "Robert'); --",
    "%",
    "_",
    "\\",
    "\t",
    "\u202e",
    "１２",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))
number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.decimals(allow_nan=False).map(str),
)
cell = st.one_of(st.none(), number, text, st.booleans(), st.sampled_from([{"a": 1}, [1, 2], {"nested": {"x": [None]}}]))


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "template.duckdb"
    store = msm.Store(path)
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    for ident in ASSETS:
        msm.add_asset(store, ident, name=ident.title())
    msm.add_portfolio(store, "P1")
    msm_portfolios.save_composition(store, "P1", "2026-01-01T00:00:00Z", {"BTC": 0.5, "ETH": 0.5})
    msm.add_allocation_model(store, "m")
    msm.add_account(store, "acc", account_name="Acc")
    msm.add_allocation(store, "acc-main", account="acc", model="m")
    return path


@pytest.fixture
def store(tmp_path: Path, _template: Path) -> msm.Store:
    path = tmp_path / "fuzz.duckdb"
    path.write_bytes(_template.read_bytes())
    return msm.Store(path)


def _times() -> Any:
    ticks = count()
    return lambda: T0 + timedelta(minutes=next(ticks))


def _no_invalid_rows(store: msm.Store) -> None:
    """What the constraints already guarantee, checked once more after every example."""
    bad = store.query(
        f"""
        SELECT
          (SELECT count(*) FROM target_positions
            WHERE ({W} IS NOT NULL)::INT + ({N} IS NOT NULL)::INT + ({Q} IS NOT NULL)::INT <> 1
              OR NOT isfinite(coalesce({W}, {N}, {Q}))
              OR (target_type = 'asset') = (asset_uid IS NULL) OR (target_type = 'portfolio') = (portfolio_uid IS NULL)
              OR target_uid <> coalesce(asset_uid, portfolio_uid)
              OR (metadata_json IS NOT NULL AND json_type(metadata_json) <> 'OBJECT')) AS bad_targets,
          (SELECT count(*) FROM position_set AS ps
            WHERE NOT EXISTS (SELECT 1 FROM target_positions AS t WHERE t.position_set_uid = ps.uid)) AS empty_sets,
          (SELECT count(*) FROM portfolio_weights WHERE NOT isfinite(weight)) AS bad_weights,
          (SELECT count(*) FROM asset
            WHERE lower(asset_type) = 'portfolio' OR length(trim(unique_identifier)) = 0) AS bad_assets
        """
    ).row(0, named=True)
    assert bad == {"bad_targets": 0, "empty_sets": 0, "bad_weights": 0, "bad_assets": 0}


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None


# -- 1. target-set payloads ---------------------------------------------------------------------------
target_row = st.fixed_dictionaries(
    {},
    optional={
        "asset": st.one_of(st.sampled_from(ASSETS), text),
        "portfolio": st.one_of(st.just("P1"), text),
        "target_type": st.one_of(st.sampled_from(["asset", "portfolio"]), text),
        W: st.one_of(number, text),
        N: st.one_of(number, text),
        Q: st.one_of(number, text),
        "metadata_json": cell,
        "asset_identifier": st.sampled_from(ASSETS),
        "colour": text,
    },
)


@FUZZ
@given(rows=st.lists(target_row, max_size=6))
def test_target_set_payloads(store: msm.Store, rows: list[dict[str, Any]]) -> None:
    at = T0 + timedelta(seconds=abs(hash(json.dumps(rows, default=str))) % 10**7)
    try:
        snap = msm.save_snapshot(store, "acc", at, rows, overwrite=True)
    except msm.MsmError:
        pass
    else:
        stored = {r["unique_identifier"]: r for r in snap.positions.iter_rows(named=True)}
        assert len(stored) == len(rows)
        for row in rows:
            name = str(row.get("asset") or row.get("portfolio")).strip()
            given_values = {c: _as_float(row.get(c)) for c in (W, N, Q)}
            kept = {c: stored[name][c] for c in (W, N, Q)}
            assert kept == given_values, (row, stored[name])
            if isinstance(row.get("metadata_json"), dict):
                assert json.loads(stored[name]["metadata_json"]) == row["metadata_json"]
    _no_invalid_rows(store)


# -- 2. import files, as `msm targets save --file` reads them ----------------------------------------
COLUMNS = ["asset", "portfolio", W, N, Q, "metadata_json", "target_type", "asset_identifier", "colour", "", "asset"]


@st.composite
def import_file(draw: Any, folder: Path) -> Path:
    columns = draw(st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=5))
    n = draw(st.integers(0, 8))
    rows = [
        [draw(st.one_of(st.sampled_from([*ASSETS, "P1"]), number, text, st.none())) for _ in columns] for _ in range(n)
    ]
    kind = draw(st.sampled_from(["csv", "json", "parquet", "xlsx"]))
    path = folder / f"fuzz.{kind}"
    if kind == "csv":
        out = io.StringIO()
        csv.writer(out, delimiter=draw(st.sampled_from([",", ";", "\t", "|"]))).writerows(
            [columns, *[["" if v is None else v for v in r] for r in rows]]
        )
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
        path.write_bytes(out.getvalue().encode(encoding, errors="replace"))
    elif kind == "json":
        records = (
            [dict(zip(columns, r, strict=True)) for r in rows]
            if draw(st.booleans())
            else draw(st.sampled_from([{}, [1], "x", [[1]]]))
        )
        path.write_text(json.dumps(records, default=str))
    else:
        first = {
            c or "unnamed": i for i, c in reversed(list(enumerate(columns)))
        }  # a column name once, its first cells
        names = list(first) or ["asset"]
        frame = pl.DataFrame(
            {
                c: [None if r[first[c]] is None else str(r[first[c]]) for r in rows] if c in first else [None] * n
                for c in names
            },
            schema={c: pl.String for c in names},
        )
        if kind == "parquet":
            frame.write_parquet(path)
        else:
            frame.write_excel(path)
    return path


@FUZZ
@given(data=st.data())
def test_target_import_files(store: msm.Store, tmp_path: Path, data: st.DataObject) -> None:
    path = data.draw(import_file(tmp_path))
    next_time = data.draw(st.integers(0, 10**7))
    try:
        rows = read_table_file(path)
        snap = msm.save_snapshot(store, "acc", T0 + timedelta(seconds=next_time), rows, overwrite=True)
    except msm.MsmError:
        pass
    else:
        assert snap.positions.height == rows.height
        given_sum = (
            sum(v for v in (_as_float(x) for x in rows[W].to_list()) if v is not None) if W in rows.columns else 0.0
        )
        assert math.isclose(snap.weight_sum, given_sum, rel_tol=1e-12, abs_tol=1e-12)
    _no_invalid_rows(store)


# -- 3. composition files ---------------------------------------------------------------------------
@FUZZ
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "asset": st.one_of(st.sampled_from([*ASSETS, "P1"]), text),
                "weight": st.one_of(number, text, st.none()),
                "asset_uid": text,
                "extra": text,
            },
        ),
        max_size=6,
    ),
    kind=st.sampled_from(["csv", "json", "parquet"]),
    percent=st.booleans(),
    minute=st.integers(0, 10**6),
)
def test_composition_files(
    store: msm.Store, tmp_path: Path, rows: list[dict[str, Any]], kind: str, percent: bool, minute: int
) -> None:
    path = tmp_path / f"weights.{kind}"
    if kind == "json":
        path.write_text(json.dumps(rows, default=str))
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r)) or ["asset"]
        frame = pl.DataFrame(
            {c: [None if r.get(c) is None else str(r[c]) for r in rows] for c in columns},
            schema={c: pl.String for c in columns},
        )
        frame.write_csv(path) if kind == "csv" else frame.write_parquet(path)
    at = T0 + timedelta(minutes=minute)
    try:
        stored = msm_portfolios.save_composition_file(store, "P1", at, path, percent=percent, overwrite=True)
    except msm.MsmError:
        pass
    else:
        assert stored.height == len(rows)
        given = sorted(_as_float(r["weight"]) / (100 if percent else 1) for r in rows)  # type: ignore[operator]
        assert stored["weight"].sort().to_list() == pytest.approx(given, rel=1e-12, abs=1e-15)
        assert msm_portfolios.read_composition(store, "P1", as_of=at).height == len(rows)
    _no_invalid_rows(store)


# -- 4. bulk registry files -------------------------------------------------------------------------
ENTITY_COLUMNS = {e: [c.name for c in spec.columns] for e, spec in msm.BULK_ENTITIES.items()}


@FUZZ
@given(
    entity=st.sampled_from(sorted(ENTITY_COLUMNS)),
    data=st.data(),
    upsert=st.booleans(),
    kind=st.sampled_from(["csv", "json", "parquet", "xlsx"]),
)
def test_bulk_registry_files(
    store: msm.Store, tmp_path: Path, entity: str, data: st.DataObject, upsert: bool, kind: str
) -> None:
    allowed = ENTITY_COLUMNS[entity]
    columns = data.draw(
        st.lists(st.sampled_from([*allowed, *allowed, "uid", "colour"]), min_size=1, max_size=6, unique=True)
    )
    refs = {
        "group": st.sampled_from(["g1", "nowhere"]),
        "account": st.sampled_from(["acc", "ghost"]),
        "model": st.sampled_from(["m", "ghost"]),
        "is_paper": st.sampled_from(["true", "no", "maybe", "1"]),
        "account_is_active": st.booleans().map(str),
        "is_active": st.sampled_from(["yes", "", "x"]),
    }
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    c: refs.get(c, st.one_of(text, st.sampled_from(["A1", "A2", "BTC", "acc"]), st.none()))
                    for c in columns
                }
            ),
            min_size=0,
            max_size=6,
        )
    )
    path = tmp_path / f"bulk.{kind}"
    frame = pl.DataFrame(
        {c: [None if r[c] is None else str(r[c]) for r in rows] for c in columns},
        schema={c: pl.String for c in columns},
    )
    if kind == "json":
        path.write_text(json.dumps(rows, default=str))
    elif kind == "csv":
        frame.write_csv(path)
    elif kind == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_excel(path)
    key = allowed[0]
    before = msm.BULK_ENTITIES[entity].entity
    try:
        result = msm.import_reference(store, entity, path, upsert=upsert)
    except msm.MsmError:
        pass
    else:
        total = result.added + result.updated + result.unchanged
        if kind in ("csv", "xlsx"):  # a wholly blank line or sheet row is no row (documented), every other row counts
            assert len([r for r in rows if any(v not in (None, "") for v in r.values())]) <= total <= len(rows)
        else:
            assert total == len(rows)
        stored = store.query(f'SELECT "{before.key}" AS k FROM "{before.table}"')["k"].to_list()
        for row in rows:
            if row[key] not in (None, ""):
                assert pl.Series([row[key]], dtype=pl.String).str.strip_chars().item() in stored
    _no_invalid_rows(store)
