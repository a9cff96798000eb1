"""The entity catalog: it matches the schema, and the worked example of docs/architecture.md holds.

The example ("adding a column to `asset`") is read from the page itself, applied to a fresh
database and a copy of the catalog (the workbench's own catalog is never changed), and checked on
every surface the page names: the services, bulk import, the command line and the app's form.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import pytest

import msm
import msm_portfolios
from msm.catalog import CATALOG, Field, Flag
from msm.services.bulk import import_reference
from msm.services.registry import services
from msm_app.entities import ENTITIES, form_values, page_entity
from msm_cli import registry as cli_registry
from msm_cli.commands import CommandTree

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Adding a column to an entity"


def _example() -> tuple[str, str]:
    """The migration SQL and the catalog field of the worked example, as the page gives them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S).group(1).strip()
    field = re.search(r"```python\n(.*?)```", section, re.S).group(1).strip()
    return sql, field


@pytest.fixture
def isin(store: msm.Store):
    """A database migrated and given the example's column, and the catalog with the example's field."""
    msm.migrate(store, msm_portfolios.MIGRATIONS)  # the whole workbench schema, as `msm init` makes it
    sql, field_source = _example()
    store.execute(sql)
    line = [ln for ln in field_source.splitlines() if ln.startswith("Field(")]
    field = eval(line[0], {"Field": Field, "Flag": Flag})  # the page's own line
    return store, CATALOG.with_field("asset", field)


def test_every_registry_table_column_is_in_the_catalog_and_back(store: msm.Store) -> None:
    for entity in CATALOG:
        columns = store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [entity.table],
        )["column_name"].to_list()
        assert set(columns) - {"uid"} == set(entity.columns), entity.table


def test_the_app_forms_cover_every_catalog_entity() -> None:
    assert [e.title for e in ENTITIES] == [e.title for e in CATALOG]
    for form, entity in zip(ENTITIES, CATALOG, strict=True):
        assert [f.name for f in form.fields] == [f.name for f in entity.fields]
        assert form.columns == entity.columns


def test_the_worked_example_adds_the_column_to_the_services(isin) -> None:
    store, catalog = isin
    asset = services("asset", catalog)
    row = asset.add(store, "AAPL", name="Apple", isin="US0378331005")
    assert row["isin"] == "US0378331005"
    assert asset.update(store, "AAPL", isin="US0378331006")["isin"] == "US0378331006"
    assert asset.get(store, "AAPL")["isin"] == "US0378331006"
    assert "isin" in asset.list(store).columns
    assert "isin" not in CATALOG["asset"].columns  # the workbench's own catalog is untouched


def test_the_worked_example_adds_the_column_to_bulk_import(isin) -> None:
    store, catalog = isin
    frame = pl.DataFrame({"unique_identifier": ["AAPL", "MSFT"], "isin": ["US0378331005", "US5949181045"]})
    result = import_reference(store, "assets", frame, catalog=catalog)
    assert (result.added, result.updated) == (2, 0)
    stored = store.query("SELECT unique_identifier, isin FROM asset ORDER BY unique_identifier")
    assert stored.rows() == [("AAPL", "US0378331005"), ("MSFT", "US5949181045")]
    upsert = pl.DataFrame({"unique_identifier": ["AAPL"], "isin": ["US0378331099"]})
    assert import_reference(store, "assets", upsert, upsert=True, catalog=catalog).updated == 1


def test_the_worked_example_adds_the_column_to_the_command_line(isin, capsys: pytest.CaptureFixture[str]) -> None:
    store, catalog = isin
    parser = argparse.ArgumentParser(prog="msm")
    parser.add_argument("--db")
    cli_registry.register(CommandTree(parser.add_subparsers(dest="command", required=True)), catalog)
    args = parser.parse_args(
        ["--db", store.path, "assets", "add", "AAPL", "--isin", "US0378331005", "--format", "json"]
    )
    with contextlib.ExitStack() as held:
        args.held = held
        args.handler(args)
    assert json.loads(capsys.readouterr().out)["isin"] == "US0378331005"
    listing = parser.parse_args(["--db", store.path, "assets", "list", "--format", "json"])
    with contextlib.ExitStack() as held:
        listing.held = held
        listing.handler(listing)
    assert "US0378331005" in capsys.readouterr().out


def test_the_worked_example_adds_the_field_to_the_app_form(isin) -> None:
    store, catalog = isin
    form = page_entity(catalog["asset"], catalog)
    (field,) = [f for f in form.fields if f.name == "isin"]
    assert (field.label, field.kind, field.required, field.editable) == ("ISIN", "text", False, True)
    assert "isin" in form.columns
    # what the page does on "Add asset" and "Save changes": form values -> the tab's own services
    key, kwargs = form_values(form, {"unique_identifier": " AAPL ", "name": "", "isin": "US0378331005"})
    row = form.add(store, key, **kwargs)
    assert (row["unique_identifier"], row["name"], row["isin"]) == ("AAPL", None, "US0378331005")
    assert form.update(store, row["uid"], isin="US0378331006")["isin"] == "US0378331006"
    assert "isin" in form.list(store).columns


def test_the_app_tabs_use_the_workbench_services() -> None:
    assert [e.add for e in ENTITIES][:2] == [msm.add_asset, msm.add_portfolio]
    assert ENTITIES[3].update is msm.update_account and ENTITIES[5].delete is msm.delete_allocation


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("ALTER TABLE account ADD COLUMN extra VARCHAR", None),
        ("ALTER TABLE account ADD COLUMN extra VARCHAR DEFAULT 'USD'", None),
        ("ALTER TABLE account ADD COLUMN extra VARCHAR NOT NULL DEFAULT 'USD'", "depend on it"),
        ("ALTER TABLE asset ADD COLUMN extra VARCHAR CHECK (extra ~ '^[A-Z]{3}$')", "not supported"),
    ],
    ids=["nullable", "nullable with a default", "not null on a referenced table", "check"],
)
def test_what_a_column_migration_can_say(store: msm.Store, sql: str, refused: str | None) -> None:
    """The DuckDB limits docs/architecture.md states for a column's migration (so the page says what holds)."""
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    if refused is None:
        store.execute(sql)
        assert "extra" in store.query("SELECT * FROM account LIMIT 0").columns
    else:
        with pytest.raises(duckdb.Error, match=refused):
            store.execute(sql)
