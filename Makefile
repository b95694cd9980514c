# The two commands: `make train` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build by default (a local wheel or the registry's CPU build); on a GPU machine:
#   make TORCH_SPEC="torch==2.13.0 --index-url <a CUDA wheel index>" venv
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv train test data bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

train: venv
	$(PY) scripts/train.py $(ARGS)

test: venv
	$(PY) -m pytest -q $(ARGS)

data: venv
	$(PY) scripts/generate_data.py $(ARGS)

bench: venv
	$(PY) benchmarks/bench_sequences.py

clean:
	rm -rf $(VENV) outputs multirun
