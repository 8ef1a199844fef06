# Everything a fresh machine needs is installed here: a venv in .venv with the
# project and its dev tools. Run `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo serve test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/pledgeline demo

serve: install
	$(BIN)/pledgeline migrate
	$(BIN)/pledgeline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app bench tests

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	$(BIN)/pledgeline bench routing --json

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
