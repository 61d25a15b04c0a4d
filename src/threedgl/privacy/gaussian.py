"""The Gaussian mechanism on counts and histograms: the budget spent outside DP-Adam.

Two users: the DP marginals baseline (all of its budget, :func:`measure_histograms`) and
DDP-βVAE's default mode (a share of each class's budget: :func:`release_count` for the
class's row count, then :func:`release_histograms` for its one-way marginals, the
anchor of the decoder's output layer).

One class's table of n rows gives one histogram per feature. Adding or removing one row
changes exactly one count in each of the F histograms by 1, so the vector of all counts
has L2 sensitivity Δ = √F. Releasing ``counts + N(0, (σΔ)²)`` is one step of the
sampled Gaussian mechanism with sampling rate 1 and noise multiplier σ, so the same
accountant that audits DP-Adam audits this release (``PrivacyRecord(σ, q=1, steps=1,
max_grad_norm=Δ)``), and the server recomputes its ε in the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from threedgl.privacy.accounting import calibrate_noise_multiplier, compute_epsilon
from threedgl.privacy.record import PrivacyRecord
from threedgl.privacy.secure import SecureRandom


def measure_histograms(
    counts: Sequence[np.ndarray],
    *,
    epsilon: float,
    delta: float,
    accountant: str,
    rng: np.random.Generator | SecureRandom,
) -> tuple[list[np.ndarray], PrivacyRecord]:
    """Release the per-feature histograms of one class with (ε, δ)-DP.

    ``counts[j]`` is the histogram of feature j (each row counted once per feature).
    Returns the noisy counts (may be negative: post-processing is the caller's) and the
    privacy record. ``epsilon=inf`` releases the exact counts.
    """
    sensitivity = math.sqrt(len(counts))
    if math.isinf(epsilon):
        record = PrivacyRecord(0.0, 1.0, 1, sensitivity, accountant, float(delta), math.inf)
        return [np.asarray(c, dtype=np.float64) for c in counts], record
    sigma = calibrate_noise_multiplier(epsilon, delta, 1.0, 1, accountant)
    noisy = release_histograms(counts, noise_multiplier=sigma, rng=rng)
    spent = compute_epsilon(sigma, 1.0, 1, delta, accountant)
    record = PrivacyRecord(sigma, 1.0, 1, sensitivity, accountant, float(delta), spent)
    return noisy, record


def release_count(n: int, *, noise_multiplier: float, rng: np.random.Generator | SecureRandom) -> float:
    """``n + N(0, σ²)``: a row count (sensitivity 1 under add/remove-one)."""
    return float(n) + float(rng.normal(0.0, noise_multiplier)) if noise_multiplier else float(n)


def release_histograms(
    counts: Sequence[np.ndarray], *, noise_multiplier: float, rng: np.random.Generator | SecureRandom
) -> list[np.ndarray]:
    """Per-feature histograms of one class plus ``N(0, (σ√F)²)`` on every count.

    One row changes one count in each of the F histograms, so the L2 sensitivity is √F and
    ``noise_multiplier`` σ is relative to it. σ = 0 releases the exact counts.
    """
    std = noise_multiplier * math.sqrt(len(counts))
    out = []
    for c in counts:
        c = np.asarray(c, dtype=np.float64)
        out.append(c + rng.normal(0.0, std, size=len(c)) if std else c.copy())
    return out
