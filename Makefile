# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench screenshots clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## run: the dashboard on the embedded SQLite default, with simulated agents working live (Ctrl-C stops)
run: $(STAMP)
	$(BIN)/telemetry dashboard --demo

## test: lint, type-check and the whole suite
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

## screenshots: re-take docs/screenshots/ from the dashboard's browser tests (needs /usr/bin/chromium)
screenshots: $(STAMP)
	VIBEKIT_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/dashboard/test_dashboard_browser.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean-venv:
	rm -rf $(VENV)
