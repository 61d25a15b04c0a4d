"""The paper's 3DGL results (Tables IV and V, §IV-B) and our results laid out beside them.

Numbers are copied from the paper (Accuracy / F1 / AUC in %, averages over the 10
clients). Table IV: "Real" is 10-fold cross-validation of logistic regression on each
client's own data, "Fold-Fold" the pool's synthetic data selected and scored on it.
Table V: "Real" is logistic regression trained on each client's own data and scored on
the external test set; "Fold-Test" and "Test-Test" the pool's synthetic data with the
size selected on the client's data or on the test set, scored on the test set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from threedgl.federation.simulation import SimulationResult

METRICS: tuple[str, ...] = ("accuracy", "f1", "auc")
METRIC_TITLES: dict[str, str] = {"accuracy": "Accuracy", "f1": "F1", "auc": "AUC"}

#: Table IV: dataset → column → (Accuracy, F1, AUC) in %.
TABLE_IV: dict[str, dict[str, tuple[float, float, float]]] = {
    "titanic": {"real": (77.28, 35.34, 76.42), "fold_fold": (77.13, 62.50, 79.21)},
    "breast-cancer": {"real": (93.20, 95.29, 98.51), "fold_fold": (97.52, 98.06, 98.59)},
    "mushrooms": {"real": (93.86, 93.48, 96.62), "fold_fold": (94.11, 93.87, 96.42)},
    "adult": {"real": (81.03, 51.74, 83.80), "fold_fold": (79.61, 52.65, 80.52)},
    "wine-quality": {"real": (96.39, 92.25, 99.47), "fold_fold": (98.68, 97.45, 99.48)},
}
#: Table IV's last row: mean of (Fold-Fold − Real) over the datasets.
TABLE_IV_MEAN_GAIN: dict[str, tuple[float, float, float]] = {"fold_fold": (1.06, 7.29, -0.12)}

#: Table V: dataset → column → (Accuracy, F1, AUC) in %.
TABLE_V: dict[str, dict[str, tuple[float, float, float]]] = {
    "titanic": {
        "real": (73.28, 39.88, 78.25),
        "fold_test": (74.81, 64.71, 79.01),
        "test_test": (76.34, 67.37, 79.98),
    },
    "breast-cancer": {
        "real": (93.84, 95.33, 99.65),
        "fold_test": (97.54, 97.98, 98.79),
        "test_test": (96.51, 97.30, 99.13),
    },
    "mushrooms": {
        "real": (93.85, 93.40, 96.89),
        "fold_test": (94.20, 93.93, 96.50),
        "test_test": (94.10, 93.72, 97.12),
    },
    "adult": {
        "real": (81.18, 51.87, 84.52),
        "fold_test": (79.55, 52.27, 80.89),
        "test_test": (80.99, 54.48, 82.39),
    },
    "wine-quality": {
        "real": (95.67, 90.29, 98.64),
        "fold_test": (97.99, 95.88, 98.48),
        "test_test": (98.12, 96.15, 98.51),
    },
}
#: Table V's last row: mean of (Fold-Test − Real) and (Test-Test − Real) over the datasets.
TABLE_V_MEAN_GAIN: dict[str, tuple[float, float, float]] = {
    "fold_test": (1.26, 6.80, -0.86),
    "test_test": (1.65, 7.65, -0.16),
}

#: Which of our scenarios each paper column corresponds to.
TABLE_IV_COLUMNS: dict[str, str] = {"real": "local_cv", "fold_fold": "fold_fold"}
TABLE_V_COLUMNS: dict[str, str] = {
    "real": "local_test",
    "fold_test": "fold_test",
    "test_test": "test_test",
}
COLUMN_TITLES: dict[str, str] = {
    "real": "Real",
    "fold_fold": "Synth(Fold-Fold)",
    "fold_test": "Synth(Fold-Test)",
    "test_test": "Synth(Test-Test)",
}


def _table(
    results_by_dataset: Mapping[str, SimulationResult],
    paper: Mapping[str, Mapping[str, tuple[float, float, float]]],
    columns: Mapping[str, str],
) -> pd.DataFrame:
    names = list(dict.fromkeys([*paper, *results_by_dataset]))
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"dataset": name}
        ours = results_by_dataset[name].summary() if name in results_by_dataset else None
        for m_i, metric in enumerate(METRICS):
            for col, scenario in columns.items():
                title = f"{METRIC_TITLES[metric]} {COLUMN_TITLES[col]}"
                ref = paper.get(name, {}).get(col)
                row[f"{title} paper"] = ref[m_i] if ref is not None else float("nan")
                row[f"{title} ours"] = (
                    _f(ours.loc[scenario, metric]) if ours is not None else float("nan")
                )
        rows.append(row)
    table = pd.DataFrame(rows)
    # The paper's last row: mean gain of each synthetic column over Real.
    gain: dict[str, Any] = {"dataset": "mean gain vs Real"}
    for metric in METRICS:
        for col in columns:
            title = f"{METRIC_TITLES[metric]} {COLUMN_TITLES[col]}"
            for who in ("paper", "ours"):
                if col == "real":
                    gain[f"{title} {who}"] = float("nan")
                    continue
                real = table[f"{METRIC_TITLES[metric]} {COLUMN_TITLES['real']} {who}"]
                gain[f"{title} {who}"] = float((table[f"{title} {who}"] - real).mean())
    return pd.concat([table, pd.DataFrame([gain])], ignore_index=True)


def _f(value: Any) -> float:
    return float(value)


def tables_iv_v(
    results_by_dataset: Mapping[str, SimulationResult],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables IV and V: for every dataset (the paper's five, then any other we ran) and
    every metric and column, the paper's number beside ours (``"<Metric> <Column> paper"``
    and ``"... ours"``, in %; NaN where one side has no number). The last row holds the
    mean gain over Real (over the datasets that have numbers), like the paper's last row.
    """
    return (
        _table(results_by_dataset, TABLE_IV, TABLE_IV_COLUMNS),
        _table(results_by_dataset, TABLE_V, TABLE_V_COLUMNS),
    )
