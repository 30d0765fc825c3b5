"""Sphinx extension: fail the build when a notebook output reports a glyph missing from a font.

``figures.save_figure`` raises MissingGlyphError for the figures it writes, but a figure
shown through ``glue`` or IPython's display is rendered by the kernel's inline backend,
where matplotlib only prints "Glyph ... missing from font(s) ..." to the cell's stderr and
draws an empty box. With ``execute.stderr_output: show`` that output lands on the page
without a Sphinx warning. This extension scans each page's stderr outputs and logs a
warning, which the strict build (``-W``) turns into an error.

NOTE: stderr that a cell drops (``remove-stderr``, ``remove-output`` or ``remove-cell`` tags)
never reaches the page and is not checked.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

MISSING_GLYPH = re.compile(r"Glyph \d+ \([^)]*\) missing from font\(s\) [^\n]*")


def check_missing_glyphs(app: Sphinx, doctree: nodes.document) -> None:
    """Warn once per stderr output that names a missing glyph."""
    for node in doctree.findall(nodes.literal_block):
        if "stderr" not in node.get("classes", []):
            continue
        match = MISSING_GLYPH.search(node.astext())
        if match:
            logger.warning("a figure on this page lacks a glyph (%s): change the text or use a font that has it",
                           match.group(0), location=node, type="moe_groupgemm", subtype="missing_glyph")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", check_missing_glyphs)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
