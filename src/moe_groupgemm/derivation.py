"""Symbolic model of the derivation: eqs. (1)-(7) as SymPy relations across three layers.

The layers are the engine configuration (B, Q, D, T_total), MoE routing
(T_node, T_expert,node, m_max) and the GroupGEMM operator (num_groups, E[m[i]]).
Each relation function builds its right-hand side from the previous layer by
substitution. The identity checker proves that the derived form equals the
closed form printed in the source article, a blog post on DeepSeek-V3 decode.
Eqs. (6) and (7) are the general restatements with E and K replaced by the
DeepSeek-V3 constants from ``engine_config``.

Integer-arithmetic versions of the same formulas live in ``formula``. The tests
check that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from sympy import Abs, Expr, Integer, Min, Piecewise, Rational, Symbol, ceiling, latex, lambdify, simplify
from sympy.printing.pycode import PythonCodePrinter

from moe_groupgemm.engine_config import DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K, EngineConfig

# Engine configuration layer.
B = Symbol("B", integer=True, positive=True)  # requests per DP rank
Q = Symbol("Q", integer=True, positive=True)  # new tokens per request in this decode step
D = Symbol("D", integer=True, positive=True)  # DP ranks, equal to the expert-parallel size
K = Symbol("K", integer=True, positive=True)  # experts per token (Top-K), 1 <= K <= E
E = Symbol("E", integer=True, positive=True)  # routed experts of the model
E_node = Symbol("E_node", integer=True, positive=True)  # local experts on one rank, E / D
# Skew of the busiest local expert over the mean, alpha >= 1. SymPy's assumptions
# cannot express the lower bound 1, so only positivity is declared here.
alpha = Symbol("alpha", real=True, positive=True)

# Left-hand sides. Counts that routing can leave at zero are nonnegative integers,
# and expectations are nonnegative reals.
T_total = Symbol("T_total", integer=True, positive=True)
T_node = Symbol("T_node", integer=True, positive=True)
T_expert_node = Symbol("T_expert_node", integer=True, nonnegative=True)
m_max = Symbol("m_max", integer=True, nonnegative=True)
num_groups = Symbol("num_groups", integer=True, nonnegative=True)
m_i = Symbol("m_i", integer=True, nonnegative=True)
mean_m = Symbol("mean_m", real=True, nonnegative=True)
mean_num_groups = Symbol("mean_num_groups", real=True, nonnegative=True)

SYMBOL_LATEX: dict[Symbol, str] = {
    E_node: r"E_{\text{node}}",
    T_total: r"T_{\text{total}}",
    T_node: r"T_{\text{node}}",
    T_expert_node: r"T_{\text{expert,node}}",
    m_max: r"m_{\max}",
    num_groups: r"\text{num\_groups}",
    m_i: r"m[i]",
    mean_m: r"\mathbb{E}\bigl[m[i]\bigr]",
    mean_num_groups: r"\mathbb{E}\bigl[\text{num\_groups}\bigr]",
}

OPERATOR_LATEX = {"=": "=", "≈": r"\approx", "≤": r"\le", "≲": r"\lesssim"}


def to_latex(expr: Expr) -> str:
    """Render an expression with the book's symbol names, e.g. ``E_{\\text{node}}`` for E_node."""
    return latex(expr, symbol_names=SYMBOL_LATEX)


@dataclass(frozen=True)
class Relation:
    """One relation ``lhs <operator> rhs`` of the model, with its equation label in the book.

    ``rhs`` is derived by substitution from earlier relations. ``printed`` is the
    closed form the source article prints, or None where the article prints none.
    """

    label: str
    lhs: Symbol
    operator: str
    rhs: Expr
    printed: Expr | None = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATOR_LATEX:
            raise ValueError(f"operator must be one of {sorted(OPERATOR_LATEX)}, got {self.operator!r}")

    def to_latex(self) -> str:
        """Render ``lhs op rhs``, followed by ``= printed`` when the printed form differs structurally."""
        text = f"{to_latex(self.lhs)} {OPERATOR_LATEX[self.operator]} {to_latex(self.rhs)}"
        if self.printed is not None and self.printed != self.rhs:
            text += f" = {to_latex(self.printed)}"
        return text


