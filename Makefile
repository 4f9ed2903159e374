# lienthong — two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
WORKDIR ?= demo-work

.PHONY: demo test install install-dev services lint typecheck unit clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	@bash scripts/ensure-softhsm.sh

demo: install
	$(BIN)/lienthong demo --workdir $(WORKDIR)

services:
	@bash scripts/check-services.sh

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-dev
	$(BIN)/mypy

test: install-dev services lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: $(BIN)/python
	$(BIN)/pip install -q -e ".[bench]"

clean:
	rm -rf $(WORKDIR) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
