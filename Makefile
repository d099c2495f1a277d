# The two commands: `make demo` and `make test`. Both set up .venv from nothing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python -m shadowlab.demo

LINTED := src tests $(wildcard benchmarks)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest

test: lint typecheck unit

bench: setup
	@# nginx (the baseline) and wrk (the load) are Debian packages; installed once, as root.
	command -v nginx >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nginx wrk)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .shadowlab .pytest_cache .mypy_cache .ruff_cache
