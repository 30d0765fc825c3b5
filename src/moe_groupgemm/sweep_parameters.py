"""Sweep parameters and their validation, done before anything is written."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from moe_groupgemm.engine_config import EngineConfig, require_positive_int
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.routing_montecarlo import ROUTING_MODES

LIST_PARAMETER_NAMES = {"dp_size": "dp_sizes", "batch_size": "batch_sizes", "q_len": "q_lens"}

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float8_e4m3fn": torch.float8_e4m3fn,
}

# Dtypes each device type can run in this project's backends.
DEVICE_DTYPES = {
    "cpu": ("float32", "bfloat16"),
    "cuda": ("bfloat16", "float16", "float32", "float8_e4m3fn"),
}


@dataclass
class SweepParameters:
    """Everything a sweep needs; the notebook's ``parameters`` cell maps onto these fields."""

    device: str = "cpu"
    dtype: str = "auto"
    q_lens: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    dp_sizes: list[int] = field(default_factory=lambda: [8, 16, 32])
    n: int = 4096
    k: int = 7168
    num_experts: int = 256
    top_k: int = 8
    warmup: int = 2
    reps: int = 10
    output_dir: str = "data/raw"
    backends: list[str] = field(default_factory=lambda: ["torch_loop"])
    routing: str = "formula"
    seed: int = 0
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidatedSweep:
    """Parameters after validation, with resolved torch objects."""

    parameters: SweepParameters
    device: torch.device
    dtype: torch.dtype
    dtype_name: str
    configs: tuple[EngineConfig, ...]


def _require_int_list(name: str, values: object) -> list[int]:
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise ParameterError(name, values, "非空的正整数列表", f"例如 -y \"{{{name}: [1, 2, 4]}}\"")
    for value in values:
        require_positive_int(name, value, f"{name} 中的每个值都必须是正整数")
    if len(set(values)) != len(values):
        raise ParameterError(name, values, "不含重复值的列表", f"删除 {name} 中重复的值")
    return list(values)


def _resolve_device(name: object) -> torch.device:
    if name not in DEVICE_DTYPES:
        raise ParameterError("device", name, "\"cpu\" 或 \"cuda\"", "用 -p device cpu 或 -p device cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "device", name, "本机可用的设备：cpu", "本机没有可用的 GPU；改用 -p device cpu，或在有 CUDA GPU 的机器上运行"
        )
    return torch.device(str(name))


def _resolve_dtype(name: object, device: torch.device) -> tuple[str, torch.dtype]:
    if name == "auto":
        name = "float32" if device.type == "cpu" else "bfloat16"
    if name not in DTYPES:
        raise ParameterError("dtype", name, f"\"auto\" 或 {sorted(DTYPES)} 之一", "用 -p dtype float32（CPU）或 bfloat16（GPU）")
    if name not in DEVICE_DTYPES[device.type]:
        raise ParameterError(
            "dtype", name, f"{device.type} 上支持的 {list(DEVICE_DTYPES[device.type])}",
            f"在 {device.type} 上改用 {DEVICE_DTYPES[device.type][0]}",
        )
    return str(name), DTYPES[str(name)]


def _check_writable(output_dir: object) -> None:
    if not isinstance(output_dir, str) or not output_dir:
        raise ParameterError("output_dir", output_dir, "非空的目录路径", "例如 -p output_dir data/raw")
    path = Path(output_dir).resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError(
            "output_dir", output_dir, "可写的目录（或可在可写目录下创建）",
            f"{existing} 不可写；换一个可写的目录，或修改其权限",
        )


def validate(parameters: SweepParameters) -> ValidatedSweep:
    """Check every parameter and return resolved objects; raise ParameterError on the first invalid one."""
    from moe_groupgemm.backends import backend_names

    device = _resolve_device(parameters.device)
    dtype_name, dtype = _resolve_dtype(parameters.dtype, device)
    q_lens = _require_int_list("q_lens", parameters.q_lens)
    batch_sizes = _require_int_list("batch_sizes", parameters.batch_sizes)
    dp_sizes = _require_int_list("dp_sizes", parameters.dp_sizes)
    require_positive_int("n", parameters.n)
    require_positive_int("k", parameters.k)
    require_positive_int("reps", parameters.reps)
    if isinstance(parameters.warmup, bool) or not isinstance(parameters.warmup, int) or parameters.warmup < 0:
        raise ParameterError("warmup", parameters.warmup, "非负整数", "例如 -p warmup 2")
    if isinstance(parameters.seed, bool) or not isinstance(parameters.seed, int) or parameters.seed < 0:
        raise ParameterError("seed", parameters.seed, "非负整数", "例如 -p seed 0")
    if parameters.routing not in ROUTING_MODES:
        raise ParameterError("routing", parameters.routing, f"{list(ROUTING_MODES)} 之一", "例如 -p routing formula")
    if not isinstance(parameters.backends, (list, tuple)) or len(parameters.backends) == 0:
        raise ParameterError("backends", parameters.backends, f"{backend_names()} 中的非空子集", "例如 -y \"{backends: [torch_loop]}\"")
    for backend in parameters.backends:
        if backend not in backend_names():
            raise ParameterError("backends", backend, f"{backend_names()} 之一", "从已注册的后端中选择")
    if parameters.run_id is not None and (not isinstance(parameters.run_id, str) or not parameters.run_id.replace("-", "").isalnum()):
        raise ParameterError("run_id", parameters.run_id, "只含字母、数字和 - 的字符串，或 None", "省略 run_id 以自动生成")
    _check_writable(parameters.output_dir)

    configs = []
    for dp_size in dp_sizes:
        for q_len in q_lens:
            for batch_size in batch_sizes:
                try:
                    config = EngineConfig(batch_size=batch_size, q_len=q_len, dp_size=dp_size,
                                          top_k=parameters.top_k, num_experts=parameters.num_experts)
                except ParameterError as error:
                    # Name the notebook parameter (a list) rather than the per-point field.
                    name = LIST_PARAMETER_NAMES.get(error.name, error.name)
                    raise ParameterError(name, error.value, error.accepted, error.fix) from None
                configs.append(config)
    return ValidatedSweep(parameters, device, dtype, dtype_name, tuple(configs))
