# xmargin developer entry points.  README: `make demo`, `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
VENV_PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.xmargin-setup.stamp
NODE_STAMP := node_modules/.package-lock.json

# pytest-xdist workers: the CI machine has 2 cores (0 = one process);
# worksteal rebalances the long invariant-machine shards between them.
PYTEST_WORKERS ?= 2
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k oracle"`.
PYTEST_ARGS ?=

# The venv's bin/ must be on PATH: ape-vyper only finds the pip-installed
# vyper through PATH (otherwise it tries to download a compiler), and
# ape-foundry finds anvil (node_modules/.bin) through PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.PHONY: help setup test demo clean distclean constraints

help:
	@echo "make demo   - start a private anvil and run the demo (scripts/demo.py)"
	@echo "make test   - contract size gate + pytest + gas regression gate"
	@echo "make bench-gas - run the standard gas scenario, write benchmarks/gas/results.json + RESULTS.md"
	@echo "make gas-check - fail if any benchmarked operation costs > 2% over benchmarks/gas/results.json"
	@echo "make setup  - create/update .venv and node_modules (idempotent)"
	@echo "make clean  - remove build/test caches (distclean: also .venv, node_modules)"

setup: $(SETUP_STAMP) $(NODE_STAMP)

$(VENV_PY):
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)

# Re-install only when the dependency spec changes.
# (-qq: this machine's pip config lists local index dirs that print one
# "Location ... is ignored" warning per package; errors still show.)
$(SETUP_STAMP): pyproject.toml constraints.txt | $(VENV_PY)
	@echo "setup: installing Python deps into $(VENV) (first run takes ~1.5 min)"
	$(VENV_PY) -m pip install --disable-pip-version-check -qq -e '.[dev]' -c constraints.txt
	@touch $@

# Not `npm ci`: the registry reachable here serves only the linux-amd64 anvil
# binary package, so package-lock.json cannot list anvil's other-platform
# optionalDependencies and `npm ci` rejects the lock as out of sync.
# `npm install --no-save` installs exactly the locked versions and leaves
# package.json/package-lock.json untouched. npm writes
# node_modules/.package-lock.json, our stamp; re-run when the lock changes.
$(NODE_STAMP): package.json package-lock.json
	npm install --no-save --no-audit --no-fund
	@touch $@

test: setup
	python tools/check_bytecode_size.py
	python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)
	python -m benchmarks.gas.check_regression

# Gas benchmark (benchmarks/gas/): the standard scenario of
# /work/shared/bench/GAS_SCENARIO.md on a private anvil. bench-gas rewrites the
# committed baseline (results.json, RESULTS.md); gas-check (also run by `test`)
# fails when an operation costs more than 2% over it. `python -m
# benchmarks.gas.run_gas --trace` adds a per-transaction breakdown (TRACES.md).
.PHONY: bench-gas gas-check
bench-gas: setup
	python -m benchmarks.gas.run_gas

gas-check: setup
	python -m benchmarks.gas.check_regression

# Every demo run gets its own anvil on a free port (ape-foundry would
# silently attach to whatever node already listens on the configured port).
demo: setup
	@port=$$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	echo "demo: anvil on 127.0.0.1:$$port"; \
	APE_FOUNDRY_HOST="http://127.0.0.1:$$port" ape run demo --network ethereum:local:foundry

# Re-pin the full transitive set from the current venv (after changing deps).
constraints: $(SETUP_STAMP)
	@{ echo "# Full transitive pin set for the xmargin venv (verified together on Python 3.11)."; \
	   echo "# Used by 'make setup' as: pip install -e '.[dev]' -c constraints.txt"; \
	   echo "# Regenerate after changing pyproject.toml deps: make constraints"; \
	   $(VENV_PY) -m pip freeze --exclude-editable | grep -viE '^(pip|setuptools|wheel)=='; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@touch $(SETUP_STAMP)

clean:
	rm -rf .build .pytest_cache .hypothesis out build dist *.egg-info
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) node_modules

# Crash replay (scripts/replay.py, docs/replay/): a private anvil, `ape run
# deploy`, 500 seeded accounts, the keeper as a separate process, Black
# Thursday prices through Chainlink-rule mock feeds; report + plots in
# out/replay/<scenario>/. Other windows: make replay REPLAY_ARGS="--scenario chainlink-2023-08"
# (python -m scripts.replay --help).
REPLAY_ARGS ?=
.PHONY: replay
replay: setup
	python -m scripts.replay $(REPLAY_ARGS)

# Statement coverage of the contracts (titanoboa's coverage.py plugin,
# tools/coverage.ini) under every titanoboa-based test: unit, liquidation,
# exploits, differential, mock smoke tests, the invariant machines and their
# regressions. The ape/anvil tests (integration, keeper, replay,
# invariants/test_fork.py) run no contract code in titanoboa and are left
# out. COVERAGE_TESTS narrows it, e.g. the machines only:
# `make coverage COVERAGE_TESTS="tests/invariants/test_stateful.py tests/invariants/test_regressions.py"`.
# HYPOTHESIS_PROFILE picks the step budget (default here: dev; coverage
# slows py-evm several-fold, docs/invariants.md "Coverage"). The machines
# run on py-evm here (coverage reads py-evm's pc traces), not on revm.
COVERAGE_TESTS ?= tests/unit tests/liquidation tests/exploits tests/differential tests/mocks_smoke \
	tests/invariants/test_stateful.py tests/invariants/test_regressions.py
.PHONY: coverage
coverage: setup
	@mkdir -p out/coverage
	python -m coverage erase --rcfile=tools/coverage.ini
	XMARGIN_MACHINE_EVM=pyevm HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-dev} python -m coverage run --rcfile=tools/coverage.ini -m pytest -q -p no:cacheprovider $(COVERAGE_TESTS)
	python -m coverage report --rcfile=tools/coverage.ini
	python -m coverage html --rcfile=tools/coverage.ini
	@echo "coverage: HTML report in out/coverage/html/index.html"
