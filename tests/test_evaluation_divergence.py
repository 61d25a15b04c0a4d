from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threedgl.errors import ThreedglError
from threedgl.evaluation import feature_kld, mean_kld, tld
from threedgl.evaluation.divergence import histogram, kl_divergence
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("n", 0, 10),
        NumericColumn("k", 0, 4, integer=True),
        CategoricalColumn("c", ("a", "b")),
        CategoricalColumn("t", (0, 1)),
    ),
    target="t",
)


def test_kld_by_hand() -> None:
    real = pd.DataFrame(
        {"n": [1.0, 2, 6, 12], "k": [0, 0, 1, 4], "c": ["a", "a", "a", "b"], "t": 0}
    )
    syn = pd.DataFrame({"n": [1.0, 6, 7, 8], "k": [0, 1, 1, 4], "c": ["a", "b", "b", "b"], "t": 1})
    kl = feature_kld(real, syn, SCHEMA, bins=2, smoothing=1.0)
    assert set(kl) == {"n", "k", "c"}  # features only
    # c: counts [3, 1] vs [1, 3] -> p = [4/6, 2/6], q = [2/6, 4/6]
    assert kl["c"] == pytest.approx(math.log(2) / 3)
    # n: bins [0, 5) and [5, 10] (12 clipped into the last): [2, 2] vs [1, 3]
    p, q = np.array([3, 3]) / 6, np.array([2, 4]) / 6
    assert kl["n"] == pytest.approx(float(np.sum(p * np.log(p / q))))
    # k: integer range 0..4 has 5 values > bins=2, so 2 equal-width bins too: [3, 1] vs [3, 1]
    assert kl["k"] == pytest.approx(0.0)
    assert mean_kld(real, syn, SCHEMA, bins=2) == pytest.approx(np.mean(list(kl.values())))


def test_histogram_bins() -> None:
    k = SCHEMA["k"]
    assert histogram(pd.Series([0, 1, 1, 4]), k, bins=20).tolist() == [1, 2, 0, 0, 1]
    assert len(histogram(pd.Series([0, 4]), k, bins=3)) == 3
    assert histogram(pd.Series([-3.0, 0.0, 5.0, 10.0, 99.0]), SCHEMA["n"], bins=2).tolist() == [
        2,
        3,
    ]
    assert histogram(pd.Series(["b", "b"], dtype=object), SCHEMA["c"]).tolist() == [0, 2]
    const = NumericColumn("z", 3, 3)
    assert histogram(pd.Series([3.0, 3.0]), const).tolist() == [2]


def test_kld_zero_on_identical_positive_otherwise() -> None:
    rng = np.random.default_rng(0)
    real = pd.DataFrame(
        {
            "n": rng.uniform(0, 10, 300),
            "k": rng.integers(0, 5, 300),
            "c": rng.choice(["a", "b"], 300),
            "t": 0,
        }
    )
    assert all(v == 0.0 for v in feature_kld(real, real.copy(), SCHEMA).values())
    shifted = real.assign(n=np.clip(real["n"] + 3, 0, 10), k=0, c="a")
    assert all(v > 0.1 for v in feature_kld(real, shifted, SCHEMA).values())


def test_tld_formula() -> None:
    assert tld(2.0, 0.5, 0.75) == pytest.approx(math.sqrt(2))
    assert tld(0.3, 0.6, 0.5) == pytest.approx(math.sqrt(0.5))
    assert tld(5.0, 1.0, 1.0) == 1.0
    assert tld(0.0, 0.5, 0.5) == 0.0


def test_user_errors() -> None:
    with pytest.raises(ThreedglError, match="'accuracy' parameter"):
        tld(1.0, 57.26, 0.6)  # percent, not a fraction
    with pytest.raises(ThreedglError, match="'auc' parameter"):
        tld(1.0, 0.5, 60.98)
    with pytest.raises(ThreedglError, match="'kld' parameter"):
        tld(-1.0, 0.5, 0.5)
    df = pd.DataFrame({"n": [1.0], "k": [1], "c": ["a"], "t": [0]})
    with pytest.raises(ThreedglError, match="'bins' parameter"):
        feature_kld(df, df, SCHEMA, bins=0)
    with pytest.raises(ThreedglError, match="'smoothing' parameter"):
        feature_kld(df, df, SCHEMA, smoothing=-1.0)


counts = st.integers(2, 8).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 100), min_size=k, max_size=k),
        st.lists(st.integers(0, 100), min_size=k, max_size=k),
    )
)


@settings(max_examples=100, deadline=None)
@given(counts, st.floats(0.01, 5.0))
def test_kl_nonnegative_and_zero_on_self(pq: tuple[list[int], list[int]], smoothing: float) -> None:
    p, q = np.array(pq[0]), np.array(pq[1])
    assert kl_divergence(p, q, smoothing=smoothing) >= 0.0
    assert math.isfinite(kl_divergence(p, q, smoothing=smoothing))
    assert kl_divergence(p, p, smoothing=smoothing) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(-5, 15), min_size=1, max_size=30),
    st.lists(st.floats(-5, 15), min_size=1, max_size=30),
)
def test_feature_kld_nonnegative(a: list[float], b: list[float]) -> None:
    real = pd.DataFrame({"n": a, "k": 1, "c": "a", "t": 0})
    syn = pd.DataFrame({"n": b, "k": 2, "c": "b", "t": 1})
    kl = feature_kld(real, syn, SCHEMA)
    assert all(v >= 0.0 and math.isfinite(v) for v in kl.values())


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e6), st.floats(1e-3, 1.0), st.floats(0.0, 1.0))
def test_tld_finite_and_nonnegative(kld: float, accuracy: float, auc: float) -> None:
    value = tld(kld, accuracy, auc)
    assert math.isfinite(value) and value >= 0.0
    if auc == 1.0:
        assert value == 1.0
