# Two entry points for a fresh machine with only Python 3.11+:
#   make demo   - create .venv, install letterlock, run the demo
#   make test   - create .venv, install letterlock with test extras, run lint, types and tests
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint typecheck pytest fuzz bench vectors clean

$(BIN)/letterlock: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/letterlock
	$(BIN)/letterlock demo

test: $(BIN)/letterlock lint typecheck pytest fuzz

lint: $(BIN)/letterlock
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/letterlock
	$(BIN)/mypy

pytest: $(BIN)/letterlock
	$(BIN)/pytest

fuzz: $(BIN)/letterlock
	$(BIN)/python fuzz/fuzz_envelope.py -atheris_runs=20000 fuzz/corpus

bench: $(BIN)/letterlock
	$(BIN)/python benchmarks/rates.py

vectors: $(BIN)/letterlock
	$(BIN)/python tools/make_vectors.py vectors

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
