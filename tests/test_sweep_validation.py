"""Invalid sweep parameters fail before anything is written, naming the parameter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from moe_groupgemm.errors import ParameterError
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters

from conftest import TINY_GRID

INVALID_CASES = [
    ("dp_sizes", {"dp_sizes": [3]}),
    ("dp_sizes", {"dp_sizes": []}),
    ("top_k", {"top_k": 0}),
    ("top_k", {"top_k": 300}),
    ("batch_sizes", {"batch_sizes": [0]}),
    ("batch_sizes", {"batch_sizes": [-2]}),
    ("q_lens", {"q_lens": [0]}),
    ("q_lens", {"q_lens": []}),
    ("backends", {"backends": ["cutlass_magic"]}),
    ("routing", {"routing": "zipf"}),
    ("dtype", {"dtype": "int4"}),
    ("dtype", {"dtype": "float8_e4m3fn"}),
    ("device", {"device": "tpu"}),
    ("reps", {"reps": 0}),
    ("warmup", {"warmup": -1}),
]


@pytest.mark.parametrize(("name", "override"), INVALID_CASES, ids=[f"{n}-{v}" for n, v in INVALID_CASES])
def test_invalid_parameter_named(tmp_path: Path, name: str, override: dict):
    output_dir = tmp_path / "raw"
    parameters = SweepParameters(**(TINY_GRID | override), output_dir=str(output_dir))
    with pytest.raises(ParameterError) as caught:
        run_sweep(parameters, progress=lambda message: None)
    assert caught.value.name == name, str(caught.value)
    assert "修正方法" in str(caught.value)
    assert not output_dir.exists(), f"{name}: invalid run wrote {list(output_dir.rglob('*'))}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without a GPU")
def test_cuda_without_gpu_rejected(tmp_path: Path):
    parameters = SweepParameters(**(TINY_GRID | {"device": "cuda"}), output_dir=str(tmp_path / "raw"))
    with pytest.raises(ParameterError) as caught:
        run_sweep(parameters, progress=lambda message: None)
    assert caught.value.name == "device"
    assert not (tmp_path / "raw").exists()


def test_unwritable_output_dir_rejected(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) can write to a read-only folder, so permissions cannot be tested")
        parameters = SweepParameters(**TINY_GRID, output_dir=str(locked / "raw"))
        with pytest.raises(ParameterError) as caught:
            run_sweep(parameters, progress=lambda message: None)
        assert caught.value.name == "output_dir"
    finally:
        locked.chmod(0o700)


def test_output_dir_that_is_a_file_rejected(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    parameters = SweepParameters(**TINY_GRID, output_dir=str(blocker / "raw"))
    with pytest.raises(ParameterError) as caught:
        run_sweep(parameters, progress=lambda message: None)
    assert caught.value.name == "output_dir"
