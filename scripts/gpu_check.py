"""One prepared run on a CUDA machine: a correctness gate for every backend, then the article grid.

NOTE: not yet run on a GPU. ``--dry-run`` prints the plan and the time estimate on any
machine (it assumes an H200) and is the only part that has run so far.

Steps:

1. Availability of every backend in bfloat16 (``deepgemm_fp8_masked`` quantizes to FP8).
2. Correctness gate: ``check_backend`` on small shapes (m=1, uneven rows, an empty group)
   and on one real-size shape; a backend that fails is not timed.
3. Launch floor: a one-element kernel timed eagerly and inside a CUDA graph.
4. The article grid (Q in 1..4, B in powers of two to 256, D in {1, 2, 4, 8, 16, 32},
   N=4096, K=7168, shapes from eqs. (6) and (7)) through ``moe_groupgemm.sweep.run_sweep``
   in bfloat16 for every gated backend except DeepGEMM: CUDA events after an L2 flush,
   written as an ordinary run under ``<output-dir>/<device>/<run-id>/`` that the book reads.
5. CUDA-graph replay (flush inside the graph, flush-only time subtracted) per unique
   (num_groups, m) shape, plus DeepGEMM's event timings, into ``cuda_graph.csv`` in the
   same folder; gate results and the launch floor go to ``gpu_check.json``.

Step 5 stops taking new shapes at ``--budget-s`` seconds. Each backend gets an equal
share of the time left when it starts, so one slow backend (a JIT compiler, say) cannot
starve the others. Skipped shapes are listed in ``gpu_check.json``.

Usage: python scripts/gpu_check.py [--output-dir data/raw] [--budget-s 420] [--dry-run]
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from moe_groupgemm import hardware, roofline
from moe_groupgemm.backends import GroupGemmProblem, backend_names, get_backend
from moe_groupgemm.correctness import check_backend
from moe_groupgemm.engine_config import DEEPSEEK_V3_GEMM_K, DEEPSEEK_V3_GEMM_N, EngineConfig
from moe_groupgemm.shapes import GroupGemmShape, formula_shape
from moe_groupgemm.sweep import random_expert_weights

Q_LENS = (1, 2, 3, 4)
BATCH_SIZES = tuple(2**power for power in range(9))
DP_SIZES = (1, 2, 4, 8, 16, 32)

EVENT_WARMUP = 3
EVENT_REPS = 30
GRAPH_WARMUP = 2
GRAPH_REPS = 10
GRAPH_CALLS_PER_REPLAY = 5

# Planning assumptions for the estimate, not measurements. POINT_OVERHEAD_S is the Python-side
# cost per (shape, backend) of prepare, graph capture and bookkeeping. STARTUP_S covers start-up
# and JIT compilation. EAGER_LAUNCH_S is one eager launch, paid per group by torch_loop.
POINT_OVERHEAD_S = 0.3
STARTUP_S = 60.0
EAGER_LAUNCH_S = 8e-6

# N is a multiple of 256 and K of 128 in every case, so no kernel's tile choice rules a case out.
GATE_CASES: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((1,), 256, 512),
    ((3, 1, 17), 256, 512),
    ((2, 0, 5), 512, 1024),
    ((1, 7, 33), DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K),
)

CSV_COLUMNS = (
    "backend", "precision", "method", "num_groups", "rows_per_group", "n", "k",
    "configs", "rep", "time_us", "predicted_us",
)


def write_rows(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Append CUDA-graph per-repetition rows to ``run_dir/cuda_graph.csv``, writing the header on first use.

    The sweep's ``timings.csv`` contains the CUDA-event times of every (Q, B, D). This file
    adds the graph-replay method per unique (num_groups, m) shape; the book does not read it yet.
    """
    path = run_dir / "cuda_graph.csv"
    new_file = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


