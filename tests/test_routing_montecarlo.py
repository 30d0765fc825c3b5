"""Tests for moe_groupgemm.routing_montecarlo: invariants of every mode, seeding and the sweep hook."""

from __future__ import annotations

import numpy as np
import pytest

from moe_groupgemm import routing_exact
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.routing_montecarlo import (
    ROUTING_MODES,
    SIMULATION_MODES,
    sample_rank_rows,
    simulate_routing,
    summarize,
)

Z_LIMIT = 4.5  # standard errors; see tests/test_routing_exact.py


@pytest.mark.parametrize("mode", SIMULATION_MODES)
@pytest.mark.parametrize("dp_size", [1, 8, 64])
def test_single_token_assigns_k_rows(mode: str, dp_size: int) -> None:
    # B = 1, Q = 1: each of the D tokens lands on exactly K distinct experts across all ranks.
    config = EngineConfig(batch_size=1, q_len=1, dp_size=dp_size)
    sample = simulate_routing(config, mode, steps=50, seed=3)
    per_step = sample.rows.sum(axis=(1, 2))
    assert (per_step == config.tokens_total * config.top_k).all(), f"{mode=}, {dp_size=}: {per_step[:5]}"
    if dp_size == 1:
        assert sample.rows.max() == 1, f"{mode=}: a lone token picked one expert twice"
        assert (sample.num_groups == config.top_k).all(), f"{mode=}: {sample.num_groups.ravel()[:5]}"


@pytest.mark.parametrize("mode", SIMULATION_MODES)
def test_rows_total_k_per_token(mode: str) -> None:
    config = EngineConfig(batch_size=8, q_len=3, dp_size=16, redundant_experts=32)
    sample = simulate_routing(config, mode, steps=20, seed=5)
    assert (sample.rows.sum(axis=(1, 2)) == config.tokens_total * config.top_k).all(), f"{mode=}"
    assert sample.rows.shape == (20, 16, config.local_experts), f"{sample.rows.shape=}"
    reach = sample.ranks_per_token
    assert reach.min() >= 1, f"{mode=}: a token reached {reach.min()} ranks"
    assert reach.max() <= config.top_k, f"{mode=}: a token reached {reach.max()} ranks"


def test_group_limited_reaches_four_ranks() -> None:
    # At D = 8 each rank hosts exactly one 32-expert group, and a token keeps 4 groups.
    config = EngineConfig(batch_size=4, q_len=2, dp_size=8)
    limited = simulate_routing(config, "group_limited", steps=200, seed=1)
    uniform = simulate_routing(config, "uniform", steps=200, seed=1)
    assert limited.ranks_per_token.max() <= 4, f"{limited.ranks_per_token.max()=}"
    assert uniform.ranks_per_token.max() > 4, f"{uniform.ranks_per_token.max()=}"


def test_group_limited_keeps_expert_marginals() -> None:
    # With i.i.d. scores every expert is equally likely, so the per-expert empty
    # probability, and hence E[num_groups], equal the uniform closed form.
    config = EngineConfig(batch_size=2, q_len=2, dp_size=16)
    measured = summarize(simulate_routing(config, "group_limited", steps=3000, seed=2))
    exact = routing_exact.uniform_routing_stats(config)
    deviation = abs(measured.mean_num_groups - exact.expected_num_groups)
    assert deviation <= Z_LIMIT * measured.se_num_groups, (
        f"{measured.mean_num_groups} ± {measured.se_num_groups} vs {exact.expected_num_groups}"
    )


def test_zipf_zero_matches_uniform() -> None:
    config = EngineConfig(batch_size=4, q_len=1, dp_size=8)
    measured = summarize(simulate_routing(config, "zipf", steps=4000, seed=8, zipf_exponent=0.0))
    exact = routing_exact.uniform_routing_stats(config)
    for name, value, error, expected in (
        ("num_groups", measured.mean_num_groups, measured.se_num_groups, exact.expected_num_groups),
        ("m_active", measured.mean_m_active, measured.se_m_active, exact.expected_m_active),
    ):
        assert abs(value - expected) <= Z_LIMIT * error, f"{name}: {value} ± {error} vs {expected}"


def test_zipf_skew_raises_max_rows() -> None:
    config = EngineConfig(batch_size=16, q_len=2, dp_size=8)
    skewed = summarize(simulate_routing(config, "zipf", steps=200, seed=4, zipf_exponent=1.0))
    uniform = summarize(simulate_routing(config, "uniform", steps=200, seed=4))
    assert skewed.mean_max_m > 1.5 * uniform.mean_max_m, f"{skewed.mean_max_m=} vs {uniform.mean_max_m=}"
    assert skewed.mean_num_groups < uniform.mean_num_groups, f"{skewed.mean_num_groups=} vs {uniform.mean_num_groups=}"


def test_replicas_share_load_evenly() -> None:
    # R = E: every logical expert has two replicas, slot s and slot s + E.
    config = EngineConfig(batch_size=4, q_len=2, dp_size=2, redundant_experts=256)
    sample = simulate_routing(config, "uniform", steps=400, seed=9)
    per_slot = sample.rows.reshape(sample.steps, -1).sum(axis=0).astype(float)
    first, second = per_slot[:256].sum(), per_slot[256:].sum()
    total = first + second
    # Each routed row goes to either half with probability 1/2.
    assert abs(first - total / 2) <= Z_LIMIT * np.sqrt(total / 4), f"{first=}, {second=}"


