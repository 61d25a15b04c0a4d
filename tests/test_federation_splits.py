"""Client folds: disjoint, covering, stratified within one row, skewed when asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from threedgl import datasets
from threedgl.errors import ThreedglError
from threedgl.federation import (
    SplitSpec,
    dirichlet_folds,
    make_folds,
    parse_split,
    quantity_folds,
    stratified_folds,
)


@pytest.fixture(scope="module")
def titanic() -> datasets.Dataset:
    return datasets.load("titanic")


def _check_partition(df: pd.DataFrame, folds: list[pd.DataFrame], k: int) -> None:
    assert len(folds) == k
    seen = np.concatenate([f.index.to_numpy() for f in folds])
    assert len(seen) == len(df)
    assert len(set(seen.tolist())) == len(df)  # disjoint
    assert set(seen.tolist()) == set(df.index.tolist())  # covering
    for f in folds:
        pd.testing.assert_frame_equal(f, df.loc[f.index])  # rows unchanged


def _positive_shares(folds: list[pd.DataFrame], target: str, pos: str) -> np.ndarray:
    return np.array([(f[target] == pos).mean() for f in folds])


@pytest.mark.parametrize("split", ["stratified", "dirichlet:0.3", "quantity:0.5", "dirichlet:100"])
@pytest.mark.parametrize("k", [2, 7, 10])
def test_folds_disjoint_and_covering(titanic: datasets.Dataset, split: str, k: int) -> None:
    df = titanic.frame
    folds = make_folds(df, titanic.target, k, split, random_state=3)
    _check_partition(df, folds, k)


def test_stratified_within_one_row(titanic: datasets.Dataset) -> None:
    df, target = titanic.frame, titanic.target
    for k in (3, 10, 13):
        folds = stratified_folds(df, target, k, random_state=1)
        sizes = [len(f) for f in folds]
        assert max(sizes) - min(sizes) <= 1
        for label, n_c in df[target].value_counts().items():
            expected = n_c / k
            for f in folds:
                assert abs(int((f[target] == label).sum()) - expected) < 1


def test_stratified_three_classes_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=503), "y": rng.choice(["a", "b", "c"], 503, p=[0.6, 0.3, 0.1])})
    a = stratified_folds(df, "y", 6, random_state=5)
    b = stratified_folds(df, "y", 6, random_state=5)
    c = stratified_folds(df, "y", 6, random_state=6)
    assert all(x.index.equals(y.index) for x, y in zip(a, b, strict=True))
    assert not all(x.index.equals(y.index) for x, y in zip(a, c, strict=True))
    for label, n_c in df["y"].value_counts().items():
        for f in a:
            assert abs(int((f["y"] == label).sum()) - n_c / 6) < 1


def test_dirichlet_skew_uneven_and_reproducible(titanic: datasets.Dataset) -> None:
    df, target, pos = titanic.frame, titanic.target, titanic.positive_label
    strat = stratified_folds(df, target, 10, random_state=0)
    strat_std = _positive_shares(strat, target, pos).std()
    skew_stds = []
    for seed in range(5):
        folds = dirichlet_folds(df, target, 10, 0.3, random_state=seed)
        again = dirichlet_folds(df, target, 10, 0.3, random_state=seed)
        assert all(a.index.equals(b.index) for a, b in zip(folds, again, strict=True))
        assert min(len(f) for f in folds) >= 10  # the documented repair
        skew_stds.append(_positive_shares(folds, target, pos).std())
    assert strat_std < 0.01
    assert min(skew_stds) > 0.1  # far above stratified's
    # a large alpha tends to stratified
    near = dirichlet_folds(df, target, 10, 1000.0, random_state=0)
    assert _positive_shares(near, target, pos).std() < 0.05


def test_dirichlet_repair_on_tiny_alpha(titanic: datasets.Dataset) -> None:
    folds = dirichlet_folds(titanic.frame, titanic.target, 10, 0.01, random_state=0, min_rows=25)
    _check_partition(titanic.frame, folds, 10)
    assert min(len(f) for f in folds) >= 25


def test_quantity_sizes_uneven_classes_stratified(titanic: datasets.Dataset) -> None:
    df, target, pos = titanic.frame, titanic.target, titanic.positive_label
    folds = quantity_folds(df, 10, 0.5, random_state=2, target=target)
    _check_partition(df, folds, 10)
    sizes = np.array([len(f) for f in folds])
    assert sizes.min() >= 10
    assert sizes.std() > 30  # stratified sizes differ by at most one row
    overall = (df[target] == pos).mean()
    for f in folds:
        if len(f) >= 50:
            assert abs((f[target] == pos).mean() - overall) <= 2 / len(f) + 0.01


def test_parse_split() -> None:
    assert parse_split("stratified") == SplitSpec("stratified")
    assert parse_split(" Dirichlet:0.5 ") == SplitSpec("dirichlet", 0.5)
    assert parse_split("quantity:2") == SplitSpec("quantity", 2.0)
    assert str(parse_split("dirichlet:0.1")) == "dirichlet:0.1"
    for bad in ("iid", "dirichlet", "dirichlet:", "dirichlet:abc", "dirichlet:-1", "quantity:0",
                "stratified:2", "dirichlet:nan", ""):
        with pytest.raises(ThreedglError, match="split"):
            parse_split(bad)


def test_bad_inputs(titanic: datasets.Dataset) -> None:
    df = titanic.frame
    with pytest.raises(ThreedglError, match=r"'clients' parameter must be an int in the range \[2, inf\)"):
        stratified_folds(df, titanic.target, 1, 0)
    with pytest.raises(ThreedglError, match="no class column"):
        stratified_folds(df, "nope", 3, 0)
    with pytest.raises(ThreedglError, match="fewer rows than clients"):
        stratified_folds(df.head(3), titanic.target, 5, 0)
    with pytest.raises(ThreedglError, match="alpha"):
        dirichlet_folds(df, titanic.target, 3, 0.0, 0)
