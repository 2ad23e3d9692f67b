# The two commands: `make demo` and `make test`. Each sets up what it needs, idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | md5sum | cut -c1-12)

.PHONY: demo test lint system venv bench fuzz audit lock clean

# System packages (PostgreSQL 15 + TimescaleDB, mbpoll, socat, chromium for UI tests).
system:
	@bash scripts/setup-system.sh --with-browser

# Exact versions from constraints.txt, so a fresh machine runs what was tested (and audited);
# pip and setuptools too: the ones a venv starts with carry known vulnerabilities.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q -c constraints.txt --upgrade pip setuptools
	@$(PIP) install -q -c constraints.txt -e '.[dev]'
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

# Known vulnerabilities of the pinned versions (docs/reliability.md says what "not audited" means).
audit: venv
	$(PY) scripts/audit_deps.py --constraints constraints.txt

# Re-pin after changing pyproject.toml: newest versions that satisfy it, then the tests.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip setuptools && .venv-lock/bin/pip install -q -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/pip freeze --all --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock

bench: system venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .spc
