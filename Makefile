# callcore — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := web/static/vendor
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install assets messages system-deps lint format test demo dist clean

help:
	@echo "make demo    set up everything and run callcore with demo data on http://127.0.0.1:8080/"
	@echo "make test    set up everything and run ruff and the whole test suite"
	@echo "make dist    build the wheel (front-end assets included) into dist/"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "callcore needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml examples/callcore-example-plugin/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' -e examples/callcore-example-plugin
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

assets: node_modules/.package-lock.json
	mkdir -p $(VENDOR)
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/pico.min.css
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/drawflow/dist/drawflow.min.js $(VENDOR)/drawflow.min.js
	cp node_modules/drawflow/dist/drawflow.min.css $(VENDOR)/drawflow.min.css

# The UI's strings: extract them (babel.cfg) and merge them into web/locale/{fr,en}; then
# translate the new entries in both messages.po files (a test fails while one is untranslated).
messages: install
	mkdir -p build
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ --project=callcore --version=$$($(BIN)/python -c 'import callcore; print(callcore.__version__)') --copyright-holder="callcore contributors" --no-location --sort-output -o build/messages.pot web
	$(BIN)/pybabel -q update -i build/messages.pot -d web/locale -D messages --ignore-obsolete --no-fuzzy-matching

# Debian packages the tests need (chromium for the browser tests, SoX to convert uploaded
# prompts); installed only when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
	@command -v sox >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		sox libsox-fmt-mp3; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install assets system-deps lint
	$(BIN)/pytest

demo: install assets
	$(BIN)/callcore demo

dist: install assets
	rm -rf dist
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf dist build *.egg-info $(VENDOR) node_modules .pytest_cache .ruff_cache
