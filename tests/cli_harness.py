"""The in-process ``msm`` runner shared by the CLI tests."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import msm
from msm_cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs ``main([--db, db, *argv])`` in-process, capturing stdout and stderr."""

    db: Path

    def __call__(self, *argv: str, db: bool = True) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*(["--db", str(self.db)] if db else []), *argv])
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str, warnings: bool = False) -> Result:
        """Exit 0; nothing on stderr unless ``warnings``."""
        result = self(*argv)
        assert result.code == 0, result.err
        if not warnings:
            assert result.err == ""
        return result

    def fails(self, *argv: str, match: str, code: int = 1) -> Result:
        """Exit 1: exactly one ``error: `` line first on stderr, matching ``match``; nothing on stdout;
        no traceback. With ``code=2``: argparse's usage error."""
        result = self(*argv)
        assert result.code == code, (result.out, result.err)
        assert result.out == ""
        assert "Traceback" not in result.err
        if code == 1:
            assert result.err.startswith("error: "), result.err
            assert len(re.findall(r"^error: ", result.err, re.MULTILINE)) == 1, result.err
        else:
            assert "usage: msm" in result.err
        assert re.search(match, result.err), f"{match!r} not in {result.err!r}"
        return result

    @property
    def store(self) -> msm.Store:
        return msm.Store(self.db)


def contents(store: msm.Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (all columns as text, sorted): equal before and after a refused command."""
    with store.connect():  # one open of the file for every query
        tables = store.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name")[
            "table_name"
        ]
        return {t: store.query(f'SELECT COLUMNS(*)::VARCHAR FROM "{t}" ORDER BY ALL').rows() for t in tables}


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as CSV (empty cell for None), JSON (a list of objects) or Parquet, by extension."""
    if path.suffix == ".csv":
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(
                    [
                        ""
                        if row.get(c) is None
                        else (json.dumps(row[c]) if isinstance(row[c], (dict, list)) else row[c])
                        for c in columns
                    ]
                )
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pl.DataFrame(rows).write_parquet(path)
    return path
