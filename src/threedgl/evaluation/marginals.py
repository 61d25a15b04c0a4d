"""k-way marginal error: the fidelity measure of the DP synthesis field (MST, AIM, GEM, RAP).

For a set of columns S, the *marginal* of a table on S is the vector of relative
frequencies of its rows over the cells of S (every combination of the columns' bins).
The error of a synthetic table on S is the total variation distance to the real table's
marginal, ``TVD = ½ Σ_cells |p_real − p_synthetic|`` in ``[0, 1]``; the k-way error is
its mean over every set of k columns (all 1-way, all 2-way, all or a fixed seeded sample
of 3-way marginals). Lower is better; 0 means the two tables agree on every k-way count.

Bins, a public rule from the schema alone (the same as :func:`~threedgl.evaluation.
divergence.histogram`, with ``bins=16`` by default), so both tables share them:

* a categorical column, the class column included: one bin per category;
* an integer column with at most ``bins`` integer values in its bounds: one bin per value;
* any other numeric column: ``bins`` equal-width bins over the schema's
  ``[minimum, maximum]`` (a column with ``minimum == maximum``: one bin).

The bins do not depend on any generator's own discretisation: a generator that keeps
point masses (Adult's ``hours-per-week`` = 40) is rewarded, one that spreads them over a
bin is not. The sampling floor is the same measure between two real samples (the test
split against the train split).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError, check_int
from threedgl.evaluation.encoding import category_codes, validated
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

__all__ = [
    "DEFAULT_BINS",
    "MAX_MARGINALS",
    "TVD_KEYS",
    "kway_tvd",
    "marginal_codes",
    "marginal_tvds",
]

#: Equal-width bins of a numeric column (the field's usual resolution).
DEFAULT_BINS = 16
#: At most this many k-column sets per k; above it a fixed seeded sample is drawn.
MAX_MARGINALS = 2000
#: The keys of :func:`kway_tvd` with the default ``ways`` (a contract of ``3dgl evaluate``).
TVD_KEYS = ("tvd_1way", "tvd_2way", "tvd_3way")


def marginal_codes(df: pd.DataFrame, schema: Schema, *, bins: int = DEFAULT_BINS
                   ) -> tuple[np.ndarray, list[int]]:
    """Bin codes ``(n, columns)`` of a table over the schema's columns and the bin counts."""
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    bins = check_int("bins", bins, low=1, high=10_000, owner="kway_tvd")
    table = validated(schema, df, require_target=schema.target is not None)
    codes = np.zeros((len(table), len(schema.columns)), dtype=np.int64)
    widths: list[int] = []
    for j, col in enumerate(schema.columns):
        if isinstance(col, CategoricalColumn):
            codes[:, j] = category_codes(col, table[col.name])
            widths.append(len(col.categories))
            continue
        assert isinstance(col, NumericColumn)
        x = np.clip(table[col.name].to_numpy(dtype=np.float64), col.minimum, col.maximum)
        lo, hi = col.minimum, col.maximum
        if hi <= lo:
            widths.append(1)
            continue
        ilo, ihi = math.ceil(lo), math.floor(hi)
        if col.integer and ihi >= ilo and ihi - ilo + 1 <= bins:
            codes[:, j] = np.clip(np.rint(x) - ilo, 0, ihi - ilo).astype(np.int64)
            widths.append(ihi - ilo + 1)
            continue
        codes[:, j] = np.clip(np.floor((x - lo) / (hi - lo) * bins), 0, bins - 1).astype(np.int64)
        widths.append(bins)
    return codes, widths


def _subsets(n_columns: int, k: int, max_marginals: int, random_state: int) -> list[tuple[int, ...]]:
    total = math.comb(n_columns, k)
    if total <= max_marginals:
        return list(itertools.combinations(range(n_columns), k))
    rng = np.random.default_rng(random_state)
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < max_marginals:
        chosen.add(tuple(sorted(rng.choice(n_columns, size=k, replace=False).tolist())))
    return sorted(chosen)


def marginal_tvds(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    *,
    k: int,
    bins: int = DEFAULT_BINS,
    max_marginals: int = MAX_MARGINALS,
    random_state: int = 0,
) -> dict[tuple[str, ...], float]:
    """``{column names: TVD}`` for every set of ``k`` columns (or a seeded sample of them)."""
    real, syn, widths = _both_codes(real_df, synthetic_df, schema, bins)
    return _tvds(real, syn, widths, list(schema.names), k, max_marginals, random_state)


def kway_tvd(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    *,
    ways: Sequence[int] = (1, 2, 3),
    bins: int = DEFAULT_BINS,
    max_marginals: int = MAX_MARGINALS,
    random_state: int = 0,
) -> dict[str, float]:
    """``{"tvd_1way": …, "tvd_2way": …, "tvd_3way": …}``: the mean TVD over the k-way
    marginals for each k of ``ways`` (see the module docstring). A k above the number of
    columns is left out."""
    real, syn, widths = _both_codes(real_df, synthetic_df, schema, bins)
    out: dict[str, float] = {}
    for k in ways:
        per = _tvds(real, syn, widths, list(schema.names), k, max_marginals, random_state)
        if per:
            out[f"tvd_{k}way"] = float(np.mean(list(per.values())))
    return out


def _both_codes(real_df: pd.DataFrame, synthetic_df: pd.DataFrame, schema: Schema, bins: int
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    real, widths = marginal_codes(real_df, schema, bins=bins)
    syn, _ = marginal_codes(synthetic_df, schema, bins=bins)
    if not len(real) or not len(syn):
        raise ThreedglError("kway_tvd needs at least one real and one synthetic row")
    return real, syn, widths


def _tvds(real: np.ndarray, syn: np.ndarray, widths: list[int], names: list[str], k: int,
          max_marginals: int, random_state: int) -> dict[tuple[str, ...], float]:
    k = check_int("k", k, low=1, owner="kway_tvd")
    max_marginals = check_int("max_marginals", max_marginals, low=1, owner="kway_tvd")
    if k > len(names):
        return {}
    out: dict[tuple[str, ...], float] = {}
    for cols in _subsets(len(names), k, max_marginals, random_state):
        shape = tuple(widths[c] for c in cols)
        p, q = _counts(real[:, cols], syn[:, cols], shape)
        out[tuple(names[c] for c in cols)] = 0.5 * float(np.abs(p / len(real) - q / len(syn)).sum())
    return out


#: A marginal with more cells than this is counted over the cells that occur, not densely.
_DENSE_CELLS = 1 << 22


def _counts(real: np.ndarray, syn: np.ndarray, shape: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both tables over the same cells of one marginal (empty cells add nothing
    to the TVD, so only the occupied ones are needed when the grid is large)."""
    size = math.prod(shape)
    if size <= _DENSE_CELLS:
        return (np.bincount(np.ravel_multi_index(real.T, shape), minlength=size),
                np.bincount(np.ravel_multi_index(syn.T, shape), minlength=size))
    # Three columns of thousands of categories: a dense grid would not fit in memory.
    _, inverse = np.unique(np.concatenate([real, syn]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    cells = int(inverse.max()) + 1
    return (np.bincount(inverse[: len(real)], minlength=cells),
            np.bincount(inverse[len(real):], minlength=cells))
