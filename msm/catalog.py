"""The entity catalog: every registry entity described once.

Each registry table (``asset``, ``portfolio``, ``account_group``, ``account``,
``account_allocation_model``, ``account_target_allocation``) is one :class:`Entity` here: its
table, business key, labels, and one :class:`Field` per column with its kind, required flag,
default, reference, help text and how the command line and the app offer it. Everything else is
derived from this description:

- the registry services (:mod:`msm.services.registry`: ``add_*``, ``get_*``, ``list_*``,
  ``update_*``, ``delete_*``, their signatures included);
- the pydantic records of :mod:`msm.models` (``AssetIn``, ...);
- bulk import (:mod:`msm.services.bulk`: the file's columns and their row rules);
- the ``msm`` command line's ``add`` options and ``list`` tables (:mod:`msm_cli.registry`);
- the Reference data page's forms (:mod:`msm_app.entities`).

Adding a column to an entity is one :class:`Field` line here plus its migration (see
``docs/architecture.md``, "Adding a column to an entity"). This module imports nothing heavier
than the standard library, so a read command pays nothing for it.

>>> CATALOG["account"].key
'unique_identifier'
>>> CATALOG["account"].columns  # doctest: +NORMALIZE_WHITESPACE
('unique_identifier', 'account_name', 'is_paper', 'account_is_active', 'account_group_uid',
 'metadata_json', 'base_currency')
>>> group = CATALOG["account"].field("group")
>>> group.column, group.ref, CATALOG[group.ref].key
('account_group_uid', 'account_group', 'group_name')
>>> [f.name for f in CATALOG.with_field("asset", Field("isin", "text", "ISIN", "ISIN code"))["asset"].fields]
['unique_identifier', 'name', 'ticker', 'asset_type', 'metadata_json', 'currency', 'isin']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "ACCOUNT",
    "ACCOUNT_GROUP",
    "ALLOCATION",
    "ALLOCATION_MODEL",
    "ASSET",
    "CATALOG",
    "CURRENCY",
    "KINDS",
    "MAX_TEXT",
    "PORTFOLIO",
    "Catalog",
    "Entity",
    "Field",
    "Flag",
    "Pattern",
    "Refusal",
]

Kind = Literal["key", "text", "bool", "json", "ref"]
#: The kinds of field, with the DuckDB type each is stored as.
KINDS: dict[str, str] = {"key": "VARCHAR", "text": "VARCHAR", "bool": "BOOLEAN", "json": "JSON", "ref": "UUID"}
#: The longest key or required text (characters).
MAX_TEXT = 255


@dataclass(frozen=True)
class Flag:
    """How ``msm COMMAND add`` takes a field: an option (``--name``) or, for the key, a positional (``ID``).

    ``metavar`` defaults to the option's name in capitals (``--name`` -> ``NAME``); a bool field
    may have an opposite option (``negative``, e.g. ``--live`` for ``--paper``), else it gets
    ``--flag/--no-flag``.
    """

    name: str
    help: str
    metavar: str | None = None
    negative: str | None = None
    negative_help: str = ""

    @property
    def positional(self) -> bool:
        """A positional argument (the key), not an ``--option``."""
        return not self.name.startswith("-")

    @property
    def shown(self) -> str:
        """The metavar argparse shows."""
        return self.metavar or self.name.lstrip("-").replace("-", "_").upper()


@dataclass(frozen=True)
class Refusal:
    """A value a text field never takes (compared case-insensitively), why, and what to do instead.

    ``fix`` is said to a single record (``msm ... add``, a form); ``fix_in_file`` to an import file.
    """

    value: str
    reason: str
    fix: str
    fix_in_file: str


@dataclass(frozen=True)
class Pattern:
    """A regular expression every given value of a text field matches, and how to say it.

    >>> Pattern(r"^[A-Z]{3}$", "three upper-case letters, e.g. USD").message
    'must be three upper-case letters, e.g. USD'
    """

    regex: str
    description: str

    @property
    def message(self) -> str:
        """What a value that does not match is told."""
        return f"must be {self.description}"


@dataclass(frozen=True)
class Field:
    """One column of an entity, as every surface sees it.

    ``name`` is how services, files, forms and the command line name the field; ``column`` the
    table's column (default: ``name``; a reference names its row by business key in ``name``,
    e.g. ``group``, and stores its uid in ``column``, e.g. ``account_group_uid``).

    - ``kind``: ``key`` (the business key, the entity's first field), ``text``, ``bool``,
      ``json`` (a JSON object or null) or ``ref`` (a row of the entity ``ref`` names, by its key);
    - ``required``: a new row must give it; ``default``: a new row's value when it is not given;
    - ``frozen``: never changes once stored (an update is refused);
    - ``refuse`` / ``pattern``: values refused, or a form every given value has;
    - ``label`` and ``help``: a form's label and help text; ``widget`` overrides the form widget
      the kind implies (``text_input``, ``text_area``, ``checkbox``, ``selectbox``);
    - ``flag``: how ``msm COMMAND add`` takes it (``None``: not on the command line);
    - ``heading``: its column in ``msm COMMAND list`` tables (``None``: not shown); ``shown``: a
      bool's words there (false, true); ``listed_as``: a reference's key in listings
      (``account_group``: the group's name beside ``account_group_uid``).
    """

    name: str
    kind: Kind
    label: str
    help: str
    required: bool = False
    default: Any = None
    ref: str | None = None
    column: str = ""
    frozen: bool = False
    refuse: Refusal | None = None
    pattern: Pattern | None = None
    flag: Flag | None = None
    heading: str | None = None
    shown: tuple[str, str] | None = None
    listed_as: str | None = None
    widget: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "ref") != (self.ref is not None):
            raise ValueError(f"field {self.name!r}: a ref field names the entity it references, and only it does")
        if not self.column:
            object.__setattr__(self, "column", self.name)

    @property
    def sql_type(self) -> str:
        """The DuckDB type of its column."""
        return KINDS[self.kind]

    @property
    def not_null(self) -> bool:
        """Whether its column is NOT NULL (required, or always given a default)."""
        return self.required or self.kind == "key" or self.default is not None

    @property
    def form_widget(self) -> str:
        """The form widget for it: ``widget``, else the kind's."""
        implied = {"bool": "checkbox", "json": "text_area", "ref": "selectbox"}
        return self.widget or implied.get(self.kind, "text_input")


#: An ISO 4217 currency code, as the database's CHECKs state it.
CURRENCY = Pattern(r"^[A-Z]{3}$", "an ISO 4217 currency code of three upper-case letters, e.g. USD")
#: Every entity's metadata: a JSON object (or nothing).
METADATA = Field("metadata_json", "json", "Metadata (JSON object)", 'Optional, e.g. {"sector": "L1"}')
#: The business key of the entities named by a unique identifier.
_UNIQUE_IDENTIFIER = "unique_identifier"


@dataclass(frozen=True)
class Entity:
    """One registry entity: its table, its names on every surface, and its fields (the key first).

    - ``name`` / ``plural``: the services' nouns (``add_allocation``, ``list_allocations``);
      ``plural`` is also its import name (``msm.import_reference(store, "allocations", ...)``);
    - ``label``: how messages name one (``target allocation``); ``title``: the app's tab;
    - ``model``: its pydantic record in :mod:`msm.models`;
    - ``command``: ``msm COMMAND ...``; ``command_help``; ``add_help`` (``None``: no ``add``
      command, its rows are created where they are named, as account groups are) and
      ``add_description``;
    - ``create``: the command a "does not exist" message suggests;
    - ``refused_delete``: the advice when a delete is refused because rows still reference it;
      ``cascade``: what a delete also removes (its children are deleted with it; the app warns).
    """

    table: str
    name: str
    plural: str
    label: str
    title: str
    model: str
    command: str
    command_help: str
    create: str
    fields: tuple[Field, ...]
    add_help: str | None = None
    add_description: str | None = None
    refused_delete: str | None = None
    cascade: str | None = None

    def __post_init__(self) -> None:
        kinds = [f.kind for f in self.fields]
        if kinds.count("key") != 1 or kinds[0] != "key":
            raise ValueError(f"entity {self.table!r}: the first field, and only it, is the key")
        names, columns = [f.name for f in self.fields], [f.column for f in self.fields]
        if len(set(names)) != len(names) or len(set(columns)) != len(columns) or "uid" in columns:
            raise ValueError(f"entity {self.table!r}: field names and columns are unique (and uid is implied)")
        if any(f.kind == "json" and f.column != METADATA.column for f in self.fields):
            # one JSON column per entity, whose rules (valid JSON, an object) msm.validation states once
            raise ValueError(f"entity {self.table!r}: the JSON field is `metadata_json`")

    @property
    def key(self) -> str:
        """The business key column (``unique_identifier``, ``group_name``, ...)."""
        return self.fields[0].name

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns besides ``uid``, in field order."""
        return tuple(f.column for f in self.fields)

    @property
    def indefinite(self) -> str:
        """The label with its article: ``an asset``, ``a target allocation``."""
        return f"{'an' if self.label[0] in 'aeiou' else 'a'} {self.label}"

    @property
    def references(self) -> tuple[Field, ...]:
        """The fields that name another entity's row."""
        return tuple(f for f in self.fields if f.kind == "ref")

    @property
    def frozen(self) -> tuple[str, ...]:
        """The columns that never change once stored."""
        return tuple(f.column for f in self.fields if f.frozen)

    def field(self, name: str) -> Field:
        """The field called ``name`` (or stored in column ``name``)."""
        for candidate in self.fields:
            if name in (candidate.name, candidate.column):
                return candidate
        raise KeyError(f"{self.label} has no field {name!r}; fields: {', '.join(f.name for f in self.fields)}")


@dataclass(frozen=True)
class Catalog:
    """The registry entities, addressed by table name (``CATALOG["asset"]``)."""

    entities: tuple[Entity, ...]
    _by_table: dict[str, Entity] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_table = {e.table: e for e in self.entities}
        for entity in self.entities:
            for ref in entity.references:
                if ref.ref not in by_table:
                    raise ValueError(f"{entity.table}.{ref.name} references {ref.ref!r}, which is not in the catalog")
        object.__setattr__(self, "_by_table", by_table)

    def __getitem__(self, table: str) -> Entity:
        return self._by_table[table]

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.entities)

    def __len__(self) -> int:
        return len(self.entities)

    def by_plural(self, plural: str) -> Entity | None:
        """The entity whose plural (its import name) is ``plural``, or ``None``."""
        return next((e for e in self.entities if e.plural == plural), None)

    def with_field(self, table: str, new: Field) -> Catalog:
        """A copy with ``new`` added as the last field of ``table`` (the catalog itself is unchanged)."""
        return self.replace(table, fields=(*self[table].fields, new))

    def replace(self, table: str, **changes: Any) -> Catalog:
        """A copy in which ``table``'s entity has ``changes`` (as :func:`dataclasses.replace`)."""
        return Catalog(tuple(replace(e, **changes) if e.table == table else e for e in self.entities))


def _unique_identifier(help: str, flag_help: str, heading: str) -> Field:
    """The ``unique_identifier`` key that assets, portfolios, accounts and target allocations share."""
    return Field(
        _UNIQUE_IDENTIFIER,
        "key",
        "Unique identifier",
        help,
        required=True,
        frozen=True,
        flag=Flag("ID", flag_help),
        heading=heading,
    )


ASSET = Entity(
    table="asset",
    name="asset",
    plural="assets",
    label="asset",
    title="Assets",
    model="AssetIn",
    command="assets",
    command_help="single instruments a target can name",
    add_help="add an asset",
    create="msm assets add ID",
    refused_delete="delete or retarget those rows first",
    fields=(
        _unique_identifier("How targets and files name the asset, e.g. BTC", "unique identifier, e.g. BTC", "asset"),
        Field(
            "name",
            "text",
            "Name",
            "Display name, e.g. Bitcoin",
            flag=Flag("--name", "display name, e.g. Bitcoin"),
            heading="name",
        ),
        Field(
            "ticker", "text", "Ticker", "Exchange ticker", flag=Flag("--ticker", "ticker, e.g. BTC"), heading="ticker"
        ),
        Field(
            "asset_type",
            "text",
            "Type",
            "e.g. crypto, equity; never 'portfolio' (a portfolio is not an asset)",
            refuse=Refusal(
                "portfolio",
                "an asset never represents a portfolio",
                "add it with `msm portfolios add` instead",
                "import it as a portfolio (msm portfolios import) instead",
            ),
            flag=Flag("--type", "asset type, e.g. crypto (never 'portfolio')", metavar="X"),
            heading="type",
        ),
        METADATA,
        Field(
            "currency",
            "text",
            "Currency",
            "ISO 4217 code its prices are in; a cash asset (type cash) is worth 1 of it, e.g. USD",
            pattern=CURRENCY,
            flag=Flag("--currency", "ISO 4217 currency code, e.g. USD (required for a cash asset)", metavar="CCY"),
            heading="currency",
        ),
    ),
)

PORTFOLIO = Entity(
    table="portfolio",
    name="portfolio",
    plural="portfolios",
    label="portfolio",
    title="Portfolios",
    model="PortfolioIn",
    command="portfolios",
    command_help="constructed portfolios a target can name",
    add_help="add a portfolio",
    create="msm portfolios add ID",
    refused_delete="delete or retarget account target positions (and its compositions) first",
    fields=(
        _unique_identifier(
            "How targets and files name the portfolio", "unique identifier, e.g. CRYPTO-MAJORS-EW", "portfolio"
        ),
        Field(
            "portfolio_name",
            "text",
            "Name",
            "Display name, e.g. Crypto Majors EW",
            flag=Flag("--name", "portfolio name, e.g. 'Crypto Majors EW'"),
            heading="name",
        ),
        METADATA,
    ),
)

ACCOUNT_GROUP = Entity(
    table="account_group",
    name="account_group",
    plural="account_groups",
    label="account group",
    title="Account groups",
    model="AccountGroupIn",
    command="groups",
    command_help="account groups (accounts name theirs in a `group` column)",
    create="msm accounts add ID --name N --group G",
    refused_delete=(
        "move those accounts to another group (or none) first; an account that has target allocations cannot be "
        "moved (a DuckDB foreign-key limitation), so such a group stays until its accounts are deleted"
    ),
    fields=(
        Field("group_name", "key", "Group name", "Unique name of the group", required=True, heading="group"),
        Field(
            "group_description",
            "text",
            "Description",
            "What the accounts of this group have in common",
            heading="description",
        ),
        METADATA,
    ),
)

ACCOUNT = Entity(
    table="account",
    name="account",
    plural="accounts",
    label="account",
    title="Accounts",
    model="AccountIn",
    command="accounts",
    command_help="the holders of target allocations",
    add_help="add an account (active)",
    add_description=(
        "Add an active account. --group names an account group; it is created when it does not exist yet "
        "(the output says so)."
    ),
    create="msm accounts add ID --name N",
    cascade="Deleting an account also deletes its target allocations and every snapshot of them.",
    fields=(
        _unique_identifier("How files and the CLI name the account", "unique identifier, e.g. ACC-001", "account"),
        Field(
            "account_name",
            "text",
            "Name",
            "Display name",
            required=True,
            flag=Flag("--name", "account name"),
            heading="name",
        ),
        Field(
            "is_paper",
            "bool",
            "Paper account",
            "A paper (simulated) account rather than a live one",
            default=True,
            flag=Flag("--paper", "a paper account (default)", negative="--live", negative_help="a live account"),
            heading="mode",
            shown=("live", "paper"),
        ),
        Field(
            "account_is_active",
            "bool",
            "Active",
            "Inactive accounts are kept with their history",
            default=True,
            heading="active",
        ),
        Field(
            "group",
            "ref",
            "Account group",
            "Optional group",
            ref="account_group",
            column="account_group_uid",
            flag=Flag("--group", "account group name (created when missing) or uid", metavar="G"),
            heading="group",
            listed_as="account_group",
        ),
        METADATA,
        Field(
            "base_currency",
            "text",
            "Base currency",
            "ISO 4217 code its NAV, target values and drift are computed in, e.g. USD",
            default="USD",
            pattern=CURRENCY,
            flag=Flag("--base-currency", "ISO 4217 code of its NAV and drift", metavar="CCY"),
            heading="base",
        ),
    ),
)

ALLOCATION_MODEL = Entity(
    table="account_allocation_model",
    name="allocation_model",
    plural="allocation_models",
    label="allocation model",
    title="Allocation models",
    model="AccountAllocationModelIn",
    command="models",
    command_help="allocation models (strategies) a target allocation follows",
    add_help="add an allocation model",
    create="msm models add NAME",
    refused_delete="delete those target allocations first",
    fields=(
        Field(
            "allocation_model_name",
            "key",
            "Model name",
            "Unique name of the reusable allocation model",
            required=True,
            flag=Flag("NAME", "allocation model name (unique)"),
            heading="model",
        ),
        Field(
            "allocation_model_description",
            "text",
            "Description",
            "What the model aims at",
            flag=Flag("--description", "description", metavar="D"),
            heading="description",
        ),
        METADATA,
    ),
)

ALLOCATION = Entity(
    table="account_target_allocation",
    name="allocation",
    plural="allocations",
    label="target allocation",
    title="Target allocations",
    model="AccountTargetAllocationIn",
    command="allocations",
    command_help="account target allocations (account -> allocation model)",
    add_help="add an active target allocation",
    create="msm allocations add ID --account A --model M",
    cascade="Deleting a target allocation also deletes every snapshot saved to it.",
    fields=(
        _unique_identifier(
            "Names the mandate, e.g. alpha-target", "unique identifier, e.g. ACC-001-CORE", "allocation"
        ),
        Field(
            "account",
            "ref",
            "Account",
            "The account this mandate belongs to",
            required=True,
            ref="account",
            column="account_uid",
            frozen=True,
            flag=Flag("--account", "account unique identifier or uid", metavar="A"),
            heading="account",
            listed_as="account",
        ),
        Field(
            "model",
            "ref",
            "Allocation model",
            "The model the account follows",
            required=True,
            ref="account_allocation_model",
            column="account_allocation_model_uid",
            frozen=True,
            flag=Flag("--model", "allocation model name or uid", metavar="M"),
            heading="model",
            listed_as="allocation_model",
        ),
        Field(
            "display_name",
            "text",
            "Display name",
            "Optional label",
            flag=Flag("--display-name", "display name", metavar="N"),
            heading="display name",
        ),
        Field(
            "is_active",
            "bool",
            "Active",
            "Snapshots are saved to the account's active allocation",
            default=True,
            heading="active",
        ),
        Field("source", "text", "Source", "Where the mandate comes from"),
        METADATA,
    ),
)

#: The registry, in the order the app's tabs and ``msm --help`` show it.
CATALOG = Catalog((ASSET, PORTFOLIO, ACCOUNT_GROUP, ACCOUNT, ALLOCATION_MODEL, ALLOCATION))
