"""msm.validation.validate_target_rows on its own (no database): every rule, every bad row at once, invariants."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msm.errors import MAX_LISTED_ERRORS, ValidationError
from msm.models import TargetPositionIn
from msm.validation import ROW, SET_KEY, empty_reference, target_rows_frame, validate_target_rows

ASSETS = {f"A{i}": str(uuid.UUID(int=i, version=4)) for i in range(1, 9)}
ASSETS |= {"BTC": "00000000-0000-4000-8000-000000000b7c", "ETH": "00000000-0000-4000-8000-0000000000e7"}
PORTFOLIOS = {f"P{i}": str(uuid.UUID(int=1000 + i, version=4)) for i in range(1, 4)}
PORTFOLIOS |= {"CRYPTO-EW": "00000000-0000-4000-8000-0000000000a1"}
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"
BTC, ETH, EW = ASSETS["BTC"], ASSETS["ETH"], PORTFOLIOS["CRYPTO-EW"]

ASSET_REF = pl.DataFrame({"uid": list(ASSETS.values()), "unique_identifier": list(ASSETS)})
PORTFOLIO_REF = pl.DataFrame({"uid": list(PORTFOLIOS.values()), "unique_identifier": list(PORTFOLIOS)})
EXPOSURES = ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
ONE_OF = "exactly one of weight_notional_exposure, constant_notional_exposure, single_asset_quantity must be set"


def validate(rows: Any, **kwargs: Any) -> pl.DataFrame:
    return validate_target_rows(target_rows_frame(rows), assets=ASSET_REF, portfolios=PORTFOLIO_REF, **kwargs)


def w(value: Any = 0.5, **row: Any) -> dict[str, Any]:
    return {**row, "weight_notional_exposure": value}


# -- one table: every rule, its row, field and message ---------------------------------------------------
# (id, rows, [(row, field)], message pattern). Rows are 1-based; a None row is about the whole set.
BAD_SETS = [
    (
        "both identifiers",
        [w(asset="BTC", portfolio="CRYPTO-EW")],
        [(1, "asset_uid")],
        r"row 1: `asset_uid` = '"
        + BTC
        + r"': exactly one of `asset_uid` / `portfolio_uid` must be set, got both \(portfolio_uid="
        + EW
        + r"\)",
    ),
    ("both uids", [w(asset_uid=BTC, portfolio_uid=EW)], [(1, "asset_uid")], r"got both \(portfolio_uid="),
    (
        "neither",
        [w(asset_uid=None)],
        [(1, "asset_uid")],
        r"row 1: `asset_uid`: exactly one of `asset_uid` / `portfolio_uid` must be set \(or `asset` / `portfolio` in "
        r"an import file\), got neither",
    ),
    ("neither, empty text", [w(asset="  ")], [(1, "asset_uid")], r"got neither"),
    (
        "target_uid mismatch",
        [w(asset_uid=BTC, target_uid=ETH)],
        [(1, "target_uid")],
        r"row 1: `target_uid` = '" + ETH + r"': must equal asset_uid " + BTC,
    ),
    (
        "target_uid mismatch, portfolio",
        [w(portfolio="CRYPTO-EW", target_uid=BTC)],
        [(1, "target_uid")],
        r"must equal portfolio_uid " + EW,
    ),
    (
        "target_uid malformed",
        [w(asset="BTC", target_uid="btc")],
        [(1, "target_uid")],
        r"`target_uid` = 'btc': must be a UUID like",
    ),
    (
        "target_type mismatch",
        [w(asset="BTC", target_type="portfolio")],
        [(1, "target_type")],
        r"row 1: `target_type` = 'portfolio': does not match the target given \(asset\)",
    ),
    (
        "target_type mismatch, portfolio",
        [w(portfolio_uid=EW, target_type="asset")],
        [(1, "target_type")],
        r"does not match the target given \(portfolio\)",
    ),
    (
        "target_type fund",
        [w(asset="BTC", target_type="fund")],
        [(1, "target_type")],
        r"`target_type` = 'fund': must be 'asset' or 'portfolio'",
    ),
    ("zero exposures", [w(None, asset="BTC")], [(1, "exposure")], r"row 1: `exposure`: " + ONE_OF + ", none was"),
    (
        "two exposures",
        [w(0.5, asset="BTC", constant_notional_exposure=100.0)],
        [(1, "exposure")],
        ONE_OF + r", got 2: weight_notional_exposure=0.5, constant_notional_exposure=100.0",
    ),
    (
        "three exposures",
        [w(0.5, asset="BTC", constant_notional_exposure=100.0, single_asset_quantity=1.0)],
        [(1, "exposure")],
        ONE_OF + r", got 3: weight_notional_exposure=0.5, constant_notional_exposure=100.0, single_asset_quantity=1.0",
    ),
    (
        "NaN weight",
        [w(float("nan"), asset="BTC")],
        [(1, "weight_notional_exposure")],
        r"`weight_notional_exposure` = 'NaN': must be finite \(NaN and infinity are refused\)",
    ),
    (
        "inf constant",
        [{"asset": "BTC", "constant_notional_exposure": float("inf")}],
        [(1, "constant_notional_exposure")],
        r"`constant_notional_exposure` = 'inf': must be finite",
    ),
    (
        "-inf quantity",
        [{"asset": "BTC", "single_asset_quantity": float("-inf")}],
        [(1, "single_asset_quantity")],
        r"`single_asset_quantity` = '-inf': must be finite",
    ),
    ("NaN as text", [w("nan", asset="BTC")], [(1, "weight_notional_exposure")], r"must be finite"),
    (
        "text exposure",
        [w("abc", asset="BTC")],
        [(1, "weight_notional_exposure")],
        r"row 1: `weight_notional_exposure` = 'abc': must be a number",
    ),
    (
        "text exposure among numbers",
        [w(0.5, asset="BTC"), w("60%", asset="ETH")],
        [(2, "weight_notional_exposure")],
        r"row 2: `weight_notional_exposure` = '60%': must be a number",
    ),
    (
        "quantity on portfolio",
        [{"portfolio": "CRYPTO-EW", "single_asset_quantity": 1.0}],
        [(1, "single_asset_quantity")],
        r"`single_asset_quantity` = '1.0': a portfolio target cannot use single_asset_quantity; use "
        r"weight_notional_exposure or constant_notional_exposure",
    ),
    (
        "unknown asset identifier",
        [w(asset="DOGE")],
        [(1, "asset")],
        r"row 1: `asset` = 'DOGE': no asset has this unique_identifier; add it first \(msm assets add ID\)",
    ),
    (
        "unknown portfolio identifier",
        [w(portfolio="NOPE")],
        [(1, "portfolio")],
        r"`portfolio` = 'NOPE': no portfolio has this unique_identifier; add it first \(msm portfolios add ID\)",
    ),
    (
        "identifiers are case-sensitive",
        [w(asset="btc")],
        [(1, "asset")],
        r"`asset` = 'btc': no asset has this unique_identifier",
    ),
    (
        "unknown asset uid",
        [w(asset_uid=UNKNOWN)],
        [(1, "asset_uid")],
        r"`asset_uid` = '" + UNKNOWN + "': no asset has this uid",
    ),
    (
        "unknown portfolio uid",
        [w(portfolio_uid=UNKNOWN)],
        [(1, "portfolio_uid")],
        r"`portfolio_uid` = '" + UNKNOWN + "': no portfolio has this uid",
    ),
    ("asset uid given as portfolio uid", [w(portfolio_uid=BTC)], [(1, "portfolio_uid")], r"no portfolio has this uid"),
    (
        "malformed asset uid",
        [w(asset_uid="not-a-uuid")],
        [(1, "asset_uid")],
        r"`asset_uid` = 'not-a-uuid': must be a UUID like 123e4567-e89b-42d3-a456-426614174000",
    ),
    (
        "malformed uid is shown as given",
        [w(asset_uid="Not-A-UUID")],
        [(1, "asset_uid")],
        r"`asset_uid` = 'Not-A-UUID': must be a UUID",
    ),
    (
        "malformed portfolio uid",
        [w(portfolio_uid="1234")],
        [(1, "portfolio_uid")],
        r"`portfolio_uid` = '1234': must be a UUID",
    ),
    (
        "uid and identifier disagree",
        [w(asset="BTC", asset_uid=ETH)],
        [(1, "asset_uid")],
        r"`asset_uid` = '"
        + ETH
        + r"': names a different asset than `asset` = 'BTC' \("
        + BTC
        + r"\); give one or make them agree",
    ),
    (
        "duplicate target",
        [w(asset="BTC"), w(asset="ETH"), w(0.1, asset="BTC")],
        [(3, "target_uid")],
        r"row 3: `target_uid` = '" + BTC + r"': duplicate target 'BTC' \(asset\) in one snapshot; first given at row 1",
    ),
    (
        "duplicate target by uid and identifier",
        [w(asset_uid=BTC), w(asset="BTC")],
        [(2, "target_uid")],
        r"duplicate target 'BTC' \(asset\).*first given at row 1",
    ),
    (
        "duplicate portfolio",
        [w(portfolio="CRYPTO-EW"), w(portfolio_uid=EW.upper())],
        [(2, "target_uid")],
        r"duplicate target 'CRYPTO-EW' \(portfolio\)",
    ),
    (
        "metadata array",
        [w(asset="BTC", metadata_json="[1, 2]")],
        [(1, "metadata_json")],
        r"`metadata_json` = '\[1, 2\]': must be a JSON object \(or empty\), got a JSON array",
    ),
    (
        "metadata list",
        [w(asset="BTC", metadata_json=["a"])],
        [(1, "metadata_json")],
        r"must be a JSON object \(or empty\), got a JSON array",
    ),
    (
        "metadata string",
        [w(asset="BTC", metadata_json='"satellite"')],
        [(1, "metadata_json")],
        r"`metadata_json` = '\"satellite\"': must be a JSON object \(or empty\)",
    ),
    (
        "metadata number",
        [w(asset="BTC", metadata_json="3")],
        [(1, "metadata_json")],
        r"must be a JSON object \(or empty\)",
    ),
    (
        "metadata malformed",
        [w(asset="BTC", metadata_json="{role: core")],
        [(1, "metadata_json")],
        r"`metadata_json` = '\{role: core': is not valid JSON; give a JSON object such as",
    ),
    (
        "unknown column",
        [{"asset": "BTC", "weight_notional_exposure": 0.5, "weight": 0.5}],
        [(None, "weight")],
        r"target set: `weight`: is not a known column; allowed: asset, asset_uid, constant_notional_exposure, "
        r"metadata_json, portfolio, portfolio_uid",
    ),
    (
        "asset_identifier key",
        [w(asset_identifier="BTC")],
        [(1, "asset_identifier")],
        r"row 1: `asset_identifier` = 'BTC': target rows use `asset_uid` \(or the `asset` column in an import "
        r"file\), not `asset_identifier`",
    ),
    (
        "missing target column",
        [w()],
        [(None, "asset_uid")],
        r"target set: `asset_uid`: column is missing: give `asset_uid` or `portfolio_uid` \(or `asset` / `portfolio` "
        r"unique identifiers\)",
    ),
    (
        "missing exposure column",
        [{"asset": "BTC"}],
        [(None, "weight_notional_exposure")],
        r"target set: `weight_notional_exposure`: column is missing: give one of weight_notional_exposure, "
        r"constant_notional_exposure, single_asset_quantity",
    ),
]


@pytest.mark.parametrize(("rows", "where", "message"), [pytest.param(r, wh, m, id=i) for i, r, wh, m in BAD_SETS])
def test_each_rule_is_refused_with_its_message(
    rows: list[dict[str, Any]], where: list[tuple[int | None, str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        validate(rows)
    assert [(e.row, e.field) for e in info.value.errors] == where
    assert all(e.entity == "target set" for e in info.value.errors)
    assert str(info.value).startswith(
        f"{len(where)} problem{'s' if len(where) != 1 else ''} found; nothing was stored:"
    )


def test_asset_identifier_column_in_a_frame_is_refused() -> None:
    frame = pl.DataFrame({"asset_identifier": ["BTC"], "weight_notional_exposure": [0.5]})
    with pytest.raises(
        ValidationError, match=r"target set: `asset_identifier`: target rows use `asset_uid`.*not `asset_identifier`"
    ):
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)


def test_asset_identifier_column_next_to_a_real_target_is_still_refused() -> None:
    frame = pl.DataFrame({"asset": ["BTC"], "asset_identifier": ["BTC"], "weight_notional_exposure": [0.5]})
    with pytest.raises(ValidationError, match="not `asset_identifier`") as info:
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)
    assert [(e.row, e.field) for e in info.value.errors] == [(None, "asset_identifier")]


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame(schema={"asset": pl.String, "weight_notional_exposure": pl.Float64}),
        pl.DataFrame(schema={"portfolio_uid": pl.String, "constant_notional_exposure": pl.Float64}),
    ],
    ids=["asset", "portfolio"],
)
def test_an_empty_set_is_refused(frame: pl.DataFrame) -> None:
    with pytest.raises(
        ValidationError, match=r"target set: `rows`: the target set is empty; give at least one target row"
    ):
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)


def test_an_exposure_column_that_holds_no_numbers_is_refused() -> None:
    frame = pl.DataFrame({"asset": ["BTC"], "weight_notional_exposure": [True]})
    with pytest.raises(ValidationError, match=r"`weight_notional_exposure`: must hold numbers, got a Boolean column"):
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)


def test_the_same_target_in_two_sets_is_not_a_duplicate() -> None:
    frame = target_rows_frame([w(asset="BTC"), w(asset="BTC"), w(portfolio="CRYPTO-EW"), w(portfolio="CRYPTO-EW")])
    frame = frame.with_columns(pl.Series(SET_KEY, ["s1", "s2", "s1", "s2"]))
    out = validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)
    assert out.height == 4
    assert out[SET_KEY].to_list() == ["s1", "s2", "s1", "s2"]
    # but twice in one of them is
    frame = frame.with_columns(pl.Series(SET_KEY, ["s1", "s2", "s1", "s1"]))
    with pytest.raises(
        ValidationError,
        match=r"row 4: `target_uid` .* duplicate target 'CRYPTO-EW' \(portfolio\) in one snapshot; first given at "
        r"row 3",
    ):
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)


def test_row_numbers_can_come_from_the_caller() -> None:
    frame = target_rows_frame([w(asset="BTC"), w(asset="DOGE")]).with_columns(pl.Series(ROW, [10, 11]))
    with pytest.raises(ValidationError, match=r"target set row 11: `asset` = 'DOGE'"):
        validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)


def test_every_bad_row_is_reported_at_once_with_one_based_rows() -> None:
    rows = [
        w(0.1, asset="BTC"),
        w(float("nan"), asset="ETH"),  # row 2
        w(0.1, portfolio="CRYPTO-EW"),
        w(0.1, asset="DOGE"),  # row 4
        {"portfolio": "P1", "single_asset_quantity": 3.0, "metadata_json": "[1]"},  # row 5, two problems
        w(0.1, asset="A1"),
        w(0.1, asset="BTC"),  # row 7, duplicate of row 1
    ]
    with pytest.raises(ValidationError) as info:
        validate(rows)
    found = [(e.row, e.field) for e in info.value.errors]
    assert found == [
        (2, "weight_notional_exposure"),
        (4, "asset"),
        (5, "metadata_json"),
        (5, "single_asset_quantity"),
        (7, "target_uid"),
    ]
    message = str(info.value)
    assert message.startswith("5 problems found; nothing was stored:\n")
    lines = message.splitlines()[1:]
    assert [re.match(r"\s+target set row (\d+):", line).group(1) for line in lines] == ["2", "4", "5", "5", "7"]


def test_a_long_error_list_is_cut_in_the_message_but_kept_whole() -> None:
    rows = [w(float("nan"), asset=f"X{i}") for i in range(60)]
    with pytest.raises(ValidationError, match=r"\.\.\. and 70 more \(all are on ValidationError\.errors\)") as info:
        validate(rows)
    assert len(info.value.errors) == 120  # each row: unknown asset and NaN
    assert str(info.value).count("\n  target set row") == MAX_LISTED_ERRORS


def test_a_valid_mixed_set_in_storage_shape() -> None:
    rows = [
        w(0.6, asset="BTC", metadata_json={"role": "core"}),
        {
            "portfolio_uid": EW.upper(),
            "constant_notional_exposure": 40000,
            "target_type": "portfolio",
            "target_uid": EW,
        },
        {"asset_uid": f"  {ETH}  ", "asset": "ETH", "single_asset_quantity": -1.5, "metadata_json": ""},
    ]
    out = validate(rows)
    assert out.columns == [
        ROW,
        SET_KEY,
        "target_type",
        "target_uid",
        "asset_uid",
        "portfolio_uid",
        *EXPOSURES,
        "metadata_json",
        "unique_identifier",
    ]
    assert out.drop(SET_KEY).rows() == [
        (1, "asset", BTC, BTC, None, 0.6, None, None, '{"role": "core"}', "BTC"),
        (2, "portfolio", EW, None, EW, None, 40000.0, None, None, "CRYPTO-EW"),
        (3, "asset", ETH, ETH, None, None, None, -1.5, None, "ETH"),
    ]
    assert out.schema["weight_notional_exposure"] == pl.Float64


def test_csv_like_text_cells_are_parsed() -> None:
    frame = pl.DataFrame(
        {
            "asset": ["BTC", "", None],
            "portfolio": ["", "CRYPTO-EW", None],
            "portfolio_uid": [None, None, PORTFOLIOS["P1"]],
            "weight_notional_exposure": ["0.6", " 0.25 ", ""],
            "constant_notional_exposure": ["", "", "1e6"],
            "metadata_json": ['{"a": 1}', "", None],
        }
    )
    out = validate_target_rows(frame, assets=ASSET_REF, portfolios=PORTFOLIO_REF)
    assert out.select(
        "target_type", "unique_identifier", "weight_notional_exposure", "constant_notional_exposure", "metadata_json"
    ).rows() == [
        ("asset", "BTC", 0.6, None, '{"a": 1}'),
        ("portfolio", "CRYPTO-EW", 0.25, None, None),
        ("portfolio", "P1", None, 1e6, None),
    ]


def test_weights_are_not_forced_to_sum_to_one() -> None:
    out = validate([w(0.5, asset="BTC"), w(0.2, asset="ETH")])
    assert out["weight_notional_exposure"].to_list() == [0.5, 0.2]


def test_empty_reference_frames_mean_nothing_can_be_named() -> None:
    with pytest.raises(ValidationError, match="no asset has this unique_identifier"):
        validate_target_rows(
            target_rows_frame([w(asset="BTC")]), assets=empty_reference(), portfolios=empty_reference()
        )


# -- the one-record model says the same ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"asset_identifier": "BTC", "weight_notional_exposure": 0.5}, r"not `asset_identifier`"),
        (
            {"asset_uid": BTC, "portfolio_uid": EW, "weight_notional_exposure": 0.5},
            r"exactly one of `asset_uid` / `portfolio_uid` must be set, got both",
        ),
        ({"weight_notional_exposure": 0.5}, r"got neither"),
        (
            {"asset": "BTC", "weight_notional_exposure": 0.5, "constant_notional_exposure": 1.0},
            r"exactly one of .* must be set, got 2",
        ),
        ({"asset": "BTC"}, r"must be set, got 0"),
        ({"asset": "BTC", "weight_notional_exposure": float("nan")}, r"must be finite"),
        ({"portfolio": "CRYPTO-EW", "single_asset_quantity": 1.0}, r"cannot use single_asset_quantity"),
        (
            {"asset": "BTC", "target_type": "portfolio", "weight_notional_exposure": 0.5},
            r"does not match the target given \(asset\)",
        ),
        ({"asset_uid": BTC, "target_uid": ETH, "weight_notional_exposure": 0.5}, r"must equal asset_uid"),
        (
            {"asset": "BTC", "weight_notional_exposure": 0.5, "metadata_json": [1]},
            r"metadata_json must be a JSON object",
        ),
        ({"asset": "BTC", "weight_notional_exposure": 0.5, "weight": 1}, r"Extra inputs are not permitted"),
    ],
)
def test_target_position_model_refuses(data: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError, match=message):
        TargetPositionIn.model_validate(data)


def test_target_position_models_feed_the_frame_validation() -> None:
    rows = [
        TargetPositionIn(asset_uid=BTC, weight_notional_exposure=0.6),
        TargetPositionIn(portfolio="CRYPTO-EW", weight_notional_exposure=0.4),
    ]
    out = validate(rows)
    assert out.select("target_type", "target_uid").rows() == [("asset", BTC), ("portfolio", EW)]


# -- properties ---------------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
metadata = st.none() | st.dictionaries(
    st.text(max_size=6), st.integers() | st.text(max_size=6) | st.booleans() | st.none(), max_size=3
)


@st.composite
def valid_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    universe = [("asset", k) for k in ASSETS] + [("portfolio", k) for k in PORTFOLIOS]
    targets = draw(st.lists(st.sampled_from(universe), min_size=1, max_size=10, unique=True))
    rows = []
    for kind, ident in targets:
        uid = (ASSETS if kind == "asset" else PORTFOLIOS)[ident]
        style = draw(st.sampled_from(["uid", "identifier", "both", "declared"]))
        row: dict[str, Any] = {}
        if style in ("uid", "both", "declared"):
            row[f"{kind}_uid"] = uid
        if style in ("identifier", "both"):
            row[kind] = ident
        if style == "declared":
            row |= {"target_type": kind, "target_uid": uid}
        column = draw(st.sampled_from(EXPOSURES if kind == "asset" else EXPOSURES[:2]))
        row[column] = draw(finite)
        meta = draw(metadata)
        if meta is not None:
            row["metadata_json"] = meta
        rows.append(row)
    return rows


def _expected(row: dict[str, Any]) -> tuple[Any, ...]:
    kind = "asset" if ("asset_uid" in row or "asset" in row) else "portfolio"
    uid = row.get(f"{kind}_uid") or (ASSETS if kind == "asset" else PORTFOLIOS)[row[kind]]
    ident = {v: k for k, v in (ASSETS | PORTFOLIOS).items()}[uid]
    return (
        kind,
        uid,
        uid if kind == "asset" else None,
        uid if kind == "portfolio" else None,
        *(row.get(c) for c in EXPOSURES),
        row.get("metadata_json"),
        ident,
    )


def _actual(out: pl.DataFrame) -> list[tuple[Any, ...]]:
    columns = [
        "target_type",
        "target_uid",
        "asset_uid",
        "portfolio_uid",
        *EXPOSURES,
        "metadata_json",
        "unique_identifier",
    ]
    return [
        (*r[:7], json.loads(r[7]) if r[7] is not None else None, r[8]) for r in out.sort(ROW).select(columns).rows()
    ]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=valid_sets())
def test_any_valid_set_validates_and_round_trips_exactly(rows: list[dict[str, Any]]) -> None:
    out = validate(rows)
    assert out[ROW].to_list() == list(range(1, len(rows) + 1))
    assert _actual(out) == [_expected(r) for r in rows]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=valid_sets())
def test_exposures_given_as_text_round_trip_exactly(rows: list[dict[str, Any]]) -> None:
    as_text = [{k: (repr(v) if k in EXPOSURES else v) for k, v in r.items()} for r in rows]
    out = validate(as_text)
    assert _actual(out) == [_expected(r) for r in rows]


def _corruptions(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kind = "asset" if ("asset_uid" in row or "asset" in row) else "portfolio"
    other = "portfolio" if kind == "asset" else "asset"
    column = next(c for c in EXPOSURES if c in row)
    spare = next(c for c in EXPOSURES[:2] if c != column)
    untargeted = {
        k: v
        for k, v in row.items()
        if k not in ("asset", "asset_uid", "portfolio", "portfolio_uid", "target_type", "target_uid")
    }
    return {
        "nan": row | {column: float("nan")},
        "inf": row | {column: float("-inf")},
        "no exposure": row | {column: None},
        "two exposures": row | {spare: 1.0},
        "text exposure": row | {column: "lots"},
        "both targets": row | ({"portfolio": "CRYPTO-EW"} if kind == "asset" else {"asset": "BTC"}),
        "neither target": untargeted | {f"{kind}_uid": None},
        "unknown identifier": untargeted | {kind: "NOT-THERE"},
        "unknown uid": untargeted | {f"{kind}_uid": UNKNOWN},
        "malformed uid": untargeted | {f"{kind}_uid": "zzz"},
        "declared type": row | {"target_type": other},
        "declared uid": row | {"target_uid": UNKNOWN},
        "bad type": row | {"target_type": "fund"},
        "metadata array": row | {"metadata_json": [1, 2]},
        "metadata text": row | {"metadata_json": "not json"},
        "asset_identifier": row | {"asset_identifier": "BTC"},
    }


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=valid_sets(), data=st.data())
def test_any_set_with_one_corrupted_row_is_refused_naming_exactly_that_row(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(rows) - 1), label="row")
    kind = data.draw(st.sampled_from(sorted(_corruptions(rows[index]))), label="corruption")
    bad = [*rows]
    bad[index] = _corruptions(rows[index])[kind]
    with pytest.raises(ValidationError) as info:
        validate(bad)
    assert {e.row for e in info.value.errors} == {index + 1}, str(info.value)


def test_quantity_on_a_portfolio_names_only_that_row() -> None:
    rows = [w(0.5, asset="BTC"), {"portfolio": "P1", "single_asset_quantity": 1.0}, w(0.1, asset="ETH")]
    with pytest.raises(ValidationError) as info:
        validate(rows)
    assert [(e.row, e.field) for e in info.value.errors] == [(2, "single_asset_quantity")]


# -- times: a bulk column and a single value follow the same rule -------------------------------------------
TIME_TEXTS = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00Z",
    "2026-01-01T09:00:00+09:00",
    "2026-01-01T00:00:00+0530",
    "2026-01-01T00:00:00+05",
    "2026-01-01T00:00:00.123456Z",
    " 2026-01-01T00:00:00-00:00 ",
    "2026-01-01T00:00:00",
    "2026-01-01 00:00",
    "2026-01-01",
    "yesterday",
    "2026-02-30T00:00:00Z",
    "12:00Z",
]


@pytest.mark.parametrize("text", TIME_TEXTS)
def test_time_column_and_single_time_agree(text: str) -> None:
    from msm.timeutil import ensure_utc_column, parse_utc

    try:
        single: Any = parse_utc(text, field="t", entity="x", row=3)
    except ValidationError as exc:
        single = [e.as_dict() for e in exc.errors]
    frame = pl.DataFrame({"t": ["2026-06-01T00:00:00Z", text], "r": [2, 3]})
    try:
        column: Any = ensure_utc_column(frame, "t", entity="x", row_column="r")["t"].to_list()[1]
    except ValidationError as exc:
        column = [e.as_dict() for e in exc.errors]
    assert column == single


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("2026-01-01T00:00:00", "has no UTC offset (naive times are refused)"),
        ("soon", "is not a time"),
        (None, "is required"),
    ],
)
def test_time_column_errors_name_row_and_rule(text: str | None, rule: str) -> None:
    from msm.timeutil import ensure_utc_column

    frame = pl.DataFrame({"t": ["2026-06-01T00:00:00Z", text], "r": [7, 8]}, schema={"t": pl.String, "r": pl.Int64})
    with pytest.raises(ValidationError, match=re.escape(f"x row 8: `t` = {text!r}: {rule}")):
        ensure_utc_column(frame, "t", entity="x", row_column="r")


def test_naive_datetime_columns_are_refused() -> None:
    from datetime import datetime

    from msm.timeutil import ensure_utc_column

    frame = pl.DataFrame({"t": [datetime(2026, 1, 1)]})
    with pytest.raises(
        ValidationError, match=r"x: `t` = 'Datetime\(time_unit='us', time_zone=None\)': is a naive datetime column"
    ):
        ensure_utc_column(frame, "t", entity="x")