# --- Engine configuration layer -------------------------------------------------------------


def local_experts() -> Relation:
    """E_node = E / D: experts are split into D contiguous blocks of equal size.

    With R redundant experts, E stands for the E + R physical experts.
    """
    return Relation("eq-e-node", E_node, "=", E / D)


def tokens_total() -> Relation:
    """T_total = D * B * Q new tokens in one decode step over all DP ranks."""
    return Relation("eq-t-total", T_total, "=", D * B * Q)


# --- MoE routing layer ------------------------------------------------------------------------


def tokens_per_rank() -> Relation:
    """Eq. (1): T_node = T_total / D = B * Q, exact because B counts requests per rank."""
    return Relation("eq-t-node", T_node, "=", tokens_total().rhs / D, printed=B * Q)


def routed_rows_per_expert() -> Expr:
    """Expected rows one expert receives: D * B * Q * K assignments spread evenly over E experts.

    The expectation is exact when every expert has the same marginal probability
    K / E of being picked by a token, whatever the correlation between one token's picks.
    """
    return K * tokens_total().rhs / E


def expert_rows_per_rank() -> Relation:
    """Eq. (2): T_expert,node ~ E_node * D*B*Q*K / E = B * Q * K, an expectation.

    The rows come from all D ranks, but one rank hosts E / D of the E experts,
    so it receives 1 / D of the D * B * Q * K assignments in expectation.
    """
    rhs = local_experts().rhs * routed_rows_per_expert()
    return Relation("eq-t-expert-node", T_expert_node, "≈", rhs, printed=tokens_per_rank().printed * K)


def max_rows_bound() -> Relation:
    """Eq. (3): m_max <~ alpha * T_expert,node / E_node for a skew factor alpha >= 1."""
    rhs = (alpha * T_expert_node / E_node).subs(T_expert_node, expert_rows_per_rank().rhs)
    return Relation("eq-m-max", m_max, "≲", rhs, printed=alpha * B * Q * K / E_node)


# --- GroupGEMM operator layer -----------------------------------------------------------------


def num_groups_bound() -> Relation:
    """Eq. (4): num_groups <= min(E_node, T_expert,node), an upper bound and not an expectation.

    An expert is active when it receives at least one row, so at most E_node
    experts and at most one expert per row can be active.
    """
    rhs = Min(E_node, T_expert_node).subs(T_expert_node, expert_rows_per_rank().rhs)
    return Relation("eq-num-groups-bound", num_groups, "≤", rhs, printed=Min(E_node, B * Q * K))


def mean_rows_per_expert() -> Relation:
    """Eq. (5): E[m[i]] ~ T_expert,node / E_node, averaged over all local experts.

    Empty experts count with m = 0 here, so the mean over active experts is at least
    as large, and strictly larger whenever some local expert is empty.
    """
    rhs = (T_expert_node / E_node).subs(T_expert_node, expert_rows_per_rank().rhs)
    return Relation("eq-mean-m", mean_m, "≈", rhs, printed=B * Q * K / E_node)


# --- Cross-layer mapping: E_node = E / D --------------------------------------------------------


def mean_rows_per_expert_global() -> Relation:
    """Eq. (5) restated without E_node: E[m[i]] ~ B * Q * K * D / E."""
    rhs = mean_rows_per_expert().rhs.subs(E_node, local_experts().rhs)
    return Relation("eq-mean-m-global", mean_m, "≈", rhs, printed=B * Q * K * D / E)


def num_groups_global() -> Relation:
    """Eq. (4) restated without E_node: E[num_groups] <= min(E / D, B * Q * K).

    The source article writes "≈". Because num_groups never exceeds the bound, its
    expectation cannot either.
    """
    rhs = num_groups_bound().rhs.subs(E_node, local_experts().rhs)
    return Relation("eq-num-groups-global", mean_num_groups, "≤", rhs, printed=Min(E / D, B * Q * K))


