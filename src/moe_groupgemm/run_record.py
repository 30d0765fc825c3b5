"""Run the sweep notebook through papermill and keep the executed notebook beside its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from moe_groupgemm import hardware
from moe_groupgemm.paths import REPOSITORY_ROOT
from moe_groupgemm.run_store import new_run_id
from moe_groupgemm.sweep_parameters import SweepParameters, validate

SWEEP_NOTEBOOK = REPOSITORY_ROOT / "notebooks" / "sweep.ipynb"
RUN_RECORD_NAME = "sweep.ipynb"


def execute_sweep_notebook(parameters: dict[str, Any], notebook: Path = SWEEP_NOTEBOOK) -> Path:
    """Validate ``parameters``, run the sweep notebook and write it as ``<run_dir>/sweep.ipynb``.

    The run id is fixed here, before papermill starts, so the executed notebook
    lands in the same folder as the data it produced. Returns that folder.
    """
    import papermill

    merged = SweepParameters(**parameters)
    validate(merged)
    run_id = merged.run_id or new_run_id()
    device = torch.device(merged.device)
    run_dir = Path(merged.output_dir) / hardware.device_slug(device) / run_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # papermill writes the output notebook as cells finish, but the sweep creates run_dir only
    # in its first measuring cell. So write to a sibling file and move it in at the end.
    pending = run_dir.parent / f".{run_id}.partial.ipynb"
    try:
        papermill.execute_notebook(
            str(notebook), str(pending), parameters=merged.as_dict() | {"run_id": run_id}, progress_bar=False,
            cwd=str(Path.cwd()),
        )
    finally:
        if run_dir.is_dir() and pending.exists():
            mark_as_record(pending)
            pending.replace(run_dir / RUN_RECORD_NAME)
        else:
            pending.unlink(missing_ok=True)
    return run_dir


def mark_as_record(notebook_path: Path) -> None:
    """Set ``mystnb.execution_mode: off`` so the book shows the stored outputs and never re-runs the sweep."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    notebook.metadata.setdefault("mystnb", {})["execution_mode"] = "off"
    nbformat.write(notebook, notebook_path)
