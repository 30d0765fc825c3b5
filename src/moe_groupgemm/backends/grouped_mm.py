"""``torch.nn.functional.grouped_mm`` on the contiguous row layout, one weight matrix per group.

Checked on torch 2.13.0+cpu: the CPU kernel accepts float32, bfloat16 and
float16 and rejects float64 and FP8. ``offs`` must hold int32 cumulative group
ends. Every stride of both operands must be a multiple of 16 bytes, so
K * element size must be a multiple of 16. The CUDA kernel is documented for
bfloat16 on compute capability 8.0 and newer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.errors import ParameterError

CPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CUDA_DTYPES = (torch.bfloat16,)
STRIDE_ALIGNMENT_BYTES = 16


@dataclass
class _GroupedMmState:
    x: torch.Tensor
    weights_transposed: torch.Tensor
    offsets: torch.Tensor


class GroupedMmBackend(Backend):
    """One ``grouped_mm`` call with ``offs`` = cumulative m[i]."""

    name = "grouped_mm"

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if not hasattr(F, "grouped_mm"):
            return f"torch {torch.__version__} has no torch.nn.functional.grouped_mm (added in torch 2.10)"
        if device.type == "cpu":
            if dtype not in CPU_DTYPES:
                return f"the CPU grouped_mm kernel accepts {CPU_DTYPES}, not {dtype}"
            return None
        if device.type == "cuda":
            # NOTE: not yet run on a GPU; the dtype and capability limits come from the torch docs.
            if dtype not in CUDA_DTYPES:
                return f"the CUDA grouped_mm kernel accepts {CUDA_DTYPES}, not {dtype}"
            capability = torch.cuda.get_device_capability(device)
            if capability < (8, 0):
                return f"CUDA grouped_mm needs compute capability >= 8.0, this GPU has {capability}"
            return None
        return f"grouped_mm has no kernel for device type {device.type}"

    def prepare(self, problem: GroupGemmProblem) -> _GroupedMmState:
        k = problem.x.shape[1]
        element_size = problem.x.element_size()
        if (k * element_size) % STRIDE_ALIGNMENT_BYTES != 0:
            raise ParameterError(
                "k", k, f"K * {element_size} 字节为 {STRIDE_ALIGNMENT_BYTES} 的倍数",
                f"grouped_mm 要求行跨度按 {STRIDE_ALIGNMENT_BYTES} 字节对齐；把 K 取为 "
                f"{STRIDE_ALIGNMENT_BYTES // element_size} 的倍数",
            )
        offsets = torch.tensor(problem.rows, dtype=torch.int64).cumsum(0).to(problem.x.device, torch.int32)
        return _GroupedMmState(problem.x.contiguous(), problem.weights.transpose(1, 2), offsets)

    def run(self, state: _GroupedMmState) -> torch.Tensor:
        return F.grouped_mm(state.x, state.weights_transposed, offs=state.offsets)
