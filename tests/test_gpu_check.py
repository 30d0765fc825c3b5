"""The GPU check script's plan, which runs without a GPU: the grid, its estimate and its CSV writer."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from moe_groupgemm.backends import backend_names
from moe_groupgemm.engine_config import DEEPSEEK_V3_GEMM_K, DEEPSEEK_V3_GEMM_N, EngineConfig
from moe_groupgemm.hardware import GPU_SPECS
from moe_groupgemm.shapes import formula_shape

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
# The script must finish inside one 8-minute device call.
DEVICE_CALL_S = 480


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the script executes.
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def test_grid_covers_article_configs(gpu_check) -> None:
    grid = gpu_check.article_grid()
    triples = [triple for triples in grid.values() for triple in triples]
    assert len(triples) == 4 * 9 * 6 == len(set(triples)), len(triples)
    for (num_groups, rows), configs in grid.items():
        for q_len, batch_size, dp_size in configs:
            shape = formula_shape(EngineConfig(batch_size, q_len, dp_size), DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K)
            assert (shape.num_groups, shape.rows[0]) == (num_groups, rows), (q_len, batch_size, dp_size)


def test_estimate_fits_device_call(gpu_check, capsys: pytest.CaptureFixture[str]) -> None:
    planned = [gpu_check.PlannedBackend(name, "fp8" if "fp8" in name else "bf16") for name in backend_names()]
    estimate = gpu_check.print_plan(gpu_check.article_grid(), planned, GPU_SPECS["h200-sxm"], 256 * 2**20,
                                    budget_s=420)
    assert estimate < DEVICE_CALL_S, capsys.readouterr().out
    assert 420 < DEVICE_CALL_S


def test_write_rows_appends_under_one_header(gpu_check, tmp_path: Path) -> None:
    row = {column: 1 for column in gpu_check.CSV_COLUMNS}
    gpu_check.write_rows(tmp_path, [row])
    gpu_check.write_rows(tmp_path, [row, row])
    with open(tmp_path / "cuda_graph.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3, rows
    assert list(rows[0]) == list(gpu_check.CSV_COLUMNS), rows[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_event_timing_returns_positive_reps() -> None:
    from moe_groupgemm import cuda_timing

    a = torch.randn(256, 256, device="cuda")
    times = cuda_timing.time_cuda_events(lambda: a @ a, warmup=1, reps=3)
    assert len(times) == 3, times
    assert all(t > 0 for t in times), times
