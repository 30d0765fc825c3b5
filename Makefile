# Two entry points for readers: `make book` and `make test` (see README.md).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter kernels start "python" from PATH, so the venv must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test sweep sync clean help pdf pdf-packages browser-packages

help:
	@echo "make book   - install into $(VENV), execute the notebooks, build _build/html"
	@echo "make test   - install into $(VENV) and run the test suite (includes one strict book build)"
	@echo "make sweep  - run the GroupGEMM sweep on this machine and store a new run under data/raw/"
	@echo "make sync   - re-pair notebooks/sweep.ipynb with notebooks/sweep.py"
	@echo "make pdf    - install TeX Live (XeLaTeX, Chinese) from Debian if missing, build _build/latex/book.pdf"

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build -W -n --keep-going .
	@echo "书已生成：$(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

sweep: $(STAMP)
	$(BIN)/python -m moe_groupgemm sweep $(SWEEP_ARGS)

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/sweep.py

clean:
	rm -rf _build

# Debian packages for `make pdf` and tests/test_pdf.py: XeLaTeX with xeCJK and the Fandol fonts
# (texlive-lang-chinese), the LaTeX packages Sphinx's writer loads, FreeFont for Latin text, and
# poppler-utils for reading the PDF back. With their dependencies and without recommends they are
# 37 Debian 12 packages, about 181 MB to download and 496 MB installed.
PDF_PACKAGES := texlive-xetex texlive-lang-chinese texlive-latex-recommended texlive-latex-extra \
	texlive-fonts-recommended latexmk fonts-freefont-otf poppler-utils

pdf-packages:
	scripts/install_debian_packages.sh --no-install-recommends $(PDF_PACKAGES)

# Headless Chromium for tests/test_browser.py.
browser-packages:
	scripts/install_debian_packages.sh chromium

pdf: $(STAMP) pdf-packages
	$(BIN)/jupyter-book build -W -n --keep-going --builder pdflatex .
	@echo "PDF 已生成：$(CURDIR)/_build/latex/book.pdf"
