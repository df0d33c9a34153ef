# affect — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export WANDB_SILENT := true
export PYTHONHASHSEED := 0

.PHONY: help install test test-fast lint demo docs bench wheel clean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned stack (idempotent: a stamp file)

test: $(STAMP) ## run the whole suite, slow smoke-training and DDP tests included
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## the suite without `slow` tests
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check affect tests benchmarks

demo: $(STAMP) ## the main job in minutes: procedural corpora -> FaceBehaviorNet -> affect predict on a real video
	$(BIN)/python -m affect.demo

docs: $(STAMP) ## the documentation site: mkdocs build --strict into site/ (offline)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

wheel: $(STAMP) ## build the wheel offline into build/dist (configs and the default model ship inside)
	$(BIN)/pip wheel --no-deps --no-build-isolation --no-index -w build/dist .

clean: ## remove the venv, run outputs and build outputs
	rm -rf $(VENV) runs wandb .pytest_cache site demo_out build affect.egg-info
