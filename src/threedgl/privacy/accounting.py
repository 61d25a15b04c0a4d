"""Privacy accounting for DP-Adam with Poisson sampling (no training here).

The accounting is delegated to Opacus's established accountants:

* ``"rdp"`` -- :class:`opacus.accountants.RDPAccountant` (Rényi DP, Mironov 2017; the
  conversion to (ε, δ) of Balle et al. 2020). This is the accountant of the paper; its
  optimal Rényi order is available through :func:`rdp_optimal_order`.
* ``"prv"`` -- :class:`opacus.accountants.PRVAccountant` (numerical composition of
  privacy loss random variables, Gopi et al. 2021); tighter, returns an upper bound.

A training is fully described by ``(noise_multiplier σ, sample_rate q, steps)``: ``steps``
applications of the Poisson-subsampled Gaussian mechanism with rate ``q`` and noise
standard deviation ``σ·C`` on gradients clipped to norm ``C``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.accountant import IAccountant

from threedgl.errors import PrivacyError, ThreedglError, check_range

__all__ = [
    "ACCOUNTANTS",
    "PrivacyRecord",
    "calibrate_noise_multiplier",
    "compose_epsilon",
    "compute_epsilon",
    "rdp_optimal_order",
]

ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")

#: Relative tolerance of :func:`calibrate_noise_multiplier`: ε ∈ [0.98·target, target].
CALIBRATION_TOLERANCE = 0.02

_MAX_SIGMA = 1e6
_MIN_SIGMA = 1e-4


def _check(name: str, value: float, **kw: Any) -> None:
    """``check_range`` that raises :class:`PrivacyError`."""
    try:
        check_range(name, value, **kw)
    except ThreedglError as exc:
        raise PrivacyError(str(exc)) from None


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(
            f"The 'accountant' parameter must be one of {list(ACCOUNTANTS)}. "
            f"Got {accountant!r} instead."
        )


def _check_mechanism(noise_multiplier: float, sample_rate: float, steps: int) -> None:
    _check("noise_multiplier", noise_multiplier, low=0, low_inclusive=True)
    if math.isinf(noise_multiplier):
        raise PrivacyError("The 'noise_multiplier' parameter must be finite. Got inf instead.")
    _check("sample_rate", sample_rate, low=0, high=1, high_inclusive=True)
    _check_steps(steps)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise PrivacyError(f"The 'steps' parameter must be an int >= 1. Got {steps!r} instead.")


def _check_delta(delta: float) -> None:
    _check("delta", delta, low=0, high=1)


def _make_accountant(accountant: str, history: list[tuple[float, float, int]]) -> IAccountant:
    acc: IAccountant = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = list(history)  # (noise_multiplier, sample_rate, steps) triples
    return acc


def _epsilon_of_history(
    history: list[tuple[float, float, int]], delta: float, accountant: str
) -> float:
    if any(sigma == 0 for sigma, _, _ in history):
        return math.inf  # no noise: no privacy
    acc = _make_accountant(accountant, history)
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        # q = 1 makes PRV take log(0) harmlessly; RDP warns when α hits its grid's end.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        eps = float(acc.get_epsilon(delta=delta))
    return math.inf if math.isnan(eps) else eps


def compute_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """ε spent by ``steps`` Poisson-subsampled Gaussian steps (``inf`` when σ = 0)."""
    _check_accountant(accountant)
    _check_mechanism(noise_multiplier, sample_rate, steps)
    _check_delta(delta)
    return _epsilon_of_history(
        [(float(noise_multiplier), float(sample_rate), steps)], delta, accountant
    )


def rdp_optimal_order(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """The Rényi order α at which the RDP accountant attains its ε (the paper's "RDP = 8")."""
    _check_mechanism(noise_multiplier, sample_rate, steps)
    _check_delta(delta)
    if noise_multiplier == 0:
        return math.nan
    acc = _make_accountant("rdp", [(float(noise_multiplier), float(sample_rate), steps)])
    assert isinstance(acc, RDPAccountant)
    _, order = acc.get_privacy_spent(delta=delta)
    return float(order)


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
) -> float:
    """Smallest-ish σ whose ε lies in ``[0.98·target_epsilon, target_epsilon]``.

    Bisection on σ ↦ compute_epsilon(σ, ...), which decreases with σ. The returned σ
    always satisfies ε(σ) ≤ target_epsilon (it is the upper end of the bracket).
    """
    _check_accountant(accountant)
    _check("target_epsilon", target_epsilon, low=0)
    if math.isinf(target_epsilon):
        raise PrivacyError(
            "The 'target_epsilon' parameter must be finite; epsilon=inf means no privacy "
            "(noise_multiplier=0)."
        )
    _check_delta(delta)
    _check("sample_rate", sample_rate, low=0, high=1, high_inclusive=True)
    _check_steps(steps)

    def eps(sigma: float) -> float:
        return _epsilon_of_history([(sigma, float(sample_rate), steps)], delta, accountant)

    lower_ok = (1.0 - CALIBRATION_TOLERANCE) * target_epsilon
    hi = 1.0
    eps_hi = eps(hi)
    while eps_hi > target_epsilon:  # grow until private enough
        hi *= 2.0
        if hi > _MAX_SIGMA:
            raise PrivacyError(
                f"target_epsilon={target_epsilon!r} cannot be reached with delta={delta!r}, "
                f"sample_rate={sample_rate!r}, steps={steps!r} (noise_multiplier > {_MAX_SIGMA:g})."
            )
        eps_hi = eps(hi)
    if eps_hi >= lower_ok:
        return hi
    lo = hi / 2.0
    while eps(lo) <= target_epsilon:  # shrink until not private enough
        hi, lo = lo, lo / 2.0
        if lo < _MIN_SIGMA:
            raise PrivacyError(
                f"target_epsilon={target_epsilon!r} is so large that almost no noise is needed "
                f"(noise_multiplier < {_MIN_SIGMA:g}); use epsilon=inf for a non-private model."
            )
    eps_hi = eps(hi)
    for _ in range(200):
        if eps_hi >= lower_ok:
            return hi
        mid = 0.5 * (lo + hi)
        eps_mid = eps(mid)
        if eps_mid > target_epsilon:
            lo = mid
        else:
            hi, eps_hi = mid, eps_mid
    if eps_hi >= lower_ok:  # pragma: no cover - bisection converges long before
        return hi
    raise PrivacyError(  # pragma: no cover - only with a non-monotone accountant
        f"Could not calibrate the noise multiplier to epsilon={target_epsilon!r} within "
        f"{CALIBRATION_TOLERANCE:.0%} with the {accountant!r} accountant."
    )


