"""Account example: a mandate that holds one asset directly and one portfolio as a sleeve.

The whole ADR 0027 relationship diagram, executable. By default it reuses the portfolio example's
output (``<database>.portfolio-example.json``), running that example first when the file or its
rows are missing. Then it creates the allocation model, the account group, two accounts with a
target allocation each, and saves for each account a snapshot with one direct asset target (BTC,
0.6) and one portfolio target (the example portfolio, 0.4, with ``metadata_json`` noting its role).
It reads the snapshot back and expands it into look-through asset exposure. Running it again
leaves the same data (the snapshots are overwritten with identical rows).

    python examples/account_portfolio_workflow.py data/msm.duckdb
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

import msm
import msm_portfolios
from msm.expansion import expand_targets
from msm.store import Store
from msm.timeutil import parse_utc
from msm_examples.arguments import database_parser

try:  # imported as the msm_examples package (msm demo) or run as a script from examples/
    from . import portfolio_equal_weight as portfolio_example
except ImportError:  # pragma: no cover - script mode
    import portfolio_equal_weight as portfolio_example  # type: ignore[no-redef]

MODEL = "Example Balanced Account Model"
GROUP = "Example High Risk Accounts"
ACCOUNTS = (("example-account-alpha", "Example Account Alpha"), ("example-account-beta", "Example Account Beta"))
SNAPSHOT_TIME = "2026-05-25T00:00:00Z"
#: A later rebalance of alpha, so history and diff have something to show.
REBALANCE_TIME = "2026-06-01T00:00:00Z"


def portfolio_output(store: Store) -> dict[str, Any]:
    """The portfolio example's recorded output, running the example when it is missing or stale."""
    path = portfolio_example.output_path(store)
    if path.exists():
        recorded = json.loads(path.read_text())
        try:
            if (
                msm.get_portfolio(store, recorded["portfolio"]["uid"])["unique_identifier"]
                == portfolio_example.PORTFOLIO
            ):
                return recorded
        except (msm.MsmError, KeyError):
            pass
    return portfolio_example.build_portfolio_example(store)


def target_rows(created: dict[str, Any], *, btc: float = 0.6, sleeve: float = 0.4) -> list[dict[str, Any]]:
    """One direct asset target and one portfolio target, by UUID (as the ADR diagram shows)."""
    return [
        {"asset_uid": created["assets"]["BTC"], "weight_notional_exposure": btc},
        {
            "portfolio_uid": created["portfolio"]["uid"],
            "weight_notional_exposure": sleeve,
            "metadata_json": {"portfolio_role": "satellite_sleeve"},
        },
    ]


def _get_or(get: Any, add: Any) -> dict[str, Any]:
    try:
        return get()
    except msm.NotFoundError:
        return add()


def _ensure_account(store: Store, ident: str, name: str, *, group: str, model: str) -> None:
    """Create the account and its allocation (mandate) unless they exist."""
    _get_or(
        lambda: msm.get_account(store, ident),
        lambda: msm.add_account(store, ident, account_name=name, is_paper=True, group=group),
    )
    _get_or(
        lambda: msm.get_allocation(store, f"{ident}-target"),
        lambda: msm.add_allocation(
            store,
            f"{ident}-target",
            account=ident,
            model=model,
            display_name=f"{name} Target",
            source="examples/account_portfolio_workflow.py",
            metadata_json={"account_identifier": ident},
        ),
    )


def _save_once(store: Store, account: str, at: str, rows: list[dict[str, Any]]) -> msm.Snapshot:
    """Save the account's snapshot at ``at`` unless one is stored there (a re-run writes nothing)."""
    if parse_utc(at) not in set(msm.snapshot_history(store, account)["position_set_time"].to_list()):
        msm.save_snapshot(store, account, at, rows, source="examples/account_portfolio_workflow.py")
    return msm.read_snapshot(store, account, at=at)


def build_account_example(store: Store) -> dict[str, Any]:
    """Create the account side, save the snapshots, and return what was created."""
    created = portfolio_output(store)
    model = _get_or(
        lambda: msm.get_allocation_model(store, MODEL),
        lambda: msm.add_allocation_model(
            store, MODEL, allocation_model_description="60% BTC direct, 40% crypto sleeve"
        ),
    )
    group = _get_or(lambda: msm.get_account_group(store, GROUP), lambda: msm.add_account_group(store, GROUP))
    snapshots = {}
    for ident, name in ACCOUNTS:
        _ensure_account(store, ident, name, group=group["uid"], model=model["uid"])
        snapshots[ident] = _save_once(store, ident, SNAPSHOT_TIME, target_rows(created))
    _save_once(store, ACCOUNTS[0][0], REBALANCE_TIME, target_rows(created, btc=0.55, sleeve=0.45))
    return {
        "portfolio_example": created,
        "model": model["uid"],
        "group": group["uid"],
        "snapshots": {k: v.position_set_uid for k, v in snapshots.items()},
    }


def run(store: Store) -> dict[str, Any]:
    """Build everything (idempotent). ``msm demo`` calls this."""
    return build_account_example(store)


def main(argv: list[str] | None = None) -> None:
    """Run the example from the command line on the database given (default: ``$MSM_DB``)."""
    parser = database_parser(__doc__)
    args = parser.parse_args(argv)
    store = Store(args.db)
    run(store)
    account = ACCOUNTS[0][0]
    snap = msm.read_snapshot(store, account, at=SNAPSHOT_TIME)
    pl.Config.set_tbl_cols(12)
    pl.Config.set_fmt_str_lengths(40)
    print(f"snapshot of {account} at {SNAPSHOT_TIME}: weight sum {snap.weight_sum:g}, residual {snap.residual:g}")
    print(
        snap.positions.select(
            "target_type", "unique_identifier", "display_label", "weight_notional_exposure", "metadata_json"
        )
    )
    targets = msm.read_target_rows(store, [snap.position_set_uid])
    for mode in ("position-set", "now"):
        expansion = expand_targets(targets, msm_portfolios.duckdb_weights_source(store), weights_as_of=mode)
        print(f"look-through with weights as of {mode}:")
        print(
            expansion.rows.select(
                "source_target_type", "asset", "portfolio_weight", "weights_time", "weight_notional_exposure"
            )
        )
    netted = expand_targets(targets, msm_portfolios.duckdb_weights_source(store), net=True)
    print("netted per asset:")
    print(netted.rows.select("asset", "weight_notional_exposure", "n_sources"))


if __name__ == "__main__":
    main()
