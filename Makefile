# watchkeeper: `make` sets up and generates; `make test` runs everything CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= spec/services.yaml
WATCHKEEPER := $(BIN)/watchkeeper

.PHONY: all setup generate rules dashboards check test test-fast test-rules test-deps lint bench bench-exporters deploy clean \
	demo e2e

all: generate

$(BIN)/.installed: generator/pyproject.toml exporters/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'generator[dev,report]' -e 'exporters[dev]'
	touch $@

## Bytecode of our own packages, rebuilt when a source changes: pip compiles the libraries it
## installs but not an editable install, and with PYTHONDONTWRITEBYTECODE set (or a read-only
## tree) every command would compile ~60 modules again (~0.1 CPU-s a run). __pycache__/ is
## git-ignored and Python checks each .pyc against its source, so a stale one is never used.
## Only a speed-up: a tree where they cannot be written (read-only) still builds.
SOURCES := $(shell find generator/watchkeeper exporters/watchkeeper_exporters -name '*.py')
COMPILED := generator/watchkeeper/__pycache__/.compiled

$(COMPILED): $(BIN)/.installed $(SOURCES)
	$(BIN)/python -m compileall -q generator/watchkeeper exporters/watchkeeper_exporters \
		|| echo "bytecode not written: commands compile our modules at each start"
	@touch $@ 2>/dev/null || true

setup: $(BIN)/.installed $(COMPILED)

generate: setup
	$(WATCHKEEPER) generate $(SPEC)

rules: setup
	$(WATCHKEEPER) generate $(SPEC) --only alerts

dashboards: setup
	$(WATCHKEEPER) generate $(SPEC) --only dashboards

test-deps:
	scripts/install-test-deps.sh

## The rules regenerated for test-rules only when something `generate --only alerts` reads or
## writes is newer than its last successful run here: the spec, the generator's sources, the
## installed packages (site-packages changes when one is added or upgraded), the Python, or
## the output (a file under alerts/ edited, added or removed; the manifest). A warm generate
## that finds nothing to do still costs ~0.3 CPU-s (imports, keying the build cache). A
## Jsonnet spec may import files make cannot see: regenerated every time. `make rules`
## always runs. The stamp lives in the tree (.watchkeeper-cache/ is git-ignored), one per spec
## and venv.
## Without a manifest in alerts/ (never generated here, or removed) it always runs too.
RULES_STAMP := .watchkeeper-cache/make-rules.$(subst /,_,$(SPEC)).$(subst /,_,$(VENV)).stamp
ifneq ($(filter %.jsonnet %.libsonnet,$(SPEC)),)
RULES_FRESH := rules
else
RULES_FRESH := $(if $(wildcard alerts/.watchkeeper-manifest),$(RULES_STAMP),rules)
endif

$(RULES_STAMP): $(BIN)/.installed $(BIN)/python $(SOURCES) $(SPEC) \
		$(wildcard $(VENV)/lib/python*/site-packages) \
		$(wildcard alerts alerts/tests alerts/* alerts/tests/* alerts/.watchkeeper-manifest)
	$(WATCHKEEPER) generate $(SPEC) --only alerts
	@mkdir -p $(@D) && touch $@

## promtool check + test over the committed/generated rules (TEST_FLAGS=--all: no cache)
test-rules: setup test-deps $(RULES_FRESH)
	$(WATCHKEEPER) test . $(TEST_FLAGS)

check: setup test-deps generate
	$(WATCHKEEPER) test .
	$(WATCHKEEPER) check .

lint: setup
	$(BIN)/ruff check generator exporters tests bench examples

## pytest-xdist, a test module per worker at a time, the 3 e2e chain modules first
## (tests/conftest.py): their minutes of waiting on real time overlap each other and the rest,
## on the 4th worker; TEST_WORKERS=0 runs all in one process
TEST_WORKERS ?= 4
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup test-deps lint generate
	$(BIN)/pytest $(XDIST)

## the fast tier for the edit loop: everything not marked slow (seconds, not minutes)
test-fast: setup
	$(BIN)/pytest -m "not slow" -q

## generation speed (rules, tests, dashboards) for 10 to 10,000 services
bench: setup
	$(BIN)/python bench/generate.py

## exporter overhead and sidecar vs Debian's Go exporters (installs them when missing, as root)
bench-exporters: setup test-deps
	command -v prometheus-redis-exporter >/dev/null || apt-get install -y -qq prometheus-redis-exporter prometheus-postgres-exporter
	$(BIN)/python bench/exporters_overhead.py --rounds 15
	$(BIN)/python bench/exporters_peers.py --rounds 9
	$(BIN)/python bench/exporters_sidecar.py --targets 1 10 --scrapes 200

deploy: setup
	$(WATCHKEEPER) deploy .

## The whole chain on 127.0.0.1 until Ctrl-C: make demo DEMO_ARGS="--app-port 8001 --vmalert" (or --ha)
demo: setup test-deps
	$(BIN)/python examples/demo/run.py $(DEMO_ARGS)

## Injected faults through real Prometheus/vmalert + Alertmanager (part of `make test` too)
e2e: setup test-deps
	$(BIN)/pytest $(XDIST) tests/e2e

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .watchkeeper-cache/make-rules.*
