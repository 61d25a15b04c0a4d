from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from threedgl.errors import ThreedglError
from threedgl.evaluation import discriminator_scores
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("a", -5, 5),
        NumericColumn("b", -5, 5),
        CategoricalColumn("c", ("u", "v", "w")),
        CategoricalColumn("y", (0, 1)),
    ),
    target="y",
)


def sample(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, 1, n)
    b = a + rng.normal(0, 1, n)
    c = rng.choice(["u", "v", "w"], n, p=[0.5, 0.3, 0.2])
    y = (a + rng.normal(0, 1, n) > 0).astype(int)
    return pd.DataFrame({"a": a, "b": b, "c": c, "y": y})


def xor_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    c = rng.choice(["u", "v", "w"], n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "y": ((a > 0) ^ (b > 0)).astype(int)})


def independent_marginals(df: pd.DataFrame, target: str, seed: int) -> pd.DataFrame:
    """Each column shuffled independently within each class (the DP baseline, without DP)."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    for _, idx in df.groupby(target).groups.items():
        for col in df.columns:
            if col != target:
                out.loc[idx, col] = rng.permutation(df.loc[idx, col].to_numpy())
    return out


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    # histogram gradient boosting on tiny tables is much faster single-threaded
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_same_distribution_is_indistinguishable() -> None:
    # over seeds the AUC is 0.50 ± 0.03 here; these two samples are a typical pair
    s = discriminator_scores(sample(500, 2), sample(500, 102), SCHEMA)
    assert s["auc"] == pytest.approx(0.5, abs=0.06)
    assert s["accuracy"] == pytest.approx(0.5, abs=0.06)
    assert s["folds"] == 10 and s["n_per_source"] == 500 and s["model"] == "logreg"


def test_shifted_distribution_is_detected() -> None:
    s = discriminator_scores(sample(300, 0), sample(300, 1, shift=4.0), SCHEMA, folds=5)
    assert s["auc"] > 0.95 and s["accuracy"] > 0.85
    assert s["f1"] > 0.85  # F1 of the synthetic class (label 1)


def test_larger_table_is_subsampled() -> None:
    s = discriminator_scores(sample(120, 0), sample(1000, 1), SCHEMA, folds=4)
    assert s["n_per_source"] == 120
    again = discriminator_scores(sample(120, 0), sample(1000, 1), SCHEMA, folds=4)
    assert again == s  # deterministic for a fixed random_state


def test_class_column_is_a_feature() -> None:
    real = sample(300, 0)
    fake = real.copy()
    fake["y"] = 1  # only the class column differs
    s = discriminator_scores(real, fake, SCHEMA, folds=5)
    assert s["auc"] > 0.8


def test_gradient_boosting_sees_the_interaction_logreg_does_not() -> None:
    real = xor_table(1000, 0)
    fake = independent_marginals(xor_table(1000, 1), "y", seed=2)
    lr = discriminator_scores(real, fake, SCHEMA, model="logreg", folds=5)
    hgb = discriminator_scores(real, fake, SCHEMA, model="hgb", folds=5)
    assert lr["auc"] == pytest.approx(0.5, abs=0.06)
    assert hgb["auc"] > 0.65
    assert hgb["auc"] > lr["auc"] + 0.1


def test_user_errors() -> None:
    with pytest.raises(ThreedglError, match="'folds' parameter"):
        discriminator_scores(sample(50, 0), sample(50, 1), SCHEMA, folds=1)
    with pytest.raises(ThreedglError, match="'folds' parameter"):
        discriminator_scores(sample(5, 0), sample(50, 1), SCHEMA, folds=10)
    with pytest.raises(ThreedglError, match="'model' parameter"):
        discriminator_scores(sample(50, 0), sample(50, 1), SCHEMA, model="forest")
