"""Look-through expansion (msm.expansion.expand_targets).

Target frames are built directly (storage-shaped, as the snapshot service returns them); weights
come as a composition-history frame, or from a real DuckDB file through
``msm_portfolios.duckdb_weights_source``.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm_portfolios
from msm.errors import NotFoundError, ValidationError
from msm.expansion import (
    DIAGNOSTIC_COLUMNS,
    EXPANSION_COLUMNS,
    NET_COLUMNS,
    Expansion,
    MissingCompositionError,
    expand_targets,
)
from msm.services.registry import add_asset, add_portfolio
from msm.store import Store, migrate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)
T2 = datetime(2026, 3, 1, tzinfo=UTC)
EXPOSURES = ("weight_notional_exposure", "constant_notional_exposure", "single_asset_quantity")
TARGET_SCHEMA = {
    "position_set_uid": pl.String,
    "time_index": pl.Datetime("us", "UTC"),
    "target_type": pl.String,
    "target_uid": pl.String,
    "asset_uid": pl.String,
    "portfolio_uid": pl.String,
    **{c: pl.Float64 for c in EXPOSURES},
    "unique_identifier": pl.String,
}


def uid(name: str) -> str:
    """A stable, lowercase UUID per name (so expected frames can be written by hand)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"msm-test/{name}"))


def target(
    set_name: str,
    at: datetime,
    *,
    asset: str | None = None,
    portfolio: str | None = None,
    wne: float | None = None,
    cne: float | None = None,
    qty: float | None = None,
) -> dict[str, Any]:
    name = asset or portfolio
    assert name is not None
    return {
        "position_set_uid": uid(set_name),
        "time_index": at,
        "target_type": "asset" if asset else "portfolio",
        "target_uid": uid(name),
        "asset_uid": uid(asset) if asset else None,
        "portfolio_uid": uid(portfolio) if portfolio else None,
        "weight_notional_exposure": wne,
        "constant_notional_exposure": cne,
        "single_asset_quantity": qty,
        "unique_identifier": name,
    }


def targets(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=TARGET_SCHEMA)


def composition(portfolio: str, at: datetime, weights: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {"time_index": at, "portfolio_uid": uid(portfolio), "asset_uid": uid(a), "asset": a, "weight": w}
        for a, w in weights.items()
    ]


def history(*compositions: list[dict[str, Any]]) -> pl.DataFrame:
    rows = [row for comp in compositions for row in comp]
    return pl.DataFrame(
        rows,
        schema={
            "time_index": pl.Datetime("us", "UTC"),
            "portfolio_uid": pl.String,
            "asset_uid": pl.String,
            "asset": pl.String,
            "weight": pl.Float64,
        },
    )


# -- the basics -----------------------------------------------------------------------------------------
#: The leading columns of an expanded row of portfolio CRYPTO-EW targeted by set s at T1.
PORTFOLIO_ROW = (uid("s"), T1, "portfolio", uid("CRYPTO-EW"), uid("CRYPTO-EW"))


def test_reference_case_half_of_a_portfolio_with_a_quarter_weight_is_an_eighth() -> None:
    rows = targets(target("s", T1, asset="BTC", wne=0.5), target("s", T1, portfolio="CRYPTO-EW", wne=0.5))
    weights = history(composition("CRYPTO-EW", T0, {"ETH": 0.25, "SOL": 0.75}))
    result = expand_targets(rows, weights, weights_as_of="position-set")
    assert isinstance(result, Expansion)
    assert result.rows.columns == list(EXPANSION_COLUMNS)
    assert result.rows.rows() == [
        # ..., path, depth (design section 12): an asset target has no path and depth 0
        (uid("s"), T1, "asset", uid("BTC"), None, uid("BTC"), "BTC", None, None, 0.5, None, None, None, 0),
        (*PORTFOLIO_ROW, uid("ETH"), "ETH", 0.25, T0, 0.125, None, None, "CRYPTO-EW", 1),
        (*PORTFOLIO_ROW, uid("SOL"), "SOL", 0.75, T0, 0.375, None, None, "CRYPTO-EW", 1),
    ]
    assert result.diagnostics.height == 0 and result.diagnostics.columns == list(DIAGNOSTIC_COLUMNS)
    assert result.weights_as_of == "position-set" and result.weights_time_bound is None and not result.net


