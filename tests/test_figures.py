"""Figures follow the data and are byte-identical for identical data."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from moe_groupgemm import figures
from moe_groupgemm.tables import load_all, summarize_all


def _draw(data_root: Path, output_dir: Path) -> dict[str, bytes]:
    figures.use_book_style()
    paths = figures.write_batch_size_figures(summarize_all(load_all(data_root)), output_dir)
    return {path.name: path.read_bytes() for path in paths}


def test_one_time_and_mfu_figure_per_q(tiny_run: Path, tmp_path: Path):
    drawn = _draw(tiny_run.parent.parent, tmp_path / "figures")
    names = sorted(drawn)
    assert len(names) == 4, names
    assert sum(name.startswith("bs_vs_time_") for name in names) == 2
    assert sum(name.startswith("bs_vs_mfu_") for name in names) == 2
    assert all(content.startswith(b"\x89PNG") for content in drawn.values())


def test_same_data_same_bytes(tiny_run: Path, tmp_path: Path):
    first = _draw(tiny_run.parent.parent, tmp_path / "first")
    second = _draw(tiny_run.parent.parent, tmp_path / "second")
    assert first == second


def test_changed_time_changes_figure(tiny_run: Path, tmp_path: Path):
    before = _draw(tiny_run.parent.parent, tmp_path / "before")
    timings = tiny_run / "timings.csv"
    lines = timings.read_text().splitlines()
    for index in range(1, len(lines)):
        key, value = lines[index].rsplit(",", 1)
        lines[index] = f"{key},{float(value) * 3:.3f}"
    timings.write_text("\n".join(lines) + "\n")
    after = _draw(tiny_run.parent.parent, tmp_path / "after")
    assert before.keys() == after.keys()
    changed = [name for name in before if before[name] != after[name]]
    assert len(changed) == len(before), f"unchanged: {set(before) - set(changed)}"


def test_no_data_no_figure(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert _draw(tmp_path / "empty", tmp_path / "figures") == {}


def test_missing_glyph_raises(tmp_path: Path):
    figures.use_book_style()
    figure, axes = plt.subplots()
    axes.set_title("\u0e01\u0e02")  # Thai letters are not in the vendored Chinese subset.
    with pytest.raises(figures.MissingGlyphError):
        figures.save_figure(figure, tmp_path / "thai.png")
    plt.close(figure)
    assert not (tmp_path / "thai.png").exists()


def test_chinese_labels_render_without_warning(tmp_path: Path):
    figures.use_book_style()
    figure, axes = plt.subplots()
    axes.set_title("专家 批处理 耗时 µs ≤ α")
    figures.save_figure(figure, tmp_path / "zh.png")
    plt.close(figure)
    assert (tmp_path / "zh.png").stat().st_size > 0
