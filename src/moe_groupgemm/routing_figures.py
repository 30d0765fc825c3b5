"""Figures of the routing chapter: the article's approximations against exact values and Monte Carlo.

Inputs are the frames of ``routing_exact.comparison_frame`` and
``routing_montecarlo.monte_carlo_frame`` merged on (batch_size, q_len, dp_size);
the Monte Carlo columns carry the prefix ``mc_``. Every function returns a
matplotlib Figure and leaves closing it to the caller. Call
``figures.use_book_style()`` first so that Chinese labels use the book's font.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

MERGE_KEYS = ["batch_size", "q_len", "dp_size"]


def merge_exact_and_monte_carlo(exact: pd.DataFrame, monte_carlo: pd.DataFrame) -> pd.DataFrame:
    """Join the two frames on (batch_size, q_len, dp_size), prefixing Monte Carlo columns with ``mc_``."""
    renamed = monte_carlo.rename(columns={column: f"mc_{column}" for column in monte_carlo.columns if column not in MERGE_KEYS})
    return exact.merge(renamed, on=MERGE_KEYS, how="inner", validate="one_to_one")


def draw_comparison_grid(
    frame: pd.DataFrame, formula_column: str, exact_column: str, mc_column: str, ylabel: str, formula_label: str,
) -> plt.Figure:
    """Draw one panel per (Q, D) with the formula, exact and Monte Carlo values against B on a log2 axis."""
    q_lens = sorted(frame["q_len"].unique())
    dp_sizes = sorted(frame["dp_size"].unique())
    figure, axes_grid = plt.subplots(
        len(q_lens), len(dp_sizes), figsize=(2.1 * len(dp_sizes), 1.9 * len(q_lens)), sharex=True, squeeze=False,
    )
    colors = sns.color_palette("deep", 3)
    for row, q_len in enumerate(q_lens):
        for column, dp_size in enumerate(dp_sizes):
            axes = axes_grid[row][column]
            panel = frame[(frame["q_len"] == q_len) & (frame["dp_size"] == dp_size)].sort_values("batch_size")
            axes.plot(panel["batch_size"], panel[formula_column], linestyle="--", color=colors[0], label=formula_label)
            axes.plot(panel["batch_size"], panel[exact_column], color=colors[1], label="精确期望")
            axes.plot(panel["batch_size"], panel[mc_column], linestyle="none", marker="o", markersize=3,
                      color=colors[2], label="蒙特卡罗")
            axes.set_xscale("log", base=2)
            axes.set_yscale("log", base=2)
            axes.xaxis.set_minor_locator(mpl.ticker.NullLocator())
            axes.tick_params(labelsize="x-small")
            if row == 0:
                axes.set_title(f"D={dp_size}", fontsize="small")
            if column == 0:
                axes.set_ylabel(f"Q={q_len}", fontsize="small")
            if row == len(q_lens) - 1:
                axes.set_xlabel("B", fontsize="small")
    handles, labels = axes_grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize="small", frameon=False)
    figure.supylabel(ylabel, fontsize="small")
    figure.tight_layout(rect=(0.02, 0.05, 1, 1))
    return figure


def draw_knee(frame: pd.DataFrame) -> plt.Figure:
    """Draw num_groups / E_node and the errors of m against the mean rows per local expert E[m] = B*Q*K*D/E.

    Left: eq. (6) divided by E_node, the exact ratio and Monte Carlo. Right: the
    relative errors of eqs. (6) and (7); the dotted line marks E[m] = 1, where
    eq. (4)'s min() switches argument.
    """
    ordered = frame.sort_values("exact_m")
    mean_rows = ordered["exact_m"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    colors = sns.color_palette("deep", 4)
    left.plot(mean_rows, ordered["eq6_num_groups"] / ordered["local_experts"], linestyle="--", color=colors[0],
              label="原文式 (6) / E_node")
    left.plot(mean_rows, ordered["exact_num_groups"] / ordered["local_experts"], color=colors[1], label="精确期望 / E_node")
    left.plot(mean_rows, ordered["mc_mean_num_groups"] / ordered["local_experts"], linestyle="none", marker="o",
              markersize=2.5, color=colors[2], label="蒙特卡罗 / E_node")
    left.set_ylabel("激活比例 num_groups / E_node")
    right.plot(mean_rows, 100 * ordered["rel_err_eq6_num_groups"], marker=".", linestyle="none", color=colors[0],
               label="原文式 (6) 对 E[num_groups]")
    right.plot(mean_rows, 100 * ordered["rel_err_eq7_m_active"], marker=".", linestyle="none", color=colors[3],
               label="原文式 (7) 对 E[m | 激活]")
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_ylabel("相对误差 (%)")
    for axes in (left, right):
        axes.set_xscale("log", base=2)
        axes.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        axes.set_xlabel("每个本地专家的平均行数 E[m] = B·Q·K·D/E")
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def draw_alpha(frame: pd.DataFrame) -> plt.Figure:
    """Draw alpha = E[max m] / E[m] against E[m], one line per D because the number of local experts differs."""
    figure, axes = plt.subplots(figsize=(6.4, 3.8))
    dp_sizes = sorted(frame["dp_size"].unique())
    palette = sns.color_palette("viridis", n_colors=len(dp_sizes))
    for color, dp_size in zip(palette, dp_sizes):
        lines = frame[frame["dp_size"] == dp_size].sort_values("exact_m")
        axes.plot(lines["exact_m"], lines["alpha"], color=color, marker=".", label=f"D={dp_size}")
        if "mc_mean_max_m" in lines:
            axes.plot(lines["exact_m"], lines["mc_mean_max_m"] / lines["exact_m"], linestyle="none", marker="x",
                      markersize=3, color=color)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log", base=2)
    axes.set_xlabel("每个本地专家的平均行数 E[m]")
    axes.set_ylabel(r"$\alpha$ = E[max m] / E[m]")
    axes.legend(title="线：数值方法；×：蒙特卡罗", fontsize="small", title_fontsize="small", ncol=2)
    figure.tight_layout()
    return figure


def draw_reach(reach_by_mode: dict[str, np.ndarray], top_k: int) -> plt.Figure:
    """Draw the share of tokens that reach 1..K DP ranks, one bar group per routing mode label."""
    figure, axes = plt.subplots(figsize=(6.4, 3.4))
    labels = list(reach_by_mode)
    width = 0.8 / max(1, len(labels))
    ranks = np.arange(1, top_k + 1)
    palette = sns.color_palette("deep", len(labels))
    for index, (label, reach) in enumerate(reach_by_mode.items()):
        share = np.bincount(np.asarray(reach).ravel(), minlength=top_k + 1)[1:top_k + 1] / np.asarray(reach).size
        axes.bar(ranks + (index - (len(labels) - 1) / 2) * width, share, width=width, color=palette[index], label=label)
    axes.set_xticks(ranks)
    axes.set_xlabel("一个 token 的 K 个专家分布在几个 rank 上")
    axes.set_ylabel("token 占比")
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
