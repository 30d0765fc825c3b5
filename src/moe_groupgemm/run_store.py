"""Raw data on disk: one folder per run, appended and flushed point by point.

Layout of ``<output_dir>/<device-slug>/<run-id>/``:

- ``metadata.json``: schema version, device, software, parameters, peaks; written atomically.
- ``points.csv``: one row per finished point: shape, correctness check, status and error.
- ``timings.csv``: one row per timed repetition, ``time_us`` in microseconds.
- ``sweep.ipynb``: the executed notebook, when the run was started through ``moe_groupgemm sweep``.

A point's timing rows are written before its ``points.csv`` row. A run killed
mid-point therefore leaves timing rows without a point row. ``RunStore.open``
drops those rows on resume, and the point is measured again.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

POINT_KEY = ("backend", "q_len", "batch_size", "dp_size")

POINT_COLUMNS = (
    *POINT_KEY,
    "routing",
    "seed",
    "num_groups",
    "rows",
    "total_rows",
    "n",
    "k",
    "flops",
    "bytes_moved",
    "timing_method",
    "check_max_abs_error",
    "check_tolerance",
    "status",
    "error",
)

TIMING_COLUMNS = (*POINT_KEY, "rep", "time_us")


def new_run_id(now: datetime | None = None) -> str:
    """Return a sortable, unique run id: a UTC timestamp plus 6 random hex digits."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def point_key(row: dict[str, Any]) -> tuple[str, int, int, int]:
    return (str(row["backend"]), int(row["q_len"]), int(row["batch_size"]), int(row["dp_size"]))


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rewrite_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass
class RunStore:
    """Append-only writer for one run folder."""

    run_dir: Path

    @property
    def metadata_path(self) -> Path:
        return self.run_dir / "metadata.json"

    @property
    def points_path(self) -> Path:
        return self.run_dir / "points.csv"

    @property
    def timings_path(self) -> Path:
        return self.run_dir / "timings.csv"

    @classmethod
    def create(cls, run_dir: Path, metadata: dict[str, Any]) -> RunStore:
        """Create a new run folder; fail if it already exists so two runs never share one."""
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(exist_ok=False)
        store = cls(run_dir)
        write_json_atomic(store.metadata_path, {"schema_version": SCHEMA_VERSION, **metadata})
        _rewrite_csv(store.points_path, POINT_COLUMNS, [])
        _rewrite_csv(store.timings_path, TIMING_COLUMNS, [])
        return store

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        """Open an existing run to resume it, dropping timing rows of unfinished points."""
        store = cls(run_dir)
        finished = {point_key(row) for row in store.read_points()}
        timings = store.read_timings()
        kept = [row for row in timings if point_key(row) in finished]
        if len(kept) != len(timings):
            _rewrite_csv(store.timings_path, TIMING_COLUMNS, kept)
        return store

    def read_metadata(self) -> dict[str, Any]:
        with open(self.metadata_path, encoding="utf-8") as handle:
            return json.load(handle)

    def update_metadata(self, **fields: Any) -> None:
        metadata = self.read_metadata()
        metadata.update(fields)
        write_json_atomic(self.metadata_path, metadata)

    def read_points(self) -> list[dict[str, str]]:
        return _read_csv(self.points_path)

    def read_timings(self) -> list[dict[str, str]]:
        return _read_csv(self.timings_path)

    def finished_keys(self) -> set[tuple[str, int, int, int]]:
        return {point_key(row) for row in self.read_points()}

    def _append(self, path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())

    def append_point(self, point: dict[str, Any], timings_us: list[float]) -> None:
        """Append a point's repetitions, then its summary row; both are flushed to disk."""
        key = {name: point[name] for name in POINT_KEY}
        timing_rows = [{**key, "rep": rep, "time_us": f"{value:.3f}"} for rep, value in enumerate(timings_us)]
        if timing_rows:
            self._append(self.timings_path, TIMING_COLUMNS, timing_rows)
        self._append(self.points_path, POINT_COLUMNS, [point])
