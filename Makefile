# Datamodule ETL — the two commands: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install install-browser demo test lint format ui schema bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## install-browser: Debian's chromium for the Playwright browser tests (never a browser download)
install-browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || \
	  echo "note: install Debian's chromium for the browser tests"; }

## demo: set up, run every example module end to end, say where to look
demo: install
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dmetl demo

## test: set up, lint, and run the test suite
test: install install-browser lint
	$(PY) -m pytest -q --durations=20

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## ui: `dmetl serve` in local single-user mode (http://127.0.0.1:3000, loopback only) + daemon
ui: install
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dmetl serve --host 127.0.0.1 --port 3000 -w workspace.yaml

## schema: regenerate docs/datamodule.schema.json from the pydantic model
schema: install
	$(PY) -m etl_assets.metadata.schema docs/datamodule.schema.json

bench: install
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf .dagster_home .pytest_cache .ruff_cache .hypothesis
