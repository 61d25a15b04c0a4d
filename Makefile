# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv in the repository root and installs what it needs when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.threedgl-installed

.PHONY: demo test lint typecheck pytest reproduce benchmark flower-scale clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,flower]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/3dgl reproduce --quick --out runs/quick

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

reproduce: $(STAMP)
	$(BIN)/3dgl reproduce --seeds 5 --out runs/full

benchmark: $(STAMP)
	$(BIN)/python benchmarks/dp_training.py

flower-scale: $(STAMP)
	nice -n 10 $(BIN)/python benchmarks/flower_scale.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
