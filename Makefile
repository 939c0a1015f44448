# Every target bootstraps .venv from pyproject.toml when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick bench bench-quick lint typecheck serve migrate clean services

# `make demo PORT=8001` when port 8000 is taken.
HOST ?= 127.0.0.1
PORT ?= 8000

$(STAMP): pyproject.toml
	@echo "==> Installing SPIS and its dependencies into $(VENV): first run, or pyproject.toml changed."
	@echo "    This takes about a minute and prints nothing until it is done (errors are shown)."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "==> Installed into $(VENV); later runs skip this step."

demo: $(STAMP)
	$(BIN)/spis demo --host $(HOST) --port $(PORT)

test: $(STAMP)
	@$(BIN)/python scripts/check_services.py
	$(BIN)/ruff check referral_service fhir_adapters workers tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q

# The edit loop: the same checks, without the tests marked slow (worker and server processes).
test-quick: $(STAMP)
	@$(BIN)/python scripts/check_services.py
	$(BIN)/ruff check referral_service fhir_adapters workers tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q -m "not slow"

# The API under load (bench/api.py: intake, reads, search, batch, memory, against the validation
# floor and the fhirstarter peer), the server's instructions per request under callgrind
# (bench/instructions.py: what a noisy machine cannot move, for comparing commits), then the
# outcome reports (the first run loads their synthetic
# data set, about an hour; later runs reuse it), then notification latency. Each writes its key
# of bench/results.json, keeping the others'. Needs PostgreSQL, Redis, wrk and valgrind.
bench: $(STAMP)
	@$(BIN)/python scripts/check_services.py --bench
	$(BIN)/python bench/api.py
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/outcomes.py
	$(BIN)/python bench/deliveries.py

# bench/api.py --quick alone: one short run of each phase, under three minutes (the first run
# also makes the peer's venv, bench/.peer-venv, about a minute more).
bench-quick: $(STAMP)
	@$(BIN)/python scripts/check_services.py --bench-quick
	$(BIN)/python bench/api.py --quick

lint: $(STAMP)
	$(BIN)/ruff check referral_service fhir_adapters workers tests scripts
	$(BIN)/ruff format --check referral_service fhir_adapters workers tests
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

serve: $(STAMP)
	$(BIN)/spis migrate && $(BIN)/spis serve

migrate: $(STAMP)
	$(BIN)/spis migrate

services:
	@$(BIN)/python scripts/check_services.py

clean:
	rm -rf $(VENV) var .pytest_cache .import_linter_cache
