# Two commands for a new user: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean install sim sim-long

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tally demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Replay one simulation seed exactly: make sim SEED=42
SEED ?= 1
sim: $(STAMP)
	TALLY_SIM_SEEDS=$(SEED) $(BIN)/pytest -q tests/simulation -k matches_the_auditor

# A longer run: 20 seeds, 30 simulated hours each at a higher rate.
sim-long: $(STAMP)
	TALLY_SIM_SEEDS=$$(seq -s, 100 119) TALLY_SIM_RATE=12 $(BIN)/pytest -q tests/simulation -k matches_the_auditor

# Every benchmark and its naive baseline; JSON and PNG under bench/results/.
# The benchmarks live in bench/, beside the package (tools, not product): python -m bench.
bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
