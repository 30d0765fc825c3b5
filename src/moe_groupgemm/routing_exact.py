"""Exact statistics of num_groups and m[i] under uniform Top-K routing.

Model: in one decode step each of the T = D * B * Q tokens of the cluster picks
a uniformly random set of K distinct logical experts out of E, independently of
the other tokens. Physical slot s serves logical expert s % E (E + R slots for R
redundant experts). A pick of a logical expert with r replicas goes to one of
them uniformly at random, and a rank hosts E_node = (E + R) / D contiguous slots.

Per token, slot s is chosen with probability p_s = (K / E) / r_s, so the rows of
one slot are m_s ~ Binomial(T, p_s) exactly. Everything below follows from that
and from the pair probabilities of a uniform K-subset:

* P(slot empty) = (1 - p_s) ** T
* E[num_groups] = sum_s (1 - (1 - p_s) ** T), which is E_node * (1 - (1 - K/E) ** T) for R = 0
* E[m | active] = E[sum_s m_s] / E[num_groups], i.e. T * p / (1 - (1 - p) ** T) for R = 0
* Var(num_groups) from the probability that two slots are both empty,
  ((E - K) * (E - K - 1) / (E * (E - 1))) ** T for two different logical experts

E[max_s m_s] has no closed form because the slots are dependent: a token cannot
pick an expert twice. ``expected_max_rows`` computes it by a stated numerical
scheme, described there with its error. ``symbolic_closed_forms`` rederives the
formulas above with SymPy and asserts each identity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from moe_groupgemm import formula
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from sympy import Expr, Symbol

# The article's grid: Q in 1..4, B in powers of two 1..256, D dividing 256 up to 64.
ARTICLE_Q_LENS = (1, 2, 3, 4)
ARTICLE_BATCH_SIZES = tuple(2**power for power in range(9))
ARTICLE_DP_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class UniformRoutingStats:
    """Statistics of one rank in one decode step under uniform Top-K routing.

    Row counts are in rows (tokens routed to an expert); ``hit_probability`` is
    per token and per logical expert. With R > 0 the per-slot quantities are
    averages over the rank's slots.
    """

    config: EngineConfig
    hit_probability: float
    prob_expert_empty: float
    expected_num_groups: float
    var_num_groups: float
    expected_m: float
    var_m: float
    expected_m_active: float
    var_m_active: float
    expected_max_m: float
    max_m_lower_bound: float

    @property
    def alpha(self) -> float:
        """E[max m] / E[m]: the skew factor of eq. (3) under uniform routing."""
        return self.expected_max_m / self.expected_m


def slot_hit_probabilities(config: EngineConfig, rank: int = 0) -> np.ndarray:
    """Per-token probability that each local slot of ``rank`` receives the token: (K / E) / replicas."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < config.dp_size:
        raise ParameterError("rank", rank, f"0…{config.dp_size - 1} 的整数", "rank 取 0 到 dp_size-1 之间的整数")
    first = rank * config.local_experts
    slots = np.arange(first, first + config.local_experts)
    logical = slots % config.num_experts
    replicas = 1 + (config.physical_experts - 1 - logical) // config.num_experts
    return (config.top_k / config.num_experts) / replicas


def uniform_routing_stats(config: EngineConfig, rank: int = 0) -> UniformRoutingStats:
    """Exact mean and variance of num_groups and m, and E[max m], for ``rank`` of ``config``."""
    tokens = config.tokens_total
    hit = slot_hit_probabilities(config, rank)
    empty = (1.0 - hit) ** tokens
    expected_num_groups = float(np.sum(1.0 - empty))

    rows = tokens * hit
    expected_rows_total = float(rows.sum())
    expected_m = expected_rows_total / config.local_experts
    var_m_slots = tokens * hit * (1.0 - hit)
    second_moment = var_m_slots + rows**2
    active = 1.0 - empty
    expected_m_active = expected_rows_total / expected_num_groups
    # Mixture over the rank's slots: a uniformly chosen active group.
    var_m_active = float(second_moment.sum() / expected_num_groups - expected_m_active**2)

    lower_bound, corrected = _max_rows_bounds(config, rank)
    return UniformRoutingStats(
        config=config,
        hit_probability=config.top_k / config.num_experts,
        prob_expert_empty=float(empty.mean()),
        expected_num_groups=expected_num_groups,
        var_num_groups=_var_num_groups(config, rank, hit, empty, active),
        expected_m=expected_m,
        var_m=float(var_m_slots.mean() + rows.var()),
        expected_m_active=expected_m_active,
        var_m_active=var_m_active,
        expected_max_m=corrected,
        max_m_lower_bound=lower_bound,
    )