def num_groups_global_factored() -> Expr:
    """min(E / D, B*Q*K) with the positive factor K pulled out: K * min(E / (K*D), B*Q)."""
    return K * Min(E / (K * D), B * Q)


# --- Eqs. (6) and (7): DeepSeek-V3 constants substituted ------------------------------------------


def deepseek_v3_values(num_experts: int = DEEPSEEK_V3_NUM_EXPERTS, top_k: int = DEEPSEEK_V3_TOP_K) -> dict[Symbol, Integer]:
    """Return the substitution {E: num_experts, K: top_k}, by default DeepSeek-V3's 256 and 8."""
    return {E: Integer(num_experts), K: Integer(top_k)}


def num_groups_dsv3(num_experts: int = DEEPSEEK_V3_NUM_EXPERTS, top_k: int = DEEPSEEK_V3_TOP_K) -> Relation:
    """Eq. (6): the restated eq. (4) at E = num_experts, K = top_k, still an upper bound.

    The printed form is the factored restatement under the same substitution,
    which at E=256, K=8 reads 8 * min(32 / D, B*Q).
    """
    values = deepseek_v3_values(num_experts, top_k)
    return Relation(
        "eq-num-groups-dsv3", num_groups, "≤",
        num_groups_global().rhs.subs(values),
        printed=num_groups_global_factored().subs(values),
    )


def rows_per_group_dsv3(num_experts: int = DEEPSEEK_V3_NUM_EXPERTS, top_k: int = DEEPSEEK_V3_TOP_K) -> Relation:
    """Eq. (7): m[i] ~ ceil(E[m[i]]) with the restated eq. (5) at E = num_experts, K = top_k.

    Using one m for every active expert assumes that all of them receive the same rows.
    """
    values = deepseek_v3_values(num_experts, top_k)
    rhs = ceiling(mean_rows_per_expert_global().rhs.subs(values))
    return Relation("eq-m-dsv3", m_i, "≈", rhs)


def article_eq6_as_printed() -> Expr:
    """Eq. (6) as the source article prints it: 8 * min(32 / D, B*Q), the claim under test."""
    return 8 * Min(Rational(32) / D, B * Q)


def article_eq7_as_printed() -> Expr:
    """Eq. (7) as the source article prints it: ceil(B*Q*D / 32), the claim under test."""
    return ceiling(B * Q * D / 32)


def relations() -> list[Relation]:
    """Return the model's relations in the book's order."""
    return [
        local_experts(),
        tokens_total(),
        tokens_per_rank(),
        expert_rows_per_rank(),
        max_rows_bound(),
        num_groups_bound(),
        mean_rows_per_expert(),
        mean_rows_per_expert_global(),
        num_groups_global(),
        num_groups_dsv3(),
        rows_per_group_dsv3(),
    ]


# --- Identity checking --------------------------------------------------------------------------


class IdentityResult(NamedTuple):
    """One checked identity ``lhs == rhs`` and whether SymPy proved it."""

    name: str
    lhs: Expr
    rhs: Expr
    proved: bool


def is_identity(lhs: Expr, rhs: Expr) -> bool:
    """Return True when SymPy proves lhs - rhs == 0 under the symbols' assumptions.

    ``simplify`` alone cannot cancel Min terms, so the difference is also
    rewritten with Abs (min(a, b) = (a + b - |a - b|) / 2) and as a Piecewise.
    False means "not proved", which a wrong identity always gives.
    """
    difference = lhs - rhs
    if difference == 0 or simplify(difference) == 0:
        return True
    for target in (Abs, Piecewise):
        if simplify(difference.rewrite(target)) == 0:
            return True
    return False


