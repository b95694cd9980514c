# The two commands: `make train` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build by default (a local wheel or the registry's CPU build); on a GPU machine:
#   make TORCH_SPEC="torch==2.13.0 --index-url <a CUDA wheel index>" venv
TORCH_SPEC ?= torch==2.13.0
# The onnxruntime releases every graph of a bundle is tested on (export/onnx.py RUNTIME_MATRIX;
# tests/integration/test_runtime_matrix.py puts one folder first on PYTHONPATH): the oldest with
# Python 3.11 wheels, the pyproject floor, the last and the first release around the fused-attention
# fix. Releases before 1.19 were built against NumPy 1: they get ort/numpy1 beside them.
ORT_DIR := $(VENV)/ort
ORT_MATRIX := 1.15.0 1.18.0 1.20.1 1.21.0

.PHONY: venv train test test-fast docs data bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	rm -rf $(ORT_DIR) $(VENV)/ort-oldest $(VENV)/optuna-oldest
	# The side installs, each into its own folder, run in the background beside the main one: the
	# runtime matrix, NumPy 1 for the releases before 1.19, and the declared optuna floor for
	# tests/integration/test_search.py's minimum-version run.
	pids=""; \
	for v in $(ORT_MATRIX); do \
		$(PY) -m pip install -q --no-deps --target $(ORT_DIR)/$$v onnxruntime==$$v & pids="$$pids $$!"; done; \
	$(PY) -m pip install -q --no-deps --target $(ORT_DIR)/numpy1 "numpy<2" & pids="$$pids $$!"; \
	$(PY) -m pip install -q --no-deps --target $(VENV)/optuna-oldest optuna==4.0.0 & pids="$$pids $$!"; \
	$(PY) -m pip install -q $(TORCH_SPEC) && $(PY) -m pip install -q -e ".[dev]" || exit 1; \
	for p in $$pids; do wait $$p || exit 1; done
	touch $@

venv: $(VENV)/.installed

train: venv
	$(PY) scripts/train.py $(ARGS)

# What CI runs (.ci/run): ruff, the documentation site with --strict, every test.
test: venv
	$(PY) -m ruff check src tests benchmarks scripts
	$(DOCS_BUILD)
	$(PY) -m pytest -q $(ARGS)

# The inner loop: ruff and the tests not marked slow.
test-fast: venv
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m pytest -q -m "not slow" $(ARGS)

# The documentation site (mkdocs.yml, docs/) into build/site/ (ignored by git).
DOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q -d build/site
docs: venv
	$(DOCS_BUILD)

data: venv
	$(PY) scripts/generate_data.py $(ARGS)

bench: venv
	$(PY) benchmarks/bench_sequences.py

clean:
	rm -rf $(VENV) outputs multirun
