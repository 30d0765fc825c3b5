"""Validated tables from raw run folders: the only way the book reads data/raw.

``load_run`` checks one run folder and raises DataValidationError naming the
file, the row and the remedy. ``summarize`` turns raw repetitions into
per-point statistics (median, 20th/80th percentiles, count) and MFU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.errors import DataValidationError
from moe_groupgemm.run_store import POINT_COLUMNS, POINT_KEY, SCHEMA_VERSION, TIMING_COLUMNS
from moe_groupgemm.shapes import formula_shape
from moe_groupgemm.sweep_parameters import DTYPES

REQUIRED_METADATA = ("schema_version", "run_id", "device_type", "device_model", "device_slug", "dtype",
                     "parameters", "peak", "torch_version", "threads", "git", "date_utc", "status")

INTEGER_POINT_COLUMNS = ("q_len", "batch_size", "dp_size", "seed", "num_groups", "total_rows", "n", "k",
                         "flops", "bytes_moved")

FIX_REMEASURE = "删除该运行目录并重新测量，或从版本库恢复原文件（git checkout -- data/raw）"


@dataclass(frozen=True)
class RunData:
    """One validated run: its metadata, one row per point and one row per repetition."""

    run_dir: Path
    metadata: dict[str, Any]
    points: pd.DataFrame
    timings: pd.DataFrame


def _csv_row(index: int) -> int:
    """Line number in the CSV file of data row ``index`` (the header is line 1)."""
    return int(index) + 2


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists():
        raise DataValidationError(str(path), "文件缺失", FIX_REMEASURE)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataValidationError(str(path), f"缺少列 {missing}", FIX_REMEASURE)
    return frame


def _to_integers(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    for column in columns:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[numeric.isna() | (numeric != numeric.round())]
        if len(bad):
            row = bad[0]
            raise DataValidationError(str(path), f"列 {column} 的值 {frame.at[row, column]!r} 不是整数",
                                      FIX_REMEASURE, row=_csv_row(row))
        frame[column] = numeric.astype("int64")


def _validate_metadata(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metadata.json"
    if not path.exists():
        raise DataValidationError(str(path), "文件缺失", FIX_REMEASURE)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataValidationError(str(path), f"不是合法的 JSON（{error}）", FIX_REMEASURE) from error
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise DataValidationError(str(path), f"缺少字段 {missing}", FIX_REMEASURE)
    if metadata["schema_version"] != SCHEMA_VERSION:
        raise DataValidationError(str(path), f"schema_version 为 {metadata['schema_version']!r}，本书只读 {SCHEMA_VERSION}",
                                  "用当前版本的 sweep 重新测量")
    if metadata["run_id"] != run_dir.name:
        raise DataValidationError(str(path), f"run_id {metadata['run_id']!r} 与目录名 {run_dir.name!r} 不一致", FIX_REMEASURE)
    if metadata["device_slug"] != run_dir.parent.name:
        raise DataValidationError(str(path), f"device_slug {metadata['device_slug']!r} 与上级目录名 {run_dir.parent.name!r} 不一致",
                                  "把运行目录移到与其设备对应的目录下")
    peak = metadata["peak"].get("flops_per_s")
    if peak is not None and not (isinstance(peak, (int, float)) and peak > 0):
        raise DataValidationError(str(path), f"peak.flops_per_s 为 {peak!r}，应为正数或 null", FIX_REMEASURE)
    return metadata


def load_run(run_dir: str | Path) -> RunData:
    """Read and validate one run folder."""
    run_dir = Path(run_dir)
    metadata = _validate_metadata(run_dir)
    parameters = metadata["parameters"]
    points_path = run_dir / "points.csv"
    timings_path = run_dir / "timings.csv"
    points = _read_csv(points_path, POINT_COLUMNS)
    timings = _read_csv(timings_path, TIMING_COLUMNS)

    _to_integers(points, INTEGER_POINT_COLUMNS, points_path)
    _to_integers(timings, ("q_len", "batch_size", "dp_size", "rep"), timings_path)
    times = pd.to_numeric(timings["time_us"], errors="coerce")
    bad = timings.index[~(times > 0) | ~np.isfinite(times)]
    if len(bad):
        row = bad[0]
        raise DataValidationError(str(timings_path), f"time_us 为 {timings.at[row, 'time_us']!r}，耗时必须是有限正数",
                                  FIX_REMEASURE, row=_csv_row(row))
    timings["time_us"] = times

    duplicated = points.index[points.duplicated(list(POINT_KEY), keep="first")]
    if len(duplicated):
        raise DataValidationError(str(points_path), "测点键 (backend, q_len, batch_size, dp_size) 重复",
                                  "删除重复行，或重新测量", row=_csv_row(duplicated[0]))
    duplicated = timings.index[timings.duplicated([*POINT_KEY, "rep"], keep="first")]
    if len(duplicated):
        raise DataValidationError(str(timings_path), "(测点键, rep) 重复", "删除重复行，或重新测量",
                                  row=_csv_row(duplicated[0]))

    bad_status = points.index[~points["status"].isin(["ok", "failed", "empty"])]
    if len(bad_status):
        row = bad_status[0]
        raise DataValidationError(str(points_path), f"status 为 {points.at[row, 'status']!r}，应为 ok、failed 或 empty",
                                  FIX_REMEASURE, row=_csv_row(row))

    for index, point in points.iterrows():
        if point["n"] != parameters["n"] or point["k"] != parameters["k"]:
            raise DataValidationError(str(points_path), f"n={point['n']}, k={point['k']} 与 metadata 中的参数不一致",
                                      FIX_REMEASURE, row=_csv_row(index))
        rows = [int(value) for value in str(point["rows"]).split()]
        if any(value <= 0 for value in rows):
            raise DataValidationError(str(points_path), f"rows 中有非正的行数：{point['rows']}", FIX_REMEASURE,
                                      row=_csv_row(index))
        if len(rows) != point["num_groups"] or sum(rows) != point["total_rows"]:
            raise DataValidationError(str(points_path), f"rows 与 num_groups={point['num_groups']} 或 total_rows={point['total_rows']} 不一致",
                                      FIX_REMEASURE, row=_csv_row(index))
        if point["flops"] != 2 * point["total_rows"] * point["n"] * point["k"]:
            raise DataValidationError(str(points_path), "flops 不等于 2·Σm·N·K", FIX_REMEASURE, row=_csv_row(index))
        if point["routing"] == "formula":
            config = EngineConfig(batch_size=int(point["batch_size"]), q_len=int(point["q_len"]),
                                  dp_size=int(point["dp_size"]), top_k=parameters["top_k"],
                                  num_experts=parameters["num_experts"])
            if tuple(rows) != formula_shape(config, int(point["n"]), int(point["k"])).rows:
                raise DataValidationError(str(points_path), "rows 与式 (6)(7) 给出的形状不一致", FIX_REMEASURE,
                                          row=_csv_row(index))

    counts = timings.groupby(list(POINT_KEY)).size()
    for index, point in points.iterrows():
        key = tuple(point[name] for name in POINT_KEY)
        expected = parameters["reps"] if point["status"] == "ok" else 0
        found = int(counts.get(key, 0))
        if found != expected:
            raise DataValidationError(str(timings_path), f"测点 {key} 有 {found} 次计时，metadata 中 reps={parameters['reps']}",
                                      FIX_REMEASURE)
    known = set(map(tuple, points[list(POINT_KEY)].itertuples(index=False, name=None)))
    orphans = [key for key in counts.index if tuple(key) not in known]
    if orphans:
        raise DataValidationError(str(timings_path), f"计时行 {orphans[0]} 没有对应的 points.csv 行", FIX_REMEASURE)

    return RunData(run_dir=run_dir, metadata=metadata, points=points, timings=timings)


def find_runs(data_root: str | Path) -> list[Path]:
    """Run folders ``<data_root>/<device>/<run-id>/`` that contain a metadata.json, sorted."""
    return sorted(path.parent for path in Path(data_root).glob("*/*/metadata.json"))


def load_all(data_root: str | Path) -> list[RunData]:
    """Load and validate every run under ``data_root``."""
    return [load_run(run_dir) for run_dir in find_runs(data_root)]


def summarize(run: RunData) -> pd.DataFrame:
    """Per-point statistics of one run: median and 20th/80th percentile time, repetition count, MFU.

    MFU = 2 * sum(m[i]) * N * K / (median time * peak), with the peak recorded in
    the run's metadata (a datasheet figure on a GPU, a measured one on a CPU).
    """
    ok = run.points[run.points["status"] == "ok"]
    grouped = run.timings.groupby(list(POINT_KEY))["time_us"]
    stats = pd.DataFrame({
        "time_us_median": grouped.median(),
        "time_us_p20": grouped.quantile(0.2),
        "time_us_p80": grouped.quantile(0.8),
        "n_reps": grouped.size(),
    }).reset_index()
    table = ok.merge(stats, on=list(POINT_KEY), how="left")
    peak = effective_peak(run, table)
    table["mfu"] = table["flops"] / (table["time_us_median"] * 1e-6 * peak) if peak else np.nan
    element_bytes = DTYPES[run.metadata["dtype"]].itemsize
    table["weight_bytes_per_s"] = table["num_groups"] * table["n"] * table["k"] * element_bytes / (table["time_us_median"] * 1e-6)
    for key in ("device_slug", "device_model", "run_id", "dtype"):
        table[key] = run.metadata[key]
    table["peak_flops_per_s"] = peak
    table["peak_recorded_flops_per_s"] = run.metadata["peak"].get("flops_per_s")
    return table.sort_values(["backend", "q_len", "dp_size", "batch_size"]).reset_index(drop=True)


def effective_peak(run: RunData, table: pd.DataFrame) -> float | None:
    """Return the FLOP/s peak MFU is computed against.

    A GPU run uses its recorded datasheet peak. A CPU run's peak is measured with one
    square GEMM, and skinny GEMMs of the sweep can run faster than that, which would put
    MFU above 1. For a CPU the peak is therefore the larger of the recorded value and the
    best median FLOP/s any point of the run reached.
    """
    recorded = run.metadata["peak"].get("flops_per_s")
    if run.metadata["device_type"] != "cpu" or table.empty:
        return recorded
    best_observed = float((table["flops"] / (table["time_us_median"] * 1e-6)).max())
    return max(recorded or 0.0, best_observed)


def summarize_all(runs: list[RunData]) -> pd.DataFrame:
    """Concatenated summaries of several runs (empty frame with no runs)."""
    if not runs:
        return pd.DataFrame()
    return pd.concat([summarize(run) for run in runs], ignore_index=True)


def planned_shapes_table(configs: tuple[EngineConfig, ...], n: int, k: int) -> pd.DataFrame:
    """Tabulate the article's (6)/(7) shape of every planned point, for display before a sweep."""
    records = []
    for config in configs:
        shape = formula_shape(config, n, k)
        records.append({"q_len": config.q_len, "batch_size": config.batch_size, "dp_size": config.dp_size,
                        "local_experts": config.local_experts, "num_groups": shape.num_groups,
                        "m": shape.rows[0], "total_rows": shape.total_rows})
    return pd.DataFrame.from_records(records)


