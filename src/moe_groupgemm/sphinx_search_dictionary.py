"""Sphinx extension: load the book's jieba user dictionary for the Chinese search index.

Sphinx's Chinese search splits text with jieba and loads ``html_search_options['dict']``
as a user dictionary. It resolves that path against the working directory and ignores
the option without a warning when no file is there. Without the dictionary jieba splits
terms such as 批大小 into 批 + 大小, and a search for 批大小 finds nothing. This
extension resolves a relative path against the book root and stops the build if the
file is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError


def resolve_search_dictionary(app: Sphinx, config: Config) -> None:
    """Make ``html_search_options['dict']`` absolute and check that the file exists."""
    options = dict(config.html_search_options or {})
    if not options.get("dict"):
        return
    path = Path(app.srcdir, options["dict"])
    if not path.is_file():
        raise ConfigError(f"html_search_options['dict'] is {options['dict']!r}, but {path} does not exist: "
                          "restore the file or remove the option")
    options["dict"] = str(path)
    config.html_search_options = options


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", resolve_search_dictionary)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
