# cxr-kfp — `make help` lists the targets. Settings come from the environment or a .env file.
-include .env
include containers/containers.mk
include manifests/kind.mk

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= runs/local
PYTEST_ARGS ?=

.PHONY: help install test-tools lint test test-fast bench

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-26s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]'
	@touch $@

install: $(STAMP) ## Create .venv with the project, TensorFlow (CPU) and the test tools

test-tools: ## Install the Debian tools the tests use: Chromium (report.html in a real browser), shellcheck
	@command -v chromium >/dev/null && command -v shellcheck >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium shellcheck >/dev/null; }

LINT_PATHS := components pipelines tests manifests bench containers

lint: $(STAMP) ## Ruff: lint rules with Google-style docstrings, and the formatting check
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

test: $(STAMP) test-tools ## Run the test suite (unit, pipeline spec, local end-to-end)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## The tests not marked slow
	$(BIN)/pytest -m "not slow and not containers" $(PYTEST_ARGS)

bench: $(STAMP) ## The main job at full size beside the study's method (~40 min) -> bench/results.md, results.json
	$(BIN)/python bench/bench.py

# --- The pipeline -------------------------------------------------------------------------------
CONFIG ?= pipelines/configs/cluster.yaml
PIPELINE_YAML ?= pipeline.yaml
RUNNER ?= subprocess
ifeq ($(filter subprocess docker,$(RUNNER)),)
$(error RUNNER must be subprocess or docker, not '$(RUNNER)')
endif
ifneq ($(filter submit-pipeline,$(MAKECMDGOALS)),)
ifeq ($(strip $(KFP_HOST)),)
$(error submit-pipeline needs KFP_HOST, e.g. KFP_HOST=http://127.0.0.1:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`)
endif
endif

.PHONY: run-local compile submit-pipeline test-containers

run-local: $(STAMP) ## Run the whole pipeline locally on the demo data (kfp.local); report in $(OUT)/report
	$(BIN)/cxr run-local --out $(OUT) --runner $(RUNNER) $(if $(SOURCE),--source $(SOURCE))

compile: $(STAMP) ## Compile the pipeline YAML (CONFIG=..., images pinned to IMAGE_REGISTRY/IMAGE_TAG)
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) $(BIN)/cxr compile --config $(CONFIG) --output $(PIPELINE_YAML)

test-containers: $(STAMP) docker-install docker-engine build-images-local smoke-images ## Container tier: the pipeline in the images (DockerRunner, no network)
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) $(BIN)/pytest -m containers $(PYTEST_ARGS)

submit-pipeline: $(STAMP) ## Compile and submit a run to KFP_HOST (WAIT=1 follows it to the end)
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) $(BIN)/cxr submit --config $(CONFIG) $(if $(WAIT),--wait)
