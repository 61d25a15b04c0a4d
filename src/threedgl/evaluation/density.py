"""Gaussian kernel density, summed exactly (DOMIAS's densities in
:mod:`threedgl.evaluation.attacks`)."""

from __future__ import annotations

import math

import numpy as np

from threedgl.errors import ThreedglError

__all__ = ["gaussian_kde_log_density"]

#: Entries of the (points × training rows) matrix one block of work holds (128 MB).
_BLOCK_ENTRIES = 1 << 24


def gaussian_kde_log_density(train: np.ndarray, points: np.ndarray, bandwidth: float,
                             *, chunk: int = 512) -> np.ndarray:
    """log of the Gaussian kernel density of ``train`` (bandwidth ``h``) at ``points``:
    log Σ_j exp(−‖x − t_j‖² / 2h²) − log n − (d/2)·log(2πh²), summed exactly over every
    training row, ``chunk`` points at a time (fewer when the training rows are many, so a
    block holds at most 2²⁴ distances). scikit-learn's ``KernelDensity(kernel="gaussian")
    .score_samples`` is the same sum, to 1e-6 where the density is not tiny; in the far
    tails its tree's bounds give values many nats too high (−42 for an exact −62 at
    d = 10), which this avoids. Cost: points × rows × d."""
    h = float(bandwidth)
    if not (math.isfinite(h) and h > 0):
        raise ThreedglError(f"bandwidth must be a positive number, got {bandwidth!r}")
    t = np.asarray(train, dtype=np.float64)
    x = np.asarray(points, dtype=np.float64)
    if t.ndim != 2 or x.ndim != 2 or t.shape[1] != x.shape[1] or not len(t):
        raise ThreedglError(
            f"gaussian_kde_log_density needs matrices of the same width and at least one "
            f"training row, got {t.shape} and {x.shape}")
    n, d = t.shape
    step = max(1, min(int(chunk), _BLOCK_ENTRIES // n))
    t_sq = np.einsum("ij,ij->i", t, t)
    scale = -0.5 / (h * h)
    out = np.empty(len(x))
    for start in range(0, len(x), step):
        block = x[start:start + step]
        a = block @ t.T  # exponents −‖x − t‖² / 2h², built in place
        a *= -2.0
        a += np.einsum("ij,ij->i", block, block)[:, None]
        a += t_sq[None, :]
        np.maximum(a, 0.0, out=a)  # rounding can make a squared distance slightly negative
        a *= scale
        top = a.max(1)
        a -= top[:, None]
        np.exp(a, out=a)
        out[start:start + step] = top + np.log(a.sum(1))
    return out - np.log(n) - 0.5 * d * np.log(2.0 * np.pi * h * h)
