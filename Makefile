# Each target creates .venv with Python 3.11 if absent and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
DEMO_OUT ?= demo-output

.PHONY: demo test test-fast lint docs bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

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
