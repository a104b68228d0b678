# Two commands set up everything: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CONSUMER_ASSETS_ROOT ?= $(CURDIR)/.data

.PHONY: install demo test dev clean instance

install: $(STAMP)

# The instance settings of the repo (queued runs, GPU limit) go to $(DAGSTER_HOME).
instance:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# torch is installed on its own first so that pip takes the CPU wheel on disk
# instead of resolving a CUDA build for a looser requirement.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip check
	touch $(STAMP)

demo: $(STAMP) instance
	$(BIN)/python -m consumer_assets.demo

test: $(STAMP) instance
	$(BIN)/python -m pytest

dev: $(STAMP) instance
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .data .dagster_home
