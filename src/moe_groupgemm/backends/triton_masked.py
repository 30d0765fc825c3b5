"""A Triton masked grouped GEMM over the masked layout, one program per (group, M tile, N tile).

On a CPU it runs only under Triton's interpreter (``TRITON_INTERPRET=1``),
which has no bfloat16, so there it checks correctness in float32 and is far
too slow to time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass

import torch

from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.backends.masked_layout import MaskedLayout, masked_to_rows, to_masked_layout

INTERPRETER_DTYPES = (torch.float32,)
CUDA_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
_KERNEL_MODULE = "moe_groupgemm.backends.triton_masked_kernel"


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes and launch options of one kernel launch."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def tile_config(max_m: int, interpreted: bool) -> TileConfig:
    """Pick tiles: the smallest power-of-two M tile >= max_m (16 to 64), since decode m is small.

    ``tl.dot`` needs every tile side to be at least 16.
    """
    block_m = 16
    while block_m < min(max_m, 64):
        block_m *= 2
    if interpreted:
        # The interpreter's cost grows with the number of programs and K steps, not tile area.
        return TileConfig(block_m=block_m, block_n=32, block_k=32, num_warps=1, num_stages=1)
    # NOTE: not yet run on a GPU; these tiles are an untuned first guess for Hopper.
    return TileConfig(block_m=block_m, block_n=64, block_k=128, num_warps=4, num_stages=4)


def _interpret_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@dataclass
class _TritonMaskedState:
    layout: MaskedLayout
    weights: torch.Tensor
    out: torch.Tensor
    grid: tuple[int, int, int]
    config: TileConfig
    input_precision: str


class TritonMaskedBackend(Backend):
    """Triton kernel that skips M tiles beyond masked_m and masks rows inside the last tile."""

    name = "triton_masked"

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed"
        interpret = _interpret_requested()
        loaded = sys.modules.get(_KERNEL_MODULE)
        if loaded is not None and loaded.INTERPRETED != interpret:
            return (f"the kernel was built with TRITON_INTERPRET={int(loaded.INTERPRETED)} but it is now "
                    f"{int(interpret)}; start a new Python process")
        if device.type == "cpu":
            if not interpret:
                return "on a CPU Triton runs only in its interpreter; set TRITON_INTERPRET=1 before the first call"
            if dtype not in INTERPRETER_DTYPES:
                return f"the Triton interpreter supports {INTERPRETER_DTYPES} here, not {dtype} (numpy has no bfloat16)"
            return None
        if device.type == "cuda":
            # NOTE: the CUDA path has not yet run on a GPU.
            try:
                import triton  # noqa: F401
            except ImportError as error:
                return f"import triton failed: {error}"
            if interpret:
                return "TRITON_INTERPRET=1 runs kernels on the CPU; unset it to run on CUDA"
            if dtype not in CUDA_DTYPES:
                return f"triton_masked supports {CUDA_DTYPES}, not {dtype}"
            return None
        return f"triton_masked has no path for device type {device.type}"

    def prepare(self, problem: GroupGemmProblem) -> _TritonMaskedState:
        import triton

        layout = to_masked_layout(problem)
        n = problem.weights.shape[1]
        config = tile_config(layout.max_m, _interpret_requested())
        grid = (triton.cdiv(n, config.block_n), triton.cdiv(layout.max_m, config.block_m), problem.num_groups)
        out = problem.x.new_empty((problem.num_groups, layout.max_m, n))
        # fp32 inputs would otherwise be rounded to TF32 on the GPU.
        input_precision = "ieee" if problem.x.dtype == torch.float32 else "tf32"
        return _TritonMaskedState(layout, problem.weights, out, grid, config, input_precision)

    def run(self, state: _TritonMaskedState) -> torch.Tensor:
        from moe_groupgemm.backends.triton_masked_kernel import masked_group_gemm_kernel

        x, weights, out, config = state.layout.x, state.weights, state.out, state.config
        masked_group_gemm_kernel[state.grid](
            x, weights, out, state.layout.masked_m,
            weights.shape[1], weights.shape[2],
            *x.stride(), *weights.stride(), *out.stride(),
            BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
            INPUT_PRECISION=state.input_precision,
            num_warps=config.num_warps, num_stages=config.num_stages,
        )
        return out

    def to_rows(self, state: _TritonMaskedState, output: torch.Tensor) -> torch.Tensor:
        return masked_to_rows(state.layout, output)