@dataclass(frozen=True)
class PrivacyRecord:
    """What one DP training spent: enough to recompute ε from scratch."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str
    delta: float
    epsilon: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``inf`` max_grad_norm / epsilon are written as ``"inf"``)."""
        out = asdict(self)
        for key in ("max_grad_norm", "epsilon"):
            if math.isinf(out[key]):
                out[key] = "inf"
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyRecord:
        """Inverse of :meth:`to_dict`; validates every field (PrivacyError names the field)."""
        if not isinstance(data, Mapping):
            raise PrivacyError(f"A privacy record must be a mapping. Got {type(data).__name__}.")
        fields = (
            "noise_multiplier",
            "sample_rate",
            "steps",
            "max_grad_norm",
            "accountant",
            "delta",
            "epsilon",
        )
        missing = [f for f in fields if f not in data]
        if missing:
            raise PrivacyError(f"Privacy record is missing the field(s) {missing}.")
        extra = sorted(set(data) - set(fields))
        if extra:
            raise PrivacyError(f"Privacy record has unknown field(s) {extra}.")

        def num(name: str, allow_inf: bool = False) -> float:
            v = data[name]
            if allow_inf and v == "inf":
                return math.inf
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise PrivacyError(
                    f"Privacy record field '{name}' must be a number. Got {v!r} instead."
                )
            v = float(v)
            if math.isnan(v) or (math.isinf(v) and not allow_inf):
                raise PrivacyError(f"Privacy record field '{name}' must be finite. Got {v!r}.")
            return v

        sigma = num("noise_multiplier")
        q = num("sample_rate")
        c = num("max_grad_norm", allow_inf=True)
        delta = num("delta")
        eps = num("epsilon", allow_inf=True)
        steps = data["steps"]
        acc = data["accountant"]
        if not isinstance(acc, str):
            raise PrivacyError(f"Privacy record field 'accountant' must be a string. Got {acc!r}.")
        _check_accountant(acc)
        _check("noise_multiplier", sigma, low=0, low_inclusive=True, owner="the privacy record")
        _check("sample_rate", q, low=0, high=1, high_inclusive=True, owner="the privacy record")
        _check_steps(steps)
        _check("max_grad_norm", c, low=0, owner="the privacy record")
        _check("delta", delta, low=0, high=1, owner="the privacy record")
        _check("epsilon", eps, low=0, owner="the privacy record")
        if (sigma == 0) != math.isinf(eps):
            raise PrivacyError(
                "Privacy record field 'epsilon' must be inf exactly when noise_multiplier is 0."
            )
        return cls(sigma, q, steps, c, acc, delta, eps)

    def recompute_epsilon(self) -> float:
        """ε recomputed from (σ, q, steps, δ) with the recorded accountant."""
        return compute_epsilon(
            self.noise_multiplier, self.sample_rate, self.steps, self.delta, self.accountant
        )


def compose_epsilon(
    records: Iterable[PrivacyRecord], delta: float, accountant: str = "rdp"
) -> float:
    """ε of several trainings on the same data, composed sequentially.

    All ``(σ, q, steps)`` triples go into one accountant's history, which is tighter than
    adding the individual ε's.
    """
    _check_accountant(accountant)
    _check_delta(delta)
    history = [(r.noise_multiplier, r.sample_rate, r.steps) for r in records]
    if not history:
        return 0.0
    return _epsilon_of_history(history, delta, accountant)