def rank_stats(config: EngineConfig) -> list[UniformRoutingStats]:
    """``uniform_routing_stats`` of every rank; ranks differ only when redundant replicas are uneven."""
    if config.redundant_experts == 0:
        return [uniform_routing_stats(config)] * config.dp_size
    by_layout: dict[bytes, UniformRoutingStats] = {}
    result = []
    for rank in range(config.dp_size):
        layout = slot_hit_probabilities(config, rank).tobytes()
        if layout not in by_layout:
            by_layout[layout] = uniform_routing_stats(config, rank)
        result.append(by_layout[layout])
    return result


def rank_average_stats(config: EngineConfig) -> UniformRoutingStats:
    """Average each field over the D ranks, giving the statistics of a uniformly chosen rank.

    Variances are averaged too, so they are the mean within-rank variances.
    """
    per_rank = rank_stats(config)
    if config.redundant_experts == 0:
        return per_rank[0]
    fields = (
        "hit_probability", "prob_expert_empty", "expected_num_groups", "var_num_groups", "expected_m",
        "var_m", "expected_m_active", "var_m_active", "expected_max_m", "max_m_lower_bound",
    )
    averaged = {name: float(np.mean([getattr(stats, name) for stats in per_rank])) for name in fields}
    return UniformRoutingStats(config=config, **averaged)


def _var_num_groups(config: EngineConfig, rank: int, hit: np.ndarray, empty: np.ndarray, active: np.ndarray) -> float:
    """Var(sum of active indicators) from the pairwise both-empty probabilities."""
    tokens, experts, top_k = config.tokens_total, config.num_experts, config.top_k
    variance = float(np.sum(active * empty))
    if config.local_experts < 2:
        return variance
    # Per token, two slots of different logical experts l, l' are both chosen with
    # probability K (K - 1) / (E (E - 1)) / (r_l r_l'). Two replicas of one
    # logical expert are never both chosen by one token, which picks l at most once.
    pair_both = top_k * (top_k - 1) / (experts * (experts - 1)) if experts > 1 else 0.0
    first = rank * config.local_experts
    logical = np.arange(first, first + config.local_experts) % experts
    replicas = 1 + (config.physical_experts - 1 - logical) // experts
    if np.all(replicas == 1):
        # All slots alike: one closed form for every pair.
        p = hit[0]
        both_empty = (1.0 - 2.0 * p + pair_both) ** tokens
        n = config.local_experts
        return variance + n * (n - 1) * (both_empty - empty[0] ** 2)
    same_logical = logical[:, None] == logical[None, :]
    both_chosen = np.where(same_logical, 0.0, pair_both / (replicas[:, None] * replicas[None, :]))
    both_empty = (1.0 - hit[:, None] - hit[None, :] + both_chosen) ** tokens
    covariance = both_empty - empty[:, None] * empty[None, :]
    np.fill_diagonal(covariance, 0.0)
    return variance + float(covariance.sum())


# ---------------------------------------------------------------------------
# E[max m]
# ---------------------------------------------------------------------------

def expected_max_rows(config: EngineConfig, rank: int = 0) -> float:
    """E[max over the rank's slots of m_s] under uniform routing; see ``_expected_max`` for the scheme."""
    return _max_rows_bounds(config, rank)[1]


