"""Shared fixtures: a tiny sweep grid that runs in seconds on a CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]

# Jupyter kernels (papermill, the book build) start "python" from PATH: use this interpreter's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

TINY_GRID = dict(q_lens=[1, 2], batch_sizes=[1, 4], dp_sizes=[32, 64], n=64, k=128, warmup=1, reps=3)


@pytest.fixture
def tiny_parameters(tmp_path: Path) -> SweepParameters:
    return SweepParameters(**TINY_GRID, output_dir=str(tmp_path / "raw"))


@pytest.fixture
def tiny_run(tiny_parameters: SweepParameters) -> Path:
    """Run directory of a finished tiny sweep."""
    return run_sweep(tiny_parameters, progress=lambda message: None).run_dir
