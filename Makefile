# sitewire — `make` lists the targets; CI runs `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO   := build/demo

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint typecheck unit golden bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)  ## create .venv with sitewire and its test tools

demo: $(STAMP)  ## plan the seed network, then apply it to factory-fresh lab routers (as root)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cp examples/seed.toml $(DEMO)/network.toml
	$(BIN)/sitewire validate $(DEMO)/network.toml
	$(BIN)/sitewire plan $(DEMO)/network.toml
	@echo "--- rehearsal: factory-fresh OpenWrt routers in namespaces, Tailscale accepting routes ---"
	$(BIN)/sitewire lab down --name demo 2>/dev/null || true
	$(BIN)/sitewire lab up $(DEMO)/network.toml --name demo --tailscale-accept-routes
	status=0; \
	$(BIN)/sitewire apply $(DEMO)/network.toml --lab --lab-name demo --yes || status=$$?; \
	if [ $$status = 0 ]; then $(BIN)/sitewire lab test --name demo || status=$$?; fi; \
	if [ $$status = 0 ]; then echo "--- a second apply: nothing to change ---"; \
	  $(BIN)/sitewire apply $(DEMO)/network.toml --lab --lab-name demo --yes || status=$$?; fi; \
	$(BIN)/sitewire lab down --name demo; \
	if [ $$status = 0 ]; then echo "demo: applied, verified, LAN to LAN both ways"; \
	else echo "demo: FAILED (exit $$status)"; fi; exit $$status

lint: $(STAMP)  ## ruff format check and lint
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)  ## mypy --strict over src, tests and benchmarks
	$(BIN)/mypy src tests benchmarks

unit: $(STAMP)  ## the test suite
	$(BIN)/pytest -q

test: lint typecheck unit  ## everything CI checks

golden: $(STAMP)  ## re-record the golden files after an intended change
	SITEWIRE_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/golden

bench: $(STAMP)  ## scale benchmark against wg-meshconf (slow; numbers go in the README)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/render_scale.py

clean:  ## remove the venv and build output
	rm -rf $(VENV) build