def runs_table(runs: list[RunData]) -> pd.DataFrame:
    """Tabulate each run's provenance: device, dtype, threads, software, commit and peak."""
    records = []
    for run in runs:
        metadata = run.metadata
        peak = metadata["peak"]
        records.append({
            "device_slug": metadata["device_slug"],
            "device_model": metadata["device_model"],
            "run_id": metadata["run_id"],
            "dtype": metadata["dtype"],
            "threads": metadata["threads"],
            "torch_version": metadata["torch_version"],
            "git_commit": str(metadata["git"].get("commit", "unknown"))[:12],
            "date_utc": metadata["date_utc"],
            "points_ok": int((run.points["status"] == "ok").sum()),
            "points_failed": int((run.points["status"] == "failed").sum()),
            "peak_tflops": peak["flops_per_s"] / 1e12 if peak.get("flops_per_s") else None,
            "peak_source": peak["source"],
            "run_dir": f"{run.run_dir.parent.name}/{run.run_dir.name}",
            "has_run_record": (run.run_dir / "sweep.ipynb").exists(),
        })
    return pd.DataFrame.from_records(records)


def add_roofline_prediction(summary: pd.DataFrame, runs: list[RunData]) -> pd.DataFrame:
    """Add ``predicted_time_us``, ``bound`` and ``measured_over_predicted`` to a summary.

    Runs whose device has no roofline figures get NaN predictions.
    """
    from moe_groupgemm import roofline

    machines = {run.metadata["run_id"]: (roofline.machine_for_run(run.metadata),
                                         roofline.PRECISIONS[roofline.DTYPE_PRECISION[run.metadata["dtype"]]])
                for run in runs}
    predicted, bounds = [], []
    for row in summary.itertuples():
        machine, precision = machines[row.run_id]
        if machine is None:
            predicted.append(np.nan)
            bounds.append("")
            continue
        rows = tuple(int(value) for value in str(row.rows).split())
        point = roofline.predicted_seconds(rows, int(row.n), int(row.k), machine, precision)
        predicted.append(point.seconds * 1e6)
        bounds.append(point.bound)
    return summary.assign(predicted_time_us=predicted, bound=bounds,
                          measured_over_predicted=summary["time_us_median"] / np.array(predicted))


def prediction_ratio_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max of measured/predicted time per (device, backend, dtype, D)."""
    if "measured_over_predicted" not in summary:
        raise KeyError("summary has no predictions; call add_roofline_prediction first")
    grouped = summary.dropna(subset=["measured_over_predicted"]).groupby(
        ["device_slug", "backend", "dtype", "dp_size"])["measured_over_predicted"]
    return pd.DataFrame({"median": grouped.median(), "min": grouped.min(), "max": grouped.max(),
                         "points": grouped.size()}).reset_index()
