"""scikit-learn's gradient boosting with sample weights, its bins found with one sort.

With sample weights (LOGAN's ``class_weight="balanced"``) scikit-learn 1.9's
``HistGradientBoostingClassifier`` finds the bin edges of a column with more than 255
distinct values by calling ``_weighted_percentile`` once per edge: 254 sorts of the
column. ``_weighted_percentile`` also takes an array of ranks, sorting once; its loop over
the ranks does for each exactly what a call with that one rank does, so the edges are the
same numbers. :func:`one_sort_binning` serves the 254 calls from one such call (a test
checks the edges and a fitted model's probabilities against scikit-learn's own).

Only for the scikit-learn versions this was checked on (:data:`CHECKED`); elsewhere it
changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["CHECKED", "one_sort_binning"]

#: scikit-learn (major, minor) versions whose binning this reproduces exactly.
CHECKED: tuple[tuple[int, int], ...] = ((1, 9),)

_lock = threading.RLock()  # a block inside a block (one thread) re-enters


def _version() -> tuple[int, int]:
    import sklearn

    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


class _AllRanks:
    """``_weighted_percentile`` that answers a column's run of single-rank calls (the same
    column and weights objects, ranks in binning's order) from one call with every rank."""

    def __init__(self, original: Any, ranks: np.ndarray) -> None:
        self.original, self.ranks = original, ranks
        self._key: tuple[int, int] | None = None
        self._held: tuple[Any, Any] = (None, None)  # keeps the ids valid
        self._values: np.ndarray | None = None

    def __call__(self, array: Any, sample_weight: Any, percentile_rank: Any = 50,
                 average: bool = False, xp: Any = None) -> Any:
        if (not average or xp is not None or not np.isscalar(percentile_rank)
                or np.ndim(array) != 1):
            return self.original(array, sample_weight, percentile_rank, average, xp)
        hits = np.flatnonzero(self.ranks == percentile_rank)
        if len(hits) == 0:
            return self.original(array, sample_weight, percentile_rank, average, xp)
        key = (id(array), id(sample_weight))
        if key != self._key or self._values is None:
            values = self.original(array, sample_weight, self.ranks, average=True)
            if np.ndim(values) != 1:  # all weights zero: scikit-learn's NaN
                return self.original(array, sample_weight, percentile_rank, average, xp)
            self._key, self._held, self._values = key, (array, sample_weight), values
        return self._values[hits[0]]


@contextmanager
def one_sort_binning(max_bins: int = 255) -> Iterator[None]:
    """Inside the block, scikit-learn's weighted binning (``max_bins`` bins) sorts each
    column once (see the module docstring); the same edges, the same model."""
    if _version() not in CHECKED:
        yield
        return
    from sklearn.ensemble._hist_gradient_boosting import binning

    ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
    with _lock:
        original = binning._weighted_percentile
        binning._weighted_percentile = _AllRanks(original, ranks)
        try:
            yield
        finally:
            binning._weighted_percentile = original
