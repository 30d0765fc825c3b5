# Two entry points for readers: `make book` and `make test` (see README.md).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter kernels start "python" from PATH, so the venv must come first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: book test sweep sync clean help

help:
	@echo "make book   - install into $(VENV), execute the notebooks, build _build/html"
	@echo "make test   - install into $(VENV) and run the test suite (includes one strict book build)"
	@echo "make sweep  - run the GroupGEMM sweep on this machine and store a new run under data/raw/"
	@echo "make sync   - re-pair notebooks/sweep.ipynb with notebooks/sweep.py"

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
