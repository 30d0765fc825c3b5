"""Batched GEMM over the masked layout: every group computes all max_m rows, padding included.

This is what a plain ``torch.bmm`` costs on DeepEP's low-latency output, the
layout DeepGEMM's masked kernel reads. The padding rows are computed and then
dropped by ``to_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.backends.masked_layout import MaskedLayout, masked_to_rows, to_masked_layout

_FLOAT8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


@dataclass
class _MaskedBmmState:
    layout: MaskedLayout
    weights_transposed: torch.Tensor
    out: torch.Tensor


class MaskedBmmBackend(Backend):
    """``torch.bmm(x[G, max_m, K], W^T[G, K, N])`` in the input dtype."""

    name = "masked_bmm"

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if dtype in _FLOAT8_DTYPES:
            return f"torch.bmm has no {dtype} kernel; use deepgemm_fp8_masked for FP8"
        return None

    def prepare(self, problem: GroupGemmProblem) -> _MaskedBmmState:
        layout = to_masked_layout(problem)
        # A transposed view, not a copy: bmm passes the transpose flag to the GEMM library.
        weights_transposed = problem.weights.transpose(1, 2)
        out = problem.x.new_empty((problem.num_groups, layout.max_m, problem.weights.shape[1]))
        return _MaskedBmmState(layout, weights_transposed, out)

    def run(self, state: _MaskedBmmState) -> torch.Tensor:
        return torch.bmm(state.layout.x, state.weights_transposed, out=state.out)

    def to_rows(self, state: _MaskedBmmState, output: torch.Tensor) -> torch.Tensor:
        return masked_to_rows(state.layout, output)
