"""Backends against the float64 reference at small shapes, plus the layout and FP8 helpers they use."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from moe_groupgemm.backends import Backend, GroupGemmProblem, backend_names, get_backend
from moe_groupgemm.backends import fp8_blockwise
from moe_groupgemm.backends.masked_layout import masked_to_rows, to_masked_layout
from moe_groupgemm.backends.torch_loop import reference_group_gemm
from moe_groupgemm.backends.triton_masked import tile_config
from moe_groupgemm.correctness import check_backend
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.tolerances import absolute_tolerance

CPU = torch.device("cpu")
SRC = Path(__file__).resolve().parents[1] / "src"

# m=1 in one group, uneven rows, a group with no rows (DeepEP hands those to the kernel too),
# and K=512 so FP8's 128-column blocks and grouped_mm's 16-byte strides both fit.
ROW_CASES = {
    "single_group_m1": (1,),
    "uneven": (3, 1, 17),
    "empty_group": (2, 0, 5),
}
N, K = 48, 512


def make_problem(rows: tuple[int, ...], dtype: torch.dtype, n: int = N, k: int = K, seed: int = 0) -> GroupGemmProblem:
    """x ~ N(0, 1) and W ~ N(0, 1/K), the scaling the tolerances assume."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(rows), k, generator=generator).to(dtype)
    weights = (torch.randn(len(rows), n, k, generator=generator) / math.sqrt(k)).to(dtype)
    return GroupGemmProblem(x, weights, rows)


def cpu_backends(dtype: torch.dtype) -> list[str]:
    return [name for name in backend_names() if get_backend(name).availability(CPU, dtype) is None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_cpu_backends_match_reference(dtype: torch.dtype, case: str) -> None:
    names = cpu_backends(dtype)
    assert {"torch_loop", "masked_bmm", "grouped_mm"} <= set(names), f"CPU backends in {dtype}: {names}"
    for name in names:
        result = check_backend(get_backend(name), make_problem(ROW_CASES[case], dtype))
        assert result.passed, result.message


def test_triton_masked_matches_reference_in_interpreter() -> None:
    # Triton picks interpreter or GPU mode when a kernel is decorated, so run in a fresh process.
    script = textwrap.dedent(
        f"""
        import math, torch
        from moe_groupgemm.backends import GroupGemmProblem, get_backend
        from moe_groupgemm.correctness import check_backend
        backend = get_backend("triton_masked")
        assert backend.availability(torch.device("cpu"), torch.float32) is None
        failures = []
        for rows in {list(ROW_CASES.values())!r}:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(sum(rows), {K}, generator=generator)
            weights = torch.randn(len(rows), {N}, {K}, generator=generator) / math.sqrt({K})
            result = check_backend(backend, GroupGemmProblem(x, weights, tuple(rows)))
            print(result.message)
            if not result.passed:
                failures.append(result.message)
        assert not failures, failures
        """
    )
    environment = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(SRC)}
    completed = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr[-3000:]}"


def test_triton_masked_on_cpu_needs_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = get_backend("triton_masked").availability(CPU, torch.float32)
    assert reason is not None
    assert "TRITON_INTERPRET=1" in reason, reason


def test_triton_interpreter_rejects_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    reason = get_backend("triton_masked").availability(CPU, torch.bfloat16)
    assert reason is not None
    assert "bfloat16" in reason, reason


def test_deepgemm_unavailable_on_cpu() -> None:
    reason = get_backend("deepgemm_fp8_masked").availability(CPU, torch.bfloat16)
    assert reason is not None
    assert "cpu" in reason, reason


@pytest.mark.parametrize("name", ["torch_loop", "masked_bmm", "grouped_mm"])
def test_fp8_inputs_rejected_with_reason(name: str) -> None:
    reason = get_backend(name).availability(CPU, torch.float8_e4m3fn)
    assert reason, f"{name} accepted float8_e4m3fn on the CPU"


def test_grouped_mm_rejects_float64() -> None:
    reason = get_backend("grouped_mm").availability(CPU, torch.float64)
    assert reason is not None
    assert "float64" in reason, reason


def test_grouped_mm_misaligned_k_names_parameter() -> None:
    problem = make_problem((2, 3), torch.bfloat16, k=36)  # 36 * 2 bytes is not a multiple of 16
    with pytest.raises(ParameterError) as raised:
        get_backend("grouped_mm").prepare(problem)
    assert raised.value.name == "k", str(raised.value)
    assert raised.value.value == 36, str(raised.value)


def test_check_backend_rejects_unavailable_backend() -> None:
    problem = make_problem((1,), torch.bfloat16)
    with pytest.raises(ParameterError) as raised:
        check_backend(get_backend("deepgemm_fp8_masked"), problem)
    assert raised.value.name == "backend", str(raised.value)


