# One task runner for developers and CI. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check lint typecheck layers unit bench bench-full deploy-check chaos soak fuzz clean lock test-tools screenshots

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

## Debian's chromium, which the browser tests (tests/ui) drive with Playwright (it cannot download a browser
## here): installed with apt-get when missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

## Lint, type-check and run every test.
test: $(STAMP) test-tools $(CHROMIUM) check
	$(BIN)/python -m pytest -n 2 --dist loadscope --durations=30

## Debian packages the tests run, installed only when missing: nginx, the TLS terminator in front of
## Temporal in the mTLS test (tests/engine/test_temporal_tls.py, which runs its own nginx with a config, pid
## file and logs in a temporary directory on a free port; the package's own service, if an init starts it,
## is not used); `ip` (iproute2) for the network namespaces of the multi-host test and `initdb`
## (postgresql) for its PostgreSQL of its own (tests/multihost).
test-tools:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	@command -v ip >/dev/null 2>&1 || test -x /usr/sbin/ip || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

## The README's screenshots (docs/images/), taken by the browser tests.
screenshots: $(STAMP) $(CHROMIUM)
	TASKPLAN_SCREENSHOTS=1 $(BIN)/python -m pytest tests/ui -q

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

## Fault injection on a real cluster: 20 minion kills plus controller, API and dev-server faults; then the
## multi-host campaign (tests/multihost/test_faults.py): CHAOS_MULTIHOST_TRIALS trials of each of its faults.
CHAOS_MULTIHOST_TRIALS ?= 3
chaos: $(STAMP) test-tools
	CHAOS_TRIALS=20 CHAOS_REPORT_DIR=$(CURDIR)/bench/results $(BIN)/python -m pytest tests/chaos -s
	CHAOS_TRIALS=$(CHAOS_MULTIHOST_TRIALS) CHAOS_REPORT_DIR=$(CURDIR)/bench/results \
		$(BIN)/python -m pytest tests/multihost/test_faults.py -s -k campaign

## Soak: plans of every task type in a loop on the embedded stack for SOAK_MINUTES (default 30), memory and
## fds of every process sampled each minute; the verdict on flatness and the figures in RELIABILITY.md.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

## Long fuzzing runs (make test runs short ones): the purge filter parser for 10 minutes beside the Quartz
## translator on 3,000 expressions (300 on Temporal); then schemathesis on a cluster of its own (50 examples
## per operation, 200 stateful scenarios, with and without credentials), alone: its cluster start needs the
## CPUs. Each test prints its figures (a `FUZZ` line) in the summary.
fuzz: $(STAMP)
	FUZZ_FILTER_SECONDS=600 FUZZ_QUARTZ_EXAMPLES=3000 $(BIN)/python -m pytest -n 2 --dist loadfile -rA \
		-o timeout=3600 tests/data/test_purge_filter_fuzz.py tests/schedules/test_quartz_fuzz.py
	FUZZ_EXAMPLES=50 FUZZ_STATEFUL_EXAMPLES=200 FUZZ_STATEFUL_STEPS=12 $(BIN)/python -m pytest -rA \
		-o timeout=3600 tests/chaos/test_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