def test_output_schema() -> None:
    rows = targets(target("s", T1, portfolio="P", wne=1.0))
    result = expand_targets(rows, history(composition("P", T0, {"A": 1.0})), weights_as_of="position-set")
    utc = pl.Datetime("us", "UTC")
    assert dict(result.rows.schema) == {
        "position_set_uid": pl.String,
        "time_index": utc,
        "source_target_type": pl.String,
        "source_target_uid": pl.String,
        "portfolio_uid": pl.String,
        "asset_uid": pl.String,
        "asset": pl.String,
        "portfolio_weight": pl.Float64,
        "weights_time": utc,
        **{c: pl.Float64 for c in EXPOSURES},
        "path": pl.String,
        "depth": pl.Int32,
    }


def test_constant_notional_is_scaled_and_quantity_passes_through_unscaled() -> None:
    rows = targets(
        target("s", T1, asset="BTC", qty=2.5),
        target("s", T1, asset="ETH", cne=1_000.0),
        target("s", T1, portfolio="P", cne=1_000_000.0),
    )
    out = expand_targets(
        rows, history(composition("P", T0, {"SOL": 0.25, "ADA": 0.75})), weights_as_of="position-set"
    ).rows
    assert out.select("asset", *EXPOSURES).rows() == [
        ("BTC", None, None, 2.5),
        ("ETH", None, 1_000.0, None),
        ("ADA", None, 750_000.0, None),
        ("SOL", None, 250_000.0, None),
    ]


def test_asset_rows_pass_through_without_portfolio_columns_and_no_weights_are_needed() -> None:
    calls: list[Any] = []
    rows = targets(target("s", T1, asset="BTC", wne=0.6), target("s", T1, asset="ETH", wne=0.4))
    out = expand_targets(rows, lambda uids, until: calls.append(uids) or history()).rows
    assert calls == []  # no portfolio row: the source is not even asked
    assert out.select("source_target_type", "portfolio_uid", "portfolio_weight", "weights_time").unique().rows() == [
        ("asset", None, None, None)
    ]
    assert out["weight_notional_exposure"].to_list() == [0.6, 0.4]


def test_empty_targets_give_an_empty_frame_of_the_right_schema() -> None:
    empty = pl.DataFrame(schema=TARGET_SCHEMA)
    plain = expand_targets(empty, history())
    assert plain.rows.height == 0 and plain.rows.columns == list(EXPANSION_COLUMNS)
    assert plain.rows.schema == expand_targets(targets(target("s", T1, asset="A", wne=1.0)), history()).rows.schema
    netted = expand_targets(empty, history(), net=True)
    assert netted.rows.height == 0 and netted.rows.columns == list(NET_COLUMNS)
    assert netted.diagnostics.height == 0


def test_output_is_sorted_whatever_the_input_order() -> None:
    rows = targets(
        target("b", T1, portfolio="P", wne=0.5),
        target("a", T1, asset="ZED", wne=0.1),
        target("b", T1, asset="AAA", wne=0.5),
        target("a", T1, portfolio="Q", wne=0.3),
        target("a", T1, portfolio="P", wne=0.6),
    )
    weights = history(composition("P", T0, {"Y": 0.5, "X": 0.5}), composition("Q", T0, {"M": 0.9, "B": 0.1}))
    out = expand_targets(rows, weights, weights_as_of="position-set").rows
    expected = out.sort("position_set_uid", "source_target_type", "source_target_uid", "asset")
    assert out.equals(expected)
    for seed in range(5):
        shuffled = rows.sample(fraction=1.0, shuffle=True, seed=seed)
        assert expand_targets(shuffled, weights, weights_as_of="position-set").rows.equals(out)


def test_uuids_are_matched_whatever_their_case() -> None:
    rows = targets(target("s", T1, portfolio="P", wne=0.5)).with_columns(
        pl.col("target_uid", "portfolio_uid").str.to_uppercase()
    )
    weights = history(composition("P", T0, {"A": 1.0})).with_columns(
        pl.col("portfolio_uid", "asset_uid").str.to_uppercase()
    )
    out = expand_targets(rows, weights, weights_as_of="position-set").rows
    assert out.select("source_target_uid", "portfolio_uid", "asset_uid").row(0) == (uid("P"), uid("P"), uid("A"))


# -- weights time ---------------------------------------------------------------------------------------
@pytest.fixture
def two_compositions() -> pl.DataFrame:
    return history(composition("P", T0, {"A": 1.0}), composition("P", T2, {"B": 1.0}))


