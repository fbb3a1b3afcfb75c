# The two commands of the README: `make run` (the main job) and `make test` (lint, types, tests).
# Both create .venv on first use and reinstall when pyproject.toml or the constraints change.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint type clean

$(STAMP): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e ".[cpu,torch,pyod,boost,parquet,test,dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/harness run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(STAMP)
	$(BIN)/mypy

test: lint type
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache .pytest_cache
