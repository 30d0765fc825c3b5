"""The masked batched layout ``[G, max_m, K]`` that DeepEP's low-latency dispatch produces.

Group g's m[g] rows are at the top of slice g. The rest of the slice is
padding, which a masked kernel skips and a batched GEMM computes anyway.
``masked_m`` (int32, on the device) contains m[g] for the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_groupgemm.backends.base import GroupGemmProblem


@dataclass
class MaskedLayout:
    """Activations in the masked layout plus the index tensors that map rows back.

    x: ``[G, max_m, K]``, padding rows zero.
    masked_m: ``[G]`` int32 valid rows per group, on x's device.
    group_of_row, position_of_row: for each reference row, its group and its row inside the group.
    """

    x: torch.Tensor
    masked_m: torch.Tensor
    group_of_row: torch.Tensor
    position_of_row: torch.Tensor

    @property
    def max_m(self) -> int:
        return self.x.shape[1]


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def to_masked_layout(problem: GroupGemmProblem, row_alignment: int = 1) -> MaskedLayout:
    """Scatter the problem's rows into ``[G, max_m, K]``.

    max_m is the largest m[g] rounded up to ``row_alignment`` (at least one row,
    so that an all-empty problem still has a valid tensor).
    """
    device = problem.x.device
    rows = torch.tensor(problem.rows, dtype=torch.long)
    max_m = round_up(max(max(problem.rows, default=0), 1), row_alignment)
    group_of_row = torch.repeat_interleave(torch.arange(len(problem.rows)), rows)
    group_starts = torch.cumsum(rows, 0) - rows
    position_of_row = torch.arange(int(rows.sum())) - group_starts[group_of_row]

    group_of_row = group_of_row.to(device)
    position_of_row = position_of_row.to(device)
    x = problem.x.new_zeros((len(problem.rows), max_m, problem.x.shape[1]))
    x[group_of_row, position_of_row] = problem.x
    masked_m = rows.to(device=device, dtype=torch.int32)
    return MaskedLayout(x=x, masked_m=masked_m, group_of_row=group_of_row, position_of_row=position_of_row)


def masked_to_rows(layout: MaskedLayout, output: torch.Tensor) -> torch.Tensor:
    """Gather the valid rows of a ``[G, max_m, N]`` output into ``[sum(m), N]``."""
    return output[layout.group_of_row, layout.position_of_row]
