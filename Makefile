# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench


.PHONY: run test unit integration e2e faults lint typecheck check bench bench-idle clean venv

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

## The fault suite alone: kills, stalls, restarts and a full disk under a steady load.
faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -q

lint: $(STAMP)
	$(BIN)/ruff check services schemas tests bench
	$(BIN)/ruff format --check services schemas tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Sizes that keep `make bench` to about a quarter of an hour on two shared cores. The
# city-scale throughput and memory run takes longer: `make bench THROUGHPUT_ARGS=`.
LATENCY_ARGS    ?= --rate 100 --seconds 10
QUALITY_ARGS    ?= --needs 4000 --volunteers 2000 --funds 120 --seed 7
THROUGHPUT_ARGS ?= --quick
IDLE_ARGS       ?= --seconds 60 --wake 5 --gap 20

## Every benchmark figure, one after the other (bench/README.md says what each means).
bench: $(BENCH_STAMP)
	@echo "== latency: posting -> proposal, against a raw round trip"
	$(BIN)/python bench/latency.py $(LATENCY_ARGS)
	@echo "== quality: the online matcher against the offline optimum"
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)
	@echo "== rounds: what knowing the future is worth on the sparse city's shifts"
	$(BIN)/python bench/rounds.py
	@echo "== throughput and memory: matcher workers against a raw consumer"
	$(BIN)/python bench/throughput.py $(THROUGHPUT_ARGS)
	@echo "== idle: an exchange with nothing to do, against the bare broker and PostgreSQL"
	$(BIN)/python bench/idle.py $(IDLE_ARGS)
	@echo "== start-up: exchange up to a green /healthz, against the two servers alone"
	$(BIN)/python bench/startup.py
	@echo "== one-shot commands: exchange orgs create, against the bare interpreter and raw client"
	$(BIN)/python bench/one_shot.py
	@echo "== fetch cost: one consumer fetching from the embedded broker, by wait and partitions"
	$(BIN)/python bench/fetch_cost.py

## The idle figure alone (issue #18): a minute with nothing to do, then five wake-ups.
bench-idle: $(BENCH_STAMP)
	$(BIN)/python bench/idle.py $(IDLE_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
