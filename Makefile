# cxr-kfp — `make help` lists the targets. Settings come from the environment or a .env file.
-include .env

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/local
PYTEST_ARGS ?=

.PHONY: help install browser lint test test-fast

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]'
	@touch $@

install: $(STAMP) ## Create .venv with the project, TensorFlow (CPU) and the test tools

browser: ## Install headless Chromium (Debian package; report.html is checked in a real browser)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP) ## Ruff over the code and tests
	$(BIN)/ruff check components pipelines tests

test: $(STAMP) browser ## Run the test suite (unit, pipeline spec, local end-to-end)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## The tests not marked slow
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)
