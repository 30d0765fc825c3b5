"""The Triton kernel behind the ``triton_masked`` backend.

Triton decides at decoration time whether a kernel is compiled for the GPU or
run by its CPU interpreter (``TRITON_INTERPRET=1``). This module is therefore
imported only on first use, and ``INTERPRETED`` records which mode it was built in.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def masked_group_gemm_kernel(
    x_ptr, w_ptr, y_ptr, masked_m_ptr,
    n_size, k_size,
    x_stride_g, x_stride_m, x_stride_k,
    w_stride_g, w_stride_n, w_stride_k,
    y_stride_g, y_stride_m, y_stride_n,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    """Compute y[g, rows, cols] = x[g, rows, :] @ w[g, cols, :]^T for one (N tile, M tile, group) program.

    Programs whose M tile starts at or beyond masked_m[g] return at once, so
    padding tiles cost neither loads nor math. Inside a tile, rows past
    masked_m[g] are masked on load and store.
    """
    n_tile = tl.program_id(0)
    m_tile = tl.program_id(1)
    group = tl.program_id(2)

    valid_rows = tl.load(masked_m_ptr + group)
    if m_tile * BLOCK_M >= valid_rows:
        return

    # The group offset of the weights exceeds int32 beyond ~73 groups at N=4096, K=7168.
    group_64 = group.to(tl.int64)
    x_group = x_ptr + group_64 * x_stride_g
    w_group = w_ptr + group_64 * w_stride_g
    y_group = y_ptr + group_64 * y_stride_g

    rows = m_tile * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = n_tile * BLOCK_N + tl.arange(0, BLOCK_N)
    row_valid = rows < valid_rows
    col_valid = cols < n_size

    accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k_start in range(0, k_size, BLOCK_K):
        ks = k_start + tl.arange(0, BLOCK_K)
        k_valid = ks < k_size
        x_tile = tl.load(
            x_group + rows[:, None] * x_stride_m + ks[None, :] * x_stride_k,
            mask=row_valid[:, None] & k_valid[None, :],
            other=0.0,
        )
        # Loaded as [BLOCK_K, BLOCK_N], i.e. W^T, straight from the [N, K] weight rows.
        w_tile = tl.load(
            w_group + cols[None, :] * w_stride_n + ks[:, None] * w_stride_k,
            mask=col_valid[None, :] & k_valid[:, None],
            other=0.0,
        )
        accumulator = tl.dot(x_tile, w_tile, accumulator, input_precision=INPUT_PRECISION)

    tl.store(
        y_group + rows[:, None] * y_stride_m + cols[None, :] * y_stride_n,
        accumulator.to(y_ptr.dtype.element_ty),
        mask=row_valid[:, None] & col_valid[None, :],
    )
