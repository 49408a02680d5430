# The two commands a newcomer needs: `make demo` and `make test` (README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
COMPAT := .compat/ppc-0.2.9 .compat/ppc-0.2.7

.PHONY: demo test lint install catalogs compat-clients browser fonts check

$(BIN)/carlink: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The portal's translations are compiled by the build (carlink.i18n); `make catalogs` brings new texts from
# the code into every language's catalogue, for the translators.
install: $(BIN)/carlink
	$(BIN)/python tools/catalogs.py compile

catalogs: install
	$(BIN)/python tools/catalogs.py update

demo: install
	$(BIN)/carlink demo

# The real community clients, side by side, for the compatibility tests (RMT-4).
compat-clients: $(COMPAT)
.compat/ppc-%: | install
	$(BIN)/pip install -q --no-deps --target $@ pyporscheconnectapi==$*

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never downloads one), and
# axe-core from npm, which the browser tests run on every page (package-lock.json pins it).
browser: node_modules/axe-core/axe.min.js
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# A Japanese font for the activation certificate's PDF in Japanese (without it, that PDF is in English).
fonts:
	@test -f /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-ipafont-gothic; }

node_modules/axe-core/axe.min.js: package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The tests spend much of their time waiting on brokers, databases and the browser: one worker per core
# (xdist) halves the run on two cores. Each worker has its own databases, brokers and topic prefixes.
# The slowest tests are listed at the end, so a test that eats the suite's 20-minute budget shows.
test: install compat-clients browser fonts
	$(BIN)/pytest -n auto --durations=30

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

check: lint test
