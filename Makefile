# Set-up is two commands: `make up` and `make test`. Both create .venv/ when it
# is missing or older than pyproject.toml, and install the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/xrollup/v1/*.proto)
GEN_DIR := xrollup/v1
DATA_DIR ?= .devnet
# Debian packages the tests and the devnet use beside Python (chromium: the explorer's
# browser test; prometheus: tests/integration/test_prometheus.py runs its own server on a
# free port, whatever service the package may start; etcd-server: the HA devnet's etcd
# cluster, devnet/etcd.py). Each entry is PACKAGE:BINARY, the package installing
# /usr/bin/BINARY; one whose binary is missing is installed by `make system-deps`, which
# `up` and `test` run first.
SYSTEM_PACKAGES := chromium:chromium prometheus:prometheus etcd-server:etcd
MISSING_PACKAGES = $(strip $(foreach p,$(SYSTEM_PACKAGES),\
  $(if $(wildcard /usr/bin/$(lastword $(subst :, ,$(p)))),,$(firstword $(subst :, ,$(p))))))

.PHONY: venv system-deps up up-ha down status test test-slow test-all faults check lint fmt types imports proto proto-check bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@# Bytecode for the project's own packages now (pip compiles only site-packages), so
	@# the first `devnet up` does not compile them in every process it starts, and an
	@# environment with PYTHONDONTWRITEBYTECODE set never does (measured: bench/startup.py).
	@$(BIN)/python -m compileall -q -j 0 xrollup sequencer rollup_node devnet >/dev/null
	@touch $(STAMP)

# Not fatal: without a package, what needs it is skipped and says so.
system-deps:
	@missing="$(MISSING_PACKAGES)"; if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  echo "installing Debian packages: $$missing"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing \
	  || echo "could not install $$missing: the tests that need it will be skipped"; \
	fi

up: $(STAMP) system-deps
	$(BIN)/devnet up --data-dir $(DATA_DIR)

# The HA devnet: a three-member etcd cluster and three sequencer replicas (README, HA sequencer).
up-ha: $(STAMP) system-deps
	$(BIN)/devnet up --ha --data-dir $(DATA_DIR)

down: $(STAMP)
	$(BIN)/devnet down --data-dir $(DATA_DIR)

status: $(STAMP)
	$(BIN)/devnet status --data-dir $(DATA_DIR)

# Default suite: everything not marked slow. Exit code 5 (no tests collected) is not a failure.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Long suites (full fault suite, soak): documented in README.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

# The full fault suite: 20 seeded runs of every fault under load (~30 min on 2 cores). Prints
# fault, runs, invariant violations, recovery p50/max and seeds; writes .devnet-faults/report.json.
faults: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/fault; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

check: lint types imports proto-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

types: $(STAMP)
	$(BIN)/mypy xrollup sequencer rollup_node devnet

# The package layers of DESIGN.md (devnet > sequencer | rollup_node > xrollup), as
# contracts in pyproject.toml [tool.importlinter].
imports: $(STAMP)
	$(BIN)/lint-imports --no-logo --no-cache

# The one command that produces generated code from proto/. Never edit $(GEN_DIR) by hand.
proto: $(STAMP)
	@rm -rf $(GEN_DIR) && mkdir -p $(GEN_DIR)
	PATH=$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto \
	  --python_out=. --mypy_out=. --grpc_python_out=. --mypy_grpc_out=. $(PROTOS)
	@echo '"""Generated from proto/xrollup/v1 by `make proto`. Do not edit."""' > $(GEN_DIR)/__init__.py

# Fails when the committed generated code differs from what `make proto` would write.
proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && mkdir -p $$tmp/$(GEN_DIR) && \
	PATH=$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto \
	  --python_out=$$tmp --mypy_out=$$tmp --grpc_python_out=$$tmp --mypy_grpc_out=$$tmp $(PROTOS) && \
	echo '"""Generated from proto/xrollup/v1 by `make proto`. Do not edit."""' > $$tmp/$(GEN_DIR)/__init__.py && \
	if diff -r -x __pycache__ $$tmp/$(GEN_DIR) $(GEN_DIR) >/dev/null; then echo "generated code is fresh"; rm -rf $$tmp; \
	else echo "generated code in $(GEN_DIR) is stale: run 'make proto'"; diff -r -x __pycache__ $$tmp/$(GEN_DIR) $(GEN_DIR) | head -20; rm -rf $$tmp; exit 1; fi

bench: $(STAMP)
	$(BIN)/python bench/sequencer.py --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
