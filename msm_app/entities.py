"""The registry entities as the Reference data page shows them: fields, services, labels.

One table drives the page's browse/add/edit/delete forms for every entity, so a new field is one
line here rather than one more form.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msm
from msm.errors import ValidationError


@dataclass(frozen=True)
class Field:
    name: str  # the service's keyword (or the key, for the first field)
    label: str
    help: str
    kind: str = "text"  # text | bool | json | group | account | model
    required: bool = False
    editable: bool = True  # some keys are frozen once created


@dataclass(frozen=True)
class Entity:
    title: str  # the tab's title
    noun: str  # how messages name one
    import_name: str  # the bulk-import entity name (msm.import_reference)
    key: str  # the column that identifies a row to a user
    fields: tuple[Field, ...]
    list: Callable[[msm.Store], Any]
    add: Callable[..., dict[str, Any]]
    update: Callable[..., dict[str, Any]]
    delete: Callable[[msm.Store, str], dict[str, Any]]
    columns: tuple[str, ...]  # shown in the table
    delete_warning: str = ""


META = Field("metadata_json", "Metadata (JSON object)", 'Optional, e.g. {"sector": "L1"}', kind="json")

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "Assets",
        "asset",
        "assets",
        "unique_identifier",
        (
            Field(
                "unique_identifier",
                "Unique identifier",
                "How targets and files name the asset, e.g. BTC",
                required=True,
                editable=False,
            ),
            Field("name", "Name", "Display name, e.g. Bitcoin"),
            Field("ticker", "Ticker", "Exchange ticker"),
            Field("asset_type", "Type", "e.g. crypto, equity; never 'portfolio' (a portfolio is not an asset)"),
            META,
        ),
        msm.list_assets,
        msm.add_asset,
        msm.update_asset,
        msm.delete_asset,
        ("unique_identifier", "name", "ticker", "asset_type", "metadata_json"),
    ),
    Entity(
        "Portfolios",
        "portfolio",
        "portfolios",
        "unique_identifier",
        (
            Field(
                "unique_identifier",
                "Unique identifier",
                "How targets and files name the portfolio",
                required=True,
                editable=False,
            ),
            Field("portfolio_name", "Name", "Display name, e.g. Crypto Majors EW"),
            META,
        ),
        msm.list_portfolios,
        msm.add_portfolio,
        msm.update_portfolio,
        msm.delete_portfolio,
        ("unique_identifier", "portfolio_name", "metadata_json"),
    ),
    Entity(
        "Account groups",
        "account group",
        "account_groups",
        "group_name",
        (
            Field("group_name", "Group name", "Unique name of the group", required=True),
            Field("group_description", "Description", "What the accounts of this group have in common"),
            META,
        ),
        msm.list_account_groups,
        msm.add_account_group,
        msm.update_account_group,
        msm.delete_account_group,
        ("group_name", "group_description", "metadata_json"),
    ),
    Entity(
        "Accounts",
        "account",
        "accounts",
        "unique_identifier",
        (
            Field(
                "unique_identifier",
                "Unique identifier",
                "How files and the CLI name the account",
                required=True,
                editable=False,
            ),
            Field("account_name", "Name", "Display name", required=True),
            Field("group", "Account group", "Optional group", kind="group"),
            Field("is_paper", "Paper account", "A paper (simulated) account rather than a live one", kind="bool"),
            Field("account_is_active", "Active", "Inactive accounts are kept with their history", kind="bool"),
            META,
        ),
        msm.list_accounts,
        msm.add_account,
        msm.update_account,
        msm.delete_account,
        ("unique_identifier", "account_name", "is_paper", "account_is_active", "account_group_uid", "metadata_json"),
        delete_warning="Deleting an account also deletes its target allocations and every snapshot of them.",
    ),
    Entity(
        "Allocation models",
        "allocation model",
        "allocation_models",
        "allocation_model_name",
        (
            Field("allocation_model_name", "Model name", "Unique name of the reusable allocation model", required=True),
            Field("allocation_model_description", "Description", "What the model aims at"),
            META,
        ),
        msm.list_allocation_models,
        msm.add_allocation_model,
        msm.update_allocation_model,
        msm.delete_allocation_model,
        ("allocation_model_name", "allocation_model_description", "metadata_json"),
    ),
    Entity(
        "Target allocations",
        "target allocation",
        "allocations",
        "unique_identifier",
        (
            Field(
                "unique_identifier",
                "Unique identifier",
                "Names the mandate, e.g. alpha-target",
                required=True,
                editable=False,
            ),
            Field(
                "account",
                "Account",
                "The account this mandate belongs to",
                kind="account",
                required=True,
                editable=False,
            ),
            Field(
                "model",
                "Allocation model",
                "The model the account follows",
                kind="model",
                required=True,
                editable=False,
            ),
            Field("display_name", "Display name", "Optional label"),
            Field("is_active", "Active", "Snapshots are saved to the account's active allocation", kind="bool"),
            Field("source", "Source", "Where the mandate comes from"),
            META,
        ),
        msm.list_allocations,
        msm.add_allocation,
        msm.update_allocation,
        msm.delete_allocation,
        (
            "unique_identifier",
            "display_name",
            "account_uid",
            "account_allocation_model_uid",
            "is_active",
            "source",
            "metadata_json",
        ),
        delete_warning="Deleting a target allocation also deletes every snapshot saved to it.",
    ),
)


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
    """The key and the keyword arguments for ``entity.add`` from a form's raw values (blank text is None)."""
    kwargs: dict[str, Any] = {}
    for field in entity.fields:
        value = values.get(field.name)
        if field.kind == "json":
            value = parse_metadata(value, entity=entity.noun)
        elif field.kind != "bool" and isinstance(value, str):
            value = value.strip() or None
        kwargs[field.name] = value
    key = kwargs.pop(entity.fields[0].name)
    return key, kwargs
