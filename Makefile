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

demo: $(STAMP)  ## plan and render the seed network, then rehearse it in the lab (as root)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cp examples/seed.toml $(DEMO)/network.toml
	$(BIN)/sitewire validate $(DEMO)/network.toml
	$(BIN)/sitewire plan $(DEMO)/network.toml
	$(BIN)/sitewire render $(DEMO)/network.toml --local-keys $(DEMO)/keys.json --out $(DEMO)/out
	@echo "--- $(DEMO)/out/B/uci-batch, keys left out (they are in $(DEMO)/keys.json, mode 0600) ---"
	@grep -v -e private_key -e preshared_key $(DEMO)/out/B/uci-batch
	@echo "--- rehearsal: factory-fresh routers in namespaces, configured over SSH, real pings ---"
	$(BIN)/sitewire lab down --name demo 2>/dev/null || true
	$(BIN)/sitewire lab up $(DEMO)/network.toml --name demo --configured
	status=0; $(BIN)/sitewire lab test --name demo || status=$$?; \
	$(BIN)/sitewire lab down --name demo; exit $$status

lint: $(STAMP)  ## ruff format check and lint
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)  ## mypy --strict
	$(BIN)/mypy src

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
