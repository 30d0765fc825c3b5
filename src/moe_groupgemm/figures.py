"""Figures from validated summary tables: time and MFU against batch size, one line per D.

Input: the frame from ``tables.summarize_all``. Output: PNG files whose bytes
depend only on the data (no timestamp or software version in the metadata).
Chinese labels use the vendored Noto Sans SC subset (SIL OFL 1.1, see
fonts/OFL.txt); a glyph missing from it raises instead of drawing a box.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib import font_manager

FONT_PATH = Path(__file__).with_name("fonts") / "NotoSansSC-Subset.otf"
FIGURE_DPI = 110
FIGURE_SIZE_INCHES = (6.4, 4.0)

METRICS = {
    "time": {"column": "time_us_median", "low": "time_us_p20", "high": "time_us_p80",
             "label": "GroupGEMM 耗时中位数 (µs)", "log": True},
    "mfu": {"column": "mfu", "low": None, "high": None, "label": "MFU", "log": False},
}


class MissingGlyphError(RuntimeError):
    """A figure's text uses a character the vendored font does not contain."""


def use_book_style() -> None:
    """Register the vendored CJK font and set the rcParams every book figure shares."""
    font_manager.fontManager.addfont(str(FONT_PATH))
    family = font_manager.FontProperties(fname=str(FONT_PATH)).get_name()
    sns.set_theme(style="whitegrid", context="notebook")
    mpl.rcParams.update({
        "font.family": "sans-serif",
        "font.sans-serif": [family],
        "axes.unicode_minus": False,
        "svg.hashsalt": "moe-groupgemm",
        "figure.dpi": FIGURE_DPI,
    })


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Save ``figure`` as a reproducible PNG; raise MissingGlyphError on a missing glyph."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(path, dpi=FIGURE_DPI, metadata={"Software": None})
    missing = [str(warning.message) for warning in caught if "missing from font" in str(warning.message)]
    if missing:
        path.unlink(missing_ok=True)
        raise MissingGlyphError(f"{path.name}: {missing[0]}; 改写图中文字，或换用包含该字形的字体")
    return path


def figure_name(metric: str, device_slug: str, q_len: int, backend: str, n: int, k: int) -> str:
    """File name of one figure, e.g. ``bs_vs_time_cpu-amd-epyc_torch_loop_q1_N4096_K7168.png``."""
    return f"bs_vs_{metric}_{device_slug}_{backend}_q{q_len}_N{n}_K{k}.png"


def draw_batch_size_figure(table: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """One line per D of ``metric`` against batch size B, on log2 B; p20-p80 band for time."""
    spec = METRICS[metric]
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    palette = sns.color_palette("viridis", n_colors=table["dp_size"].nunique())
    for color, (dp_size, lines) in zip(palette, table.sort_values("batch_size").groupby("dp_size")):
        axes.plot(lines["batch_size"], lines[spec["column"]], marker="o", color=color, label=f"D={dp_size}")
        if spec["low"]:
            axes.fill_between(lines["batch_size"], lines[spec["low"]], lines[spec["high"]], color=color, alpha=0.2)
    axes.set_xscale("log", base=2)
    batch_sizes = sorted(table["batch_size"].unique())
    axes.set_xticks(batch_sizes, [str(value) for value in batch_sizes])
    axes.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if spec["log"]:
        axes.set_yscale("log")
    axes.set_xlabel("每个 DP 实例的批大小 B")
    axes.set_ylabel(spec["label"])
    axes.set_title(title)
    axes.legend(title="DP 实例数", fontsize="small")
    figure.tight_layout()
    return figure


def write_batch_size_figures(summary: pd.DataFrame, output_dir: Path) -> list[Path]:
    """Write ``bs_vs_time`` and ``bs_vs_mfu`` for every (device, backend, Q) in ``summary``."""
    paths: list[Path] = []
    if summary.empty:
        return paths
    for (device_slug, backend, q_len, n, k), table in summary.groupby(["device_slug", "backend", "q_len", "n", "k"]):
        model = table["device_model"].iloc[0]
        dtype = table["dtype"].iloc[0]
        for metric in METRICS:
            if table[METRICS[metric]["column"]].isna().all():
                continue
            title = f"{model} · {backend} · {dtype} · Q={q_len}, N={n}, K={k}"
            figure = draw_batch_size_figure(table, metric, title)
            paths.append(save_figure(figure, output_dir / figure_name(metric, device_slug, q_len, backend, n, k)))
            plt.close(figure)
    return paths


def caption_for(file_name: str) -> str:
    """Chinese caption for a figure file written by ``write_batch_size_figures``."""
    stem = file_name.removesuffix(".png")
    metric = "耗时" if stem.startswith("bs_vs_time_") else "MFU"
    return f"图 {stem}：每个 DP 实例的批大小 B 与 GroupGEMM {metric}，每条线对应一个 D。"
