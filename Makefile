# Atelier's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEV_DB_URL ?= postgres://postgres@127.0.0.1:5432/atelier

.PHONY: run test setup lint typecheck pytest tiny-model chromium format test-postgres compose-config clean

## run: set everything up and start Atelier with its embedded services on http://127.0.0.1:8000
run: setup
	$(PY) -m apps.launcher start

## setup: virtualenv, dependencies, database, first admin, built-in model (each skipped when done)
setup: $(VENV)/.installed
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py ensure_admin
	@$(MAKE) --no-print-directory tiny-model

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

## tiny-model: build the built-in tiny model into the data folder once (about 40 s on 2 cores)
tiny-model: $(VENV)/.installed
	$(PY) -m workers.training build-tiny

## test: set up what the tests need and run the whole suite (lint, types, unit, integration, browser)
test: $(VENV)/.installed chromium lint typecheck pytest

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at /usr/bin/chromium: install Debian's 'chromium' package." >&2; exit 1; \
	  fi; \
	fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## test-postgres: the same suite against the PostgreSQL at DEV_DB_URL
test-postgres: $(VENV)/.installed chromium
	DATABASE_URL=$(DEV_DB_URL) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/test test-artifacts
