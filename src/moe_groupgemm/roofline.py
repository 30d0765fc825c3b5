"""Roofline prediction of one GroupGEMM call: max(bytes / bandwidth, FLOPs / peak) + a launch floor.

Bytes count every weight, activation and output element once (``GroupGemmShape``),
which is the least traffic any kernel can get away with; FLOPs are 2 * sum(m) * N * K.
The model ignores tile padding, wave quantization, FP8 scale bytes and caches,
so a measured time at or below its prediction points to a measurement error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from moe_groupgemm import hardware
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.hardware import GpuSpec
from moe_groupgemm.shapes import GroupGemmShape

# Assumed fixed cost of one GPU kernel call: launch, ramp-up and tail of a small kernel.
# An estimate, not a measurement: a few microseconds is the usual size of an empty
# kernel's launch-to-finish time on recent NVIDIA GPUs. scripts/gpu_check.py measures
# the real value on the GPU it runs on (an empty kernel under CUDA-graph replay).
GPU_LAUNCH_FLOOR_S = 4e-6

# Assumed fixed cost of one GroupGEMM call from Python on a CPU: the torch dispatcher and
# thread-pool start. An estimate; backends that loop over groups pay it once per group.
CPU_LAUNCH_FLOOR_S = 10e-6


@dataclass(frozen=True)
class Precision:
    """Element sizes of one GEMM precision: inputs (weights, activations) and outputs."""

    name: str
    input_bytes: int
    output_bytes: int


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", 4, 4),
    "bf16": Precision("bf16", 2, 2),
    # e4m3 inputs with a bfloat16 output, as DeepGEMM's FP8 kernels write.
    "fp8": Precision("fp8", 1, 2),
}


@dataclass(frozen=True)
class Machine:
    """Bandwidth, peak and launch floor of one device at one precision, with their source."""

    name: str
    bytes_per_s: float
    flops_per_s: float
    launch_floor_s: float
    source: str


@dataclass(frozen=True)
class RooflinePoint:
    """Predicted time of one call and its parts, in seconds."""

    memory_s: float
    compute_s: float
    launch_floor_s: float

    @property
    def seconds(self) -> float:
        return max(self.memory_s, self.compute_s) + self.launch_floor_s

    @property
    def bound(self) -> str:
        """``memory`` or ``compute``: which roof sets the prediction."""
        return "memory" if self.memory_s >= self.compute_s else "compute"


def precision_named(name: str) -> Precision:
    """Look up the precision called ``name`` (fp32, bf16, fp8); raise ParameterError for any other name."""
    if name not in PRECISIONS:
        raise ParameterError("precision", name, f"{sorted(PRECISIONS)} 之一", "bf16 对应 BF16 权重，fp8 对应 FP8 权重")
    return PRECISIONS[name]


def bytes_moved(shape: GroupGemmShape, precision: Precision) -> int:
    """Weights and activations at the input size plus outputs at the output size, each once."""
    extra_output_bytes = precision.output_bytes - precision.input_bytes
    return shape.bytes_moved(precision.input_bytes) + shape.total_rows * shape.n * extra_output_bytes


def predict(shape: GroupGemmShape, machine: Machine, precision: Precision) -> RooflinePoint:
    """Roofline time of ``shape`` on ``machine`` at ``precision``."""
    return RooflinePoint(
        memory_s=bytes_moved(shape, precision) / machine.bytes_per_s,
        compute_s=shape.flops() / machine.flops_per_s,
        launch_floor_s=machine.launch_floor_s,
    )


def gpu_machine(spec: GpuSpec, precision: Precision, launch_floor_s: float = GPU_LAUNCH_FLOOR_S) -> Machine:
    """Build a GPU's machine from its datasheet: HBM bandwidth and the dense peak of the precision's input type."""
    if precision.name == "fp8":
        flops = spec.fp8_flops
    elif precision.name == "bf16":
        flops = spec.bf16_flops
    else:
        raise ParameterError("precision", precision.name, "bf16 或 fp8", "GPU 数据手册只给出 BF16 与 FP8 的稠密峰值")
    return Machine(spec.name, spec.hbm_bytes_per_s, flops, launch_floor_s, spec.source)


def cpu_machine(dtype: torch.dtype, launch_floor_s: float = CPU_LAUNCH_FLOOR_S) -> Machine:
    """Measure this CPU's copy bandwidth and ``dtype`` GEMM peak (a few seconds) and return its machine."""
    return Machine(
        name=hardware.cpu_model_name(),
        bytes_per_s=hardware.measure_cpu_copy_bandwidth(),
        flops_per_s=hardware.measure_cpu_gemm_flops(dtype),
        launch_floor_s=launch_floor_s,
        source="measured: hardware.measure_cpu_copy_bandwidth and measure_cpu_gemm_flops",
    )


# DeepGEMM README performance table, masked layout, N=4096, K=7168, measured "on H800 SXM5 with
# NVCC 12.8" (deepseek-ai/DeepGEMM README from commit a6d97a1, 2025-02-25, to 327ec92, 2025-04-09).
# Rows are (groups, m per group, TFLOPS, GB/s); every group had exactly m valid rows.
DEEPGEMM_MASKED_ROWS: tuple[tuple[int, int, float, float], ...] = (
    (1, 1024, 1233.0, 924.0),
    (2, 512, 1040.0, 1288.0),
    (4, 256, 932.0, 2064.0),
)
DEEPGEMM_N = 4096
DEEPGEMM_K = 7168

