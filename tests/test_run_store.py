"""Raw data on disk: creation, appends, resume and interruption by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moe_groupgemm.run_store import RunStore, new_run_id
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters
from moe_groupgemm.tables import load_run

from conftest import REPOSITORY_ROOT, TINY_GRID


def test_run_ids_unique():
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200


def test_create_refuses_existing_folder(tmp_path: Path):
    RunStore.create(tmp_path / "run", {"run_id": "run"})
    with pytest.raises(FileExistsError):
        RunStore.create(tmp_path / "run", {"run_id": "run"})


def test_rerun_same_id_skips_finished_points(tiny_parameters: SweepParameters, tiny_run: Path):
    rows_before = (tiny_run / "timings.csv").read_text()
    tiny_parameters.run_id = tiny_run.name
    result = run_sweep(tiny_parameters, progress=lambda message: None)
    assert result.measured == 0
    assert result.skipped == 8
    assert (tiny_run / "timings.csv").read_text() == rows_before


def test_resume_drops_orphan_timings(tiny_parameters: SweepParameters, tiny_run: Path):
    points = (tiny_run / "points.csv").read_text().splitlines()
    (tiny_run / "points.csv").write_text("\n".join(points[:-1]) + "\n")
    tiny_parameters.run_id = tiny_run.name
    result = run_sweep(tiny_parameters, progress=lambda message: None)
    assert result.measured == 1
    run = load_run(tiny_run)
    assert len(run.points) == 8
    assert len(run.timings) == 8 * TINY_GRID["reps"]


def test_resume_with_other_parameters_rejected(tiny_parameters: SweepParameters, tiny_run: Path):
    tiny_parameters.run_id = tiny_run.name
    tiny_parameters.reps = 5
    with pytest.raises(ValueError, match="run_id"):
        run_sweep(tiny_parameters, progress=lambda message: None)


SLOW_SWEEP = """
import sys
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters
run_sweep(SweepParameters(q_lens=[1, 2, 3, 4], batch_sizes=[1, 2, 4, 8, 16], dp_sizes=[16, 32], n=256, k=512,
                          warmup=1, reps=40, output_dir=sys.argv[1], run_id="killed-run"))
"""


def test_sigkill_mid_run_then_resume(tmp_path: Path):
    output_dir = tmp_path / "raw"
    process = subprocess.Popen([sys.executable, "-c", SLOW_SWEEP, str(output_dir)], cwd=REPOSITORY_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    points_files = list(output_dir.glob("*/killed-run/points.csv"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        points_files = list(output_dir.glob("*/killed-run/points.csv"))
        if points_files and len(points_files[0].read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert points_files, process.stderr.read().decode()
    run_dir = points_files[0].parent
    finished_before = len(points_files[0].read_text().splitlines()) - 1
    assert 0 < finished_before < 40

    result = run_sweep(SweepParameters(q_lens=[1, 2, 3, 4], batch_sizes=[1, 2, 4, 8, 16], dp_sizes=[16, 32],
                                       n=256, k=512, warmup=1, reps=40, output_dir=str(output_dir),
                                       run_id="killed-run"), progress=lambda message: None)
    assert result.skipped >= finished_before
    assert result.measured + result.skipped == 40
    run = load_run(run_dir)
    assert len(run.points) == 40
    assert len(run.timings) == 40 * 40
