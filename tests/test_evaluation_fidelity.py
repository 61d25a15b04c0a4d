from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association

from threedgl.evaluation import pairwise_association, pairwise_difference, pairwise_fidelity
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("a", 0, 10),
        NumericColumn("b", 0, 10),
        CategoricalColumn("c", ("x", "y", "z")),
        CategoricalColumn("t", ("no", "yes")),
    ),
    target="t",
)

TINY = pd.DataFrame(
    {
        "a": [1.0, 2.0, 3.0, 4.0],
        "b": [2.0, 1.0, 4.0, 3.0],
        "c": ["x", "x", "y", "y"],
        "t": ["no", "yes", "no", "yes"],
    }
)


def cell(m: pd.DataFrame, row: str, col: str) -> float:
    return float(m.to_numpy()[list(m.index).index(row), list(m.columns).index(col)])


def test_association_by_hand() -> None:
    m = pairwise_association(TINY, SCHEMA)
    assert list(m.index) == list(m.columns) == ["a", "b", "c", "t"]
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert cell(m, "a", "b") == pytest.approx(np.corrcoef(TINY["a"], TINY["b"])[0, 1])  # 0.6
    # eta of a by c: group means 1.5 and 3.5 around 2.5 -> between 4, total 5
    assert cell(m, "a", "c") == pytest.approx(math.sqrt(4 / 5))
    # eta of a by t: group means 2 and 3 -> between 1, total 5
    assert cell(m, "t", "a") == pytest.approx(math.sqrt(1 / 5))
    # c and t independent in this table
    assert cell(m, "c", "t") == pytest.approx(0.0)


def test_cramers_v_matches_scipy_uncorrected() -> None:
    rng = np.random.default_rng(0)
    c = rng.choice(["x", "y", "z"], 200)
    t = np.where((c == "x") | (rng.random(200) < 0.3), "yes", "no")
    df = pd.DataFrame({"a": rng.random(200), "b": rng.random(200), "c": c, "t": t})
    observed = pd.crosstab(df["c"], df["t"]).to_numpy()
    expected = association(observed, method="cramer", correction=False)
    assert pairwise_association(df, SCHEMA).loc["c", "t"] == pytest.approx(expected)


def test_constant_columns_give_zero_not_nan() -> None:
    df = TINY.assign(a=5.0, c="z")
    m = pairwise_association(df, SCHEMA)
    assert not m.isna().any().any()
    assert cell(m, "a", "b") == 0.0 and cell(m, "a", "c") == 0.0 and cell(m, "c", "t") == 0.0
    assert cell(m, "b", "c") == 0.0


def correlated(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10, n)
    b = np.clip(a + rng.normal(0, 0.5, n), 0, 10)
    c = np.where(a < 3, "x", np.where(a < 6, "y", "z"))
    t = np.where(b + rng.normal(0, 1, n) > 5, "yes", "no")
    return pd.DataFrame({"a": a, "b": b, "c": c, "t": t})


def test_fidelity_zero_on_identical_and_large_when_correlation_broken() -> None:
    real = correlated(500, 0)
    assert pairwise_fidelity(real, real.copy(), SCHEMA) == 0.0
    assert pairwise_fidelity(real, correlated(500, 1), SCHEMA) < 0.05
    broken = real.copy()
    broken["a"] = np.random.default_rng(2).permutation(broken["a"].to_numpy())
    diff = pairwise_difference(real, broken, SCHEMA)
    assert cell(diff, "a", "b") > 0.8 and cell(diff, "a", "c") > 0.8
    assert cell(diff, "b", "t") < 1e-12  # untouched pair
    assert pairwise_fidelity(real, broken, SCHEMA) > 0.3
