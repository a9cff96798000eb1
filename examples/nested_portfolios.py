"""Nested portfolios example: a crypto fund of funds, and an account that targets it.

Runs after the account example (it runs it first when its portfolio is missing). It adds the
portfolio CRYPTO-LARGE-CAP (60% BTC, 40% ETH) and the two-level CRYPTO-FOF (60% CRYPTO-MAJORS-EW
+ 40% CRYPTO-LARGE-CAP: a portfolio of portfolios), then the account example-account-gamma whose
snapshot holds 80% CRYPTO-FOF and 20% SOL directly. Its look-through goes two levels down, each
row with its path (``CRYPTO-FOF > CRYPTO-MAJORS-EW``) and depth. Running it again leaves the same
data.

    python examples/nested_portfolios.py data/msm.duckdb
"""

from __future__ import annotations

from typing import Any

import msm
import msm_portfolios
from msm.store import Store
from msm.timeutil import parse_utc
from msm_examples.arguments import database_parser

try:  # imported as the msm_examples package (msm demo) or run as a script from examples/
    from . import account_portfolio_workflow as account_example
    from . import portfolio_equal_weight as portfolio_example
except ImportError:  # pragma: no cover - script mode
    import account_portfolio_workflow as account_example  # type: ignore[no-redef]
    import portfolio_equal_weight as portfolio_example  # type: ignore[no-redef]

LARGE_CAP = "CRYPTO-LARGE-CAP"
FUND_OF_FUNDS = "CRYPTO-FOF"
ACCOUNT = ("example-account-gamma", "Example Account Gamma")
#: Both compositions take effect here (after the majors portfolio's first composition).
COMPOSITION_TIME = "2026-03-01T00:00:00Z"
SNAPSHOT_TIME = "2026-06-01T00:00:00Z"
SOURCE = "examples/nested_portfolios.py"


def _portfolio(store: Store, ident: str, name: str) -> dict[str, Any]:
    try:
        return msm.get_portfolio(store, ident)
    except msm.NotFoundError:
        return msm.add_portfolio(store, ident, portfolio_name=name)


def build_nested_example(store: Store) -> dict[str, Any]:
    """Add the large-cap and fund-of-funds portfolios and the account targeting the latter; return their names."""
    try:
        msm.get_portfolio(store, portfolio_example.PORTFOLIO)
    except msm.NotFoundError:
        account_example.build_account_example(store)
    _portfolio(store, LARGE_CAP, "Crypto Large Cap 60/40")
    _portfolio(store, FUND_OF_FUNDS, "Crypto Fund of Funds")
    compositions = {
        LARGE_CAP: [{"asset": "BTC", "weight": 0.6}, {"asset": "ETH", "weight": 0.4}],
        FUND_OF_FUNDS: [
            {"portfolio": portfolio_example.PORTFOLIO, "weight": 0.6},
            {"portfolio": LARGE_CAP, "weight": 0.4},
        ],
    }
    for ident, rows in compositions.items():  # only what is missing: a re-run writes nothing
        if parse_utc(COMPOSITION_TIME) not in set(msm_portfolios.composition_history(store, ident)["weights_time"]):
            msm_portfolios.save_composition(store, ident, COMPOSITION_TIME, rows)
    ident, name = ACCOUNT
    try:
        msm.get_account(store, ident)
    except msm.NotFoundError:
        msm.add_account(store, ident, account_name=name, group=account_example.GROUP)
        msm.add_allocation(store, f"{ident}-target", account=ident, model=account_example.MODEL, source=SOURCE)
    rows = [
        {"portfolio": FUND_OF_FUNDS, "weight_notional_exposure": 0.8},
        {"asset": "SOL", "weight_notional_exposure": 0.2},
    ]
    if parse_utc(SNAPSHOT_TIME) not in set(msm.snapshot_history(store, ident)["position_set_time"]):
        msm.save_snapshot(store, ident, SNAPSHOT_TIME, rows, source=SOURCE)
    return {"portfolios": [LARGE_CAP, FUND_OF_FUNDS], "account": ident, "snapshot_time": SNAPSHOT_TIME}


def main(argv: list[str] | None = None) -> None:
    """Build the example in the database given (or the default one) and print its look-through."""
    parser = database_parser(__doc__)
    store = msm_portfolios.init_store(parser.parse_args(argv).db)
    build_nested_example(store)
    view = msm_portfolios.look_through(store, msm.read_snapshot(store, ACCOUNT[0]))
    print(view.rows.select("asset", "path", "depth", "portfolio_weight", "weight_notional_exposure"))
    print(view.net.select("asset", "weight_notional_exposure", "n_sources"))


if __name__ == "__main__":
    main()
