"""The one rule engine (``msm.rules``): rules declared as data, run vectorized, violations as data.

The engine is checked on its own (every violation returned, per-row messages and values, windows
over the whole frame, nulls, row numbers, entity names); the shared expressions and the rule
vocabulary by their exact messages; and the declared rule sets of targets, compositions and the
expansion by their shape (every rule named, each name once per field).
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import polars as pl
import pytest

from msm import rules
from msm.errors import NO_VALUE, RowError, ValidationError
from msm.expansion import COMPOSITION_ROW_RULES, TARGET_ROW_RULES
from msm.rules import (
    EMPTY_TARGET_SET,
    ROW,
    UUID_HINT,
    VIOLATION_SCHEMA,
    Rule,
    clean_text,
    empty_target_set,
    enforce,
    find_violations,
    is_uuid,
    is_uuid_text,
    raise_violations,
    uid_text,
    violation_errors,
)
from msm.validation import metadata_rules, target_rules
from msm_portfolios.compositions import composition_rules

ROOT = Path(__file__).resolve().parents[1]
UID = "123e4567-e89b-42d3-a456-426614174000"

POSITIVE = Rule("book", "w", "w_positive", "must be positive", pl.col("w") <= 0)
FINITE = rules.finite("book", "w")
NAMED = Rule(
    "book",
    "name",
    "name_short",
    pl.lit("is ") + pl.col("name").str.len_chars().cast(pl.String) + pl.lit(" long"),
    pl.col("name").str.len_chars() > 3,
)


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"w": [1.0, -1.0, float("inf"), 0.0, None], "name": ["ab", "abcd", "x", "toolong", None]})


# -- the engine ----------------------------------------------------------------------------------------------------
def test_every_violation_of_every_rule_is_returned_as_data() -> None:
    found = find_violations(_frame(), [POSITIVE, FINITE, NAMED])
    assert found.schema == pl.Schema(VIOLATION_SCHEMA)
    assert found.rows() == [
        (2, "book", "w", "-1.0", "w_positive", "must be positive"),
        (2, "book", "name", "abcd", "name_short", "is 4 long"),
        (3, "book", "w", "inf", "w_finite", rules.FINITE),
        (4, "book", "w", "0.0", "w_positive", "must be positive"),
        (4, "book", "name", "toolong", "name_short", "is 7 long"),
    ]


def test_a_null_mask_is_not_a_violation_and_no_violation_is_an_empty_frame() -> None:
    frame = pl.DataFrame({"w": [None, 2.0]}, schema={"w": pl.Float64})
    found = find_violations(frame, [POSITIVE, FINITE])
    assert found.height == 0 and found.schema == pl.Schema(VIOLATION_SCHEMA)
    assert enforce(frame, [POSITIVE]) is None
    assert find_violations(frame.clear(), [POSITIVE]).height == 0
    assert find_violations(frame, []).height == 0


def test_row_numbers_come_from_the_row_column_and_the_entity_can_be_renamed() -> None:
    frame = _frame().with_columns(pl.Series(ROW, [10, 20, 30, 40, 50]))
    found = find_violations(frame, [FINITE], entity="targets.csv")
    assert found.select("row", "entity").rows() == [(30, "targets.csv")]
    other = _frame().with_columns(pl.Series("line", [7, 8, 9, 10, 11]))
    assert find_violations(other, [FINITE], row="line")["row"].to_list() == [9]


def test_rule_expressions_see_the_whole_frame_before_filtering() -> None:
    rule = rules.unique_within(
        "book", "name", key=["name"], label=pl.lit("name '") + pl.col("name") + pl.lit("'"), scope="book"
    )
    frame = pl.DataFrame({"name": ["a", "b", "a", None, None, "a"]})
    found = find_violations(frame, [rule])
    assert found.select("row", "message").rows() == [
        (3, "duplicate name 'a' in one book; first given at row 1"),
        (6, "duplicate name 'a' in one book; first given at row 1"),
    ]


def test_a_rule_shows_its_value_expression_and_none_means_no_value() -> None:
    shown = Rule("book", "w", "w_positive", "must be positive", pl.col("w") <= 0, pl.lit("given"))
    hidden = Rule("book", "total", "total", "no total", pl.col("w") <= 0, pl.lit(None, pl.String))
    found = find_violations(pl.DataFrame({"w": [-1.0]}), [shown, hidden])
    assert found.select("value").to_series().to_list() == ["given", None]
    errors = violation_errors(found)
    assert errors == [
        RowError("book", 1, "w", "given", "must be positive", "w_positive"),
        RowError("book", 1, "total", NO_VALUE, "no total", "total"),
    ]
    assert [str(e) for e in errors] == ["book row 1: `w` = 'given': must be positive", "book row 1: `total`: no total"]


def test_raise_violations_lists_every_row_not_the_first() -> None:
    frame = pl.DataFrame({"w": [-float(i) for i in range(1, 61)]})
    with pytest.raises(ValidationError) as info:
        enforce(frame, [POSITIVE], summary="the book")
    assert len(info.value.errors) == 60
    assert [e.row for e in info.value.errors] == list(range(1, 61))
    message = str(info.value)
    assert message.startswith("the book: 60 problems found; nothing was stored:\n  book row 1: `w` = '-1.0'")
    assert message.endswith("... and 10 more (all are on ValidationError.errors)")
    raise_violations(find_violations(frame, [FINITE]))  # none: returns


def test_the_engine_is_vectorized_over_a_large_frame() -> None:
    n = 300_000
    frame = pl.DataFrame(
        {"w": pl.int_range(0, n, eager=True).cast(pl.Float64) - 5, "name": pl.repeat("ab", n, eager=True)}
    )
    started = time.perf_counter()
    found = find_violations(frame, [POSITIVE, FINITE, NAMED])
    elapsed = time.perf_counter() - started
    assert found["row"].to_list() == [1, 2, 3, 4, 5, 6]
    assert elapsed < 5.0  # a per-row Python loop over 300k rows and three rules would not get close


# -- the shared expressions ------------------------------------------------------------------------------------------
def test_clean_text_strips_and_reads_blank_as_null() -> None:
    frame = pl.DataFrame({"a": ["  x ", " ", "", None, "y"], "n": [1, 2, 3, 4, 5]})
    assert frame.select(clean_text("a"))["a"].to_list() == ["x", None, None, None, "y"]
    assert frame.select(clean_text(pl.col("n")))["n"].to_list() == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize(
    ("text", "canonical", "any_case"),
    [
        (UID, True, True),
        (UID.upper(), False, True),
        (f"  {UID} ", False, True),
        ("BTC", False, False),
        (UID.replace("-", ""), False, False),
        ("", False, False),
    ],
)
def test_uuid_text_checks(text: str, canonical: bool, any_case: bool) -> None:
    frame = pl.DataFrame({"u": [text]})
    assert frame.select(is_uuid("u")).item() is canonical
    assert frame.select(is_uuid(uid_text("u"))).item() is any_case
    assert is_uuid_text(text) is any_case
    assert is_uuid_text(None) is False


# -- the rule vocabulary: one wording per rule ---------------------------------------------------------------------
VOCABULARY = [
    pytest.param(rules.required("x", "w"), {"w": [None]}, "is required", id="required"),
    pytest.param(rules.number("x", "w", pl.col("raw")), {"w": [None], "raw": ["abc"]}, "must be a number", id="number"),
    pytest.param(
        rules.finite("x", "w"), {"w": [float("nan")]}, "must be finite (NaN and infinity are refused)", id="finite"
    ),
    pytest.param(rules.well_formed_uuid("x", "asset_uid"), {"asset_uid": ["nope"]}, UUID_HINT, id="uuid"),
    pytest.param(
        rules.known_uid("x", "asset", "asset_uid", well_formed=pl.lit(True), found=pl.col("found")),
        {"asset_uid": [UID], "found": [None]},
        "no asset has this uid",
        id="known-uid",
    ),
    pytest.param(
        rules.known_identifier("x", "portfolio", "portfolio", resolved=pl.col("resolved")),
        {"portfolio": ["P"], "resolved": [None]},
        "no portfolio has this unique_identifier; add it first (msm portfolios add ID)",
        id="known-identifier",
    ),
    pytest.param(
        rules.names_agree("x", "asset", uid="asset_uid", identifier="asset", resolved=pl.col("resolved")),
        {"asset_uid": [UID], "asset": ["BTC"], "resolved": ["0b8e8a4c-6f43-4c43-9a52-3a3f8e1f0001"]},
        "names a different asset than `asset` = 'BTC' (0b8e8a4c-6f43-4c43-9a52-3a3f8e1f0001); "
        "give one or make them agree",
        id="names-agree",
    ),
]


@pytest.mark.parametrize(("rule", "columns", "message"), VOCABULARY)
def test_each_shared_rule_has_one_wording(rule: Rule, columns: dict[str, list[object]], message: str) -> None:
    found = find_violations(pl.DataFrame(columns), [rule])
    assert found["message"].to_list() == [message]
    assert found["rule"].to_list() == [rule.name]


def test_the_empty_target_set_is_one_error() -> None:
    (error,) = empty_target_set("draft").errors
    assert (error.entity, error.row, error.field, error.rule, error.code) == (
        "draft",
        None,
        "rows",
        EMPTY_TARGET_SET,
        "target_set_not_empty",
    )
    assert str(empty_target_set()) == "1 problem found; nothing was stored:\n  target set: `rows`: " + EMPTY_TARGET_SET


def test_the_empty_target_set_message_is_written_once() -> None:
    places = [
        path.relative_to(ROOT)
        for package in ("msm", "msm_portfolios", "msm_cli", "msm_app", "msm_spark", "app_pages")
        for path in (ROOT / package).rglob("*.py")
        if "the target set is empty" in path.read_text(encoding="utf-8")
    ]
    assert places == [Path("msm/rules.py")]


# -- the declared rule sets ------------------------------------------------------------------------------------------
RULE_SETS = {
    "targets": target_rules(),
    "metadata": metadata_rules("target set"),
    "compositions": composition_rules(),
    "expansion targets": list(TARGET_ROW_RULES),
    "expansion compositions": list(COMPOSITION_ROW_RULES),
}


@pytest.mark.parametrize("name", list(RULE_SETS))
def test_every_declared_rule_is_data_with_a_name(name: str) -> None:
    declared = RULE_SETS[name]
    assert declared and all(isinstance(r, Rule) for r in declared)
    for rule in declared:
        assert rule.entity and rule.field and re.fullmatch(r"[a-z_]+", rule.name), rule
        assert isinstance(rule.bad, pl.Expr) and isinstance(rule.message, (str, pl.Expr))


def test_target_and_expansion_rules_share_their_declarations() -> None:
    """The rules both paths enforce come from one declaration: the same name and the same words."""
    by_name = {r.name: r for r in target_rules()}
    expansion = {r.name: r for r in TARGET_ROW_RULES}
    for name in ("portfolio_without_quantity", "target_type_allowed", "weight_notional_exposure_finite"):
        assert isinstance(by_name[name].message, str)
        assert expansion[name].message == by_name[name].message
        assert expansion[name].field == by_name[name].field


def test_no_package_imports_another_packages_private_name() -> None:
    offending = []
    for package in ("msm", "msm_portfolios", "msm_cli", "msm_spark", "msm_app", "app_pages"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] != package:
                    offending += [
                        f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_")
                    ]
    assert offending == []
