"""One exception hierarchy for the whole workbench; every error is data as well as text.

Every error a user can cause derives from :class:`MsmError`. Each carries its facts as attributes
(entity, key, value, rows, the conflicting snapshot, the busy file's holder, ...) and builds its
own message from them, so the command line, the app and a notebook show the same precise text,
and code that reacts to an error reads attributes (or :meth:`MsmError.to_dict`), never the text::

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

>>> exc = NotFoundError("account", "unique_identifier", "ACC-9", hint="add it first (msm accounts add ID)")
>>> str(exc)
"account with unique_identifier 'ACC-9' does not exist; add it first (msm accounts add ID)"
>>> exc.to_dict()["error"], exc.to_dict()["value"]
('NotFoundError', 'ACC-9')
>>> ConflictError.still_referenced("asset", "unique_identifier", "BTC", {"portfolio_weights.asset_uid": 2}).references
{'portfolio_weights.asset_uid': 2}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, ClassVar

__all__ = [
    "NO_VALUE",
    "ConflictError",
    "FourEyesError",
    "MigrationError",
    "MsmError",
    "NestingError",
    "NotADraftError",
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
#: How many conflicting snapshots a :class:`SnapshotExistsError` message spells out.
MAX_LISTED_SNAPSHOTS = 10


def plain(value: Any) -> Any:
    """A value as JSON-ready data for :meth:`MsmError.to_dict`.

    Text, integers, finite floats, booleans and ``None`` stay; times become ISO-8601 UTC text with
    a ``Z``; paths, UUIDs and anything else become text; mappings and sequences are converted item
    by item. A non-finite float becomes its text (JSON has no NaN).

    >>> from datetime import datetime, timezone
    >>> plain({"at": datetime(2026, 1, 1, tzinfo=timezone.utc), "n": [1, float("nan")]})
    {'at': '2026-01-01T00:00:00Z', 'n': [1, 'nan']}
    """
    if value is NO_VALUE or value is None:
        return None
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        from msm.timeutil import format_utc  # imported here: timeutil imports this module

        return format_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


class MsmError(Exception):
    """Root of every error the workbench raises on purpose.

    A subclass lists its attributes in ``fields``; :meth:`to_dict` returns them with the error's
    class name and message, which is what ``msm ... --format json`` prints on an error.
    """

    #: The attributes that describe this error (in :meth:`to_dict`, in this order).
    fields: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"error": class name, "message": text, **fields}`` as JSON-ready data (see :func:`plain`)."""
        return {
            "error": type(self).__name__,
            "message": str(self),
            **{name: plain(getattr(self, name, None)) for name in self.fields},
        }


class NotFoundError(MsmError):
    """A referenced entity does not exist."""

    fields = ("entity", "key", "value", "hint")

    def __init__(self, entity: str, key: str, value: Any, hint: str | None = None) -> None:
        self.entity, self.key, self.value, self.hint = entity, key, value, hint
        message = f"{entity} with {key} {_show(value)} does not exist"
        super().__init__(message + (f"; {hint}" if hint else ""))


class ConflictError(MsmError):
    """The request contradicts what is stored (a taken key, a referenced row, an occupied folder...).

    ``entity``/``key``/``value`` name the row in conflict; ``references`` maps each referencing
    ``table.column`` to how many rows still reference it. The constructors below build the
    message from those fields; a plain ``ConflictError(message)`` works too.
    """

    fields = ("entity", "key", "value", "references")

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        key: str | None = None,
        value: Any = None,
        references: Mapping[str, int] | None = None,
    ) -> None:
        self.entity, self.key, self.value = entity, key, value
        self.references = dict(references) if references is not None else None
        super().__init__(message)

    @classmethod
    def duplicate(cls, entity: str, key: str, value: Any) -> ConflictError:
        """``{entity} {value!r} already exists ({key} must be unique)``."""
        return cls(f"{entity} {value!r} already exists ({key} must be unique)", entity=entity, key=key, value=value)

    @classmethod
    def still_referenced(
        cls, entity: str, key: str, value: Any, references: Mapping[str, int], advice: str | None = None
    ) -> ConflictError:
        """A row that cannot be deleted: ``references`` (``table.column`` -> row count) still point at it."""
        listed = ", ".join(f"{n} row{'s' if n != 1 else ''} in {where}" for where, n in references.items())
        message = f"{entity} {value!r} is still referenced by {listed}" + (f"; {advice}" if advice else "")
        return cls(message, entity=entity, key=key, value=value, references=references)

    @classmethod
    def occupied(cls, path: str | PurePath, taken: Sequence[str], *, holds: str, option: str) -> ConflictError:
        """An output folder that already holds ``taken`` datasets (``holds``: 'an export', 'a look-through')."""
        message = (
            f"{path} already holds {holds} ({', '.join(taken)}); "
            f"choose another {option} or pass --overwrite to replace it"
        )
        return cls(message, entity="folder", key="path", value=str(path), references=None)


