# Clearance: `make demo` runs the product on its embedded defaults; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
MODEL := models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
export HF_HUB_OFFLINE := 1
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
# The same range as pyproject.toml.
LLAMA_CPP := llama-cpp-python>=0.3.8,<0.4
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'

.PHONY: setup demo demo-extractive test lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build (see pyproject.toml); an unpinned torch pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	# llama-cpp-python compiles for this CPU (-march=native) but without AMX tile instructions:
	# virtual machines that do not grant AMX tile state kill the process on the first
	# multi-token prompt (ldtilecfg, general protection fault); AVX-512 kernels are used instead.
	# Built on its own and never from pip's wheel cache, which keys wheels by source, not by
	# CMAKE_ARGS: a cached wheel from an earlier native build would bring the AMX code back.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet --no-cache-dir '$(LLAMA_CPP)'
	$(PY) -m pip install --quiet -e '.[dev]'
	# The real-browser tests (tests/browser) drive Debian's chromium; install it where it is missing.
	command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } || \
		echo "chromium is missing and could not be installed: tests/browser will skip"
	touch $@

setup: $(VENV)/.installed

$(MODEL): | setup
	$(PY) -c "from pathlib import Path; from clearance.demo_model import fetch_demo_model; fetch_demo_model(Path('models'))"

# Ingests samples/corpus, serves the API and web page on http://127.0.0.1:8000 with the local model.
demo: setup $(MODEL)
	CLEARANCE_GENERATOR__KIND=llama_cpp CLEARANCE_GENERATOR__MODEL_PATH=$(MODEL) $(BIN)/clearance demo

# The same without a model download: answers are extractive (selected, cited sentences).
demo-extractive: setup
	$(BIN)/clearance demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy acl api clearance core index ingest retrieval store tests benchmarks
	$(BIN)/lint-imports

test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf .clearance .pytest_cache .mypy_cache .ruff_cache