def write_metadata(run_dir: Path, metadata: dict[str, Any]) -> None:
    """Write the gate, launch-floor and CUDA-graph bookkeeping beside the sweep's own metadata.json."""
    temporary = run_dir / ".gpu_check.json.tmp"
    temporary.write_text(json.dumps(metadata, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, run_dir / "gpu_check.json")


def article_grid() -> dict[tuple[int, int], list[tuple[int, int, int]]]:
    """(num_groups, m) of every grid configuration, mapped to its (Q, B, D) triples."""
    grid: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for q_len in Q_LENS:
        for batch_size in BATCH_SIZES:
            for dp_size in DP_SIZES:
                config = EngineConfig(batch_size=batch_size, q_len=q_len, dp_size=dp_size)
                shape = formula_shape(config, DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K)
                grid.setdefault((shape.num_groups, shape.rows[0]), []).append((q_len, batch_size, dp_size))
    return grid


def grid_shape(key: tuple[int, int]) -> GroupGemmShape:
    num_groups, rows = key
    return GroupGemmShape(rows=(rows,) * num_groups, n=DEEPSEEK_V3_GEMM_N, k=DEEPSEEK_V3_GEMM_K)


@dataclass(frozen=True)
class PlannedBackend:
    name: str
    precision: str


def estimate_point_seconds(
    shape: GroupGemmShape, backend: PlannedBackend, spec: hardware.GpuSpec, flush_bytes: int
) -> float:
    """Wall time to measure one shape on one backend, from the roofline and the assumptions above."""
    precision = roofline.PRECISIONS[backend.precision]
    call_s = roofline.predict(shape, roofline.gpu_machine(spec, precision), precision).seconds
    if backend.name == "torch_loop":
        call_s = max(call_s, shape.num_groups * EAGER_LAUNCH_S)
    flush_s = flush_bytes / spec.hbm_bytes_per_s
    event_calls = EVENT_WARMUP + EVENT_REPS
    # Warm-up, one untimed replay and the timed replays, plus the flush-only graph.
    graph_calls = (GRAPH_WARMUP + 1 + GRAPH_REPS) * GRAPH_CALLS_PER_REPLAY
    return POINT_OVERHEAD_S + event_calls * (call_s + flush_s) + graph_calls * (call_s + 2 * flush_s)


def print_plan(
    grid: dict[tuple[int, int], list[tuple[int, int, int]]],
    backends: list[PlannedBackend],
    spec: hardware.GpuSpec,
    flush_bytes: int,
    budget_s: float,
) -> float:
    total = STARTUP_S + sum(
        estimate_point_seconds(grid_shape(key), backend, spec, flush_bytes) for key in grid for backend in backends
    )
    configs = sum(len(triples) for triples in grid.values())
    print(f"计划：{configs} 个 (Q, B, D) 配置，合并为 {len(grid)} 个不同的 (num_groups, m) 形状；"
          f"后端 {[f'{b.name}/{b.precision}' for b in backends]}")
    print(f"每个形状：CUDA 事件 {EVENT_REPS} 次（预热 {EVENT_WARMUP} 次，每次前清空 {flush_bytes / 2**20:.0f} MiB 以冲掉 L2），"
          f"CUDA Graph 重放 {GRAPH_REPS} 次 × 每次 {GRAPH_CALLS_PER_REPLAY} 次调用")
    print(f"按 {spec.name} 的 roofline 估算总用时约 {total:.0f} s（含启动与 JIT 编译的假设值 {STARTUP_S:.0f} s），"
          f"时间上限 {budget_s:.0f} s")
    return total


def make_problem(rows: tuple[int, ...], weights: torch.Tensor, seed: int) -> GroupGemmProblem:
    """x ~ N(0, 1) rows on the weights' device, so outputs are about N(0, 1) as the tolerances assume."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(rows), weights.shape[2], generator=generator)
    return GroupGemmProblem(x.to(weights.device, weights.dtype), weights, rows)


def random_weights(num_groups: int, n: int, k: int, seed: int, device: torch.device) -> torch.Tensor:
    """W ~ N(0, 1/K) in bfloat16, generated group by group on the device."""
    return random_expert_weights(num_groups, n, k, torch.bfloat16, device, seed)


def software_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "cuda": str(torch.version.cuda)}
    for package in ("triton", "deep_gemm", "deep-gemm"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def correctness_gate(device: torch.device, names: list[str], metadata: dict[str, Any]) -> list[str]:
    """Run every gate case on every named backend; return the names that passed all cases."""
    passed_names = []
    for name in names:
        backend = get_backend(name)
        results = []
        for case_index, (rows, n, k) in enumerate(GATE_CASES):
            weights = random_weights(len(rows), n, k, seed=100 + case_index, device=device)
            problem = make_problem(rows, weights, seed=case_index)
            try:
                result = check_backend(backend, problem)
                results.append({"passed": result.passed, "message": result.message})
            # Any exception is recorded, not raised: one broken backend must not end the device run.
            except Exception as error:  # noqa: BLE001
                results.append({"passed": False, "message": f"{type(error).__name__}: {error}"})
            status = "通过" if results[-1]["passed"] else "失败"
            print(f"正确性 {name} {rows} n={n} k={k}：{status}：{results[-1]['message']}")
        metadata["correctness"][name] = results
        if all(result["passed"] for result in results):
            passed_names.append(name)
    return passed_names


def measure_shape(
    backend_name: str, shape: GroupGemmShape, weights: torch.Tensor, flush_bytes: int, seed: int
) -> dict[str, list[float]]:
    """Seconds per repetition for each timing method that succeeded; errors are raised."""
    from moe_groupgemm import cuda_timing

    backend = get_backend(backend_name)
    problem = make_problem(shape.rows, weights[: shape.num_groups], seed)
    state = backend.prepare(problem)
    times = {}
    if backend_name == "deepgemm_fp8_masked":
        # The sweep above leaves DeepGEMM out, so its event timings are taken here.
        times["cuda_events_l2_flush"] = cuda_timing.time_cuda_events(
            lambda: backend.run(state), warmup=EVENT_WARMUP, reps=EVENT_REPS, flush_bytes=flush_bytes
        )
    times["cuda_graph_l2_flush"] = cuda_timing.time_cuda_graph(
        lambda: backend.run(state), reps=GRAPH_REPS, calls_per_replay=GRAPH_CALLS_PER_REPLAY,
        warmup=GRAPH_WARMUP, flush_bytes=flush_bytes,
    )
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="data/raw", help="folder under which <device>/<run-id>/ is created")
    parser.add_argument("--budget-s", type=float, default=420.0, help="seconds after start when no new point starts")
    parser.add_argument("--dry-run", action="store_true", help="print the plan for an H200 and exit")
    arguments = parser.parse_args()
    started = time.perf_counter()
    grid = article_grid()
    planned = [PlannedBackend(name, "fp8" if name == "deepgemm_fp8_masked" else "bf16") for name in backend_names()]

    if arguments.dry_run:
        spec = hardware.GPU_SPECS["h200-sxm"]
        print_plan(grid, planned, spec, max(2 * int(spec.l2_bytes), 256 * 2**20), arguments.budget_s)
        return 0
    if not torch.cuda.is_available():
        print("错误：没有可用的 CUDA 设备；本脚本只能在 GPU 机器上运行（可先用 --dry-run 查看计划）", file=sys.stderr)
        return 2

    # NOTE: everything from here on has not yet run on a GPU.
    from moe_groupgemm import cuda_timing

    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(device)
    spec = hardware.gpu_spec_for(device_name) or hardware.GPU_SPECS["h200-sxm"]
    flush_bytes = cuda_timing.default_flush_bytes(device)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-gpu-check"
    metadata: dict[str, Any] = {
        "script": "scripts/gpu_check.py", "run_id": run_id, "device_model": device_name,
        "capability": list(torch.cuda.get_device_capability(device)), "roofline_spec": spec.name,
        "software": software_versions(), "flush_bytes": flush_bytes, "date_utc": datetime.now(timezone.utc).isoformat(),
        "availability": {}, "correctness": {}, "skipped": [], "failures": [], "status": "running",
    }
    print(f"设备：{device_name}，SM{metadata['capability']}，软件：{metadata['software']}")

    available = []
    for backend in planned:
        reason = get_backend(backend.name).availability(device, torch.bfloat16)
        metadata["availability"][backend.name] = reason or "available"
        print(f"后端 {backend.name}/{backend.precision}：{'可用' if reason is None else '不可用：' + reason}")
        if reason is None:
            available.append(backend)
    print_plan(grid, available, spec, flush_bytes, arguments.budget_s)

    gated = set(correctness_gate(device, [backend.name for backend in available], metadata))
    timed = [backend for backend in available if backend.name in gated]
    metadata["launch_floor"] = cuda_timing.measure_launch_floor()
    print(f"空 kernel 用时：{ {key: f'{value * 1e6:.2f} µs' for key, value in metadata['launch_floor'].items()} }")

    # The article grid with CUDA events, in the sweep's own format, so the book reads it like any run.
    # DeepGEMM is left out here because its FP8 MFU needs the FP8 peak; it is timed below only.
    from moe_groupgemm.sweep import run_sweep
    from moe_groupgemm.sweep_parameters import SweepParameters

    bf16_backends = [backend.name for backend in timed if backend.precision == "bf16"]
    sweep_result = run_sweep(SweepParameters(
        device="cuda", dtype="bfloat16", q_lens=list(Q_LENS), batch_sizes=list(BATCH_SIZES),
        dp_sizes=list(DP_SIZES), warmup=EVENT_WARMUP, reps=EVENT_REPS, output_dir=arguments.output_dir,
        backends=bf16_backends, routing="formula", run_id=run_id,
    ))
    run_dir = sweep_result.run_dir
    metadata["sweep_failures"] = sweep_result.failures
    write_metadata(run_dir, metadata)

    weights = random_weights(max(key[0] for key in grid), DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K, seed=0, device=device)
    # Cheapest shapes first, so a run cut short by the budget still covers most of the grid.
    bf16 = roofline.PRECISIONS["bf16"]
    bf16_machine = roofline.gpu_machine(spec, bf16)
    order = sorted(grid, key=lambda key: roofline.predict(grid_shape(key), bf16_machine, bf16).seconds)
    for position, backend in enumerate(timed):
        backend_deadline = time.perf_counter() + (arguments.budget_s - (time.perf_counter() - started)) / (
            len(timed) - position)
        precision = roofline.PRECISIONS[backend.precision]
        machine = roofline.gpu_machine(spec, precision)
        for index, key in enumerate(order):
            if time.perf_counter() > backend_deadline:
                metadata["skipped"].append({"backend": backend.name, "shapes": [list(k) for k in order[index:]]})
                print(f"{backend.name}：已到时间上限，跳过剩余 {len(order) - index} 个形状")
                break
            shape = grid_shape(key)
            predicted_us = roofline.predict(shape, machine, precision).seconds * 1e6
            configs = " ".join(f"Q{q}B{b}D{d}" for q, b, d in grid[key])
            try:
                times = measure_shape(backend.name, shape, weights, flush_bytes, seed=index)
            except Exception as error:  # noqa: BLE001 - recorded, as in the correctness gate
                message = f"{backend.name} num_groups={key[0]} m={key[1]}: {type(error).__name__}: {error}"
                metadata["failures"].append(message)
                print(f"失败：{message}")
                continue
            rows = [
                {"backend": backend.name, "precision": backend.precision, "method": method,
                 "num_groups": key[0], "rows_per_group": key[1], "n": shape.n, "k": shape.k,
                 "configs": configs, "rep": rep, "time_us": f"{seconds * 1e6:.3f}",
                 "predicted_us": f"{predicted_us:.3f}"}
                for method, values in times.items() for rep, seconds in enumerate(values)
            ]
            write_rows(run_dir, rows)
            medians = {method: statistics.median(values) * 1e6 for method, values in times.items()}
            print(f"[{index + 1}/{len(order)}] {backend.name} num_groups={key[0]} m={key[1]}："
                  + "，".join(f"{method} 中位数 {value:.1f} µs" for method, value in medians.items())
                  + f"，roofline {predicted_us:.1f} µs")
        write_metadata(run_dir, metadata)

    metadata["status"] = "complete"
    metadata["elapsed_s"] = time.perf_counter() - started
    write_metadata(run_dir, metadata)
    print(f"完成，用时 {metadata['elapsed_s']:.0f} s，数据在 {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