class SnapshotExistsError(ConflictError):
    """A position set already exists at that (allocation, time) and overwrite was not asked.

    The attributes describe the first conflicting snapshot (``account`` and ``allocation`` are
    unique identifiers); ``existing`` lists every conflicting one as dicts with the same keys.
    """

    fields = (
        "account",
        "allocation",
        "account_target_allocation_uid",
        "position_set_time",
        "position_set_uid",
        "existing",
    )

    def __init__(
        self,
        account: str,
        account_target_allocation_uid: str | None,
        position_set_time: datetime,
        position_set_uid: str | None = None,
        *,
        allocation: str | None = None,
        existing: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        first = {
            "account": account,
            "allocation": allocation,
            "account_target_allocation_uid": account_target_allocation_uid,
            "position_set_time": position_set_time,
            "position_set_uid": position_set_uid,
        }
        self.account, self.allocation = account, allocation
        self.account_target_allocation_uid = account_target_allocation_uid
        self.position_set_time, self.position_set_uid = position_set_time, position_set_uid
        self.existing = [dict(e) for e in existing] if existing else [first]
        listed = "; ".join(_snapshot_text(e) for e in self.existing[:MAX_LISTED_SNAPSHOTS])
        extra = len(self.existing) - MAX_LISTED_SNAPSHOTS
        more = f" and {extra} more" if extra > 0 else ""
        super().__init__(
            f"snapshot exists: {listed}{more}; pass overwrite (--overwrite) to replace the whole set",
            entity="position_set",
            key="position_set_time",
            value=position_set_time,
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> SnapshotExistsError:
        """From dicts with ``account``, ``allocation``, ``account_target_allocation_uid``,
        ``position_set_time`` and ``position_set_uid`` (one per conflicting snapshot)."""
        first = rows[0]
        return cls(
            first["account"],
            first.get("account_target_allocation_uid"),
            first["position_set_time"],
            first.get("position_set_uid"),
            allocation=first.get("allocation"),
            existing=rows,
        )


def _snapshot_text(snapshot: Mapping[str, Any]) -> str:
    from msm.timeutil import format_utc  # imported here: timeutil imports this module

    allocation = snapshot.get("allocation") or snapshot.get("account_target_allocation_uid")
    return f"account {snapshot['account']!r} (allocation {allocation!r}) at {format_utc(snapshot['position_set_time'])}"


class NotADraftError(ConflictError):
    """Publishing or discarding a snapshot that is not a draft (it is published already)."""

    fields = ("account", "allocation", "position_set_time", "position_set_uid", "status", "refused")

    def __init__(
        self,
        account: str,
        position_set_time: datetime,
        position_set_uid: str,
        *,
        status: str,
        refused: str,
        allocation: str | None = None,
    ) -> None:
        from msm.timeutil import format_utc  # imported here: timeutil imports this module

        self.account, self.allocation, self.position_set_time = account, allocation, position_set_time
        self.position_set_uid, self.status, self.refused = position_set_uid, status, refused
        super().__init__(
            f"cannot {refused} the snapshot of account {account!r} at {format_utc(position_set_time)}: it is "
            f"{status}, not a draft (only a draft can be published or discarded)",
            entity="position_set",
            key="status",
            value=status,
        )


class FourEyesError(MsmError):
    """Four-eyes is on and the actor publishing a draft is one who saved it."""

    fields = ("account", "position_set_time", "position_set_uid", "actor", "saved_by")

    def __init__(
        self, account: str, position_set_time: datetime, position_set_uid: str, *, actor: str, saved_by: Sequence[str]
    ) -> None:
        from msm.timeutil import format_utc  # imported here: timeutil imports this module

        self.account, self.position_set_time, self.position_set_uid = account, position_set_time, position_set_uid
        self.actor, self.saved_by = actor, list(saved_by)
        super().__init__(
            f"four-eyes: {actor!r} saved the draft of account {account!r} at {format_utc(position_set_time)} "
            f"(saved by {', '.join(repr(a) for a in self.saved_by)}), so {actor!r} cannot publish it; "
            "another person must publish it (four-eyes is on: MSM_FOUR_EYES=1 or four_eyes=True)"
        )


class SchemaError(MsmError):
    """The database schema is not the one this code expects.

    ``path`` is the database file; ``namespace``/``version``/``latest`` say which migrations are
    about (``behind`` maps each namespace that needs migrations to ``(have, latest)``).
    """

    fields = ("path", "namespace", "version", "latest", "behind")

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        namespace: str | None = None,
        version: int | None = None,
        latest: int | None = None,
        behind: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.path, self.namespace, self.version, self.latest = path, namespace, version, latest
        self.behind = dict(behind) if behind is not None else None
        super().__init__(message)

    @classmethod
    def missing(cls, path: str) -> SchemaError:
        """No database file at ``path``."""
        return cls(
            f"no database at {path}; create it with `msm init` "
            "(in Python: msm.migrate(store, msm_portfolios.MIGRATIONS))",
            path=path,
        )

    @classmethod
    def newer(cls, path: str, namespace: str, version: int, latest: int) -> SchemaError:
        """The database has ``namespace`` migration ``version``, newer than this code's ``latest``."""
        return cls(
            f"database {path} is at {namespace} migration {version}, newer than this code knows "
            f"(latest {latest}); upgrade msm-workbench instead of using an older version on it",
            path=path,
            namespace=namespace,
            version=version,
            latest=latest,
        )

    @classmethod
    def needs_migrations(cls, path: str, behind: Mapping[str, tuple[int, int]]) -> SchemaError:
        """The database lacks migrations: ``behind`` maps namespace -> ``(have, latest)``."""
        listed = ", ".join(f"{ns} {have} < {latest}" for ns, (have, latest) in behind.items())
        return cls(
            f"database {path} needs migrations ({listed}); run `msm init` to apply them "
            "(in Python: msm.migrate(store, msm_portfolios.MIGRATIONS))",
            path=path,
            behind=behind,
        )

    @classmethod
    def misnumbered(cls, namespace: str, versions: Sequence[int]) -> SchemaError:
        """The migration files of ``namespace`` are not numbered 1..n."""
        return cls(
            f"migrations of namespace {namespace!r} are not numbered 1..n: {list(versions)}", namespace=namespace
        )


class MigrationError(SchemaError):
    """A migration refused to run; the database was left as it was."""

    fields = ("path", "namespace", "version", "name", "detail")

    def __init__(self, namespace: str, version: int, name: str, detail: str, *, path: str | None = None) -> None:
        self.name, self.detail = name, detail
        super().__init__(
            f"migration {namespace} {version:04d} {name} failed and changed nothing: {detail}",
            path=path,
            namespace=namespace,
            version=version,
        )


class StoreBusyError(MsmError):
    """Another process kept the database file locked for longer than the retry budget.

    ``pid``/``program`` name the holder when DuckDB says who it is (else ``None``); ``waited`` is
    the retry budget in seconds.
    """

    fields = ("path", "pid", "program", "waited")

    def __init__(self, path: str, pid: int | None = None, *, program: str | None = None, waited: float = 0.0) -> None:
        self.path, self.pid, self.program, self.waited = path, pid, program, waited
        who = f"{program} (PID {pid})" if pid is not None else "another process"
        super().__init__(
            f"database file {path} is in use by {who}; waited {waited:g} s for it. "
            "Close the program that keeps it open (or let its write finish) and try again"
        )


class StoreOpenError(MsmError):
    """The database file cannot be opened (not a DuckDB file, a folder, no permission...)."""

    fields = ("path", "detail")

    def __init__(self, path: str, detail: str) -> None:
        self.path, self.detail = path, detail
        super().__init__(f"cannot open database file {path}: {detail}")


class StoreReadOnlyError(MsmError):
    """A write through a store opened read-only; the message says how to open the file for writing."""

    fields = ("path", "refused")

    def __init__(self, path: str, refused: str) -> None:
        self.path, self.refused = path, refused
        super().__init__(
            f"database file {path} is open read-only, so {refused} was refused and nothing was written; "
            f"to write, open it with msm.open({path!r}, read_only=False)"
        )


@dataclass(frozen=True)
class RowError:
    """One bad value: which entity, which row (1-based, as the user sees it), field, value, rule.

    ``rule`` is the text the user reads ("must be finite ..."); ``code`` is the rule's name
    (``weight_finite``) when the error came from a declared :class:`msm.rules.Rule`.
    """

    entity: str
    row: int | None
    field: str
    value: Any
    rule: str
    code: str | None = None

    def __str__(self) -> str:
        where = f"{self.entity} row {self.row}" if self.row is not None else self.entity
        return f"{where}: {self.problem}"

    @property
    def problem(self) -> str:
        """The error without its place: ``field`` = value: rule (what a grid shows beside the row)."""
        shown = "" if self.value is NO_VALUE else f" = {_show(self.value)}"
        return f"`{self.field}`{shown}: {self.rule}"

    def as_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: entity, row, field, value (``None``: about the whole field), rule, code."""
        return {
            "entity": self.entity,
            "row": self.row,
            "field": self.field,
            "value": plain(self.value),
            "rule": self.rule,
            "code": self.code,
        }

    to_dict = as_dict


class _NoValue:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<no value>"


#: Marks a :class:`RowError` about a field as a whole (a missing column) rather than one value.
NO_VALUE: Any = _NoValue()
_NO_VALUE = NO_VALUE  # the former name, kept for callers not yet ported


class ValidationError(MsmError):
    """One or more bad values. ``errors`` lists every one; the message lists the first 50."""

    fields = ("summary", "errors")

    def __init__(self, errors: list[RowError], *, summary: str | None = None) -> None:
        if not errors:
            raise ValueError("ValidationError needs at least one RowError")
        self.errors = sorted(errors, key=lambda e: (e.row is not None, e.row or 0, e.field))
        self.summary = summary
        n = len(self.errors)
        head = summary or (f"{n} problem{'s' if n != 1 else ''} found; nothing was stored")
        lines = [str(e) for e in self.errors[:MAX_LISTED_ERRORS]]
        if n > MAX_LISTED_ERRORS:
            lines.append(f"... and {n - MAX_LISTED_ERRORS} more (all are on ValidationError.errors)")
        super().__init__(head + ":\n  " + "\n  ".join(lines))

    @classmethod
    def single(cls, entity: str, field: str, value: Any, rule: str, row: int | None = None) -> ValidationError:
        """One bad value as a whole error."""
        return cls([RowError(entity, row, field, value, rule)])

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`MsmError.to_dict`, with ``errors`` as a list of :meth:`RowError.as_dict`."""
        return {**super().to_dict(), "errors": [e.as_dict() for e in self.errors]}


class NestingError(ValidationError):
    """A composition that would make a portfolio contain itself (``kind='cycle'``) or nest too deep (``'depth'``).

    ``path`` lists the portfolios' unique identifiers along the offending chain (a cycle ends where
    it starts: ``['BAL', 'EQ', 'BAL']``); ``row`` and ``step`` are the composition row that adds the
    written portfolio's step on it and the constituent it names; ``max_depth`` is the limit.
    """

    fields = ("summary", "errors", "kind", "path", "max_depth")

    def __init__(
        self,
        path: Sequence[str],
        *,
        kind: str,
        max_depth: int,
        row: int | None = None,
        step: str | None = None,
        entity: str = "composition",
        summary: str | None = None,
    ) -> None:
        self.path, self.kind, self.max_depth = list(path), kind, max_depth
        value = step if step is not None else self.path[1 if len(self.path) > 1 else 0]
        shown = " -> ".join(self.path)
        if kind == "cycle":
            rule = (
                f"would make portfolio '{self.path[0]}' contain itself: {shown}; a portfolio never contains itself, "
                "at any depth, at any time"
            )
        else:
            rule = (
                f"would nest portfolios {len(self.path)} levels deep: {shown}; nesting is at most {max_depth} levels "
                f"(a leaf asset at most {max_depth} compositions below a portfolio)"
            )
        head = f"{summary}: refused; nothing was stored" if summary else None
        super().__init__([RowError(entity, row, "portfolio", value, rule, f"portfolio_nesting_{kind}")], summary=head)


def _show(value: Any) -> str:
    if value is NO_VALUE:
        return ""
    if isinstance(value, str):
        # A long value keeps its start and its end (a file path keeps its name and extension).
        return f"'{value}'" if len(value) <= 80 else f"'{value[:50]}...{value[-27:]}' ({len(value)} characters)"
    if isinstance(value, PurePath):  # a file path is shown whole: it is the user's own, and its end matters
        return f"'{value}'"
    return repr(value)
