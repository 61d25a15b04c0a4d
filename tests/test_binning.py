"""LOGAN's gradient boosting with one sort per column: scikit-learn's own bin edges and
model, faster (``threedgl.evaluation.binning``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning as sk_binning

from threedgl.evaluation import binning
from threedgl.evaluation.binning import one_sort_binning


def _data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.c_[rng.normal(size=(n, 4)),  # > 255 distinct values: weighted percentiles
              rng.integers(0, 3, (n, 2)),  # few values: midpoints
              np.round(rng.normal(size=(n, 2)), 2),  # > 255 values, many ties
              np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))]  # missing values
    y = (rng.random(n) < 0.15).astype(int)
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    return X, y, w


@pytest.mark.skipif(binning._version() not in binning.CHECKED, reason="scikit-learn not checked")
@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_edges_and_the_same_model(seed: int) -> None:
    X, y, w = _data(seed)
    plain = sk_binning._BinMapper(random_state=0).fit(X, sample_weight=w)
    with one_sort_binning():
        assert sk_binning._weighted_percentile is not plain  # patched in the block
        fast = sk_binning._BinMapper(random_state=0).fit(X, sample_weight=w)
    assert sk_binning._weighted_percentile.__module__ == "sklearn.utils.stats"  # restored
    for a, b in zip(plain.bin_thresholds_, fast.bin_thresholds_, strict=True):
        np.testing.assert_array_equal(a, b)
    made = []
    for patched in (False, True):
        clf = HistGradientBoostingClassifier(max_iter=20, class_weight="balanced",
                                             early_stopping=False, random_state=seed)
        if patched:
            with one_sort_binning():
                clf.fit(X, y)
        else:
            clf.fit(X, y)
        made.append(clf.predict_proba(X))
    np.testing.assert_array_equal(made[0], made[1])


def test_other_calls_and_unchecked_versions_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    X, _, w = _data(2, 500)
    original = sk_binning._weighted_percentile
    with one_sort_binning():
        # a rank that binning does not ask for, and the array form, reach scikit-learn
        assert sk_binning._weighted_percentile(X[:, 0], w, 37.5, average=True) == \
            original(X[:, 0], w, 37.5, average=True)
        np.testing.assert_array_equal(
            sk_binning._weighted_percentile(X[:, 0], w, np.array([10.0, 90.0])),
            original(X[:, 0], w, np.array([10.0, 90.0])))
    monkeypatch.setattr(binning, "CHECKED", ())
    with one_sort_binning():
        assert sk_binning._weighted_percentile is original
