# Every target installs what it needs: a fresh clone needs only python3 (3.10+), make and git.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS ?= --quiet --disable-pip-version-check
#: uv installs the venvs from the same pins in seconds where pip takes minutes; it is itself pinned and
#: bootstrapped with pip into a venv of its own. Its cache (~/.cache/uv, UV_CACHE_DIR to move it) is shared
#: by every venv and clone, which get hard links to it rather than copies.
UV_VERSION ?= 0.13.9
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
UV_INSTALL = $(UV) pip install --quiet --python
#: The older Airflow releases test-compat runs on, each in .venv-<minor> pinned by constraints/airflow-<version>.txt.
COMPAT_VERSIONS ?= 3.1.8 3.2.2
#: What test-compat runs on each of them (one pytest node id a line; see the file).
COMPAT_TESTS = $(shell grep -v '^\#' tests/compat_tests.txt)
DIST_VENV := .venv-dist

.PHONY: install demo test quick lint typecheck unit test-compat dist bench bench-fleet postgres clean docs

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install $(PIP_FLAGS) uv==$(UV_VERSION)

$(STAMP): pyproject.toml constraints.txt | $(UV)
	$(PYTHON) -m venv $(VENV)
	$(UV_INSTALL) $(BIN)/python -c constraints.txt -e '.[dev,openlineage]'
	touch $(STAMP)

install: $(STAMP)

## The example DAGs against the bundled emulator: each wait, status and graph.
demo: install
	$(BIN)/python scripts/demo.py

## Every test: lint, types, the docs, the test suite on the newest Airflow and the provider's tests on older
## releases. The full-stack and browser tests run beside all of these, from the start; their log is printed at the end.
test: install
	@rm -f $(STACK_LOG) $(STACK_RC); ( $(STACK_TESTS) -p no:cacheprovider > $(STACK_LOG) 2>&1; echo $$? > $(STACK_RC) ) & \
	status=0; $(MAKE) --no-print-directory lint typecheck docs || status=1; \
	$(PARALLEL_TESTS) || status=1; $(MAKE) --no-print-directory test-compat || status=1; \
	echo "== waiting for the full-stack and browser tests (run beside the others)"; wait; cat $(STACK_LOG); \
	[ "$$(cat $(STACK_RC))" = 0 ] || { echo "== the full-stack and browser tests: FAILED"; status=1; }; \
	echo "== the full-stack and browser tests: $$(grep -E '[0-9]+ (passed|failed)' $(STACK_LOG) | tail -1)"; \
	exit $$status

#: How many pytest-xdist workers run the tests that are not full-stack (each takes whole test files, with an
#: emulator and AIRFLOW_HOME of its own). Most tests wait on the emulator's schedules rather than the CPU, so
#: workers outnumber the cores.
TEST_WORKERS ?= 4
PARALLEL_TESTS = $(BIN)/pytest -q -m "not full_stack and not browser" -n $(TEST_WORKERS) --dist loadfile
#: The full-stack and browser tests start whole Airflow deployments: one at a time.
STACK_TESTS = $(BIN)/pytest -q -m "full_stack or browser"
#: `make test` runs them beside the other tests rather than after: they use about 40% of one core (324 CPU
#: seconds in 13 minutes, mostly Airflow's worker processes; the rest is waiting on the deployments), so
#: beside the other phases they take minutes off the total. Their log:
STACK_LOG = $(VENV)/stack.log
STACK_RC = $(VENV)/stack.rc

