# One-command set-up, run and test. Each target creates .venv when missing and reinstalls only
# when pyproject.toml changed, so re-running is fast and idempotent.
#
#   make run     set up and start the daemon on ./config.toml
#   make test    set up and run every check: format, lint, import layers, types, tests
#
# torch: the CPU build is installed FIRST (a bare `torch` requirement pulls a multi-GB CUDA
# build). Override TORCH_SPEC / TORCH_PIP_ARGS for another build, e.g. a CPU wheel index.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install run once demo test check lint format format-check types imports pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/monitor run

once: install
	$(BIN)/monitor run --once

demo: install
	$(BIN)/monitor demo

test: check

check: install format-check lint imports types pytest

format-check:
	$(BIN)/ruff format --check monitor tests bench migrations/env.py

format: install
	$(BIN)/ruff format monitor tests bench migrations/env.py
	$(BIN)/ruff check --fix monitor tests bench

lint:
	$(BIN)/ruff check monitor tests bench

imports:
	$(BIN)/lint-imports

types:
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
