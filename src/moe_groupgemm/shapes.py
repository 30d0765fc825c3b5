"""GroupGEMM shapes: the operator's inputs num_groups and m[i], plus the fixed N and K."""

from __future__ import annotations

from dataclasses import dataclass

from moe_groupgemm import formula
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.errors import ParameterError


@dataclass(frozen=True)
class GroupGemmShape:
    """Rows per active group and the GEMM's N (output features) and K (input features).

    Group i computes y_i[m_i, N] = x_i[m_i, K] @ W_i[N, K]^T with its own W_i.
    """

    rows: tuple[int, ...]
    n: int
    k: int

    def __post_init__(self) -> None:
        if any(m <= 0 for m in self.rows):
            raise ParameterError("rows", self.rows, "每个激活组的行数都为正整数", "去掉行数为 0 的组，它们不参与计算")

    @property
    def num_groups(self) -> int:
        return len(self.rows)

    @property
    def total_rows(self) -> int:
        return sum(self.rows)

    @property
    def max_rows(self) -> int:
        return max(self.rows, default=0)

    def flops(self) -> int:
        """Return 2 * sum(m[i]) * N * K: every multiply-add counts as two FLOPs."""
        return 2 * self.total_rows * self.n * self.k

    def bytes_moved(self, element_bytes: int) -> int:
        """Weights, activations and outputs read or written once: sum over groups of (N*K + m*K + m*N)."""
        weights = self.num_groups * self.n * self.k
        activations = self.total_rows * self.k
        outputs = self.total_rows * self.n
        return element_bytes * (weights + activations + outputs)


def formula_shape(config: EngineConfig, n: int, k: int) -> GroupGemmShape:
    """Shape from the article's eqs. (6) and (7): num_groups groups of m rows each."""
    num_groups = formula.article_num_groups(config)
    rows = formula.article_rows_per_group(config)
    return GroupGemmShape(rows=(rows,) * num_groups, n=n, k=k)
