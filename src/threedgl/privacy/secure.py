"""Cryptographically secure randomness for the draws that carry the privacy guarantee.

With ``secure_mode=True`` a generator draws its Gaussian noise (DP-Adam's gradient noise,
the noisy counts and histograms) and its Poisson sampling masks from the operating
system's CSPRNG (:func:`os.urandom`) instead of a seeded PRNG, as Opacus' ``secure_mode``
does with ``torchcsprng``: an attacker who learns or guesses a seed cannot then subtract
the noise. DP-Adam's Gaussian draws use Box-Muller on 53-bit uniforms, and each is the
mean of two draws scaled by √2 (Opacus' mitigation of floating-point attacks on the
Gaussian mechanism, after Mironov 2012); the counts and histograms take the exact discrete
Gaussian (:mod:`threedgl.privacy.discrete_gaussian`) from its random bytes. The cost is measured in ``benchmarks/secure_mode.py``.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

__all__ = ["SecureRandom"]

_TWO_53 = float(2**53)


def _uniform53(n: int) -> np.ndarray:
    """``n`` uniforms in (0, 1): 53 random bits each, never exactly 0."""
    bits = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) / _TWO_53


class SecureRandom:
    """The OS CSPRNG behind a small NumPy-like and torch interface (not seedable)."""

    def uniform(self, n: int) -> np.ndarray:
        """``n`` float64 uniforms in (0, 1)."""
        return _uniform53(int(n))

    random = uniform  # NumPy's name, what DP-Adam's Poisson sampling calls

    def bytes(self, length: int) -> bytes:
        """``length`` random bytes (what the exact discrete Gaussian draws from)."""
        return os.urandom(int(length))

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        shape = (size,) if isinstance(size, int) else tuple(size)
        n = int(np.prod(shape, dtype=np.int64))
        pairs = _uniform53(4 * math.ceil(n / 2) + 4).reshape(-1, 2)
        r = np.sqrt(-2.0 * np.log(pairs[:, 0]))
        z = np.concatenate([r * np.cos(2 * np.pi * pairs[:, 1]),
                            r * np.sin(2 * np.pi * pairs[:, 1])])
        # Opacus' secure mode: the mean of two standard normals, times √2.
        z = (z[: 2 * n : 2] + z[1 : 2 * n : 2]) / math.sqrt(2.0)
        return z[:n].reshape(shape)

    def normal(self, loc: float = 0.0, scale: float = 1.0,
               size: int | tuple[int, ...] | None = None) -> Any:
        """As :meth:`numpy.random.Generator.normal` (what :mod:`.gaussian` calls)."""
        if size is None:
            return float(loc + scale * self.standard_normal(1)[0])
        return loc + scale * self.standard_normal(size)
