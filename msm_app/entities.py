"""The registry entities as the Reference data page shows them: fields, services, labels.

Everything here is derived from the entity catalog (:data:`msm.catalog.CATALOG`): a new column of an
entity is one field in the catalog (plus its migration) and appears in the page's forms by itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msm
from msm import catalog
from msm.errors import ValidationError
from msm.services.registry import services

#: A reference field's form widget, by the entity it names (a select box of that entity's keys).
_REF_KINDS = {"account_group": "group", "account": "account", "account_allocation_model": "model"}


@dataclass(frozen=True)
class Field:
    """One form field: the service's keyword (the key, for the first field), its label, help and widget kind."""

    name: str
    label: str
    help: str
    kind: str = "text"  # text | bool | json | group | account | model
    required: bool = False
    editable: bool = True  # some keys are frozen once created
    default: Any = None  # a new row's value when the form leaves it empty


@dataclass(frozen=True)
class Entity:
    """One tab of the Reference data page: its fields, its services and the columns its table shows."""

    title: str  # the tab's title
    noun: str  # how messages name one
    import_name: str  # the bulk-import entity name (msm.import_reference)
    key: str  # the column that identifies a row to a user
    fields: tuple[Field, ...]
    list: Callable[[msm.Store], Any]
    add: Callable[..., dict[str, Any]]
    update: Callable[..., dict[str, Any]]
    delete: Callable[..., dict[str, Any]]  # (store, uid, *, actor=None, reason=None), as add and update take them
    columns: tuple[str, ...]  # shown in the table
    delete_warning: str = ""


def _form_field(field: catalog.Field) -> Field:
    """The form field of one catalog field."""
    kind = _REF_KINDS[field.ref] if field.kind == "ref" else {"key": "text"}.get(field.kind, field.kind)
    return Field(
        field.name,
        field.label,
        field.help,
        kind=kind,
        required=field.required or field.kind == "key",
        editable=not field.frozen,
        default=field.default,
    )


def page_entity(entity: catalog.Entity, entities: catalog.Catalog = catalog.CATALOG) -> Entity:
    """The Reference data tab of one catalog entity (forms, services and columns all derived from it).

    ``entities`` is the catalog the entity belongs to (its references are looked up there); the
    services are :func:`msm.services.registry.services` of it, so ``msm.add_asset`` and the like for the
    workbench's own catalog.
    """
    derived = services(entity, entities)
    return Entity(
        entity.title,
        entity.label,
        entity.plural,
        entity.key,
        tuple(_form_field(f) for f in entity.fields),
        derived.list,
        derived.add,
        derived.update,
        derived.delete,
        entity.columns,
        delete_warning=entity.cascade or "",
    )


#: Every registry entity of :data:`msm.catalog.CATALOG`, in its order.
ENTITIES: tuple[Entity, ...] = tuple(page_entity(e) for e in catalog.CATALOG)


def column_headers(entity: Entity, columns: Iterable[str]) -> dict[str, str]:
    """The Reference data table's header of each column: its form field's label, else the column's name in words.

    >>> assets = next(e for e in ENTITIES if e.import_name == "assets")
    >>> column_headers(assets, ["unique_identifier", "metadata_json", "asset_uid"])
    {'unique_identifier': 'Unique identifier', 'metadata_json': 'Metadata (JSON object)', 'asset_uid': 'Asset uid'}
    """
    labels = {f.name: f.label for f in entity.fields}
    return {c: labels.get(c, c.replace("_", " ").capitalize()) for c in columns}


def parse_metadata(text: str | None, *, entity: str) -> dict[str, Any] | None:
    """A form's metadata text as a JSON object (or ``None`` when empty); anything else is refused."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError.single(
            entity, "metadata_json", text, f"is not valid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(
            type(value), "a number" if isinstance(value, (int, float)) else "null"
        )
        raise ValidationError.single(entity, "metadata_json", text, f"must be a JSON object, got {kind}")
    return value


def form_values(entity: Entity, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The key and the keyword arguments for ``entity.add`` from a form's raw values.

    Blank text is not given: the field is left out, so the service applies its default (none, or
    the catalog's, e.g. an account's base currency USD).
    """
    kwargs: dict[str, Any] = {}
    for field in entity.fields:
        value = values.get(field.name)
        if field.kind == "json":
            value = parse_metadata(value, entity=entity.noun)
        elif field.kind != "bool" and isinstance(value, str):
            value = value.strip() or None
        if value is None and field.default is not None:
            continue  # left empty: the new row gets the field's default
        kwargs[field.name] = value
    key = kwargs.pop(entity.fields[0].name)
    kwargs = {name: value for name, value in kwargs.items() if value is not None}
    return key, kwargs
