"""The GroupGEMM sweep: shapes from the engine config, a correctness check, then timed repetitions.

Each point is written to disk as soon as it finishes, so an interrupted run
resumes with the same ``run_id`` and loses nothing. A point that fails (out of
memory, a backend error, a failed correctness check) is recorded with its
reason and the sweep goes on.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from moe_groupgemm import hardware
from moe_groupgemm.backends import GroupGemmProblem, get_backend
from moe_groupgemm.correctness import check_sampled_rows
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.paths import REPOSITORY_ROOT
from moe_groupgemm.provenance import read_build_provenance
from moe_groupgemm.run_store import RunStore, new_run_id
from moe_groupgemm.shapes import GroupGemmShape, formula_shape
from moe_groupgemm.sweep_parameters import SweepParameters, ValidatedSweep, validate
from moe_groupgemm.timing import time_repetitions


@dataclass
class SweepResult:
    """Outcome of a sweep: its run folder, point counts and failure messages."""

    run_dir: Path
    measured: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def git_commit(repository: Path = REPOSITORY_ROOT) -> dict[str, Any]:
    """Return the commit and dirty flag of the checkout that ran the sweep, or ``unknown``."""
    provenance = read_build_provenance(repository)
    if provenance.commit is None:
        return {"commit": "unknown", "dirty": None}
    return {"commit": provenance.commit, "dirty": provenance.dirty}


def peak_for_mfu(sweep: ValidatedSweep) -> dict[str, Any]:
    """Return the FLOP/s peak that MFU is measured against, with its source."""
    if sweep.device.type == "cuda":
        name = torch.cuda.get_device_name(sweep.device)
        spec = hardware.gpu_spec_for(name)
        if spec is None:
            return {"flops_per_s": None, "source": f"no datasheet entry for {name}; MFU not computed"}
        return {"flops_per_s": hardware.datasheet_peak_flops(spec, sweep.dtype), "source": spec.source}
    flops = hardware.measure_cpu_gemm_flops(sweep.dtype)
    return {
        "flops_per_s": flops,
        "source": "measured in the process that ran the sweep: best of 3 square 4096^3 torch.matmul calls in the sweep dtype",
    }


def build_metadata(sweep: ValidatedSweep, run_id: str) -> dict[str, Any]:
    """Collect a run's provenance: device, software, parameters and the peaks used later."""
    device = sweep.device
    metadata: dict[str, Any] = {
        "run_id": run_id,
        "device_type": device.type,
        "device_model": hardware.device_model(device),
        "device_slug": hardware.device_slug(device),
        "cpu_model": hardware.cpu_model_name(),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "dtype": sweep.dtype_name,
        "git": git_commit(),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parameters": sweep.parameters.as_dict() | {"run_id": run_id},
        "peak": peak_for_mfu(sweep),
        "load_average_at_start": list(os.getloadavg()),
        "status": "running",
    }
    if device.type == "cpu":
        metadata["copy_bandwidth_bytes_per_s"] = hardware.measure_cpu_copy_bandwidth()
    return metadata


def shape_for(config: EngineConfig, sweep: ValidatedSweep, seed: int) -> GroupGemmShape:
    """Build the GroupGEMM shape of one point from the chosen routing mode."""
    parameters = sweep.parameters
    if parameters.routing == "formula":
        return formula_shape(config, parameters.n, parameters.k)
    from moe_groupgemm.routing_montecarlo import sample_rank_rows

    rows = sample_rank_rows(config, parameters.routing, seed)
    return GroupGemmShape(rows=tuple(rows), n=parameters.n, k=parameters.k)


def measure_point(
    backend_name: str, shape: GroupGemmShape, weights: torch.Tensor, sweep: ValidatedSweep, seed: int
) -> tuple[dict[str, Any], list[float]]:
    """Check one backend on one shape, then time it. Returns the point fields and times in µs."""
    generator = torch.Generator(device=sweep.device).manual_seed(seed)
    x = torch.randn(shape.total_rows, shape.k, generator=generator, device=sweep.device).to(sweep.dtype)
    problem = GroupGemmProblem(x=x, weights=weights[: shape.num_groups], rows=shape.rows)
    backend = get_backend(backend_name)
    unavailable = backend.availability(sweep.device, sweep.dtype)
    if unavailable is not None:
        return {"status": "failed", "error": f"后端不可用：{unavailable}", "timing_method": "",
                "check_max_abs_error": "", "check_tolerance": ""}, []
    state = backend.prepare(problem)

    output = backend.to_rows(state, backend.run(state))
    check = check_sampled_rows(problem, output, backend.compute_dtype(sweep.dtype))
    fields: dict[str, Any] = {
        "check_max_abs_error": f"{check.max_abs_error:.3e}",
        "check_tolerance": f"{check.tolerance:.1e}",
    }
    if not check.passed:
        return fields | {"status": "failed", "error": check.message, "timing_method": ""}, []

    method, seconds = time_repetitions(
        lambda: backend.run(state), sweep.device, sweep.parameters.warmup, sweep.parameters.reps
    )
    return fields | {"status": "ok", "error": "", "timing_method": method}, [s * 1e6 for s in seconds]


