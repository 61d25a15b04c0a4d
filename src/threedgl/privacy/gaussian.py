"""The Gaussian mechanism on counts and histograms: the budget spent outside DP-Adam.

Two users: the DP marginals baseline (all of its budget, :func:`measure_histograms`) and
DDP-βVAE's default mode (shares of each class's budget: :func:`measure_count` for the
class's row count, then :func:`measure_marginals` for its one-way marginals and, after
DP-Adam, for selected two-way marginals; each release returns
:class:`~threedgl.privacy.measurement.Measurement` objects, the data the generator is
fitted to).

One class's table of n rows gives one histogram per feature. Adding or removing one row
changes exactly one count in each of the F histograms by 1, so the vector of all counts
has L2 sensitivity Δ = √F. Releasing ``counts + N(0, (σΔ)²)`` is one step of the
sampled Gaussian mechanism with sampling rate 1 and noise multiplier σ, so the same
accountant that audits DP-Adam audits this release (``PrivacyRecord(σ, q=1, steps=1,
max_grad_norm=Δ)``), and the server recomputes its ε in the same way.

The noise is the exact **discrete Gaussian** N_Z(0, (σΔ)²) on every count
(:mod:`threedgl.privacy.discrete_gaussian`, Canonne, Kamath & Steinke 2020): counts are
integers, so the released values are integers too, drawn with integer arithmetic only (no
floating-point sampler to attack), and the RDP accounting above holds unchanged (its Rényi
divergence is bounded by the continuous Gaussian's). The one exception: DP marginals with
the PRV accountant, whose ε is read from the continuous Gaussian's exact privacy curve,
keep the continuous Gaussian (a bound for the discrete one in that curve is not proven
here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from threedgl.privacy.accounting import calibrate_noise_multiplier, compute_epsilon
from threedgl.privacy.discrete_gaussian import sample_discrete_gaussian
from threedgl.privacy.measurement import Marginal, Measurement, marginal_counts
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
    # The discrete Gaussian's bound is a Rényi one (what RDP accounts); PRV reads the
    # continuous Gaussian's exact privacy curve, so its release keeps continuous noise.
    noisy = release_histograms(counts, noise_multiplier=sigma, rng=rng,
                               discrete=accountant != "prv")
    spent = compute_epsilon(sigma, 1.0, 1, delta, accountant)
    record = PrivacyRecord(sigma, 1.0, 1, sensitivity, accountant, float(delta), spent)
    return noisy, record


def release_count(n: int, *, noise_multiplier: float, rng: np.random.Generator | SecureRandom) -> float:
    """``n + N_Z(0, σ²)``: a row count (sensitivity 1 under add/remove-one), an integer."""
    return float(n + int(_noise(noise_multiplier, 1, rng)[0]))


def _noise(std: float, size: int, rng: np.random.Generator | SecureRandom) -> np.ndarray:
    """Discrete Gaussian noise N_Z(0, std²) (float64 integers; zeros for std = 0)."""
    return sample_discrete_gaussian(std, size, rng).astype(np.float64)


def release_histograms(
    counts: Sequence[np.ndarray], *, noise_multiplier: float,
    rng: np.random.Generator | SecureRandom, discrete: bool = True,
) -> list[np.ndarray]:
    """Per-feature histograms of one class plus ``N_Z(0, (σ√F)²)`` on every count.

    One row changes one count in each of the F histograms, so the L2 sensitivity is √F and
    ``noise_multiplier`` σ is relative to it. σ = 0 releases the exact counts.
    """
    std = noise_multiplier * math.sqrt(len(counts))
    out = []
    for c in counts:
        c = np.asarray(c, dtype=np.float64)
        if discrete:
            out.append(c + _noise(std, len(c), rng))
        else:
            out.append(c + rng.normal(0.0, std, size=len(c)) if std else c.copy())
    return out


def measure_count(n: int, *, noise_multiplier: float,
                  rng: np.random.Generator | SecureRandom) -> Measurement:
    """A class's row count ``n + N_Z(0, σ²)`` (sensitivity 1), as a measurement.

    The released value is the float32 one (what the artifact stores and everything after
    uses); σ = 0 releases the exact count.
    """
    noisy = np.array([release_count(n, noise_multiplier=noise_multiplier, rng=rng)],
                     dtype=np.float32)
    return Measurement(Marginal(()), noisy, float(noise_multiplier))


def measure_marginals(
    codes: np.ndarray,
    widths: Sequence[int],
    marginals: Sequence[Marginal],
    *,
    noise_multiplier: float,
    rng: np.random.Generator | SecureRandom,
) -> list[Measurement]:
    """One Gaussian release of several marginals of one class's rows (bin codes ``(n, F)``).

    Adding or removing one row changes one cell of each marginal by 1, so the vector of all
    cells has L2 sensitivity √(number of marginals); every cell gets ``N_Z(0, (σ√m)²)`` for
    m marginals, σ = ``noise_multiplier``. σ = 0 releases the exact counts.
    """
    if not marginals:
        return []
    std = noise_multiplier * math.sqrt(len(marginals))
    out = []
    for marginal in marginals:
        exact = marginal_counts(codes, marginal, widths)
        noisy = exact + _noise(std, len(exact), rng)
        out.append(Measurement(marginal, np.asarray(noisy, dtype=np.float32), float(std)))
    return out
