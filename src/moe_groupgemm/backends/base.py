"""The backend interface and the problem it solves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch


@dataclass
class GroupGemmProblem:
    """Inputs of one GroupGEMM in the reference layout.

    x: ``[sum(m), K]`` activations, rows of group i contiguous and in group order.
    weights: ``[G, N, K]``, a distinct matrix per active group (row-major, K contiguous).
    rows: m[i] for each of the G groups.
    """

    x: torch.Tensor
    weights: torch.Tensor
    rows: tuple[int, ...]

    @property
    def num_groups(self) -> int:
        return len(self.rows)


class Backend:
    """One GroupGEMM implementation."""

    name: ClassVar[str] = ""

    def availability(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """Return None if the backend runs on this device and dtype, else the reason it cannot."""
        return None

    def compute_dtype(self, input_dtype: torch.dtype) -> torch.dtype:
        """Return the dtype the GEMM multiplies in, which selects the correctness tolerance.

        This is the input dtype unless the backend converts its inputs in ``prepare``
        (an FP8 backend quantizes bfloat16 inputs, for example).
        """
        return input_dtype

    def prepare(self, problem: GroupGemmProblem) -> Any:
        """Build the backend's own input layout. Not timed."""
        return problem

    def run(self, state: Any) -> torch.Tensor:
        """Run the GroupGEMM once. This call is what the sweep times."""
        raise NotImplementedError

    def to_rows(self, state: Any, output: torch.Tensor) -> torch.Tensor:
        """Map ``run``'s output to the reference layout ``[sum(m), N]``."""
        return output
