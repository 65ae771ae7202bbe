# Every target installs what it needs: a fresh clone needs only python3 (3.10+), make and git.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: install demo test lint typecheck unit bench postgres clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The example DAGs against the bundled emulator: each wait, status and graph.
demo: install
	$(BIN)/python scripts/demo.py

## Every test: lint, types, and the test suite.
test: lint typecheck unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

## The benchmarks (a few minutes on 2 cores); ends with one `bench:` line. Figures: benchmarks/RESULTS.md.
bench: install
	$(BIN)/python benchmarks/run_all.py

## PostgreSQL's server binaries for the full-stack test (which also runs this itself): apt-get installs them if missing.
postgres:
	sh scripts/ensure_postgres.sh

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
