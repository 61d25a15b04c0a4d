"""Utility of a (synthetic) training table: train a classifier on it, score it on real data.

Models (SPEC §4): ``"logreg"`` is scikit-learn's default logistic regression
(``LogisticRegression(max_iter=1000)``: C = 1, L2), solved by Newton's method
(``solver="newton-cholesky"``) for two classes and at most :data:`NEWTON_MAX_COEFFICIENTS`
features (every table of the paper's label encoding), by L-BFGS otherwise:
the same problem, solved in about 5 iterations instead of 40, 2 to 3 times faster at the
sizes of a size sweep; predictions agree with L-BFGS's on 99.8 % or more of the test rows
(Adult, Mushrooms, Wine, Titanic, Breast Cancer, 300 to 30,000 rows; L-BFGS stops at its
tolerance a little before the optimum). ``"hgb"`` is a histogram gradient-boosting model
(``HistGradientBoostingClassifier(random_state=...)``); any unfitted scikit-learn
classifier may be passed instead (it is cloned, never modified).

Scores, all fractions in ``[0, 1]``:

* ``accuracy``;
* ``f1`` — F1 of the *positive* class (one-vs-rest when there are more than two classes);
* ``auc`` — ROC-AUC of the positive class's score for two classes; for more, the
  one-vs-rest macro average over the classes present in the test table;
* the majority baseline beside them: the majority class of the *training* table predicted
  for every test row (``majority_accuracy``, ``majority_f1``; its AUC is 0.5).

The positive label defaults to the minority class of the training table passed (ties go
to the later label in schema order); pass it explicitly (e.g. the minority class of the
*real* training table) when training on synthetic data.

A training table holding one class only does not crash: the "model" predicts that class
for every row with a constant score, so AUC is 0.5 and F1 is whatever that constant
prediction gives (0 unless the one class is the positive one). AUC is NaN when the test
table itself holds a single class (it is undefined then).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from threedgl.errors import ThreedglError
from threedgl.evaluation.encoding import EncodingMode, EvaluationEncoder, check_mode
from threedgl.schema import CategoricalColumn, Schema

MODEL_NAMES: tuple[str, ...] = ("logreg", "hgb")
#: Up to this many features (two classes) ``"logreg"`` uses Newton's method, whose cost
#: grows with their square (its Hessian); L-BFGS beyond.
NEWTON_MAX_COEFFICIENTS = 64
#: The utility scores every table reports, in order.
METRICS: tuple[str, ...] = ("accuracy", "f1", "auc")


def make_classifier(model: Any = "logreg", *, random_state: int | None = 0,
                    n_features: int | None = None, n_classes: int = 2) -> Any:
    """A fresh, unfitted classifier: ``"logreg"``, ``"hgb"`` or a clone of an estimator.

    ``n_features`` and ``n_classes`` (of the table it will fit) choose the logistic
    regression's solver (see the module docstring); unknown, L-BFGS."""
    if isinstance(model, str):
        if model == "logreg":
            # two classes only: scikit-learn before 1.6 fits one-vs-rest models with Newton's
            # method for more, a different model from the multinomial L-BFGS one
            newton = (n_features is not None and n_classes == 2
                      and n_features <= NEWTON_MAX_COEFFICIENTS)
            return LogisticRegression(max_iter=1000,
                                      solver="newton-cholesky" if newton else "lbfgs")
        if model == "hgb":
            return HistGradientBoostingClassifier(random_state=random_state)
        raise ThreedglError(
            f"The 'model' parameter must be one of {list(MODEL_NAMES)!r} or a scikit-learn "
            f"classifier. Got {model!r} instead."
        )
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise ThreedglError(
            f"The 'model' parameter must be one of {list(MODEL_NAMES)!r} or a scikit-learn "
            f"classifier (with fit and predict). Got {type(model).__name__} instead."
        )
    return clone(model)


def model_name(model: Any) -> str:
    return model if isinstance(model, str) else type(model).__name__


def _target_column(schema: Schema) -> CategoricalColumn:
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    if schema.target is None:
        raise ThreedglError("utility scores need a schema with a class column (target)")
    col = schema[schema.target]
    assert isinstance(col, CategoricalColumn)
    if len(col.categories) < 2:
        raise ThreedglError(
            f"class column '{col.name}' needs at least 2 labels, has {list(col.categories)!r}"
        )
    return col


def positive_index(schema: Schema, positive_label: Any, y_reference: np.ndarray | None) -> int:
    """Index in ``schema.labels`` of the positive label.

    ``positive_label=None`` → the minority class of ``y_reference`` (class codes) among the
    labels it holds, ties to the later label.
    """
    labels = list(schema.labels)
    if positive_label is None:
        if y_reference is None or len(y_reference) == 0:
            raise ThreedglError("positive_label=None needs a table to find the minority class")
        counts = np.bincount(np.asarray(y_reference, dtype=np.int64), minlength=len(labels))
        present = np.flatnonzero(counts > 0)
        best = present[counts[present] == counts[present].min()]
        return int(best[-1])
    for i, lab in enumerate(labels):
        if lab == positive_label and type(lab) is type(positive_label):
            return i
    keys = [str(lab) for lab in labels]
    if str(positive_label) in keys:
        return keys.index(str(positive_label))
    raise ThreedglError(
        f"The 'positive_label' parameter must be one of the class labels {labels!r}. "
        f"Got {positive_label!r} instead."
    )


def minority_label(df: pd.DataFrame, schema: Schema) -> Any:
    """The minority class label of a table (ties to the later label in schema order)."""
    _target_column(schema)
    _, y = EvaluationEncoder(schema).transform(df)
    return schema.labels[positive_index(schema, None, y)]


