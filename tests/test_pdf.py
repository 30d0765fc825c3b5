"""The PDF that `make pdf` produces: chapter titles, numbered equations, every figure, and no missing glyph.

One strict ``jupyter-book build --builder pdflatex`` (XeLaTeX with the Fandol CJK fonts) runs per
session on a copy of data/raw; the checks read the PDF with poppler-utils. It reuses the
execution cache of the HTML build in the same session, so it adds about half a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import moe_groupgemm
from conftest import REPOSITORY_ROOT

PDF_TOOLS = ("xelatex", "latexmk", "pdftotext", "pdfimages", "pdffonts")


@dataclass(frozen=True)
class BuiltPdf:
    """A PDF build of the book and the files LaTeX left next to it."""

    pdf: Path
    latex_dir: Path
    text: str  # pdftotext output, reading order


def toc_documents() -> list[str]:
    """Return the documents of _toc.yml in reading order (root first)."""
    toc = yaml.safe_load((REPOSITORY_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    documents = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                documents.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return documents


def page_title(document: str) -> str:
    """Return the first level-1 heading of a MyST page, without math dollars."""
    source = (REPOSITORY_ROOT / f"{document}.md").read_text(encoding="utf-8")
    match = re.search(r"^# (.+)$", source, re.MULTILINE)
    assert match, f"{document}.md has no '# ' title"
    return match.group(1).replace("$", "")


def squeeze(text: str) -> str:
    """Drop all whitespace, because pdftotext inserts spaces and line breaks between CJK glyphs."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="session")
def built_pdf(tmp_path_factory: pytest.TempPathFactory) -> BuiltPdf:
    missing = [tool for tool in PDF_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found, so the PDF cannot be built: run `make pdf-packages` as root "
                    "(it installs TeX Live with XeLaTeX, Noto CJK fonts and poppler-utils from Debian)",
                    pytrace=False)
    root = tmp_path_factory.mktemp("pdf")
    data_root = root / "raw"
    shutil.copytree(REPOSITORY_ROOT / "data" / "raw", data_root)
    environment = os.environ | {"MOE_GROUPGEMM_DATA": str(data_root), "MOE_GROUPGEMM_FIGURES": str(root / "figures")}
    environment.pop("MPLBACKEND", None)
    jupyter_book = str(Path(sys.executable).with_name("jupyter-book"))
    command = [jupyter_book, "build", "-W", "-n", "--keep-going", "--builder", "pdflatex",
               "--path-output", str(root / "site"), "."]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True)
    print(f"PDF build took {time.monotonic() - started:.1f} s")
    latex_dir = root / "site" / "_build" / "latex"
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    pdf = latex_dir / "book.pdf"
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    return BuiltPdf(pdf, latex_dir, text)


@pytest.mark.slow
def test_pdf_has_every_chapter_title(built_pdf: BuiltPdf):
    text = squeeze(built_pdf.text)
    for document in toc_documents():
        title = page_title(document)
        assert squeeze(title) in text, f"the PDF lacks the title of {document}: {title}"


@pytest.mark.slow
def test_pdf_shows_version(built_pdf: BuiltPdf):
    assert f"你正在读的是{moe_groupgemm.__version__}版" in squeeze(built_pdf.text)


@pytest.mark.slow
def test_pdf_numbers_every_referenced_equation(built_pdf: BuiltPdf):
    aux = (built_pdf.latex_dir / "book.aux").read_text(encoding="utf-8")
    numbers = dict(re.findall(r"\\newlabel\{equation:[^:}]+:([^}]+)\}\{\{([^}]+)\}", aux))
    referenced = set()
    for document in toc_documents():
        referenced |= set(re.findall(r"\{eq\}`([^`]+)`", (REPOSITORY_ROOT / f"{document}.md").read_text()))
    assert referenced, "no {eq} references in the book"
    assert referenced <= numbers.keys(), f"equations referenced but not numbered in LaTeX: {referenced - numbers.keys()}"
    for label, number in sorted(numbers.items()):
        assert f"({number})" in built_pdf.text, f"equation {label} ({number}) is not in the PDF text"


@pytest.mark.slow
def test_pdf_has_no_dollar_math_left(built_pdf: BuiltPdf):
    # Only $$ is checked: code cells in the PDF legitimately contain TeX commands such as \text{...}.
    assert "$$" not in built_pdf.text, "display math left as $$...$$ in the PDF text"


@pytest.mark.slow
def test_pdf_embeds_every_figure(built_pdf: BuiltPdf):
    tex = (built_pdf.latex_dir / "book.tex").read_text(encoding="utf-8")
    included = set(re.findall(r"\\sphinxincludegraphics(?:\[[^\]]*\])?\{\{?([^}]+)\}", tex))
    listing = subprocess.run(["pdfimages", "-list", str(built_pdf.pdf)], check=True, capture_output=True,
                             text=True).stdout.splitlines()[2:]
    images = [line for line in listing if line.split()[2] == "image"]
    assert len(included) >= 8, f"only {len(included)} figures in book.tex"
    assert len(images) >= len(included), f"{len(included)} figures included but {len(images)} images in the PDF"


@pytest.mark.slow
def test_pdf_has_no_missing_glyphs(built_pdf: BuiltPdf):
    log = (built_pdf.latex_dir / "book.log").read_text(encoding="utf-8", errors="replace")
    missing = sorted(set(re.findall(r"Missing character: There is no (.+?) in font", log)))
    assert missing == [], (f"XeLaTeX dropped characters that its fonts lack: {missing}; CJK text inside math "
                           "needs \\text{...}")


@pytest.mark.slow
def test_pdf_embeds_configured_cjk_font(built_pdf: BuiltPdf):
    config = yaml.safe_load((REPOSITORY_ROOT / "_config.yml").read_text(encoding="utf-8"))
    preamble = config["sphinx"]["config"]["latex_elements"]["preamble"]
    main_font = Path(re.search(r"\\setCJKmainfont\{([^}]+)\}", preamble).group(1)).stem
    fonts = subprocess.run(["pdffonts", str(built_pdf.pdf)], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in fonts.splitlines()[2:] if main_font in line]
    assert rows, f"the CJK main font {main_font} is not in the PDF:\n{fonts}"
    assert all(row[-5] == "yes" for row in rows), f"{main_font} is not embedded:\n{fonts}"
