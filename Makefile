# rollguard — developer entry points. `make demo` and `make test` are the two that matter.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv deps controlplane dev-up dev-down test lint unit integration crds demo bench clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || PY=python3; \
	  [ -x $(BIN)/python ] || $${PY:-python3} -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

deps:
	@bash tools/install-deps.sh

controlplane:
	@bash tools/controlplane/build.sh >/dev/null
