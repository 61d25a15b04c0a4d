"""The paper's published 3DGL results (Tables IV and V, §IV-B).

Numbers are copied from the paper (Accuracy / F1 / AUC in %, averages over the 10
clients). Table IV: "Real" is 10-fold cross-validation of logistic regression on each
client's own data, "Fold-Fold" the pool's synthetic data selected and scored on it.
Table V: "Real" is logistic regression trained on each client's own data and scored on
the external test set; "Fold-Test" and "Test-Test" the pool's synthetic data with the
size selected on the client's data or on the test set, scored on the test set.
"""

from __future__ import annotations

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

#: Which of our simulation scenarios each paper column of Tables IV and V corresponds to.
TABLE_IV_COLUMNS: dict[str, str] = {"real": "local_cv", "fold_fold": "fold_fold"}
TABLE_V_COLUMNS: dict[str, str] = {
    "real": "local_test",
    "fold_test": "fold_test",
    "test_test": "test_test",
}