def model_identities() -> list[tuple[str, Expr, Expr]]:
    """Return the identities the derivation rests on, as (name, lhs, rhs) triples.

    Each relation's derived right-hand side must equal its printed form. The
    extra identities tie eq. (3) to eq. (5), justify the factoring behind
    eq. (6), and compare eqs. (6) and (7) with the article's printed text.
    """
    identities = [
        (relation.label, relation.rhs, relation.printed)
        for relation in relations()
        if relation.printed is not None
    ]
    identities += [
        ("eq-m-max at alpha=1 equals eq-mean-m", max_rows_bound().rhs.subs(alpha, 1), mean_rows_per_expert().rhs),
        ("eq-num-groups-global factors out K", num_groups_global().rhs, num_groups_global_factored()),
        ("eq-num-groups-dsv3 as printed", num_groups_dsv3().rhs, article_eq6_as_printed()),
        ("eq-m-dsv3 as printed", rows_per_group_dsv3().rhs, article_eq7_as_printed()),
    ]
    return identities


def check_identities(identities: Iterable[tuple[str, Expr, Expr]] | None = None) -> list[IdentityResult]:
    """Check each (name, lhs, rhs) triple, by default ``model_identities()``, and report every result."""
    if identities is None:
        identities = model_identities()
    return [IdentityResult(name, lhs, rhs, is_identity(lhs, rhs)) for name, lhs, rhs in identities]


# --- Numbers from the symbolic model --------------------------------------------------------------


class _ExactPrinter(PythonCodePrinter):
    """Python printer that keeps rationals exact as ``Fraction`` instead of float division."""

    def _print_Rational(self, expr: Rational) -> str:
        return f"Fraction({expr.p}, {expr.q})"


def lambdify_exact(arguments: Sequence[Symbol], expr: Expr) -> Callable[..., Fraction | int]:
    """Compile ``expr`` into a Python function of ``arguments`` with exact rational arithmetic.

    Integer arguments are wrapped in Fraction so that division never falls back to floats.
    """
    compiled = lambdify(arguments, expr, modules=[{"Fraction": Fraction, "math": math}], printer=_ExactPrinter)

    def evaluate(*values: int | Fraction) -> Fraction | int:
        result = compiled(*(Fraction(value) for value in values))
        if isinstance(result, Fraction) and result.denominator == 1:
            return int(result)
        return result

    return evaluate


def _to_number(value: Expr) -> int | Fraction:
    if not value.is_Rational:
        raise ValueError(f"expression did not evaluate to a rational number: {value}")
    return int(value) if value.is_Integer else Fraction(int(value.p), int(value.q))


@dataclass(frozen=True)
class ArticleShape:
    """Eqs. (5)-(7) evaluated at one (B, Q, D) with DeepSeek-V3's E and K."""

    batch_size: int
    q_len: int
    dp_size: int
    local_experts: int
    num_groups: int
    rows_per_group: int
    mean_rows: Fraction
    rows_routed: int

    @property
    def rows_article(self) -> int:
        """Rows implied by eqs. (6) and (7) together: num_groups * m."""
        return self.num_groups * self.rows_per_group


def evaluate_article_shape(batch_size: int, q_len: int, dp_size: int) -> ArticleShape:
    """Evaluate eqs. (2), (5), (6) and (7) at one configuration.

    Raises ParameterError, through EngineConfig, unless B, Q, D are positive
    integers and D divides the 256 experts.
    """
    config = EngineConfig(batch_size, q_len, dp_size)
    point = {B: batch_size, Q: q_len, D: dp_size, **deepseek_v3_values(config.num_experts, config.top_k)}
    return ArticleShape(
        batch_size=batch_size,
        q_len=q_len,
        dp_size=dp_size,
        local_experts=_to_number(local_experts().rhs.subs(point)),
        num_groups=_to_number(num_groups_dsv3(config.num_experts, config.top_k).rhs.subs(point)),
        rows_per_group=_to_number(rows_per_group_dsv3(config.num_experts, config.top_k).rhs.subs(point)),
        mean_rows=Fraction(_to_number(mean_rows_per_expert_global().rhs.subs(point))),
        rows_routed=_to_number(expert_rows_per_rank().rhs.subs(point)),
    )


def article_shape_table(cases: Iterable[tuple[int, int, int]]) -> list[ArticleShape]:
    """Evaluate ``evaluate_article_shape`` at each (B, Q, D) case, in order."""
    return [evaluate_article_shape(batch_size, q_len, dp_size) for batch_size, q_len, dp_size in cases]