@pytest.mark.parametrize(
    ("weights_as_of", "expected_time", "expected_asset"),
    [
        ("2026-02-15T00:00:00Z", T0, "A"),  # between: the earlier one
        ("2026-03-01T00:00:00Z", T2, "B"),  # exactly at: at-or-before is inclusive
        ("2026-03-01T09:00:00+09:00", T2, "B"),  # 09:00 in Tokyo is 00:00 UTC: exactly T2
        (datetime(2026, 6, 1, tzinfo=UTC), T2, "B"),
        ("2026-02-28T23:59:59.999999Z", T0, "A"),
    ],
)
def test_an_explicit_weights_time_picks_the_latest_composition_at_or_before_it(
    two_compositions: pl.DataFrame, weights_as_of: Any, expected_time: datetime, expected_asset: str
) -> None:
    rows = targets(target("s", T1, portfolio="P", wne=1.0))
    result = expand_targets(rows, two_compositions, weights_as_of=weights_as_of)
    assert result.rows.select("weights_time", "asset").rows() == [(expected_time, expected_asset)]
    assert result.weights_as_of == result.weights_time_bound and result.weights_as_of.tzinfo is not None


def test_position_set_mode_uses_each_sets_own_time(two_compositions: pl.DataFrame) -> None:
    rows = targets(
        target("early", T1, portfolio="P", wne=1.0),
        target("late", T2 + timedelta(days=1), portfolio="P", wne=1.0),
        target("exact", T2, portfolio="P", wne=1.0),
    )
    out = expand_targets(rows, two_compositions, weights_as_of="position-set").rows
    picked = dict(
        zip(
            out["position_set_uid"].to_list(),
            zip(out["weights_time"].to_list(), out["asset"].to_list(), strict=True),
            strict=True,
        )
    )
    assert picked == {uid("early"): (T0, "A"), uid("late"): (T2, "B"), uid("exact"): (T2, "B")}


def test_now_is_the_default_and_ignores_future_compositions(two_compositions: pl.DataFrame) -> None:
    rows = targets(target("s", T0, portfolio="P", wne=1.0))
    assert expand_targets(rows, two_compositions, now=T1).rows["asset"].to_list() == ["A"]
    assert expand_targets(rows, two_compositions, now=T2).rows["asset"].to_list() == ["B"]
    result = expand_targets(rows, two_compositions)  # the real now: after 2026-03-01
    assert result.weights_as_of == "now" and result.weights_time_bound is not None
    assert result.rows["asset"].to_list() == ["B"]


