"""Project files agree with each other: dependency lists and paired notebooks."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from conftest import REPOSITORY_ROOT


def _normalize(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())
    expected = {_normalize(item) for item in pyproject["project"]["dependencies"]}
    expected |= {_normalize(item) for item in pyproject["project"]["optional-dependencies"]["test"]}
    environment = yaml.safe_load((REPOSITORY_ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    listed = {_normalize(item) for item in pip_section if item != "-e ."}
    assert listed == expected, f"only in environment.yml: {listed - expected}; only in pyproject: {expected - listed}"


def test_lock_pins_every_direct_dependency():
    pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPOSITORY_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].lower()
        assert name in locked, f"{name} is a dependency but not pinned in requirements.lock"


def test_torch_pinned_to_cpu_wheel_version():
    lock = (REPOSITORY_ROOT / "requirements.lock").read_text()
    assert re.search(r"^torch==2\.13\.0$", lock, re.MULTILINE), "requirements.lock must pin torch==2.13.0"


def test_sweep_notebook_pair_in_sync(tmp_path: Path):
    """notebooks/sweep.ipynb and notebooks/sweep.py hold the same cells (run `make sync` to fix)."""
    jupytext = Path(sys.executable).with_name("jupytext")
    converted = tmp_path / "sweep.py"
    subprocess.run([str(jupytext), "--to", "py:percent", "-o", str(converted),
                    str(REPOSITORY_ROOT / "notebooks" / "sweep.ipynb")], check=True, capture_output=True)
    assert converted.read_text() == (REPOSITORY_ROOT / "notebooks" / "sweep.py").read_text(), (
        "notebooks/sweep.ipynb and notebooks/sweep.py differ; run `make sync`"
    )


def test_sweep_notebook_has_one_parameters_cell():
    import nbformat

    notebook = nbformat.read(REPOSITORY_ROOT / "notebooks" / "sweep.ipynb", as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = set(re.findall(r"^(\w+)(?::[^=]+)? =", tagged[0].source, re.MULTILINE))
    required = {"device", "dtype", "q_lens", "batch_sizes", "dp_sizes", "n", "k", "num_experts", "top_k",
                "warmup", "reps", "output_dir"}
    assert required <= names, f"missing parameters: {required - names}"