@pytest.mark.parametrize("mode", SIMULATION_MODES)
def test_same_seed_same_rows(mode: str) -> None:
    config = EngineConfig(batch_size=2, q_len=2, dp_size=8)
    first = simulate_routing(config, mode, steps=3, seed=21)
    again = simulate_routing(config, mode, steps=3, seed=21)
    other = simulate_routing(config, mode, steps=3, seed=22)
    assert np.array_equal(first.rows, again.rows), f"{mode=}: same seed gave different rows"
    assert not np.array_equal(first.rows, other.rows), f"{mode=}: different seeds gave identical rows"


@pytest.mark.parametrize("mode", ["uniform", "group_limited"])
def test_sample_rank_rows(mode: str) -> None:
    config = EngineConfig(batch_size=8, q_len=2, dp_size=8)
    rows = sample_rank_rows(config, mode, seed=5, rank=3)
    assert all(isinstance(m, int) and m > 0 for m in rows), f"{rows=}"
    assert len(rows) <= config.local_experts, f"{len(rows)=}"
    expected = simulate_routing(config, mode, steps=1, seed=5).rank_rows(0, 3)
    assert rows == expected, f"{rows=} vs {expected=}"


@pytest.mark.parametrize("mode", ["formula", "zipf", "UNIFORM", ""])
def test_sample_rank_rows_rejects_mode(mode: str) -> None:
    with pytest.raises(ParameterError) as caught:
        sample_rank_rows(EngineConfig(1, 1, 8), mode, seed=0)
    assert caught.value.name == "mode", f"{caught.value}"


@pytest.mark.parametrize("rank", [-1, 8, 1.0, True])
def test_sample_rank_rows_rejects_rank(rank: object) -> None:
    with pytest.raises(ParameterError) as caught:
        sample_rank_rows(EngineConfig(1, 1, 8), "uniform", seed=0, rank=rank)  # type: ignore[arg-type]
    assert caught.value.name == "rank", f"{caught.value}"


@pytest.mark.parametrize(("name", "kwargs"), [
    ("steps", {"steps": 0}),
    ("seed", {"seed": -1}),
    ("mode", {"mode": "formula"}),
    ("zipf_exponent", {"mode": "zipf", "zipf_exponent": -0.5}),
])
def test_simulate_rejects_bad_arguments(name: str, kwargs: dict) -> None:
    with pytest.raises(ParameterError) as caught:
        simulate_routing(EngineConfig(1, 1, 8), **kwargs)
    assert caught.value.name == name, f"{caught.value}"


def test_group_limited_rejects_indivisible_experts() -> None:
    with pytest.raises(ParameterError) as caught:
        simulate_routing(EngineConfig(1, 1, 1, top_k=2, num_experts=12), "group_limited")
    assert caught.value.name == "num_experts", f"{caught.value}"


def test_routing_modes_constant() -> None:
    assert ROUTING_MODES == ("formula", "uniform", "group_limited")


def reference_group_limited_reach(tokens: int, local_experts: int, seed: int) -> np.ndarray:
    """Ranks reached per token by DeepSeek-V3's gate computed on all 256 scores (slow, direct)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand((tokens, 256), generator=generator, dtype=torch.float64)
    group_scores = scores.view(tokens, 8, 32).topk(2, dim=-1).values.sum(dim=-1)
    kept_groups = group_scores.topk(4, dim=-1).indices
    mask = torch.zeros((tokens, 8), dtype=torch.bool).scatter_(1, kept_groups, True)
    masked = scores.view(tokens, 8, 32).masked_fill(~mask[:, :, None], -1.0).view(tokens, 256)
    picks = masked.topk(8, dim=-1).indices
    ranks = (picks // local_experts).sort(dim=-1).values
    return (1 + (ranks[:, 1:] != ranks[:, :-1]).sum(dim=-1)).numpy()


@pytest.mark.parametrize("dp_size", [8, 64])
def test_group_limited_matches_full_score_reference(dp_size: int) -> None:
    # The order-statistics sampler must give the same law of ranks reached per
    # token as ranking all 256 scores directly.
    config = EngineConfig(batch_size=625, q_len=1, dp_size=dp_size)
    tokens = config.tokens_total * (40_000 // config.tokens_total + 1)
    fast = simulate_routing(config, "group_limited", steps=tokens // config.tokens_total, seed=13)
    fast_counts = np.bincount(fast.ranks_per_token.ravel(), minlength=9)[1:9] / fast.ranks_per_token.size
    slow = reference_group_limited_reach(tokens, config.local_experts, seed=14)
    slow_counts = np.bincount(slow, minlength=9)[1:9] / slow.size
    for reached, (p_fast, p_slow) in enumerate(zip(fast_counts, slow_counts), start=1):
        pooled = (p_fast + p_slow) / 2
        error = np.sqrt(2 * pooled * (1 - pooled) / tokens)
        assert abs(p_fast - p_slow) <= Z_LIMIT * error + 1e-12, (
            f"{dp_size=}, P(reach {reached} ranks): fast {p_fast:.5f} vs reference {p_slow:.5f} (se {error:.5f})"
        )