@pytest.mark.parametrize(
    ("weights_as_of", "now", "match"),
    [
        (
            "2026-02-15T00:00:00",
            None,
            r"expansion: `weights_as_of` = '2026-02-15T00:00:00': has no UTC offset \(naive times are refused\)",
        ),
        (datetime(2026, 2, 15), None, r"`weights_as_of` = '2026-02-15T00:00:00': has no UTC offset"),
        ("yesterday", None, r"`weights_as_of` = 'yesterday': is not a time"),
        (42, None, r"`weights_as_of` = 42: must be 'now', 'position-set' or a time with a UTC offset"),
        ("now", datetime(2026, 2, 15), r"expansion: `now` = '2026-02-15T00:00:00': has no UTC offset"),
    ],
)
def test_bad_weights_times_are_refused(
    two_compositions: pl.DataFrame, weights_as_of: Any, now: Any, match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        expand_targets(
            targets(target("s", T1, portfolio="P", wne=1.0)), two_compositions, weights_as_of=weights_as_of, now=now
        )


# -- missing compositions and diagnostics ---------------------------------------------------------------
def test_a_missing_composition_names_every_portfolio_and_time_at_once() -> None:
    rows = targets(
        target("a", T0, portfolio="P", wne=0.5),
        target("b", T1, portfolio="P", wne=0.5),
        target("b", T1, portfolio="Q", wne=0.5),
        target("c", T2, portfolio="Q", wne=0.5),
        target("c", T2, portfolio="R", wne=0.5),
    )
    weights = history(composition("P", T1, {"A": 1.0}), composition("Q", T2, {"A": 1.0}))
    with pytest.raises(MissingCompositionError) as info:
        expand_targets(rows, weights, weights_as_of="position-set")
    assert isinstance(info.value, NotFoundError)
    assert info.value.missing == [("P", T0), ("Q", T1), ("R", T2)]
    assert str(info.value).startswith(
        "3 portfolios have no composition at or before their weights time: 'P' at 2026-01-01T00:00:00Z, "
        "'Q' at 2026-02-01T00:00:00Z, 'R' at 2026-03-01T00:00:00Z; store one with `msm portfolios weights ID --at TS "
        "--file F`"
    )


def test_a_single_missing_composition_names_the_portfolio_by_uid_when_no_identifier_is_known() -> None:
    rows = targets(target("s", T0, portfolio="P", wne=0.5)).drop("unique_identifier")
    with pytest.raises(
        MissingCompositionError, match=rf"portfolio '{uid('P')}' has no composition at or before 2026-03-01T00:00:00Z"
    ):
        expand_targets(rows, history(composition("P", T2 + timedelta(seconds=1), {"A": 1.0})), weights_as_of=T2)


def test_compositions_not_summing_to_one_are_expanded_as_stored_and_reported() -> None:
    rows = targets(
        target("s", T1, portfolio="HALF", wne=1.0),
        target("s", T1, portfolio="FULL", wne=1.0),
        target("t", T1, portfolio="HALF", cne=100.0),
        target("t", T1, portfolio="SHORT", wne=1.0),
    )
    weights = history(
        composition("HALF", T0, {"A": 0.3, "B": 0.2}),
        composition("FULL", T0, {"A": 0.1, "B": 0.2, "C": 0.7}),  # 1 up to rounding: 0.1 + 0.2 + 0.7
        composition("SHORT", T0, {"A": 1.5, "B": -0.5}),  # long/short: sums to 1, negative weight kept
    )
    result = expand_targets(rows, weights, weights_as_of="position-set")
    assert result.diagnostics.rows() == [(uid("HALF"), "HALF", T0, pytest.approx(0.5))]
    half = result.rows.filter(pl.col("portfolio_uid") == uid("HALF"))
    columns = ("asset", "portfolio_weight", "weight_notional_exposure", "constant_notional_exposure")
    assert half.filter(pl.col("position_set_uid") == uid("s")).select(columns).rows() == [
        ("A", 0.3, 0.3, None),
        ("B", 0.2, 0.2, None),
    ]
    assert half.filter(pl.col("position_set_uid") == uid("t")).select(columns).rows() == [
        ("A", 0.3, None, 30.0),
        ("B", 0.2, None, 20.0),
    ]
    short = result.rows.filter(pl.col("portfolio_uid") == uid("SHORT"))
    assert short["weight_notional_exposure"].to_list() == [1.5, -0.5]


# -- netting ----------------------------------------------------------------------------------------------
def test_netting_sums_an_asset_held_directly_and_through_two_portfolios() -> None:
    rows = targets(
        target("s", T1, asset="BTC", wne=0.2),
        target("s", T1, asset="SOL", cne=500.0),
        target("s", T1, portfolio="P", wne=0.4),
        target("s", T1, portfolio="Q", wne=0.4),
        target("t", T1, asset="BTC", qty=3.0),
    )
    weights = history(composition("P", T0, {"BTC": 0.5, "ETH": 0.5}), composition("Q", T0, {"BTC": 0.25, "SOL": 0.75}))
    result = expand_targets(rows, weights, weights_as_of="position-set", net=True)
    assert result.net and result.rows.columns == list(NET_COLUMNS)
    assert result.rows.filter(pl.col("position_set_uid") == uid("s")).rows() == [
        (uid("s"), T1, uid("BTC"), "BTC", pytest.approx(0.2 + 0.2 + 0.1), None, None, 3),
        (uid("s"), T1, uid("ETH"), "ETH", pytest.approx(0.2), None, None, 1),
        (uid("s"), T1, uid("SOL"), "SOL", pytest.approx(0.3), 500.0, None, 2),  # a sum of only nulls stays null
    ]
    assert result.rows.filter(pl.col("position_set_uid") == uid("t")).rows() == [
        (uid("t"), T1, uid("BTC"), "BTC", None, None, 3.0, 1)
    ]
    assert result.rows.schema["n_sources"] == pl.UInt32


@pytest.mark.parametrize("asset", ["AAA", "ZZZ"])  # first and last (set, asset) of the output
def test_netting_keeps_the_three_exposures_of_one_asset_apart(asset: str) -> None:
    rows = targets(
        target("s", T1, asset=asset, qty=7.0),
        target("s", T1, asset="MID", wne=0.1),
        target("s", T1, portfolio="P", wne=0.4),
        target("s", T1, portfolio="Q", cne=1_000.0),
        target("s", T1, portfolio="R", cne=500.0),
    )
    weights = history(
        composition("P", T0, {asset: 0.5, "MID": 0.5}),
        composition("Q", T0, {asset: 0.1, "MID": 0.9}),
        composition("R", T0, {asset: 1.0}),
    )
    netted = expand_targets(rows, weights, weights_as_of="position-set", net=True).rows
    by_asset = {r["asset"]: r for r in netted.iter_rows(named=True)}
    assert (by_asset[asset]["weight_notional_exposure"], by_asset[asset]["constant_notional_exposure"]) == (
        pytest.approx(0.2),
        pytest.approx(600.0),
    )
    assert (by_asset[asset]["single_asset_quantity"], by_asset[asset]["n_sources"]) == (7.0, 4)
    assert (by_asset["MID"]["weight_notional_exposure"], by_asset["MID"]["constant_notional_exposure"]) == (
        pytest.approx(0.3),
        pytest.approx(900.0),
    )
    assert (by_asset["MID"]["single_asset_quantity"], by_asset["MID"]["n_sources"]) == (None, 3)


def test_many_sets_at_once_match_a_row_by_row_oracle() -> None:
    rng = random.Random(7)
    assets = [f"A{i:02d}" for i in range(30)]
    portfolios = [f"P{i}" for i in range(8)]
    times = [T0 + timedelta(days=30 * k) for k in range(6)]
    compositions = {
        (p, t): {a: rng.uniform(-0.2, 0.6) for a in rng.sample(assets, rng.randint(1, 10))}
        for p in portfolios
        for t in times
    }
    weights = history(*[composition(p, t, w) for (p, t), w in compositions.items()])
    rows = []
    for s in range(200):
        at = T0 + timedelta(days=rng.uniform(0, 200))
        for a in rng.sample(assets, rng.randint(0, 5)):
            kind = rng.choice(["wne", "cne", "qty"])
            rows.append(target(f"set{s}", at, asset=a, **{kind: rng.uniform(-1, 1)}))
        for p in rng.sample(portfolios, rng.randint(0, 4)):
            kind = rng.choice(["wne", "cne"])
            rows.append(target(f"set{s}", at, portfolio=p, **{kind: rng.uniform(-1, 1)}))
    frame = targets(*rows)
    out = expand_targets(frame, weights, weights_as_of="position-set").rows

    expected = []
    for r in rows:
        if r["target_type"] == "asset":
            expected.append(
                (
                    r["position_set_uid"],
                    r["target_uid"],
                    r["unique_identifier"],
                    None,
                    None,
                    r["weight_notional_exposure"],
                    r["constant_notional_exposure"],
                    r["single_asset_quantity"],
                )
            )
            continue
        when = max(t for t in times if t <= r["time_index"])
        for a, w in compositions[(r["unique_identifier"], when)].items():
            scale = lambda x, w=w: None if x is None else x * w  # noqa: E731
            expected.append(
                (
                    r["position_set_uid"],
                    r["target_uid"],
                    a,
                    w,
                    when,
                    scale(r["weight_notional_exposure"]),
                    scale(r["constant_notional_exposure"]),
                    None,
                )
            )
    got = out.select(
        "position_set_uid", "source_target_uid", "asset", "portfolio_weight", "weights_time", *EXPOSURES
    ).rows()
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert out["position_set_uid"].n_unique() == frame["position_set_uid"].n_unique()


# -- bad target and weight frames ------------------------------------------------------------------------
def _frame(**changes: Any) -> pl.DataFrame:
    row = target("s", T1, portfolio="P", wne=0.5)
    row.update(changes)
    return pl.DataFrame([row], schema=TARGET_SCHEMA)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (
            _frame(single_asset_quantity=1.0, weight_notional_exposure=None),
            r"targets row 1: `single_asset_quantity` = '1.0': a portfolio target cannot use single_asset_quantity",
        ),
        (_frame(target_type="index"), r"row 1: `target_type` = 'index': must be 'asset' or 'portfolio'"),
        (_frame(portfolio_uid=None), r"row 1: `portfolio_uid`: a portfolio row needs portfolio_uid"),
        (_frame(asset_uid=uid("BTC")), r"row 1: `asset_uid` = '.+': a portfolio row has no asset_uid"),
        (
            _frame(target_uid=uid("other")),
            r"row 1: `target_uid` = '.+': must equal the row's asset_uid or portfolio_uid",
        ),
        (
            _frame(weight_notional_exposure=None),
            r"row 1: `exposure`: exactly one of weight_notional_exposure, constant_notional_exposure, "
            r"single_asset_quantity must be set",
        ),
        (_frame(constant_notional_exposure=5.0), r"row 1: `exposure`: exactly one of"),
        (_frame(weight_notional_exposure=float("inf")), r"row 1: `weight_notional_exposure` = 'inf': must be finite"),
        (_frame(position_set_uid=None), r"row 1: `position_set_uid`: is required"),
        (
            _frame().drop("portfolio_uid"),
            r"targets: `portfolio_uid`: column is missing; expansion takes storage-shaped target rows",
        ),
        (
            _frame().with_columns(pl.col("time_index").dt.replace_time_zone(None)),
            r"targets: `time_index` = .*: is a naive datetime column \(naive times are refused\)",
        ),
        (
            _frame().with_columns(pl.lit("0.5").alias("weight_notional_exposure")),
            r"`weight_notional_exposure`: must hold numbers, got a String column",
        ),
    ],
)
def test_bad_target_frames_are_refused(frame: pl.DataFrame, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        expand_targets(frame, history(composition("P", T0, {"A": 1.0})), weights_as_of="position-set")


def test_a_bad_target_frame_reports_every_bad_row() -> None:
    frame = pl.concat(
        [_frame(), _frame(target_type="x", target_uid=uid("x")), _frame(portfolio_uid=None), _frame(asset_uid=uid("B"))]
    )
    with pytest.raises(ValidationError) as info:
        expand_targets(frame, history(composition("P", T0, {"A": 1.0})), weights_as_of="position-set")
    assert [(e.row, e.field) for e in info.value.errors] == [(2, "target_type"), (3, "portfolio_uid"), (4, "asset_uid")]


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (
            history(composition("P", T0, {"A": float("nan")})),
            r"portfolio weights: `weight` = 'NaN': must be finite in portfolio 'P' at 2026-01-01T00:00:00Z",
        ),
        (
            history(composition("P", T0, {"A": 0.5}), composition("P", T0, {"A": 0.5})),
            r"portfolio weights: `asset_uid` = 'A': is listed more than once in portfolio 'P' at 2026-01-01T00:00:00Z",
        ),
        (
            history(composition("P", T0, {"A": 0.5})).with_columns(pl.lit(None, pl.Float64).alias("weight")),
            r"`weight`: is required in portfolio",
        ),
        (history(composition("P", T0, {"A": 0.5})).drop("weight"), r"portfolio weights: `weight`: column is missing"),
        (
            history(composition("P", T0, {"A": 0.5})).with_columns(pl.col("time_index").dt.replace_time_zone(None)),
            r"portfolio weights: `time_index`.*naive",
        ),
    ],
)
def test_bad_weights_in_a_composition_used_are_refused(weights: pl.DataFrame, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        expand_targets(targets(target("s", T1, portfolio="P", wne=1.0)), weights, weights_as_of="position-set")


def test_bad_weights_in_a_composition_not_used_do_not_matter() -> None:
    weights = history(composition("P", T0, {"A": float("nan")}), composition("P", T1, {"A": 1.0}))
    out = expand_targets(targets(target("s", T2, portfolio="P", wne=1.0)), weights, weights_as_of="position-set").rows
    assert out["weight_notional_exposure"].to_list() == [1.0]


def test_the_weights_source_is_called_once_with_the_portfolios_and_the_latest_time_needed() -> None:
    calls: list[tuple[list[str], datetime | None]] = []
    full = history(composition("P", T0, {"A": 1.0}), composition("Q", T0, {"B": 1.0}), composition("R", T0, {"C": 1.0}))

    def source(uids: list[str], until: datetime | None) -> pl.DataFrame:
        calls.append((uids, until))
        return full  # more than asked: other portfolios, later times are ignored

    rows = targets(
        target("a", T1, portfolio="P", wne=1.0),
        target("b", T2, portfolio="P", wne=1.0),
        target("b", T2, portfolio="Q", wne=1.0),
        target("b", T2, asset="Z", wne=1.0),
    )
    out = expand_targets(rows, source, weights_as_of="position-set").rows
    assert calls == [(sorted([uid("P"), uid("Q")]), T2)]
    assert out.height == 4
    expand_targets(rows, source, weights_as_of="2026-01-15T00:00:00Z")
    assert calls[-1] == (sorted([uid("P"), uid("Q")]), datetime(2026, 1, 15, tzinfo=UTC))


def test_a_source_that_does_not_return_a_frame_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must return a polars DataFrame, got list"):
        expand_targets(targets(target("s", T1, portfolio="P", wne=1.0)), lambda uids, until: [], weights_as_of=T1)


# -- against a real database ------------------------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> dict[str, Any]:
    store = Store(tmp_path / "t.duckdb")
    migrate(store, msm_portfolios.MIGRATIONS)
    ids = {name: add_asset(store, name)["uid"] for name in ("BTC", "ETH", "SOL")}
    ids |= {name: add_portfolio(store, name)["uid"] for name in ("CRYPTO-EW", "DEFI")}
    msm_portfolios.save_composition(store, "CRYPTO-EW", T0, {"BTC": 0.25, "ETH": 0.75})
    msm_portfolios.save_composition(store, "CRYPTO-EW", T2, msm_portfolios.equal_weights(["BTC", "ETH", "SOL"]))
    msm_portfolios.save_composition(store, "DEFI", T0, {"SOL": 0.6, "ETH": 0.3})
    return {"store": store, "uid": ids}


def _db_targets(ids: dict[str, str], rows: list[tuple[str, datetime, str, str, float]]) -> pl.DataFrame:
    out = []
    for set_name, at, kind, name, value in rows:
        out.append(
            {
                "position_set_uid": uid(set_name),
                "time_index": at,
                "target_type": kind,
                "target_uid": ids[name],
                "asset_uid": ids[name] if kind == "asset" else None,
                "portfolio_uid": ids[name] if kind == "portfolio" else None,
                "weight_notional_exposure": value,
                "constant_notional_exposure": None,
                "single_asset_quantity": None,
                "unique_identifier": name,
            }
        )
    return pl.DataFrame(out, schema=TARGET_SCHEMA)


def test_expansion_with_the_duckdb_weights_source(db: dict[str, Any]) -> None:
    rows = _db_targets(
        db["uid"],
        [
            ("jan", T1, "asset", "BTC", 0.5),
            ("jan", T1, "portfolio", "CRYPTO-EW", 0.5),
            ("mar", T2, "portfolio", "CRYPTO-EW", 0.6),
            ("mar", T2, "portfolio", "DEFI", 0.4),
        ],
    )
    source = msm_portfolios.duckdb_weights_source(db["store"])
    result = expand_targets(rows, source, weights_as_of="position-set")
    jan = result.rows.filter(pl.col("position_set_uid") == uid("jan"))
    assert jan.select("asset", "weights_time", "weight_notional_exposure").rows() == [
        ("BTC", None, 0.5),
        ("BTC", T0, 0.125),
        ("ETH", T0, 0.375),
    ]
    mar = result.rows.filter(pl.col("position_set_uid") == uid("mar"))
    by_portfolio = {
        name: mar.filter(pl.col("portfolio_uid") == db["uid"][name]).select("asset", "weights_time").rows()
        for name in ("CRYPTO-EW", "DEFI")
    }
    assert by_portfolio == {"CRYPTO-EW": [("BTC", T2), ("ETH", T2), ("SOL", T2)], "DEFI": [("ETH", T0), ("SOL", T0)]}
    assert result.diagnostics.select("portfolio", "weights_time").rows() == [("DEFI", T0)]  # 0.6 + 0.3 = 0.9

    netted = expand_targets(rows, source, weights_as_of=T1, net=True).rows  # January weights for both sets
    assert netted.filter(pl.col("position_set_uid") == uid("jan")).select(
        "asset", "weight_notional_exposure", "n_sources"
    ).rows() == [
        ("BTC", pytest.approx(0.625), 2),
        ("ETH", pytest.approx(0.375), 1),
    ]


def test_missing_composition_from_the_database_names_the_portfolio(db: dict[str, Any]) -> None:
    rows = _db_targets(db["uid"], [("dec", datetime(2025, 12, 1, tzinfo=UTC), "portfolio", "DEFI", 1.0)])
    with pytest.raises(
        MissingCompositionError,
        match=r"portfolio 'DEFI' has no composition at or before 2025-12-01T00:00:00Z; store one with `msm "
        r"portfolios weights DEFI --at TS --file F`",
    ):
        expand_targets(rows, msm_portfolios.duckdb_weights_source(db["store"]), weights_as_of="position-set")


# -- invariants (hypothesis) ------------------------------------------------------------------------------
weights_st = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False, allow_infinity=False)
exposure_st = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def books(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, dict[tuple[str, datetime], dict[str, float]]]:
    assets = [f"A{i}" for i in range(draw(st.integers(1, 6)))]
    portfolios = [f"P{i}" for i in range(draw(st.integers(1, 4)))]
    times = [T0 + timedelta(days=d) for d in sorted(draw(st.sets(st.integers(0, 60), min_size=1, max_size=3)))]
    comps = {}
    for p in portfolios:
        for t in times:
            members = draw(st.lists(st.sampled_from(assets), min_size=1, max_size=len(assets), unique=True))
            comps[(p, t)] = {a: draw(weights_st) for a in members}
    rows = []
    for s in range(draw(st.integers(1, 5))):
        at = times[0] + timedelta(days=draw(st.integers(0, 90)))  # every set has a composition at or before it
        for a in draw(st.lists(st.sampled_from(assets), max_size=len(assets), unique=True)):
            kind = draw(st.sampled_from(["wne", "cne", "qty"]))
            rows.append(target(f"s{s}", at, asset=a, **{kind: draw(exposure_st)}))
        for p in draw(st.lists(st.sampled_from(portfolios), max_size=len(portfolios), unique=True)):
            kind = draw(st.sampled_from(["wne", "cne"]))
            rows.append(target(f"s{s}", at, portfolio=p, **{kind: draw(exposure_st)}))
    frame = targets(*rows)
    return frame, history(*[composition(p, t, w) for (p, t), w in comps.items()]), comps


