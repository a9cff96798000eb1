"""``msm demo``: load the chained example into the database (creating and migrating it first).

The data are the runnable examples (packaged as ``msm_examples``): the portfolio example (assets
BTC/ETH/SOL, the portfolio CRYPTO-MAJORS-EW and three compositions), then the account example
(two accounts whose snapshots target BTC directly and the portfolio as a sleeve), then the holdings
example (a USD cash asset, prices and an EUR/USD rate, and both accounts' holdings, so drift has
something to show), then the nested example (CRYPTO-FOF, a portfolio of two portfolios, targeted by
example-account-gamma). Loading is idempotent: a second run leaves the same rows.
"""

from __future__ import annotations

import argparse
from typing import Any

import msm
import msm_portfolios
from msm.timeutil import format_utc
from msm_cli.commands import Arg, Command
from msm_cli.context import add_format, migration_sets
from msm_cli.output import write_json, write_lines

__all__ = ["COMMANDS"]


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"takes a whole number >= 0, got {text!r}")
    return int(text)


def demo(args: argparse.Namespace) -> int | None:
    """``msm demo``: migrate, load the chained example (and a sample book with ``--accounts``), report it."""
    from msm_examples import account_portfolio_workflow as account_example  # the examples load what they need
    from msm_examples import demo as demo_data
    from msm_examples import portfolio_equal_weight as portfolio_example
    from msm_examples import sample_book

    store = msm.Store(args.db)
    existed = store.exists
    applied = msm.migrate(store, migration_sets())
    loaded = demo_data.load(store)
    holdings, nested = loaded["holdings"], loaded["nested"]
    sample = sample_book.build_sample_book(store, accounts=args.accounts) if args.accounts else None
    portfolio = msm.get_portfolio(store, portfolio_example.PORTFOLIO)
    compositions = msm_portfolios.composition_history(store, portfolio["uid"])["weights_time"].sort().to_list()
    accounts = []
    for ident, _ in account_example.ACCOUNTS:
        account = msm.get_account(store, ident)
        times = msm.snapshot_history(store, account["uid"])["position_set_time"].sort().to_list()
        accounts.append(
            {
                "uid": account["uid"],
                "unique_identifier": ident,
                "account_name": account["account_name"],
                "snapshots": times,
            }
        )
    assets = [ident for ident, _, _ in portfolio_example.ASSETS]
    db = "" if str(args.db) == msm.default_db_path() else f" --db {args.db}"
    first = accounts[0]["unique_identifier"]
    hints = [
        f"msm{db} targets show {first}",
        f"msm{db} targets expand {first} --net",
        f"msm{db} drift --all --as-of {holdings['holdings_time']}",
    ]

    if args.format == "json":
        document: dict[str, Any] = {
            "database": store.path,
            "created": not existed,
            "applied": [{"namespace": m.namespace, "version": m.version, "name": m.name} for m in applied],
            "assets": assets,
            "portfolio": {
                "uid": portfolio["uid"],
                "unique_identifier": portfolio["unique_identifier"],
                "compositions": compositions,
            },
            "accounts": accounts,
            "holdings": {k: holdings[k] for k in ("cash", "holdings_time", "accounts")},
            "nested": nested,
            "next": hints,
        }
        if sample:
            document["sample_book"] = sample
        write_json(document)
        return None
    hints.insert(2, f"msm{db} targets expand {nested['account']}   # a two-level portfolio: each row's path")
    _report(store.path, existed, applied, assets, portfolio, compositions, accounts, holdings, sample, hints, nested)
    return None


def _report(
    path: str,
    existed: bool,
    applied: list[Any],
    assets: list[str],
    portfolio: dict[str, Any],
    compositions: list[Any],
    accounts: list[dict[str, Any]],
    holdings: dict[str, Any],
    sample: dict[str, Any] | None,
    hints: list[str],
    nested: dict[str, Any],
) -> None:
    """The text output of ``msm demo``: what was loaded, and what to try next."""
    if not existed:
        write_lines(f"created database {path}")
    write_lines(*(f"applied migration {m}" for m in applied))
    write_lines(
        f"demo data loaded in {path} (running `msm demo` again changes nothing)",
        f"  assets      {', '.join(assets)}",
        f"  portfolio   {portfolio['unique_identifier']} ({portfolio['portfolio_name']}): compositions from "
        + ", ".join(format_utc(t) or "" for t in compositions),
        *(
            f"  account     {a['unique_identifier']} ({a['account_name']}): "
            f"snapshot{'s' if len(a['snapshots']) != 1 else ''} at "
            + ", ".join(format_utc(t) or "" for t in a["snapshots"])
            for a in accounts
        ),
        f"  holdings    {', '.join(holdings['accounts'])} at {holdings['holdings_time']}, with prices and an "
        f"EUR/USD rate then; cash asset {holdings['cash']}",
        f"  nested      {' and '.join(nested['portfolios'])} (a portfolio of portfolios); account "
        f"{nested['account']}: snapshot at {nested['snapshot_time']}",
        *(
            [
                f"  sample book {sample['accounts']} accounts sample-0001..., {sample['assets']} assets, "
                f"{sample['portfolios']} portfolios ({sample['added_accounts']} accounts added now)"
            ]
            if sample
            else []
        ),
        "",
        "try:",
        *(f"  {hint}" for hint in hints),
    )


COMMANDS = (
    Command(
        "demo",
        demo,
        writes=True,
        help="load the example portfolio and accounts (creates the database when missing; idempotent)",
        description="Create or migrate the database (like `msm init`), then load the chained example: assets BTC, ETH "
        "and SOL, the portfolio CRYPTO-MAJORS-EW with three compositions, and two accounts whose snapshots hold BTC "
        "directly and the portfolio as a sleeve, and their holdings with prices, an EUR/USD rate and a USD cash asset "
        "(so `msm drift` has something to show), and the two-level portfolio CRYPTO-FOF (60% CRYPTO-MAJORS-EW + 40% "
        "CRYPTO-LARGE-CAP) targeted by example-account-gamma. Running it again changes nothing.",
        options=(
            Arg(
                "--accounts",
                type=_count,
                default=0,
                metavar="N",
                help="also load a larger sample book with N synthetic accounts (600 assets, 5 portfolios, one 20-row "
                "snapshot per account), to try the workbench at realistic size; idempotent",
            ),
            add_format,
        ),
    ),
)
