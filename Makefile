# subledger: `make dev` runs it, `make test` tests it. Both set up .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)

.PHONY: help install dev test lint format typecheck unit lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies

dev: install  ## run the whole system on embedded defaults, fed with sample traffic
	$(BIN)/subledger dev

test: install lint typecheck  ## lint, type-check and run every test
	$(BIN)/pytest

unit: install  ## run the fast unit tests only
	$(BIN)/pytest tests/unit

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install  ## mypy, strict on the pure core
	$(BIN)/mypy

lock:  ## re-pin every transitive dependency from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | sort > requirements.lock

clean:  ## remove .venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
