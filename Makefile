# Two commands do all set-up on a fresh machine:
#   make demo   builds .venv, then runs the main job on the embedded synthetic cohort (offline)
#   make test   builds .venv, then runs the whole test suite (what CI runs)
# Both are idempotent. The virtual environment is rebuilt only when pyproject.toml changes.
#
# torch: a pinned build is installed first unless the environment already has one, so set-up never
# pulls an unexpected multi-GB wheel. On a GPU machine keep your own build with, e.g.,
#   make demo VENV=/path/to/your/env          (an environment that already has CUDA torch)
#   make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# make test's pytest-xdist workers (one test file per worker at a time; slow files first: tests/conftest.py).
# 0 runs the suite in one process; `make test TEST_WORKERS=4` uses four. On an idle 2-core machine two
# workers gained nothing (.ci/run 2,244 s against 2,223 s in one process: the heavy tests use both cores).
TEST_WORKERS ?= 0
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-v --durations=40"`.
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.clinpred-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-fast lint bench clean lock

# The environment is the lock file's exact versions (what the tests and results/ were produced with),
# then clinpred itself without resolving again. pyproject.toml keeps ranges for library users.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# Refresh requirements.lock: resolve pyproject's ranges afresh in a throw-away venv, freeze it
# (torch and its CUDA wheels excluded: $(TORCH) installs those), run `make test`, commit the lock.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q $(TORCH)
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[dev]"
	{ sed -n '1,3p' requirements.lock; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|nvidia-|triton)([=-]|$$)'; \
	} > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock
	rm -rf $(LOCK_VENV)

demo: $(STAMP)
	$(BIN)/clinpred demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=5 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Each benchmark prints its figures and its ratio to a named peer measured in the same run (minutes each).
bench: $(STAMP)
	for b in read_notes synth embed recall finetune bootstrap; do $(BIN)/python benchmarks/$$b.py || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check clinpred tests benchmarks
	$(BIN)/ruff format --check clinpred tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
