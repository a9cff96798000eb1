"""The command line every runnable example shares: the database file to build in."""

from __future__ import annotations

import argparse

import msm

__all__ = ["database_parser"]


def database_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, taking the database file (default: ``$MSM_DB``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "db", nargs="?", default=msm.default_db_path(), help="database file (default: $MSM_DB or data/msm.duckdb)"
    )
    return parser
