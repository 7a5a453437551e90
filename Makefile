# Each target creates .venv with Python >= 3.12 if absent and installs what it needs.
# PYTHON=/path/to/python3.12 picks the interpreter; otherwise the first candidate that runs and is new enough:
# python3.13, python3.12, then a 3.12/3.13 that pyenv installed (pyenv's shims fail unless a version is selected,
# so each candidate is run, not just looked up).
PY_CHECK := import sys; assert sys.version_info >= (3, 12)
PYENV_ROOT_DIR = $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)
PY_CANDIDATES = python3.13 python3.12 $(wildcard $(PYENV_ROOT_DIR)/versions/3.1[23]*/bin/python3.1[23])
PYTHON ?= $(firstword $(foreach cand,$(PY_CANDIDATES),$(shell $(cand) -c '$(PY_CHECK)' >/dev/null 2>&1 && echo $(cand))))
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
DEMO_OUT ?= demo-output
# A .venv made by an older Python (before bayesvol required 3.12) is rebuilt, not reused.
VENV_STALE := $(shell test -x $(BIN)/python && ! $(BIN)/python -c '$(PY_CHECK)' >/dev/null 2>&1 && echo yes)

.PHONY: demo test test-fast lint docs bench clean FORCE

$(BIN)/python: $(if $(VENV_STALE),FORCE)
	@test -n "$(PYTHON)" && $(PYTHON) -c '$(PY_CHECK)' >/dev/null 2>&1 || { \
		echo "make: bayesvol needs Python 3.12 or newer; tried $(or $(PYTHON),$(strip $(PY_CANDIDATES)))."; \
		echo "  Install Python 3.12 or 3.13 (e.g. 'pyenv install 3.12', or your system's python3.12 with its"; \
		echo "  venv module), or name an interpreter: make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)"; \
		exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

FORCE:

$(STAMP_RUN): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(STAMP_DEV): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/bayesvol demo --out $(DEMO_OUT)

# The tests share compiled programs through JAX's persistent cache (test modules, pytest workers, the two
# runs and the notebooks' kernels compile many of the same programs); it lives in the virtual environment.
JAX_CACHE := JAX_COMPILATION_CACHE_DIR=$(abspath $(VENV))/jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5

test: $(STAMP_DEV)
	$(BIN)/ruff check bayesvol tests benchmarks
	$(BIN)/mkdocs build --strict --quiet --site-dir site
	$(JAX_CACHE) $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" --durations=15
	$(JAX_CACHE) $(BIN)/python -m pytest -n 2 --dist loadgroup -m slow --durations=15

# The suite without the long statistical checks and notebooks (marked slow; make test runs them after the rest).
test-fast: $(STAMP_DEV)
	$(JAX_CACHE) $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" --durations=15

lint: $(STAMP_DEV)
	$(BIN)/ruff check bayesvol tests benchmarks

docs: $(STAMP_DEV)
	$(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP_DEV)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	for script in sv_nuts garch_mle filters filters_gbpusd_mle dfsv_study dfsv_nuts wishart_eis; do \
		$(BIN)/python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) site $(DEMO_OUT) .pytest_cache .ruff_cache
