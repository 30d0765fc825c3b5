"""Monte Carlo simulation of MoE token routing for one or more decode steps.

One step routes all D * B * Q tokens of the cluster. Each token picks K
distinct logical experts. Physical slot s serves logical expert s % E, and rank
r hosts the E_node = (E + R) / D contiguous slots r * E_node ... (r + 1) * E_node - 1.

Routing modes (``SIMULATION_MODES``):

``uniform``
    The token's K experts are a uniformly random K-subset of the E experts.
``group_limited``
    DeepSeek-V3's gate with random scores. Every expert gets an independent
    Uniform(0, 1) score (equivalently sigmoid of a standard logistic logit, with
    zero bias). The experts form 8 groups of E / 8 contiguous ids; a group's
    score is the sum of its two highest expert scores. The token keeps the 4
    groups with the highest group scores and then takes the K highest-scoring
    experts inside them.
``zipf``
    Skewed expert popularity. Expert popularity rank j (1-based) has weight
    j ** -s for the Zipf exponent s, and a seeded random permutation assigns
    the ranks to expert ids, so hot experts are spread over the DP ranks. The
    token draws its K experts by successive sampling without replacement: each
    pick has probability proportional to weight among the experts not yet
    picked. s = 0 is the uniform mode.

Redundant experts: with R > 0, a logical expert l has one replica per physical
slot s with s % E == l. Each time a token picks l, one of those replicas is
chosen uniformly at random, independently for every pick.

All randomness comes from one seeded ``torch.Generator``. The integer
bookkeeping (duplicate checks, counting) runs in NumPy on views of the same
buffers because NumPy's byte-wise kernels are many times faster than torch's on
CPU for this work; ``benchmarks/routing_speed.py`` measures the throughput.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from moe_groupgemm.engine_config import (
    DEEPSEEK_V3_EXPERT_GROUPS,
    DEEPSEEK_V3_TOPK_GROUPS,
    EngineConfig,
)
from moe_groupgemm.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

SIMULATION_MODES = ("uniform", "group_limited", "zipf")

# Row sources the sweep accepts: the article's eqs. (6)/(7) ("formula") or one
# simulated step of a routing mode.
ROUTING_MODES = ("formula", "uniform", "group_limited")

# Experts per group that form the group score in DeepSeek-V3's gate (top-2 sum).
GROUP_SCORE_TOP_EXPERTS = 2

# Token budget of one generated chunk, which bounds the memory of a simulation
# to a few hundred MB whatever the number of steps.
_CHUNK_TOKENS = 1 << 20

# Below this many tokens per step, one bincount over (step, slot) pairs is
# faster than one bincount per step.
_PER_STEP_BINCOUNT_MIN_TOKENS = 2048


@dataclass(frozen=True)
class RoutingSample:
    """Simulated routing of ``steps`` decode steps.

    ``rows[step, rank, slot]`` is m for local slot ``slot`` of DP rank ``rank``
    (0 when no token chose it). ``ranks_per_token[step, token]`` is the number of
    distinct DP ranks that hold at least one of the token's K experts.
    """

    config: EngineConfig
    mode: str
    rows: np.ndarray
    ranks_per_token: np.ndarray

    @property
    def steps(self) -> int:
        return self.rows.shape[0]

    @property
    def num_groups(self) -> np.ndarray:
        """Active local experts per (step, rank)."""
        return (self.rows > 0).sum(axis=2)

    @property
    def max_rows(self) -> np.ndarray:
        """max m[i] over the local experts of each (step, rank); 0 for a rank without rows."""
        return self.rows.max(axis=2)

    def rank_rows(self, step: int, rank: int) -> tuple[int, ...]:
        """Return the positive m[i] of one rank in one step, in local slot order."""
        slots = self.rows[step, rank]
        return tuple(int(m) for m in slots[slots > 0])


@dataclass(frozen=True)
class SampleSummary:
    """Per-rank means over a simulation, each with its standard error (same unit).

    ``mean_m_active`` is total rows over total active groups, the ratio
    estimator of E[sum m] / E[num_groups].
    """

    mean_num_groups: float
    se_num_groups: float
    mean_m_active: float
    se_m_active: float
    mean_max_m: float
    se_max_m: float
    mean_ranks_per_token: float
    se_ranks_per_token: float
    samples: int


def summarize(sample: RoutingSample) -> SampleSummary:
    """Means and standard errors of num_groups, m per active group, max m and ranks per token.

    Every (step, rank) pair counts as one observation. Pairs from the same step
    are weakly dependent, so the standard errors are approximate.
    """
    groups = sample.num_groups.astype(np.float64).ravel()
    rows = sample.rows.sum(axis=2).astype(np.float64).ravel()
    max_rows = sample.max_rows.astype(np.float64).ravel()
    reach = sample.ranks_per_token.astype(np.float64).ravel()
    count = groups.size

    mean_groups = groups.mean()
    mean_rows = rows.mean()
    ratio = mean_rows / mean_groups if mean_groups > 0 else math.nan
    # Delta-method standard error of the ratio of means.
    if mean_groups > 0 and count > 1:
        residual = rows - ratio * groups
        se_ratio = residual.std(ddof=1) / (mean_groups * math.sqrt(count))
    else:
        se_ratio = math.nan
    return SampleSummary(
        mean_num_groups=float(mean_groups),
        se_num_groups=_standard_error(groups),
        mean_m_active=float(ratio),
        se_m_active=float(se_ratio),
        mean_max_m=float(max_rows.mean()),
        se_max_m=_standard_error(max_rows),
        mean_ranks_per_token=float(reach.mean()),
        se_ranks_per_token=_standard_error(reach),
        samples=count,
    )


def monte_carlo_frame(
    configs: Iterable[EngineConfig],
    mode: str = "uniform",
    min_tokens: int = 20_000,
    min_samples: int = 200,
    seed: int = 0,
    zipf_exponent: float = 1.0,
) -> "pd.DataFrame":
    """Simulate every config and return one row of ``summarize`` results per config.

    Each config runs enough steps for at least ``min_tokens`` routed tokens and
    at least ``min_samples`` (step, rank) observations, with seed
    ``seed + index`` so that configs use different random streams. Columns:
    batch_size, q_len, dp_size, redundant_experts, mode, zipf_exponent, steps,
    then the SampleSummary fields.
    """
    import pandas as pd  # deferred: the command line does not need pandas

    _check_nonnegative_int("min_tokens", min_tokens, positive=True)
    _check_nonnegative_int("min_samples", min_samples, positive=True)
    records = []
    for index, config in enumerate(configs):
        steps = max(-(-min_samples // config.dp_size), -(-min_tokens // config.tokens_total))
        sample = simulate_routing(config, mode, steps=steps, seed=seed + index, zipf_exponent=zipf_exponent)
        records.append({
            "batch_size": config.batch_size,
            "q_len": config.q_len,
            "dp_size": config.dp_size,
            "redundant_experts": config.redundant_experts,
            "mode": mode,
            "zipf_exponent": zipf_exponent if mode == "zipf" else math.nan,
            "steps": steps,
            **asdict(summarize(sample)),
        })
    return pd.DataFrame.from_records(records)


def _standard_error(values: np.ndarray) -> float:
    if values.size < 2:
        return math.nan
    return float(values.std(ddof=1) / math.sqrt(values.size))


def simulate_routing(
    config: EngineConfig,
    mode: str = "uniform",
    steps: int = 1,
    seed: int = 0,
    zipf_exponent: float = 1.0,
) -> RoutingSample:
    """Simulate ``steps`` decode steps of routing under ``mode`` and count rows per physical slot.

    ``zipf_exponent`` is used by the ``zipf`` mode only. Raises ParameterError
    for an unknown mode, a bad step count or seed, or a gate that the config's
    expert count cannot form.
    """
    _check_mode(mode, SIMULATION_MODES)
    _check_nonnegative_int("steps", steps, positive=True)
    _check_nonnegative_int("seed", seed)
    if mode == "group_limited":
        _check_group_limited(config)
    weights = None
    generator = torch.Generator().manual_seed(seed)
    if mode == "zipf":
        weights = _zipf_weights(config.num_experts, zipf_exponent, generator)

    tokens = config.tokens_total
    steps_per_chunk = max(1, _CHUNK_TOKENS // tokens)
    rows = np.empty((steps, config.dp_size, config.local_experts), dtype=np.int64)
    reach = np.empty((steps, tokens), dtype=np.uint8 if min(config.top_k, config.dp_size) < 256 else np.uint16)
    for first in range(0, steps, steps_per_chunk):
        chunk_steps = min(steps_per_chunk, steps - first)
        logical = _draw_logical_experts(config, mode, chunk_steps * tokens, generator, weights)
        physical = _assign_replicas(config, logical, generator)
        counts = _count_rows(physical, chunk_steps, tokens, config.physical_experts)
        rows[first:first + chunk_steps] = counts.reshape(chunk_steps, config.dp_size, config.local_experts)
        reach[first:first + chunk_steps] = _distinct_ranks(physical, config.local_experts).reshape(chunk_steps, tokens)
    return RoutingSample(config=config, mode=mode, rows=rows, ranks_per_token=reach)


def sample_rank_rows(config: EngineConfig, mode: str, seed: int, rank: int = 0) -> tuple[int, ...]:
    """Return the positive m[i] of rank ``rank`` for one simulated step, in local expert order.

    ``mode`` is "uniform" or "group_limited"; the same (config, mode, seed)
    always gives the same rows.
    """
    _check_mode(mode, ("uniform", "group_limited"))
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < config.dp_size:
        raise ParameterError("rank", rank, f"0…{config.dp_size - 1} 的整数", "rank 取 0 到 dp_size-1 之间的整数")
    sample = simulate_routing(config, mode=mode, steps=1, seed=seed)
    return sample.rank_rows(0, rank)


def _check_mode(mode: str, accepted: tuple[str, ...]) -> None:
    if mode not in accepted:
        raise ParameterError("mode", mode, "、".join(accepted), f"把 mode 设为 {accepted[0]!r} 等支持的路由方式")


def _check_nonnegative_int(name: str, value: object, positive: bool = False) -> None:
    low = 1 if positive else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "正整数" if positive else "非负整数"
        raise ParameterError(name, value, kind, f"把 {name} 设为{kind}")


def _check_group_limited(config: EngineConfig) -> None:
    experts = config.num_experts
    if experts % DEEPSEEK_V3_EXPERT_GROUPS != 0 or experts // DEEPSEEK_V3_EXPERT_GROUPS < GROUP_SCORE_TOP_EXPERTS:
        raise ParameterError(
            "num_experts", experts,
            f"{DEEPSEEK_V3_EXPERT_GROUPS} 的倍数且每组至少 {GROUP_SCORE_TOP_EXPERTS} 个专家",
            "group_limited 路由把专家分成 8 组，请使用 DeepSeek-V3 的 256 个专家",
        )
    kept = DEEPSEEK_V3_TOPK_GROUPS * (experts // DEEPSEEK_V3_EXPERT_GROUPS)
    if config.top_k > kept:
        raise ParameterError(
            "top_k", config.top_k, f"不超过保留的 {DEEPSEEK_V3_TOPK_GROUPS} 组专家总数 {kept}",
            "减小 top_k，或改用 uniform 路由",
        )


# ---------------------------------------------------------------------------
# Random integers from the torch generator
# ---------------------------------------------------------------------------

def _random_bytes(generator: torch.Generator, count: int) -> np.ndarray:
    """Draw ``count`` independent uniform bytes.

    ``random_()`` on int64 fills [0, 2**63), so bytes 0-6 of each value are
    uniform while byte 7 has only 7 random bits. Only the first seven are used.
    """
    words = -(-count // 7)
    raw = torch.empty(words, dtype=torch.int64).random_(generator=generator)
    return raw.numpy().view(np.uint8).reshape(words, 8)[:, :7].reshape(-1)[:count]


def _uniform_integers(generator: torch.Generator, high: int, shape: tuple[int, ...]) -> np.ndarray:
    """Exactly uniform integers in [0, high), as uint8 when high <= 256 else int64."""
    count = math.prod(shape)
    if high <= 256 and 256 % high == 0:
        # A power of two up to 256 divides 256, so masking a uniform byte stays uniform.
        values = _random_bytes(generator, count)
        if high < 256:
            values = values & np.uint8(high - 1)
        return values.reshape(shape)
    values = torch.randint(0, high, (count,), generator=generator).numpy()
    if high <= 256:
        values = values.astype(np.uint8)
    return values.reshape(shape)


def _duplicate_rows(picks: np.ndarray) -> np.ndarray:
    """Boolean mask of columns of ``picks`` (shape [K, N]) that contain a repeated value."""
    duplicate = np.zeros(picks.shape[1], dtype=bool)
    for later in range(1, picks.shape[0]):
        for earlier in range(later):
            duplicate |= picks[later] == picks[earlier]
    return duplicate


def _redraw_duplicates(picks: np.ndarray, redraw) -> np.ndarray:
    """Replace every column that contains a repeated value by ``redraw(indices)`` until none is left.

    Rejecting whole columns keeps each column uniform over the outcomes
    without repeats, so the kept set has the conditional law of the draw.
    """
    pending = np.flatnonzero(_duplicate_rows(picks))
    while pending.size:
        fresh = redraw(pending)
        picks[:, pending] = fresh
        pending = pending[_duplicate_rows(fresh)]
    return picks


# ---------------------------------------------------------------------------
# Routing modes: logical expert ids, shape [K, tokens]
# ---------------------------------------------------------------------------

def _draw_logical_experts(
    config: EngineConfig, mode: str, tokens: int, generator: torch.Generator, weights: np.ndarray | None
) -> np.ndarray:
    if mode == "uniform":
        return _draw_uniform(config, tokens, generator)
    if mode == "group_limited":
        return _draw_group_limited(config, tokens, generator)
    assert weights is not None
    return _draw_successive(config, tokens, generator, weights)


def _draw_uniform(config: EngineConfig, tokens: int, generator: torch.Generator) -> np.ndarray:
    """Uniform K-subsets: K uniform ids per token, redrawing tokens with a repeat."""
    experts, top_k = config.num_experts, config.top_k
    if 2 * top_k > experts:
        # Most draws would repeat an id; a random permutation's prefix is cheaper.
        keys = torch.rand((tokens, experts), generator=generator)
        return keys.argsort(dim=1)[:, :top_k].numpy().T.copy()
    picks = _uniform_integers(generator, experts, (top_k, tokens))
    return _redraw_duplicates(picks, lambda pending: _uniform_integers(generator, experts, (top_k, pending.size)))


def _draw_group_limited(config: EngineConfig, tokens: int, generator: torch.Generator) -> np.ndarray:
    """DeepSeek-V3 group-limited top-K with i.i.d. Uniform(0, 1) scores, sampled through order statistics.

    Work in y = -log(score). For n i.i.d. uniform scores, the j-th smallest y
    is the (j-1)-th plus Exp(1) / (n - j + 1) (Renyi's representation). So each
    group needs only its two best scores to be ranked, and a kept group needs
    only its best min(K, group size). The slots with a group's best scores are
    a uniformly random set of distinct slots, because the scores are
    exchangeable. Arithmetic is float32: two scores closer than float32
    resolution (probability of order 1e-7 per comparison) are ordered by rounding.
    """
    groups, kept_groups, top_k = DEEPSEEK_V3_EXPERT_GROUPS, DEEPSEEK_V3_TOPK_GROUPS, config.top_k
    group_size = config.num_experts // groups
    depth = min(top_k, group_size)

    def exponential(shape: tuple[int, ...]) -> np.ndarray:
        # -log(1 - u) is Exp(1) for u ~ Uniform[0, 1); 1 - u is exact in float32
        # for u on torch.rand's 2**-24 grid.
        values = torch.rand(shape, generator=generator)
        return values.neg_().log1p_().neg_().numpy()

    # Best two scores of every group, as y values; layout [rank, group, token].
    first = exponential((GROUP_SCORE_TOP_EXPERTS, groups, tokens))
    best = first[0] / np.float32(group_size)
    second = best + first[1] / np.float32(group_size - 1)
    # Group score minus 2, exact to float32 relative precision: exp(-y) - 1 summed.
    group_score = (torch.from_numpy(best).neg().expm1_() + torch.from_numpy(second).neg().expm1_()).numpy()

    # Rank of each group by score (0 = best) from pairwise comparisons.
    group_rank = np.zeros((groups, tokens), dtype=np.uint8)
    for group in range(groups):
        for other in range(groups):
            if other != group:
                group_rank[group] += group_score[other] > group_score[group]
    kept_ids = np.zeros((kept_groups, tokens), dtype=np.uint8)
    for group in range(1, groups):
        for slot in range(kept_groups):
            kept_ids[slot] += (group_rank[group] == slot) * np.uint8(group)

    # y values of the kept groups' best `depth` scores; layout [rank, kept slot, token].
    kept_y = np.empty((depth, kept_groups, tokens), dtype=np.float32)
    kept_y[0] = np.take_along_axis(best, kept_ids, axis=0)
    kept_y[1] = np.take_along_axis(second, kept_ids, axis=0)
    if depth > GROUP_SCORE_TOP_EXPERTS:
        more = exponential((depth - GROUP_SCORE_TOP_EXPERTS, kept_groups, tokens))
        for index in range(GROUP_SCORE_TOP_EXPERTS, depth):
            kept_y[index] = kept_y[index - 1] + more[index - GROUP_SCORE_TOP_EXPERTS] / np.float32(group_size - index)

    # The token's K experts are the K smallest y among the kept groups.
    by_token = kept_y.reshape(depth * kept_groups, tokens).T.copy()
    threshold = np.partition(by_token, top_k - 1, axis=1)[:, top_k - 1]
    picks_per_slot = np.zeros((kept_groups, tokens), dtype=np.uint8)
    for index in range(depth):
        picks_per_slot += kept_y[index] <= threshold

    # Pick p belongs to the first kept slot whose cumulative pick count exceeds p.
    cumulative = np.cumsum(picks_per_slot, axis=0, dtype=np.uint8)
    pick_group = np.empty((top_k, tokens), dtype=np.uint8 if config.num_experts <= 256 else np.int64)
    for pick in range(top_k):
        slot = np.zeros(tokens, dtype=np.intp)
        for earlier in range(kept_groups - 1):
            slot += cumulative[earlier] <= pick
        pick_group[pick] = np.take_along_axis(kept_ids, slot[None, :], axis=0)[0]

    def draw_ids(columns: np.ndarray) -> np.ndarray:
        offsets = _uniform_integers(generator, group_size, (top_k, columns.size)).astype(pick_group.dtype)
        return pick_group[:, columns] * pick_group.dtype.type(group_size) + offsets

    picks = draw_ids(np.arange(tokens))
    return _redraw_duplicates(picks, draw_ids)


def _zipf_weights(experts: int, exponent: float, generator: torch.Generator) -> np.ndarray:
    """Popularity weight of each expert id: rank ** -exponent, ranks assigned by a seeded permutation."""
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not 0 <= exponent <= 4:
        raise ParameterError("zipf_exponent", exponent, "0 到 4 之间的实数", "0 表示均匀热度，常用取值在 0.5 到 1.5 之间")
    by_rank = np.arange(1, experts + 1, dtype=np.float64) ** -float(exponent)
    order = torch.randperm(experts, generator=generator).numpy()
    weights = np.empty(experts, dtype=np.float64)
    weights[order] = by_rank
    return weights / weights.sum()


def _draw_successive(
    config: EngineConfig, tokens: int, generator: torch.Generator, weights: np.ndarray
) -> np.ndarray:
    """Successive sampling without replacement: pick j is drawn from ``weights``, redrawn while it repeats.

    Redrawing a repeated id is the same as drawing from the weights renormalised
    over the experts not yet picked.
    """
    cumulative = np.cumsum(weights)
    last = config.num_experts - 1
    dtype = np.uint8 if config.num_experts <= 256 else np.int64

    def draw(count: int) -> np.ndarray:
        uniform = torch.rand(count, dtype=torch.float64, generator=generator).numpy()
        return np.minimum(np.searchsorted(cumulative, uniform, side="right"), last).astype(dtype)

    picks = np.empty((config.top_k, tokens), dtype=dtype)
    for pick in range(config.top_k):
        picks[pick] = draw(tokens)
        pending = np.flatnonzero((picks[:pick] == picks[pick]).any(axis=0)) if pick else np.empty(0, np.int64)
        while pending.size:
            picks[pick, pending] = draw(pending.size)
            pending = pending[(picks[:pick, pending] == picks[pick, pending]).any(axis=0)]
    return picks


# ---------------------------------------------------------------------------
# Placement and counting
# ---------------------------------------------------------------------------

def _assign_replicas(config: EngineConfig, logical: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Map logical ids to physical slots, choosing one replica uniformly per pick."""
    experts, physical = config.num_experts, config.physical_experts
    if physical == experts:
        return logical
    logical = logical.astype(np.int64)
    replicas = 1 + (physical - 1 - logical) // experts
    # Every logical expert has q or q + 1 replicas. Both divide q * (q + 1), so a
    # uniform draw over that many values, taken modulo the replica count, is uniform.
    base = physical // experts
    span = base * (base + 1)
    draws = torch.randint(0, span, logical.shape, generator=generator).numpy()
    return logical + experts * (draws % replicas)


def _count_rows(physical: np.ndarray, steps: int, tokens: int, slots: int) -> np.ndarray:
    """Rows per (step, physical slot) for picks laid out as [K, steps * tokens], step-major."""
    if tokens >= _PER_STEP_BINCOUNT_MIN_TOKENS:
        counts = np.empty((steps, slots), dtype=np.int64)
        for step in range(steps):
            counts[step] = np.bincount(physical[:, step * tokens:(step + 1) * tokens].ravel(), minlength=slots)
        return counts
    step_of_token = np.repeat(np.arange(steps, dtype=np.int64), tokens)
    flat = (physical.astype(np.int64) + (step_of_token * slots)[None, :]).ravel()
    return np.bincount(flat, minlength=steps * slots).reshape(steps, slots)


def _distinct_ranks(physical: np.ndarray, local_experts: int) -> np.ndarray:
    """Number of distinct ranks among each token's K physical slots."""
    distinct = np.ones(physical.shape[1], dtype=np.uint8 if physical.shape[0] < 256 else np.uint16)
    if local_experts > np.iinfo(physical.dtype).max:
        # Every id fits in one rank's slot range, so each token reaches one rank.
        return distinct
    ranks = physical // physical.dtype.type(local_experts)
    for later in range(1, ranks.shape[0]):
        repeated = np.zeros(ranks.shape[1], dtype=bool)
        for earlier in range(later):
            repeated |= ranks[later] == ranks[earlier]
        distinct += ~repeated
    return distinct
