"""The exact discrete Gaussian of the counts and histograms (issue 19): its distribution
(known answers and a statistical tolerance), its exactness properties and its accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threedgl.privacy.discrete_gaussian import _Bits, sample_discrete_gaussian
from threedgl.privacy.gaussian import measure_count, measure_marginals
from threedgl.privacy.measurement import Marginal
from threedgl.privacy.secure import SecureRandom


def _pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    weights = np.exp(-support.astype(np.float64) ** 2 / (2 * sigma**2))
    return weights / weights.sum()


@pytest.mark.parametrize("sigma", [0.5, 1.5, 4.0])
def test_draws_follow_the_discrete_gaussian(sigma: float) -> None:
    """Frequencies of 40,000 draws against the exact probability mass function: total
    variation below 0.012 (about 4 standard errors of the estimate at these sizes)."""
    draws = sample_discrete_gaussian(sigma, 40_000, np.random.default_rng(1))
    assert draws.dtype == np.int64
    support = np.arange(-int(12 * sigma) - 2, int(12 * sigma) + 3)
    freq = np.array([(draws == x).mean() for x in support])
    assert abs(draws).max() < 12 * sigma + 2
    assert 0.5 * np.abs(freq - _pmf(sigma, support)).sum() < 0.012


def test_known_variance_below_sigma_squared() -> None:
    """σ = 0.5: P[0] = 1/Z, P[±1] = e^-2 / Z, …; Var = Σ x² P[x] = 0.2150 < σ² (CKS Cor. 9)."""
    support = np.arange(-6, 7)
    variance = float((support**2 * _pmf(0.5, support)).sum())
    assert variance == pytest.approx(0.21501, abs=1e-4) and variance < 0.25
    draws = sample_discrete_gaussian(0.5, 100_000, np.random.default_rng(2))
    assert draws.var() == pytest.approx(variance, abs=0.006)


def test_seeded_draws_repeat_and_zero_sigma_is_exact() -> None:
    a = sample_discrete_gaussian(3.0, 500, np.random.default_rng(7))
    b = sample_discrete_gaussian(3.0, 500, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_discrete_gaussian(3.0, 500, np.random.default_rng(8)))
    assert np.array_equal(sample_discrete_gaussian(0.0, 5, np.random.default_rng(0)),
                          np.zeros(5, np.int64))
    secure = sample_discrete_gaussian(3.0, 2000, SecureRandom())
    assert secure.std() == pytest.approx(3.0, rel=0.1)
    with pytest.raises(ValueError, match="sigma"):
        sample_discrete_gaussian(math.nan, 3, np.random.default_rng(0))


@settings(max_examples=40, deadline=None)
@given(num=st.integers(0, 50), den=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_exact_bernoulli_parts_stay_in_range(num: int, den: int, seed: int) -> None:
    bits = _Bits(np.random.default_rng(seed))
    assert 0 <= bits.below(den) < den
    assert bits.bernoulli(0, den) is False and bits.bernoulli(den, den) is True
    assert isinstance(bits.bernoulli_exp(num, den), bool)
    assert bits.bernoulli_exp(0, den) is True  # exp(0) = 1
    assert bits.geometric_exp(den, 1) >= 0


def test_bernoulli_exp_has_probability_exp_minus_gamma() -> None:
    bits = _Bits(np.random.default_rng(3))
    for num, den in ((1, 3), (5, 2)):
        hits = np.mean([bits.bernoulli_exp(num, den) for _ in range(20_000)])
        assert hits == pytest.approx(math.exp(-num / den), abs=0.012)


def test_released_counts_and_marginals_are_integers_with_the_recorded_noise() -> None:
    rng = np.random.default_rng(4)
    counts = [measure_count(120, noise_multiplier=3.0, rng=rng).noisy[0] for _ in range(2000)]
    assert all(float(c).is_integer() for c in counts)
    assert np.std(counts) == pytest.approx(3.0, rel=0.06)
    codes = np.random.default_rng(5).integers(0, 4, size=(300, 2))
    ms = measure_marginals(codes, [4, 4], [Marginal((0,)), Marginal((1,))], noise_multiplier=2.0,
                           rng=rng)
    for m in ms:
        assert np.all(np.mod(m.noisy, 1) == 0)
        assert m.noise_std == pytest.approx(2.0 * math.sqrt(2))  # σ √m, the accounted noise
    exact = measure_marginals(codes, [4, 4], [Marginal((0,))], noise_multiplier=0.0, rng=rng)
    assert np.array_equal(exact[0].noisy, np.bincount(codes[:, 0], minlength=4))


@pytest.mark.parametrize("sigma", [0.7, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [2.0, 8.5, 32.0])
def test_renyi_divergence_is_at_most_the_continuous_gaussians(sigma: float, alpha: float) -> None:
    """The accounting: D_α(N_Z(0, σ²) ‖ N_Z(1, σ²)) summed over the support is at most
    α / (2σ²), what the accountant charges for sensitivity 1 (equal at integer α, CKS
    Prop. 5); the multivariate release adds these up over independent cells."""
    x = np.arange(-400, 401, dtype=np.float64)
    log_p = -x**2 / (2 * sigma**2)
    log_q = -(x - 1) ** 2 / (2 * sigma**2)
    log_z = np.logaddexp.reduce(log_p)  # the same normaliser for both (an integer shift)
    divergence = np.logaddexp.reduce(alpha * log_p + (1 - alpha) * log_q - log_z) / (alpha - 1)
    bound = alpha / (2 * sigma**2)
    assert divergence <= bound + 1e-9
    if alpha.is_integer():
        assert divergence == pytest.approx(bound, rel=1e-9)
