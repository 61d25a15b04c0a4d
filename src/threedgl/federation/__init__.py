"""3DGL federation simulation (paper §III-D, §IV-B; SPEC §5).

* :mod:`~threedgl.federation.splits` — client folds: stratified, Dirichlet label skew,
  Dirichlet quantity skew (:func:`make_folds`, :func:`parse_split`);
* :mod:`~threedgl.federation.simulation` — :func:`simulate`: K clients train their own
  generators in parallel, publish them, pull the pool and run the paper's three scenarios
  plus more baselines; :class:`SimulationResult` reports and writes them;
* :mod:`~threedgl.federation.paper` — the paper's published Tables IV and V (ours beside
  them: :func:`threedgl.experiments.tables_iv_v`).
"""

from __future__ import annotations

from threedgl.federation.paper import TABLE_IV, TABLE_V
from threedgl.federation.simulation import (
    BASELINE_OF,
    SCENARIO_TITLES,
    SCENARIOS,
    EvaluationOptions,
    GlobalServerPool,
    InMemoryServer,
    PoolServer,
    PresetFactory,
    SimulationResult,
    derive_seed,
    evaluate_client,
    score_on_test,
    select_on_own_data,
    simulate,
)
from threedgl.federation.splits import (
    SplitSpec,
    dirichlet_folds,
    make_folds,
    parse_split,
    quantity_folds,
    stratified_folds,
)

__all__ = [
    "BASELINE_OF",
    "SCENARIOS",
    "SCENARIO_TITLES",
    "TABLE_IV",
    "TABLE_V",
    "EvaluationOptions",
    "GlobalServerPool",
    "InMemoryServer",
    "PoolServer",
    "PresetFactory",
    "SimulationResult",
    "SplitSpec",
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
