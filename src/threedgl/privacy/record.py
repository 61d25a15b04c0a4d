"""A class model's privacy record: what one DP training spent, enough to recompute ε.

:class:`PrivacyRecord` is what a ``.3dgl`` manifest carries per class model; it is read
from strangers' files, so every field is bounded before any accounting (the bounds below)
and :meth:`PrivacyRecord.verify` recomputes ε with the accountants of
:mod:`threedgl.privacy.accounting`. :func:`compose_epsilon` composes several trainings on
the same data (the local ledger, the Global Server's budget across uploads).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from threedgl.errors import PrivacyError
from threedgl.privacy.accounting import (
    MAX_PRV_POINTS,
    MAX_RDP_ORDER,
    _check,
    _check_accountant,
    _check_delta,
    _check_mechanism,
    _check_steps,
    _conversion,
    _epsilon_of_history,
    compute_epsilon,
    epsilon_at_order,
    prv_grid_points,
    rdp_optimal_order,
    subsampled_gaussian_rdp,
)

__all__ = ["EPSILON_TOLERANCE", "PrivacyRecord", "check_verification_cost", "compose_epsilon"]


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

#: The PRV accountant's grid points summed over one file's distinct PRV records: the cost
#: of verifying a file is bounded whatever its number of class models (under 1 s of CPU;
#: the paper-mode trainings of the bundled datasets need 50,000-300,000 points each).
MAX_PRV_POINTS_PER_FILE = MAX_PRV_POINTS
#: What a PRV record is charged at least (its fixed cost, as grid points): at most 10
#: distinct PRV records per file.
MIN_PRV_CHARGE = 100_000

#: Optional fields of a record composed at a fixed Rényi order (DDP-βVAE's default mode).
ANCHOR_FIELDS = ("rdp_order", "count_noise_multiplier", "marginals_noise_multiplier")
#: ... and, in files written since the two-way measurements, the noise multiplier of the
#: Gaussian release of the selected two-way marginals (run after DP-Adam).
PAIRS_FIELD = "pairs_noise_multiplier"


@dataclass(frozen=True)
class PrivacyRecord:
    """What one DP training spent: enough to recompute ε from scratch.

    ``noise_multiplier``, ``sample_rate`` and ``steps`` describe DP-Adam (or the one
    Gaussian release of the marginals baseline). A record of DDP-βVAE's default mode also
    has ``rdp_order`` (the fixed Rényi order α of the composition), and the noise
    multipliers of the Gaussian count (sensitivity 1) and of the Gaussian one-way
    histograms (the marginal anchor; noise multiplier relative to its L2 sensitivity)
    and, optionally, of the Gaussian two-way marginals measured after DP-Adam; its
    ``epsilon`` is the composition of them all at α (see the module docstring).
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
    pairs_noise_multiplier: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``inf`` max_grad_norm / epsilon are written as ``"inf"``)."""
        out = asdict(self)
        for key in ("max_grad_norm", "epsilon"):
            if math.isinf(out[key]):
                out[key] = "inf"
        for key in (*ANCHOR_FIELDS, PAIRS_FIELD):  # absent in single-mechanism records
            if out[key] is None:
                del out[key]
        return out

    def history(self) -> list[tuple[float, float, int]]:
        """Every mechanism as ``(noise_multiplier, sample_rate, steps)``, in the order run."""
        parts = [(s, 1.0, 1) for s in (self.count_noise_multiplier,
                                       self.marginals_noise_multiplier) if s is not None]
        after = [(self.pairs_noise_multiplier, 1.0, 1)] if self.pairs_noise_multiplier else []
        return [*parts, (self.noise_multiplier, self.sample_rate, self.steps), *after]

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
        extra = sorted(set(data) - set(fields) - set(ANCHOR_FIELDS) - {PAIRS_FIELD})
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
        pairs = None
        if PAIRS_FIELD in data:
            if not present:
                raise PrivacyError(f"Privacy record field '{PAIRS_FIELD}' needs the fields "
                                   f"{list(ANCHOR_FIELDS)} (a composition at a fixed order).")
            pairs = num(PAIRS_FIELD)
            _check(PAIRS_FIELD, pairs, low=MIN_RECORD_SIGMA, high=MAX_RECORD_SIGMA,
                   low_inclusive=True, high_inclusive=True, owner=owner)
        return cls(sigma, q, steps, c, acc, delta, eps, **anchor, pairs_noise_multiplier=pairs)

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




def check_verification_cost(records: Iterable[PrivacyRecord]) -> None:
    """Refuse records whose verification would cost more than a file may (before any runs).

    RDP records cost a few milliseconds each whatever their steps; a PRV record's cost is
    its grid (:func:`~threedgl.privacy.accounting.prv_grid_points`), at least
    :data:`MIN_PRV_CHARGE` points for its fixed cost (the grid's own RDP bound and the
    accountant's set-up), each at most :data:`~threedgl.privacy.accounting.MAX_PRV_POINTS`
    and, summed over a file's distinct records, at most :data:`MAX_PRV_POINTS_PER_FILE`.
    The number of distinct PRV records is checked before any grid is computed.
    """
    distinct = [r for r in dict.fromkeys(records)  # identical records are verified once
                if r.accountant == "prv" and r.noise_multiplier != 0]
    most = MAX_PRV_POINTS_PER_FILE // MIN_PRV_CHARGE
    if len(distinct) > most:
        raise PrivacyError(
            f"the file holds {len(distinct)} distinct PRV records, above the limit of {most} "
            "per file (each costs about 0.1 s or more to verify); train with accountant 'rdp'")
    total = 0
    for record in distinct:
        total += max(MIN_PRV_CHARGE, prv_grid_points(record.history(), record.delta))
        if total > MAX_PRV_POINTS_PER_FILE:
            raise PrivacyError(
                f"verifying these PRV records would discretise {total:,}+ points in all, "
                f"above the limit of {MAX_PRV_POINTS_PER_FILE:,} per file; train with "
                "accountant 'rdp'")


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
        if (accountant == "prv" and all(sigma > 0 for sigma, _, _ in history)
                and prv_grid_points(history, delta) > MAX_PRV_POINTS):
            accountant = "rdp"  # many trainings composed: RDP's upper bound, at any cost
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
