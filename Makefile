# Everything a fresh machine needs is installed here: a venv in .venv with the
# project and its dev tools. Run `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser demo serve test lint typecheck pytest bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: install
	$(BIN)/pledgeline demo

serve: install
	$(BIN)/pledgeline migrate
	$(BIN)/pledgeline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app bench tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install browser
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	$(BIN)/pledgeline bench routing --json

# Saves docs/screenshots/{agent,supervisor,organiser,board}-{1366,390}.png, in French
# (a demo server, Chromium).
screenshots: install browser
	$(BIN)/python -m bench.screenshots

# The softphone's SIP stack, app/web/static/vendor/jssip.min.js: JsSIP from npm bundled
# by esbuild (npm ships no browser bundle), built in a scratch folder (needs node, npm).
.PHONY: vendor-jssip
vendor-jssip:
	sh tools/build-jssip.sh

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
