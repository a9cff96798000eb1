"""Holdings example: what the example accounts hold, priced, and how far that is from their targets.

Runs after the account example (it runs it first when its accounts are missing). It adds a USD cash
asset (``asset_type`` cash, ``currency`` USD: worth 1 USD, no price needed), prices for BTC and ETH
in USD and for SOL in EUR with an EUR/USD rate, all on 2 June 2026, and the holdings of both
example accounts at that time, then computes their drift. Running it again leaves the same data
(holdings are overwritten with identical rows, prices and rates upserted unchanged).

    python examples/holdings_and_drift.py data/msm.duckdb
"""

from __future__ import annotations

import argparse
from typing import Any

import msm
import msm_portfolios
from msm.store import Store
from msm.timeutil import parse_utc

try:  # imported as the msm_examples package (msm demo) or run as a script from examples/
    from . import account_portfolio_workflow as account_example
except ImportError:  # pragma: no cover - script mode
    import account_portfolio_workflow as account_example  # type: ignore[no-redef]

CASH = "USD"
#: Holdings, prices and the rate are all stamped with this time.
MARKET_TIME = "2026-06-02T00:00:00Z"
PRICES = (("BTC", 60_000.0, "USD"), ("ETH", 3_000.0, "USD"), ("SOL", 140.0, "EUR"))
FX = (("EUR", "USD", 1.08),)  # 1 EUR = 1.08 USD
HOLDINGS = {
    "example-account-alpha": (("BTC", 5.0), ("ETH", 40.0), ("SOL", 500.0), ("USD", 20_000.0)),
    "example-account-beta": (("BTC", 4.0), ("ETH", 20.0), ("USD", 100_000.0)),
}
SOURCE = "examples/holdings_and_drift.py"


def build_holdings_example(store: Store) -> dict[str, Any]:
    """Add the cash asset, prices, the rate and the holdings; return the drift of the example accounts."""
    try:
        msm.get_account(store, account_example.ACCOUNTS[0][0])
    except msm.NotFoundError:
        account_example.build_account_example(store)
    try:
        msm.get_asset(store, CASH)
    except msm.NotFoundError:
        msm.add_asset(store, CASH, name="US dollar", asset_type="cash", currency=CASH)
    loaded = {account: set(msm.holdings_history(store, account)["holdings_time"]) for account in HOLDINGS}
    if not all(parse_utc(MARKET_TIME) in times for times in loaded.values()):  # loaded once: a re-run writes nothing
        msm.import_prices(
            store,
            [{"asset": a, "time": MARKET_TIME, "price": p, "currency": c} for a, p, c in PRICES],
            upsert=True,
            source=SOURCE,
        )
        msm.import_fx_rates(
            store,
            [{"base": b, "quote": q, "time": MARKET_TIME, "rate": r} for b, q, r in FX],
            upsert=True,
            source=SOURCE,
        )
        rows = [
            {"account": account, "asset": asset, "quantity": quantity}
            for account, held in HOLDINGS.items()
            for asset, quantity in held
        ]
        msm.import_holdings(store, rows, at=MARKET_TIME, overwrite=True, source=SOURCE)
    drift = msm.account_drift(
        store,
        list(HOLDINGS),
        weights=msm_portfolios.duckdb_weights_source(store),
        as_of=MARKET_TIME,
    )
    return {"cash": CASH, "holdings_time": MARKET_TIME, "accounts": list(HOLDINGS), "drift": drift.to_dict()}


def run(store: Store) -> dict[str, Any]:
    """The example on ``store`` (migrated first)."""
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    return build_holdings_example(store)


def main() -> None:
    """``python examples/holdings_and_drift.py DB``: print each account's NAV and its largest drift."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?", default=msm.default_db_path(), help="database file")
    result = run(Store(parser.parse_args().db))
    for account in result["drift"]["accounts"]:
        print(
            f"{account['account']}: NAV {account['nav']:,.2f} {account['base_currency']}, "
            f"max |drift| {account['max_abs_drift']:.2%} of NAV, {account['n_breaches']} in breach"
        )


if __name__ == "__main__":
    main()
