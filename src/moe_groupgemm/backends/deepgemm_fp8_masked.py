"""DeepGEMM's FP8 masked grouped GEMM, the kernel SGLang runs on DeepEP low-latency output.

``prepare`` quantizes activations (1x128 scales) and weights (128x128 scales)
to e4m3 and scatters rows into the masked layout. ``run``, the timed part, is
the GEMM alone, which writes bfloat16. The call is
``m_grouped_fp8_gemm_nt_masked((a, sfa), (b, sfb), d, masked_m, expected_m)``
(DeepGEMM 2.x), or ``m_grouped_gemm_fp8_fp8_bf16_nt_masked`` with the same
arguments in DeepGEMM 1.x.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import torch

from moe_groupgemm.backends import fp8_blockwise
from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.backends.masked_layout import MaskedLayout, masked_to_rows, to_masked_layout

# Source dtypes that prepare quantizes to FP8; an FP8 problem is re-quantized with block scales.
SOURCE_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float8_e4m3fn)
# DeepGEMM's largest M tile; padding max_m to it keeps every TMA box inside the tensor.
MASKED_ROW_ALIGNMENT = 128


def _masked_gemm_function(deep_gemm: Any) -> Callable[..., Any] | None:
    for name in ("m_grouped_fp8_gemm_nt_masked", "m_grouped_gemm_fp8_fp8_bf16_nt_masked"):
        function = getattr(deep_gemm, name, None)
        if function is not None:
            return function
    return None


@dataclass
class _DeepGemmState:
    layout: MaskedLayout
    lhs: tuple[torch.Tensor, torch.Tensor]
    rhs: tuple[torch.Tensor, torch.Tensor]
    out: torch.Tensor
    expected_m: int
    gemm: Callable[..., Any]
    keyword_arguments: dict[str, Any]


class DeepGemmFp8MaskedBackend(Backend):
    """DeepGEMM ``m_grouped_fp8_gemm_nt_masked`` with DeepSeek-V3's FP8 block scaling."""

    name = "deepgemm_fp8_masked"

    def compute_dtype(self, input_dtype: torch.dtype) -> torch.dtype:
        return torch.float8_e4m3fn

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if device.type != "cuda":
            return f"DeepGEMM runs only on NVIDIA GPUs, not on {device.type}"
        if importlib.util.find_spec("deep_gemm") is None:
            return "the deep_gemm package is not installed (github.com/deepseek-ai/DeepGEMM)"
        # NOTE: everything below has not yet run on a GPU.
        major, minor = torch.cuda.get_device_capability(device)
        if major not in (9, 10):
            return f"DeepGEMM's FP8 kernels need SM90 or SM100, this GPU is SM{major}{minor}"
        try:
            deep_gemm = importlib.import_module("deep_gemm")
        except Exception as error:  # noqa: BLE001 - an extension import can fail in many ways
            return f"import deep_gemm failed: {type(error).__name__}: {error}"
        if _masked_gemm_function(deep_gemm) is None:
            return f"deep_gemm {getattr(deep_gemm, '__version__', '?')} has no masked FP8 grouped GEMM"
        if dtype not in SOURCE_DTYPES:
            return f"deepgemm_fp8_masked quantizes inputs from {SOURCE_DTYPES}, not from {dtype}"
        return None

    def prepare(self, problem: GroupGemmProblem) -> _DeepGemmState:
        # NOTE: not yet run on a GPU.
        import deep_gemm

        device = problem.x.device
        major, _ = torch.cuda.get_device_capability(device)
        # SM100 kernels read e8m0 scales: quantize with power-of-two scales so the cast is exact.
        power_of_two = major >= 10

        if problem.x.dtype == torch.float8_e4m3fn:
            # Scatter in bfloat16 (exact for e4m3 values) rather than rely on FP8 index_put.
            problem = GroupGemmProblem(problem.x.to(torch.bfloat16), problem.weights, problem.rows)
        layout = to_masked_layout(problem, row_alignment=MASKED_ROW_ALIGNMENT)
        lhs_values, lhs_scales = fp8_blockwise.quantize_per_token(layout.x, power_of_two)
        # Quantized on every prepare (one expert at a time) rather than cached: a cache keyed on the
        # tensor's address could serve stale weights once the allocator reuses that address.
        rhs_values, rhs_scales = fp8_blockwise.quantize_weights(problem.weights, power_of_two)

        keyword_arguments: dict[str, Any] = {}
        if hasattr(deep_gemm, "m_grouped_fp8_gemm_nt_masked"):
            keyword_arguments["disable_ue8m0_cast"] = not power_of_two
        if major == 9:
            # The SM90 kernel reads activation scales M-major and TMA-aligned, and it converts any
            # other layout on every call. Converting here keeps that copy out of the timed run.
            to_tma_layout = getattr(deep_gemm, "get_mn_major_tma_aligned_tensor", None) or getattr(
                deep_gemm, "get_col_major_tma_aligned_tensor", None
            )
            if to_tma_layout is not None:
                lhs_scales = to_tma_layout(lhs_scales)

        out = torch.empty(
            (problem.num_groups, layout.max_m, problem.weights.shape[1]), dtype=torch.bfloat16, device=device
        )
        # expected_m is the kernel's tile-choice hint: here the mean valid rows per group, rounded up.
        # SGLang passes (T*D*K + E) // E instead, about the mean over all local experts plus one.
        expected_m = max(1, -(-sum(problem.rows) // max(problem.num_groups, 1)))
        return _DeepGemmState(
            layout=layout,
            lhs=(lhs_values, lhs_scales),
            rhs=(rhs_values, rhs_scales),
            out=out,
            expected_m=expected_m,
            gemm=_masked_gemm_function(deep_gemm),
            keyword_arguments=keyword_arguments,
        )

    def run(self, state: _DeepGemmState) -> torch.Tensor:
        state.gemm(state.lhs, state.rhs, state.out, state.layout.masked_m, state.expected_m,
                   **state.keyword_arguments)
        return state.out

    def to_rows(self, state: _DeepGemmState, output: torch.Tensor) -> torch.Tensor:
        return masked_to_rows(state.layout, output)
