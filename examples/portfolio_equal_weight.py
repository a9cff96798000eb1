"""Portfolio example: three crypto assets and an equal-weight portfolio with a composition history.

The first half of the ADR 0027 relationship diagram, executable: it creates the assets BTC, ETH
and SOL, the portfolio ``CRYPTO-MAJORS-EW`` (identity in core ``msm``), and three compositions of
it (in ``msm_portfolios``): BTC/ETH at 50/50 from 2026-03-01, BTC/ETH/SOL at a third each from
2026-04-01, and BTC/ETH at 50/50 again from 2026-06-15 (SOL dropped). It records what it created in a JSON file
beside the database, which the account example reuses. Running it again changes nothing.

    python examples/portfolio_equal_weight.py data/msm.duckdb
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msm
import msm_portfolios
from msm.store import Store
from msm_examples.arguments import database_parser

PORTFOLIO = "CRYPTO-MAJORS-EW"
PORTFOLIO_NAME = "Crypto Majors Equal Weight"
ASSETS = (
    ("BTC", "Bitcoin", "BTC"),
    ("ETH", "Ethereum", "ETH"),
    ("SOL", "Solana", "SOL"),
)
#: (effective time, constituents): each composition is equal-weight over its constituents.
COMPOSITIONS = (
    ("2026-03-01T00:00:00Z", ("BTC", "ETH")),
    ("2026-04-01T00:00:00Z", ("BTC", "ETH", "SOL")),
    ("2026-06-15T00:00:00Z", ("BTC", "ETH")),
)


def output_path(store: Store) -> Path:
    """Where the example records what it created: ``<database>.portfolio-example.json``."""
    return Path(store.path).with_name(Path(store.path).name + ".portfolio-example.json")


def _get_or_add(get: Any, add: Any, key: str, **fields: Any) -> dict[str, Any]:
    try:
        return get(key)
    except msm.NotFoundError:
        return add(key, **fields)


def build_portfolio_example(store: Store) -> dict[str, Any]:
    """Create (or find) the assets, the portfolio and its compositions; return and record them."""
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    assets = {
        ident: _get_or_add(
            lambda k: msm.get_asset(store, k),
            lambda k, **f: msm.add_asset(store, k, **f),
            ident,
            name=name,
            ticker=ticker,
            asset_type="crypto",
        )
        for ident, name, ticker in ASSETS
    }
    portfolio = _get_or_add(
        lambda k: msm.get_portfolio(store, k),
        lambda k, **f: msm.add_portfolio(store, k, **f),
        PORTFOLIO,
        portfolio_name=PORTFOLIO_NAME,
        metadata_json={"construction": "equal_weight"},
    )
    stored = set(msm_portfolios.composition_history(store, PORTFOLIO)["weights_time"].to_list())
    for at, constituents in COMPOSITIONS:
        if msm.timeutil.parse_utc(at) not in stored:
            msm_portfolios.save_composition(store, PORTFOLIO, at, msm_portfolios.equal_weights(list(constituents)))
    created = {
        "database": str(store.path),
        "assets": {ident: row["uid"] for ident, row in assets.items()},
        "portfolio": {"unique_identifier": PORTFOLIO, "uid": portfolio["uid"]},
        "compositions": [at for at, _ in COMPOSITIONS],
    }
    output_path(store).write_text(json.dumps(created, indent=2) + "\n")
    return created


def main(argv: list[str] | None = None) -> None:
    """Run the example from the command line on the database given (default: ``$MSM_DB``)."""
    parser = database_parser(__doc__)
    args = parser.parse_args(argv)
    store = Store(args.db)
    created = build_portfolio_example(store)
    print(f"portfolio {PORTFOLIO} ({created['portfolio']['uid']}) with {len(COMPOSITIONS)} compositions")
    print(msm_portfolios.composition_history(store, PORTFOLIO))
    print(f"recorded in {output_path(store)}")


if __name__ == "__main__":
    main()
