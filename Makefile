# One task runner for developers and CI. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check lint typecheck unit bench bench-full chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the whole embedded stack in the foreground (Temporal dev server + UI, workers, API).
run: $(STAMP)
	$(BIN)/taskplan run

## Lint, type-check and run every test.
test: $(STAMP) check
	$(BIN)/python -m pytest

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks: quick sizes (under 10 minutes on 2 cores), and the issue's full sizes (hours).
bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-full: $(STAMP)
	$(BIN)/python -m bench.run --full

## Fault injection on a real cluster: 20 minion kills plus controller, API and dev-server faults.
chaos: $(STAMP)
	CHAOS_TRIALS=20 CHAOS_REPORT_DIR=$(CURDIR)/bench/results $(BIN)/python -m pytest tests/chaos -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
