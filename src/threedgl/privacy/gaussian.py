"""The Gaussian mechanism on histograms: the budget spent by the DP marginals baseline.

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

from threedgl.privacy.accounting import PrivacyRecord, calibrate_noise_multiplier, compute_epsilon


def measure_histograms(
    counts: Sequence[np.ndarray],
    *,
    epsilon: float,
    delta: float,
    accountant: str,
    rng: np.random.Generator,
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
    std = sigma * sensitivity
    noisy = [np.asarray(c, dtype=np.float64) + rng.normal(0.0, std, size=len(c)) for c in counts]
    spent = compute_epsilon(sigma, 1.0, 1, delta, accountant)
    record = PrivacyRecord(sigma, 1.0, 1, sensitivity, accountant, float(delta), spent)
    return noisy, record