def class_scores(fitted: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """A score matrix ``(n, n_classes)`` (probabilities when available) with a column per
    schema label; labels the model never saw get a constant 0 score."""
    out = np.zeros((X.shape[0], n_classes), dtype=np.float64)
    classes = np.asarray(fitted.classes_, dtype=np.int64)
    if hasattr(fitted, "predict_proba"):
        out[:, classes] = fitted.predict_proba(X)
        return out
    dec = np.asarray(fitted.decision_function(X), dtype=np.float64)
    if dec.ndim == 1:
        out[:, classes[1]] = dec
        out[:, classes[0]] = -dec
    else:
        out[:, classes] = dec
    return out


def binary_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve of ``score`` for the boolean labels ``truth`` (both
    classes present), as the Mann-Whitney statistic: the chance that a random positive
    scores above a random negative, ties counting one half. This is the trapezoidal ROC
    area (scikit-learn's ``roc_auc_score``) exactly, at a fiftieth of its cost on the
    evaluation's small tables (no input validation: 5 ms a call in the simulation)."""
    from scipy.stats import rankdata

    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    if not np.isfinite(score).all():
        raise ThreedglError("AUC: the scores hold NaN or infinite values")
    n_pos = int(truth.sum())
    n_neg = len(truth) - n_pos
    ranks = rankdata(score)  # ties get their average rank
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _auc(y_true: np.ndarray, scores: np.ndarray, pos: int) -> float:
    k = scores.shape[1]
    if k == 2:
        truth = y_true == pos
        if truth.all() or not truth.any():
            return float("nan")
        return binary_auc(truth, scores[:, pos])
    aucs = []
    for c in range(k):
        truth = y_true == c
        if truth.any() and not truth.all():
            aucs.append(binary_auc(truth, scores[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _f1(y_true: np.ndarray, y_pred: np.ndarray, pos: int) -> float:
    tp = int(np.sum((y_pred == pos) & (y_true == pos)))
    fp = int(np.sum((y_pred == pos) & (y_true != pos)))
    fn = int(np.sum((y_pred != pos) & (y_true == pos)))
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def score_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, pos: int
) -> dict[str, float]:
    """``accuracy``, ``f1`` (of class ``pos``) and ``auc`` from predictions and scores."""
    y_true = np.asarray(y_true)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "f1": float(_f1(y_true, y_pred, pos)),
        "auc": _auc(y_true, scores, pos),
    }


def fit_and_score(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_classes: int,
    pos: int,
    model: Any = "logreg",
    random_state: int | None = 0,
) -> dict[str, float]:
    """Fit a classifier on encoded data and score it; a one-class training set gives a
    constant prediction (never an error)."""
    return fit_and_score_many(X_train, y_train, [(X_test, y_test)], n_classes=n_classes,
                              pos=pos, model=model, random_state=random_state)[0]


def fit_and_score_many(
    X_train: np.ndarray,
    y_train: np.ndarray,
    tests: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_classes: int,
    pos: int,
    model: Any = "logreg",
    random_state: int | None = 0,
) -> list[dict[str, float]]:
    """:func:`fit_and_score` with one fit scored on several ``(X, y)`` tables."""
    present = np.unique(y_train)
    clf = None
    if len(present) >= 2:
        clf = make_classifier(model, random_state=random_state, n_features=X_train.shape[1],
                              n_classes=len(present))
        clf.fit(X_train, y_train)
    out = []
    for X_test, y_test in tests:
        if clf is None:
            y_pred = np.full(len(y_test), int(present[0]), dtype=np.int64)
            scores = np.zeros((len(y_test), n_classes))
            scores[:, int(present[0])] = 1.0
        else:
            y_pred = np.asarray(clf.predict(X_test), dtype=np.int64)
            scores = class_scores(clf, X_test, n_classes)
        out.append(score_predictions(y_test, y_pred, scores, pos))
    return out


def utility_scores(
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    schema: Schema,
    *,
    model: Any = "logreg",
    positive_label: Any = None,
    encoding: EncodingMode = "label",
    random_state: int | None = 0,
) -> dict[str, Any]:
    """Train ``model`` on ``train_df``, score it on ``test_df`` (see the module docstring).

    Returns a JSON-able dict: ``accuracy``, ``f1``, ``auc``, ``majority_accuracy``,
    ``majority_f1``, ``majority_auc`` (0.5), ``positive_label``, ``model``, ``n_train``,
    ``n_test``.
    """
    tcol = _target_column(schema)
    enc = EvaluationEncoder(schema, check_mode(encoding))
    X_train, y_train = enc.transform(_with_target(train_df, tcol.name, "train_df"))
    X_test, y_test = enc.transform(_with_target(test_df, tcol.name, "test_df"))
    assert y_train is not None and y_test is not None
    k = len(tcol.categories)
    pos = positive_index(schema, positive_label, y_train)
    out: dict[str, Any] = fit_and_score(
        X_train,
        y_train,
        X_test,
        y_test,
        n_classes=k,
        pos=pos,
        model=model,
        random_state=random_state,
    )
    majority = int(np.argmax(np.bincount(y_train, minlength=k)))
    y_major = np.full(len(y_test), majority, dtype=np.int64)
    out["majority_accuracy"] = float(np.mean(y_major == y_test))
    out["majority_f1"] = float(_f1(y_test, y_major, pos))
    out["majority_auc"] = 0.5
    out["positive_label"] = schema.labels[pos]
    out["model"] = model_name(model)
    out["n_train"] = len(X_train)
    out["n_test"] = len(X_test)
    return out


def _with_target(df: pd.DataFrame, target: str, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ThreedglError(f"'{what}' must be a pandas DataFrame, got {type(df).__name__}")
    if target not in df.columns:
        raise ThreedglError(f"'{what}' has no class column '{target}'")
    return df
