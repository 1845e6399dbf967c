# Two commands do all the set-up on a fresh machine (Python >= 3.11 required):
#   make demo   creates .venv, installs simsub, writes the comparison report of the default scenario
#   make test   creates .venv, installs simsub with test tools, runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all bench reference clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/simsub compare

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -m 'slow or not slow'

# The committed reference comparison report of the default scenario (results/reference/);
# a slow test checks the current code still produces its runs.
reference: $(STAMP)
	$(BIN)/simsub compare --out results/reference/may-2012-compare --cache results/.simsub-runs

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
