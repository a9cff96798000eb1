"""msm: the core of the workbench.

Mandate registry (assets, portfolios, account groups, accounts, allocation models, target
allocations), portfolio-aware target positions (ADR 0027), snapshots, candidate search and
look-through expansion, over an embedded DuckDB store. Core ``msm`` never imports
``msm_portfolios`` or streamlit: portfolio compositions reach expansion as an argument.

>>> import msm
>>> store = msm.Store(":memory:")
>>> [str(m) for m in msm.migrate(store)]
['msm 0001 registry_and_asset_targets', 'msm 0002 adr_0027_portfolio_aware_targets', 'msm 0003 holdings_prices_fx', \
'msm 0004 audit_trail', 'msm 0005 drafts']

In a notebook, ``msm.open()`` opens the workbench database (``$MSM_DB``, else ``data/msm.duckdb``)
read-only; ``msm.open(path, read_only=False)`` opens it for writing (see :mod:`msm.handle`).
"""

# Only the errors and the store are imported eagerly; every service is imported on first use
# (PEP 562), so a command that reads one snapshot does not pay for pydantic, pyarrow or the
# expansion. ``from msm import add_asset`` and ``msm.add_asset`` work as usual.
from msm import errors as _errors
from msm.errors import *  # noqa: F403 -- every error of the hierarchy; msm.errors.__all__ is the one list
from msm.lazy import lazy_exports as _lazy_exports
from msm.store import (
    MSM_MIGRATIONS,
    MigrationSet,
    Store,
    check_schema,
    default_db_path,
    migrate,
)

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "EXPOSURE_COLUMNS": "msm.contract",
    "audit_events": "msm.audit",
    "TARGET_TYPES": "msm.contract",
    "BULK_ENTITIES": "msm.services.bulk",
    "ImportResult": "msm.services.bulk",
    "import_reference": "msm.services.bulk",
    "CandidatePage": "msm.services.candidates",
    "search_candidates": "msm.services.candidates",
    "latest_snapshots": "msm.services.overview",
    "market_data_summary": "msm.services.overview",
    "table_counts": "msm.services.overview",
    "add_account": "msm.services.registry",
    "add_account_group": "msm.services.registry",
    "add_allocation": "msm.services.registry",
    "add_allocation_model": "msm.services.registry",
    "add_asset": "msm.services.registry",
    "add_portfolio": "msm.services.registry",
    "delete_account": "msm.services.registry",
    "delete_account_group": "msm.services.registry",
    "delete_allocation": "msm.services.registry",
    "delete_allocation_model": "msm.services.registry",
    "delete_asset": "msm.services.registry",
    "delete_portfolio": "msm.services.registry",
    "delete_position_set": "msm.services.registry",
    "get_account": "msm.services.registry",
    "get_account_group": "msm.services.registry",
    "get_allocation": "msm.services.registry",
    "get_allocation_model": "msm.services.registry",
    "get_asset": "msm.services.registry",
    "get_portfolio": "msm.services.registry",
    "list_account_groups": "msm.services.registry",
    "list_accounts": "msm.services.registry",
    "list_allocation_models": "msm.services.registry",
    "list_allocations": "msm.services.registry",
    "list_assets": "msm.services.registry",
    "list_portfolios": "msm.services.registry",
    "update_account": "msm.services.registry",
    "update_account_group": "msm.services.registry",
    "update_allocation": "msm.services.registry",
    "update_allocation_model": "msm.services.registry",
    "update_asset": "msm.services.registry",
    "update_portfolio": "msm.services.registry",
    "RebalanceOptions": "msm.rebalancing",
    "RebalanceProposal": "msm.rebalancing",
    "propose_rebalance": "msm.rebalancing",
    "Rebalance": "msm.services.rebalance",
    "rebalance": "msm.services.rebalance",
    "Snapshot": "msm.services.snapshots",
    "SnapshotDiff": "msm.services.snapshots",
    "diff_snapshots": "msm.services.snapshots",
    "read_snapshot": "msm.services.snapshots",
    "read_target_rows": "msm.services.snapshots",
    "save_snapshot": "msm.services.snapshots",
    "save_snapshots": "msm.services.snapshots",
    "snapshot_history": "msm.services.snapshots",
    "snapshot_versions": "msm.services.snapshots",
    "restore_snapshot": "msm.services.snapshots",
    "compare_snapshots": "msm.services.snapshots",
    "diff_draft": "msm.services.drafts",
    "discard_draft": "msm.services.drafts",
    "four_eyes_on": "msm.services.drafts",
    "list_drafts": "msm.services.drafts",
    "publish_snapshot": "msm.services.drafts",
    "Drift": "msm.drift",
    "MissingCashAssetError": "msm.drift",
    "MissingMarketDataError": "msm.drift",
    "compute_drift": "msm.drift",
    "account_drift": "msm.services.drift",
    "Holdings": "msm.services.holdings",
    "HoldingsImport": "msm.services.holdings",
    "HoldingsSetExistsError": "msm.services.holdings",
    "holdings_history": "msm.services.holdings",
    "import_holdings": "msm.services.holdings",
    "read_holdings": "msm.services.holdings",
    "delete_fx_rates": "msm.services.marketdata",
    "delete_prices": "msm.services.marketdata",
    "import_fx_rates": "msm.services.marketdata",
    "import_prices": "msm.services.marketdata",
    "read_fx_rates": "msm.services.marketdata",
    "read_prices": "msm.services.marketdata",
    "open": "msm.handle",
    "TargetSetCheck": "msm.services.targetsets",
    "accounts_following_model": "msm.services.targetsets",
    "check_target_set": "msm.services.targetsets",
    "save_target_set_to_accounts": "msm.services.targetsets",
}

# ``open`` is left out of ``__all__`` so that ``from msm import *`` never hides the builtin ``open``;
# ``msm.open`` and ``dir(msm)`` (tab completion) still have it.
__all__ = [
    *_errors.__all__,
    "MSM_MIGRATIONS",
    "MigrationSet",
    "Store",
    "__version__",
    "check_schema",
    "default_db_path",
    "migrate",
]
__all__ += sorted(name for name in _LAZY if name != "open")


__getattr__, _dir_all = _lazy_exports("msm", _LAZY, globals())


def __dir__() -> list[str]:
    """The public names, ``open`` included."""
    return sorted([*_dir_all(), "open"])
