"""One exception hierarchy for the whole workbench.

Every error a user can cause derives from :class:`MsmError`. Each carries structured attributes
(entity, row, field, value, rule) and builds its own message, so the command line, the app and a
notebook all show the same precise text::

    MsmError
    ├── NotFoundError            an account, allocation, asset, portfolio or snapshot does not exist
    ├── ConflictError            a unique key is taken, a snapshot exists, rows still reference a row
    │   └── SnapshotExistsError
    ├── ValidationError          one or more bad values, each a :class:`RowError`
    ├── SchemaError              the database is missing migrations, or is newer than this code
    │   └── MigrationError       a migration refused to run (nothing was changed)
    ├── StoreBusyError           another process holds the database file for longer than we wait
    ├── StoreOpenError           the file is not a DuckDB database (or cannot be opened at all)
    └── StoreReadOnlyError       a write through a handle opened read-only (``msm.open``'s default)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

__all__ = [
    "ConflictError",
    "MigrationError",
    "MsmError",
    "NotFoundError",
    "RowError",
    "SchemaError",
    "SnapshotExistsError",
    "StoreBusyError",
    "StoreOpenError",
    "StoreReadOnlyError",
    "ValidationError",
]

#: How many row errors a message spells out; the rest are counted, and all stay on ``.errors``.
MAX_LISTED_ERRORS = 50


class MsmError(Exception):
    """Root of every error the workbench raises on purpose."""


class NotFoundError(MsmError):
    """A referenced entity does not exist."""

    def __init__(self, entity: str, key: str, value: Any, hint: str | None = None) -> None:
        self.entity, self.key, self.value, self.hint = entity, key, value, hint
        message = f"{entity} with {key} {_show(value)} does not exist"
        super().__init__(message + (f"; {hint}" if hint else ""))


class ConflictError(MsmError):
    """The request contradicts what is stored (a taken key, a referenced row, ...)."""


class SnapshotExistsError(ConflictError):
    """A position set already exists at that (allocation, time) and overwrite was not asked."""


class SchemaError(MsmError):
    """The database schema is not the one this code expects."""


class MigrationError(SchemaError):
    """A migration refused to run; the database was left as it was."""


class StoreBusyError(MsmError):
    """Another process kept the database file locked for longer than the retry budget."""


class StoreOpenError(MsmError):
    """The database file cannot be opened (not a DuckDB file, a folder, no permission...)."""


class StoreReadOnlyError(MsmError):
    """A write through a store opened read-only; the message says how to open the file for writing."""

    def __init__(self, path: str, refused: str) -> None:
        self.path, self.refused = path, refused
        super().__init__(
            f"database file {path} is open read-only, so {refused} was refused and nothing was written; "
            f"to write, open it with msm.open({path!r}, read_only=False)"
        )


@dataclass(frozen=True)
class RowError:
    """One bad value: which entity, which row (1-based, as the user sees it), field, value, rule."""

    entity: str
    row: int | None
    field: str
    value: Any
    rule: str

    def __str__(self) -> str:
        where = f"{self.entity} row {self.row}" if self.row is not None else self.entity
        shown = "" if self.value is _NO_VALUE else f" = {_show(self.value)}"
        return f"{where}: `{self.field}`{shown}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        value = None if self.value is _NO_VALUE else str(self.value) if isinstance(self.value, PurePath) else self.value
        return {"entity": self.entity, "row": self.row, "field": self.field, "value": value, "rule": self.rule}


class _NoValue:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<no value>"


#: Marks a :class:`RowError` about a field as a whole (a missing column) rather than one value.
_NO_VALUE: Any = _NoValue()
NO_VALUE = _NO_VALUE


class ValidationError(MsmError):
    """One or more bad values. ``errors`` lists every one; the message lists the first 50."""

    def __init__(self, errors: list[RowError], *, summary: str | None = None) -> None:
        if not errors:
            raise ValueError("ValidationError needs at least one RowError")
        self.errors = sorted(errors, key=lambda e: (e.row is not None, e.row or 0, e.field))
        n = len(self.errors)
        head = summary or (f"{n} problem{'s' if n != 1 else ''} found; nothing was stored")
        lines = [str(e) for e in self.errors[:MAX_LISTED_ERRORS]]
        if n > MAX_LISTED_ERRORS:
            lines.append(f"... and {n - MAX_LISTED_ERRORS} more (all are on ValidationError.errors)")
        super().__init__(head + ":\n  " + "\n  ".join(lines))

    @classmethod
    def single(cls, entity: str, field: str, value: Any, rule: str, row: int | None = None) -> ValidationError:
        return cls([RowError(entity, row, field, value, rule)])


def _show(value: Any) -> str:
    if value is _NO_VALUE:
        return ""
    if isinstance(value, str):
        # A long value keeps its start and its end (a file path keeps its name and extension).
        return f"'{value}'" if len(value) <= 80 else f"'{value[:50]}...{value[-27:]}' ({len(value)} characters)"
    if isinstance(value, PurePath):  # a file path is shown whole: it is the user's own, and its end matters
        return f"'{value}'"
    return repr(value)
