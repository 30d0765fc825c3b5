"""Per-point failures are recorded and the sweep goes on; concurrent runs never share a folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import pytest

from moe_groupgemm import backends
from moe_groupgemm.backends import Backend
from moe_groupgemm.backends.base import GroupGemmProblem
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters
from moe_groupgemm.tables import load_run, summarize

from conftest import REPOSITORY_ROOT, TINY_GRID


class FailsOnWideGroupsBackend(Backend):
    """A real backend that raises on more than 4 groups, like a kernel limited to a fixed group count."""

    name = "fails_on_wide_groups"

    def run(self, state: GroupGemmProblem) -> torch.Tensor:
        if state.num_groups > 4:
            raise RuntimeError(f"group count {state.num_groups} exceeds this kernel's limit of 4")
        outputs = [state.x[sum(state.rows[:g]):sum(state.rows[:g + 1])] @ state.weights[g].T
                   for g in range(state.num_groups)]
        return torch.cat(outputs)


class WrongResultBackend(Backend):
    """A real backend with a bug: it uses the first expert's weights for every group."""

    name = "wrong_result"

    def run(self, state: GroupGemmProblem) -> torch.Tensor:
        return state.x @ state.weights[0].T


@pytest.fixture(autouse=True)
def faulty_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the two faulty backends for this module only, so other tests never see them."""
    for backend_class in (FailsOnWideGroupsBackend, WrongResultBackend):
        monkeypatch.setitem(backends._BACKENDS, backend_class.name, backend_class)


def test_backend_error_recorded_and_sweep_continues(tmp_path: Path):
    messages: list[str] = []
    parameters = SweepParameters(**TINY_GRID, backends=["fails_on_wide_groups", "torch_loop"],
                                 output_dir=str(tmp_path / "raw"))
    result = run_sweep(parameters, progress=messages.append)
    run = load_run(result.run_dir)
    failed = run.points[run.points["status"] == "failed"]
    # D=32 gives 8 local experts (fails), D=64 gives 4 (runs).
    assert set(failed["backend"]) == {"fails_on_wide_groups"}
    assert set(failed["dp_size"]) == {32}
    assert failed["error"].str.contains("exceeds this kernel's limit").all()
    assert len(result.failures) == len(failed) == 4
    assert len(summarize(run)) == 16 - 4
    assert any("失败" in message for message in messages[-6:])


def test_wrong_result_fails_correctness_and_is_not_timed(tmp_path: Path):
    parameters = SweepParameters(**TINY_GRID, backends=["wrong_result"], output_dir=str(tmp_path / "raw"))
    result = run_sweep(parameters, progress=lambda message: None)
    run = load_run(result.run_dir)
    assert (run.points["status"] == "failed").all()
    assert run.points["error"].str.contains("max_abs_error").all()
    assert len(run.timings) == 0


CONCURRENT_SWEEP = """
import sys
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters
run_sweep(SweepParameters(q_lens=[1, 2], batch_sizes=[1, 2, 4], dp_sizes=[32, 64], n=64, k=128, warmup=1, reps=5,
                          output_dir=sys.argv[1]), progress=lambda message: None)
"""


def test_concurrent_runs_use_separate_folders(tmp_path: Path):
    output_dir = tmp_path / "raw"
    processes = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SWEEP, str(output_dir)], cwd=REPOSITORY_ROOT,
                                  stderr=subprocess.PIPE) for _ in range(3)]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-2000:]
    run_dirs = sorted(output_dir.glob("*/*/metadata.json"))
    assert len(run_dirs) == 3, run_dirs
    for metadata_path in run_dirs:
        run = load_run(metadata_path.parent)
        assert len(run.points) == 12
        assert len(run.timings) == 12 * 5


def test_sampled_routing_records_rows_used(tmp_path: Path):
    parameters = SweepParameters(**(TINY_GRID | {"dp_sizes": [32]}), routing="group_limited", seed=7,
                                 output_dir=str(tmp_path / "raw"))
    result = run_sweep(parameters, progress=lambda message: None)
    run = load_run(result.run_dir)
    assert (run.points["routing"] == "group_limited").all()
    for point in run.points.itertuples():
        rows = [int(value) for value in point.rows.split()]
        assert len(rows) == point.num_groups, point
        assert sum(rows) == point.total_rows, point
        assert point.num_groups <= 8, point
    seeds = sorted(run.points["seed"])
    assert seeds == sorted(set(seeds)), "every point must record its own seed"

    again = run_sweep(SweepParameters(**(TINY_GRID | {"dp_sizes": [32]}), routing="group_limited", seed=7,
                                      output_dir=str(tmp_path / "again")), progress=lambda message: None)
    assert list(load_run(again.run_dir).points["rows"]) == list(run.points["rows"])


def test_every_cpu_backend_checked_and_timed(tmp_path: Path):
    """The sweep runs each registered backend; those this machine cannot run are recorded with the reason."""
    names = ["torch_loop", "masked_bmm", "grouped_mm", "triton_masked", "deepgemm_fp8_masked"]
    parameters = SweepParameters(**(TINY_GRID | {"q_lens": [1], "dp_sizes": [32]}), backends=names,
                                 output_dir=str(tmp_path / "raw"))
    result = run_sweep(parameters, progress=lambda message: None)
    run = load_run(result.run_dir)
    by_backend = run.points.groupby("backend")["status"].agg(set).to_dict()
    for name in ("torch_loop", "masked_bmm", "grouped_mm"):
        assert by_backend[name] == {"ok"}, (name, run.points[run.points["backend"] == name]["error"].tolist())
    assert by_backend["deepgemm_fp8_masked"] == {"failed"}
    unavailable = run.points[run.points["backend"] == "deepgemm_fp8_masked"]["error"]
    assert unavailable.str.startswith("后端不可用").all(), unavailable.tolist()
    checked = run.points[run.points["status"] == "ok"]
    assert (checked["check_max_abs_error"].astype(float) <= checked["check_tolerance"].astype(float)).all()
