# One command per task. `make demo` and `make test` install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit test-integration test-reliability lint bench stack-up stack-down lock browser postgres-tls nftables clean

setup: $(STAMP)

# Re-install only when the dependency declarations change, so a second run takes seconds.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# Headless Chromium for the dashboard test (Debian packages; needs root or sudo).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: setup
	$(BIN)/opsledger demo

# The import contracts first (seconds): a broken layer fails before the long suite starts.
test: setup browser postgres-tls
	$(BIN)/lint-imports
	$(BIN)/python -m pytest tests/unit tests/integration tests/e2e

test-unit: setup
	$(BIN)/python -m pytest tests/unit

# A PostgreSQL server built with OpenSSL for the secure stack's test (Debian packages; the
# embedded wheel has no TLS). Only the binaries are used: the Debian cluster is not needed.
postgres-tls:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# nftables (Debian) cuts one broker of the test cluster off its loopback address.
nftables:
	@command -v nft >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }

test-reliability: setup nftables
	$(BIN)/python -m pytest tests/reliability

lint: setup
	$(BIN)/ruff check schemas services tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m bench

stack-up: setup
	$(BIN)/opsledger stack up

stack-down: setup
	$(BIN)/opsledger stack down

# Re-pin the dependency tree after changing pyproject.toml.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q -e ".[dev]"
	{ head -2 constraints.txt; .lockvenv/bin/pip freeze --exclude-editable | grep -v '^opsledger'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lockvenv

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
