# Every target creates .venv and installs what it needs first; a second run only checks stamps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
BUF := node_modules/.bin/buf

.PHONY: install run test lint format protos bench clean

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e clients/python -e '.[dev]'
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NPM_STAMP)

run: $(STAMP)
	$(BIN)/assistants-grpc serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP) $(NPM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	cd protos && ../$(BUF) lint && ../$(BUF) format --diff --exit-code
	$(BIN)/python scripts/gen_protos.py --check

format: $(STAMP) $(NPM_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	cd protos && ../$(BUF) format -w

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules data .mypy_cache .ruff_cache .pytest_cache
