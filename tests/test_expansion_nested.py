"""Look-through of nested portfolios (design section 12): recursion to assets, path, depth, product weights.

Compositions come as frames whose rows name an asset or a portfolio (``constituent_type``), or from a
real DuckDB file through ``msm_portfolios.duckdb_weights_source``; expected rows are written by hand.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msm
import msm_portfolios
from msm.errors import ValidationError
from msm.expansion import EXPANSION_COLUMNS, MissingCompositionError, expand_targets
from tests.test_expansion import T0, T1, T2, target, targets, uid

W = "weight_notional_exposure"


def nested(portfolio: str, at: datetime, weights: dict[str, float]) -> list[dict[str, Any]]:
    """A composition whose constituents named ``@X`` are portfolios, the others assets."""
    rows = []
    for name, weight in weights.items():
        is_portfolio = name.startswith("@")
        ident = name.removeprefix("@")
        rows.append(
            {
                "time_index": at,
                "portfolio_uid": uid(portfolio),
                "portfolio": portfolio,
                "constituent_type": "portfolio" if is_portfolio else "asset",
                "asset_uid": None if is_portfolio else uid(ident),
                "asset": None if is_portfolio else ident,
                "constituent_portfolio_uid": uid(ident) if is_portfolio else None,
                "constituent_portfolio": ident if is_portfolio else None,
                "weight": weight,
            }
        )
    return rows


def book(*compositions: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        [row for comp in compositions for row in comp],
        schema={
            "time_index": pl.Datetime("us", "UTC"),
            "portfolio_uid": pl.String,
            "portfolio": pl.String,
            "constituent_type": pl.String,
            "asset_uid": pl.String,
            "asset": pl.String,
            "constituent_portfolio_uid": pl.String,
            "constituent_portfolio": pl.String,
            "weight": pl.Float64,
        },
    )


BALANCED = book(
    nested("BAL", T0, {"@EQ": 0.6, "@BND": 0.4}),
    nested("EQ", T0, {"A": 0.5, "B": 0.5}),
    nested("BND", T0, {"C": 1.0}),
)


def _picked(rows: pl.DataFrame) -> list[tuple[Any, ...]]:
    return rows.select("portfolio_uid", "asset", "portfolio_weight", W, "path", "depth").rows()


def test_a_two_level_portfolio_expands_to_assets_with_path_depth_and_product_weights() -> None:
    rows = targets(target("s", T1, asset="X", wne=0.2), target("s", T1, portfolio="BAL", wne=0.8))
    out = expand_targets(rows, BALANCED, weights_as_of="position-set").rows
    assert out.columns == list(EXPANSION_COLUMNS)
    assert _picked(out) == [
        (None, "X", None, 0.2, None, 0),  # a direct asset: no path, depth 0
        (uid("BAL"), "A", pytest.approx(0.3), pytest.approx(0.24), "BAL > EQ", 2),
        (uid("BAL"), "B", pytest.approx(0.3), pytest.approx(0.24), "BAL > EQ", 2),
        (uid("BAL"), "C", pytest.approx(0.4), pytest.approx(0.32), "BAL > BND", 2),
    ]
    assert out["weights_time"].drop_nulls().unique().to_list() == [T0]  # the target's portfolio's composition


def test_direct_assets_of_a_nested_composition_are_depth_one() -> None:
    weights = book(nested("FOF", T0, {"@EQ": 0.5, "D": 0.5}), nested("EQ", T0, {"A": 1.0}))
    out = expand_targets(targets(target("s", T1, portfolio="FOF", wne=1.0)), weights, weights_as_of="now").rows
    assert _picked(out) == [(uid("FOF"), "A", 0.5, 0.5, "FOF > EQ", 2), (uid("FOF"), "D", 0.5, 0.5, "FOF", 1)]


def test_three_levels_multiply_along_the_path() -> None:
    weights = book(
        nested("TOP", T0, {"@MID": 0.5, "Z": 0.5}),
        nested("MID", T0, {"@LOW": 0.5, "Y": 0.5}),
        nested("LOW", T0, {"X": 1.0}),
    )
    out = expand_targets(targets(target("s", T1, portfolio="TOP", cne=1000.0)), weights, weights_as_of="now").rows
    got = {
        r["asset"]: (r["portfolio_weight"], r["constant_notional_exposure"], r["path"], r["depth"])
        for r in out.to_dicts()
    }
    assert got == {
        "X": (0.25, 250.0, "TOP > MID > LOW", 3),
        "Y": (0.25, 250.0, "TOP > MID", 2),
        "Z": (0.5, 500.0, "TOP", 1),
    }


@pytest.mark.parametrize(
    ("weights_as_of", "expected"),
    [
        # each level uses its own composition at the weights time: BAL's T0 one, EQ's T2 one
        (T2, {"A": 0.6, "C": 0.4}),
        (T1, {"A": 0.3, "B": 0.3, "C": 0.4}),
        ("now", {"A": 0.6, "C": 0.4}),
    ],
)
def test_each_level_uses_its_own_composition_at_the_weights_time(
    weights_as_of: Any, expected: dict[str, float]
) -> None:
    weights = pl.concat([BALANCED, book(nested("EQ", T2, {"A": 1.0}))])
    out = expand_targets(targets(target("s", T1, portfolio="BAL", wne=1.0)), weights, weights_as_of=weights_as_of)
    assert {r["asset"]: r["portfolio_weight"] for r in out.rows.to_dicts()} == pytest.approx(expected)
    assert out.rows["weights_time"].unique().to_list() == [T0]


def test_position_set_mode_picks_each_sets_own_time_at_every_level() -> None:
    weights = pl.concat([BALANCED, book(nested("EQ", T2, {"A": 1.0}))])
    late = datetime(2026, 4, 1, tzinfo=T2.tzinfo)
    rows = targets(target("early", T1, portfolio="BAL", wne=1.0), target("late", late, portfolio="BAL", wne=1.0))
    out = expand_targets(rows, weights, weights_as_of="position-set").rows
    by_set = {
        s: dict(zip(g["asset"], g["portfolio_weight"], strict=True))
        for (s,), g in out.group_by("position_set_uid", maintain_order=True)
    }
    assert by_set[uid("early")] == pytest.approx({"A": 0.3, "B": 0.3, "C": 0.4})
    assert by_set[uid("late")] == pytest.approx({"A": 0.6, "C": 0.4})


def test_net_sums_across_routes() -> None:
    weights = book(nested("FOF", T0, {"@EQ": 0.5, "A": 0.25, "@BND": 0.25}), nested("EQ", T0, {"A": 1.0}))
    weights = pl.concat([weights, book(nested("BND", T0, {"A": 0.5, "C": 0.5}))])
    rows = targets(target("s", T1, asset="A", wne=0.1), target("s", T1, portfolio="FOF", wne=0.9))
    plain = expand_targets(rows, weights, weights_as_of="now").rows
    assert plain.filter(pl.col("asset") == "A")["path"].to_list() == [None, "FOF", "FOF > BND", "FOF > EQ"]
    net = expand_targets(rows, weights, weights_as_of="now", net=True).rows
    got = {r["asset"]: (r[W], r["n_sources"]) for r in net.to_dicts()}
    assert got == {"A": (pytest.approx(0.1 + 0.9 * (0.5 + 0.25 + 0.125)), 4), "C": (pytest.approx(0.9 * 0.125), 1)}


def test_a_missing_nested_composition_names_the_portfolio_the_path_and_the_time() -> None:
    weights = book(nested("BAL", T0, {"@EQ": 0.6, "@BND": 0.4}), nested("BND", T0, {"C": 1.0}))
    weights = pl.concat([weights, book(nested("EQ", T2, {"A": 1.0}))])  # EQ only from T2 on
    rows = targets(target("s", T1, portfolio="BAL", wne=1.0))
    with pytest.raises(MissingCompositionError) as info:
        expand_targets(rows, weights, weights_as_of=T1)
    assert str(info.value).startswith(
        "portfolio 'EQ' (nested in BAL) has no composition at or before 2026-02-01T00:00:00Z; store one with "
        "`msm portfolios weights EQ --at TS --file F`"
    )
    assert info.value.missing == [("EQ", T1)] and info.value.paths == ["BAL"]


def test_a_loop_in_a_given_frame_is_refused_not_followed_forever() -> None:
    weights = book(nested("P", T0, {"@Q": 1.0}), nested("Q", T0, {"@P": 1.0}))
    with pytest.raises(ValidationError, match=r"'P > Q > P > Q > P > Q > P > Q > P'.*more than 8 levels deep"):
        expand_targets(targets(target("s", T1, portfolio="P", wne=1.0)), weights, weights_as_of="now")


def test_diagnostics_report_nested_compositions_that_do_not_sum_to_one() -> None:
    weights = book(nested("BAL", T0, {"@EQ": 1.0}), nested("EQ", T0, {"A": 0.5}))
    out = expand_targets(targets(target("s", T1, portfolio="BAL", wne=1.0)), weights, weights_as_of="now")
    assert out.diagnostics.select("portfolio", "weight_sum").rows() == [("EQ", 0.5)]


def _flattened(weights: pl.DataFrame) -> pl.DataFrame:
    """The leaves of every composition at T0, multiplied out by hand (a test oracle, loops allowed here)."""
    comps: dict[str, list[dict[str, Any]]] = {}
    for row in weights.to_dicts():
        comps.setdefault(row["portfolio"], []).append(row)

    def leaves(name: str, scale: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for row in comps[name]:
            if row["constituent_type"] == "asset":
                out[row["asset"]] = out.get(row["asset"], 0.0) + scale * row["weight"]
            else:
                for asset, w in leaves(row["constituent_portfolio"], scale * row["weight"]).items():
                    out[asset] = out.get(asset, 0.0) + w
        return out

    return book(*[nested(p, T0, leaves(p, 1.0)) for p in comps])


@st.composite
def _nested_books(draw: st.DrawFn) -> pl.DataFrame:
    """Portfolios P0..Pn, each holding some of A..D and some portfolios with a higher number (no loop)."""
    n = draw(st.integers(1, 5))
    weight = st.floats(0.01, 2.0, allow_nan=False)
    comps = []
    for i in range(n):
        assets = draw(st.lists(st.sampled_from("ABCD"), min_size=1 if i == n - 1 else 0, unique=True))
        subs = draw(st.lists(st.integers(i + 1, n - 1), unique=True)) if i < n - 1 else []
        parts = {a: draw(weight) for a in assets} | {f"@P{j}": draw(weight) for j in subs}
        comps.append(nested(f"P{i}", T0, parts or {"A": 1.0}))
    return book(*comps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_nested_books())
def test_nested_expansion_equals_expansion_against_the_flattened_weights(weights: pl.DataFrame) -> None:
    roots = weights["portfolio"].unique().sort().to_list()
    rows = targets(*[target("s", T1, portfolio=p, wne=1.0 / len(roots)) for p in roots])
    net = expand_targets(rows, weights, weights_as_of="now", net=True).rows
    flat = expand_targets(rows, _flattened(weights), weights_as_of="now", net=True).rows
    assert net["asset"].to_list() == flat["asset"].to_list()
    assert net[W].to_list() == pytest.approx(flat[W].to_list())


def test_the_duckdb_weights_source_follows_nesting(tmp_path: Path) -> None:
    store = msm_portfolios.init_store(tmp_path / "n.duckdb")
    for a in ("A", "B", "C"):
        msm.add_asset(store, a)
    for p in ("BAL", "EQ", "BND"):
        msm.add_portfolio(store, p)
    msm_portfolios.save_composition(store, "EQ", T0, {"A": 0.5, "B": 0.5})
    msm_portfolios.save_composition(store, "BND", T0, {"C": 1.0})
    msm_portfolios.save_composition(
        store, "BAL", T0, [{"portfolio": "EQ", "weight": 0.6}, {"portfolio": "BND", "weight": 0.4}]
    )
    bal = msm.get_portfolio(store, "BAL")["uid"]
    rows = pl.DataFrame(
        [
            {
                "position_set_uid": uid("s"),
                "time_index": T1,
                "target_type": "portfolio",
                "target_uid": str(bal),
                "asset_uid": None,
                "portfolio_uid": str(bal),
                W: 1.0,
                "constant_notional_exposure": None,
                "single_asset_quantity": None,
                "unique_identifier": "BAL",
            }
        ]
    )
    out = expand_targets(rows, msm_portfolios.duckdb_weights_source(store), weights_as_of="position-set").rows
    assert out.select("asset", "portfolio_weight", "path", "depth").rows() == [
        ("A", pytest.approx(0.3), "BAL > EQ", 2),
        ("B", pytest.approx(0.3), "BAL > EQ", 2),
        ("C", pytest.approx(0.4), "BAL > BND", 2),
    ]


def test_drift_of_a_two_level_target_equals_drift_against_the_flattened_weights(tmp_path: Path) -> None:
    store = msm_portfolios.init_store(tmp_path / "d.duckdb")
    day = "2026-06-01T00:00:00Z"
    prices = {"A": 100.0, "B": 50.0, "C": 10.0}
    for a in prices:
        msm.add_asset(store, a)
    msm.add_asset(store, "USD", asset_type="cash", currency="USD")
    for p in ("BAL", "EQ", "BND", "FLAT"):
        msm.add_portfolio(store, p)
    msm_portfolios.save_composition(store, "EQ", T0, {"A": 0.5, "B": 0.5})
    msm_portfolios.save_composition(store, "BND", T0, {"C": 1.0})
    msm_portfolios.save_composition(
        store, "BAL", T0, [{"portfolio": "EQ", "weight": 0.6}, {"portfolio": "BND", "weight": 0.4}]
    )
    msm_portfolios.save_composition(store, "FLAT", T0, {"A": 0.3, "B": 0.3, "C": 0.4})  # BAL multiplied out
    msm.add_allocation_model(store, "m")
    for account, portfolio in (("nested", "BAL"), ("flat", "FLAT")):
        msm.add_account(store, account, account_name=account)
        msm.add_allocation(store, f"{account}-main", account=account, model="m")
        msm.save_snapshot(store, account, T1, [{"portfolio": portfolio, W: 0.9}, {"asset": "A", W: 0.1}])
    msm.import_prices(store, [{"asset": a, "time": day, "price": p, "currency": "USD"} for a, p in prices.items()])
    held = [("A", 10.0), ("B", 30.0), ("C", 50.0), ("USD", 500.0)]
    msm.import_holdings(
        store, [{"account": a, "asset": s, "quantity": q} for a in ("nested", "flat") for s, q in held], at=day
    )
    drift = msm.account_drift(store, weights=msm_portfolios.duckdb_weights_source(store), as_of=day)
    rows = drift.rows()
    nested_rows, flat_rows = (rows.filter(pl.col("account") == a).drop("account") for a in ("nested", "flat"))
    assert nested_rows.height == 4
    assert nested_rows.to_dicts() == flat_rows.to_dicts()
