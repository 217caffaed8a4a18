# Paved: `make run` serves the portal with demo data; `make test` runs the whole suite. See README.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

# `make test` runs against the machine's PostgreSQL and Redis (trust auth on 127.0.0.1).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/paved
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run install serving test lint typecheck audit pytest services chromium bench load fuzz clean vendor-chartjs

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The local deployment target's model servers: MLServer in a venv of its own (528 MB, kept out of the portal's),
# and the demo scikit-learn model it serves (var/models/iris/, written by apps/deployments/serving/).
SERVING_VENV := .venv-serving
$(SERVING_VENV)/.installed: apps/deployments/serving/requirements.txt
	$(PYTHON) -m venv $(SERVING_VENV)
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
