# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: run test unit integration e2e lint typecheck check bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Start the whole exchange on the embedded default and load the demo scenario.
run: $(STAMP)
	$(BIN)/exchange up --demo

## Lint, type-check, then the whole test suite against a real broker and a real PostgreSQL.
test: $(STAMP)
	$(BIN)/ruff check services schemas tests bench
	$(BIN)/ruff format --check services schemas tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest tests -q

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -q

lint: $(STAMP)
	$(BIN)/ruff check services schemas tests bench
	$(BIN)/ruff format --check services schemas tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