## The quick loop: lint, types and every test but the full-stack (and browser) ones, newest Airflow only.
quick: lint typecheck
	$(PARALLEL_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(PARALLEL_TESTS)
	$(STACK_TESTS)

#: pytest-xdist workers for each release's compatibility tests (both releases run at once).
COMPAT_WORKERS ?= 2

## The provider's tests (tests/compat_tests.txt) on each older supported Airflow, in a venv of its own. The
## venvs are built one after the other (seconds each with uv); the releases' tests then run side by side,
## each on COMPAT_WORKERS xdist workers (each log is printed after).
test-compat: | $(UV)
	@for version in $(COMPAT_VERSIONS); do \
	  venv=.venv-$${version%.*}; constraints=constraints/airflow-$$version.txt; \
	  if [ ! -f $$venv/.installed ] || [ $$constraints -nt $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    echo "== Airflow $$version: building $$venv"; \
	    rm -rf $$venv && $(PYTHON) -m venv $$venv && \
	    $(UV_INSTALL) $$venv/bin/python -c $$constraints "apache-airflow==$$version" -e '.[dev]' && \
	    touch $$venv/.installed || exit 1; \
	  fi; \
	done
	@for version in $(COMPAT_VERSIONS); do \
	  venv=.venv-$${version%.*}; \
	  ( $$venv/bin/pytest -q -p no:cacheprovider -n $(COMPAT_WORKERS) --dist loadfile $(COMPAT_TESTS) > $$venv/compat.log 2>&1; echo $$? > $$venv/compat.rc ) & \
	done; wait
	@status=0; for version in $(COMPAT_VERSIONS); do \
	  venv=.venv-$${version%.*}; \
	  echo "== Airflow $$version ($$venv): the tests in tests/compat_tests.txt"; cat $$venv/compat.log; \
	  [ "$$(cat $$venv/compat.rc)" = 0 ] || { echo "== Airflow $$version: FAILED"; status=1; }; \
	done; \
	for version in $(COMPAT_VERSIONS); do venv=.venv-$${version%.*}; echo "== Airflow $$version: $$(grep -E '[0-9]+ (passed|failed)' $$venv/compat.log | tail -1)"; done; \
	exit $$status

## Build the sdist and wheel, check them, install the wheel into a clean venv with the newest Airflow, and
## show that Airflow lists the provider and its hooks.
dist: install
	rm -rf dist $(DIST_VENV)
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install $(PIP_FLAGS) -c constraints.txt dist/*.whl
	cd $(DIST_VENV) && AIRFLOW_HOME=$$PWD/airflow-home bin/airflow providers list | tee providers.txt && \
	  grep -q airflow-provider-flowinst providers.txt
	cd $(DIST_VENV) && AIRFLOW_HOME=$$PWD/airflow-home bin/airflow providers hooks | tee hooks.txt && \
	  for hook in EnOSBatchHook EnOSBPMHook LSFProcessManagerHook DataWorksHook; do \
	    grep -q "airflow_provider_flowinst.hooks.*$$hook" hooks.txt || { echo "$$hook not listed"; exit 1; }; done
	@echo "dist: $$(ls dist | tr '\n' ' ')built, checked, installed; Airflow lists the provider and its 4 hooks"

## The benchmarks (a few minutes on 2 cores); ends with one `bench:` line. Figures: benchmarks/RESULTS.md.
bench: install
	$(BIN)/python benchmarks/run_all.py

#: Waits bench-fleet holds (FLEET_ARGS passes more options: see benchmarks/fleet.py --help).
FLEET_WAITS ?= 2000

## N deferred waits in the production topology (PostgreSQL, scheduler, two triggerers, one killed midway);
## not part of `make test`. Loads both cores for about ten minutes at 2,000 waits. Figures: benchmarks/RESULTS.md.
bench-fleet: install postgres
	$(BIN)/python benchmarks/fleet.py --waits $(FLEET_WAITS) $(FLEET_ARGS)

## PostgreSQL's server binaries for the full-stack test (which also runs this itself): apt-get installs them if missing.
postgres:
	sh scripts/ensure_postgres.sh

clean:
	rm -rf $(VENV) .venv-3.* $(DIST_VENV) $(UV_VENV) dist .demo .mypy_cache .ruff_cache .pytest_cache

## The documentation site (MkDocs) into build/site: strict, so any warning (a broken link or #anchor between
## pages, a file an include names that is missing, a docstring the API reference cannot read) fails it; then
## every link and #anchor of the built HTML is checked offline (scripts/check_site_links.py).
docs: install
	@start=$$(date +%s); $(BIN)/mkdocs build --strict --clean && \
	  $(BIN)/python scripts/check_site_links.py build/site && \
	  echo "docs: build/site/index.html, built and link-checked in $$(( $$(date +%s) - start )) s"
