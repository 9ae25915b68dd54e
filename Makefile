# Two commands do everything on a fresh machine:
#   make run    execute every notebook in order (built-in sample data unless MVTEC_DIR is set)
#   make test   lint, notebook pairing, unit tests + every notebook under nbval in the smoke profile
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNS_DIR ?= runs
TEST_RUNS_DIR ?= .test_runs

.PHONY: venv run test lint sync bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the environment into $(VENV) (a few minutes the first time) ..."
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed

run: venv
	RUNS_DIR="$(RUNS_DIR)" $(PY) -m helpers run-notebooks

lint: venv   # ruff over the package, tests, tools and notebooks; the notebook pairs and setup cells
	$(PY) -m ruff check .
	$(PY) tools/notebooks.py check

test: lint
	rm -rf "$(TEST_RUNS_DIR)"
	DEFECTS_PROFILE=smoke RUNS_DIR="$(abspath $(TEST_RUNS_DIR))" $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider

bench: venv
	$(PY) benchmarks/data_pipeline.py

sync: venv   # after editing a notebook (either side) or tools/setup_cell.ipy: pair, strip outputs
	$(PY) tools/notebooks.py sync

clean:
	rm -rf "$(TEST_RUNS_DIR)" .pytest_cache
