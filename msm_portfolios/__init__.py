"""msm_portfolios: portfolio compositions (weights history), builders, and the weights source for expansion.

Portfolio identity (the ``portfolio`` table) is core ``msm``; this package owns what a portfolio
holds over time (``portfolio_weights``) and hands it to core expansion as a
:data:`msm.expansion.WeightsSource`. It imports ``msm``; ``msm`` never imports it.
"""

from __future__ import annotations

import os

from msm.lazy import lazy_exports
from msm.store import MSM_MIGRATIONS, MigrationSet, Store, migrate

__all__ = ["MIGRATIONS", "PORTFOLIO_MIGRATIONS", "init_store"]

#: This package's migration series (files ``msm_portfolios/sql/msm_portfolios_NNNN_*.sql``).
PORTFOLIO_MIGRATIONS = MigrationSet("msm_portfolios", "msm_portfolios.sql")
#: Every series a workbench database needs, in the order they apply (core first).
MIGRATIONS = (MSM_MIGRATIONS, PORTFOLIO_MIGRATIONS)


def init_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open (creating if needed) the database at ``path`` and apply every pending migration."""
    store = Store(path)
    migrate(store, MIGRATIONS)
    return store


# Compositions and the look-through are imported on first use (PEP 562): a command that only
# needs MIGRATIONS does not pay for them.
_LAZY = {
    **dict.fromkeys(
        (
            "COMPOSITION_COLUMNS",
            "composition_history",
            "composition_rows",
            "duckdb_weights_source",
            "equal_weights",
            "fixed_weights",
            "read_composition",
            "save_composition",
            "save_composition_file",
            "validate_composition",
        ),
        "msm_portfolios.compositions",
    ),
    **dict.fromkeys(
        ("DRAFT_SET", "LookThrough", "export_snapshots", "look_through", "look_through_snapshot", "net_rows"),
        "msm_portfolios.lookthrough",
    ),
}
__all__ += sorted(_LAZY)


__getattr__, __dir__ = lazy_exports("msm_portfolios", _LAZY, globals())
