# The README's two commands: `make run` and `make test`. Each does all of its own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install run test lint bench bench-peers bench-rest-peer clean docker-env browser-env services-env agent-image binary binary-smoke console console-check

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/loop-server serve $(ARGS)

# The Docker tests need an engine and the loop-test image: the script provides both where the
# machine allows it (root), and otherwise says why the Docker tests will be skipped.
docker-env:
	bash scripts/docker-env.sh

# The browser tests drive Debian's Chromium (installed by the script where root can; in CI a
# missing browser is a failure) through Playwright's bundled driver, never its downloads.
browser-env:
	bash scripts/browser-env.sh

# PostgreSQL and Redis for the scale-out tests (Debian's packages; the tests start private
# servers on loopback and stop them).
services-env:
	bash scripts/services-env.sh


# The agent image with the real Claude Code CLI (offline recipe: Debian packages + npm, no
# registry); the real-CLI tests (tests/agent_real) run in it. Rebuilt only when it changed.
agent-image: install docker-env
	bash scripts/agent-image.sh

test: install docker-env browser-env services-env agent-image
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory binary-smoke

# The web console: its built files are committed (loop_server/console_static/), so `make run`
# needs Python only. Rebuild them after changing console/src; the suite checks they match.
console:
	cd console && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

console-check:
	cd console && npm ci --no-audit --no-fund --loglevel=error && node build.mjs --check

lint: install
	$(BIN)/ruff check loop_server tests benchmarks
	$(BIN)/ruff format --check loop_server tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/history.py

# The Node peers of the events benchmarks. better-sqlite3 is compiled here (its prebuilt
# binaries come from GitHub): node-gyp uses the system's Node headers (Debian: /usr/include/node).
bench-peers: bench-rest-peer
	cd benchmarks/peers && npm_config_nodedir=/usr npm ci --no-audit --no-fund

# The persisting Node peer of benchmarks/rest.py (its own package: only better-sqlite3).
bench-rest-peer:
	cd benchmarks/peers/rest && npm_config_nodedir=/usr npm ci --no-audit --no-fund

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# The standalone executable (SPEC A.1): PyInstaller, pinned, installed into build/ only (not
# into the project's virtualenv), freezes the server with the dependencies of $(VENV).
# Rebuilt when the package, the spec or the dependencies change; a lock keeps two builds in
# one tree from writing build/ and dist/ at once.
PYINSTALLER := pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9
PYINSTALLER_DIR := build/pyinstaller-tool
PYINSTALLER_STAMP := $(PYINSTALLER_DIR)/.installed-stamp
BINARY := dist/loop-server
BINARY_SOURCES := $(shell find loop_server packaging -type f \( -name '*.py' -o -name '*.spec' \)) \
	README.md $(shell find loop_server/console_static -type f)

binary: $(BINARY)

$(PYINSTALLER_STAMP): Makefile
	rm -rf $(PYINSTALLER_DIR)
	$(BIN)/python -m pip install --quiet --no-compile --target $(PYINSTALLER_DIR) $(PYINSTALLER)
	touch $@

$(BINARY): $(STAMP) $(PYINSTALLER_STAMP) $(BINARY_SOURCES)
	mkdir -p build
	flock build/.binary.lock env PYTHONPATH=$(PYINSTALLER_DIR) $(BIN)/python -m PyInstaller \
		--noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/loop-server.spec
	touch $@

# Starts the executable outside the virtualenv and checks what a user would (health, README,
# events socket, SIGTERM → exit 0). `make test` runs it after the suite.
binary-smoke: binary
	LOOP_BINARY=$(abspath $(BINARY)) $(BIN)/python -m pytest -q tests/hardening/test_binary.py
