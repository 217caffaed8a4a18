# Paved: `make run` serves the portal with demo data; `make test` runs the whole suite. See README.
SHELL := /bin/bash
# The newest Python from 3.13 down to 3.11 that actually runs (a pyenv shim for a version not selected is on PATH
# but fails); `make run PYTHON=python3.11` picks another. MLServer 1.7.1 supports only up to 3.12, so the serving venv
# has its own pick (SERVING_PYTHON). A venv made by another Python version than its pick is rebuilt.
supported = -c 'import sys; sys.exit(not (3, 11) <= sys.version_info < (3, $(1)))'
pick_python = $(shell for p in $(2); do $$p $(call supported,$(1)) >/dev/null 2>&1 && { echo $$p; break; }; done)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(call pick_python,14,python3.13 python3.12 python3.11)
endif
ifeq ($(origin SERVING_PYTHON),undefined)
SERVING_PYTHON := $(call pick_python,13,python3.12 python3.11)
endif
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

# `make test` runs against the machine's PostgreSQL and Redis (trust auth on 127.0.0.1).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/paved
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: FORCE run install serving test lint typecheck audit pytest services chromium bench load fuzz clean vendor-chartjs

# "3.13" for an interpreter (or a venv's python) that runs, nothing otherwise.
minor_version = $(if $(1),$(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
# FORCE when the venv's Python is not the chosen one's version (or the venv's interpreter is gone): rebuild it.
stale_venv = $(if $(filter $(call minor_version,$(2)),$(call minor_version,$(1)/bin/python)),,FORCE)
# Checks that $(1) is a Python from 3.11 to 3.$(3), says which one is used, and makes a fresh venv $(2) with it.
define make_venv
	@[ -n "$(1)" ] || { echo "error: no Python 3.11-3.$(3) that runs found on PATH; install one or pass $(4)=..."; exit 1; }
	@$(1) $(call supported,$(shell echo $$(($(3) + 1)))) 2>/dev/null \
		|| { echo "error: $(4)=$(1) is not a Python 3.11-3.$(3) that runs"; exit 1; }
	@echo "Using $(1) ($$($(1) --version 2>&1)) for $(2)"
	$(1) -m venv --clear $(2)
endef

$(BIN)/.installed: pyproject.toml $(call stale_venv,$(VENV),$(PYTHON))
	$(call make_venv,$(PYTHON),$(VENV),13,PYTHON)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The local deployment target's model servers: MLServer in a venv of its own (528 MB, kept out of the portal's),
# and the demo scikit-learn model it serves (var/models/iris/, written by apps/deployments/serving/).
SERVING_VENV := .venv-serving
$(SERVING_VENV)/.installed: apps/deployments/serving/requirements.txt $(call stale_venv,$(SERVING_VENV),$(SERVING_PYTHON))
	$(call make_venv,$(SERVING_PYTHON),$(SERVING_VENV),12,SERVING_PYTHON)
	$(SERVING_VENV)/bin/pip install -q --upgrade pip
	$(SERVING_VENV)/bin/pip install -q -r apps/deployments/serving/requirements.txt
	touch $@

var/models/iris/v1.joblib: $(SERVING_VENV)/.installed apps/deployments/serving/train_demo_model.py
	@mkdir -p var/models/iris
	$(SERVING_VENV)/bin/python apps/deployments/serving/train_demo_model.py var/models/iris/v1.joblib 1.0
	$(SERVING_VENV)/bin/python apps/deployments/serving/train_demo_model.py var/models/iris/v2.joblib 0.5

serving: $(SERVING_VENV)/.installed var/models/iris/v1.joblib
	./scripts/ensure-haproxy.sh

# With no AWS credentials and no endpoint, GPU clusters go to a local moto server ("sandbox cloud") that
# `run_stack` starts; with real credentials (and no AWS_ENDPOINT_URL) they go to AWS.
ifeq ($(AWS_ACCESS_KEY_ID)$(AWS_ENDPOINT_URL)$(AWS_PROFILE),)
run: export AWS_ENDPOINT_URL = http://127.0.0.1:5055
run: export AWS_ACCESS_KEY_ID = sandbox
run: export AWS_SECRET_ACCESS_KEY = sandbox
endif

run: install serving
	@mkdir -p var
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	@echo
	@echo "  Paved: http://127.0.0.1:$(PORT)  (web + worker + beat; Ctrl-C stops all)"
	@echo "  Database: $${DATABASE_URL:-SQLite in var/paved.sqlite3}   Broker: $${REDIS_URL:-SQLite (server-less) in var/}"
	@echo "  Cloud: $${AWS_ENDPOINT_URL:-AWS (your credentials)}"
	@echo "  Python: $$($(BIN)/python --version) ($(VENV)), model servers: $$($(SERVING_VENV)/bin/python --version)"
	@echo
	@DEBUG=$${DEBUG:-1} $(BIN)/python manage.py run_stack --port $(PORT) || [ $$? -eq 130 ]

services:
	./scripts/ensure-services.sh

chromium:
	./scripts/ensure-chromium.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	DEBUG=1 $(BIN)/mypy .

pytest: install services chromium serving
	DEBUG=1 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=1 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest

# Known vulnerabilities in the installed packages (README, "Security"): fails on a finding; an unreachable
# advisory service prints NOT AUDITED and passes unless AUDIT_REQUIRED=1; AUDIT_OSV_DIR audits offline.
audit: install
	$(BIN)/python scripts/audit_dependencies.py

test: lint typecheck audit pytest

# The contract fuzz of `make test` (tests/contract) with many more examples, every phase and a new seed each run.
fuzz: install services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) PAVED_FUZZ_EXAMPLES=$${PAVED_FUZZ_EXAMPLES:-100} \
		PAVED_FUZZ_PHASES=$${PAVED_FUZZ_PHASES:-examples,coverage,fuzzing,stateful} \
		PAVED_FUZZ_SEED=$${PAVED_FUZZ_SEED:-random} PAVED_FUZZ_TIMEOUT=$${PAVED_FUZZ_TIMEOUT:-3600} \
		$(BIN)/pytest tests/contract -p no:cacheprovider

bench: install services serving
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m bench

# Locust against gunicorn + PostgreSQL + Redis + a worker on 127.0.0.1 (bench/load). LOAD_DURATION=30 for a quick run.
load: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python -m bench.load

clean:
	rm -rf var test-artifacts .mypy_cache .ruff_cache .pytest_cache

vendor-chartjs:
	scripts/vendor-chartjs.sh

FORCE:
