# mamlkit's single entry point. The two commands in the README:
#   make lab    set everything up and open the collection in JupyterLab   (make demo: headless table)
#   make test   set everything up and run the whole test suite (what CI runs)
# Everything installs into .venv from pyproject.toml, pinned by constraints.txt (torch==2.13.0).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
export MAMLKIT_THREADS ?= 2

.PHONY: setup lab demo test test-unit test-notebooks models lint notebooks constraints clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/01_start_here.ipynb

demo: setup
	$(BIN)/python -m mamlkit placements --dataset glyphs

test: setup lint test-unit test-notebooks

lint: setup
	$(BIN)/ruff check .

test-unit: setup
	$(BIN)/python -m pytest tests --ignore=tests/browser

# The lesson models are trained once by mamlkit and cached (`make models`), then every notebook runs.
test-notebooks: setup models
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# Meta-train (or find in the cache) every model the notebooks load: about ten minutes the first time.
OMNIGLOT ?= $(firstword $(wildcard $(MAMLKIT_OMNIGLOT) data/omniglot ../shared/data/omniglot))
models: setup
	$(BIN)/python -m mamlkit train --preset lesson --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --trainings standard --norms metabn tasknorm_i --no-progress
ifneq ($(OMNIGLOT),)
	$(BIN)/python -m mamlkit train --preset lesson --dataset omniglot --data-dir $(OMNIGLOT) --trainings standard \
		--norms bn tasknorm_i --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --dataset omniglot --data-dir $(OMNIGLOT) --trainings standard \
		--n-way 20 --n-query 1 --no-progress
endif

# Re-execute every notebook from a clean kernel and store its outputs (run after changing a lesson).
notebooks: setup
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb

# Refresh the pins after changing dependencies in pyproject.toml.
constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) results .pytest_cache
