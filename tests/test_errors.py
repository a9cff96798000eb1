"""Errors as data: every error of the ``msm`` hierarchy carries its fields and a ``to_dict()``.

The app and the command line read attributes (or ``to_dict()``), never the message text; the
message is built from the same fields and keeps its exact wording. Constructors are checked as a
table; the raise sites as real refusals on real database files.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import msm
import msm.errors as errors
import msm_portfolios
from msm.errors import (
    NO_VALUE,
    ConflictError,
    MigrationError,
    MsmError,
    NestingError,
    NotFoundError,
    RowError,
    SchemaError,
    SnapshotExistsError,
    StoreBusyError,
    StoreOpenError,
    StoreReadOnlyError,
    ValidationError,
)
from msm.expansion import MissingCompositionError
from msm_cli.main import main

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UID = "0b8e8a4c-6f43-4c43-9a52-3a3f8e1f0001"


# -- constructors: fields in, message and to_dict out -------------------------------------------------------------
CASES = [
    pytest.param(
        NotFoundError("account", "unique_identifier", "ACC-9", hint="see `msm accounts list`"),
        "account with unique_identifier 'ACC-9' does not exist; see `msm accounts list`",
        {"entity": "account", "key": "unique_identifier", "value": "ACC-9", "hint": "see `msm accounts list`"},
        id="not-found",
    ),
    pytest.param(
        ConflictError("export folder is taken"),
        "export folder is taken",
        {"entity": None, "key": None, "value": None, "references": None},
        id="conflict-message-only",
    ),
    pytest.param(
        ConflictError.duplicate("asset", "unique_identifier", "BTC"),
        "asset 'BTC' already exists (unique_identifier must be unique)",
        {"entity": "asset", "key": "unique_identifier", "value": "BTC", "references": None},
        id="conflict-duplicate",
    ),
    pytest.param(
        ConflictError.still_referenced(
            "asset", "unique_identifier", "BTC", {"target_positions.asset_uid": 1, "portfolio_weights.asset_uid": 2}
        ),
        "asset 'BTC' is still referenced by 1 row in target_positions.asset_uid, 2 rows in portfolio_weights.asset_uid",
        {
            "entity": "asset",
            "key": "unique_identifier",
            "value": "BTC",
            "references": {"target_positions.asset_uid": 1, "portfolio_weights.asset_uid": 2},
        },
        id="conflict-still-referenced",
    ),
    pytest.param(
        ConflictError.still_referenced("portfolio", "unique_identifier", "P", {"t.c": 1}, "delete them first"),
        "portfolio 'P' is still referenced by 1 row in t.c; delete them first",
        {"entity": "portfolio", "references": {"t.c": 1}},
        id="conflict-still-referenced-advice",
    ),
    pytest.param(
        ConflictError.occupied(Path("/x/out"), ["target_positions", "assets"], holds="an export", option="--out"),
        "/x/out already holds an export (target_positions, assets); choose another --out or pass --overwrite to "
        "replace it",
        {"entity": "folder", "key": "path", "value": "/x/out"},
        id="conflict-occupied",
    ),
    pytest.param(
        SnapshotExistsError("alpha", UID, T0, "5e7c0000-0000-4000-8000-000000000001", allocation="alpha-main"),
        "snapshot exists: account 'alpha' (allocation 'alpha-main') at 2026-01-01T00:00:00Z; "
        "pass overwrite (--overwrite) to replace the whole set",
        {
            "account": "alpha",
            "allocation": "alpha-main",
            "account_target_allocation_uid": UID,
            "position_set_time": "2026-01-01T00:00:00Z",
            "position_set_uid": "5e7c0000-0000-4000-8000-000000000001",
        },
        id="snapshot-exists",
    ),
    pytest.param(
        errors.NotADraftError(
            "alpha",
            T0,
            "5e7c0000-0000-4000-8000-000000000001",
            status="published",
            refused="publish",
            allocation="alpha-main",
        ),
        "cannot publish the snapshot of account 'alpha' at 2026-01-01T00:00:00Z: it is published, not a draft "
        "(only a draft can be published or discarded)",
        {
            "account": "alpha",
            "allocation": "alpha-main",
            "position_set_time": "2026-01-01T00:00:00Z",
            "position_set_uid": "5e7c0000-0000-4000-8000-000000000001",
            "status": "published",
            "refused": "publish",
        },
        id="not-a-draft",
    ),
    pytest.param(
        errors.FourEyesError("alpha", T0, "5e7c0000-0000-4000-8000-000000000001", actor="alice", saved_by=["alice"]),
        "four-eyes: 'alice' saved the draft of account 'alpha' at 2026-01-01T00:00:00Z (saved by 'alice'), so "
        "'alice' cannot publish it; another person must publish it (four-eyes is on: MSM_FOUR_EYES=1 or "
        "four_eyes=True)",
        {"account": "alpha", "actor": "alice", "saved_by": ["alice"], "position_set_time": "2026-01-01T00:00:00Z"},
        id="four-eyes",
    ),
    pytest.param(
        SnapshotExistsError.from_rows(
            [{"account": f"a{i:02d}", "allocation": f"a{i:02d}-main", "position_set_time": T0} for i in range(12)]
        ),
        "snapshot exists: account 'a00' (allocation 'a00-main') at 2026-01-01T00:00:00Z; "
        + "; ".join(f"account 'a{i:02d}' (allocation 'a{i:02d}-main') at 2026-01-01T00:00:00Z" for i in range(1, 10))
        + " and 2 more; pass overwrite (--overwrite) to replace the whole set",
        {"account": "a00", "allocation": "a00-main", "account_target_allocation_uid": None},
        id="snapshot-exists-many",
    ),
    pytest.param(
        ValidationError([RowError("target set", 2, "weight", "x", "must be a number", "weight_number")]),
        "1 problem found; nothing was stored:\n  target set row 2: `weight` = 'x': must be a number",
        {
            "summary": None,
            "errors": [
                {
                    "entity": "target set",
                    "row": 2,
                    "field": "weight",
                    "value": "x",
                    "rule": "must be a number",
                    "code": "weight_number",
                }
            ],
        },
        id="validation",
    ),
    pytest.param(
        ValidationError([RowError("targets.csv", None, "asset", NO_VALUE, "column is missing")], summary="refused"),
        "refused:\n  targets.csv: `asset`: column is missing",
        {
            "summary": "refused",
            "errors": [
                {
                    "entity": "targets.csv",
                    "row": None,
                    "field": "asset",
                    "value": None,
                    "rule": "column is missing",
                    "code": None,
                }
            ],
        },
        id="validation-whole-field",
    ),
    pytest.param(
        SchemaError.missing("/x/db.duckdb"),
        "no database at /x/db.duckdb; create it with `msm init` (in Python: msm.migrate(store, "
        "msm_portfolios.MIGRATIONS))",
        {"path": "/x/db.duckdb", "namespace": None, "behind": None},
        id="schema-missing",
    ),
    pytest.param(
        SchemaError.newer("/x/db.duckdb", "msm", 9, 2),
        "database /x/db.duckdb is at msm migration 9, newer than this code knows (latest 2); upgrade msm-workbench "
        "instead of using an older version on it",
        {"path": "/x/db.duckdb", "namespace": "msm", "version": 9, "latest": 2},
        id="schema-newer",
    ),
    pytest.param(
        SchemaError.needs_migrations("/x/db.duckdb", {"msm": (1, 2), "msm_portfolios": (0, 1)}),
        "database /x/db.duckdb needs migrations (msm 1 < 2, msm_portfolios 0 < 1); run `msm init` to apply them "
        "(in Python: msm.migrate(store, msm_portfolios.MIGRATIONS))",
        {"path": "/x/db.duckdb", "behind": {"msm": [1, 2], "msm_portfolios": [0, 1]}},
        id="schema-behind",
    ),
    pytest.param(
        SchemaError.misnumbered("msm", [1, 3]),
        "migrations of namespace 'msm' are not numbered 1..n: [1, 3]",
        {"namespace": "msm", "path": None},
        id="schema-misnumbered",
    ),
    pytest.param(
        MigrationError("msm", 3, "holdings", "table x already exists", path="/x/db.duckdb"),
        "migration msm 0003 holdings failed and changed nothing: table x already exists",
        {
            "path": "/x/db.duckdb",
            "namespace": "msm",
            "version": 3,
            "name": "holdings",
            "detail": "table x already exists",
        },
        id="migration",
    ),
    pytest.param(
        StoreBusyError("/x/db.duckdb", 4242, program="python3", waited=0.5),
        "database file /x/db.duckdb is in use by python3 (PID 4242); waited 0.5 s for it. Close the program that "
        "keeps it open (or let its write finish) and try again",
        {"path": "/x/db.duckdb", "pid": 4242, "program": "python3", "waited": 0.5},
        id="busy",
    ),
    pytest.param(
        StoreBusyError("/x/db.duckdb", waited=2),
        "database file /x/db.duckdb is in use by another process; waited 2 s for it. Close the program that keeps "
        "it open (or let its write finish) and try again",
        {"path": "/x/db.duckdb", "pid": None, "program": None},
        id="busy-unknown-holder",
    ),
    pytest.param(
        StoreOpenError("/x/db.duckdb", "not a DuckDB file"),
        "cannot open database file /x/db.duckdb: not a DuckDB file",
        {"path": "/x/db.duckdb", "detail": "not a DuckDB file"},
        id="store-open",
    ),
    pytest.param(
        StoreReadOnlyError("/x/db.duckdb", "a write (a transaction)"),
        "database file /x/db.duckdb is open read-only, so a write (a transaction) was refused and nothing was "
        "written; to write, open it with msm.open('/x/db.duckdb', read_only=False)",
        {"path": "/x/db.duckdb", "refused": "a write (a transaction)"},
        id="store-read-only",
    ),
    pytest.param(
        MissingCompositionError([("CRYPTO-EW", T0)]),
        "portfolio 'CRYPTO-EW' has no composition at or before 2026-01-01T00:00:00Z; store one with "
        "`msm portfolios weights CRYPTO-EW --at TS --file F` (msm_portfolios.save_composition), or choose a later "
        "weights time",
        {"entity": "composition", "missing": [["CRYPTO-EW", "2026-01-01T00:00:00Z"]]},
        id="missing-composition",
    ),
    pytest.param(
        MissingCompositionError([("EQ", T0)], ["BAL"]),
        "portfolio 'EQ' (nested in BAL) has no composition at or before 2026-01-01T00:00:00Z; store one with "
        "`msm portfolios weights EQ --at TS --file F` (msm_portfolios.save_composition), or choose a later "
        "weights time",
        {"missing": [["EQ", "2026-01-01T00:00:00Z"]], "paths": ["BAL"]},
        id="missing-nested-composition",
    ),
    pytest.param(
        NestingError(["BAL", "EQ", "BAL"], kind="cycle", max_depth=8, row=2, summary="composition of portfolio 'BAL'"),
        "composition of portfolio 'BAL': refused; nothing was stored:\n  composition row 2: `portfolio` = 'EQ': "
        "would make portfolio 'BAL' contain itself: BAL -> EQ -> BAL; a portfolio never contains itself, at any "
        "depth, at any time",
        {"kind": "cycle", "path": ["BAL", "EQ", "BAL"], "max_depth": 8},
        id="nesting-cycle",
    ),
]


@pytest.mark.parametrize(("exc", "message", "fields"), CASES)
def test_every_error_builds_its_message_from_its_fields(exc: MsmError, message: str, fields: dict[str, Any]) -> None:
    assert str(exc) == message
    document = exc.to_dict()
    assert document["error"] == type(exc).__name__
    assert document["message"] == message
    assert {k: document[k] for k in fields} == fields
    assert set(document) == {"error", "message", *type(exc).fields}
    assert json.loads(json.dumps(document, allow_nan=False)) == document  # JSON-ready as it is
    for name in type(exc).fields:  # each field is an attribute too
        assert hasattr(exc, name)


def _hierarchy() -> list[type[MsmError]]:
    found = {c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, MsmError)}
    return sorted(found | {MissingCompositionError}, key=lambda c: c.__name__)


def test_every_error_class_is_covered_by_the_table() -> None:
    covered = {type(case.values[0]) for case in CASES}
    assert set(_hierarchy()) - {MsmError} <= covered


@pytest.mark.parametrize("cls", _hierarchy(), ids=lambda c: c.__name__)
def test_every_error_class_has_a_docstring_and_declares_its_fields(cls: type[MsmError]) -> None:
    assert cls.__doc__
    assert isinstance(cls.fields, tuple)
    if cls is not MsmError:
        assert cls.fields, f"{cls.__name__} carries no fields"


def test_a_row_error_is_data_with_and_without_its_place() -> None:
    error = RowError("composition", 3, "weight", float("nan"), "must be finite", "weight_finite")
    assert str(error) == "composition row 3: `weight` = nan: must be finite"
    assert error.problem == "`weight` = nan: must be finite"
    assert error.as_dict() == error.to_dict()
    assert error.as_dict() == {
        "entity": "composition",
        "row": 3,
        "field": "weight",
        "value": "nan",  # JSON has no NaN: the value as text
        "rule": "must be finite",
        "code": "weight_finite",
    }


def test_plain_makes_any_field_json_ready() -> None:
    from msm.errors import plain

    assert plain({"p": Path("/a/b"), "t": (T0, None), "u": NO_VALUE, "f": float("inf"), "b": True}) == {
        "p": "/a/b",
        "t": ["2026-01-01T00:00:00Z", None],
        "u": None,
        "f": "inf",
        "b": True,
    }


# -- raise sites: real refusals carry their fields ---------------------------------------------------------------
def _rows(weight: float = 0.5) -> list[dict[str, Any]]:
    return [{"asset": "BTC", "weight_notional_exposure": weight}]


def test_snapshot_exists_carries_the_conflicting_snapshot(seeded: Any) -> None:
    first = msm.save_snapshot(seeded.store, "alpha", T0, _rows())
    with pytest.raises(SnapshotExistsError) as info:
        msm.save_snapshot(seeded.store, "alpha", T0, _rows(0.6))
    exc = info.value
    assert (exc.account, exc.allocation, exc.position_set_time) == ("alpha", "alpha-main", T0)
    assert exc.account_target_allocation_uid == first.account_target_allocation_uid
    assert exc.position_set_uid == first.position_set_uid
    assert [e["account"] for e in exc.existing] == ["alpha"]
    assert exc.to_dict()["position_set_time"] == "2026-01-01T00:00:00Z"


def test_a_taken_composition_names_its_portfolio_and_time(seeded: Any) -> None:
    msm.migrate(seeded.store, msm_portfolios.MIGRATIONS)
    msm_portfolios.save_composition(seeded.store, "CRYPTO-EW", T0, {"BTC": 0.5, "ETH": 0.5})
    with pytest.raises(ConflictError) as info:
        msm_portfolios.save_composition(seeded.store, "CRYPTO-EW", T0, {"BTC": 1.0})
    assert info.value.entity == "composition"
    assert info.value.value == {"portfolio": "CRYPTO-EW", "time_index": T0}
    assert info.value.to_dict()["value"] == {"portfolio": "CRYPTO-EW", "time_index": "2026-01-01T00:00:00Z"}


def test_an_occupied_export_folder_names_the_folder(seeded: Any, tmp_path: Path) -> None:
    msm.save_snapshot(seeded.store, "alpha", T0, _rows())
    from msm.services.export import export_snapshots

    out = tmp_path / "export"
    export_snapshots(seeded.store, out)
    with pytest.raises(ConflictError) as info:
        export_snapshots(seeded.store, out)
    assert (info.value.entity, info.value.key, info.value.value) == ("folder", "path", str(out))


def test_schema_errors_name_the_file_and_the_migrations(tmp_path: Path, store_at: Any) -> None:
    with pytest.raises(SchemaError) as missing:
        msm.check_schema(msm.Store(tmp_path / "none.duckdb"))
    assert missing.value.path == str(tmp_path / "none.duckdb")
    behind = store_at({"msm": 1})
    with pytest.raises(SchemaError) as info:
        msm.check_schema(behind)
    assert info.value.path == behind.path
    assert info.value.behind == {"msm": (1, msm.MSM_MIGRATIONS.latest)}


def test_a_file_that_is_not_a_database_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database", encoding="utf-8")
    with pytest.raises(StoreOpenError) as info:
        msm.Store(path).query("SELECT 1")
    assert info.value.path == str(path) and info.value.detail


def test_a_validation_error_keeps_every_row_and_rule_name(seeded: Any) -> None:
    rows = [
        {"asset": "BTC", "weight_notional_exposure": float("inf")},
        {"asset": "NOPE", "weight_notional_exposure": 0.1},
    ]
    with pytest.raises(ValidationError) as info:
        msm.save_snapshot(seeded.store, "alpha", T0, rows)
    found = [(e["row"], e["field"], e["code"]) for e in info.value.to_dict()["errors"]]
    assert found == [(1, "weight_notional_exposure", "weight_notional_exposure_finite"), (2, "asset", "asset_exists")]


# -- the command line prints to_dict() for --format json ------------------------------------------------------------
def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_json_error_is_the_errors_own_data(seeded: Any, tmp_path: Path) -> None:
    msm.migrate(seeded.store, msm_portfolios.MIGRATIONS)  # as `msm init` leaves a database
    msm.save_snapshot(seeded.store, "alpha", T0, _rows())
    file = tmp_path / "targets.csv"
    pl.DataFrame(_rows(0.7)).write_csv(file)
    argv = ["--db", seeded.store.path, "targets", "save", "alpha", "--at", "2026-01-01T00:00:00Z", "--file", str(file)]
    code, out, err = _run(*argv, "--format", "json")
    assert code == 1 and out == ""  # a failed command prints no result
    message, document_line = err.rstrip("\n").rsplit("\n", 1)
    assert message.startswith("error: snapshot exists: account 'alpha' (allocation 'alpha-main')")
    document = json.loads(document_line)
    assert document["error"] == "SnapshotExistsError"
    assert document["message"] == message.removeprefix("error: ")
    assert (document["account"], document["allocation"], document["position_set_time"]) == (
        "alpha",
        "alpha-main",
        "2026-01-01T00:00:00Z",
    )
    code, out, err = _run(*argv)  # without --format json: the message alone
    assert code == 1 and out == "" and err == message + "\n"


def test_cli_json_error_of_a_validation_lists_every_row(seeded: Any, tmp_path: Path) -> None:
    msm.migrate(seeded.store, msm_portfolios.MIGRATIONS)
    file = tmp_path / "bad.csv"
    pl.DataFrame({"asset": ["BTC", "NOPE"], "weight_notional_exposure": ["x", "0.1"]}).write_csv(file)
    code, out, err = _run(
        "--db", seeded.store.path, "targets", "save", "alpha", "--at", "2026-02-01T00:00:00Z", "--file", str(file),
        "--format", "json",
    )  # fmt: skip
    assert code == 1 and out == "" and err.startswith("error: 2 problems found")
    document = json.loads(err.rstrip("\n").splitlines()[-1])
    assert document["error"] == "ValidationError"
    assert document["message"] == err.removeprefix("error: ").rstrip("\n").rsplit("\n", 1)[0]
    assert [(e["row"], e["field"], e["value"], e["code"]) for e in document["errors"]] == [
        (1, "weight_notional_exposure", "x", "weight_notional_exposure_number"),
        (2, "asset", "NOPE", "asset_exists"),
    ]
