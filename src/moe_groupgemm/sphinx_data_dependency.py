"""Sphinx extension: pages that read data/raw are rebuilt whenever data/raw changes.

Sphinx re-reads a page only when its source or a noted dependency is newer than
the last build, and jupyter-cache keys only on code cells, so a changed CSV
would otherwise leave stale figures. This extension notes every file and
folder under the data root as a dependency of the pages listed in
``moe_groupgemm_data_pages``. A folder's mtime changes when a run is added or
removed, and a file's when it is edited. Those pages also need
``execution_mode: force`` so that re-reading re-executes them.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

from moe_groupgemm.paths import DATA_ROOT


def note_data_dependencies(app: Sphinx, docname: str, source: list[str]) -> None:
    """On reading a data page, record every path under the data root as its dependency."""
    if docname not in app.config.moe_groupgemm_data_pages:
        return
    app.env.note_dependency(str(DATA_ROOT))
    for path in sorted(DATA_ROOT.rglob("*")):
        app.env.note_dependency(str(path))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("moe_groupgemm_data_pages", [], "env")
    app.connect("source-read", note_data_dependencies)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
