"""msm: the core of the workbench.

Mandate registry (assets, portfolios, account groups, accounts, allocation models, target
allocations), portfolio-aware target positions (ADR 0027), snapshots, candidate search and
look-through expansion, over an embedded DuckDB store. Core ``msm`` never imports
``msm_portfolios`` or streamlit: portfolio compositions reach expansion as an argument.

>>> import msm
>>> store = msm.Store(":memory:")
>>> [str(m) for m in msm.migrate(store)]
['msm 0001 registry_and_asset_targets', 'msm 0002 adr_0027_portfolio_aware_targets']
"""

from msm.errors import (
    ConflictError,
    MigrationError,
    MsmError,
    NotFoundError,
    RowError,
    SchemaError,
    SnapshotExistsError,
    StoreBusyError,
    ValidationError,
)
from msm.services.candidates import CandidatePage, search_candidates
from msm.services.registry import (
    add_account,
    add_account_group,
    add_allocation,
    add_allocation_model,
    add_asset,
    add_portfolio,
    delete_account,
    delete_account_group,
    delete_allocation,
    delete_allocation_model,
    delete_asset,
    delete_portfolio,
    delete_position_set,
    get_account,
    get_account_group,
    get_allocation,
    get_allocation_model,
    get_asset,
    get_portfolio,
    list_account_groups,
    list_accounts,
    list_allocation_models,
    list_allocations,
    list_assets,
    list_portfolios,
    update_account,
    update_account_group,
    update_allocation,
    update_allocation_model,
    update_asset,
    update_portfolio,
)
from msm.services.snapshots import (
    Snapshot,
    SnapshotDiff,
    diff_snapshots,
    read_snapshot,
    read_target_rows,
    save_snapshot,
    save_snapshots,
    snapshot_history,
)
from msm.services.bulk import BULK_ENTITIES, ImportResult, import_reference
from msm.services.overview import latest_snapshots, table_counts
from msm.services.targetsets import TargetSetCheck, accounts_following_model, check_target_set, save_target_set_to_accounts
from msm.store import MSM_MIGRATIONS, MigrationSet, Store, check_schema, default_db_path, migrate

__version__ = "0.1.0"

__all__ = [name for name in dir() if not name.startswith("_")]
