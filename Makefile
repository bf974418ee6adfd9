# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BACKENDS := tensorflow jax torch
# The demo's backend; any of $(BACKENDS).
BACKEND ?= jax
PIP_INSTALL := $(BIN)/pip install --quiet -c constraints-test.txt

.PHONY: demo test bench bench-translation docs dist lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras, so each target installs only what it needs.
$(VENV)/.installed-demo-%: pyproject.toml constraints-test.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[$*]"
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints-test.txt | $(BIN)/python
	$(PIP_INSTALL) -e ".[dev,docs,examples,export,tensorflow,jax,torch]"
	touch $@

demo: $(VENV)/.installed-demo-$(BACKEND)
	KERAS_BACKEND=$(BACKEND) $(BIN)/python examples/copy_first.py

# Runs the whole suite once per backend, each in its own process, and fails
# if any backend fails (after running them all); then builds the docs and
# the distributions, so that a broken reference or package fails too.
test: $(VENV)/.installed-test
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q $(PYTEST_ARGS) \
			|| failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED on:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"
	$(MAKE) --no-print-directory docs dist

# The speed tables, written into docs/benchmarks.md (run it on an otherwise
# idle machine). BENCH_ARGS go to benchmarks/run_all.py; --quick for a
# short run.
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# The token-mode benchmark at a vocabulary of 8000, into the same page.
bench-translation: $(VENV)/.installed-test
	$(BIN)/python benchmarks/translation.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/vocabulary_matmuls.py
	KERAS_BACKEND=jax $(BIN)/python benchmarks/translation_sync_check.py

# The documentation site, into build/site; any warning fails the build.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The wheel and the sdist, into dist/, checked as PyPI would check them.
dist: $(VENV)/.installed-test
	rm -rf dist
	mkdir -p build
	$(BIN)/python -m build --outdir dist . > build/dist.log 2>&1 \
		|| { cat build/dist.log; exit 1; }
	$(BIN)/twine check --strict dist/*

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) build dist *.egg-info
