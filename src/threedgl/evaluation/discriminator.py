"""The adversarial check (paper §III-B, after Xu et al.): can a classifier tell real rows
from synthetic ones?

Equal numbers of real and synthetic rows (the larger table is subsampled, without
replacement, with ``random_state``), labelled **real = 0, synthetic = 1**, encoded with
the evaluation encoding *including the class column as a feature*, scored by stratified
``folds``-fold cross-validation. Scores are means over the folds: accuracy, F1 of the
*synthetic* class, ROC-AUC of the synthetic-class probability. An AUC of 0.5 means the
model cannot tell the two apart; 1.0 means it always can.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from threedgl.errors import ThreedglError, check_int
from threedgl.evaluation.encoding import EncodingMode, EvaluationEncoder, check_mode
from threedgl.evaluation.utility import fit_and_score, model_name
from threedgl.schema import Schema

REAL, SYNTHETIC = 0, 1


def discriminator_scores(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    *,
    model: Any = "logreg",
    folds: int = 10,
    random_state: int | None = 0,
    encoding: EncodingMode = "label",
) -> dict[str, Any]:
    """Real-vs-synthetic discriminator scores (see the module docstring).

    Returns a JSON-able dict: ``accuracy``, ``f1``, ``auc`` (means over folds),
    ``accuracy_std``, ``f1_std``, ``auc_std``, ``n_per_source`` (rows used from each
    table), ``folds`` and ``model``.
    """
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    check_int("folds", folds, low=2)
    enc = EvaluationEncoder(schema, check_mode(encoding), include_target=schema.target is not None)
    X_real, _ = enc.transform(real_df)
    X_syn, _ = enc.transform(synthetic_df)
    n = min(len(X_real), len(X_syn))
    if n < folds:
        raise ThreedglError(
            f"The 'folds' parameter must be at most the number of rows per source ({n}). "
            f"Got {folds!r} instead."
        )
    rng = np.random.default_rng(random_state)
    if len(X_real) > n:
        X_real = X_real[np.sort(rng.choice(len(X_real), n, replace=False))]
    if len(X_syn) > n:
        X_syn = X_syn[np.sort(rng.choice(len(X_syn), n, replace=False))]
    X = np.vstack([X_real, X_syn])
    y = np.concatenate([np.full(n, REAL), np.full(n, SYNTHETIC)]).astype(np.int64)
    seed = None if random_state is None else int(random_state)
    cv = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    per_fold: list[dict[str, float]] = []
    for train_idx, test_idx in cv.split(X, y):
        per_fold.append(
            fit_and_score(
                X[train_idx],
                y[train_idx],
                X[test_idx],
                y[test_idx],
                n_classes=2,
                pos=SYNTHETIC,
                model=model,
                random_state=random_state,
            )
        )
    out: dict[str, Any] = {}
    for key in ("accuracy", "f1", "auc"):
        values = np.array([f[key] for f in per_fold], dtype=np.float64)
        out[key] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values))
    out["n_per_source"] = int(n)
    out["folds"] = int(folds)
    out["model"] = model_name(model)
    return out
