"""The sweep notebook end to end through the papermill command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from moe_groupgemm.tables import load_all, summarize_all

from conftest import REPOSITORY_ROOT

PAPERMILL = str(Path(sys.executable).with_name("papermill"))


def _papermill(output: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([PAPERMILL, "notebooks/sweep.ipynb", str(output), *arguments],
                          cwd=REPOSITORY_ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_readme_command_real_shape(tmp_path: Path):
    """The README's command at N=4096, K=7168, redirected to a temporary data folder."""
    result = _papermill(tmp_path / "out.ipynb", "-p", "device", "cpu",
                        "-y", "{q_lens: [1], batch_sizes: [1, 2], dp_sizes: [32]}",
                        "-p", "output_dir", str(tmp_path / "raw"), "-p", "reps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = load_all(tmp_path / "raw")
    assert len(runs) == 1
    summary = summarize_all(runs)
    assert sorted(summary["batch_size"]) == [1, 2]
    # D=32 leaves E/D = 8 local experts, so both points use all 8, with m = ceil(B*Q*D/32) = B rows each.
    assert set(summary["num_groups"]) == {8}
    assert sorted(summary["total_rows"]) == [8, 16]
    assert (summary["n"] == 4096).all()
    assert (summary["k"] == 7168).all()
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters["dp_sizes"] == [32]


def test_invalid_parameter_fails_papermill(tmp_path: Path):
    result = _papermill(tmp_path / "out.ipynb", "-y", "{dp_sizes: [7]}", "-p", "output_dir", str(tmp_path / "raw"))
    assert result.returncode != 0
    assert "dp_sizes" in result.stderr + result.stdout
    assert not (tmp_path / "raw").exists()
