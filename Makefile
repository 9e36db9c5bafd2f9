# mamlkit's single entry point. The two commands in the README:
#   make lab    set everything up and open the student edition in JupyterLab   (make demo: a first table, < 1 min)
#   make test   set everything up and run the whole test suite (what CI runs)
# Everything installs into .venv from pyproject.toml, pinned by constraints.txt (torch==2.13.0).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
export MAMLKIT_THREADS ?= 2
# Test workers: two pytest processes with one torch thread each (JOBS=0: one process, two threads).
JOBS ?= 2
TEST_THREADS := $(if $(filter 0,$(JOBS)),$(MAMLKIT_THREADS),1)

.PHONY: setup lab lab-instructor demo test test-unit test-kernels test-notebooks test-browser browser-deps student-copy book times models models-glyphs models-omniglot lint reach notebooks seed-check \
	constraints clean

# learn2learn 0.2.0 (compared with mamlkit in tests and docs) cannot be a pip extra: installed with its dependencies it
# replaces the CPU torch; mamlkit.your_code.libraries builds its released source without them (see that module).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[lab,dev,book]"
	$(BIN)/python -m mamlkit.your_code.libraries install-learn2learn -c constraints.txt
	touch $(STAMP)

setup: $(STAMP)

# make lab: the student edition (build/student: no solutions), built by `make student-copy` the first time only (a
# student's work there is never overwritten), with nbgrader's authoring interface and JupyterLab's news request off
# (tools/lab_settings). make lab-instructor: notebooks/ with the solutions and nbgrader (docs/instructor_guide.md).
STUDENT := build/student
LAB_FLAGS = --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root)
NBGRADER_OFF = $(foreach e,formgrader course_list assignment_list validate_assignment,\
	--ServerApp.jpserver_extensions=nbgrader.server_extensions.$(e)=False)
lab: setup
	@test -f $(STUDENT)/01_train_eval_basics.ipynb || $(BIN)/python tools/make_student_copy.py
	$(BIN)/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir=$(STUDENT) --LabApp.app_settings_dir=$(CURDIR)/tools/lab_settings \
		$(NBGRADER_OFF) $(STUDENT)/01_train_eval_basics.ipynb

lab-instructor: setup
	$(BIN)/jupyter lab $(LAB_FLAGS) notebooks/01_train_eval_basics.ipynb

# A first result in under a minute on 2 cores: the shipped glyphs lesson model (standard meta-training, 100
# meta-iterations), every placement on 100 meta-test tasks, in 2 lanes. Nothing is meta-trained.
demo: setup
	$(BIN)/python -m mamlkit placements --preset lesson --dataset glyphs --trainings standard --out results/demo
	@echo "make demo: the shipped glyphs lesson model (standard, 100 meta-iterations) on 100 meta-test tasks."
	@echo "The full table (300 meta-iterations, both meta-trainings, 600 tasks; about 5 minutes on 2 cores):"
	@echo "  $(BIN)/python -m mamlkit placements --dataset glyphs"

test: setup lint test-unit test-kernels test-notebooks test-browser

lint: setup
	$(BIN)/ruff check .
	$(BIN)/vermin --no-tips --violations -t=3.10- mamlkit tools benchmarks tests
	$(BIN)/python tools/reach.py --check
	$(BIN)/python tools/import_graph.py --checks
	$(BIN)/python tools/sizes.py

# Once the collection is published: Colab/Binder badges and the Colab set-up cell (make reach REPO=owner/name,
# optionally BRANCH=name; the default is main).
reach: setup
	$(BIN)/python tools/reach.py --repo "$(REPO)" $(if $(BRANCH),--branch "$(BRANCH)")

test-unit: setup
	MAMLKIT_THREADS=$(TEST_THREADS) MAMLKIT_LANES=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadgroup tests --ignore=tests/browser

# The tests that compare with files made on the developers' machine (the shipped models and the glyph data's
# fingerprint in their keys), with torch, oneDNN, MKL and numpy forced onto other kernels: this machine then takes
# the path a user's CPU takes (equivalence within stated margins, not bit for bit). See tools/forced_kernels.py.
# (The test of the equivalence check itself, on wrong files, runs in test-unit.)
test-kernels: setup
	MAMLKIT_THREADS=1 $(BIN)/python tools/forced_kernels.py $(BIN)/python -m pytest -p no:cacheprovider \
		tests/test_shipped_models.py -k "not refuses_wrong_shipped_files"

