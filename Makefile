# The README's two commands: `make run` and `make test`. Each does all of its own set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install run test lint bench clean docker-env

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

test: install docker-env
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint

lint: install
	$(BIN)/ruff check loop_server tests benchmarks
	$(BIN)/ruff format --check loop_server tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/history.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
