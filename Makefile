# The IDO platform on this machine, no Docker needed:
#   make up     Kafka 4 (KRaft) + PostgreSQL 18 + the five services, in the background
#   make up INSTANCES=2   two instances of every service (ports +100)
#   make test   the whole test suite (starts the broker, database and services it needs)
#   make down   stops everything `make up` started
#   make lock   regenerates uv.lock and requirements/*.txt after pyproject.toml changed
PYTHON ?= python3
INSTANCES ?= 1
export INSTANCES
VENV   := .venv
BIN    := $(VENV)/bin
LOCAL  := deploy/local
# Hash-checked locks exported from uv.lock (make lock): the image's runtime set and everything
# development and CI install (runtime + the test, local and bench extras).
LOCK_RUNTIME := requirements/runtime.txt
LOCK_DEV     := requirements/dev.txt
# Only `make lock` needs uv; it lives in a venv of its own, never in the project's.
UV_VERSION ?= 0.13.9
UV_VENV    := .local/uv
UV         := $(UV_VENV)/bin/uv
UV_EXPORT  := $(UV) export --frozen --format requirements-txt --no-emit-project --quiet

.PHONY: up down test faults unit lint lint-docker status logs install lock lock-upgrade infra bench clean demo
.DEFAULT_GOAL := up

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Exactly the locked versions, every file checked against its hash; then the project itself
# without resolving anything (its dependencies are all in the lock). `pip check` catches a
# pyproject.toml dependency that was added without `make lock`.
$(VENV)/.installed: pyproject.toml $(LOCK_DEV) | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r $(LOCK_DEV)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install -q uv==$(UV_VERSION)

# After editing pyproject.toml: re-resolve what changed (every other package keeps its locked
# version) and export the hashed requirement files. `make lock-upgrade` moves everything to the
# newest versions pyproject.toml allows; test before committing either.
lock: $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) lock
	$(MAKE) --no-print-directory lock-export

lock-upgrade: $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) lock --upgrade
	$(MAKE) --no-print-directory lock-export

.PHONY: lock-export
lock-export: $(UV)
	@mkdir -p requirements
	$(UV_EXPORT) -o $(LOCK_RUNTIME)
	$(UV_EXPORT) --extra test --extra local --extra bench -o $(LOCK_DEV)

infra: install
	$(LOCAL)/kafka.sh start
	$(LOCAL)/postgres.sh start
	$(BIN)/ido db setup
	$(BIN)/ido db migrate
	$(BIN)/ido topics apply

up: infra
	$(LOCAL)/services.sh start
	@echo
	@echo "IDO platform is up:"
	@echo "  ($(INSTANCES) instance(s) of each service; instance k on the port + 100*k)"
	@echo "  intake     http://127.0.0.1:$${INTAKE_PORT:-8001}  (OpenAPI: /v1/openapi.json; the desk: /desk)"
	@echo "  routing    http://127.0.0.1:$${ROUTING_PORT:-8002}  (the agencies' inbox: /inbox)"
	@echo "  courses    http://127.0.0.1:$${COURSES_PORT:-8003}"
	@echo "  subsidy    http://127.0.0.1:$${SUBSIDY_PORT:-8004}"
	@echo "  reporting  http://127.0.0.1:$${REPORTING_PORT:-8005}  (dashboard: /dashboard#token=\$$(.venv/bin/ido keys create --kb))"
	@echo "  kafka      127.0.0.1:$${KAFKA_PORT:-9092} SASL/SCRAM, :$${KAFKA_TLS_PORT:-9094} the same over TLS (client configs: .local/kafka/clients/)"
	@echo "  postgres   postgresql://127.0.0.1:$${PG_PORT:-5432} (passwords: .local/postgres/pgpass)"
	@echo "  logs       .local/logs/   credential: $(BIN)/ido keys create --library rivierenland"

down:
	-$(LOCAL)/services.sh stop
	-$(LOCAL)/postgres.sh stop
	-$(LOCAL)/kafka.sh stop

status:
	-$(LOCAL)/kafka.sh status
	-$(LOCAL)/postgres.sh status
	-$(LOCAL)/services.sh status

test: install
	$(BIN)/pytest

# The fault suite: kills, Kafka and PostgreSQL outages and poison under load (tests/faults),
# on the system as `make up` runs it; prints its table. Smaller counts: IDO_FAULT_REQUESTS=...
faults: install
	$(BIN)/pytest -m faults tests/faults -s

unit: install
	$(BIN)/pytest tests/unit

# The image's Dockerfile without a Docker engine: hadolint (a wheel from the dev lock) for the
# general rules, tests/unit/test_dockerfile.py for this image's own (multi-stage, hashed lock, non-root).
lint-docker: install
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/pytest -q tests/unit/test_dockerfile.py tests/unit/test_lock.py

lint: install
	$(BIN)/ruff check shared services tests bench deploy
	$(BIN)/ruff format --check shared services tests bench deploy
	$(BIN)/mypy shared services tests deploy/k8s

bench: up
	$(BIN)/python bench/intake_throughput.py

demo: up
	$(BIN)/python deploy/demo.py

logs:
	tail -n 50 -f .local/logs/*.log

clean: down
	-$(LOCAL)/postgres.sh clean
	rm -rf .local/kafka/data .local/postgres .local/logs .local/run
