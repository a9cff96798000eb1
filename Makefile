# msm workbench: the two commands of the README are `make run` and `make test` (`make notebook` for JupyterLab).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= $(or $(MSM_DB),data/msm.duckdb)
PORT   ?= 8501
# make run listens on this machine only; `make run ADDRESS=0.0.0.0` opens it to the network on purpose (docs/deploy.md).
ADDRESS ?= 127.0.0.1
NOTEBOOK_PORT ?= 8888
# Test workers (pytest-xdist); each test module runs on one worker so its app server/Spark session is shared.
WORKERS ?= auto

.PHONY: run notebook test lint venv demo bench fuzz reliability screenshots system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## system-deps: Debian's chromium (browser tests drive it with Playwright) and a Java 17 runtime
## (Spark), installed with apt when missing. Playwright's own browser download is not used.
system-deps:
	@bash scripts/system-deps.sh

## make run: create the database with the demo data when missing, then serve the workbench on
## http://127.0.0.1:$(PORT) (this machine only; .streamlit/config.toml holds the other server settings).
run: $(STAMP)
	@if [ ! -f "$(DB)" ]; then \
	  $(BIN)/msm --db "$(DB)" demo; \
	fi
	@case "$(ADDRESS)" in 127.*|localhost|::1) ;; *) grep -qs '^\[auth' .streamlit/secrets.toml || \
	  echo "warning: serving on $(ADDRESS) without sign-in ([auth] in .streamlit/secrets.toml): see docs/deploy.md" >&2;; esac
	MSM_DB="$(DB)" $(BIN)/streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false

## make notebook: the same database as make run (the demo data when missing), then JupyterLab on 127.0.0.1 only,
## with its token, opening notebooks/ (the kernel runs there, so the paths it is given are absolute). Jupyter
## refuses to run as root unless told; as root (a container) it is told.
notebook: $(STAMP)
	@if [ ! -f "$(DB)" ]; then \
	  $(BIN)/msm --db "$(DB)" demo; \
	fi
	MSM_DB="$(abspath $(DB))" MSM_EXPORT_DIR="$(abspath exports)" $(BIN)/jupyter lab --no-browser \
	  --ServerApp.ip=127.0.0.1 --ServerApp.port=$(NOTEBOOK_PORT) --ServerApp.root_dir=notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

## make test: install everything the tests need, check formatting and lint (ruff), and run every test.
test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

## make lint: ruff's formatter and linter over the whole tree (pyproject.toml holds the rule set).
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

## fuzz: the property tests over hostile input with 1,000 examples per target (make test runs fewer).
fuzz: $(STAMP)
	MSM_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest -n $(WORKERS) -m fuzz -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/bench_snapshots.py
	$(BIN)/python bench/bench_expansion.py
	$(BIN)/python bench/bench_app.py
	$(BIN)/python bench/bench_bulk.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_drift.py
	$(BIN)/python bench/bench_rebalance.py
	$(BIN)/python bench/bench_spark.py
	$(BIN)/python bench/report.py

## reliability: the crash-safety and shared-file tests; their figures go to bench/results/*.json (docs/reliability.md).
reliability: $(STAMP)
	MSM_RELIABILITY_OUT=bench/results $(BIN)/python -m pytest -q tests/test_crash_safety.py tests/test_shared_file.py -p no:cacheprovider
	@cat bench/results/crash_safety.json bench/results/shared_file.json

## screenshots: renew docs/img/*.png from the browser test (the README and docs/app.md show them).
screenshots: $(STAMP) system-deps
	MSM_SCREENSHOTS=docs/img $(BIN)/python -m pytest -q tests/test_browser.py -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