def _max_rows_bounds(config: EngineConfig, rank: int) -> tuple[float, float]:
    """(lower bound, estimate) of E[max m]; see ``_expected_max`` for the scheme."""
    hit = slot_hit_probabilities(config, rank)
    lower_bound, gaussian, independent_at_most = _expected_max(config.tokens_total, hit, config.num_experts)
    if config.redundant_experts > 0:
        return lower_bound, gaussian
    # Replace the first terms of sum_t P(max > t) by exact values where they
    # matter; each exact term is at least its independent counterpart.
    for level in range(min(EXACT_MAX_LEVELS, config.tokens_total)):
        if independent_at_most[level] > EXACT_LEVEL_THRESHOLD:
            exact = _exact_max_at_most(config.num_experts, config.top_k, config.local_experts, config.tokens_total, level)
            lower_bound += independent_at_most[level] - exact
    return lower_bound, min(max(gaussian, lower_bound), float(config.tokens_total))


def clear_caches() -> None:
    """Forget the memoised exact terms of E[max m], e.g. before timing a cold computation."""
    _exact_max_at_most.cache_clear()


# Levels t = 0, 1, 2 of P(max m <= t) are computed exactly (``_exact_max_at_most``)
# when their independent approximation exceeds the threshold. Below it the exact
# term is smaller still (negative association), so skipping it changes E[max m],
# which is at least 1 whenever a level is skipped, by less than 1e-4 relative.
EXACT_MAX_LEVELS = 3
EXACT_LEVEL_THRESHOLD = 1e-4


def _expected_max(tokens: int, hit: np.ndarray, experts: int) -> tuple[float, float, np.ndarray]:
    """Return (lower bound, Gaussian estimate, P_indep(max <= t) for t < 3) for m_s ~ Binomial(tokens, hit[s]).

    The scheme for E[max m] = sum_t P(max > t), with R = 0:

    1. Independent terms. prod_s P(m_s <= t) with exact Binomial CDFs treats
       the slots as independent. The picks of one token form a uniform
       K-subset, which is negatively associated, and sums of independent
       negatively associated vectors stay so (Joag-Dev and Proschan, Ann.
       Statist. 11(1), 1983). Hence P(max <= t) <= prod_s P(m_s <= t) for every
       t, and the independent sum is a lower bound.
    2. Exact first terms. For t = 0, 1, 2 ``_exact_max_at_most`` computes
       P(max <= t) exactly; substituting them keeps a lower bound and removes
       the error where the max is small (few tokens), which is where the
       independent terms are worst (1.7 % low at D = 1 with 4 tokens against a
       400,000-step Monte Carlo run).
    3. Gaussian correction. A Gaussian vector with the slots' covariance,
       Cov(m_i, m_j) = -Var(m) / (E - 1), is an independent vector shrunk by a
       common term, so its max exceeds the independent max by the factor
       1 / sqrt(1 - 1/E) on the excess E[max] - E[m] (0.2 % of the excess for
       E = 256). This helps where the max is large.

    The estimate is the larger of 2 and 3. tests/test_routing_exact.py checks
    it against Monte Carlo within 0.3 %; the routing chapter reports the
    largest gap over the article's grid. With redundant replicas only step 1
    and 3 apply, and step 1 is an approximation rather than a proven bound.
    """
    probabilities, multiplicity = np.unique(hit, return_counts=True)
    log_all_below = np.zeros(tokens)
    for probability, count in zip(probabilities, multiplicity):
        tail = _binomial_tail(tokens, float(probability))
        with np.errstate(divide="ignore"):
            log_all_below += count * np.log1p(-np.minimum(tail, 1.0))
    lower_bound = float(-np.expm1(log_all_below).sum())
    mean = tokens * float(hit.mean())
    factor = 1.0 / math.sqrt(1.0 - 1.0 / experts) if experts > 1 else 1.0
    estimate = mean + (lower_bound - mean) * factor
    return lower_bound, min(max(estimate, lower_bound), float(tokens)), np.exp(log_all_below[:EXACT_MAX_LEVELS])


