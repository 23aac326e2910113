# Every target sets itself up: a virtualenv in .venv with the package and its dev extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make test: lint, type-check and run the whole suite (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check doku_async tests
	$(BIN)/ruff format --check doku_async tests
	$(BIN)/mypy --strict
	$(BIN)/python -m pytest -q --cov --cov-report=term:skip-covered

## make demo: a bulk payout of 1,000 items on the embedded simulator, end to end
demo: $(STAMP)
	$(BIN)/doku-async demo

## make bench: the benchmark suite; its extra dependencies go into the same venv, never into
## the package's own (uvloop; the official doku-python-library and the modules it imports
## without declaring them: flask, xmltodict, pycryptodome)
BENCH_DEPS := uvloop doku-python-library==1.1.72 flask xmltodict pycryptodome
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet $(BENCH_DEPS)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check doku_async tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
