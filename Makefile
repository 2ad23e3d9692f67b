# The two commands: `make demo` and `make test`. Each sets up what it needs, idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

.PHONY: demo test lint system venv bench fuzz clean

# System packages (PostgreSQL 15 + TimescaleDB, mbpoll, socat, chromium for UI tests).
system:
	@bash scripts/setup-system.sh --with-browser

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: system venv
	$(VENV)/bin/spc demo

test: system venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest --durations=20 $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# A longer Schemathesis run against the server's OpenAPI schema (make test runs a bounded one).
fuzz: system venv
	SPC_FUZZ_EXAMPLES=$${SPC_FUZZ_EXAMPLES:-300} $(PY) -m pytest tests/server/test_openapi_fuzz.py -s -q

bench: system venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .spc
