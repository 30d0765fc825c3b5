"""Correctness checks of a backend's output against a float64 reference."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.backends.torch_loop import reference_group_gemm
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.tolerances import absolute_tolerance

# Failing elements listed in a failure message.
REPORTED_BAD_ELEMENTS = 5


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one comparison; ``message`` describes the whole case."""

    passed: bool
    max_abs_error: float
    tolerance: float
    message: str
    # max |actual - expected| divided by max |expected|; NaN where a check does not compute it.
    max_rel_error: float = float("nan")


def sampled_row_indices(rows: tuple[int, ...], rows_per_group: int) -> torch.Tensor:
    """Global row indices of the first ``rows_per_group`` rows and the last row of every group."""
    indices: list[int] = []
    start = 0
    for m in rows:
        picked = set(range(min(m, rows_per_group))) | {m - 1}
        indices.extend(start + offset for offset in sorted(picked))
        start += m
    return torch.tensor(indices, dtype=torch.long)


def check_sampled_rows(
    problem: GroupGemmProblem, output: torch.Tensor, dtype: torch.dtype, rows_per_group: int = 8
) -> CheckResult:
    """Compare sampled output rows of every group with float64 ``x_i @ W_i^T``.

    Sampling keeps the check cheap at the real shape, where a full float64 copy
    of the weights would need 8 bytes per element of every expert. Every group
    is still checked, so a wrong weight-to-group mapping is caught.
    """
    tolerance = absolute_tolerance(dtype)
    expected_shape = (sum(problem.rows), problem.weights.shape[1])
    if tuple(output.shape) != expected_shape:
        return CheckResult(False, float("inf"), tolerance,
                           f"output shape {tuple(output.shape)} != expected {expected_shape}, rows={problem.rows}")

    indices = sampled_row_indices(problem.rows, rows_per_group)
    group_of_row = torch.repeat_interleave(torch.arange(len(problem.rows)), torch.tensor(problem.rows, dtype=torch.long))
    # The reference runs in float64 on the problem's own device, one group at a time, so a
    # GPU check never copies the weights to the host.
    device = problem.x.device
    x = problem.x.detach()
    actual = output.detach().to(device, torch.float64)
    max_error = 0.0
    worst = ""
    for group in range(len(problem.rows)):
        selected = indices[group_of_row[indices] == group].to(device)
        weight = problem.weights[group].detach().to(torch.float64)
        expected = x[selected].to(torch.float64) @ weight.T
        error = (actual[selected] - expected).abs()
        group_max = float(error.max()) if error.numel() else 0.0
        if not group_max <= max_error:
            max_error = group_max
            flat = int(error.argmax())
            row = int(selected[flat // error.shape[1]])
            column = flat % error.shape[1]
            worst = (f"group={group}, row={row}, column={column}, "
                     f"actual={float(actual[row, column]):.5g}, expected={float(expected.flatten()[flat]):.5g}")

    passed = max_error <= tolerance
    message = (f"rows={problem.rows}, n={problem.weights.shape[1]}, k={problem.weights.shape[2]}, dtype={dtype}, "
               f"max_abs_error={max_error:.3e}, tolerance={tolerance:.1e}" + (f", worst at {worst}" if worst else ""))
    return CheckResult(passed, max_error, tolerance, message)


def _describe_case(backend: Backend, problem: GroupGemmProblem, compute_dtype: torch.dtype) -> str:
    return (f"backend={backend.name}, device={problem.x.device}, input_dtype={problem.x.dtype}, "
            f"compute_dtype={compute_dtype}, num_groups={problem.num_groups}, rows={problem.rows}, "
            f"n={problem.weights.shape[1]}, k={problem.weights.shape[2]}")


def check_backend(backend: Backend, problem: GroupGemmProblem) -> CheckResult:
    """Run ``backend`` once on ``problem`` and compare every output element with ``reference_group_gemm``.

    The tolerance is the absolute one for the backend's compute dtype, so inputs must be
    scaled as ``tolerances`` assumes (x ~ N(0, 1), W ~ N(0, 1/K)). The reference holds the
    weights in float64 on the CPU, 8 bytes per element, so keep the problem small.
    Raises ParameterError if the backend is unavailable for the problem's device and dtype.
    """
    reason = backend.availability(problem.x.device, problem.x.dtype)
    if reason is not None:
        raise ParameterError("backend", backend.name, f"在 {problem.x.device} 上以 {problem.x.dtype} 可用的后端",
                             f"换用可用的后端（不可用原因：{reason}）")

    compute_dtype = backend.compute_dtype(problem.x.dtype)
    tolerance = absolute_tolerance(compute_dtype)
    case = _describe_case(backend, problem, compute_dtype)

    state = backend.prepare(problem)
    actual = backend.to_rows(state, backend.run(state)).detach().to("cpu", torch.float64)
    expected = reference_group_gemm(problem)
    if actual.shape != expected.shape:
        return CheckResult(False, float("inf"), tolerance,
                           f"{case}: output shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")

    error = (actual - expected).abs()
    if error.numel() == 0:
        return CheckResult(True, 0.0, tolerance, f"{case}: empty output, nothing to compare", 0.0)
    # NaN compares false, so a NaN anywhere counts as a failure and as an infinite error.
    error = torch.where(torch.isnan(error), torch.full_like(error, float("inf")), error)
    max_abs_error = float(error.max())
    scale = float(expected.abs().max())
    if scale > 0:
        max_rel_error = max_abs_error / scale
    else:
        max_rel_error = 0.0 if max_abs_error == 0 else float("inf")
    bad = torch.nonzero(error > tolerance)
    passed = bad.shape[0] == 0

    message = (f"{case}: max_abs_error={max_abs_error:.3e}, max_rel_error={max_rel_error:.3e}, "
               f"tolerance={tolerance:.1e}")
    if not passed:
        group_of_row = torch.repeat_interleave(
            torch.arange(problem.num_groups), torch.tensor(problem.rows, dtype=torch.long))
        first = []
        for row, column in bad[:REPORTED_BAD_ELEMENTS].tolist():
            first.append(f"(row={row}, group={int(group_of_row[row])}, column={column}: "
                         f"actual={float(actual[row, column]):.5g}, expected={float(expected[row, column]):.5g})")
        message += f", {bad.shape[0]} of {error.numel()} elements over tolerance, first: " + ", ".join(first)
    return CheckResult(passed, max_abs_error, tolerance, message, max_rel_error)
