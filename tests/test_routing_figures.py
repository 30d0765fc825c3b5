"""Tests for moe_groupgemm.routing_figures on small frames."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from moe_groupgemm import figures, routing_exact, routing_figures
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.routing_montecarlo import monte_carlo_frame

CONFIGS = [EngineConfig(b, q, d) for q in (1, 2) for d in (8, 64) for b in (1, 4, 16)]


@pytest.fixture(autouse=True)
def book_style() -> None:
    figures.use_book_style()


def render_with_book_font(figure: plt.Figure) -> None:
    """Draw ``figure``, failing on any glyph that the book's font lacks."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        figure.canvas.draw()


@pytest.fixture(scope="module")
def grid():
    exact = routing_exact.comparison_frame(CONFIGS)
    simulated = monte_carlo_frame(CONFIGS, "uniform", min_tokens=500, min_samples=20, seed=1)
    return routing_figures.merge_exact_and_monte_carlo(exact, simulated)


def test_merge_prefixes_monte_carlo_columns(grid) -> None:
    assert len(grid) == len(CONFIGS), f"{len(grid)=}"
    assert "mc_mean_num_groups" in grid.columns, list(grid.columns)
    assert "exact_num_groups" in grid.columns, list(grid.columns)


def test_comparison_grid_has_panel_per_q_and_d(grid) -> None:
    figure = routing_figures.draw_comparison_grid(
        grid, "eq6_num_groups", "exact_num_groups", "mc_mean_num_groups", "num_groups", "eq. (6)",
    )
    try:
        render_with_book_font(figure)
        assert len(figure.axes) == 2 * 2, f"{len(figure.axes)=}"
        assert len(figure.axes[0].lines) == 3, f"{len(figure.axes[0].lines)=}"
    finally:
        plt.close(figure)


def test_knee_and_alpha_figures_draw(grid) -> None:
    for draw in (routing_figures.draw_knee, routing_figures.draw_alpha):
        figure = draw(grid)
        try:
            render_with_book_font(figure)
            assert figure.axes, f"{draw.__name__} drew no axes"
            assert all(axes.lines for axes in figure.axes), f"{draw.__name__} left an empty panel"
        finally:
            plt.close(figure)


def test_reach_bars_sum_to_one() -> None:
    reach = {"a": np.array([1, 2, 2, 4], dtype=np.uint8)}
    figure = routing_figures.draw_reach(reach, top_k=8)
    try:
        render_with_book_font(figure)
        heights = [patch.get_height() for patch in figure.axes[0].patches]
        assert len(heights) == 8, f"{heights=}"
        assert sum(heights) == pytest.approx(1.0), f"{heights=}"
    finally:
        plt.close(figure)
