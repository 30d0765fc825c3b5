"""GroupGEMM implementations behind one interface.

Each backend turns the problem (x rows grouped by expert, one weight matrix
per group) into its own layout in ``prepare``, which is not timed, and runs
the GroupGEMM in ``run``, which is. ``to_rows`` maps its output back to the
reference layout ``[sum(m), N]`` for the correctness check.

Registered backends:

- ``torch_loop``: one ``torch.matmul`` per group.
- ``masked_bmm``: ``torch.bmm`` over the masked layout ``[G, max_m, K]``, padding rows included.
- ``grouped_mm``: one ``torch.nn.functional.grouped_mm`` call on the contiguous rows.
- ``triton_masked``: a Triton kernel over the masked layout that skips padding tiles.
- ``deepgemm_fp8_masked``: DeepGEMM's FP8 masked grouped GEMM (CUDA only).

Importing this package imports neither Triton nor DeepGEMM; backends load them on first use.
"""

from __future__ import annotations

from moe_groupgemm.backends.base import Backend, GroupGemmProblem
from moe_groupgemm.backends.deepgemm_fp8_masked import DeepGemmFp8MaskedBackend
from moe_groupgemm.backends.grouped_mm import GroupedMmBackend
from moe_groupgemm.backends.masked_bmm import MaskedBmmBackend
from moe_groupgemm.backends.torch_loop import TorchLoopBackend
from moe_groupgemm.backends.triton_masked import TritonMaskedBackend
from moe_groupgemm.errors import ParameterError

_BACKENDS: dict[str, type[Backend]] = {}


def backend_names() -> list[str]:
    """Names of all registered backends, available on this machine or not."""
    return sorted(_BACKENDS)


def register(backend_class: type[Backend]) -> type[Backend]:
    """Add a backend class to the registry under its ``name``."""
    _BACKENDS[backend_class.name] = backend_class
    return backend_class


def get_backend(name: str) -> Backend:
    """Return a new instance of the backend called ``name``."""
    if name not in _BACKENDS:
        raise ParameterError("backends", name, f"{backend_names()} 之一", "从已注册的后端中选择")
    return _BACKENDS[name]()


for _backend_class in (
    TorchLoopBackend,
    MaskedBmmBackend,
    GroupedMmBackend,
    TritonMaskedBackend,
    DeepGemmFp8MaskedBackend,
):
    register(_backend_class)

__all__ = ["Backend", "GroupGemmProblem", "backend_names", "get_backend", "register"]
