"""A larger sample book, to try the workbench at realistic size (``msm demo --accounts 1000``).

On top of the chained example it adds, deterministically (seeded): ``assets`` synthetic assets
(``SAMPLE-0001`` ...), a few sample portfolios with two compositions each, and ``accounts``
accounts (``sample-0001`` ...) following the allocation model ``Sample Book Model``, each with one
snapshot of ``rows_per_set`` targets (direct assets and one portfolio sleeve) saved through the bulk
write path in one transaction. Running it again with the same numbers changes nothing.

    python examples/sample_book.py data/msm.duckdb --accounts 1000
"""

from __future__ import annotations

import random
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.store import Store
from msm_examples.arguments import database_parser

MODEL = "Sample Book Model"
SNAPSHOT_TIME = "2026-06-15T00:00:00Z"
COMPOSITION_TIMES = ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z")
SOURCE = "examples/sample_book.py"


def _missing(existing: pl.Series, wanted: list[str]) -> list[str]:
    have = set(existing.to_list())
    return [w for w in wanted if w not in have]


def build_sample_book(
    store: Store,
    *,
    accounts: int = 1000,
    assets: int = 600,
    portfolios: int = 5,
    rows_per_set: int = 20,
    seed: int = 27,
) -> dict[str, Any]:
    """Add the sample book (idempotent); return what it holds."""
    rng = random.Random(seed)
    asset_ids = [f"SAMPLE-{i:04d}" for i in range(1, assets + 1)]
    portfolio_ids = [f"SAMPLE-P{i:02d}" for i in range(1, portfolios + 1)]
    account_ids = [f"sample-{i:04d}" for i in range(1, accounts + 1)]
    with store.connect():  # one open of the file for the whole load
        for ident in _missing(msm.list_assets(store)["unique_identifier"], asset_ids):
            msm.add_asset(store, ident, name=f"Sample asset {ident[-4:]}", ticker=f"S{ident[-4:]}", asset_type="equity")
        for ident in _missing(msm.list_portfolios(store)["unique_identifier"], portfolio_ids):
            msm.add_portfolio(store, ident, portfolio_name=f"Sample portfolio {ident[-2:]}")
            for at in COMPOSITION_TIMES:
                constituents = rng.sample(asset_ids, k=min(25, len(asset_ids)))
                msm_portfolios.save_composition(store, ident, at, msm_portfolios.equal_weights(constituents))
        if MODEL not in msm.list_allocation_models(store)["allocation_model_name"].to_list():
            msm.add_allocation_model(
                store, MODEL, allocation_model_description="synthetic accounts for trying the workbench at size"
            )
        new_accounts = _missing(msm.list_accounts(store)["unique_identifier"], account_ids)
        for ident in new_accounts:
            msm.add_account(store, ident, account_name=f"Sample account {ident[-4:]}")
            msm.add_allocation(store, f"{ident}-target", account=ident, model=MODEL, source=SOURCE)
        if new_accounts:
            frames = []
            for ident in new_accounts:
                direct = rng.sample(asset_ids, k=max(1, min(rows_per_set - 1, len(asset_ids))))
                weight = 0.6 / len(direct)
                frames.append(
                    pl.DataFrame(
                        {
                            "account": [ident] * (len(direct) + 1),
                            "asset": [*direct, None],
                            "portfolio": [None] * len(direct) + [rng.choice(portfolio_ids)],
                            "weight_notional_exposure": [weight] * len(direct) + [0.4],
                        },
                        schema={
                            "account": pl.String,
                            "asset": pl.String,
                            "portfolio": pl.String,
                            "weight_notional_exposure": pl.Float64,
                        },
                    )
                )
            bulk = pl.concat(frames).with_columns(pl.lit(SNAPSHOT_TIME).alias("position_set_time"))
            msm.save_snapshots(store, bulk, source=SOURCE)
    return {
        "accounts": len(account_ids),
        "added_accounts": len(new_accounts),
        "assets": len(asset_ids),
        "portfolios": len(portfolio_ids),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the example from the command line on the database given (default: ``$MSM_DB``)."""
    parser = database_parser(__doc__)
    parser.add_argument("--accounts", type=int, default=1000, help="how many sample accounts (default 1000)")
    args = parser.parse_args(argv)
    store = msm_portfolios.init_store(args.db)
    print(build_sample_book(store, accounts=args.accounts))


if __name__ == "__main__":
    main()
