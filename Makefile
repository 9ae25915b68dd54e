# Two commands do everything on a fresh machine:
#   make run    execute every notebook in order (built-in sample data unless MVTEC_DIR is set)
#   make test   every test: `test-dev` (lint, notebook pairing, unit tests + every notebook under nbval, smoke
#               profile, on the pinned dev stack) then `test-colab` (the same on Colab's package versions and
#               Python 3.13, the install check, and the whole series on simulated Colab runtimes)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNS_DIR ?= runs
TEST_RUNS_DIR ?= .test_runs

# Colab's stack: Python 3.13 and the versions in tools/colab-versions.txt (a copy of Colab's runtime list).
# The first candidate that really runs Python 3.13 (a pyenv shim may exist without 3.13 being active).
PY313 ?= $(shell for p in $$(command -v python3.13) $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
COLAB_VENV ?= .venv-colab
COLAB_PY := $(COLAB_VENV)/bin/python
# gradio 6.24.0: Colab's runtime ships it (not in its published list); selenium drives tests/test_serve.py's browser.
COLAB_TEST_TOOLS := pytest nbval papermill jupytext gradio==6.24.0 selenium

.PHONY: venv colab-venv run test test-dev test-colab lint sync bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the environment into $(VENV) (a few minutes the first time) ..."
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed

run: venv
	RUNS_DIR="$(RUNS_DIR)" $(PY) -m helpers run-notebooks

lint: venv   # ruff over the package, tests, tools and notebooks; mypy over helpers/; the notebook pairs and setup cells
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) tools/notebooks.py check

test: test-dev test-colab

test-dev: lint
	rm -rf "$(TEST_RUNS_DIR)"
	DEFECTS_PROFILE=smoke RUNS_DIR="$(abspath $(TEST_RUNS_DIR))" $(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider
	# the whole series on a whole real category (../shared/mvtec_bottle; skipped with its reason when absent), once
	DEFECTS_REAL_SERIES=1 $(PY) -m pytest tests/test_real_category.py -p no:cacheprovider

# Colab's packages exactly (torch/torchvision are PyPI's builds of Colab's versions), then the test tools, which
# the constraints keep from changing any of them. The project itself is installed by `check-install`.
$(COLAB_VENV)/.installed: tools/colab-versions.txt
	@test -n "$(PY313)" || { echo "Python 3.13 not found: install it (e.g. pyenv install 3.13) or set PY313=/path/to/python3.13"; exit 1; }
	@$(PY313) -c 'import shutil, sys; free = shutil.disk_usage(".").free / 2**30; sys.exit(0 if free >= 10 else \
		f"Colab stack: {free:.1f} GiB free here; installing it takes about 8 GiB and its test runs about 3 GiB more. " \
		"Free some disk (e.g. make clean, old venvs) and run make test again.")'
	@test -x $(COLAB_PY) || $(PY313) -m venv $(COLAB_VENV)
	@echo "Installing Colab's stack into $(COLAB_VENV) (Python 3.13; several GB, a few minutes the first time) ..."
	$(COLAB_PY) tools/colab_stack.py constraints $(COLAB_VENV)/colab-constraints.txt
	$(COLAB_PY) -m pip install -q --disable-pip-version-check -r $(COLAB_VENV)/colab-constraints.txt
	$(COLAB_PY) -m pip install -q --disable-pip-version-check $(COLAB_TEST_TOOLS) -c $(COLAB_VENV)/colab-constraints.txt
	@touch $@

colab-venv: $(COLAB_VENV)/.installed

test-colab: colab-venv
	$(COLAB_PY) tools/colab_stack.py check-install
	rm -rf "$(TEST_RUNS_DIR)" "$(TEST_RUNS_DIR)-colab"   # the dev stage's outputs too, to free disk for this stage
	# the unit tests but the learning margins (numerics: run once, by test-dev); the notebooks run in the Colab
	# simulation below (each on a fresh runtime, every model trained there), not again under nbval
	DEFECTS_PROFILE=smoke RUNS_DIR="$(abspath $(TEST_RUNS_DIR))-colab" $(COLAB_PY) -m pytest tests -m "not learning" -p no:cacheprovider
	DEFECTS_COLAB_SIMULATION=1 $(COLAB_PY) -m pytest tests/test_colab_simulation.py -p no:cacheprovider
	# the full profile's code paths (256/224 px, 2 DataLoader workers, 10% coreset) on a handful of images, on Colab's stack
	DEFECTS_FULL_PATHS=1 $(COLAB_PY) -m pytest tests/test_full_profile.py -p no:cacheprovider

bench: venv
	$(PY) benchmarks/data_pipeline.py

sync: venv   # after editing a notebook (either side) or tools/setup_cell.ipy: pair, strip outputs
	$(PY) tools/notebooks.py sync

clean:
	rm -rf "$(TEST_RUNS_DIR)" "$(TEST_RUNS_DIR)-colab" .pytest_cache
