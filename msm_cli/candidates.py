"""``msm candidates``: assets and portfolios that can be put in a target set."""

from __future__ import annotations

import argparse

import msm
from msm_cli.commands import Arg, Command
from msm_cli.context import add_format, open_store
from msm_cli.output import write_document, write_lines, write_table

__all__ = ["COMMANDS"]


def candidates(args: argparse.Namespace) -> None:
    """``msm candidates``: one page of matching assets and portfolios."""
    page = msm.search_candidates(
        open_store(args), args.text, target_type=args.target_type, limit=args.limit, offset=args.offset
    )
    if write_document(args.format, page.to_dict()):
        return
    rows = page.results.to_dicts()
    write_table(
        rows,
        [
            ("target_type", "type"),
            ("unique_identifier", "identifier"),
            ("display_label", "label"),
            ("secondary_label", "secondary"),
            ("target_uid", "uid"),
        ],
        empty="(no matches)",
    )
    if rows:
        write_lines(f"showing {page.offset + 1}-{page.offset + len(rows)} of {page.count}")
    else:
        write_lines(f"{page.count} match{'es' if page.count != 1 else ''} in total")


COMMANDS = (
    Command(
        "candidates",
        candidates,
        help="search assignable targets (assets and portfolios)",
        description="Case-insensitive substring search over identifiers, names and tickers; "
        "`count` is the number of matches before paging.",
        options=(
            Arg("text", nargs="?", default="", metavar="TEXT", help="text to look for (default: everything)"),
            Arg(
                "--type",
                dest="target_type",
                choices=("all", "asset", "portfolio"),
                default="all",
                help="target type (default: all)",
            ),
            Arg("--limit", type=int, default=25, metavar="N", help="page size, 1..1000 (default: 25)"),
            Arg("--offset", type=int, default=0, metavar="N", help="matches to skip (default: 0)"),
            add_format,
        ),
    ),
)
