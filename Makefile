# Atelier's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEV_DB_URL ?= postgres://postgres@127.0.0.1:5432/atelier

.PHONY: run test setup lint typecheck pytest tiny-model system-packages format test-postgres clean

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
test: $(VENV)/.installed system-packages lint typecheck pytest

# Debian's chromium drives the browser tests; bubblewrap sandboxes users' Python graders.
system-packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "The tests need Debian's packages:$$missing (apt-get install$$missing)." >&2; exit 1; \
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
test-postgres: $(VENV)/.installed system-packages
	DATABASE_URL=$(DEV_DB_URL) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/test test-artifacts
