# The two commands: `make demo` and `make test`. Both set up .venv from nothing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint typecheck unit browser bench clean

NATIVE := src/shadowlab/capture/_lines.c src/shadowlab/capture/_jsontext.h \
          src/shadowlab/dataplane/_eventids.c

$(STAMP): pyproject.toml $(NATIVE)
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
	@# the C extensions, with every warning an error (the install build is lenient)
	for source in $(filter %.c,$(NATIVE)); do gcc -fsyntax-only -std=c11 -Wall -Wextra -Wpedantic -Werror \
		-I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
		$$source || exit 1; done

typecheck: setup
	$(BIN)/mypy

# Most tests wait on servers and workers starting: three processes share the two cores well.
# Tests marked serial bound wall-clock time (a timeout's margin, a stream's first token), which
# two other busy processes would stretch: they run alone afterwards.
unit: setup browser
	$(BIN)/pytest -n 3 --dist worksteal -m "not serial"
	$(BIN)/pytest -m serial

browser:
	@# tests/analysis/test_html_in_browser.py opens the HTML report in Debian's chromium: it
	@# skips without it, but fails under CI=true, so CI (root) gets it installed here, once.
	@# Without root nothing is installed: you are told, and the test skips.
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "chromium missing (apt-get install chromium): the browser test skips"; fi

test: lint typecheck unit

bench: setup
	@# nginx (the baseline) and wrk (the load) are Debian packages; installed once, as root.
	command -v nginx >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nginx wrk)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .shadowlab .pytest_cache .mypy_cache .ruff_cache
