"""Tests of threedgl.privacy.accounting."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from threedgl.errors import PrivacyError, ThreedglError
from threedgl.privacy.accounting import (
    ACCOUNTANTS,
    calibrate_noise_multiplier,
    compute_epsilon,
    rdp_optimal_order,
)
from threedgl.privacy.record import PrivacyRecord, compose_epsilon


def test_accountants_listed() -> None:
    assert ACCOUNTANTS == ("rdp", "prv")


def test_rdp_known_answer() -> None:
    # value computed once with Opacus 1.6's RDPAccountant
    eps = compute_epsilon(1.0, 0.01, 1000, 1e-5, "rdp")
    assert eps == pytest.approx(2.1013652716430564, rel=1e-6)
    acc = RDPAccountant()
    for _ in range(1000):
        acc.step(noise_multiplier=1.0, sample_rate=0.01)
    assert eps == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-12)


def test_rdp_optimal_order_known_answer() -> None:
    assert rdp_optimal_order(1.234375, 256 / 30000, 3516, 1e-4) == pytest.approx(8.1)
    acc = RDPAccountant()
    acc.history = [(1.171875, 256 / 30000, 3516)]
    assert (
        rdp_optimal_order(1.171875, 256 / 30000, 3516, 1e-4) == acc.get_privacy_spent(delta=1e-4)[1]
    )
    assert math.isnan(rdp_optimal_order(0.0, 0.1, 10, 1e-4))


def test_prv_known_answer() -> None:
    eps = compute_epsilon(1.0, 0.01, 1000, 1e-5, "prv")
    assert eps == pytest.approx(1.838371637017295, rel=1e-6)  # computed once, Opacus 1.6
    assert eps < compute_epsilon(1.0, 0.01, 1000, 1e-5, "rdp")  # PRV is tighter


def test_zero_noise_is_infinite() -> None:
    assert compute_epsilon(0.0, 0.5, 10, 1e-5) == math.inf
    assert compute_epsilon(0.0, 0.5, 10, 1e-5, "prv") == math.inf


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"accountant": "gdp"}, "accountant"),
    ],
)
def test_compute_epsilon_validates(kwargs: dict[str, object], word: str) -> None:
    args: dict[str, object] = {
        "noise_multiplier": 1.0,
        "sample_rate": 0.1,
        "steps": 10,
        "delta": 1e-5,
        "accountant": "rdp",
    }
    args.update(kwargs)
    with pytest.raises(PrivacyError, match=word):
        compute_epsilon(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -1.0}, "target_epsilon"),
        ({"target_epsilon": math.inf}, "target_epsilon"),
        ({"target_epsilon": math.nan}, "target_epsilon"),
        ({"delta": 2.0}, "delta"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"steps": 0}, "steps"),
    ],
)
def test_calibrate_validates(kwargs: dict[str, object], word: str) -> None:
    args: dict[str, object] = {
        "target_epsilon": 1.0,
        "delta": 1e-5,
        "sample_rate": 0.1,
        "steps": 10,
    }
    args.update(kwargs)
    with pytest.raises(PrivacyError, match=word):
        calibrate_noise_multiplier(**args)  # type: ignore[arg-type]


def test_privacy_error_is_threedgl_error() -> None:
    assert issubclass(PrivacyError, ThreedglError)


@settings(max_examples=8, deadline=None)
@given(
    q=st.floats(1e-3, 1.0),
    steps=st.integers(1, 3000),
    delta=st.sampled_from([1e-3, 1e-4, 1e-5, 1e-6]),
    target=st.sampled_from([0.3, 1.0, 1.9, 5.0]),
)
def test_calibrated_epsilon_within_two_percent(
    q: float, steps: int, delta: float, target: float
) -> None:
    sigma = calibrate_noise_multiplier(target, delta, q, steps)
    eps = compute_epsilon(sigma, q, steps, delta)
    assert eps <= target
    assert eps >= 0.98 * target


def test_calibrate_prv() -> None:
    sigma = calibrate_noise_multiplier(1.9, 1e-4, 0.02, 500, "prv")
    eps = compute_epsilon(sigma, 0.02, 500, 1e-4, "prv")
    assert 0.98 * 1.9 <= eps <= 1.9


def _record() -> PrivacyRecord:
    sigma = calibrate_noise_multiplier(1.9, 1e-4, 0.01, 2000)
    return PrivacyRecord(
        sigma, 0.01, 2000, 1.0, "rdp", 1e-4, compute_epsilon(sigma, 0.01, 2000, 1e-4)
    )


def test_record_json_round_trip() -> None:
    rec = _record()
    back = PrivacyRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec
    assert rec.recompute_epsilon() == rec.epsilon
    inf_rec = PrivacyRecord(0.0, 0.5, 10, math.inf, "rdp", 1e-5, math.inf)
    text = json.dumps(inf_rec.to_dict(), allow_nan=False)
    assert PrivacyRecord.from_dict(json.loads(text)) == inf_rec


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("noise_multiplier", "1.0"),
        ("noise_multiplier", -1.0),
        ("sample_rate", 0.0),
        ("steps", 1.5),
        ("steps", True),
        ("max_grad_norm", 0.0),
        ("accountant", "moments"),
        ("accountant", 3),
        ("delta", 1.0),
        ("epsilon", -0.5),
        ("epsilon", "inf"),  # inf epsilon with positive noise is inconsistent
    ],
)
def test_record_from_dict_names_bad_field(field: str, value: object) -> None:
    data = _record().to_dict()
    data[field] = value
    with pytest.raises(PrivacyError, match=field):
        PrivacyRecord.from_dict(data)


def test_record_from_dict_missing_and_extra() -> None:
    data = _record().to_dict()
    del data["delta"]
    with pytest.raises(PrivacyError, match="delta"):
        PrivacyRecord.from_dict(data)
    data = _record().to_dict()
    data["colour"] = 1
    with pytest.raises(PrivacyError, match="colour"):
        PrivacyRecord.from_dict(data)
    with pytest.raises(PrivacyError):
        PrivacyRecord.from_dict([1, 2])  # type: ignore[arg-type]


def test_compose_epsilon() -> None:
    rec = _record()
    two = compose_epsilon([rec, rec], 1e-4)
    assert two == pytest.approx(compute_epsilon(rec.noise_multiplier, 0.01, 4000, 1e-4), rel=1e-9)
    assert rec.epsilon < two < 2 * rec.epsilon  # tighter than adding ε's
    assert compose_epsilon([rec], 1e-4) == pytest.approx(rec.epsilon, rel=1e-12)
    assert compose_epsilon([], 1e-4) == 0.0
    other = PrivacyRecord(2.0, 0.05, 100, 1.0, "rdp", 1e-4, compute_epsilon(2.0, 0.05, 100, 1e-4))
    assert compose_epsilon([rec, other], 1e-4) > max(rec.epsilon, other.epsilon)
    free = PrivacyRecord(0.0, 0.05, 100, math.inf, "rdp", 1e-4, math.inf)
    assert compose_epsilon([rec, free], 1e-4) == math.inf


def test_prv_grid_model_is_the_accountants_own_domain() -> None:
    """The cost model builds Opacus's domain without its arrays: the same size."""
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV

    from threedgl.privacy.accounting import prv_grid_points

    for sigma, q, steps, delta in [(1.0, 0.01, 1000, 1e-5), (1.5, 0.05, 300, 1e-4)]:
        acc = PRVAccountant()
        domain = acc._get_domain([PoissonSubsampledGaussianPRV(q, sigma)], [steps],
                                 eps_error=0.01, delta_error=delta / 1000)
        assert abs(prv_grid_points([(sigma, q, steps)], delta) - domain.size) <= 3


