# Datamodule ETL — the two commands: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test lint format ui schema bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## demo: set up, run every example module end to end, say where to look
demo: install
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dmetl demo

## test: set up, lint, and run the test suite
test: install lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## ui: the Dagster UI on this workspace (http://127.0.0.1:3000)
ui: install
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/dagster dev -w workspace.yaml

## schema: regenerate docs/datamodule.schema.json from the pydantic model
schema: install
	$(PY) -m etl_assets.metadata.schema docs/datamodule.schema.json

bench: install
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf .dagster_home .pytest_cache .ruff_cache .hypothesis
