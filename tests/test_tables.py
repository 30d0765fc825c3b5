"""Validation of raw run folders: every corruption fails with the file and the row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moe_groupgemm.errors import DataValidationError
from moe_groupgemm.tables import load_all, load_run, summarize

from conftest import TINY_GRID


def test_tiny_run_loads_and_summarizes(tiny_run: Path):
    run = load_run(tiny_run)
    summary = summarize(run)
    assert len(summary) == 8
    assert (summary["n_reps"] == TINY_GRID["reps"]).all()
    assert (summary["time_us_p20"] <= summary["time_us_median"]).all()
    assert (summary["time_us_median"] <= summary["time_us_p80"]).all()
    assert summary["mfu"].between(0, 1.5).all(), summary["mfu"].tolist()


def test_mfu_formula(tiny_run: Path):
    run = load_run(tiny_run)
    summary = summarize(run)
    row = summary.iloc[0]
    peak = row["peak_flops_per_s"]
    expected = 2 * row["total_rows"] * row["n"] * row["k"] / (row["time_us_median"] * 1e-6 * peak)
    assert row["mfu"] == pytest.approx(expected, rel=1e-12)
    assert peak >= run.metadata["peak"]["flops_per_s"]
    assert summary["mfu"].max() <= 1.0 + 1e-12, summary["mfu"].max()


def _edit_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line - 1], (lines[line - 1], old)
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def _last_field(path: Path, line: int) -> str:
    return path.read_text().splitlines()[line - 1].rsplit(",", 1)[1]


@pytest.mark.parametrize("bad_time", ["0.000", "-3.5", "nan", "", "fast"])
def test_bad_time_rejected_with_row(tiny_run: Path, bad_time: str):
    timings = tiny_run / "timings.csv"
    _edit_line(timings, 3, _last_field(timings, 3), bad_time)
    with pytest.raises(DataValidationError) as caught:
        load_run(tiny_run)
    assert caught.value.row == 3
    assert "timings.csv" in caught.value.path


def test_duplicate_timing_row_rejected(tiny_run: Path):
    timings = tiny_run / "timings.csv"
    lines = timings.read_text().splitlines()
    timings.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DataValidationError, match="重复"):
        load_run(tiny_run)


def test_duplicate_point_rejected(tiny_run: Path):
    points = tiny_run / "points.csv"
    lines = points.read_text().splitlines()
    points.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DataValidationError) as caught:
        load_run(tiny_run)
    assert caught.value.row == len(lines) + 1


def test_missing_repetition_rejected(tiny_run: Path):
    timings = tiny_run / "timings.csv"
    lines = timings.read_text().splitlines()
    timings.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataValidationError, match="reps"):
        load_run(tiny_run)


def test_rows_inconsistent_with_formula_rejected(tiny_run: Path):
    points = tiny_run / "points.csv"
    _edit_line(points, 2, "1 1 1 1 1 1 1 1,8,", "2 1 1 1 1 1 1 0,8,")
    with pytest.raises(DataValidationError) as caught:
        load_run(tiny_run)
    assert caught.value.row == 2


def test_missing_column_rejected(tiny_run: Path):
    points = tiny_run / "points.csv"
    lines = points.read_text().splitlines()
    lines[0] = lines[0].replace("total_rows", "total")
    points.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match="total_rows"):
        load_run(tiny_run)


def test_schema_version_mismatch_rejected(tiny_run: Path):
    metadata_path = tiny_run / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["schema_version"] = 99
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(DataValidationError, match="schema_version"):
        load_run(tiny_run)


def test_metadata_missing_peak_rejected(tiny_run: Path):
    metadata_path = tiny_run / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["peak"]
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(DataValidationError, match="peak"):
        load_run(tiny_run)


def test_run_moved_to_wrong_device_rejected(tiny_run: Path):
    wrong = tiny_run.parent.parent / "cuda-nvidia-h200" / tiny_run.name
    wrong.parent.mkdir()
    shutil.move(tiny_run, wrong)
    with pytest.raises(DataValidationError, match="device_slug"):
        load_run(wrong)


def test_load_all_finds_every_run(tiny_parameters, tiny_run: Path):
    from moe_groupgemm.sweep import run_sweep

    run_sweep(tiny_parameters, progress=lambda message: None)
    assert len(load_all(tiny_run.parent.parent)) == 2
