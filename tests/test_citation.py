"""Citation metadata agrees with the package, build provenance is read from git, and the built pages show it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

import moe_groupgemm
from conftest import REPOSITORY_ROOT, BuiltSite
from moe_groupgemm import provenance


def _git(repository: Path, *arguments: str) -> str:
    command = ["git", "-C", str(repository), "-c", "user.name=test", "-c", "user.email=test@example.invalid",
               *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_repository(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "file.txt").write_text("first\n")
    _git(tmp_path, "add", "file.txt")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_citation_cff_version_matches_package():
    citation = yaml.safe_load((REPOSITORY_ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())
    assert citation["version"] == pyproject["project"]["version"], "CITATION.cff and pyproject.toml disagree"
    assert citation["version"] == moe_groupgemm.__version__, "CITATION.cff and moe_groupgemm.__version__ disagree"


def test_citation_cff_required_fields():
    citation = yaml.safe_load((REPOSITORY_ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    assert citation["message"] and citation["title"]
    assert citation["authors"] == [{"name": "moe-groupgemm contributors"}]


def test_provenance_reads_head_commit(git_repository: Path):
    build = provenance.read_build_provenance(git_repository)
    assert build.commit == _git(git_repository, "rev-parse", "HEAD")
    assert build.dirty is False
    assert provenance.commit_text(build) == build.commit[:12]


def test_provenance_marks_uncommitted_changes(git_repository: Path):
    (git_repository / "file.txt").write_text("changed\n")
    build = provenance.read_build_provenance(git_repository)
    assert build.dirty is True
    assert provenance.commit_text(build).startswith(build.commit[:12])
    assert "未提交的改动" in provenance.commit_text(build)


def test_provenance_without_git_repository(tmp_path: Path):
    build = provenance.read_build_provenance(tmp_path)
    assert build.commit is None
    assert build.commit_date is None
    assert provenance.commit_text(build) == provenance.UNKNOWN_COMMIT_TEXT
    assert "构建提交未知" in provenance.bibtex_entry(build, provenance.read_citation_metadata())


def test_bibtex_entry_carries_version_and_commit(git_repository: Path):
    build = provenance.read_build_provenance(git_repository)
    entry = provenance.bibtex_entry(build, provenance.read_citation_metadata())
    print(entry)
    assert entry.startswith("@misc{moe_groupgemm,")
    assert f"version = {{{moe_groupgemm.__version__}}}" in entry
    assert build.commit in entry
    assert "author  = {{moe-groupgemm contributors}}" in entry
    assert entry.count("{") == entry.count("}")


def test_references_bib_keys_are_unique():
    keys = re.findall(r"^@\w+\{([^,]+),", (REPOSITORY_ROOT / "references.bib").read_text(), re.MULTILINE)
    assert len(keys) == len(set(keys)), keys


@pytest.mark.slow
def test_intro_shows_version_and_commit(built_site: BuiltSite):
    intro = re.sub(r"<[^>]+>", "", (built_site.html / "book" / "intro.html").read_text(encoding="utf-8"))
    build = provenance.read_build_provenance()
    assert f"你正在读的是 {moe_groupgemm.__version__} 版" in intro
    expected = build.short_commit or provenance.UNKNOWN_COMMIT_TEXT
    assert f"构建自提交 {expected}" in intro, f"intro.html does not name the build commit {expected}"


@pytest.mark.slow
def test_citation_page_has_bibtex_with_commit(built_site: BuiltSite):
    page = (built_site.html / "book" / "citation.html").read_text(encoding="utf-8")
    build = provenance.read_build_provenance()
    text = re.sub(r"<[^>]+>", "", page)
    assert "@misc{moe_groupgemm," in text
    assert moe_groupgemm.__version__ in text
    assert (build.commit or "构建提交未知") in text


@pytest.mark.slow
def test_references_page_lists_every_entry(built_site: BuiltSite):
    page = (built_site.html / "book" / "references.html").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),", (REPOSITORY_ROOT / "references.bib").read_text(), re.MULTILINE)
    assert page.count('role="doc-biblioentry"') == len(keys)
    for marker in ("2412.19437", "2312.07104", "deepseek-ai/DeepGEMM", "deepseek-ai/DeepEP", "grouped_mm",
                   "H100", "H200", "B200"):
        assert marker in page, f"references.html lacks {marker}"


@pytest.mark.slow
def test_intro_cites_into_references(built_site: BuiltSite):
    intro = (built_site.html / "book" / "intro.html").read_text(encoding="utf-8")
    assert len(re.findall(r'href="references\.html#id\d+"', intro)) >= 5
