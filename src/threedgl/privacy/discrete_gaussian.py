"""The discrete Gaussian: exact, integer-valued noise for counts and histograms.

A floating-point Gaussian sampler leaks through the gaps and rounding of its outputs
(Mironov 2012, for the Laplace mechanism; the same attack class applies to Box–Muller).
Canonne, Kamath and Steinke (2020, "The Discrete Gaussian for Differential Privacy") give
an exact sampler of N_Z(0, σ²), P[X = x] ∝ exp(−x² / 2σ²) on the integers, using only
integer arithmetic and uniform random integers: a discrete Laplace proposal and a Bernoulli
acceptance with probability exp(−γ), each drawn exactly. That is what this module does,
with σ² taken exactly as the rational number its float64 is.

Accounting is unchanged: for an integer-valued query of L2 sensitivity Δ, the Rényi
divergence of the discrete Gaussian mechanism is at most α Δ² / (2σ²) (CKS 2020, Prop. 5
and Thm. 14 for the multivariate case), the continuous Gaussian's, so the noise
multiplier recorded and the ε computed by the accountant hold as they are. Its variance is
slightly *below* σ² (CKS Cor. 9), so σ recorded as the measurements' noise is an upper
bound.

Random integers come from the model's noise source: a NumPy generator (PCG64, 128-bit
seed) or the OS CSPRNG (:class:`~threedgl.privacy.secure.SecureRandom`, ``secure_mode``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["sample_discrete_gaussian"]


class _Bits:
    """Exact draws from a source's random bytes (read in blocks). Probabilities are
    fractions ``num / den`` of Python integers: no floating point anywhere."""

    BLOCK = 1 << 14

    def __init__(self, source: Any) -> None:
        self.source = source
        self.buffer = b""
        self.at = 0

    def _take(self, nbytes: int) -> int:
        if self.at + nbytes > len(self.buffer):
            self.buffer = self.buffer[self.at:] + self.source.bytes(max(self.BLOCK, nbytes))
            self.at = 0
        value = int.from_bytes(self.buffer[self.at:self.at + nbytes], "little")
        self.at += nbytes
        return value

    def below(self, n: int) -> int:
        """A uniform integer in [0, n) (rejection sampling on the next power of two)."""
        if n == 1:
            return 0
        bits = (n - 1).bit_length()
        mask = (1 << bits) - 1
        while True:
            value = self._take((bits + 7) // 8) & mask
            if value < n:
                return value

    def bernoulli(self, num: int, den: int) -> bool:
        """True with probability num / den (in [0, 1])."""
        return self.below(den) < num

    def bernoulli_exp(self, num: int, den: int) -> bool:
        """True with probability exp(−num / den), num / den ≥ 0 (CKS Algorithm 1)."""
        while num > den:  # exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋))
            if not self._bernoulli_exp_unit(1, 1):
                return False
            num -= den
        return self._bernoulli_exp_unit(num, den)

    def _bernoulli_exp_unit(self, num: int, den: int) -> bool:
        k = 1
        while self.bernoulli(num, den * k):
            k += 1
        return k % 2 == 1

    def geometric_exp(self, s: int, t: int) -> int:
        """P[X = x] ∝ exp(−x · t / s), x ≥ 0 (CKS Algorithm 2)."""
        while True:
            u = self.below(s)
            if self.bernoulli_exp(u, s):
                break
        v = 0
        while self.bernoulli_exp(1, 1):
            v += 1
        return (v * s + u) // t

    def discrete_laplace(self, scale: int) -> int:
        """P[X = x] ∝ exp(−|x| / scale) on the integers (an integer scale)."""
        while True:
            negative = self.bernoulli(1, 2)
            magnitude = self.geometric_exp(scale, 1)
            if negative and magnitude == 0:
                continue
            return -magnitude if negative else magnitude

    def discrete_gaussian(self, a: int, b: int) -> int:
        """P[X = x] ∝ exp(−x² / 2σ²) on the integers, σ² = a / b (CKS Algorithm 3)."""
        t = math.isqrt(a // b) + 1
        while True:
            y = self.discrete_laplace(t)
            # γ = (|y| − σ²/t)² / (2σ²) = (|y| b t − a)² / (2 a b t²)
            if self.bernoulli_exp((abs(y) * b * t - a) ** 2, 2 * a * b * t * t):
                return y


def sample_discrete_gaussian(sigma: float, size: int, source: Any) -> np.ndarray:
    """``size`` independent draws of N_Z(0, σ²) (int64) from ``source``'s random bytes
    (a :class:`numpy.random.Generator` or a :class:`~threedgl.privacy.secure.SecureRandom`).
    σ = 0 gives zeros."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and non-negative, got {sigma!r}")
    if sigma == 0 or size == 0:
        return np.zeros(size, dtype=np.int64)
    sigma2 = Fraction(sigma) ** 2  # exact: the float's own rational value, squared
    a, b = sigma2.numerator, sigma2.denominator
    bits = _Bits(source)
    return np.fromiter((bits.discrete_gaussian(a, b) for _ in range(size)), dtype=np.int64,
                       count=size)
