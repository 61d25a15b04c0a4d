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

Composition at a fixed Rényi order (DDP-βVAE's default mode). A class model there runs
three mechanisms in sequence: a Gaussian count of its rows, Gaussian one-way histograms
(the marginal anchor), then DP-Adam, whose sampling rate, steps and noise are chosen
*from the noisy count*. Because the later parameters depend on an earlier output, the
order α is fixed before any data is seen (:func:`rdp_order`: a function of (ε, δ) only)
and every mechanism is charged its Rényi divergence at that α: by adaptive composition
of RDP at a fixed order (Mironov 2017, Prop. 1; Feldman & Zrnic 2021), the sum bounds the
whole release whatever the noisy count was, and Balle et al.'s conversion at α gives ε.
The Rényi divergences are Opacus's (``opacus.accountants.analysis.rdp``).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.accountant import IAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from threedgl.errors import PrivacyError, ThreedglError, check_int, check_range

__all__ = [
    "ACCOUNTANTS",
    "PrivacyRecord",
    "calibrate_at_order",
    "calibrate_noise_multiplier",
    "compose_epsilon",
    "compute_epsilon",
    "epsilon_at_order",
    "gaussian_rdp",
    "rdp_budget",
    "rdp_optimal_order",
    "rdp_order",
    "subsampled_gaussian_rdp",
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
    check_int("steps", steps, low=1, error=PrivacyError)


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


#: A recorded ε smaller than ``(1 - EPSILON_TOLERANCE)`` × the recomputed ε is refused.
EPSILON_TOLERANCE = 0.01

#: Bounds of a privacy record read from a file: they keep the accountants in their
#: numerically sound range and bound the cost of recomputing ε (measured: the PRV
#: accountant takes about 1 s and 130 MB at 10,000 steps, and grows with steps; RDP's
#: cost does not depend on steps).
MIN_RECORD_SIGMA = 1e-3
MAX_RECORD_SIGMA = 1e6
MIN_RECORD_SAMPLE_RATE = 1e-7
MAX_RECORD_STEPS = 10_000_000
MAX_PRV_STEPS = 10_000
MIN_RECORD_DELTA = 1e-300

#: Optional fields of a record composed at a fixed Rényi order (DDP-βVAE's default mode).
ANCHOR_FIELDS = ("rdp_order", "count_noise_multiplier", "marginals_noise_multiplier")


@dataclass(frozen=True)
class PrivacyRecord:
    """What one DP training spent: enough to recompute ε from scratch.

    ``noise_multiplier``, ``sample_rate`` and ``steps`` describe DP-Adam (or the one
    Gaussian release of the marginals baseline). A record of DDP-βVAE's default mode also
    has ``rdp_order`` (the fixed Rényi order α of the composition), and the noise
    multipliers of the Gaussian count (sensitivity 1) and of the Gaussian one-way
    histograms (the marginal anchor; noise multiplier relative to its L2 sensitivity);
    its ``epsilon`` is the composition of the three at α (see the module docstring).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str
    delta: float
    epsilon: float
    rdp_order: float | None = None
    count_noise_multiplier: float | None = None
    marginals_noise_multiplier: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``inf`` max_grad_norm / epsilon are written as ``"inf"``)."""
        out = asdict(self)
        for key in ("max_grad_norm", "epsilon"):
            if math.isinf(out[key]):
                out[key] = "inf"
        for key in ANCHOR_FIELDS:  # absent in single-mechanism records
            if out[key] is None:
                del out[key]
        return out

    def history(self) -> list[tuple[float, float, int]]:
        """Every mechanism as ``(noise_multiplier, sample_rate, steps)``, in the order run."""
        parts = [(s, 1.0, 1) for s in (self.count_noise_multiplier,
                                       self.marginals_noise_multiplier) if s is not None]
        return [*parts, (self.noise_multiplier, self.sample_rate, self.steps)]

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
        extra = sorted(set(data) - set(fields) - set(ANCHOR_FIELDS))
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
            raise PrivacyError(
                f"Privacy record field 'accountant' must be a string. Got {ascii(acc)[:40]}."
            )
        _check_accountant(acc)
        owner = "the privacy record"
        if sigma != 0:
            _check("noise_multiplier", sigma, low=MIN_RECORD_SIGMA, high=MAX_RECORD_SIGMA,
                   low_inclusive=True, high_inclusive=True, owner=owner)
        _check("sample_rate", q, low=MIN_RECORD_SAMPLE_RATE, high=1, low_inclusive=True,
               high_inclusive=True, owner=owner)
        _check_steps(steps)
        _check("steps", steps, high=MAX_RECORD_STEPS, high_inclusive=True, owner=owner,
               kind="an int")
        if acc == "prv":
            _check("steps", steps, high=MAX_PRV_STEPS, high_inclusive=True, kind="an int",
                   owner="a record of the 'prv' accountant (its cost grows with steps)")
        _check("max_grad_norm", c, low=0, owner=owner)
        _check("delta", delta, low=MIN_RECORD_DELTA, high=1, low_inclusive=True, owner=owner)
        _check("epsilon", eps, low=0, low_inclusive=True, owner=owner)
        if (sigma == 0) != math.isinf(eps):
            raise PrivacyError(
                "Privacy record field 'epsilon' must be inf exactly when noise_multiplier is 0."
            )
        anchor: dict[str, float | None] = {k: None for k in ANCHOR_FIELDS}
        present = [k for k in ANCHOR_FIELDS if k in data]
        if present and len(present) != len(ANCHOR_FIELDS):
            raise PrivacyError(
                f"Privacy record fields {list(ANCHOR_FIELDS)} go together; got only {present}."
            )
        for key in present:
            anchor[key] = num(key)
        if present:
            _check("rdp_order", anchor["rdp_order"], low=1, high=MAX_RDP_ORDER,  # type: ignore[arg-type]
                   high_inclusive=True, owner=owner)
            for key in ANCHOR_FIELDS[1:]:
                _check(key, anchor[key], low=MIN_RECORD_SIGMA, high=MAX_RECORD_SIGMA,  # type: ignore[arg-type]
                       low_inclusive=True, high_inclusive=True, owner=owner)
            if acc != "rdp":
                raise PrivacyError("A record composed at a fixed Rényi order needs accountant 'rdp'.")
            if sigma == 0:
                raise PrivacyError("A record composed at a fixed Rényi order needs noise.")
        return cls(sigma, q, steps, c, acc, delta, eps, **anchor)

    def recompute_epsilon(self) -> float:
        """ε recomputed from the recorded mechanisms and δ with the recorded accountant.

        The cost is bounded by the record's limits (:data:`MAX_RECORD_STEPS`, and
        :data:`MAX_PRV_STEPS` for the PRV accountant). A result that is not a number ≥ 0
        (a numerical failure of the accountant) raises :class:`PrivacyError`.
        """
        return _recompute(self)

    def _recompute_uncached(self) -> float:
        try:
            if self.rdp_order is None:
                eps = compute_epsilon(self.noise_multiplier, self.sample_rate, self.steps,
                                      self.delta, self.accountant)
            else:
                _check_mechanism(self.noise_multiplier, self.sample_rate, self.steps)
                _check_delta(self.delta)
                total = sum(
                    subsampled_gaussian_rdp(sigma, q, steps, self.rdp_order)
                    for sigma, q, steps in self.history()
                )
                eps = epsilon_at_order(total, self.rdp_order, self.delta)
        except ArithmeticError as exc:
            raise PrivacyError(f"epsilon cannot be recomputed from this record ({exc})") from None
        if math.isnan(eps) or eps < 0:
            raise PrivacyError(
                f"epsilon recomputed from this record is {eps!r}, not a number >= 0 "
                f"(noise_multiplier={self.noise_multiplier!r}, sample_rate="
                f"{self.sample_rate!r}, steps={self.steps}, delta={self.delta!r})"
            )
        return eps


    def verify(self, tolerance: float = EPSILON_TOLERANCE) -> float:
        """Recompute ε; raise :class:`PrivacyError` if the recorded ε understates it.

        A recorded ε below ``(1 - tolerance)`` × the recomputed one is refused: the file
        claims more privacy than its mechanisms give. Returns the recomputed ε.
        """
        recomputed = self.recompute_epsilon()
        if self.epsilon < (1.0 - tolerance) * recomputed:
            raise PrivacyError(
                f"the recorded epsilon {self.epsilon:.4g} understates the epsilon recomputed "
                f"from the record, {recomputed:.4g} (noise_multiplier={self.noise_multiplier!r}, "
                f"sample_rate={self.sample_rate!r}, steps={self.steps}, delta={self.delta!r}, "
                f"accountant={self.accountant!r}), by more than {tolerance:.0%}"
            )
        return recomputed




@functools.lru_cache(maxsize=4096)
def _recompute(record: PrivacyRecord) -> float:
    """Records are immutable: the loader and the server's check share one computation."""
    return record._recompute_uncached()


def compose_epsilon(
    records: Iterable[PrivacyRecord], delta: float, accountant: str = "rdp"
) -> float:
    """ε of several trainings on the same data, composed sequentially.

    All ``(σ, q, steps)`` triples go into one accountant's history, which is tighter than
    adding the individual ε's. Records composed at a fixed Rényi order (the default mode of
    DDP-βVAE) are valid at that order only: each is charged the Rényi divergence its ε
    stands for at its order, the others their exact divergence there, and the sum is
    converted at that order; trainings at different orders fall back to adding ε's, each
    converted at δ / k for k trainings (basic composition: the δ's add up to ``delta``).
    """
    _check_accountant(accountant)
    _check_delta(delta)
    records = list(records)
    if not records:
        return 0.0
    orders = {r.rdp_order for r in records if r.rdp_order is not None}
    if not orders:
        history = [triple for r in records for triple in r.history()]
        return _epsilon_of_history(history, delta, accountant)
    if any(math.isinf(r.epsilon) for r in records):
        return math.inf
    if len(orders) == 1:
        order = orders.pop()
        return epsilon_at_order(sum(_rdp_at(r, order) for r in records), order, delta)
    share = delta / len(records)
    total = 0.0
    for r in records:
        order = r.rdp_order if r.rdp_order is not None else rdp_optimal_order(
            r.noise_multiplier, r.sample_rate, r.steps, share)
        total += epsilon_at_order(_rdp_at(r, order), order, share)
    return total


def _rdp_at(record: PrivacyRecord, order: float) -> float:
    """The Rényi divergence at ``order`` that ``record`` is charged."""
    if record.rdp_order is not None:  # what its ε stands for (the adaptive bound)
        # A file may record an ε up to 1% below the recomputed one (EPSILON_TOLERANCE):
        # charge the larger, so a stranger's record never costs less than it spent.
        spent = max(record.epsilon, record.recompute_epsilon())
        return spent - _conversion(record.rdp_order, record.delta)
    return sum(subsampled_gaussian_rdp(s, q, t, order) for s, q, t in record.history())


# -- composition at a fixed Rényi order ----------------------------------------------------
#: The largest Rényi order accepted in a record (Opacus's default grid ends at 63).
MAX_RDP_ORDER = 256.0


def rdp_order(epsilon: float, delta: float) -> float:
    """The fixed Rényi order for a target (ε, δ), chosen before any data is seen.

    It is the order at which Opacus's RDP accountant attains ε for the Gaussian mechanism
    calibrated to (ε, δ) (8.5 for the paper's (1.9, 1e-4)); the optimal orders of
    DP-Adam's many subsampled steps lie close to it (measured: 6.8 to 8.4 on the bundled
    tables), so fixing it costs a few percent of noise.
    """
    _check("epsilon", epsilon, low=0)
    _check_delta(delta)
    sigma = calibrate_noise_multiplier(epsilon, delta, 1.0, 1, "rdp")
    return rdp_optimal_order(sigma, 1.0, 1, delta)


def _conversion(order: float, delta: float) -> float:
    """Balle et al. (2020)'s ε of a mechanism with zero Rényi divergence at ``order``."""
    return float(-(math.log(delta) + math.log(order)) / (order - 1)
                 + math.log((order - 1) / order))


def rdp_budget(epsilon: float, delta: float, order: float) -> float:
    """The Rényi divergence at ``order`` that converts to exactly (ε, δ)."""
    budget = epsilon - _conversion(order, delta)
    if budget <= 0:
        raise PrivacyError(
            f"epsilon={epsilon!r} cannot be met with delta={delta!r} at Rényi order {order!r}."
        )
    return budget


def subsampled_gaussian_rdp(
    noise_multiplier: float, sample_rate: float, steps: int, order: float
) -> float:
    """Rényi divergence at ``order`` of ``steps`` Poisson-subsampled Gaussian steps (Opacus)."""
    if noise_multiplier == 0:
        return math.inf
    with np.errstate(over="ignore"):
        return float(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=steps,
                                 orders=[order])[0])


def gaussian_rdp(noise_multiplier: float, order: float) -> float:
    """Rényi divergence of one Gaussian release: α / (2σ²) (σ relative to the sensitivity)."""
    return math.inf if noise_multiplier == 0 else order / (2.0 * noise_multiplier**2)


def epsilon_at_order(rdp: float, order: float, delta: float) -> float:
    """ε of a release whose Rényi divergence at ``order`` is ``rdp`` (Opacus's conversion)."""
    if math.isinf(rdp):
        return math.inf
    with warnings.catch_warnings():  # one order is both the smallest and the largest
        warnings.filterwarnings("ignore", message="Optimal order is the")
        eps, _ = get_privacy_spent(orders=[order], rdp=[rdp], delta=delta)
    return float(eps)


def calibrate_at_order(rdp: float, sample_rate: float, steps: int, order: float) -> float:
    """The smallest-ish σ whose subsampled-Gaussian divergence at ``order`` is ≤ ``rdp``.

    Bisection to 0.1 % of σ; the returned σ is the upper end of the bracket, so it never
    exceeds the budget.
    """
    _check("rdp", rdp, low=0)
    _check("sample_rate", sample_rate, low=0, high=1, high_inclusive=True)
    _check_steps(steps)
    hi = 1.0
    while subsampled_gaussian_rdp(hi, sample_rate, steps, order) > rdp:
        hi *= 2.0
        if hi > _MAX_SIGMA:
            raise PrivacyError(
                f"a Rényi budget of {rdp:.3g} at order {order} cannot be met with sample_rate="
                f"{sample_rate!r} and steps={steps!r} (noise_multiplier > {_MAX_SIGMA:g})."
            )
    lo = hi / 2.0
    while lo > _MIN_SIGMA and subsampled_gaussian_rdp(lo, sample_rate, steps, order) <= rdp:
        hi, lo = lo, lo / 2.0
    while hi - lo > 1e-3 * hi:
        mid = 0.5 * (lo + hi)
        if subsampled_gaussian_rdp(mid, sample_rate, steps, order) > rdp:
            lo = mid
        else:
            hi = mid
    return hi