# The lesson models are trained once by mamlkit and cached (`make models`), then every notebook runs,
# each in one piece on one of the $(JOBS) workers (--dist loadfile), with one torch thread per kernel.
test-notebooks: setup models
	MAMLKIT_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
		-p no:cacheprovider --durations=0 notebooks

# Find every model the notebooks load: shipped with the collection (data/models), in the cache, or meta-trained
# now (about five minutes for all of them, where the data or the package differ from the shipped configuration).
# Two chains run side by side, each meta-training two tasks at a time on 2 threads (mk.meta_train(threads=)), so
# that the chain left running alone still uses both cores; the models are the same bit for bit at any thread count.
# (Oversubscription is costly when torch splits each operation over threads; tasks side by side do not.)
OMNIGLOT ?= $(firstword $(wildcard $(MAMLKIT_OMNIGLOT) data/omniglot ../shared/data/omniglot))
MODEL_THREADS ?= 2
models: setup
	$(MAKE) --no-print-directory -j2 models-glyphs models-omniglot MAMLKIT_THREADS=$(MODEL_THREADS)

models-glyphs: setup
	$(BIN)/python -m mamlkit train --preset lesson --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --trainings standard --norms metabn tasknorm_i --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --trainings standard --norms bn_per_step --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --trainings standard --inner-rates learned --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --trainings standard --adapt head --no-progress

models-omniglot: setup
ifneq ($(OMNIGLOT),)
	$(BIN)/python -m mamlkit train --preset lesson --dataset omniglot --data-dir $(OMNIGLOT) --trainings standard \
		--norms bn tasknorm_i --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --dataset omniglot --data-dir $(OMNIGLOT) --trainings standard \
		--n-way 20 --n-query 1 --no-progress
	$(BIN)/python -m mamlkit train --preset lesson --dataset omniglot --data-dir $(OMNIGLOT) --trainings standard \
		--downsample stride --no-progress
else
	@echo "models-omniglot: no Omniglot folder found (MAMLKIT_OMNIGLOT, data/omniglot, ../shared/data/omniglot); skipped"
endif

# The classroom lab in a real browser: JupyterLab + headless Chromium (/usr/bin/chromium, see browser-deps).
# It uses the lesson model cached by test-notebooks; it skips where Chromium is missing, except under CI=true.
# The whole collection as a static site from the stored outputs (nothing re-run): build/book/html/index.html.
book: setup
	$(BIN)/python tools/build_book.py

test-browser: setup
	$(BIN)/python -m pytest tests/browser

# Chromium for test-browser, from the system's packages (Debian/Ubuntu; needs root).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then \
		echo "browser-deps: /usr/bin/chromium is installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && apt-get install -y --no-install-recommends chromium; \
	else \
		echo "browser-deps: /usr/bin/chromium is missing and installing it needs root:"; \
		echo "  sudo apt-get install chromium   (or: sudo make browser-deps)"; \
		exit 1; \
	fi

# The student edition of every lesson with exercises (nbgrader generate_assignment: solutions replaced by stubs,
# guesses blanked) and the instructor guide with every solution, under build/.
student-copy: setup
	$(BIN)/python tools/make_student_copy.py

# Re-execute every notebook from a clean kernel and store its outputs (run after changing a lesson).
notebooks: setup
	$(BIN)/python tools/execute_notebooks.py notebooks/*.ipynb notebooks/deep_dives/*.ipynb
	$(BIN)/python tools/notebook_times.py --write

# Each notebook's "Time needed" and notebook 01's path table, computed from the notebooks (words, stored run
# time, exercises, predictions): tools/notebook_times.py. `make notebooks` runs it after executing them.
times: setup
	$(BIN)/python tools/notebook_times.py --write

# Do the comparisons the notebooks assert on their cached (seed 0) models also hold for models meta-trained
# with seeds 1 and 2? Runs every notebook that loads a meta-trained model (found by what it calls) with every
# preset's seed changed, and writes nothing (its first run also meta-trains the lesson models of both seeds).
SEED_CHECKED = $(shell grep -l -r --include='*.ipynb' -E 'get_meta_trained|mk\.preset[^a-z_]|run_placements|run_normalisations' \
	notebooks | sort)
seed-check: setup
	$(BIN)/python tools/execute_notebooks.py --train-seed 1 $(SEED_CHECKED)
	$(BIN)/python tools/execute_notebooks.py --train-seed 2 $(SEED_CHECKED)

# Refresh the pins after changing dependencies in pyproject.toml.
constraints: setup
	{ sed -n '1,2p' constraints.txt; grep '^Cython==' constraints.txt; \
	  $(BIN)/pip freeze --exclude-editable --exclude learn2learn | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) results .pytest_cache
