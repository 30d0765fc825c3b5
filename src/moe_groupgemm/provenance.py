"""Build provenance: the version and git commit a built book comes from, and a BibTeX entry citing it.

The book's title and authors are read from ``CITATION.cff`` so that the citation page,
the BibTeX entry and the citation file cannot disagree.
"""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from moe_groupgemm import __version__
from moe_groupgemm.paths import REPOSITORY_ROOT

CITATION_FILE = REPOSITORY_ROOT / "CITATION.cff"

# Shown in place of the commit when the build runs outside a git checkout (for example from an sdist).
UNKNOWN_COMMIT_TEXT = "未知（构建环境里读不到 git 提交信息）"


@dataclass(frozen=True)
class BuildProvenance:
    """Version and git state of the tree a book was built from."""

    version: str
    commit: str | None  # full SHA-1 of HEAD, or None outside a git checkout
    commit_date: datetime.date | None  # committer date of HEAD
    dirty: bool  # tracked files differ from HEAD

    @property
    def short_commit(self) -> str | None:
        return self.commit[:12] if self.commit else None

    @property
    def year(self) -> int:
        """Year to cite: the commit's year, or the build's year when the commit is unknown."""
        return (self.commit_date or datetime.date.today()).year


def _git(repository_root: Path, *arguments: str) -> str:
    completed = subprocess.run(["git", "-C", str(repository_root), *arguments],
                               capture_output=True, text=True, check=True, timeout=30)
    return completed.stdout.strip()


def read_build_provenance(repository_root: Path = REPOSITORY_ROOT) -> BuildProvenance:
    """Read the package version and the git state of ``repository_root``.

    Without a git binary, or outside a repository, the commit fields are None.
    """
    try:
        commit = _git(repository_root, "rev-parse", "--verify", "HEAD")
        commit_date = datetime.date.fromisoformat(_git(repository_root, "show", "-s", "--format=%cs", "HEAD"))
        dirty = bool(_git(repository_root, "status", "--porcelain", "--untracked-files=no"))
    except (FileNotFoundError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return BuildProvenance(version=__version__, commit=None, commit_date=None, dirty=False)
    return BuildProvenance(version=__version__, commit=commit, commit_date=commit_date, dirty=dirty)


def commit_text(provenance: BuildProvenance) -> str:
    """Return the Chinese text that names the commit on book pages."""
    if provenance.commit is None:
        return UNKNOWN_COMMIT_TEXT
    if provenance.dirty:
        return f"{provenance.short_commit}（构建时工作区另有未提交的改动）"
    return provenance.short_commit


def read_citation_metadata(citation_file: Path = CITATION_FILE) -> dict:
    """Parse ``CITATION.cff`` and return its mapping."""
    return yaml.safe_load(citation_file.read_text(encoding="utf-8"))


def bibtex_entry(provenance: BuildProvenance, citation: dict, key: str = "moe_groupgemm") -> str:
    """Format a BibTeX ``@misc`` entry for the book at ``provenance``, with title and authors from ``citation``."""
    authors = " and ".join(f"{{{author['name']}}}" if "name" in author
                           else f"{author['family-names']}, {author['given-names']}"
                           for author in citation["authors"])
    if provenance.commit is None:
        note = f"版本 {provenance.version}，构建提交未知"
    else:
        note = f"版本 {provenance.version}，git 提交 {provenance.commit}"
        if provenance.dirty:
            note += "，构建时工作区另有未提交的改动"
    fields = {
        "title": f"{{{citation['title']}}}",
        "author": authors,
        "year": str(provenance.year),
        "version": provenance.version,
        "note": note,
    }
    width = max(len(name) for name in fields)
    lines = [f"  {name.ljust(width)} = {{{value}}}," for name, value in fields.items()]
    return "\n".join([f"@misc{{{key},", *lines, "}"])
