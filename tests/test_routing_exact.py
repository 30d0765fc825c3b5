"""Tests for moe_groupgemm.routing_exact: closed forms, brute-force enumeration and Monte Carlo."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from moe_groupgemm import formula, routing_exact
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.routing_montecarlo import simulate_routing, summarize

# A Monte Carlo mean more than this many standard errors from the exact value fails
# a test. At 4.5 a correct formula fails about once in 150,000 comparisons.
Z_LIMIT = 4.5
# Stated error of the E[max m] estimate relative to the true value, on top of the
# Monte Carlo noise (see routing_exact._expected_max).
MAX_ROWS_RELATIVE_ERROR = 0.003


def enumerate_rank(config: EngineConfig, rank: int = 0) -> dict[str, float]:
    """Exact statistics of one rank by enumerating every routing outcome of a tiny config."""
    experts, physical, tokens = config.num_experts, config.physical_experts, config.tokens_total
    first = rank * config.local_experts
    local = range(first, first + config.local_experts)
    replicas = {logical: [s for s in range(physical) if s % experts == logical] for logical in range(experts)}

    # Outcomes of one token: (probability, rows added per local slot).
    token_outcomes: list[tuple[float, tuple[int, ...]]] = []
    subsets = list(itertools.combinations(range(experts), config.top_k))
    for subset in subsets:
        for choice in itertools.product(*(replicas[logical] for logical in subset)):
            probability = 1.0 / len(subsets) / math.prod(len(replicas[logical]) for logical in subset)
            token_outcomes.append((probability, tuple(int(slot in choice) for slot in local)))

    probabilities = np.array([item[0] for item in token_outcomes])
    rows_per_outcome = np.array([item[1] for item in token_outcomes])
    # Every combination of one outcome per token, as index arrays of shape [outcomes ** tokens].
    grids = np.meshgrid(*([np.arange(len(token_outcomes))] * tokens), indexing="ij")
    indices = [grid.ravel() for grid in grids]
    probability = np.prod([probabilities[index] for index in indices], axis=0)
    rows = np.sum([rows_per_outcome[index] for index in indices], axis=0)
    groups = np.count_nonzero(rows, axis=1)
    expected_groups = float(probability @ groups)
    largest = rows.max(axis=1)
    return {
        "max_at_most": [float(probability @ (largest <= level)) for level in range(3)],
        "expected_num_groups": expected_groups,
        "var_num_groups": float(probability @ groups**2) - expected_groups**2,
        "expected_m_active": float(probability @ rows.sum(axis=1)) / expected_groups,
        "expected_max_m": float(probability @ rows.max(axis=1)),
        "prob_expert_empty": float(probability @ (rows == 0).mean(axis=1)),
    }


TINY_CONFIGS = [
    EngineConfig(batch_size=1, q_len=1, dp_size=2, top_k=2, num_experts=8),
    EngineConfig(batch_size=3, q_len=1, dp_size=1, top_k=2, num_experts=8),
    EngineConfig(batch_size=1, q_len=2, dp_size=2, top_k=2, num_experts=6),
    EngineConfig(batch_size=1, q_len=1, dp_size=2, top_k=2, num_experts=4, redundant_experts=2),
    EngineConfig(batch_size=1, q_len=1, dp_size=3, top_k=2, num_experts=4, redundant_experts=2),
]


@pytest.mark.parametrize("config", TINY_CONFIGS, ids=lambda c: f"E{c.num_experts}K{c.top_k}R{c.redundant_experts}D{c.dp_size}T{c.tokens_total}")
@pytest.mark.parametrize("rank", [0, -1])
def test_stats_match_enumeration(config: EngineConfig, rank: int) -> None:
    rank = rank % config.dp_size
    exact = enumerate_rank(config, rank)
    stats = routing_exact.uniform_routing_stats(config, rank)
    for name in ("expected_num_groups", "var_num_groups", "expected_m_active", "prob_expert_empty"):
        assert getattr(stats, name) == pytest.approx(exact[name], rel=1e-9, abs=1e-12), (
            f"{config=}, {rank=}, {name}: formula {getattr(stats, name)} vs enumeration {exact[name]}"
        )


@pytest.mark.parametrize("config", [c for c in TINY_CONFIGS if c.redundant_experts == 0],
                         ids=lambda c: f"E{c.num_experts}K{c.top_k}D{c.dp_size}T{c.tokens_total}")
def test_max_lower_bound_below_enumeration(config: EngineConfig) -> None:
    exact = enumerate_rank(config)["expected_max_m"]
    stats = routing_exact.uniform_routing_stats(config)
    assert stats.max_m_lower_bound <= exact + 1e-12, f"{config=}: bound {stats.max_m_lower_bound} > exact {exact}"
    assert stats.expected_max_m >= stats.max_m_lower_bound, f"{config=}: estimate below its own lower bound"


@pytest.mark.parametrize("config", [c for c in TINY_CONFIGS if c.redundant_experts == 0],
                         ids=lambda c: f"E{c.num_experts}K{c.top_k}D{c.dp_size}T{c.tokens_total}")
@pytest.mark.parametrize("level", [0, 1, 2])
def test_exact_max_terms_match_enumeration(config: EngineConfig, level: int) -> None:
    expected = enumerate_rank(config)["max_at_most"][level]
    computed = routing_exact._exact_max_at_most(
        config.num_experts, config.top_k, config.local_experts, config.tokens_total, level,
    )
    assert computed == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{config=}, P(max <= {level}): {computed} vs {expected}"


@pytest.mark.parametrize("dp_size", [1, 8, 64])
def test_single_token_step_is_exact(dp_size: int) -> None:
    config = EngineConfig(batch_size=1, q_len=1, dp_size=1)
    stats = routing_exact.uniform_routing_stats(config)
    # One token picks K distinct experts, all local when D = 1.
    assert stats.expected_max_m == 1.0, f"{stats.expected_max_m=}"
    assert stats.expected_num_groups == pytest.approx(config.top_k), f"{stats.expected_num_groups=}"
    config = EngineConfig(batch_size=1, q_len=1, dp_size=dp_size)
    total_rows = sum(item.expected_m * config.local_experts for item in routing_exact.rank_stats(config))
    assert total_rows == pytest.approx(config.tokens_total * config.top_k), f"{dp_size=}: {total_rows=}"


@pytest.mark.parametrize("config", [EngineConfig(4, 2, 8), EngineConfig(16, 3, 1), EngineConfig(256, 4, 64)],
                         ids=lambda c: f"B{c.batch_size}Q{c.q_len}D{c.dp_size}")
def test_sympy_forms_match_numeric(config: EngineConfig) -> None:
    forms = routing_exact.symbolic_closed_forms()
    stats = routing_exact.uniform_routing_stats(config)
    for name in ("expected_num_groups", "var_num_groups", "expected_m", "var_m", "expected_m_active"):
        symbolic = float(routing_exact.evaluate_closed_form(forms[name], config))
        assert getattr(stats, name) == pytest.approx(symbolic, rel=1e-9, abs=1e-12), (
            f"{config=}, {name}: numeric {getattr(stats, name)} vs SymPy {symbolic}"
        )


@pytest.mark.parametrize("rank", [-1, 8, 2.0])
def test_stats_reject_bad_rank(rank: object) -> None:
    with pytest.raises(ParameterError) as caught:
        routing_exact.uniform_routing_stats(EngineConfig(1, 1, 8), rank)  # type: ignore[arg-type]
    assert caught.value.name == "rank", f"{caught.value}"


def test_sympy_pair_covariance_is_negative() -> None:
    forms = routing_exact.symbolic_closed_forms()
    value = routing_exact.evaluate_closed_form(forms["pair_covariance"], EngineConfig(1, 1, 1))
    assert value < 0, f"covariance of two experts' hits within one token should be negative, got {value}"


def test_article_grid_frame() -> None:
    frame = routing_exact.comparison_frame()
    assert len(frame) == 4 * 9 * 7, f"{len(frame)=}"
    assert np.isfinite(frame.select_dtypes("number")).all().all(), "non-finite value in the comparison frame"
    # Eq. (6) bounds the mean from above, so its relative error is never negative.
    assert (frame["rel_err_eq6_num_groups"] >= -1e-12).all(), frame.loc[frame["rel_err_eq6_num_groups"] < 0]
    assert (frame["exact_num_groups"] <= frame["local_experts"] + 1e-9).all()
    assert (frame["alpha"] >= 1.0).all(), frame.loc[frame["alpha"] < 1.0, ["batch_size", "q_len", "dp_size", "alpha"]]


def test_comparison_frame_uses_formula() -> None:
    config = EngineConfig(8, 3, 16)
    row = routing_exact.comparison_frame([config]).iloc[0]
    assert row["eq6_num_groups"] == formula.article_num_groups(config)
    assert row["eq7_m"] == formula.article_rows_per_group(config)
    stats = routing_exact.uniform_routing_stats(config)
    assert row["rel_err_eq7_m_active"] == pytest.approx(row["eq7_m"] / stats.expected_m_active - 1.0)


MONTE_CARLO_CASES = [
    (EngineConfig(2, 1, 1), 20_000),
    (EngineConfig(4, 1, 1), 20_000),
    (EngineConfig(8, 1, 1), 8_000),
    (EngineConfig(32, 1, 1), 2_000),
    (EngineConfig(4, 2, 8), 6_000),
    (EngineConfig(1, 1, 64), 6_000),
    (EngineConfig(32, 4, 8), 200),
    (EngineConfig(16, 2, 64, redundant_experts=64), 300),
]


@pytest.mark.parametrize(("config", "steps"), MONTE_CARLO_CASES,
                         ids=lambda value: f"B{value.batch_size}Q{value.q_len}D{value.dp_size}R{value.redundant_experts}"
                         if isinstance(value, EngineConfig) else str(value))
def test_stats_match_monte_carlo(config: EngineConfig, steps: int) -> None:
    sample = simulate_routing(config, "uniform", steps=steps, seed=11)
    measured = summarize(sample)
    stats = routing_exact.rank_average_stats(config)
    for exact, mean, error, name in (
        (stats.expected_num_groups, measured.mean_num_groups, measured.se_num_groups, "num_groups"),
        (stats.expected_m_active, measured.mean_m_active, measured.se_m_active, "m_active"),
    ):
        tolerance = Z_LIMIT * error + 1e-9
        assert abs(exact - mean) <= tolerance, f"{config=}, {name}: exact {exact} vs MC {mean} ± {error}"
    tolerance = Z_LIMIT * measured.se_max_m + MAX_ROWS_RELATIVE_ERROR * measured.mean_max_m
    assert abs(stats.expected_max_m - measured.mean_max_m) <= tolerance, (
        f"{config=}: E[max m] estimate {stats.expected_max_m} vs MC {measured.mean_max_m} ± {measured.se_max_m}"
    )
    if config.redundant_experts == 0:
        assert stats.max_m_lower_bound <= measured.mean_max_m + Z_LIMIT * measured.se_max_m, (
            f"{config=}: lower bound {stats.max_m_lower_bound} above MC {measured.mean_max_m} ± {measured.se_max_m}"
        )
