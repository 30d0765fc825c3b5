"""Reference backend: one ``torch.matmul`` per active expert."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_groupgemm.backends.base import Backend, GroupGemmProblem


def reference_group_gemm(problem: GroupGemmProblem) -> torch.Tensor:
    """Compute y[rows of group i] = x[rows of group i] @ W_i^T in float64 on the CPU.

    The correctness check compares every backend with this result.
    """
    x = problem.x.detach().to("cpu", torch.float64)
    weights = problem.weights.detach().to("cpu", torch.float64)
    outputs = []
    start = 0
    for group, m in enumerate(problem.rows):
        outputs.append(x[start:start + m] @ weights[group].T)
        start += m
    return torch.cat(outputs) if outputs else x.new_zeros((0, weights.shape[1]))


@dataclass
class _LoopState:
    problem: GroupGemmProblem
    out: torch.Tensor


class TorchLoopBackend(Backend):
    """A Python loop of per-expert matmuls, in the input dtype on the input device."""

    name = "torch_loop"

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            # torch 2.13's CPU matmul accepts FP8 but rounds the output to FP8 as well, which no FP8 GEMM does.
            return f"torch.matmul in {dtype} writes an FP8 output without scales; use deepgemm_fp8_masked for FP8"
        return None

    def prepare(self, problem: GroupGemmProblem) -> _LoopState:
        out = problem.x.new_empty((problem.x.shape[0], problem.weights.shape[1]))
        return _LoopState(problem, out)

    def run(self, state: _LoopState) -> torch.Tensor:
        x, weights, out = state.problem.x, state.problem.weights, state.out
        start = 0
        for group, m in enumerate(state.problem.rows):
            torch.matmul(x[start:start + m], weights[group].T, out=out[start:start + m])
            start += m
        return out
