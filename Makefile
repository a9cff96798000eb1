# msm workbench: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= $(or $(MSM_DB),data/msm.duckdb)

.PHONY: run test venv demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make run: create the database with the demo data when missing, then show what is in it.
run: $(STAMP)
	@if [ ! -f "$(DB)" ]; then \
	  $(BIN)/msm --db "$(DB)" init && $(BIN)/msm --db "$(DB)" demo; \
	fi
	@$(BIN)/msm --db "$(DB)" targets show example-account-alpha
	@echo "Database: $(DB)   (try: $(BIN)/msm --db $(DB) --help)"

## make test: install everything the tests need and run every test.
test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_snapshots.py
	$(BIN)/python bench/bench_expansion.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
