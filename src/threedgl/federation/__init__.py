"""3DGL federation simulation (paper §III-D, §IV-B; SPEC §5).

* :mod:`~threedgl.federation.splits` — client folds: stratified, Dirichlet label skew,
  Dirichlet quantity skew (:func:`make_folds`, :func:`parse_split`);
* :mod:`~threedgl.federation.simulation` — :func:`simulate`, the one entry point: K clients
  train their own generators, publish them, pull the pool and run the scenarios, on the
  local engine or on Flower's;
* :mod:`~threedgl.federation.plan` — one seed's test split, folds and seeds;
* :mod:`~threedgl.federation.scenarios` — what each client evaluates (the paper's three
  scenarios plus more baselines);
* :mod:`~threedgl.federation.transport` — how artifacts reach the pool: in memory, checked
  in memory (the Flower ServerApp's), or a Global Server, behind one protocol;
* :mod:`~threedgl.federation.workers` — a client's two jobs (train, evaluate) and the
  local engine's process pool;
* :mod:`~threedgl.federation.report` — :class:`SimulationResult` reports and writes them;
* :mod:`~threedgl.federation.flower` — 3DGL as a Flower app (``pip install
  threedgl[flower]``; imported only when used);
* :mod:`~threedgl.federation.paper` — the paper's published Tables IV and V (ours beside
  them: :func:`threedgl.experiments.tables_iv_v`).
"""

from __future__ import annotations

from threedgl.federation.paper import TABLE_IV, TABLE_V
from threedgl.federation.report import Reference, SimulationResult
from threedgl.federation.scenarios import (
    BASELINE_OF,
    SCENARIO_TITLES,
    SCENARIOS,
    EvaluationOptions,
    evaluate_client,
    score_on_test,
    select_on_own_data,
)
from threedgl.federation.simulation import ENGINES, simulate
from threedgl.federation.splits import (
    SplitSpec,
    dirichlet_folds,
    make_folds,
    parse_split,
    quantity_folds,
    stratified_folds,
)
from threedgl.federation.transport import (
    CheckedPool,
    GlobalServerPool,
    InMemoryServer,
    PoolServer,
    Refused,
    Transport,
    check_artifact,
)
from threedgl.federation.workers import PresetFactory, derive_seed

__all__ = [
    "BASELINE_OF",
    "ENGINES",
    "SCENARIOS",
    "SCENARIO_TITLES",
    "TABLE_IV",
    "TABLE_V",
    "CheckedPool",
    "EvaluationOptions",
    "GlobalServerPool",
    "InMemoryServer",
    "PoolServer",
    "PresetFactory",
    "Reference",
    "Refused",
    "SimulationResult",
    "SplitSpec",
    "Transport",
    "check_artifact",
    "derive_seed",
    "dirichlet_folds",
    "evaluate_client",
    "make_folds",
    "parse_split",
    "quantity_folds",
    "score_on_test",
    "select_on_own_data",
    "simulate",
    "stratified_folds",
]
