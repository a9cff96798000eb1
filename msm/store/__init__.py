"""DuckDB storage: connection policy, transactions, parameterized queries and migrations."""

from msm.store.connection import DEFAULT_DB, Store, default_db_path, fetch, quote_ident
from msm.store.migrations import MSM_MIGRATIONS, AppliedMigration, MigrationSet, check_schema, migrate, schema_versions

__all__ = [
    "DEFAULT_DB",
    "MSM_MIGRATIONS",
    "AppliedMigration",
    "MigrationSet",
    "Store",
    "check_schema",
    "default_db_path",
    "fetch",
    "migrate",
    "quote_ident",
    "schema_versions",
]
