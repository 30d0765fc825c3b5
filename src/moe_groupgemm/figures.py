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
    # A system copy of the same family (Debian's fonts-noto-cjk, say) would otherwise win, so
    # figures would depend on the machine and the missing-glyph check would test the wrong font.
    font_manager.fontManager.ttflist = [
        entry for entry in font_manager.fontManager.ttflist
        if entry.name != family or Path(entry.fname).resolve() == FONT_PATH.resolve()
    ]
    font_manager.fontManager._findfont_cached.cache_clear()
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


def figure_name(metric: str, device_slug: str, run_id: str, q_len: int, backend: str, n: int, k: int) -> str:
    """Return the file name of one figure, e.g. ``bs_vs_time_cpu-amd-epyc_<run-id>_torch_loop_q1_N4096_K7168.png``."""
    return f"bs_vs_{metric}_{device_slug}_{run_id}_{backend}_q{q_len}_N{n}_K{k}.png"


def draw_batch_size_figure(table: pd.DataFrame, metric: str, title: str) -> plt.Figure:
    """Draw ``metric`` against batch size B on a log2 axis, one line per D, with a p20-p80 band for time."""
    spec = METRICS[metric]
    figure, axes = plt.subplots(figsize=FIGURE_SIZE_INCHES)
    palette = sns.color_palette("viridis", n_colors=table["dp_size"].nunique())
    for color, (dp_size, lines) in zip(palette, table.sort_values("batch_size").groupby("dp_size")):
        axes.plot(lines["batch_size"], lines[spec["column"]], marker="o", color=color, label=f"D={dp_size}")
        if spec["low"]:
            axes.fill_between(lines["batch_size"], lines[spec["low"]], lines[spec["high"]], color=color, alpha=0.2)
        if metric == "time" and "predicted_time_us" in lines and lines["predicted_time_us"].notna().any():
            axes.plot(lines["batch_size"], lines["predicted_time_us"], linestyle="--", color=color, alpha=0.8)
    axes.set_xscale("log", base=2)
    batch_sizes = sorted(table["batch_size"].unique())
    axes.set_xticks(batch_sizes, [str(value) for value in batch_sizes])
    axes.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if spec["log"]:
        axes.set_yscale("log")
    axes.set_xlabel("每个 DP 实例的批大小 B")
    axes.set_ylabel(spec["label"])
    axes.set_title(title)
    if metric == "time" and "predicted_time_us" in table and table["predicted_time_us"].notna().any():
        axes.plot([], [], linestyle="--", color="grey", label="roofline 预测")
    axes.legend(title="DP 实例数", fontsize="small")
    figure.tight_layout()
    return figure


def write_batch_size_figures(summary: pd.DataFrame, output_dir: Path) -> list[Path]:
    """Write ``bs_vs_time`` and ``bs_vs_mfu`` for every (device, backend, Q) in ``summary``."""
    paths: list[Path] = []
    if summary.empty:
        return paths
    # One figure set per run: two runs on one device may differ in dtype, threads or software.
    keys = ["device_slug", "run_id", "backend", "q_len", "n", "k"]
    for (device_slug, run_id, backend, q_len, n, k), table in summary.groupby(keys):
        model = table["device_model"].iloc[0]
        dtype = table["dtype"].iloc[0]
        for metric in METRICS:
            if table[METRICS[metric]["column"]].isna().all():
                continue
            title = f"{model} · {backend} · {dtype} · Q={q_len}, N={n}, K={k}"
            figure = draw_batch_size_figure(table, metric, title)
            name = figure_name(metric, device_slug, run_id, q_len, backend, n, k)
            paths.append(save_figure(figure, output_dir / name))
            plt.close(figure)
    return paths


def caption_for(file_name: str) -> str:
    """Return the Chinese caption of a figure file written by ``write_batch_size_figures``."""
    stem = file_name.removesuffix(".png")
    metric, rest = stem.removeprefix("bs_vs_").split("_", 1)
    parts = rest.split("_")
    q_len, n, k = parts[-3].removeprefix("q"), parts[-2].removeprefix("N"), parts[-1].removeprefix("K")
    where = f"设备 {parts[0]}，运行 {parts[1]}，实现 {'_'.join(parts[2:-3])}"
    if metric == "time":
        return (f"Q={q_len}、N={n}、K={k} 时，每个 DP 实例的批大小 B 与 GroupGEMM 耗时（{where}）。"
                "每种颜色对应一个 D：实线为实测中位数，阴影为 20%–80% 分位，虚线为 roofline 模型的预测。")
    return f"Q={q_len}、N={n}、K={k} 时，每个 DP 实例的批大小 B 与 GroupGEMM 的 MFU（{where}），每条线对应一个 D。"


def write_prediction_figures(predictions: pd.DataFrame, output_dir: Path, q_len: int) -> list[Path]:
    """Draw predicted time against B for one Q: one panel per (GPU, precision), one line per D."""
    table = predictions[predictions["q_len"] == q_len]
    panels = list(table.groupby(["gpu", "precision"]))
    figure, axes_list = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True, squeeze=False)
    palette = sns.color_palette("viridis", n_colors=table["dp_size"].nunique())
    for axes, ((gpu, precision), panel) in zip(axes_list[0], panels):
        for color, (dp_size, lines) in zip(palette, panel.sort_values("batch_size").groupby("dp_size")):
            axes.plot(lines["batch_size"], lines["predicted_time_us"], linestyle="--", marker=".", color=color,
                      label=f"D={dp_size}")
        axes.set_xscale("log", base=2)
        batch_sizes = sorted(panel["batch_size"].unique())
        axes.set_xticks(batch_sizes, [str(value) for value in batch_sizes])
        axes.xaxis.set_minor_locator(mpl.ticker.NullLocator())
        axes.set_yscale("log")
        axes.set_title(f"{gpu} · {precision}（预测）", fontsize="small")
        axes.set_xlabel("每个 DP 实例的批大小 B")
    axes_list[0][0].set_ylabel("roofline 预测耗时 (µs)")
    axes_list[0][-1].legend(title="DP 实例数", fontsize="small")
    figure.tight_layout()
    path = save_figure(figure, output_dir / f"predicted_bs_vs_time_q{q_len}.png")
    plt.close(figure)
    return [path]
