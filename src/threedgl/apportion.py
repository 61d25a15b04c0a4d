"""Splitting a whole number of rows by weights (largest remainder): how a generator splits
its rows over classes and how the Generators Pool splits a class over its generators."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["class_counts"]


def class_counts(n: int, weights: Sequence[float]) -> list[int]:
    """Split ``n`` rows in proportion to ``weights`` (largest remainder).

    Negative weights count as 0; if no weight is positive the split is equal. Ties of the
    remainders go to the earlier entries, so the split is deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = np.clip(np.nan_to_num(w, nan=0.0), 0, None)
    w = np.full(len(w), 1.0 / len(w)) if w.sum() <= 0 else w / w.sum()
    raw = w * n
    counts = np.floor(raw).astype(int)
    rest = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts.tolist()
