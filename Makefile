# Two commands set up everything: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export CONSUMER_ASSETS_ROOT ?= $(CURDIR)/.data

.PHONY: install demo test test-fast lint format docs dev clean instance redis chromium serve lock check-install check-gpu-image

install: $(STAMP)

# The instance settings of the repo (queued runs, GPU limit) go to $(DAGSTER_HOME).
instance:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# torch is installed on its own first so that pip takes the CPU wheel on disk
# instead of resolving a CUDA build for a looser requirement; everything else comes
# at the versions of requirements.lock (`make lock` writes it from pyproject.toml).
$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# The lock: every package of the dev and deploy extras at one version (torch without its local +cpu label, the
# project itself left out: make install adds it as an editable install).
lock:
	test -x $(BIN)/pip-compile || $(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --extra deploy --no-emit-options -o requirements.lock pyproject.toml
	sed -i -e 's/^torch==\([0-9.]*\)+cpu/torch==\1/' -e '/^consumer-assets @ /,+1d' requirements.lock

# What CI proves about a production install: the package without its dev extras, in a
# clean environment, loads the definitions and serves them with `dagster code-server`.
check-install:
	rm -rf .venv-prod
	$(PYTHON) -m venv .venv-prod
	.venv-prod/bin/pip install --quiet torch==2.13.0
	.venv-prod/bin/pip install --quiet -c requirements.lock '.[deploy]'
	cd /tmp && $(CURDIR)/.venv-prod/bin/python $(CURDIR)/.ci/check_install.py

# The GPU image's torch (Dockerfile, TORCH_INDEX=https://pypi.org/simple): PyPI's Linux wheel of torch 2.13 and the
# CUDA libraries it requires, resolved for the image's platform and Python without downloading them.
MANYLINUX := $(foreach x,28 27 26 25 24 23 22 21 20 19 18 17,--platform manylinux_2_$(x)_x86_64) --platform manylinux2014_x86_64
check-gpu-image: $(STAMP)
	$(BIN)/pip --isolated install --dry-run --ignore-installed --quiet --report /tmp/gpu-image-resolve.json --index-url https://pypi.org/simple \
		--only-binary=:all: --python-version 3.11 $(MANYLINUX) --target /tmp/gpu-image-dry-run torch==2.13.0
	$(BIN)/python -c "import json; names = {i['metadata']['name'] for i in json.load(open('/tmp/gpu-image-resolve.json'))['install']}; \
		cuda = sorted(n for n in names if n.startswith('nvidia-cudnn')); assert cuda, names; print('GPU image resolves torch 2.13.0 with', *cuda)"

demo: $(STAMP) instance
	$(BIN)/python -m consumer_assets.demo

# redis-server, the online service's shared state store in the tests: apt has it, PyPI does not.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis:
	@command -v redis-server >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

# Chromium, the browser of the UI test (Playwright drives it): apt has it, PyPI does not.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

test: $(STAMP) instance redis chromium
	$(BIN)/python -m pytest

# Ruff: lint and formatting (CI runs this before the tests).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The parts of docs/ derived from the code (the gate's rules); a test fails while they are stale.
docs: $(STAMP)
	$(BIN)/python docs/generate.py

# The quick loop (about a minute and a half): plain modules, the contract, storage on SeaweedFS, the automation logic, the
# definitions; the tests marked slow (Spark pipelines, training and the gate, the webserver, the daemon, a browser) only in `make test`.
test-fast: $(STAMP) instance redis
	$(BIN)/python -m pytest -m "not slow"

# Online scores over the demo's root: the newest profile_states and the model that wrote them.
serve: $(STAMP)
	$(BIN)/consumer-assets serve --host 127.0.0.1 --port 8080 $$( [ -n "$$CONSUMER_ASSETS_ONLINE_TOKEN" ] || echo --no-token)

dev: $(STAMP) instance
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .venv-prod .data .dagster_home
