# papo — two commands: `make run` (the product) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install assets bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# htmx and Drawflow come from npm and are copied into editor/static/vendor (git-ignored).
assets: node_modules/.package-lock.json $(STAMP)
	$(BIN)/python -m editor.assets

run: install assets
	$(BIN)/papo demo

# The sample flows' own tests first, so that pytest's summary is the run's last line.
test: install assets
	$(BIN)/papo test sample_flows/*.json
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: install assets
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules editor/static/vendor .pytest_cache
