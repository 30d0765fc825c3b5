"""The book's small Sphinx extensions, each exercised by a real Sphinx build of a one-page project."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from sphinx.errors import ConfigError, SphinxWarning
from sphinx.testing.util import SphinxTestApp


def build(project: Path, conf: str | None = None, index: str | None = None) -> tuple[int, str]:
    """Write conf.py and index.rst into ``project`` when given, build HTML with warnings as errors,
    and return the status code and the status output.

    SphinxTestApp resets the docutils registrations that a second build in the same process would repeat.
    """
    project.mkdir(exist_ok=True)
    if conf is not None:
        (project / "conf.py").write_text(textwrap.dedent(conf))
    if index is not None:
        (project / "index.rst").write_text(textwrap.dedent(index), encoding="utf-8")
    status = io.StringIO()
    app = SphinxTestApp("html", srcdir=project, status=status, warning=io.StringIO(), warningiserror=True)
    try:
        app.build()
    finally:
        app.cleanup()
    return app.statuscode, status.getvalue()


STDERR_PAGE = """
Title
=====

.. code-block:: text
   :class: output stderr

   {message}
"""


def test_glyph_check_fails_build_on_missing_glyph(tmp_path: Path):
    message = "UserWarning: Glyph 3585 (\\N{THAI CHARACTER KO KAI}) missing from font(s) Noto Sans CJK SC."
    with pytest.raises(SphinxWarning, match="lacks a glyph"):
        build(tmp_path / "book", "extensions = ['moe_groupgemm.sphinx_glyph_check']\n",
              STDERR_PAGE.format(message=message))


def test_glyph_check_passes_other_stderr(tmp_path: Path):
    status_code, _ = build(tmp_path / "book", "extensions = ['moe_groupgemm.sphinx_glyph_check']\n",
                           STDERR_PAGE.format(message="DeprecationWarning: something else"))
    assert status_code == 0


def test_search_dictionary_missing_file_stops_build(tmp_path: Path):
    conf = """
        extensions = ['moe_groupgemm.sphinx_search_dictionary']
        language = 'zh_CN'
        html_search_options = {'dict': 'missing.txt'}
    """
    with pytest.raises(ConfigError, match="missing.txt"):
        build(tmp_path / "book", conf, "Title\n=====\n\n批大小决定了行数。\n")


def test_search_dictionary_keeps_term_whole(tmp_path: Path):
    project = tmp_path / "book"
    project.mkdir()
    (project / "terms.txt").write_text("批大小\n", encoding="utf-8")
    conf = """
        extensions = ['moe_groupgemm.sphinx_search_dictionary']
        language = 'zh_CN'
        html_search_options = {'dict': 'terms.txt'}
    """
    build(project, conf, "Title\n=====\n\n批大小决定了行数。\n")
    index = (project / "_build" / "html" / "searchindex.js").read_text(encoding="utf-8")
    terms = json.loads(index[index.index("(") + 1:index.rindex(")")])["terms"]
    assert "批大小" in terms, sorted(terms)


def test_page_scripts_drops_repeated_inline_script(tmp_path: Path):
    # The inline script is registered before and after the builder starts, as sphinx-thebe's is.
    conf = """
        extensions = ['moe_groupgemm.sphinx_page_scripts']

        def setup(app):
            app.add_js_file(None, body='var repeatedScript = 1;')
            app.connect('builder-inited', lambda app: app.add_js_file(None, body='var repeatedScript = 1;'))
    """
    build(tmp_path / "book", conf, "Title\n=====\n\nNo math here.\n")
    page = (tmp_path / "book" / "_build" / "html" / "index.html").read_text()
    assert page.count("var repeatedScript = 1;") == 1


def test_page_scripts_adds_mathjax_to_page_without_math(tmp_path: Path):
    build(tmp_path / "book", "extensions = ['sphinx.ext.mathjax', 'moe_groupgemm.sphinx_page_scripts']\n",
          "Title\n=====\n\nNo math here.\n")
    page = (tmp_path / "book" / "_build" / "html" / "index.html").read_text()
    assert "tex-mml-chtml.js" in page
    assert 'dataset.mode = "auto"' in page


@pytest.mark.parametrize(("pages", "changed"), [(["index"], 1), ([], 0)])
def test_provenance_pages_are_reread_every_build(tmp_path: Path, pages: list[str], changed: int):
    conf = f"""
        extensions = ['moe_groupgemm.sphinx_provenance']
        moe_groupgemm_provenance_pages = {pages!r}
    """
    build(tmp_path / "book", conf, "Title\n=====\n\nText.\n")
    _, status = build(tmp_path / "book")  # nothing changed on disk
    assert f"0 added, {changed} changed, 0 removed" in status, status
