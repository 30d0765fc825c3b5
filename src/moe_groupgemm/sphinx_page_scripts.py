"""Sphinx extension: the scripts each HTML page needs, without the console errors of the theme stack.

1. sphinx-thebe 0.3.1 and sphinx-togglebutton add inline configuration scripts after the
   HTML builder has started. Under Sphinx 7.4 each of them then appears twice on every page,
   so ``const THEBE_JS_URL`` is declared twice and the browser raises a SyntaxError. Sphinx
   deduplicates script files by name but not inline scripts, so this extension drops
   repeated entries.
2. On a visitor's first page view (empty localStorage), the head script of pydata-sphinx-theme
   0.17's layout sets ``data-mode=""``, and the theme's bundle then logs "Got invalid theme mode".
   An inline script, which runs after the head script and before the deferred theme
   bundle, sets the missing mode to "auto", the value the theme falls back to anyway.
3. Sphinx adds MathJax only to pages whose body contains math, but a chapter title with
   math shows up in the navigation of every page, where it stayed raw TeX. The HTML assets
   policy "always" makes Sphinx add MathJax to every page.

tests/test_browser.py checks that every page's console stays free of errors.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

DEFAULT_THEME_MODE_SCRIPT = (
    'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'
)


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: Any) -> None:
    """Keep the first of the script entries with the same file name and attributes (inline body included)."""
    if "script_files" not in context:
        return
    seen = set()
    kept = []
    for script in context["script_files"]:
        # An inline script added before the builder started has filename '', one added later None.
        key = (str(script.filename or ""), tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app: Sphinx) -> dict[str, Any]:
    app.set_html_assets_policy("always")
    app.add_js_file(None, body=DEFAULT_THEME_MODE_SCRIPT, priority=100)
    # Run after the other extensions' html-page-context handlers have added their scripts.
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
