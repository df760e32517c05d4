# One task runner for developers and CI. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check lint typecheck layers deploy-check unit bench bench-full chaos clean lock

# Installs the versions the tests last passed with (constraints.txt, written by `make lock`).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## Re-resolve the dependencies in a scratch venv and pin them in constraints.txt (then run make test).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	echo '# The versions make run and make test install (pip -c). Written by make lock; do not edit.' > constraints.txt
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^taskplan' >> constraints.txt
	rm -rf .lock-venv

## Start the whole embedded stack in the foreground (Temporal dev server + UI, workers, API).
run: $(STAMP)
	$(BIN)/taskplan run

## Lint, type-check and run every test.
test: $(STAMP) check
	$(BIN)/python -m pytest

check: lint typecheck layers deploy-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The layering contract (pyproject.toml, [tool.importlinter]): which layer may import which.
layers: $(STAMP)
	$(BIN)/lint-imports

## deploy/ validated statically (no container engine here): yamllint, the manifests against the Kubernetes
## schemas kubernetes-validate ships (offline), the Dockerfile's rules, properties against taskplan's settings.
deploy-check: $(STAMP)
	$(BIN)/yamllint -c deploy/.yamllint -s deploy/
	$(BIN)/python deploy/check.py

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
