"""Sphinx extension: pages that print the build's version and git commit are re-read on every build.

Sphinx re-reads a page only when its source changed, and jupyter-cache keys only on
code cells, so after a new commit an incremental build would keep showing the old
commit. This extension reports the pages listed in ``moe_groupgemm_provenance_pages``
as outdated on every build; those pages also need ``execution_mode: force`` so that
re-reading re-executes them.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def outdated_provenance_pages(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str],
                              removed: set[str]) -> list[str]:
    """Return the configured provenance pages that exist, so Sphinx re-reads them."""
    return [docname for docname in app.config.moe_groupgemm_provenance_pages if docname in env.found_docs]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("moe_groupgemm_provenance_pages", [], "env")
    app.connect("env-get-outdated", outdated_provenance_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
