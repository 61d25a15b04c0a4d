"""The paper's experiments on the bundled datasets (what ``3dgl reproduce`` runs).

* :mod:`~threedgl.experiments.reproduce` — Tables II and III:
  :func:`threedgl.experiments.reproduce.reproduce` (the module keeps its name, so the
  function is not re-exported here);
* :mod:`~threedgl.experiments.runs` — Tables IV and V (the 3DGL simulation, both modes)
  and the privacy table over several datasets;
* :mod:`~threedgl.experiments.privacy` — :func:`privacy_table` (membership inference);
* :mod:`~threedgl.experiments.tables` — the tables, ours beside the paper's;
* :mod:`~threedgl.experiments.paper` — the paper's published numbers;
* :mod:`~threedgl.experiments.report` — ``report.html`` and the other output files.

This is the top library layer: it uses ``evaluation``, ``model``, ``federation`` and
``datasets``; nothing below imports it.
"""

from __future__ import annotations

from threedgl.experiments.privacy import PRIVACY_TABLE_COLUMNS, privacy_table
from threedgl.experiments.reproduce import (
    GENERATORS,
    ReproduceConfig,
    ReproduceResult,
    run_dataset,
    split,
)
from threedgl.experiments.tables import summary_tables, table_ii, table_iii, tables_iv_v

__all__ = [
    "GENERATORS",
    "PRIVACY_TABLE_COLUMNS",
    "ReproduceConfig",
    "ReproduceResult",
    "privacy_table",
    "run_dataset",
    "split",
    "summary_tables",
    "table_ii",
    "table_iii",
    "tables_iv_v",
]
