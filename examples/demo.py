"""The demo data, as ``msm demo`` and the Overview page's "Load demo data" load them.

The chained example: the portfolio example (assets BTC/ETH/SOL, the portfolio CRYPTO-MAJORS-EW and
three compositions), the account example (two accounts whose snapshots target BTC directly and the
portfolio as a sleeve), the holdings example (a USD cash asset, prices, an EUR/USD rate and both
accounts' holdings) and the nested example (a fund of funds and an account targeting it). Each
step writes only what is missing, so loading twice leaves the database, its audit trail included,
as it was.
"""

from __future__ import annotations

from typing import Any

from msm.store import Store
from msm_examples import account_portfolio_workflow as account_example
from msm_examples import holdings_and_drift as holdings_example
from msm_examples import nested_portfolios as nested_example


def load(store: Store) -> dict[str, Any]:
    """Load every example into ``store`` (migrated first); return what the holdings and nested steps made."""
    account_example.run(store)
    holdings = holdings_example.build_holdings_example(store)
    nested = nested_example.build_nested_example(store)
    return {"holdings": holdings, "nested": nested}