# Assumption, not a datasheet: the H800 SXM5 (an export variant of the H100 with slower NVLink)
# has the H100 SXM's dense FP8/BF16 peaks and its 3.35 TB/s of HBM3 bandwidth.
H800_SXM = replace(
    hardware.GPU_SPECS["h100-sxm"],
    name="NVIDIA H800 SXM5 (assumed H100 SXM peaks, 3.35 TB/s)",
    source="assumed equal to the H100 SXM datasheet figures for FP8/BF16 and HBM bandwidth",
)


@dataclass(frozen=True)
class PublishedComparison:
    """The model against one published DeepGEMM row."""

    num_groups: int
    rows_per_group: int
    published_us: float
    published_gb_per_s: float
    implied_gb_per_s: float
    predicted_us: float
    bound: str

    @property
    def ratio(self) -> float:
        """Predicted over published time; below 1 means the kernel is slower than the roofline."""
        return self.predicted_us / self.published_us


def compare_with_deepgemm(
    spec: GpuSpec = H800_SXM, launch_floor_s: float = GPU_LAUNCH_FLOOR_S
) -> list[PublishedComparison]:
    """Predict DeepGEMM's published masked FP8 rows and set them beside the published times.

    The published time is derived as 2 * G * m * N * K / TFLOPS, which is how the table's
    TFLOPS were computed. ``implied_gb_per_s`` recomputes the table's GB/s from that time with
    the README's byte count G * (m*K + K*N + 2*m*N), as a check that the rows were read right.
    """
    fp8 = PRECISIONS["fp8"]
    machine = gpu_machine(spec, fp8, launch_floor_s)
    comparisons = []
    for num_groups, m, tflops, gb_per_s in DEEPGEMM_MASKED_ROWS:
        shape = GroupGemmShape(rows=(m,) * num_groups, n=DEEPGEMM_N, k=DEEPGEMM_K)
        published_s = shape.flops() / (tflops * 1e12)
        point = predict(shape, machine, fp8)
        comparisons.append(
            PublishedComparison(
                num_groups=num_groups,
                rows_per_group=m,
                published_us=published_s * 1e6,
                published_gb_per_s=gb_per_s,
                implied_gb_per_s=bytes_moved(shape, fp8) / published_s / 1e9,
                predicted_us=point.seconds * 1e6,
                bound=point.bound,
            )
        )
    return comparisons


def ridge_rows_per_group(machine: Machine, precision: Precision, n: int, k: int) -> float:
    """m at which one group's compute time equals its memory time (the roofline's ridge), as a real number.

    Solves 2*m*N*K / F = ((N*K + m*K) * b_in + m*N * b_out) / BW for m.
    """
    weight_s = n * k * precision.input_bytes / machine.bytes_per_s
    per_row_compute_s = 2 * n * k / machine.flops_per_s
    per_row_memory_s = (k * precision.input_bytes + n * precision.output_bytes) / machine.bytes_per_s
    if per_row_compute_s <= per_row_memory_s:
        return math.inf
    return weight_s / (per_row_compute_s - per_row_memory_s)


# Precision of a sweep dtype name, as stored in a run's metadata.
DTYPE_PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "bf16", "float8_e4m3fn": "fp8"}


def machine_for_run(metadata: dict) -> Machine | None:
    """Build the roofline machine of a committed run, or return None if its device has no known figures.

    A CPU run uses the copy bandwidth and GEMM peak it measured and recorded; a GPU run
    uses the datasheet entry matching its device model.
    """
    precision = PRECISIONS[DTYPE_PRECISION[metadata["dtype"]]]
    if metadata["device_type"] == "cpu":
        bandwidth = metadata.get("copy_bandwidth_bytes_per_s")
        peak = metadata["peak"].get("flops_per_s")
        if not bandwidth or not peak:
            return None
        return Machine(metadata["device_model"], bandwidth, peak, CPU_LAUNCH_FLOOR_S,
                       "measured by the run: copy bandwidth and square-GEMM peak in metadata.json")
    spec = hardware.gpu_spec_for(metadata["device_model"])
    if spec is None:
        return None
    return gpu_machine(spec, precision if precision.name != "fp32" else PRECISIONS["bf16"])


def predicted_seconds(rows: tuple[int, ...], n: int, k: int, machine: Machine, precision: Precision) -> RooflinePoint:
    """Roofline point of a GroupGEMM with the given rows per group."""
    return predict(GroupGemmShape(rows=rows, n=n, k=k), machine, precision)


def predict_article_grid(
    spec_key: str, precision_name: str, q_lens: list[int], batch_sizes: list[int], dp_sizes: list[int],
    n: int, k: int,
) -> "pd.DataFrame":
    """Roofline time and MFU of the article's (6)/(7) shapes on a datasheet GPU; a prediction, not data."""
    import pandas as pd

    from moe_groupgemm.engine_config import EngineConfig
    from moe_groupgemm.shapes import formula_shape

    spec = hardware.GPU_SPECS[spec_key]
    precision = precision_named(precision_name)
    machine = gpu_machine(spec, precision)
    records = []
    for dp_size in dp_sizes:
        for q_len in q_lens:
            for batch_size in batch_sizes:
                shape = formula_shape(EngineConfig(batch_size=batch_size, q_len=q_len, dp_size=dp_size), n, k)
                point = predict(shape, machine, precision)
                records.append({
                    "gpu": spec.name, "precision": precision.name, "q_len": q_len, "batch_size": batch_size,
                    "dp_size": dp_size, "num_groups": shape.num_groups, "m": shape.rows[0],
                    "predicted_time_us": point.seconds * 1e6, "bound": point.bound,
                    "predicted_mfu": shape.flops() / (point.seconds * machine.flops_per_s),
                })
    return pd.DataFrame.from_records(records)
