"""Tests for the symbolic model in moe_groupgemm.derivation."""

from __future__ import annotations

from fractions import Fraction

import pytest
from sympy import Integer, Min, Rational, ceiling

from moe_groupgemm import derivation, formula
from moe_groupgemm.derivation import B, D, E, E_node, K, Q, alpha
from moe_groupgemm.engine_config import DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K, EngineConfig
from moe_groupgemm.errors import ParameterError

# Grid for comparing the symbolic model with formula.py: B powers of two up to
# 256, Q = 1..4, and the divisors of 256 up to 64 for D.
GRID_B = [2**power for power in range(9)]
GRID_Q = [1, 2, 3, 4]
GRID_D = [1, 2, 4, 8, 16, 32, 64]
SKEW = Fraction(3, 2)


def grid_configs() -> list[EngineConfig]:
    return [EngineConfig(b, q, d) for b in GRID_B for q in GRID_Q for d in GRID_D]


def test_model_identities_hold() -> None:
    results = derivation.check_identities()
    assert len(results) >= 10, f"expected the full identity list, got {[r.name for r in results]}"
    for result in results:
        assert result.proved, f"{result.name}: {result.lhs} != {result.rhs}"


@pytest.mark.parametrize(
    ("name", "lhs", "rhs"),
    [
        ("E_node not replaced by E/D", derivation.num_groups_global().rhs, Min(E, B * Q * K)),
        ("eq. (6) with 16 in place of 32", derivation.num_groups_dsv3().rhs, 8 * Min(Rational(16) / D, B * Q)),
        ("eq. (7) with 16 in place of 32", derivation.rows_per_group_dsv3().rhs, ceiling(B * Q * D / 16)),
        ("eq. (5) without D", derivation.mean_rows_per_expert_global().rhs, B * Q * K / E),
        ("ceil dropped from eq. (7)", derivation.rows_per_group_dsv3().rhs, B * Q * D / 32),
    ],
)
def test_checker_flags_wrong_identity(name: str, lhs, rhs) -> None:
    [result] = derivation.check_identities([(name, lhs, rhs)])
    assert not result.proved, f"{name}: checker accepted {lhs} == {rhs}"


def test_relations_have_book_labels() -> None:
    labels = {relation.label for relation in derivation.relations()}
    expected = {
        "eq-t-node", "eq-t-expert-node", "eq-m-max", "eq-num-groups-bound", "eq-mean-m",
        "eq-num-groups-dsv3", "eq-m-dsv3", "eq-mean-m-global", "eq-num-groups-global",
    }
    assert expected <= labels, f"missing labels: {expected - labels}"


@pytest.mark.parametrize(
    ("relation", "reference"),
    [
        (derivation.tokens_per_rank, formula.tokens_per_rank),
        (derivation.expert_rows_per_rank, formula.expert_rows_per_rank),
        (derivation.max_rows_bound, lambda config: formula.max_rows_bound(config, SKEW)),
        (derivation.num_groups_bound, formula.num_groups_bound),
        (derivation.mean_rows_per_expert, formula.mean_rows_per_expert),
        (derivation.num_groups_dsv3, formula.article_num_groups),
        (derivation.rows_per_group_dsv3, formula.article_rows_per_group),
    ],
    ids=lambda value: getattr(value, "__name__", "reference"),
)
def test_sympy_matches_formula_on_grid(relation, reference) -> None:
    rhs = relation().rhs.subs(E_node, E / D)
    evaluate = derivation.lambdify_exact((B, Q, D, K, E, alpha), rhs)
    for config in grid_configs():
        symbolic = evaluate(config.batch_size, config.q_len, config.dp_size, config.top_k, config.num_experts, SKEW)
        expected = reference(config)
        assert symbolic == expected, f"{relation.__name__} at {config}: sympy {symbolic} != formula {expected}"


def test_eq6_substitutes_given_constants() -> None:
    relation = derivation.num_groups_dsv3(num_experts=64, top_k=4)
    assert relation.rhs == Min(Integer(64) / D, 4 * B * Q), f"rhs is {relation.rhs}"
    assert relation.printed == 4 * Min(Integer(16) / D, B * Q), f"printed is {relation.printed}"
    assert not relation.rhs.free_symbols & {E, K}, f"E or K left in {relation.rhs}"


def test_eq7_substitutes_given_constants() -> None:
    relation = derivation.rows_per_group_dsv3(num_experts=64, top_k=4)
    assert relation.rhs == ceiling(B * Q * D / 16), f"rhs is {relation.rhs}"
    assert not relation.rhs.free_symbols & {E, K}, f"E or K left in {relation.rhs}"


def test_eq6_eq7_default_to_deepseek_v3() -> None:
    assert derivation.num_groups_dsv3() == derivation.num_groups_dsv3(DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K)
    assert derivation.rows_per_group_dsv3() == derivation.rows_per_group_dsv3(DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K)
    values = {E: DEEPSEEK_V3_NUM_EXPERTS, K: DEEPSEEK_V3_TOP_K}
    restated = derivation.num_groups_global().rhs.subs(values)
    assert derivation.num_groups_dsv3().rhs == restated, f"{derivation.num_groups_dsv3().rhs} != {restated}"


def test_lambdify_exact_keeps_fractions() -> None:
    evaluate = derivation.lambdify_exact((B, Q, D), B * Q * D / 3)
    assert evaluate(1, 1, 1) == Fraction(1, 3), f"got {evaluate(1, 1, 1)!r}"
    assert evaluate(1, 1, 3) == 1 and isinstance(evaluate(1, 1, 3), int), f"got {evaluate(1, 1, 3)!r}"


def test_article_shape_rows_can_exceed_routed() -> None:
    shape = derivation.evaluate_article_shape(batch_size=5, q_len=1, dp_size=8)
    assert shape.num_groups == 32, f"{shape}"
    assert shape.rows_per_group == 2, f"{shape}"
    assert shape.rows_article == 64, f"{shape}"
    assert shape.rows_routed == 40, f"{shape}"


def test_article_shape_rejects_bad_dp_size() -> None:
    with pytest.raises(ParameterError, match="dp_size") as excinfo:
        derivation.evaluate_article_shape(batch_size=1, q_len=1, dp_size=3)
    assert excinfo.value.value == 3, f"{excinfo.value}"


def test_relation_rejects_unknown_operator() -> None:
    with pytest.raises(ValueError, match="operator"):
        derivation.Relation("eq-x", derivation.T_node, "<", B * Q)
