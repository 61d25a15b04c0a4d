"""Evaluation of generators and synthetic tables (SPEC §4, paper §III-B and §IV-A).

* :class:`EvaluationEncoder` — the paper's evaluation encoding, from the schema alone;
* :func:`utility_scores` — train on one table, score on another (accuracy, F1, AUC);
* :func:`size_sweep` — the synthetic-size sweep;
* :func:`discriminator_scores` — real-vs-synthetic classifier (10-fold CV);
* :func:`feature_kld`, :func:`mean_kld`, :func:`tld` — KLD per feature and the TLD;
* :func:`pairwise_association`, :func:`pairwise_fidelity` — pairwise fidelity;
* :func:`kway_tvd`, :func:`marginal_tvds` — the k-way marginal error (mean total variation
  distance over the 1-, 2- and 3-way marginals), the DP-synthesis field's fidelity measure;
* :func:`evaluate_generator_table` — all of the above for one synthetic table;
* :func:`plot_sweep`, :func:`plot_marginals` — PNG plots;
* :func:`run_attacks` and the attacks it runs — membership inference on a generator.

A library of metrics: it reads tables and a schema, never a bundled dataset or a model
class (the experiments that use it live in :mod:`threedgl.experiments`). All scores are
fractions in ``[0, 1]`` (not the paper's percentages).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from threedgl.evaluation.attacks import (
    AttackResult,
    dcr_attack,
    domias_attack,
    logan_attack,
    run_attacks,
)
from threedgl.evaluation.discriminator import discriminator_scores
from threedgl.evaluation.divergence import feature_kld, mean_kld, tld
from threedgl.evaluation.encoding import EvaluationEncoder
from threedgl.evaluation.fidelity import (
    pairwise_association,
    pairwise_difference,
    pairwise_fidelity,
)
from threedgl.evaluation.marginals import TVD_KEYS, kway_tvd, marginal_tvds
from threedgl.evaluation.sweep import SweepResult, interleave_classes, size_sweep
from threedgl.evaluation.utility import MODEL_NAMES, _target_column, minority_label, utility_scores
from threedgl.schema import Schema

__all__ = [
    "AttackResult",
    "EvaluationEncoder",
    "SweepResult",
    "dcr_attack",
    "discriminator_scores",
    "domias_attack",
    "evaluate_generator_table",
    "feature_kld",
    "interleave_classes",
    "kway_tvd",
    "logan_attack",
    "marginal_tvds",
    "mean_kld",
    "minority_label",
    "pairwise_association",
    "pairwise_difference",
    "pairwise_fidelity",
    "plot_marginals",
    "plot_sweep",
    "run_attacks",
    "size_sweep",
    "tld",
    "utility_scores",
]

MODELS = MODEL_NAMES


def evaluate_generator_table(
    real_train: pd.DataFrame,
    real_test: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    positive_label: Any = None,
    random_state: int | None = 0,
    folds: int = 10,
    bins: int = 20,
    smoothing: float = 1.0,
) -> dict[str, Any]:
    """Every metric for one synthetic table, as a JSON-able dict.

    * ``utility[model]`` (``"logreg"``, ``"hgb"``): :func:`utility_scores` of the model
      trained on ``synthetic`` and scored on ``real_test``; ``accuracy``, ``f1``, ``auc``
      at the top level are the logistic regression's;
    * ``majority_accuracy``: the majority class of ``real_train`` predicted for every row of
      ``real_test`` (the per-model dicts also carry the synthetic table's majority baseline);
    * ``discriminator[model]``: :func:`discriminator_scores` of ``real_train`` vs
      ``synthetic``;
    * ``kld`` (mean) and ``kld_per_feature``: :func:`feature_kld` of ``real_train`` ‖
      ``synthetic``;
    * ``tld``: :func:`tld` from the mean KLD and the logistic-regression discriminator;
    * ``pairwise_fidelity``: :func:`pairwise_fidelity` of ``real_train`` vs ``synthetic``;
    * ``tvd_1way``, ``tvd_2way``, ``tvd_3way``: :func:`kway_tvd` of ``real_train`` vs
      ``synthetic``, the mean total variation distance over every 1-, 2- and 3-way
      marginal (every column, the class included, in the public bins of
      :mod:`~threedgl.evaluation.marginals`: 16 per numeric column, whatever ``bins``), in
      ``[0, 1]``, lower is better; ``None`` for a k above the number of columns;
    * ``tvd_floor``: the same three keys for ``real_test`` vs ``real_train``, the sampling
      floor (two real samples; the smaller the test split, the higher it is).

    ``positive_label`` defaults to the minority class of ``real_train``.
    """
    _target_column(schema)
    if positive_label is None:
        positive_label = minority_label(real_train, schema)
    utility = {
        m: utility_scores(
            synthetic,
            real_test,
            schema,
            model=m,
            positive_label=positive_label,
            random_state=random_state,
        )
        for m in MODELS
    }
    disc = {
        m: discriminator_scores(
            real_train, synthetic, schema, model=m, folds=folds, random_state=random_state
        )
        for m in MODELS
    }
    per_feature = feature_kld(real_train, synthetic, schema, bins=bins, smoothing=smoothing)
    kld = float(np.mean(list(per_feature.values()))) if per_feature else 0.0
    lr_disc = disc["logreg"]
    tld_value = tld(kld, max(lr_disc["accuracy"], 1e-12), float(np.clip(lr_disc["auc"], 0, 1)))
    enc = EvaluationEncoder(schema)
    _, y_train = enc.transform(real_train)
    _, y_test = enc.transform(real_test)
    assert y_train is not None and y_test is not None
    majority = int(np.argmax(np.bincount(y_train, minlength=len(schema.labels))))
    lr = utility["logreg"]
    tvd = kway_tvd(real_train, synthetic, schema)
    floor = kway_tvd(real_train, real_test, schema)
    return {
        "accuracy": lr["accuracy"],
        "f1": lr["f1"],
        "auc": lr["auc"],
        "majority_accuracy": float(np.mean(y_test == majority)),
        "positive_label": _jsonable(positive_label),
        "utility": utility,
        "discriminator": disc,
        "kld": kld,
        "kld_per_feature": per_feature,
        "tld": tld_value,
        "pairwise_fidelity": pairwise_fidelity(real_train, synthetic, schema),
        **{key: tvd.get(key) for key in TVD_KEYS},
        "tvd_floor": {key: floor.get(key) for key in TVD_KEYS},
    }


def plot_sweep(
    results_by_name: Mapping[str, SweepResult],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Plot sweep curves to a PNG (see :func:`threedgl.evaluation.plotting.plot_sweep`)."""
    from threedgl.evaluation import plotting  # matplotlib is imported only when plotting

    return plotting.plot_sweep(results_by_name, path, title=title)


def plot_marginals(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str] | None,
    path: str | os.PathLike[str],
    *,
    bins: int = 20,
) -> Path:
    """Plot real vs synthetic marginals to a PNG (see
    :func:`threedgl.evaluation.plotting.plot_marginals`)."""
    from threedgl.evaluation import plotting

    return plotting.plot_marginals(real_df, synthetic_df, schema, columns, path, bins=bins)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
