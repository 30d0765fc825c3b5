"""Engine configuration of one decode step: the first layer of the model.

The symbols follow the book: B requests per DP rank, Q new tokens per request,
and D data-parallel ranks, which equal the expert-parallel size under DP attention.
Each token picks Top-K of E routed experts. SGLang's ``--ep-num-redundant-experts``
adds R redundant physical experts.
"""

from __future__ import annotations

from dataclasses import dataclass

from moe_groupgemm.errors import ParameterError

# DeepSeek-V3 routing constants (config_671B.json in deepseek-ai/DeepSeek-V3:
# n_routed_experts=256, num_experts_per_tok=8, n_group=8, topk_group=4).
DEEPSEEK_V3_NUM_EXPERTS = 256
DEEPSEEK_V3_TOP_K = 8
DEEPSEEK_V3_EXPERT_GROUPS = 8
DEEPSEEK_V3_TOPK_GROUPS = 4

# Gate+up projection of one expert: hidden_size=7168 in, 2*moe_intermediate_size=4096 out.
DEEPSEEK_V3_GEMM_N = 4096
DEEPSEEK_V3_GEMM_K = 7168


def require_positive_int(name: str, value: object, fix: str | None = None) -> int:
    """Return ``value`` as an int, raising ParameterError unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ParameterError(name, value, "正整数", fix or f"把 {name} 设为大于 0 的整数")
    return value


@dataclass(frozen=True)
class EngineConfig:
    """One decode step on one DP rank: B, Q, D, Top-K, E and R."""

    batch_size: int
    q_len: int
    dp_size: int
    top_k: int = DEEPSEEK_V3_TOP_K
    num_experts: int = DEEPSEEK_V3_NUM_EXPERTS
    redundant_experts: int = 0

    def __post_init__(self) -> None:
        require_positive_int("batch_size", self.batch_size)
        require_positive_int("q_len", self.q_len)
        require_positive_int("dp_size", self.dp_size)
        require_positive_int("num_experts", self.num_experts)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= self.num_experts:
            raise ParameterError(
                "top_k", self.top_k, f"1…{self.num_experts} 的整数（不超过 num_experts）",
                "DeepSeek-V3 使用 top_k=8",
            )
        if isinstance(self.redundant_experts, bool) or not isinstance(self.redundant_experts, int) or self.redundant_experts < 0:
            raise ParameterError(
                "redundant_experts", self.redundant_experts, "非负整数", "不使用冗余专家时设为 0",
            )
        if self.physical_experts % self.dp_size != 0:
            divisors = [d for d in range(1, self.physical_experts + 1) if self.physical_experts % d == 0]
            raise ParameterError(
                "dp_size", self.dp_size,
                f"能整除物理专家数 {self.physical_experts} 的正整数，即 {divisors}",
                "选择能整除 num_experts + redundant_experts 的 dp_size，使每张卡的本地专家数相同",
            )

    @property
    def physical_experts(self) -> int:
        """E_phys = E + R, the expert slots spread over the D ranks."""
        return self.num_experts + self.redundant_experts

    @property
    def local_experts(self) -> int:
        """E_node = E_phys / D, the experts held by one rank."""
        return self.physical_experts // self.dp_size

    @property
    def tokens_per_rank(self) -> int:
        """T_node = B * Q, eq. (1)."""
        return self.batch_size * self.q_len

    @property
    def tokens_total(self) -> int:
        """D * B * Q tokens across all DP ranks in one step."""
        return self.dp_size * self.tokens_per_rank
