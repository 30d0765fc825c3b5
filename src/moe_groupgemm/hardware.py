"""Hardware peaks, each defined once with its unit and source, plus CPU peaks measured in place.

GPU numbers are NVIDIA's dense (no 2:4 sparsity) datasheet figures. A CPU has no
datasheet peak that torch reaches, so a run measures its own GEMM throughput and
copy bandwidth and records them; MFU on a CPU is relative to that measured peak.
"""

from __future__ import annotations

import functools
import platform
import re
from dataclasses import dataclass

import torch

from moe_groupgemm.timing import best_wall_clock_seconds


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet figures of one GPU. FLOP/s are dense; bandwidth is HBM bytes per second."""

    name: str
    bf16_flops: float
    fp8_flops: float
    hbm_bytes_per_s: float
    hbm_bytes: float
    l2_bytes: float
    source: str


GPU_SPECS: dict[str, GpuSpec] = {
    "h100-sxm": GpuSpec(
        name="NVIDIA H100 SXM",
        bf16_flops=989.4e12,
        fp8_flops=1978.9e12,
        hbm_bytes_per_s=3.35e12,
        hbm_bytes=80e9,
        l2_bytes=50e6,
        source="NVIDIA H100 Tensor Core GPU datasheet / Hopper whitepaper (dense figures)",
    ),
    "h200-sxm": GpuSpec(
        name="NVIDIA H200 SXM",
        bf16_flops=989e12,
        fp8_flops=1979e12,
        hbm_bytes_per_s=4.8e12,
        hbm_bytes=141e9,
        l2_bytes=50e6,
        source="NVIDIA H200 product page (1,979 TFLOPS BF16 and 3,958 FP8 are with sparsity; halved here)",
    ),
    "b200": GpuSpec(
        name="NVIDIA B200 (HGX)",
        bf16_flops=2.25e15,
        fp8_flops=4.5e15,
        hbm_bytes_per_s=7.7e12,
        hbm_bytes=180e9,
        l2_bytes=126e6,
        source="NVIDIA HGX B200 datasheet table (4.5 PF BF16 and 9 PF FP8 are with sparsity; halved here)",
    ),
}


def gpu_spec_for(device_name: str) -> GpuSpec | None:
    """Match ``torch.cuda.get_device_name()`` text to a spec, or None if unknown."""
    lowered = device_name.lower()
    if "h200" in lowered:
        return GPU_SPECS["h200-sxm"]
    if "h100" in lowered:
        return GPU_SPECS["h100-sxm"]
    if "b200" in lowered:
        return GPU_SPECS["b200"]
    return None


def datasheet_peak_flops(spec: GpuSpec, dtype: torch.dtype) -> float:
    """Dense datasheet peak for ``dtype`` on ``spec``, in FLOP/s."""
    if dtype in (torch.bfloat16, torch.float16):
        return spec.bf16_flops
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return spec.fp8_flops
    raise ValueError(f"{spec.name} 没有 {dtype} 的数据手册峰值")


def cpu_model_name() -> str:
    """Return the processor model from /proc/cpuinfo, or platform.processor() where that file is missing."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_model(device: torch.device) -> str:
    """Human-readable model of the device: the GPU name or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model_name()


def device_slug(device: torch.device) -> str:
    """Folder name for a device's runs under data/raw, e.g. ``cpu-amd-epyc`` or ``cuda-nvidia-h200``."""
    text = f"{device.type}-{device_model(device)}".lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


@functools.lru_cache(maxsize=None)
def measure_cpu_gemm_flops(dtype: torch.dtype, size: int = 4096, repeats: int = 3) -> float:
    """Measure best-of-``repeats`` FLOP/s of a square ``size``^3 matmul in ``dtype`` on the CPU.

    Cached per process, so several sweeps in one process share one measurement.
    """
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    seconds = best_wall_clock_seconds(lambda: torch.matmul(a, b), repeats)
    return 2 * size**3 / seconds


@functools.lru_cache(maxsize=None)
def measure_cpu_copy_bandwidth(num_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Measure best-of-``repeats`` copy bandwidth in bytes/s, counting each byte read and written once.

    Cached per process, like ``measure_cpu_gemm_flops``.
    """
    source = torch.ones(num_bytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = best_wall_clock_seconds(lambda: target.copy_(source), repeats)
    return 2 * num_bytes / seconds
