"""The invariant matrix (issue 10): every class of invalid row, tried every way it can be written.

One table of classes of invalid target, composition, registry and bulk-import rows. Each class is
tried, where it applies, three ways: as raw SQL against the tables (DuckDB's own constraints must
refuse it), through the service (``msm`` / ``msm_portfolios``) and through the ``msm`` CLI (both must
refuse it with the message that names the rule). After every attempt the database holds exactly
what it held before (every table compared).

A class with no raw form says why in ``raw_gap`` (checked below, so a gap cannot hide).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

import msm
import msm_portfolios
from tests.cli_harness import Cli, contents, write_rows
from tests.test_store import INSERT as STORE_INSERT

T0 = datetime(2026, 3, 1, tzinfo=UTC)  # a position set exists here (no rows)
T1 = "2026-03-02T00:00:00Z"  # free: the service and the CLI write here
W = "weight_notional_exposure"
GHOST = str(uuid.UUID(int=424242))

TARGET_INSERT = STORE_INSERT  # the raw insert of tests/test_store.py
WEIGHT_INSERT = (
    "INSERT INTO portfolio_weights (time_index, portfolio_uid, constituent_type, constituent_uid, asset_uid, "
    "constituent_portfolio_uid, weight) VALUES ($t::TIMESTAMPTZ, $p::UUID, $k, $c::UUID, $a::UUID, $q::UUID, "
    "$w::DOUBLE)"
)
HOLDING_INSERT = (
    "INSERT INTO account_holdings (time_index, holdings_set_uid, asset_uid, quantity, metadata_json) "
    "VALUES ($t::TIMESTAMPTZ, $s::UUID, $a::UUID, $q::DOUBLE, $m::JSON)"
)
PRICE_INSERT = (
    "INSERT INTO asset_price (time_index, asset_uid, price, currency) VALUES ($t::TIMESTAMPTZ, $a::UUID, $p::DOUBLE, "
    "$c)"
)
FX_INSERT = (
    "INSERT INTO fx_rate (time_index, base_currency, quote_currency, rate) VALUES ($t::TIMESTAMPTZ, $b, $q, $r::DOUBLE)"
)


@dataclass
class World:
    """The seeded registry plus a position set at T0, with the uids the cases need."""

    store: msm.Store
    cli: Cli
    folder: Path
    uid: dict[str, str]
    set_uid: str
    holdings_uid: str = ""  # a holdings set of alpha at T0 (no rows)

    def target(self, kind: str = "asset", **changes: Any) -> tuple[str, dict[str, Any]]:
        uid = self.uid["BTC"] if kind == "asset" else self.uid["CRYPTO-EW"]
        row = {
            "time_index": T0,
            "position_set_uid": self.set_uid,
            "target_type": kind,
            "target_uid": uid,
            "asset_uid": uid if kind == "asset" else None,
            "portfolio_uid": uid if kind == "portfolio" else None,
            W: 0.5,
            "constant_notional_exposure": None,
            "single_asset_quantity": None,
            "metadata_json": None,
        }
        return TARGET_INSERT, row | changes

    def weight(self, **changes: Any) -> tuple[str, dict[str, Any]]:
        """A composition row of CRYPTO-EW (an asset row of BTC unless ``changes`` say otherwise)."""
        row = {"t": T0, "p": self.uid["CRYPTO-EW"], "k": "asset", "a": self.uid["BTC"], "q": None, "w": 0.5} | changes
        return WEIGHT_INSERT, {"c": row["a"] if row["k"] == "asset" else row["q"]} | row

    def holding(self, **changes: Any) -> tuple[str, dict[str, Any]]:
        return HOLDING_INSERT, {"t": T0, "s": self.holdings_uid, "a": self.uid["BTC"], "q": 1.0, "m": None} | changes

    def price(self, **changes: Any) -> tuple[str, dict[str, Any]]:
        return PRICE_INSERT, {"t": T0, "a": self.uid["BTC"], "p": 60000.0, "c": "USD"} | changes

    def rate(self, **changes: Any) -> tuple[str, dict[str, Any]]:
        return FX_INSERT, {"t": T0, "b": "EUR", "q": "USD", "r": 1.1} | changes

    def file(self, name: str, rows: list[dict[str, Any]]) -> str:
        return str(write_rows(self.folder / name, _resolve(self, rows)))


Raw = Callable[[World], list[tuple[str, Any]]]


@dataclass(frozen=True)
class Case:
    name: str
    message: str  # what the service and the CLI say (a regex)
    service: Callable[[World], Any] | None = None
    cli: Callable[[World], list[str]] | None = None
    raw: Raw | None = None
    raw_message: str = ""  # a fragment of DuckDB's own refusal (regex), when it is worth pinning
    raw_gap: str = ""  # why there is no raw form
    cli_message: str = ""  # when the CLI's words differ from the service's (e.g. a file reader's)
    extra: dict[str, Any] = field(default_factory=dict)


def _save(rows: list[dict[str, Any]], at: Any = T1) -> Callable[[World], Any]:
    return lambda w: msm.save_snapshot(w.store, "alpha", at, rows)


def _save_cli(rows: list[dict[str, Any]], at: str = T1, suffix: str = ".json") -> Callable[[World], list[str]]:
    return lambda w: ["targets", "save", "alpha", "--at", at, "--file", w.file(f"targets{suffix}", rows)]


def _target(rows: list[dict[str, Any]], message: str, raw: Raw | None = None, **kw: Any) -> dict[str, Any]:
    return dict(message=message, service=_save(rows), cli=_save_cli(rows), raw=raw, **kw)


def _composition(rows: list[dict[str, Any]], message: str, raw: Raw | None = None, **kw: Any) -> dict[str, Any]:
    return dict(
        message=message,
        service=lambda w: msm_portfolios.save_composition(w.store, "CRYPTO-EW", T1, rows),
        cli=lambda w: ["portfolios", "weights", "CRYPTO-EW", "--at", T1, "--file", w.file("weights.json", rows)],
        raw=raw,
        **kw,
    )


def _bulk(
    entity: str, group: str, rows: list[dict[str, Any]], message: str, raw: Raw | None = None, **kw: Any
) -> dict[str, Any]:
    return dict(
        message=message,
        service=lambda w: msm.import_reference(w.store, entity, rows),
        cli=lambda w: [group, "import", w.file(f"{entity}.json", rows)],
        raw=raw,
        **kw,
    )


def _holdings(
    rows: list[dict[str, Any]], message: str, raw: Raw | None = None, at: str = T1, **kw: Any
) -> dict[str, Any]:
    return dict(
        message=message,
        service=lambda w: msm.import_holdings(w.store, rows, at=at),
        cli=lambda w: ["holdings", "import", w.file("holdings.json", rows), "--at", at],
        raw=raw,
        **kw,
    )


def _prices(rows: list[dict[str, Any]], message: str, raw: Raw | None = None, **kw: Any) -> dict[str, Any]:
    return dict(
        message=message,
        service=lambda w: msm.import_prices(w.store, rows),
        cli=lambda w: ["prices", "import", w.file("prices.csv", rows)],
        raw=raw,
        **kw,
    )


def _rates(rows: list[dict[str, Any]], message: str, raw: Raw | None = None, **kw: Any) -> dict[str, Any]:
    return dict(
        message=message,
        service=lambda w: msm.import_fx_rates(w.store, rows),
        cli=lambda w: ["fx", "import", w.file("fx.json", rows)],
        raw=raw,
        **kw,
    )


AUDIT_INSERT = (
    "INSERT INTO audit_event (uid, event_time, actor, action, entity_type, entity_uid, account_uid, reason, "
    "before_json, after_json) VALUES (gen_random_uuid(), $t::TIMESTAMPTZ, $actor, $action, $type, NULL, NULL, "
    "$reason, $before::JSON, $after::JSON)"
)
REPLACED_INSERT = (
    "INSERT INTO target_positions_replaced (time_index, position_set_uid, target_type, target_uid, asset_uid, "
    "portfolio_uid, weight_notional_exposure, constant_notional_exposure, single_asset_quantity, metadata_json, "
    "version, replaced_at, replaced_by) VALUES ($time_index::TIMESTAMPTZ, $position_set_uid::UUID, $target_type, "
    "$target_uid::UUID, $asset_uid::UUID, $portfolio_uid::UUID, $weight_notional_exposure::DOUBLE, "
    "$constant_notional_exposure::DOUBLE, $single_asset_quantity::DOUBLE, $metadata_json::JSON, $version, "
    "$replaced_at::TIMESTAMPTZ, $replaced_by)"
)


def _event(**changes: Any) -> Raw:
    row = {"t": T0, "actor": "alice", "action": "add", "type": "asset", "reason": None, "before": None}
    return lambda w: [(AUDIT_INSERT, row | {"after": '{"unique_identifier": "X"}'} | changes)]


def _replaced(kind: str = "asset", **changes: Any) -> Raw:
    def raw(w: World) -> list[tuple[str, Any]]:
        _, row = w.target(kind)
        return [(REPLACED_INSERT, row | {"version": 1, "replaced_at": T0, "replaced_by": "alice"} | changes)]

    return raw


PRICE = {"asset": "BTC", "time": T1, "price": 60000, "currency": "USD"}
RATE = {"base": "EUR", "quote": "USD", "time": T1, "rate": 1.1}

CASES = [
    # -- target rows ------------------------------------------------------------------------------
    Case(
        "target: both an asset and a portfolio",
        **_target(
            [{"asset": "BTC", "portfolio": "CRYPTO-EW", W: 0.5}],
            r"row 1.*exactly one of `asset_uid` / `portfolio_uid` must be set, got both",
            lambda w: [w.target("asset", portfolio_uid=w.uid["CRYPTO-EW"])],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: neither an asset nor a portfolio",
        **_target(
            [{"asset": None, W: 0.5}],
            r"row 1.*must be set \(or `asset` / `portfolio` in an import file\), got neither",
            lambda w: [w.target("asset", asset_uid=None)],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: target_uid differs from the asset",
        **_target(
            [{"asset": "BTC", "target_uid": "@ETH", W: 0.5}],
            r"row 1.*`target_uid`.*must equal asset_uid",
            lambda w: [w.target("asset", target_uid=w.uid["ETH"])],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: unknown target_type",
        **_target(
            [{"asset": "BTC", "target_type": "fund", W: 0.5}],
            r"row 1.*`target_type` = 'fund': must be 'asset' or 'portfolio'",
            lambda w: [w.target("asset", target_type="fund")],
            raw_message=r"target_type IN",
        ),
    ),
    Case(
        "target: target_type not the target's kind",
        **_target(
            [{"asset": "BTC", "target_type": "portfolio", W: 0.5}],
            r"row 1.*`target_type` = 'portfolio': does not match the target given \(asset\)",
            lambda w: [w.target("asset", target_type="portfolio")],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: no exposure",
        **_target(
            [{"asset": "BTC", W: None, "constant_notional_exposure": None}],
            r"row 1.*must be set, none was",
            lambda w: [w.target("asset", **{W: None})],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: two exposures",
        **_target(
            [{"asset": "BTC", W: 0.5, "constant_notional_exposure": 100.0}],
            r"row 1.*must be set, got 2",
            lambda w: [w.target("asset", constant_notional_exposure=100.0)],
            raw_message="CHECK",
        ),
    ),
    Case(
        "target: NaN weight",
        **_target(
            [{"asset": "BTC", W: "NaN"}],
            r"row 1.*`weight_notional_exposure`.*must be finite",
            lambda w: [w.target("asset", **{W: float("nan")})],
            raw_message="isfinite",
        ),
    ),
    Case(
        "target: infinite notional",
        **_target(
            [{"asset": "BTC", "constant_notional_exposure": "inf"}],
            r"row 1.*`constant_notional_exposure`.*must be finite",
            lambda w: [w.target("asset", **{W: None, "constant_notional_exposure": float("inf")})],
            raw_message="isfinite",
        ),
    ),
    Case(
        "target: minus infinite quantity",
        **_target(
            [{"asset": "BTC", "single_asset_quantity": "-inf"}],
            r"row 1.*`single_asset_quantity`.*must be finite",
            lambda w: [w.target("asset", **{W: None, "single_asset_quantity": float("-inf")})],
            raw_message="isfinite",
        ),
    ),
    Case(
        "target: a weight that is text",
        **_target(
            [{"asset": "BTC", W: "sixty"}],
            r"row 1.*`weight_notional_exposure` = 'sixty': must be a number",
            lambda w: [w.target("asset", **{W: "sixty"})],
        ),
    ),
    Case(
        "target: quantity on a portfolio row",
        **_target(
            [{"portfolio": "CRYPTO-EW", "single_asset_quantity": 3.0}],
            r"row 1.*a portfolio target cannot use single_asset_quantity",
            lambda w: [w.target("portfolio", **{W: None, "single_asset_quantity": 3.0})],
            raw_message="single_asset_quantity IS NULL",
        ),
    ),
    Case(
        "target: metadata_json an array",
        **_target(
            [{"asset": "BTC", W: 0.5, "metadata_json": "[1, 2]"}],
            r"row 1.*`metadata_json`.*must be a JSON object \(or empty\), got a JSON array",
            lambda w: [w.target("asset", metadata_json="[1, 2]")],
            raw_message="json_type",
        ),
    ),
    Case(
        "target: metadata_json a string",
        **_target(
            [{"asset": "BTC", W: 0.5, "metadata_json": '"core"'}],
            r"row 1.*must be a JSON object \(or empty\), got a JSON string",
            lambda w: [w.target("asset", metadata_json='"core"')],
            raw_message="json_type",
        ),
    ),
    Case(
        "target: metadata_json not JSON",
        **_target(
            [{"asset": "BTC", W: 0.5, "metadata_json": "{oops"}],
            r"row 1.*`metadata_json`.*is not valid JSON",
            lambda w: [w.target("asset", metadata_json="{oops")],
        ),
    ),
    Case(
        "target: unknown asset",
        **_target(
            [{"asset": "NOPE", W: 0.5}],
            r"row 1.*`asset` = 'NOPE': no asset has this unique_identifier",
            lambda w: [w.target("asset", asset_uid=GHOST, target_uid=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "target: unknown portfolio",
        **_target(
            [{"portfolio": "NOPE", W: 0.5}],
            r"row 1.*`portfolio` = 'NOPE': no portfolio has this unique_identifier",
            lambda w: [w.target("portfolio", portfolio_uid=GHOST, target_uid=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "target: a portfolio named as an asset",
        **_target(
            [{"asset": "CRYPTO-EW", W: 0.5}],
            r"row 1.*`asset` = 'CRYPTO-EW': no asset has this unique_identifier",
            lambda w: [w.target("asset", asset_uid=w.uid["CRYPTO-EW"], target_uid=w.uid["CRYPTO-EW"])],
            raw_message="foreign key",
        ),
    ),
    Case(
        "target: the same target twice in a snapshot",
        **_target(
            [{"asset": "BTC", W: 0.5}, {"asset": "BTC", W: 0.2}],
            r"row 2.*duplicate target 'BTC' \(asset\) in one snapshot; first given at row 1",
            lambda w: [w.target("asset"), w.target("asset", **{W: 0.2})],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "target: an asset_identifier field",
        **_target(
            [{"asset_identifier": "BTC", W: 0.5}],
            r"target rows use `asset_uid` \(or the `asset` column in an import file\), not `asset_identifier`",
            lambda w: [
                (
                    TARGET_INSERT.replace("metadata_json)", "metadata_json, asset_identifier)").replace(
                        "::JSON)", "::JSON, 'BTC')"
                    ),
                    w.target("asset")[1],
                )
            ],
            raw_message="asset_identifier",
        ),
    ),
    Case(
        "target: an empty target set",
        message=r"the target set is empty",
        service=_save([]),
        cli=lambda w: ["targets", "save", "alpha", "--at", T1, "--file", w.file("empty.csv", [])],
        cli_message=r"empty.csv': is empty: give a header row and at least one row",
        raw_gap="a set without rows is not a row; the one write path refuses it",
    ),
    Case(
        "target: a naive snapshot time",
        message=r"has no UTC offset \(naive times are refused\)",
        service=_save([{"asset": "BTC", W: 0.5}], at="2026-03-02T00:00:00"),
        cli=_save_cli([{"asset": "BTC", W: 0.5}], at="2026-03-02T00:00:00"),
        raw_gap="TIMESTAMPTZ has no naive values: DuckDB reads a naive literal in the session zone (UTC here)",
    ),
    Case(
        "target: time_index not the set's time",
        message="",
        raw=lambda w: [w.target("asset", time_index=datetime(2026, 3, 5, tzinfo=UTC))],
        raw_message="foreign key",
        raw_gap="",
    ),
    Case(
        "snapshot: a second one at the same time",
        message=(
            r"snapshot exists: account 'alpha' \(allocation 'alpha-main'\) at 2026-03-01T00:00:00Z; pass "
            r"overwrite \(--overwrite\)"
        ),
        service=_save([{"asset": "BTC", W: 0.5}], at=T0),
        cli=_save_cli([{"asset": "BTC", W: 0.5}], at="2026-03-01T00:00:00Z"),
        raw=lambda w: [
            (
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time) VALUES "
                "(gen_random_uuid(), ?::UUID, ?)",
                [w.uid["alpha-main"], T0],
            )
        ],
        raw_message="(?i)duplicate key",
    ),
    Case(
        "snapshot: an unknown target allocation",
        message=r"target allocation.*'ghost'.*does not exist",
        service=lambda w: msm.save_snapshot(w.store, "alpha", T1, [{"asset": "BTC", W: 0.5}], allocation="ghost"),
        cli=lambda w: [*_save_cli([{"asset": "BTC", W: 0.5}])(w), "--allocation", "ghost"],
        raw=lambda w: [
            (
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time) VALUES "
                "(gen_random_uuid(), ?::UUID, ?)",
                [GHOST, T0],
            )
        ],
        raw_message="foreign key",
    ),
    # -- drafts (msm 0005) -------------------------------------------------------------------------
    Case(
        "snapshot: an unknown status",
        message="",
        raw=lambda w: [
            (
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, status) VALUES "
                "(gen_random_uuid(), ?::UUID, ?, 'pending')",
                [w.uid["alpha-main"], datetime(2026, 3, 9, tzinfo=UTC)],
            )
        ],
        raw_message="CHECK",
    ),
    Case(
        "snapshot: no status",
        message="",
        raw=lambda w: [
            (
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, status) VALUES "
                "(gen_random_uuid(), ?::UUID, ?, NULL)",
                [w.uid["alpha-main"], datetime(2026, 3, 9, tzinfo=UTC)],
            )
        ],
        raw_message="NOT NULL",
    ),
    Case(
        "snapshot: a draft over a published set",
        message=r"row 1.*`status` = 'draft':.*is published; a draft cannot overwrite it",
        service=lambda w: msm.save_snapshot(
            w.store, "alpha", T0, [{"asset": "BTC", W: 0.5}], overwrite=True, draft=True
        ),
        cli=lambda w: [*_save_cli([{"asset": "BTC", W: 0.5}], at="2026-03-01T00:00:00Z")(w), "--overwrite", "--draft"],
        raw_gap="a status is one column of the set; what an overwrite may change is a rule of the write path",
    ),
    Case(
        "snapshot: a draft sharing a published set's time",
        message=r"snapshot exists: account 'alpha' \(allocation 'alpha-main'\) at 2026-03-01T00:00:00Z",
        service=lambda w: msm.save_snapshot(w.store, "alpha", T0, [{"asset": "BTC", W: 0.5}], draft=True),
        cli=lambda w: [*_save_cli([{"asset": "BTC", W: 0.5}], at="2026-03-01T00:00:00Z")(w), "--draft"],
        raw=lambda w: [
            (
                "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time, status) VALUES "
                "(gen_random_uuid(), ?::UUID, ?, 'draft')",
                [w.uid["alpha-main"], T0],
            )
        ],
        raw_message="(?i)duplicate key",
    ),
    Case(
        "snapshot: publishing a published set",
        message=r"cannot publish the snapshot of account 'alpha' at 2026-03-01T00:00:00Z: it is published, not a draft",
        service=lambda w: msm.publish_snapshot(w.store, "alpha", T0),
        cli=lambda w: ["targets", "publish", "alpha", "--at", "2026-03-01T00:00:00Z"],
        raw_gap="publishing is a flip of one column, any value of which the CHECK accepts; the service refuses it",
    ),
    Case(
        "snapshot: discarding a published set",
        message=r"cannot discard the snapshot of account 'alpha' at 2026-03-01T00:00:00Z: it is published, not a draft",
        service=lambda w: msm.discard_draft(w.store, "alpha", T0),
        cli=lambda w: ["targets", "discard", "alpha", "--at", "2026-03-01T00:00:00Z"],
        raw_gap="a delete of a published set is the audited delete (msm.delete_position_set); discard is for drafts",
    ),
    # -- compositions -----------------------------------------------------------------------------
    Case(
        "composition: NaN weight",
        **_composition(
            [{"asset": "BTC", "weight": "NaN"}],
            r"row 1.*`weight`.*must be finite",
            lambda w: [w.weight(w=float("nan"))],
            raw_message="isfinite",
        ),
    ),
    Case(
        "composition: no weight",
        **_composition(
            [{"asset": "BTC", "weight": None}],
            r"row 1: `weight`: is required",
            lambda w: [w.weight(w=None)],
            raw_message="NOT NULL",
        ),
    ),
    Case(
        "composition: unknown asset",
        **_composition(
            [{"asset": "NOPE", "weight": 1.0}],
            r"row 1.*'NOPE'.*no asset",
            lambda w: [w.weight(a=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "composition: a portfolio as a constituent",
        **_composition(
            [{"asset": "CRYPTO-EW", "weight": 1.0}],
            r"row 1.*'CRYPTO-EW'.*no asset",
            lambda w: [w.weight(a=w.uid["CRYPTO-EW"])],
            raw_message="foreign key",
        ),
    ),
    Case(
        "composition: an asset twice",
        **_composition(
            [{"asset": "BTC", "weight": 0.5}, {"asset": "BTC", "weight": 0.5}],
            r"row 2.*BTC.*(twice|duplicate|more than once)",
            lambda w: [w.weight(), w.weight(w=0.4)],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "composition: both an asset and a portfolio",
        **_composition(
            [{"asset": "BTC", "portfolio": "CRYPTO-EW", "weight": 1.0}],
            r"row 1: `portfolio` = 'CRYPTO-EW': names both an asset \('BTC'\) and a portfolio",
            lambda w: [w.weight(q=w.uid["CRYPTO-EW"])],
            raw_message="CHECK",
        ),
    ),
    Case(
        "composition: a portfolio holding itself",
        **_composition(
            [{"portfolio": "CRYPTO-EW", "weight": 1.0}],
            r"would make portfolio 'CRYPTO-EW' contain itself: CRYPTO-EW -> CRYPTO-EW",
            lambda w: [w.weight(k="portfolio", a=None, q=w.uid["CRYPTO-EW"])],
            raw_message="CHECK",
        ),
    ),
    Case(
        "composition: an unknown constituent portfolio",
        **_composition(
            [{"portfolio": "NOPE", "weight": 1.0}],
            r"row 1: `portfolio` = 'NOPE': no portfolio has this unique_identifier",
            lambda w: [w.weight(k="portfolio", a=None, q=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "composition: a constituent type that is not asset or portfolio",
        message="",
        raw=lambda w: [(WEIGHT_INSERT, w.weight()[1] | {"k": "fund"})],
        raw_message="CHECK",
    ),
    Case(
        "composition: constituent_uid differs from the asset",
        message="",
        raw=lambda w: [(WEIGHT_INSERT, w.weight()[1] | {"c": w.uid["ETH"]})],
        raw_message="CHECK",
    ),
    # -- registry rows ----------------------------------------------------------------------------
    Case(
        "asset: an empty unique_identifier",
        message=r"unique_identifier",
        service=lambda w: msm.add_asset(w.store, "   "),
        cli=lambda w: ["assets", "add", "   "],
        raw=lambda w: [("INSERT INTO asset (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["   "])],
        raw_message="CHECK",
    ),
    Case(
        "asset: a unique_identifier that exists",
        message=r"asset 'BTC' already exists",
        service=lambda w: msm.add_asset(w.store, "BTC"),
        cli=lambda w: ["assets", "add", "BTC"],
        raw=lambda w: [("INSERT INTO asset (uid, unique_identifier) VALUES (gen_random_uuid(), ?)", ["BTC"])],
        raw_message="(?i)duplicate key",
    ),
    Case(
        "asset: metadata_json an array",
        message=r"metadata_json.*must be a JSON object",
        service=lambda w: msm.add_asset(w.store, "NEW", metadata_json=[1, 2]),  # type: ignore[arg-type]
        cli=lambda w: [
            "assets",
            "import",
            w.file("assets.json", [{"unique_identifier": "NEW", "metadata_json": [1, 2]}]),
        ],
        raw=lambda w: [
            (
                "INSERT INTO asset (uid, unique_identifier, metadata_json) VALUES (gen_random_uuid(), ?, ?::JSON)",
                ["NEW", "[1, 2]"],
            )
        ],
        raw_message="json_type",
    ),
    Case(
        "asset: of type portfolio",
        message=r"an asset never represents a portfolio",
        service=lambda w: msm.add_asset(w.store, "FUND", asset_type="portfolio"),
        cli=lambda w: ["assets", "add", "FUND", "--type", "Portfolio"],
        raw=lambda w: [
            (
                "INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'FUND', ' "
                "Portfolio')",
                [],
            )
        ],
        raw_message="portfolio",
    ),
    Case(
        "account: no name",
        message=r"account_name",
        service=lambda w: msm.add_account(w.store, "new", account_name=""),
        cli=lambda w: ["accounts", "add", "new", "--name", ""],
        raw=lambda w: [
            (
                "INSERT INTO account (uid, unique_identifier, account_name, is_paper, account_is_active) VALUES "
                "(gen_random_uuid(), 'new', NULL, true, true)",
                [],
            )
        ],
        raw_message="NOT NULL",
    ),
    Case(
        "account group: an empty name",
        **_bulk(
            "account_groups",
            "groups",
            [{"group_name": " "}],
            r"row 1.*`group_name`.*must not be empty",
            lambda w: [("INSERT INTO account_group (uid, group_name) VALUES (gen_random_uuid(), ?)", [" "])],
            raw_message="CHECK",
        ),
    ),
    Case(
        "allocation: an unknown account",
        message=r"account.*'ghost'.*does not exist",
        service=lambda w: msm.add_allocation(w.store, "x", account="ghost", model="balanced"),
        cli=lambda w: ["allocations", "add", "x", "--account", "ghost", "--model", "balanced"],
        raw=lambda w: [
            (
                "INSERT INTO account_target_allocation (uid, unique_identifier, account_uid, "
                "account_allocation_model_uid, is_active) "
                "VALUES (gen_random_uuid(), 'x', ?::UUID, ?::UUID, true)",
                [GHOST, w.uid["balanced"]],
            )
        ],
        raw_message="foreign key",
    ),
    # -- holdings -----------------------------------------------------------------------------------
    Case(
        "holdings: a negative quantity",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": -1}],
            r"row 1: `quantity` = '-1': must be >= 0 \(holdings are long-only\)",
            lambda w: [w.holding(q=-1.0)],
            raw_message="quantity >= 0",
        ),
    ),
    Case(
        "holdings: a NaN quantity",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": "NaN"}],
            r"row 1: `quantity` = 'NaN': must be finite",
            lambda w: [w.holding(q=float("nan"))],
            raw_message="isfinite",
        ),
    ),
    Case(
        "holdings: no quantity",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": None}],
            r"row 1: `quantity`: must not be empty",
            lambda w: [w.holding(q=None)],
            raw_message="NOT NULL",
        ),
    ),
    Case(
        "holdings: an unknown asset",
        **_holdings(
            [{"account": "alpha", "asset": "NOPE", "quantity": 1}],
            r"row 1: `asset` = 'NOPE': no asset has this unique_identifier or uid",
            lambda w: [w.holding(a=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "holdings: an unknown account",
        **_holdings(
            [{"account": "ghost", "asset": "BTC", "quantity": 1}],
            r"row 1: `account` = 'ghost': no account has this unique_identifier or uid",
            lambda w: [
                (
                    "INSERT INTO account_holdings_set (uid, account_uid, holdings_time) "
                    "VALUES (gen_random_uuid(), ?::UUID, ?)",
                    [GHOST, T0],
                )
            ],
            raw_message="foreign key",
        ),
    ),
    Case(
        "holdings: an asset twice in one set",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": 1}, {"account": "alpha", "asset": "BTC", "quantity": 2}],
            r"row 2: `asset` = 'BTC': duplicate asset for account 'alpha' in one file; first given at row 1",
            lambda w: [w.holding(), w.holding(q=2.0)],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "holdings: metadata_json an array",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": 1, "metadata_json": "[1]"}],
            r"row 1: `metadata_json`.*must be a JSON object",
            lambda w: [w.holding(m="[1]")],
            raw_message="json_type",
        ),
    ),
    Case(
        "holdings: a set that exists",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": 1}],
            r"holdings set exists at 2026-03-01T00:00:00Z for account 'alpha'; pass overwrite \(--overwrite\)",
            lambda w: [
                (
                    "INSERT INTO account_holdings_set (uid, account_uid, holdings_time) "
                    "VALUES (gen_random_uuid(), ?::UUID, ?)",
                    [w.uid["alpha"], T0],
                )
            ],
            at="2026-03-01T00:00:00Z",
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "holdings: a naive time",
        **_holdings(
            [{"account": "alpha", "asset": "BTC", "quantity": 1}],
            r"`holdings_time` = '2026-03-02T00:00:00': has no UTC offset",
            at="2026-03-02T00:00:00",
            raw_gap="TIMESTAMPTZ has no naive values: DuckDB reads a naive literal in the session zone (UTC here)",
        ),
    ),
    Case(
        "holdings: time_index not the set's time",
        message="",
        raw=lambda w: [w.holding(t=datetime(2026, 3, 5, tzinfo=UTC))],
        raw_message="foreign key",
    ),
    # -- prices and FX rates ----------------------------------------------------------------------
    Case(
        "price: zero",
        **_prices(
            [{**PRICE, "price": 0}],
            r"row 1: `price` = '0': must be > 0",
            lambda w: [w.price(p=0.0)],
            raw_message="price > 0",
        ),
    ),
    Case(
        "price: infinite",
        **_prices(
            [{**PRICE, "price": "inf"}],
            r"row 1: `price` = 'inf': must be finite",
            lambda w: [w.price(p=float("inf"))],
            raw_message="isfinite",
        ),
    ),
    Case(
        "price: a lower-case currency",
        **_prices(
            [{**PRICE, "currency": "usd"}],
            r"row 1: `currency` = 'usd': must be a three-letter upper-case ISO 4217 currency code",
            lambda w: [w.price(c="usd")],
            raw_message="regexp_full_match",
        ),
    ),
    Case(
        "price: a two-letter currency",
        **_prices(
            [{**PRICE, "currency": "US"}],
            r"row 1: `currency` = 'US': must be a three-letter",
            lambda w: [w.price(c="US")],
            raw_message="regexp_full_match",
        ),
    ),
    Case(
        "price: an unknown asset",
        **_prices(
            [{**PRICE, "asset": "NOPE"}],
            r"row 1: `asset` = 'NOPE': no asset has this",
            lambda w: [w.price(a=GHOST)],
            raw_message="foreign key",
        ),
    ),
    Case(
        "price: twice at one time",
        **_prices(
            [PRICE, PRICE],
            r"row 2: `time` = '2026-03-02T00:00:00Z': duplicate price of 'BTC'",
            lambda w: [w.price(), w.price(p=1.0)],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "price: of a cash asset",
        **_prices(
            [{**PRICE, "asset": "USD"}],
            r"row 1: `asset` = 'USD': is a cash asset, worth 1 USD by definition; it takes no price",
            raw_gap=(
                "a rule across two tables (the asset's type): the one import path refuses it; valuation never reads one"
            ),
        ),
    ),
    Case(
        "fx: a rate of zero",
        **_rates(
            [{**RATE, "rate": 0}],
            r"row 1: `rate` = '0': must be > 0",
            lambda w: [w.rate(r=0.0)],
            raw_message="rate > 0",
        ),
    ),
    Case(
        "fx: a currency to itself",
        **_rates(
            [{**RATE, "quote": "EUR"}],
            r"row 1: `quote` = 'EUR': must differ from base",
            lambda w: [w.rate(q="EUR")],
            raw_message="base_currency != quote_currency",
        ),
    ),
    Case(
        "fx: a bad currency code",
        **_rates(
            [{**RATE, "base": "Euro"}],
            r"row 1: `base` = 'Euro': must be a three-letter",
            lambda w: [w.rate(b="Euro")],
            raw_message="regexp_full_match",
        ),
    ),
    Case(
        "fx: twice at one time",
        **_rates(
            [RATE, RATE],
            r"row 2: `time`.*duplicate rate EUR/USD at this time; first given at row 1",
            lambda w: [w.rate(), w.rate(r=1.2)],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "asset: cash without a currency",
        message=r"`currency`.*is required when asset_type is 'cash' \(a cash asset is worth 1 of its currency\)",
        service=lambda w: msm.add_asset(w.store, "EUR", asset_type="cash"),
        cli=lambda w: ["assets", "add", "EUR", "--type", "cash"],
        raw=lambda w: [
            ("INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'EUR', 'cash')", [])
        ],
        raw_message="currency IS NOT NULL",
    ),
    Case(
        "asset: cash without a currency, in a file",
        **_bulk(
            "assets",
            "assets",
            [{"unique_identifier": "EUR", "asset_type": "Cash"}],
            r"row 1: `currency`: is required when asset_type is 'cash'",
            lambda w: [
                ("INSERT INTO asset (uid, unique_identifier, asset_type) VALUES (gen_random_uuid(), 'EUR', 'Cash')", [])
            ],
            raw_message="currency IS NOT NULL",
        ),
    ),
    Case(
        "asset: a currency that is not a code",
        message=r"`currency` = 'usd': must be an ISO 4217 currency code of three upper-case letters",
        service=lambda w: msm.add_asset(w.store, "X", currency="usd"),
        cli=lambda w: ["assets", "add", "X", "--currency", "usd"],
        raw=lambda w: [
            ("INSERT INTO asset (uid, unique_identifier, currency) VALUES (gen_random_uuid(), 'X', 'usd')", [])
        ],
        raw_message="regexp_full_match",
    ),
    Case(
        "account: a base currency that is not a code",
        message=r"`base_currency` = 'dollar': must be an ISO 4217 currency code",
        service=lambda w: msm.add_account(w.store, "b", account_name="B", base_currency="dollar"),
        cli=lambda w: ["accounts", "add", "b", "--name", "B", "--base-currency", "dollar"],
        raw=lambda w: [
            (
                "INSERT INTO account (uid, unique_identifier, account_name, is_paper, account_is_active, "
                "base_currency) "
                "VALUES (gen_random_uuid(), 'b', 'B', true, true, 'dollar')",
                [],
            )
        ],
        raw_message="regexp_full_match",
    ),
    # -- bulk-import rows -------------------------------------------------------------------------
    Case(
        "bulk: a key twice in the file",
        **_bulk(
            "assets",
            "assets",
            [{"unique_identifier": "A1"}, {"unique_identifier": "A1"}],
            r"row 2.*duplicate unique_identifier in the file; first given at row 1",
            lambda w: [
                ("INSERT INTO asset (uid, unique_identifier) VALUES (gen_random_uuid(), 'A1')", []),
                ("INSERT INTO asset (uid, unique_identifier) VALUES (gen_random_uuid(), 'A1')", []),
            ],
            raw_message="(?i)duplicate key",
        ),
    ),
    Case(
        "bulk: an unknown group",
        **_bulk(
            "accounts",
            "accounts",
            [{"unique_identifier": "b1", "account_name": "B", "group": "nowhere"}],
            r"row 1.*`group` = 'nowhere': no account group has this group_name",
            lambda w: [
                (
                    "INSERT INTO account (uid, unique_identifier, account_name, is_paper, account_is_active, "
                    "account_group_uid) "
                    "VALUES (gen_random_uuid(), 'b1', 'B', true, true, ?::UUID)",
                    [GHOST],
                )
            ],
            raw_message="foreign key",
        ),
    ),
    Case(
        "bulk: a flag that is not true or false",
        **_bulk(
            "accounts",
            "accounts",
            [{"unique_identifier": "b1", "account_name": "B", "is_paper": "maybe"}],
            r"row 1.*`is_paper` = 'maybe': must be true or false",
            lambda w: [
                (
                    "INSERT INTO account (uid, unique_identifier, account_name, is_paper, account_is_active) VALUES "
                    "(gen_random_uuid(), 'b1', 'B', ?, true)",
                    ["maybe"],
                )
            ],
        ),
    ),
    Case(
        "bulk: an unknown column",
        **_bulk(
            "assets",
            "assets",
            [{"unique_identifier": "A1", "colour": "red"}],
            r"`colour`.*is not a column of a asset file",
            lambda w: [
                ("INSERT INTO asset (uid, unique_identifier, colour) VALUES (gen_random_uuid(), 'A1', 'red')", [])
            ],
            raw_message="colour",
        ),
    ),
]
CASES += [
    # -- the audit trail (msm 0004) -----------------------------------------------------------------
    Case(
        "audit: a blank actor",
        message=r"`actor` = ' ': must not be blank; give --as NAME",
        service=lambda w: msm.add_asset(w.store, "X", actor=" "),
        cli=lambda w: ["assets", "add", "X", "--as", " "],
        raw=_event(actor=" "),
        raw_message="CHECK",
    ),
    Case("audit: no actor", message="", raw=_event(actor=None), raw_message="NOT NULL"),
    Case(
        "audit: a blank reason",
        message=r"`reason` = '  ': must not be blank when given",
        service=lambda w: msm.add_asset(w.store, "X", reason="  "),
        cli=lambda w: ["assets", "add", "X", "--reason", "  "],
        raw=_event(reason="  "),
        raw_message="CHECK",
    ),
    Case("audit: an unknown action", message="", raw=_event(action="rename"), raw_message="CHECK"),
    Case("audit: an unknown entity type", message="", raw=_event(type="mandate"), raw_message="CHECK"),
    Case("audit: a side that is not an object", message="", raw=_event(before="[1, 2]"), raw_message="CHECK"),
    Case("audit: an event with neither side", message="", raw=_event(after=None), raw_message="CHECK"),
    Case("replaced rows: version 0", message="", raw=_replaced(version=0), raw_message="CHECK"),
    Case("replaced rows: a blank replaced_by", message="", raw=_replaced(replaced_by=" "), raw_message="CHECK"),
    Case(
        "replaced rows: both an asset and a portfolio",
        message="",
        raw=lambda w: _replaced(portfolio_uid=w.uid["CRYPTO-EW"])(w),
        raw_message="CHECK",
    ),
    Case(
        "replaced rows: two exposures",
        message="",
        raw=_replaced(constant_notional_exposure=100.0),
        raw_message="CHECK",
    ),
    Case("replaced rows: a NaN weight", message="", raw=_replaced(**{W: float("nan")}), raw_message="isfinite"),
    Case(
        "replaced rows: a portfolio with a quantity",
        message="",
        raw=_replaced("portfolio", **{W: None, "single_asset_quantity": 1.0}),
        raw_message="CHECK",
    ),
    Case(
        "replaced rows: one target twice in a version",
        message="",
        raw=lambda w: _replaced()(w) * 2,
        raw_message="(?i)duplicate key",
    ),
]
CASES = [c for c in CASES]
_WAYS = [(c, way) for c in CASES for way in ("raw", "service", "cli") if getattr(c, way) is not None]


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str, str]:
    folder = tmp_path_factory.mktemp("invariants")
    store = msm.Store(folder / "template.duckdb")
    msm.migrate(store, msm_portfolios.MIGRATIONS)
    uid = {a: msm.add_asset(store, a, name=a)["uid"] for a in ("BTC", "ETH", "SOL")}
    uid["CRYPTO-EW"] = msm.add_portfolio(store, "CRYPTO-EW")["uid"]
    msm_portfolios.save_composition(store, "CRYPTO-EW", "2026-01-01T00:00:00Z", {"BTC": 0.5, "ETH": 0.5})
    group = msm.add_account_group(store, "core")
    uid["alpha"] = msm.add_account(store, "alpha", account_name="Alpha", group=group["uid"])["uid"]
    uid["balanced"] = msm.add_allocation_model(store, "balanced")["uid"]
    uid["alpha-main"] = msm.add_allocation(store, "alpha-main", account="alpha", model="balanced")["uid"]
    set_uid, holdings_uid = str(uuid.uuid4()), str(uuid.uuid4())
    store.execute(
        "INSERT INTO position_set (uid, account_target_allocation_uid, position_set_time) VALUES (?::UUID, ?::UUID, ?)",
        [set_uid, uid["alpha-main"], T0],
    )
    store.execute(
        "INSERT INTO account_holdings_set (uid, account_uid, holdings_time) VALUES (?::UUID, ?::UUID, ?)",
        [holdings_uid, uid["alpha"], T0],
    )
    store.execute(
        "INSERT INTO asset (uid, unique_identifier, asset_type, currency) VALUES (gen_random_uuid(), 'USD', 'cash', "
        "'USD')"
    )
    return folder / "template.duckdb", uid, set_uid, holdings_uid


@pytest.fixture
def world(tmp_path: Path, _template: tuple[Path, dict[str, str], str, str]) -> World:
    path = tmp_path / "msm.duckdb"
    path.write_bytes(_template[0].read_bytes())
    return World(msm.Store(path), Cli(path), tmp_path, dict(_template[1]), _template[2], _template[3])


def _resolve(world: World, rows: Any) -> Any:
    """``@NAME`` in a row value is the uid of NAME (cases are built before the uids exist)."""
    return json.loads(re.sub(r'"@([\w-]+)"', lambda m: json.dumps(world.uid[m[1]]), json.dumps(rows)))


@pytest.mark.parametrize(("case", "way"), _WAYS, ids=[f"{c.name} [{way}]" for c, way in _WAYS])
def test_every_invalid_row_is_refused_every_way(world: World, case: Case, way: str) -> None:
    before = contents(world.store)
    if way == "raw":
        statements = case.raw(world)  # type: ignore[misc]
        with pytest.raises(duckdb.Error) as caught:
            with world.store.transaction() as con:
                for sql, params in statements:
                    con.execute(sql, params)
        if case.raw_message:
            assert re.search(case.raw_message, str(caught.value)), str(caught.value)
    elif way == "service":
        with pytest.raises(msm.MsmError) as caught:
            _patched(case.service, world)(world)  # type: ignore[arg-type]
        assert re.search(case.message, str(caught.value)), str(caught.value)
    else:
        world.cli.fails(*_resolve(world, case.cli(world)), match=case.cli_message or case.message)  # type: ignore[misc]
    assert contents(world.store) == before


def _patched(fn: Callable[[World], Any], world: World) -> Callable[[World], Any]:
    """Resolve ``@NAME`` placeholders in the rows a service case closes over."""
    cells = getattr(fn, "__closure__", None) or ()
    for cell in cells:
        if isinstance(cell.cell_contents, list):
            cell.cell_contents = _resolve(world, cell.cell_contents)
    return fn


def test_the_matrix_covers_enough_classes_and_says_where_a_way_is_missing() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    for case in CASES:
        if case.raw is None and case.service is not None:
            assert case.raw_gap, f"{case.name}: no raw form and no reason given"
    # every rule DuckDB can hold is a constraint (msm 0003 rebuilt `asset` to add the last missing one)
    assert not [c for c in CASES if c.raw_gap.startswith("DuckDB cannot")]
    counts = {way: sum(1 for _, w in _WAYS if w == way) for way in ("raw", "service", "cli")}
    assert counts["raw"] >= 30 and counts["service"] >= 30 and counts["cli"] >= 30, counts
