"""Weight-streaming rate of each CPU backend at decode sizes, as a fraction of this CPU's copy bandwidth.

At m = 1..8 rows per expert the GroupGEMM reads every expert's N x K weights once
and does little arithmetic with them, so a good backend streams the weights at
close to memory bandwidth. For each backend available on the CPU, each dtype and
each m, this prints

    rate = weight bytes / median wall time,   ratio = rate / measured copy bandwidth

with the goal ratio >= 0.80. The copy bandwidth counts bytes read plus bytes
written (``hardware.measure_cpu_copy_bandwidth``) while the rate counts weight
bytes read only, so a ratio above 1 is possible. Times are wall clock on a machine
that may be shared, and the printed load average shows how busy it was.

Usage: PYTHONPATH=src python benchmarks/cpu_bandwidth.py [--groups 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

from moe_groupgemm import hardware
from moe_groupgemm.backends import GroupGemmProblem, backend_names, get_backend
from moe_groupgemm.engine_config import DEEPSEEK_V3_GEMM_K, DEEPSEEK_V3_GEMM_N
from moe_groupgemm.timing import time_cpu_wall_clock

GOAL_RATIO = 0.80
ROWS_PER_EXPERT = (1, 2, 4, 8)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8, help="active experts per call")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per point (median taken)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per point")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes")
    arguments = parser.parse_args()
    started = time.perf_counter()
    device = torch.device("cpu")

    copy_bandwidth = hardware.measure_cpu_copy_bandwidth()
    print(f"CPU: {hardware.cpu_model_name()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {os.getloadavg()[0]:.2f}")
    print(f"measured copy bandwidth: {copy_bandwidth / 1e9:.2f} GB/s (read + write)")
    print(f"shape: {arguments.groups} groups, N={DEEPSEEK_V3_GEMM_N}, K={DEEPSEEK_V3_GEMM_K}; "
          f"median of {arguments.reps} calls after {arguments.warmup} warm-up; goal ratio >= {GOAL_RATIO:.2f}")
    print(f"{'backend':<14} {'dtype':<9} {'m':>2} {'median ms':>10} {'GB/s':>7} {'ratio':>6}  result")

    generator = torch.Generator().manual_seed(0)
    for dtype_name in arguments.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        weights = (torch.randn(arguments.groups, DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K, generator=generator)
                   / math.sqrt(DEEPSEEK_V3_GEMM_K)).to(dtype)
        weight_bytes = weights.numel() * weights.element_size()
        for name in backend_names():
            backend = get_backend(name)
            reason = backend.availability(device, dtype)
            if reason is not None:
                print(f"{name:<14} {dtype_name:<9} unavailable: {reason}")
                continue
            for m in ROWS_PER_EXPERT:
                rows = (m,) * arguments.groups
                x = torch.randn(sum(rows), DEEPSEEK_V3_GEMM_K, generator=generator).to(dtype)
                state = backend.prepare(GroupGemmProblem(x, weights, rows))
                seconds = statistics.median(
                    time_cpu_wall_clock(lambda: backend.run(state), arguments.warmup, arguments.reps))
                rate = weight_bytes / seconds
                ratio = rate / copy_bandwidth
                verdict = "PASS" if ratio >= GOAL_RATIO else "FAIL"
                print(f"{name:<14} {dtype_name:<9} {m:>2} {seconds * 1e3:>10.2f} {rate / 1e9:>7.2f} {ratio:>6.2f}  {verdict}")
                del state
        del weights
    print(f"elapsed: {time.perf_counter() - started:.0f} s, load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
