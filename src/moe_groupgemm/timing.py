"""Per-repetition timing of one callable.

CPU: wall clock (``time.perf_counter``) after warmup. On a CPU the expert weights
of one point (hundreds of MB to GB) are far larger than the last-level cache,
so no flush is needed between repetitions. CUDA timing lives in ``cuda_timing``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def time_cpu_wall_clock(function: Callable[[], object], warmup: int, reps: int) -> list[float]:
    """Run ``function`` ``warmup`` times untimed, then return ``reps`` wall-clock durations in seconds."""
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(reps):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def best_wall_clock_seconds(function: Callable[[], object], repeats: int) -> float:
    """Run ``function`` ``repeats`` times and return the shortest wall-clock duration in seconds."""
    return min(time_cpu_wall_clock(function, warmup=0, reps=repeats))


def time_repetitions(
    function: Callable[[], object], device: torch.device, warmup: int, reps: int
) -> tuple[str, list[float]]:
    """Time ``function`` on ``device``; return the method name and per-repetition seconds."""
    if device.type == "cuda":
        from moe_groupgemm import cuda_timing

        return "cuda_events_l2_flush", cuda_timing.time_cuda_events(function, warmup=warmup, reps=reps)
    return "cpu_wall_clock", time_cpu_wall_clock(function, warmup, reps)