def random_expert_weights(
    groups: int, n: int, k: int, dtype: torch.dtype, device: torch.device, seed: int
) -> torch.Tensor:
    """Draw ``groups`` distinct N x K expert matrices with entries N(0, 1/K), so outputs stay O(1)."""
    # Draw on the target device: on a GPU, hundreds of experts drawn on the host would take minutes.
    generator = torch.Generator(device=device).manual_seed(seed)
    weights = torch.empty(groups, n, k, dtype=dtype, device=device)
    for group in range(groups):
        block = torch.randn(n, k, generator=generator, device=device)
        weights[group].copy_(block / k**0.5)
    return weights


def _random_weights(groups: int, sweep: ValidatedSweep) -> torch.Tensor:
    parameters = sweep.parameters
    return random_expert_weights(groups, parameters.n, parameters.k, sweep.dtype, sweep.device, parameters.seed)


def run_sweep(parameters: SweepParameters, progress: Callable[[str], None] = print) -> SweepResult:
    """Validate, create or resume the run folder, and measure every point not yet on disk."""
    sweep = validate(parameters)
    device_dir = Path(parameters.output_dir) / hardware.device_slug(sweep.device)
    run_id = parameters.run_id or new_run_id()
    run_dir = device_dir / run_id

    if (run_dir / "metadata.json").exists():
        store = RunStore.open(run_dir)
        previous = store.read_metadata()["parameters"]
        current = parameters.as_dict() | {"run_id": run_id}
        if previous != current:
            from moe_groupgemm.errors import ParameterError

            raise ParameterError(
                "run_id", run_id, "参数与已有运行完全相同时才能续跑",
                f"{run_dir} 中记录的参数与本次不同；省略 run_id 开始新的运行",
            )
        progress(f"续跑 {run_dir}：已完成 {len(store.finished_keys())} 个测点")
    else:
        store = RunStore.create(run_dir, build_metadata(sweep, run_id))
        progress(f"新运行 {run_dir}")

    result = SweepResult(run_dir=run_dir)
    finished = store.finished_keys()
    total = len(sweep.configs) * len(parameters.backends)
    index = 0
    configs_by_dp: dict[int, list[EngineConfig]] = {}
    for config in sweep.configs:
        configs_by_dp.setdefault(config.dp_size, []).append(config)

    for dp_size, configs in configs_by_dp.items():
        todo = [
            (config, backend)
            for config in configs
            for backend in parameters.backends
            if (backend, config.q_len, config.batch_size, dp_size) not in finished
        ]
        index += len(configs) * len(parameters.backends) - len(todo)
        result.skipped += len(configs) * len(parameters.backends) - len(todo)
        if not todo:
            continue

        point_seeds = {config: parameters.seed + position for position, config in enumerate(sweep.configs)}
        shapes = {config: shape_for(config, sweep, point_seeds[config]) for config, _ in todo}
        max_groups = max((shape.num_groups for shape in shapes.values()), default=0)
        try:
            weights = _random_weights(max_groups, sweep)
        except (RuntimeError, MemoryError) as error:
            weights = None
            weight_error = f"分配 {max_groups} 个专家的权重失败：{error}"

        for config, backend_name in todo:
            index += 1
            shape = shapes[config]
            point: dict[str, Any] = {
                "backend": backend_name,
                "q_len": config.q_len,
                "batch_size": config.batch_size,
                "dp_size": dp_size,
                "routing": parameters.routing,
                "seed": point_seeds[config],
                "num_groups": shape.num_groups,
                "rows": " ".join(str(m) for m in shape.rows),
                "total_rows": shape.total_rows,
                "n": shape.n,
                "k": shape.k,
                "flops": shape.flops(),
                "bytes_moved": shape.bytes_moved(sweep.dtype.itemsize),
            }
            timings: list[float] = []
            if shape.num_groups == 0:
                # Sampled routing can leave a rank with no rows at all; its GroupGEMM does not run.
                point |= {"status": "empty", "error": "本 rank 本步没有分到任何行，GroupGEMM 不执行",
                          "timing_method": "", "check_max_abs_error": "", "check_tolerance": ""}
            elif weights is None:
                point |= {"status": "failed", "error": weight_error, "timing_method": "",
                          "check_max_abs_error": "", "check_tolerance": ""}
            else:
                try:
                    fields, timings = measure_point(backend_name, shape, weights, sweep, point_seeds[config])
                    point |= fields
                except (RuntimeError, MemoryError, ValueError) as error:
                    point |= {"status": "failed", "error": f"{type(error).__name__}: {error}",
                              "timing_method": "", "check_max_abs_error": "", "check_tolerance": ""}
            store.append_point(point, timings)

            label = f"[{index}/{total}] {backend_name} Q={config.q_len} B={config.batch_size} D={dp_size} num_groups={shape.num_groups}"
            if point["status"] == "ok":
                result.measured += 1
                progress(f"{label}: 中位数 {statistics.median(timings):.1f} µs（{len(timings)} 次）")
            elif point["status"] == "empty":
                progress(f"{label}: {point['error']}")
            else:
                result.failures.append(f"{label}: {point['error']}")
                progress(f"{label}: 失败：{point['error']}")
        del weights

    store.update_metadata(
        status="complete",
        failed_points=len(result.failures),
        load_average_at_end=list(os.getloadavg()),
        date_utc_end=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if result.failures:
        progress(f"完成，{len(result.failures)} 个测点失败：")
        for failure in result.failures:
            progress(f"  {failure}")
    else:
        progress(f"完成：测量 {result.measured} 个测点，跳过已完成的 {result.skipped} 个。数据在 {run_dir}")
    sys.stdout.flush()
    return result
