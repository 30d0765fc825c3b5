"""Quantities the book's prose quotes, computed from validated summary tables.

Each function takes the frame from ``tables.summarize_all`` (filtered to one
device, backend and dtype where it matters) and returns plain numbers, so the
text never restates a value the data own.
"""

from __future__ import annotations

import pandas as pd

CURVE_KEYS = ["device_slug", "backend", "dtype", "q_len", "batch_size"]


def share_faster_with_larger_d(summary: pd.DataFrame) -> float:
    """Fraction of (device, backend, Q, B) cells where the largest D has the lowest median time."""
    wins = []
    for _, cell in summary.groupby(CURVE_KEYS):
        if cell["dp_size"].nunique() < 2:
            continue
        fastest = cell.loc[cell["time_us_median"].idxmin(), "dp_size"]
        wins.append(fastest == cell["dp_size"].max())
    return sum(wins) / len(wins) if wins else float("nan")


def time_ratio_smallest_to_largest_d(summary: pd.DataFrame, q_len: int, batch_size: int) -> float:
    """Median time at the smallest D divided by that at the largest D, for one (Q, B)."""
    cell = summary[(summary["q_len"] == q_len) & (summary["batch_size"] == batch_size)]
    by_d = cell.set_index("dp_size")["time_us_median"]
    return float(by_d[by_d.index.min()] / by_d[by_d.index.max()])


def mfu_range(summary: pd.DataFrame) -> tuple[float, float]:
    """Smallest and largest MFU over all points."""
    return float(summary["mfu"].min()), float(summary["mfu"].max())


def time_ratio_q(summary: pd.DataFrame, q_high: int, q_low: int, batch_size: int, dp_size: int) -> float:
    """Median time at Q=q_high divided by that at Q=q_low, same B and D."""
    cell = summary[(summary["batch_size"] == batch_size) & (summary["dp_size"] == dp_size)]
    by_q = cell.set_index("q_len")["time_us_median"]
    return float(by_q[q_high] / by_q[q_low])


def equal_rows_time_spread(summary: pd.DataFrame) -> float:
    """Max/min median time among points with the same total rows B*Q and the same D.

    Under eqs. (6)/(7) the GroupGEMM shape depends on B and Q only through B*Q,
    so points with equal B*Q are the same workload. Their spread is measurement noise.
    """
    frame = summary.assign(tokens=summary["batch_size"] * summary["q_len"])
    spreads = []
    for _, cell in frame.groupby(["device_slug", "backend", "dtype", "dp_size", "tokens"]):
        if len(cell) > 1:
            spreads.append(cell["time_us_median"].max() / cell["time_us_median"].min())
    return float(max(spreads)) if spreads else float("nan")


def agreement_phrase(agrees: bool) -> str:
    """Chinese phrase the prose uses to say whether the data agree with a model prediction."""
    return "与模型的预期一致" if agrees else "与模型的预期不一致，需要结合噪声水平另作解释"
