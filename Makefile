# `make run` and `make test` create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run shell test lint typecheck pytest bench bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	@echo "Opsroom is installed in $(VENV): run its commands as $(BIN)/opsroom (e.g. $(BIN)/opsroom doctor), or '. $(BIN)/activate' first." >&2
	$(BIN)/opsroom run

shell: $(STAMP)
	@echo "Opsroom is installed in $(VENV): run its commands as $(BIN)/opsroom (e.g. $(BIN)/opsroom doctor), or '. $(BIN)/activate' first." >&2
	$(BIN)/opsroom shell

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench.timeline

# 100,000 incidents and 10M timeline entries on PostgreSQL ($OPSROOM_TEST_DATABASE_URL);
# seeding takes a while and is timed.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale --incidents 100000 --entries 10000000 --delivered 1000000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
