"""One strict book build on committed data, then a rebuild after the data change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import BuiltSite, build_book


def _figure_bytes(figure_root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(figure_root.glob("*.png"))}


@pytest.mark.slow
def test_derivation_has_numbered_equations(built_site: BuiltSite):
    derivation = (built_site.html / "book" / "derivation.html").read_text(encoding="utf-8")
    for label in ("eq-t-node", "eq-num-groups-bound", "eq-mean-m", "eq-num-groups-dsv3", "eq-m-dsv3"):
        assert f'id="equation-{label}"' in derivation, label
    assert "(1)" in derivation
    assert "(7)" in derivation


@pytest.mark.slow
def test_results_has_figures_for_every_q(built_site: BuiltSite):
    results = (built_site.html / "book" / "results.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<img [^>]*src=", results)) >= 8
    names = sorted(_figure_bytes(built_site.figure_root))
    for q_len in (1, 2, 3, 4):
        assert any(name.startswith("bs_vs_time_") and f"_q{q_len}_" in name for name in names), names
        assert any(name.startswith("bs_vs_mfu_") and f"_q{q_len}_" in name for name in names), names


@pytest.mark.slow
def test_changed_data_changes_figures(built_site: BuiltSite):
    """Editing a committed timing and rebuilding redraws the figures (runs last: it edits the data)."""
    before = _figure_bytes(built_site.figure_root)
    timings = next(built_site.data_root.glob("*/*/timings.csv"))
    lines = timings.read_text().splitlines()
    key, value = lines[1].rsplit(",", 1)
    lines[1] = f"{key},{float(value) * 50:.3f}"
    timings.write_text("\n".join(lines) + "\n")

    result = build_book(built_site.output, built_site.data_root, built_site.figure_root)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    after = _figure_bytes(built_site.figure_root)
    assert after.keys() == before.keys()
    assert any(before[name] != after[name] for name in before), "no figure changed after the data changed"
