# Everything a fresh machine needs is installed here: a venv in .venv with the
# project and its dev tools. Run `make demo` or `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser asterisk telephony-packages demo demo-asterisk serve test lint typecheck pytest bench screenshots clean

# Asterisk for the telephony tests, built outside the repository from an offline
# source kit (docs/asterisk.md). The build script does nothing when the prefix
# already holds this build (a stamp file); without the kit the telephony tests skip
# (and fail under CI=true).
PLEDGELINE_ASTERISK_KIT ?= ../shared/telephony/asterisk
PLEDGELINE_ASTERISK ?= $(HOME)/.cache/pledgeline/asterisk
# SIPp places the test calls; prompts and music on hold come from Debian's packages.
TELEPHONY_PACKAGES := sip-tester asterisk-core-sounds-fr-wav asterisk-core-sounds-en-wav asterisk-moh-opsound-wav

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

telephony-packages:
	@missing=$$(for p in $(TELEPHONY_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the telephony tests:" $$missing; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

asterisk: telephony-packages
	@if [ -x "$(PLEDGELINE_ASTERISK_KIT)/build-asterisk.sh" ]; then \
		bash "$(PLEDGELINE_ASTERISK_KIT)/build-asterisk.sh" "$(PLEDGELINE_ASTERISK_KIT)" "$(PLEDGELINE_ASTERISK)"; \
	elif [ -x "$(PLEDGELINE_ASTERISK)/sbin/asterisk" ]; then \
		echo "Asterisk in $(PLEDGELINE_ASTERISK) (no kit at $(PLEDGELINE_ASTERISK_KIT))"; \
	else \
		echo "no Asterisk kit at $(PLEDGELINE_ASTERISK_KIT): the telephony tests will skip (fail with CI=true)"; fi

demo: install
	$(BIN)/pledgeline demo

# The demo with real calls: Asterisk (make asterisk) started from data/asterisk, the
# volunteer page's softphone on; docs/asterisk.md says how to call it.
demo-asterisk: install asterisk
	PLEDGELINE_ASTERISK=$(PLEDGELINE_ASTERISK) $(BIN)/pledgeline demo --asterisk

serve: install
	$(BIN)/pledgeline migrate
	$(BIN)/pledgeline serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app bench tests
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install browser asterisk
	PLEDGELINE_ASTERISK=$(PLEDGELINE_ASTERISK) $(BIN)/pytest -q

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
