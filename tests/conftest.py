"""Shared fixtures: a tiny sweep grid that runs in seconds on a CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class BuiltSite:
    """A strict book build of a copy of the committed data, shared by the tests of one session."""

    html: Path
    output: Path
    data_root: Path
    figure_root: Path
    log: str


def build_book(output: Path, data_root: Path, figure_root: Path) -> subprocess.CompletedProcess:
    """Run the strict build the README documents, reading data from ``data_root``."""
    environment = os.environ | {"MOE_GROUPGEMM_DATA": str(data_root), "MOE_GROUPGEMM_FIGURES": str(figure_root)}
    environment.pop("MPLBACKEND", None)
    jupyter_book = str(Path(sys.executable).with_name("jupyter-book"))
    return subprocess.run([jupyter_book, "build", "-W", "-n", "--keep-going", "--path-output", str(output), "."],
                          cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    root = tmp_path_factory.mktemp("book")
    data_root = root / "raw"
    shutil.copytree(REPOSITORY_ROOT / "data" / "raw", data_root)
    figure_root = root / "figures"
    output = root / "site"
    result = build_book(output, data_root, figure_root)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return BuiltSite(output / "_build" / "html", output, data_root, figure_root, result.stdout + result.stderr)
