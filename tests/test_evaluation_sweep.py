from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from threedgl.errors import ThreedglError
from threedgl.evaluation import SweepResult, interleave_classes, size_sweep
from threedgl.evaluation.sweep import sweep_sizes
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", ("a", "b"))), target="y")


def pool(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    return pd.DataFrame({"x": x, "y": np.where(x > 0.5, "b", "a")})


def test_sizes_geometric_step_and_cap() -> None:
    assert sweep_sizes(1000, start=200, growth=1.5) == [200, 300, 450, 675, 1000]
    assert sweep_sizes(1000, start=200, growth=1.5, max_size=500) == [200, 300, 450, 500]
    assert sweep_sizes(55, start=10, step=20) == [10, 30, 50, 55]
    assert sweep_sizes(5, start=200) == [5]
    assert sweep_sizes(4, start=1, growth=1.01) == [1, 2, 3, 4]  # always at least one more row


def test_sweep_picks_best_and_stops_on_plateau() -> None:
    curve = {10: 0.5, 20: 0.6, 30: 0.7, 40: 0.7, 50: 0.65, 60: 0.69, 70: 0.9, 80: 0.95}
    calls: list[int] = []

    def metric(prefix: pd.DataFrame, selection: pd.DataFrame) -> float:
        calls.append(len(prefix))
        return curve[len(prefix)]

    res = size_sweep(pool(80), pool(10, 1), SCHEMA, start=10, step=10, patience=3, metric=metric)
    assert isinstance(res, SweepResult)
    assert res.best_size == 30 and res.best_score == 0.7  # the smallest size reaching the best
    assert res.sizes == (10, 20, 30, 40, 50, 60) == tuple(calls)  # stopped after 3 without gain
    assert list(res.curve.columns) == ["size", "score"] and len(res.curve) == 6
    assert res.metric == "metric"
    assert len(res.best_prefix(pool(80))) == 30
    # with more patience the later peak is found
    res = size_sweep(pool(80), pool(10, 1), SCHEMA, start=10, step=10, patience=4, metric=metric)
    assert res.best_size == 80 and res.sizes[-1] == 80
    # min_delta: a gain of 0.1 or less over the best so far does not count
    res = size_sweep(
        pool(80), pool(10, 1), SCHEMA, start=10, step=10, patience=2, metric=metric, min_delta=0.1
    )
    assert res.best_size == 30 and res.sizes == (10, 20, 30, 40, 50)
    res = size_sweep(
        pool(80), pool(10, 1), SCHEMA, start=10, step=10, patience=1, metric=metric, min_delta=0.1
    )
    assert res.best_size == 10 and res.sizes == (10, 20)


def test_nan_scores_never_improve() -> None:
    res = size_sweep(
        pool(50), pool(10), SCHEMA, start=10, step=10, metric=lambda p, s: float("nan")
    )
    assert res.sizes == (10, 20, 30) and np.isnan(res.best_score)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "auc"])
def test_sweep_with_logistic_regression(metric: str) -> None:
    # the first 40 rows have their labels flipped: small prefixes score badly
    syn = pool(600)
    syn.loc[:39, "y"] = syn.loc[:39, "y"].map({"a": "b", "b": "a"})
    res = size_sweep(syn, pool(200, 1), SCHEMA, start=40, growth=2.0, patience=2, metric=metric)
    assert res.scores[0] < 0.5
    assert res.best_size > 40 and res.best_score > 0.9
    assert res.to_dict()["best_size"] == res.best_size


def test_interleave_keeps_class_proportions_in_every_prefix() -> None:
    df = pd.DataFrame({"x": np.linspace(0, 1, 100), "y": ["a"] * 75 + ["b"] * 25})
    out = interleave_classes(df, SCHEMA, random_state=3)
    assert sorted(out["x"]) == sorted(df["x"]) and len(out) == 100
    n_b = np.cumsum(out["y"].to_numpy() == "b")
    assert np.all(np.abs(n_b - 0.25 * np.arange(1, 101)) <= 1.0)
    assert (out["y"].iloc[:8] == "b").sum() == 2


def test_user_errors() -> None:
    with pytest.raises(ThreedglError, match="'patience' parameter"):
        size_sweep(pool(50), pool(10), SCHEMA, patience=0)
    with pytest.raises(ThreedglError, match="'growth' parameter"):
        size_sweep(pool(50), pool(10), SCHEMA, growth=1.0)
    with pytest.raises(ThreedglError, match="'step' parameter"):
        size_sweep(pool(50), pool(10), SCHEMA, step=0)
    with pytest.raises(ThreedglError, match="'metric' parameter"):
        size_sweep(pool(50), pool(10), SCHEMA, metric="precision")
    with pytest.raises(ThreedglError, match="'start' parameter"):
        size_sweep(pool(50), pool(10), SCHEMA, start=0)


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_report_scores_are_the_fitted_models_scores_on_the_report_table(metric: str) -> None:
    """report_df: each model the sweep fitted, scored on another table; equal to training
    that prefix again and scoring it there, and never changing the selection."""
    from threedgl.evaluation import minority_label, utility_scores

    syn = pool(600)
    syn.loc[:39, "y"] = syn.loc[:39, "y"].map({"a": "b", "b": "a"})
    selection, report = pool(200, 1), pool(300, 2)
    # A different report table whose labels are flipped: it would pick another size.
    flipped = report.assign(y=report["y"].map({"a": "b", "b": "a"}))
    plain = size_sweep(syn, selection, SCHEMA, start=40, growth=2.0, patience=2, metric=metric)
    for table in (report, flipped):
        res = size_sweep(syn, selection, SCHEMA, start=40, growth=2.0, patience=2,
                         metric=metric, report_df=table)
        assert (res.sizes, res.scores, res.best_size) == (plain.sizes, plain.scores,
                                                          plain.best_size)
        pos = minority_label(selection, SCHEMA)  # size_sweep's default positive label
        refit = [utility_scores(syn.iloc[:n], table, SCHEMA, positive_label=pos)[metric]
                 for n in res.sizes]
        assert res.report_scores == pytest.approx(refit, abs=1e-12)
        curve = res.report_curve("test")
        assert curve.scores == res.report_scores and curve.best_size == res.best_size
        assert curve.best_score == res.report_scores[res.sizes.index(res.best_size)]
        assert res.to_dict()["report_scores"] == list(res.report_scores)
    with pytest.raises(ThreedglError, match="without a report_df"):
        plain.report_curve()
