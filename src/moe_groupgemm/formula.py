"""The article's closed-form approximations, eqs. (1)-(7), as plain integer arithmetic.

These are the approximations as published: (2) and (5) assume perfectly even
routing, (4) is an upper bound written as a ``min``, and (7) rounds the mean
rows per expert up. The exact statistics under uniform routing live in
``routing_exact``; the book compares the two.
"""

from __future__ import annotations

from fractions import Fraction

from moe_groupgemm.engine_config import EngineConfig


def tokens_per_rank(config: EngineConfig) -> int:
    """Eq. (1): T_node = B * Q new tokens on one DP rank."""
    return config.batch_size * config.q_len


def expert_rows_per_rank(config: EngineConfig) -> int:
    """Eq. (2): T_expert,node = B * Q * K routed rows landing on one rank's experts on average."""
    return tokens_per_rank(config) * config.top_k


def max_rows_bound(config: EngineConfig, skew: Fraction | float = 1) -> Fraction | float:
    """Eq. (3): m_max <~ alpha * B * Q * K / E_node for a skew factor alpha >= 1."""
    return skew * Fraction(expert_rows_per_rank(config), config.local_experts)


def num_groups_bound(config: EngineConfig) -> int:
    """Eq. (4): num_groups <= min(E_node, B * Q * K)."""
    return min(config.local_experts, expert_rows_per_rank(config))


def mean_rows_per_expert(config: EngineConfig) -> Fraction:
    """Eq. (5): E[m[i]] ~ B * Q * K / E_node = B * Q * K * D / E (rows per local expert)."""
    return Fraction(expert_rows_per_rank(config), config.local_experts)


def article_num_groups(config: EngineConfig) -> int:
    """Eq. (6), generalised: num_groups = min(E_node, B * Q * K).

    With E=256, K=8 this is the article's 8 * min(32 / D, B * Q).
    """
    return num_groups_bound(config)


def article_rows_per_group(config: EngineConfig) -> int:
    """Eq. (7), generalised: m = ceil(B * Q * K * D / E).

    With E=256, K=8 this is the article's ceil(B * Q * D / 32). Every active
    group gets the same m in this approximation.
    """
    numerator = config.batch_size * config.q_len * config.top_k * config.dp_size
    return -(-numerator // config.physical_experts)
