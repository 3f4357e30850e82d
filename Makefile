# Every target creates .venv and installs what it needs first; a second run only checks stamps.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
BUF := node_modules/.bin/buf
# The code_interpreter sandbox's own Python environment, bound read-only into every sandbox.
# Debian's interpreter, not $(PYTHON): only /usr is bound, so the kernel's interpreter and its
# standard library must live there (a pyenv or /opt Python would not be visible inside).
SANDBOX_PYTHON ?= /usr/bin/python3
SANDBOX_VENV := .sandbox/venv
SANDBOX_STAMP := $(SANDBOX_VENV)/.installed

.PHONY: install sandbox run test lint format protos bench clean

install: $(STAMP)

sandbox: $(SANDBOX_STAMP)

$(SANDBOX_STAMP): sandbox/requirements.txt sandbox/build.py
	test -x $(SANDBOX_VENV)/bin/python || $(SANDBOX_PYTHON) -m venv $(SANDBOX_VENV)
	$(SANDBOX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r sandbox/requirements.txt
	$(SANDBOX_VENV)/bin/python sandbox/build.py $(SANDBOX_VENV)
	touch $(SANDBOX_STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e clients/python -e '.[dev]'
	touch $(STAMP)

$(NPM_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(NPM_STAMP)

# `make run MODEL=fake`: the scripted model (`assistants-grpc fake-model`) beside the server,
# which calls it, so a first run streams on a machine with no model endpoint; it stops with the
# server. Without MODEL, runs call OPENAI_BASE_URL / OPENAI_API_KEY (README "Start").
MODEL ?=
FAKE_MODEL_PORT ?= 8089

run: $(STAMP) $(SANDBOX_STAMP)
ifeq ($(MODEL),fake)
	$(BIN)/assistants-grpc fake-model --port $(FAKE_MODEL_PORT) & fake=$$!; \
	trap 'kill $$fake 2>/dev/null' EXIT INT TERM; \
	OPENAI_BASE_URL=http://127.0.0.1:$(FAKE_MODEL_PORT)/v1 $(BIN)/assistants-grpc serve
else ifeq ($(MODEL),)
	$(BIN)/assistants-grpc serve
else
	$(error MODEL=$(MODEL): the only model make starts is MODEL=fake; for a real one set OPENAI_BASE_URL and OPENAI_API_KEY)
endif

# The sandbox is built for the tests too: in CI a missing sandbox is a failure, not a skip.
test: $(STAMP) $(SANDBOX_STAMP)
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

bench: $(STAMP) $(SANDBOX_STAMP)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .sandbox node_modules data .mypy_cache .ruff_cache .pytest_cache
