"""Pairwise fidelity: do the synthetic data keep the associations between columns?

:func:`pairwise_association` gives a symmetric matrix over all schema columns (the class
column included), one association measure per pair kind:

* numeric–numeric: the *signed* Pearson correlation, in ``[-1, 1]``;
* categorical–categorical: Cramér's V **without** bias correction,
  ``sqrt(chi2 / (n * (min(r, c) - 1)))`` over the categories present, in ``[0, 1]``;
* numeric–categorical: the correlation ratio η, ``sqrt(SS_between / SS_total)`` of the
  numeric column grouped by the categorical one, in ``[0, 1]``.

A constant column (or a categorical column with a single category present) has
association 0 with every other column — never NaN. The diagonal is 1.

:func:`pairwise_fidelity` is the mean absolute difference between the real and synthetic
matrices over the pairs (upper triangle, diagonal excluded): 0 is perfect, larger is worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.evaluation.encoding import category_codes, computed_once, validated
from threedgl.schema import CategoricalColumn, NumericColumn, Schema


def _conform(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    return validated(schema, df, require_target=True)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if denom <= 0 or not np.isfinite(denom):
        return 0.0
    return float(np.clip(np.dot(a, b) / denom, -1.0, 1.0))


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    r, c = int(ia.max()) + 1, int(ib.max()) + 1
    if min(r, c) < 2:
        return 0.0
    table = np.zeros((r, c), dtype=np.float64)
    np.add.at(table, (ia, ib), 1.0)
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return float(np.clip(np.sqrt(chi2 / (n * (min(r, c) - 1))), 0.0, 1.0))


def _eta(codes: np.ndarray, x: np.ndarray) -> float:
    _, groups = np.unique(codes, return_inverse=True)
    total = float(np.sum((x - x.mean()) ** 2))
    if total <= 0 or groups.max() < 1:
        return 0.0
    counts = np.bincount(groups).astype(np.float64)
    means = np.bincount(groups, weights=x) / counts
    between = float(np.sum(counts * (means - x.mean()) ** 2))
    return float(np.clip(np.sqrt(between / total), 0.0, 1.0))


def pairwise_association(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The association matrix over all schema columns (see the module docstring); inside
    :func:`~threedgl.evaluation.encoding.encoded_once`, computed once per table."""
    return computed_once(df, schema, ("association",), lambda: _association(df, schema)).copy()


def _association(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    table = _conform(df, schema)
    names = list(schema.names)
    values: dict[str, np.ndarray] = {}
    for col in schema.columns:
        if isinstance(col, NumericColumn):
            values[col.name] = table[col.name].to_numpy(dtype=np.float64)
        else:
            assert isinstance(col, CategoricalColumn)
            values[col.name] = category_codes(col, table[col.name])
    k = len(names)
    mat = np.eye(k, dtype=np.float64)
    for i in range(k):
        for j in range(i + 1, k):
            ci, cj = schema.columns[i], schema.columns[j]
            a, b = values[ci.name], values[cj.name]
            num_i, num_j = isinstance(ci, NumericColumn), isinstance(cj, NumericColumn)
            if num_i and num_j:
                v = _pearson(a, b)
            elif not num_i and not num_j:
                v = _cramers_v(a, b)
            elif num_i:
                v = _eta(b, a)
            else:
                v = _eta(a, b)
            mat[i, j] = mat[j, i] = v
    return pd.DataFrame(mat, index=names, columns=names)


def pairwise_difference(
    real_df: pd.DataFrame, synthetic_df: pd.DataFrame, schema: Schema
) -> pd.DataFrame:
    """``|A_real - A_synthetic|`` per pair of columns (symmetric, zero diagonal)."""
    a = pairwise_association(real_df, schema)
    b = pairwise_association(synthetic_df, schema)
    return (a - b).abs()


def pairwise_fidelity(real_df: pd.DataFrame, synthetic_df: pd.DataFrame, schema: Schema) -> float:
    """Mean absolute difference of the association matrices over the column pairs
    (0 = identical associations); 0.0 for a single-column schema."""
    diff = pairwise_difference(real_df, synthetic_df, schema).to_numpy()
    iu = np.triu_indices(diff.shape[0], k=1)
    if len(iu[0]) == 0:
        return 0.0
    return float(np.mean(diff[iu]))
