# The two commands: `make train` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build by default (a local wheel or the registry's CPU build); on a GPU machine:
#   make TORCH_SPEC="torch==2.13.0 --index-url <a CUDA wheel index>" venv
TORCH_SPEC ?= torch==2.13.0
# The oldest onnxruntime the exported model is tested with (tests/integration/test_oldest_runtime.py
# puts this folder first on PYTHONPATH); 1.15.0 is the oldest with Python 3.11 wheels.
ORT_OLDEST := $(VENV)/ort-oldest
ORT_OLDEST_SPEC ?= onnxruntime==1.15.0 "numpy<2"

.PHONY: venv train test data bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	rm -rf $(ORT_OLDEST)
	$(PY) -m pip install -q --no-deps --target $(ORT_OLDEST) $(ORT_OLDEST_SPEC)
	touch $@

venv: $(VENV)/.installed

train: venv
	$(PY) scripts/train.py $(ARGS)

test: venv
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m pytest -q $(ARGS)

data: venv
	$(PY) scripts/generate_data.py $(ARGS)

bench: venv
	$(PY) benchmarks/bench_sequences.py

clean:
	rm -rf $(VENV) outputs multirun
