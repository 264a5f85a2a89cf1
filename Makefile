# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster

BENCH_MEMBERS ?= 1000000
BENCH_ARGS ?=    # e.g. --outbound-repeats 1, --skip-outbound, --formats parquet (python -m loyalty_pipeline.devtools.bench --help)
PLATFORM ?=  # a simulated platform: loyalty-devtools demo --help (default: program.yaml source.platform)
PULL ?=      # 1: pull each day from a local platform API stand-in instead of dropping files (PLATFORM=loyaltylion)

.PHONY: install demo test check dev bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: install  ## two weeks of sample exports, processed day by day on the embedded defaults
	$(BIN)/loyalty-devtools demo $(if $(PLATFORM),--platform $(PLATFORM)) $(if $(PULL),--pull)

test: install  ## the whole suite, from scratch: both layers (docs/testing.md)
	$(BIN)/python -m pytest

check: install  ## the fast layer, while you work, on both cores: no real processes, no long scenarios
	$(BIN)/python -m pytest -m "not real" -n 2

dev: install  ## the Dagster UI (runs made by `make demo` included), delivering to a local ShopiMind emulator
	$(BIN)/python -c "from loyalty_pipeline.operations.instance import dagster_home; dagster_home()"
	$(BIN)/python -m loyalty_pipeline.devtools.emulator.local $(BIN)/dagster dev -w workspace.yaml  # unless SHOPIMIND_* are set

bench: install  ## speed and memory against the machine's limits (not part of `make test`)
	$(BIN)/python -m loyalty_pipeline.devtools.bench --members $(BENCH_MEMBERS) $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf data/exports data/warehouse data/outbound .dagster
