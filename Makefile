# The IDO platform on this machine, no Docker needed:
#   make up     Kafka 4 (KRaft) + PostgreSQL 18 + the five services, in the background
#   make up INSTANCES=2   two instances of every service (ports +100)
#   make test   the whole test suite (starts the broker, database and services it needs)
#   make down   stops everything `make up` started
PYTHON ?= python3
INSTANCES ?= 1
export INSTANCES
VENV   := .venv
BIN    := $(VENV)/bin
LOCAL  := deploy/local

.PHONY: up down test faults unit lint status logs install infra bench clean demo
.DEFAULT_GOAL := up

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test,local,bench]"
	touch $@

install: $(VENV)/.installed

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
	@echo "  intake     http://127.0.0.1:$${INTAKE_PORT:-8001}  (OpenAPI: /v1/openapi.json)"
	@echo "  routing    http://127.0.0.1:$${ROUTING_PORT:-8002}"
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
