# Named targets for people and CI. `make test` is the README's test command and what
# .ci/run runs; it installs what it needs into .venv and builds the control plane once.
# The venv holds two editable distributions: the product with its dev extra (test and
# lint tools) and the development kit, devkit/ (glidein-operator-devkit: the control
# plane, kubectl, the service doubles, the demo), which the product never imports. A dev
# extra cannot name a local path portably (pip wants a URL or an index name there), so
# the kit is installed beside it rather than through it.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):/usr/local/go/bin:$(PATH)

.PHONY: all install lint typecheck crds crds-check controlplane node unit integration test demo bench clean

all: test

$(BIN)/glidein-operator: pyproject.toml devkit/pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' -e devkit
	touch $@

install: $(BIN)/glidein-operator

lint: install
	$(BIN)/ruff check operator devkit tests
	$(BIN)/ruff format --check operator devkit tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

crds: install
	$(BIN)/glidein-operator crds generate

crds-check: install
	$(BIN)/glidein-operator crds generate --check

controlplane: install
	$(BIN)/glidein-operator controlplane build

# The node tier's kubelet, scheduler, containerd and images (root and apt-get needed;
# elsewhere it says what is missing and the tier skips).
node: controlplane
	$(BIN)/python -m glidein_devkit.node build

unit: install
	$(BIN)/pytest tests/unit -q

integration: controlplane
	$(BIN)/pytest tests/integration -q

test: lint typecheck crds-check controlplane node
	$(BIN)/pytest tests -q --durations=10

bench: install
	$(BIN)/pytest tests/benchmarks --benchmark-enable -q

demo: controlplane
	$(BIN)/glidein-operator demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
