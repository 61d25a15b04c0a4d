"""Per-feature Kullback–Leibler divergence and the paper's Turing Logistic Divergence.

KLD (SPEC §4): for each feature column (the class column excluded), ``KL(P_real ‖
P_synthetic) = Σ_b p_b ln(p_b / q_b)`` in nats over a histogram whose bins come from the
*schema*, so real and synthetic tables share them:

* numeric column: ``bins`` equal-width bins over ``[minimum, maximum]`` (values outside
  are clipped into the end bins); an integer column with ``maximum - minimum + 1 ≤ bins``
  integer values gets one bin per integer; a column with ``minimum == maximum`` one bin;
* categorical column: one bin per schema category.

Counts get ``smoothing`` added to every bin (additive/Laplace smoothing) before they are
normalised, so an empty synthetic bin gives a large but finite divergence;
``smoothing=0`` may give ``inf``. Identical tables give 0.

The paper's KLD values (26 to 3358) come from an unstated formula, and its TLD used
percentages; our KLD is the above (typically 0 to a few nats) and our TLD uses fractions,
so neither is comparable in absolute value with the paper's tables.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError, check_int, check_range
from threedgl.evaluation.encoding import category_codes, validated
from threedgl.schema import CategoricalColumn, Column, NumericColumn, Schema


def histogram(values: pd.Series, col: Column, *, bins: int = 20) -> np.ndarray:
    """Counts of a conformed column over the schema-derived bins described above."""
    if isinstance(col, CategoricalColumn):
        return np.bincount(category_codes(col, values), minlength=len(col.categories)).astype(
            np.float64
        )
    assert isinstance(col, NumericColumn)
    x = np.clip(values.to_numpy(dtype=np.float64), col.minimum, col.maximum)
    lo, hi = col.minimum, col.maximum
    if hi <= lo:
        return np.array([float(len(x))])
    if col.integer:
        ilo, ihi = math.ceil(lo), math.floor(hi)
        if ihi >= ilo and ihi - ilo + 1 <= bins:
            codes = np.clip(np.rint(x) - ilo, 0, ihi - ilo).astype(np.int64)
            return np.bincount(codes, minlength=ihi - ilo + 1).astype(np.float64)
    counts, _ = np.histogram(x, bins=bins, range=(lo, hi))
    return counts.astype(np.float64)


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray, *, smoothing: float = 1.0) -> float:
    """``KL(p ‖ q)`` in nats of two count vectors after additive smoothing."""
    p = np.asarray(p_counts, dtype=np.float64) + smoothing
    q = np.asarray(q_counts, dtype=np.float64) + smoothing
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p = p / p.sum()
    q = q / q.sum()
    mask = p > 0
    with np.errstate(divide="ignore"):
        terms = p[mask] * np.log(p[mask] / q[mask])
    return float(max(np.sum(terms), 0.0))


def _check(bins: Any, smoothing: Any) -> None:
    check_int("bins", bins, low=1)
    check_range("smoothing", smoothing, low=0.0, low_inclusive=True, owner="feature_kld")


def feature_kld(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    *,
    bins: int = 20,
    smoothing: float = 1.0,
) -> dict[str, float]:
    """``{feature: KL(real ‖ synthetic)}`` for every feature column (see module docstring)."""
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    _check(bins, smoothing)
    real = validated(schema, real_df, require_target=False)
    syn = validated(schema, synthetic_df, require_target=False)
    out: dict[str, float] = {}
    for col in schema.features:
        p = histogram(real[col.name], col, bins=bins)
        q = histogram(syn[col.name], col, bins=bins)
        out[col.name] = kl_divergence(p, q, smoothing=smoothing)
    return out


def mean_kld(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    *,
    bins: int = 20,
    smoothing: float = 1.0,
) -> float:
    """The mean of :func:`feature_kld` over the features."""
    per = feature_kld(real_df, synthetic_df, schema, bins=bins, smoothing=smoothing)
    return float(np.mean(list(per.values()))) if per else 0.0


def tld(kld: float, accuracy: float, auc: float) -> float:
    """Turing Logistic Divergence (paper eq. 2): ``(kld / accuracy) ** (1 - auc)``.

    ``accuracy`` and ``auc`` are the real-vs-synthetic discriminator's, as *fractions*:
    ``accuracy`` in ``(0, 1]``, ``auc`` in ``[0, 1]``; ``kld ≥ 0`` (our mean KLD, in nats).
    Higher TLD = more different marginals yet harder to tell apart. The paper used
    percentages and an unstated KLD, so values are not comparable with its Table III.
    """
    check_range("kld", kld, low=0.0, low_inclusive=True, owner="tld")
    check_range("accuracy", accuracy, low=0.0, high=1.0, high_inclusive=True, owner="tld")
    check_range("auc", auc, low=0.0, high=1.0, low_inclusive=True, high_inclusive=True, owner="tld")
    if math.isinf(kld):
        return math.inf if auc < 1 else 1.0
    return float((kld / accuracy) ** (1.0 - auc))