@functools.lru_cache(maxsize=1024)
def _exact_max_at_most(experts: int, top_k: int, local: int, tokens: int, level: int) -> float:
    """Exact P(max over a rank's ``local`` experts of m <= level) for level 0, 1 or 2, with R = 0.

    Dynamic programming over the tokens of one step. The state counts the local
    experts that already hold 1 (and, for level 2, 2) rows; an expert that would
    pass ``level`` drops the path. A token picks j_c local experts at count c
    and K - sum j_c non-local ones, with probability
    prod_c C(n_c, j_c) * C(E - n, K - sum j_c) / C(E, K).
    """
    remote = experts - local
    log_total = _log_comb(experts, top_k)
    if level == 0:
        return math.exp(tokens * (_log_comb(remote, top_k) - log_total)) if top_k <= remote else 0.0
    picks = min(top_k, local)
    if level == 1:
        once = np.arange(local + 1)
        weights = [np.exp(_log_comb_array(local - once, j) + _log_comb(remote, top_k - j) - log_total)
                   for j in range(picks + 1)]
        state = np.zeros(local + 1)
        state[0] = 1.0
        for _ in range(tokens):
            following = np.zeros_like(state)
            for j, weight in enumerate(weights):
                following[j:] += (state * weight)[:local + 1 - j]
            state = following
        return float(state.sum())
    if level != 2:
        raise ValueError(f"level must be 0, 1 or 2, got {level}")
    # state[a, b]: a experts hold one row and b hold two; a + 2 b <= rows so far.
    ones_max = min(local, tokens * picks)
    twos_max = min(local, tokens * picks // 2)
    ones = np.arange(ones_max + 1)[:, None]
    twos = np.arange(twos_max + 1)[None, :]
    occupied = np.minimum(ones + twos, local)
    valid = ones + twos <= local
    # log C(n_0, new) depends on the state only through a + b, log C(a, again) only through a.
    from_empty = [_log_comb_array(local - np.arange(local + 1), new) for new in range(picks + 1)]
    from_ones = [_log_comb_array(np.arange(ones_max + 1), again)[:, None] for again in range(picks + 1)]
    transitions = []
    for new in range(picks + 1):
        for again in range(picks + 1 - new):
            log_weight = from_empty[new][occupied] + from_ones[again] + _log_comb(remote, top_k - new - again) - log_total
            weight = np.where(valid, np.exp(log_weight), 0.0)
            if weight.any():
                transitions.append((new - again, again, weight))
    state = np.zeros((ones_max + 1, twos_max + 1))
    state[0, 0] = 1.0
    for token in range(tokens):
        # After `token` tokens at most token * picks experts hold a row; only
        # that corner of the state can be nonzero.
        rows_a = min(ones_max, token * picks) + 1
        rows_b = min(twos_max, token * picks // 2) + 1
        following = np.zeros_like(state)
        for shift, again, weight in transitions:
            moved = state[:rows_a, :rows_b] * weight[:rows_a, :rows_b]
            # (a, b) -> (a + new - again, b + again), clipped to the state's shape.
            low = max(0, -shift)
            high = min(rows_a, ones_max + 1 - shift)
            width = min(rows_b, twos_max + 1 - again)
            if high > low and width > 0:
                following[low + shift:high + shift, again:again + width] += moved[low:high, :width]
        state = following
    return float(state.sum())


def _log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_comb_array(n: np.ndarray, k: int) -> np.ndarray:
    """log C(n, k) elementwise for integer arrays 0 <= n <= 2**16; -inf where k > n."""
    n = np.asarray(n, dtype=np.int64)
    log_factorial = _log_factorials(max(int(n.max(initial=0)), k) + 1)
    values = log_factorial[n] - log_factorial[k] - log_factorial[np.maximum(n - k, 0)]
    return np.where(n >= k, values, -np.inf)


@functools.cache
def _log_factorials(size: int) -> np.ndarray:
    """log(i!) for i = 0 .. size (at least 1)."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, max(size, 1) + 1, dtype=np.float64)))])


def _binomial_tail(tokens: int, probability: float) -> np.ndarray:
    """P(m > t) for t = 0 .. tokens - 1 with m ~ Binomial(tokens, probability), accurate in the far tail."""
    if probability >= 1.0:
        return np.ones(tokens)
    if probability <= 0.0:
        return np.zeros(tokens)
    # log pmf(j + 1) - log pmf(j) = log((n - j) / (j + 1)) + log(p / (1 - p)).
    j = np.arange(tokens, dtype=np.float64)
    steps = np.log((tokens - j) / (j + 1.0)) + math.log(probability / (1.0 - probability))
    log_pmf = np.empty(tokens + 1)
    log_pmf[0] = tokens * math.log1p(-probability)
    np.cumsum(steps, out=log_pmf[1:])
    log_pmf[1:] += log_pmf[0]
    pmf = np.exp(log_pmf)
    # Summing from the top keeps tiny tails exact instead of computing 1 - CDF.
    tail_from = np.cumsum(pmf[::-1])[::-1]
    return tail_from[1:]


# ---------------------------------------------------------------------------
# Comparison with the article's approximations
# ---------------------------------------------------------------------------

def article_grid() -> list[EngineConfig]:
    """The article's (B, Q, D) grid with DeepSeek-V3's K = 8 and E = 256."""
    return [
        EngineConfig(batch_size=b, q_len=q, dp_size=d)
        for q in ARTICLE_Q_LENS
        for d in ARTICLE_DP_SIZES
        for b in ARTICLE_BATCH_SIZES
    ]


def comparison_frame(configs: Iterable[EngineConfig] | None = None) -> "pd.DataFrame":
    """One row per config: the article's eqs. (3)-(7) beside the exact statistics, with relative errors.

    Relative errors are (approximation - exact) / exact. Eq. (6) is compared with
    E[num_groups]; eqs. (5) and (7) with E[m | active], the mean rows of a group
    that the GroupGEMM actually runs; eq. (3) at alpha = 1 with E[max m].
    ``regime`` names the smaller argument of eq. (4)'s min(): "experts"
    when E_node <= B * Q * K, else "rows".
    """
    import pandas as pd  # deferred: the command line does not need pandas

    records = []
    for config in configs if configs is not None else article_grid():
        stats = uniform_routing_stats(config)
        eq4 = formula.num_groups_bound(config)
        eq5 = float(formula.mean_rows_per_expert(config))
        eq6 = formula.article_num_groups(config)
        eq7 = formula.article_rows_per_group(config)
        records.append({
            "batch_size": config.batch_size,
            "q_len": config.q_len,
            "dp_size": config.dp_size,
            "local_experts": config.local_experts,
            "tokens_per_rank": config.tokens_per_rank,
            "rows_per_rank": formula.expert_rows_per_rank(config),
            "regime": "experts" if config.local_experts <= formula.expert_rows_per_rank(config) else "rows",
            "eq4_num_groups_bound": eq4,
            "eq5_mean_m": eq5,
            "eq6_num_groups": eq6,
            "eq7_m": eq7,
            "exact_num_groups": stats.expected_num_groups,
            "exact_num_groups_std": math.sqrt(max(stats.var_num_groups, 0.0)),
            "exact_m": stats.expected_m,
            "exact_m_active": stats.expected_m_active,
            "exact_max_m": stats.expected_max_m,
            "max_m_lower_bound": stats.max_m_lower_bound,
            "prob_expert_empty": stats.prob_expert_empty,
            "alpha": stats.alpha,
            "alpha_active": stats.expected_max_m / stats.expected_m_active,
            "rel_err_eq6_num_groups": eq6 / stats.expected_num_groups - 1.0,
            "rel_err_eq5_m_active": eq5 / stats.expected_m_active - 1.0,
            "rel_err_eq7_m_active": eq7 / stats.expected_m_active - 1.0,
            "rel_err_eq3_max_m": eq5 / stats.expected_max_m - 1.0,
        })
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------------------
# SymPy derivation of the closed forms
# ---------------------------------------------------------------------------

def symbolic_closed_forms() -> dict[str, "Expr"]:
    """Derive the closed forms for R = 0 with SymPy, assert each identity, and return them by name.

    Keys: "hit_probability", "prob_empty", "expected_num_groups",
    "expected_m", "var_m", "expected_m_active", "pair_covariance",
    "prob_both_empty", "var_num_groups", with symbols from ``closed_form_symbols``.
    The derivation runs once per process.
    """
    return dict(_derive_closed_forms())


@functools.cache
def _derive_closed_forms() -> dict[str, "Expr"]:
    from sympy import Symbol, binomial, expand, factor, simplify  # deferred: slow to import

    E, K, n, T = closed_form_symbols()
    # One token's picks: a uniform K-subset of E experts.
    hit = binomial(E - 1, K - 1) / binomial(E, K)
    hit_probability = simplify(hit.rewrite("factorial"))
    assert simplify(hit_probability - K / E) == 0, hit_probability

    both = binomial(E - 2, K - 2) / binomial(E, K)
    both_chosen = simplify(both.rewrite("factorial"))
    assert simplify(both_chosen - K * (K - 1) / (E * (E - 1))) == 0, both_chosen
    pair_covariance = factor(both_chosen - hit_probability**2)
    assert simplify(pair_covariance + K * (E - K) / (E**2 * (E - 1))) == 0, pair_covariance

    neither = simplify((binomial(E - 2, K) / binomial(E, K)).rewrite("factorial"))
    assert simplify(neither - (1 - 2 * hit_probability + both_chosen)) == 0, neither
    assert simplify(neither - (E - K) * (E - K - 1) / (E * (E - 1))) == 0, neither

    p = Symbol("p", positive=True)
    prob_empty = (1 - p) ** T
    expected_num_groups = n * (1 - prob_empty)
    expected_m = T * p
    var_m = T * p * (1 - p)
    # m >= 1 whenever the expert is active, so E[m] = E[m | active] P(active).
    expected_m_active = expected_m / (1 - prob_empty)
    assert simplify(expected_m_active * (1 - prob_empty) - expected_m) == 0

    q = Symbol("q", positive=True)  # per-token probability that two given experts are both unchosen
    prob_both_empty = q**T
    var_num_groups = n * (1 - prob_empty) * prob_empty + n * (n - 1) * (prob_both_empty - prob_empty**2)
    # Var of a sum of n exchangeable indicators with P(a) = 1 - prob_empty.
    assert simplify(
        expand(var_num_groups - (n * (1 - prob_empty) - (n * (1 - prob_empty)) ** 2
                                 + n * (n - 1) * (1 - 2 * prob_empty + prob_both_empty)))
    ) == 0

    substitutions = {p: hit_probability, q: neither}
    return {
        "hit_probability": hit_probability,
        "prob_empty": prob_empty.subs(substitutions),
        "expected_num_groups": expected_num_groups.subs(substitutions),
        "expected_m": expected_m.subs(substitutions),
        "var_m": var_m.subs(substitutions),
        "expected_m_active": expected_m_active.subs(substitutions),
        "pair_covariance": pair_covariance,
        "prob_both_empty": prob_both_empty.subs(substitutions),
        "var_num_groups": var_num_groups.subs(substitutions),
    }


def closed_form_symbols() -> tuple["Symbol", "Symbol", "Symbol", "Symbol"]:
    """E (experts), K (Top-K), n (local experts E_node) and T (tokens per step, D * B * Q)."""
    from sympy import symbols

    return symbols("E K n T", integer=True, positive=True)


def evaluate_closed_form(expression: "Expr", config: EngineConfig, digits: int = 30) -> "Expr":
    """Evaluate one of ``symbolic_closed_forms``'s expressions at ``config`` (R = 0) to ``digits`` digits.

    Numerical evaluation keeps (1 - K/E) ** T cheap; exact rationals would have
    tens of thousands of digits on the article's grid.
    """
    E, K, n, T = closed_form_symbols()
    values = {E: config.num_experts, K: config.top_k, n: config.local_experts, T: config.tokens_total}
    return expression.evalf(digits, subs=values)