def test_a_prv_history_with_a_huge_grid_is_refused_before_the_accountant_runs() -> None:
    """Issue 20, item 4: σ = 0.8, q = 0.5, 10,000 steps allocated arrays of 1.25–3.7 GiB
    (MemoryError → 500); σ = 1.28, q = 0.08 took 3.8 s. Both are refused in milliseconds
    by the grid model, and calibration steps around such σ instead of failing."""
    import resource
    import time

    from threedgl.privacy.accounting import MAX_PRV_POINTS, prv_grid_points

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    for sigma, q in [(0.8, 0.5), (1.28, 0.08)]:
        assert prv_grid_points([(sigma, q, 10_000)], 1e-5) > MAX_PRV_POINTS
        with pytest.raises(PrivacyError, match=r"PRV accountant .* points, above the limit"):
            compute_epsilon(sigma, q, 10_000, 1e-5, "prv")
    assert time.process_time() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    sigma = calibrate_noise_multiplier(1.9, 1e-5, 0.08, 10_000, "prv")
    assert prv_grid_points([(sigma, 0.08, 10_000)], 1e-5) <= MAX_PRV_POINTS
    assert compute_epsilon(sigma, 0.08, 10_000, 1e-5, "prv") <= 1.9


@pytest.mark.slow
def test_calibration_stops_at_the_prv_grid_limit_with_a_warning() -> None:
    """A target so loose that the grid, not ε, sets the least noise: calibration used to
    search 200 steps (150 s) and fail; it returns the grid's σ (ε below the target) and
    says so."""
    import warnings

    from threedgl.privacy.accounting import MAX_PRV_POINTS, prv_grid_points

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sigma = calibrate_noise_multiplier(100.0, 1e-4, 0.5, 3000, "prv")
    assert any("grid limit" in str(w.message) for w in caught)
    assert prv_grid_points([(sigma, 0.5, 3000)], 1e-4) <= MAX_PRV_POINTS
    assert compute_epsilon(sigma, 0.5, 3000, 1e-4, "prv") < 100.0


def test_composing_many_prv_trainings_falls_back_to_rdp() -> None:
    """A ledger of PRV trainings whose composed grid is too large is composed with RDP
    (an upper bound at any cost) instead of failing."""
    from threedgl.privacy.record import PrivacyRecord, compose_epsilon

    record = PrivacyRecord(1.0, 0.01, 10_000, 1.0, "prv", 1e-5,
                           compute_epsilon(1.0, 0.01, 10_000, 1e-5, "prv"))
    both = compose_epsilon([record, record], 1e-5, "prv")
    assert both == pytest.approx(compose_epsilon([record, record], 1e-5, "rdp"))
