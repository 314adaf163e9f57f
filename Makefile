# rollguard — developer entry points. `make demo` and `make test` are the two that matter.
SHELL := /bin/bash
.DEFAULT_GOAL := help
BIN := .venv/bin
export PYTHONPATH := $(CURDIR)/tools

.PHONY: help setup dev-up dev-down test drill-report lint docs unit integration crds helm-chart image demo e2e-kind bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup: ## Install Debian packages, the Python venv and build the control plane (only what is missing)
	@bash tools/install-deps.sh

demo: ## Set everything up, start the cluster, Prometheus and the operator, and narrate a rollback
	@bash tools/install-deps.sh --build-in-background
	@$(BIN)/python -m devenv.demo

dev-up: setup ## Start the local cluster, Prometheus and workload simulator (.dev/kubeconfig, .dev/env.json)
	@$(BIN)/python -m devenv up

dev-down: ## Stop the local environment (and the demo's operator)
	@$(BIN)/python -m devenv down

lint: setup ## ruff, mypy --strict, import-linter, generated docs pages up to date, mkdocs build --strict
	$(BIN)/ruff check operator tools tests bench
	$(BIN)/ruff format --check operator tools tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m devenv.docsgen --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs: setup ## Regenerate the docs' reference pages and build the site into site/
	$(BIN)/python -m devenv.docsgen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# pytest-xdist: the unit tests spread over every CPU; the integration and end-to-end tests over
# two workers, each with an environment of its own (control plane, Prometheus, operator), test
# by test but for the modules tests/conftest.py names (WHOLE_MODULES), each run whole by one.
# Against an existing cluster (ROLLGUARD_KUBECONFIG) they run in one process.
UNIT_XDIST := -n auto
INTEGRATION_XDIST := $(if $(ROLLGUARD_KUBECONFIG),,-n 2 --dist loadscope)

unit: setup ## Unit tests only (no cluster)
	$(BIN)/pytest tests/unit -q $(UNIT_XDIST)

integration: setup ## Integration tests against a fresh local environment
	$(BIN)/pytest tests/integration -q $(INTEGRATION_XDIST)

test: setup ## The whole suite: lint, unit, integration and end-to-end tests, then the drill report
	$(MAKE) --no-print-directory lint
	rm -rf .drills
	ROLLGUARD_DRILL_REPORT_DIR=$(CURDIR)/.drills $(BIN)/pytest tests/unit -q -p no:cacheprovider $(UNIT_XDIST)
	ROLLGUARD_DRILL_REPORT_DIR=$(CURDIR)/.drills $(BIN)/pytest tests --ignore=tests/unit -q -p no:cacheprovider $(INTEGRATION_XDIST)
	@echo "Drill report (the table of docs/reliability.md: make drill-report):"
	@$(BIN)/python -m devenv.drillreport .drills

drill-report: ## Copy the last test run's drill figures into the table of docs/reliability.md
	$(BIN)/python -m devenv.drillreport .drills --page docs/reliability.md

e2e-kind: setup ## The end-to-end suite on a kind cluster, operator in-cluster (needs Docker and kind)
	@bash tools/kind/e2e.sh

bench: setup ## Benchmarks (print figures, write bench/results/*.json; nothing asserted)
	$(BIN)/python bench/backtest_throughput.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/scale.py

crds: setup ## Regenerate crds/ from the API models (and the Helm chart's copies)
	$(BIN)/rollguard crds --out crds
	$(MAKE) --no-print-directory helm-chart

helm-chart: ## Copy crds/, deploy/peering.yaml and deploy/monitoring/ into the Helm chart
	cp crds/*.yaml deploy/helm/rollguard/crds/
	cp deploy/peering.yaml deploy/helm/rollguard/crds/kopf.dev_peerings.yaml
	cp deploy/monitoring/servicemonitor.yaml deploy/monitoring/prometheusrule.yaml \
	  deploy/monitoring/rollguard-dashboard.json deploy/helm/rollguard/files/

image: setup ## Build the operator image rollguard:VERSION with buildah, no Docker daemon (as root)
	@bash tools/image/build.sh

clean: ## Remove the venv and local state (the control-plane cache is kept)
	rm -rf .venv .dev .drills .mypy_cache .ruff_cache .pytest_cache site