class _SwappedWeightsBackend(Backend):
    """Multiplies each group by the next group's weights: a realistic indexing bug."""

    name = "swapped_weights"

    def run(self, state: GroupGemmProblem) -> torch.Tensor:
        rolled = torch.roll(state.weights, shifts=1, dims=0)
        outputs, start = [], 0
        for group, m in enumerate(state.rows):
            outputs.append(state.x[start:start + m] @ rolled[group].T)
            start += m
        return torch.cat(outputs)


def test_check_backend_reports_wrong_output() -> None:
    problem = make_problem((3, 1, 17), torch.float32)
    result = check_backend(_SwappedWeightsBackend(), problem)
    assert not result.passed, result.message
    assert result.max_abs_error > absolute_tolerance(torch.float32), result.message
    assert "rows=(3, 1, 17)" in result.message, result.message
    assert "first: (row=" in result.message, result.message


def test_masked_layout_round_trip() -> None:
    problem = make_problem((2, 0, 5), torch.float32)
    layout = to_masked_layout(problem, row_alignment=4)
    assert tuple(layout.x.shape) == (3, 8, K), tuple(layout.x.shape)
    assert layout.masked_m.tolist() == [2, 0, 5], layout.masked_m
    assert torch.equal(masked_to_rows(layout, layout.x), problem.x)
    padding = layout.x[0, 2:].abs().sum() + layout.x[1].abs().sum() + layout.x[2, 5:].abs().sum()
    assert float(padding) == 0.0, f"padding rows hold {float(padding)}"


@pytest.mark.parametrize(("max_m", "block_m"), [(1, 16), (16, 16), (17, 32), (20, 32), (64, 64), (500, 64)])
def test_triton_tile_m_covers_decode_rows(max_m: int, block_m: int) -> None:
    assert tile_config(max_m, interpreted=False).block_m == block_m, f"max_m={max_m}"


def test_fp8_per_token_round_trip_error() -> None:
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(1))
    values, scales = fp8_blockwise.quantize_per_token(x)
    assert values.dtype == torch.float8_e4m3fn, values.dtype
    assert tuple(scales.shape) == (5, 2), scales.shape
    error = (fp8_blockwise.dequantize_per_token(values, scales) - x).abs()
    # e4m3 keeps 3 mantissa bits: rounding error is at most 2^-4 of the value, plus the
    # subnormal step (2^-9 of the block scale) for values near zero.
    bound = x.abs() * 2**-4 + scales.repeat_interleave(128, dim=-1) * 2**-9
    assert bool((error <= bound).all()), f"max error {float(error.max()):.3e}"


def test_fp8_per_block_scales_shape_with_partial_block() -> None:
    weight = torch.randn(200, 256, generator=torch.Generator().manual_seed(2))
    values, scales = fp8_blockwise.quantize_per_block(weight)
    assert tuple(values.shape) == (200, 256), values.shape
    assert tuple(scales.shape) == (2, 2), scales.shape
    relative = (fp8_blockwise.dequantize_per_block(values, scales) - weight).norm() / weight.norm()
    assert float(relative) < 0.05, f"relative error {float(relative):.3e}"


def test_fp8_power_of_two_scales() -> None:
    x = torch.randn(3, 128, generator=torch.Generator().manual_seed(3)) * 7
    _, scales = fp8_blockwise.quantize_per_token(x, power_of_two=True)
    exponents = torch.log2(scales)
    assert torch.equal(exponents, exponents.round()), scales


def test_fp8_rejects_k_not_multiple_of_128() -> None:
    with pytest.raises(ParameterError) as raised:
        fp8_blockwise.quantize_per_token(torch.randn(2, 100))
    assert raised.value.name == "k", str(raised.value)
    assert raised.value.value == 100, str(raised.value)


def test_fp8_block_scaled_gemm_within_fp8_tolerance() -> None:
    # What deepgemm_fp8_masked computes, emulated on the CPU: the quantized product must stay
    # within the FP8 tolerance of the exact product of the unquantized inputs.
    problem = make_problem((1, 4, 9), torch.float32, n=256, k=1024)
    x_values, x_scales = fp8_blockwise.quantize_per_token(problem.x)
    w_values, w_scales = fp8_blockwise.quantize_weights(problem.weights)
    emulated = GroupGemmProblem(
        fp8_blockwise.dequantize_per_token(x_values, x_scales),
        fp8_blockwise.dequantize_per_block(w_values, w_scales),
        problem.rows,
    )
    error = (reference_group_gemm(emulated) - reference_group_gemm(problem)).abs().max()
    tolerance = absolute_tolerance(torch.float8_e4m3fn)
    assert float(error) <= tolerance, f"max error {float(error):.3e} > {tolerance}"