def _sums(frame: pl.DataFrame, by: str = "position_set_uid") -> dict[str, tuple[float, float, float]]:
    if frame.height == 0:
        return {}
    agg = frame.group_by(by).agg(*[pl.col(c).fill_null(0.0).sum() for c in EXPOSURES])
    return {r[0]: tuple(r[1:]) for r in agg.rows()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_expanded_totals_are_direct_exposure_plus_portfolio_exposure_times_weight_sum(book: Any) -> None:
    frame, weights, comps = book
    out = expand_targets(frame, weights, weights_as_of="position-set").rows
    expected: dict[str, list[float]] = {}
    for r in frame.iter_rows(named=True):
        totals = expected.setdefault(r["position_set_uid"], [0.0, 0.0, 0.0])
        factor = 1.0
        if r["target_type"] == "portfolio":
            when = max(t for (p, t) in comps if p == r["unique_identifier"] and t <= r["time_index"])
            factor = sum(comps[(r["unique_identifier"], when)].values())
        for i, c in enumerate(EXPOSURES):
            totals[i] += (r[c] or 0.0) * factor
    got = _sums(out)
    assert set(got) == set(expected)
    for key, values in expected.items():
        assert got[key] == pytest.approx(tuple(values), rel=1e-9, abs=1e-6)
    assert (
        out.filter(pl.col("source_target_type") == "portfolio")["single_asset_quantity"].null_count()
        == out.filter(pl.col("source_target_type") == "portfolio").height
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.sampled_from(["position-set", "2026-06-01T00:00:00Z"]))
def test_netting_preserves_totals_and_counts(book: Any, weights_as_of: str) -> None:
    frame, weights, _ = book
    plain = expand_targets(frame, weights, weights_as_of=weights_as_of).rows
    netted = expand_targets(frame, weights, weights_as_of=weights_as_of, net=True).rows
    assert netted.select("position_set_uid", "asset_uid").is_duplicated().sum() == 0
    assert int(netted["n_sources"].sum() or 0) == plain.height  # every expanded row feeds exactly one netted row
    for key, values in _sums(plain).items():
        assert _sums(netted)[key] == pytest.approx(values, rel=1e-9, abs=1e-6)
    # Per (set, asset, column): null in the netted row exactly when every source row was null.
    per_cell = plain.group_by("position_set_uid", "asset_uid").agg(*[pl.col(c).count().alias(c) for c in EXPOSURES])
    joined = netted.join(per_cell, on=["position_set_uid", "asset_uid"], suffix="_sources")
    for c in EXPOSURES:
        assert (joined[c].is_null() == (joined[f"{c}_sources"] == 0)).all()
    assert netted.equals(netted.sort("position_set_uid", "asset", "asset_uid"))
