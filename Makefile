# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv in the repository root and installs what it needs when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.threedgl-installed
# The peers (MST, AIM: PyPI's dpmm, which needs Python 3.10/3.11) for benchmarks only,
# in their own venv.
PEERS_PYTHON ?= python3.11
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.peers-installed

.PHONY: demo test lint typecheck pytest reproduce benchmark flower-scale peers clean

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

# benchmarks/peers.py runs there; benchmarks/_peers.py (run_peer) calls it from .venv.
peers: $(PEERS_STAMP)

$(PEERS_STAMP): benchmarks/peers-requirements.txt
	@test -x $(PEERS_VENV)/bin/python || $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r benchmarks/peers-requirements.txt
	@touch $@

clean:
	rm -rf $(VENV) $(PEERS_VENV) runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
