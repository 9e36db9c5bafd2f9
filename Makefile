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

.PHONY: setup lab demo test test-unit test-notebooks test-browser lint notebooks browser-deps constraints clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --port $(PORT) notebooks/00_start_here.ipynb

demo: setup
	$(BIN)/python -m mamlkit placements --dataset glyphs

test: setup browser-deps lint test-unit test-notebooks test-browser

lint: setup
	$(BIN)/ruff check .

test-unit: setup
	$(BIN)/python -m pytest tests --ignore=tests/browser

test-notebooks: setup
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

test-browser: setup
	$(BIN)/python -m pytest tests/browser

# Re-execute every notebook from a clean kernel and store its outputs (run after changing a lesson).
notebooks: setup
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb

# Chromium for the browser test (Debian's package; Playwright cannot download browsers here).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium not found and cannot be installed here; the browser test will skip"; fi

# Refresh the pins after changing dependencies in pyproject.toml.
constraints: setup
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) results .pytest_cache
