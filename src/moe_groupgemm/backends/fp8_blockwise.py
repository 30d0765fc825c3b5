"""FP8 e4m3 quantization with DeepSeek-V3's block scales: 1x128 for activations, 128x128 for weights.

Each block is divided by amax / 448 (448 is e4m3's largest finite value), so its
largest entry maps to 448. Scales are float32, as DeepGEMM requires on SM90.
With ``power_of_two`` the scale is rounded up to a power of two, which is what
an e8m0 (UE8M0) scale, used on SM100, can store.
"""

from __future__ import annotations

import torch

from moe_groupgemm.errors import ParameterError

BLOCK = 128
FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8_DTYPE).max
# Floor on amax so an all-zero block gets a finite scale instead of dividing by zero.
MIN_AMAX = 1e-4


def _require_k_multiple(k: int) -> None:
    if k % BLOCK != 0:
        raise ParameterError("k", k, f"{BLOCK} 的倍数", f"FP8 分块缩放按 {BLOCK} 列一块，把 K 取为 {BLOCK} 的倍数")


def _scales_from_amax(amax: torch.Tensor, power_of_two: bool) -> torch.Tensor:
    scales = amax.clamp(min=MIN_AMAX) / FP8_MAX
    if power_of_two:
        scales = torch.exp2(torch.ceil(torch.log2(scales)))
    return scales


def quantize_per_token(x: torch.Tensor, power_of_two: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``[..., M, K]`` with one scale per row and 128 columns; scales are ``[..., M, K/128]``."""
    k = x.shape[-1]
    _require_k_multiple(k)
    blocks = x.float().unflatten(-1, (k // BLOCK, BLOCK))
    scales = _scales_from_amax(blocks.abs().amax(dim=-1), power_of_two)
    quantized = (blocks / scales.unsqueeze(-1)).to(FP8_DTYPE).flatten(-2)
    return quantized, scales


def quantize_per_block(weight: torch.Tensor, power_of_two: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``[N, K]`` with one scale per 128x128 block; scales are ``[ceil(N/128), K/128]``.

    N need not be a multiple of 128: the last row block is padded with zeros for its amax.
    """
    n, k = weight.shape
    _require_k_multiple(k)
    n_blocks = -(-n // BLOCK)
    padded = weight.new_zeros((n_blocks * BLOCK, k), dtype=torch.float32)
    padded[:n] = weight.float()
    blocks = padded.view(n_blocks, BLOCK, k // BLOCK, BLOCK)
    scales = _scales_from_amax(blocks.abs().amax(dim=(1, 3)), power_of_two)
    quantized = (blocks / scales[:, None, :, None]).to(FP8_DTYPE).view(n_blocks * BLOCK, k)[:n]
    return quantized.contiguous(), scales


def quantize_weights(weights: torch.Tensor, power_of_two: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``[G, N, K]`` expert weights group by group, so float32 temporaries stay one expert large."""
    num_groups, n, k = weights.shape
    quantized = torch.empty((num_groups, n, k), dtype=FP8_DTYPE, device=weights.device)
    scales = torch.empty((num_groups, -(-n // BLOCK), k // BLOCK), dtype=torch.float32, device=weights.device)
    for group in range(num_groups):
        quantized[group], scales[group] = quantize_per_block(weights[group], power_of_two)
    return quantized, scales


def dequantize_per_token(quantized: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of ``quantize_per_token`` up to rounding, in float32."""
    k = quantized.shape[-1]
    blocks = quantized.float().unflatten(-1, (k // BLOCK, BLOCK))
    return (blocks * scales.unsqueeze(-1)).flatten(-2)


def dequantize_per_block(quantized: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Inverse of ``quantize_per_block`` (or of ``quantize_weights`` with a leading G axis), in float32."""
    n = quantized.shape[-2]
    row_scales = scales.repeat_interleave(BLOCK, dim=-2)[..., :n, :]
    return quantized.float() * row_scales.repeat_interleave(BLOCK, dim=-1)
