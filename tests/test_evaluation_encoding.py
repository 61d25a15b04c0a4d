from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from threedgl.errors import ThreedglError
from threedgl.evaluation import EvaluationEncoder
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("age", 0, 100, integer=True),
        NumericColumn("fare", -10.0, 10.0),
        CategoricalColumn("port", ("C", "Q", "S")),
        CategoricalColumn("flag", (True, False)),
        CategoricalColumn("y", (0, 1)),
    ),
    target="y",
)


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20, 30, 100, 0],
            "fare": [0.0, 5.0, -10.0, 2.5],
            "port": ["S", "C", "Q", "S"],
            "flag": [True, False, True, True],
            "y": [1, 0, 0, 1],
        }
    )


def test_label_encoding_uses_schema_bounds_and_category_index() -> None:
    X, y = EvaluationEncoder(SCHEMA).transform(table())
    np.testing.assert_allclose(
        X,
        [
            [0.2, 0.5, 1.0, 0.0],
            [0.3, 0.75, 0.0, 1.0],
            [1.0, 0.0, 0.5, 0.0],
            [0.0, 0.625, 1.0, 0.0],
        ],
    )
    assert y is not None and y.tolist() == [1, 0, 0, 1]


def test_encoding_is_not_fitted_on_data() -> None:
    enc = EvaluationEncoder(SCHEMA)
    full, _ = enc.transform(table())
    # one row alone encodes exactly as it does inside the table (no data-dependent scaling)
    for i in range(len(table())):
        row, _ = enc.transform(table().iloc[[i]])
        np.testing.assert_allclose(row[0], full[i])
    # a narrow-range table is not stretched to [0, 1]
    narrow = pd.DataFrame(
        {"age": [40, 50], "fare": [1.0, 2.0], "port": ["C", "C"], "flag": [True, True], "y": [0, 0]}
    )
    X, _ = enc.transform(narrow)
    np.testing.assert_allclose(X[:, 0], [0.4, 0.5])
    np.testing.assert_allclose(X[:, 1], [0.55, 0.6])


def test_out_of_bounds_values_are_clipped() -> None:
    df = table()
    df.loc[0, "age"] = 150
    df.loc[1, "fare"] = -50.0
    X, _ = EvaluationEncoder(SCHEMA).transform(df)
    assert X[0, 0] == 1.0 and X[1, 1] == 0.0
    assert X.min() >= 0.0 and X.max() <= 1.0


@pytest.mark.parametrize("mode", ["label", "onehot"])
def test_round_trip(mode: str) -> None:
    enc = EvaluationEncoder(SCHEMA, mode)  # type: ignore[arg-type]
    X, y = enc.transform(table())
    back = enc.inverse_transform(X, y)
    pd.testing.assert_frame_equal(back, SCHEMA.validate(table()).reset_index(drop=True))


def test_onehot_layout_and_include_target() -> None:
    enc = EvaluationEncoder(SCHEMA, "onehot")
    assert enc.feature_names == (
        "age",
        "fare",
        "port=C",
        "port=Q",
        "port=S",
        "flag=True",
        "flag=False",
    )
    X, _ = enc.transform(table())
    assert X.shape == (4, 7)
    np.testing.assert_allclose(X[:, 2:5].sum(axis=1), 1.0)
    with_target = EvaluationEncoder(SCHEMA, include_target=True)
    Xt, yt = with_target.transform(table())
    assert with_target.feature_names[-1] == "y"
    np.testing.assert_allclose(Xt[:, -1], [1.0, 0.0, 0.0, 1.0])
    assert yt is not None


def test_table_without_class_column_gives_no_y() -> None:
    X, y = EvaluationEncoder(SCHEMA).transform(table().drop(columns="y"))
    assert y is None and X.shape == (4, 4)


def test_bad_mode_and_bad_table() -> None:
    with pytest.raises(ThreedglError, match="'encoding' parameter"):
        EvaluationEncoder(SCHEMA, "ordinal")  # type: ignore[arg-type]
    bad = table()
    bad.loc[0, "port"] = "X"
    with pytest.raises(ThreedglError, match="port"):
        EvaluationEncoder(SCHEMA).transform(bad)


def test_encoded_once_validates_each_table_once_and_scores_the_same(monkeypatch) -> None:
    """Inside encoded_once a table object is validated and encoded once, whatever reads
    it; the scores are those without it; the shared arrays are read-only."""
    import warnings

    from threedgl import datasets
    from threedgl.evaluation import utility_scores
    from threedgl.evaluation.encoding import EvaluationEncoder, encoded_once
    from threedgl.evaluation.sweep import size_sweep

    ds = datasets.load("titanic")
    train, test = ds.frame.iloc[:600], ds.frame.iloc[600:]
    synthetic = ds.frame.sample(500, random_state=0, replace=True).reset_index(drop=True)

    def scores() -> tuple[object, ...]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = utility_scores(train, test, ds.schema, positive_label=ds.positive_label)
            b = utility_scores(synthetic, test, ds.schema, positive_label=ds.positive_label)
            sweep = size_sweep(synthetic, train, ds.schema, start=100)
        return a["accuracy"], a["auc"], b["accuracy"], b["f1"], sweep.best_size, sweep.scores

    calls: list[int] = []
    validate = type(ds.schema).validate

    def counting(self, df, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(id(df))
        return validate(self, df, *args, **kwargs)

    monkeypatch.setattr(type(ds.schema), "validate", counting)
    plain = scores()
    validated_plain = len(calls)
    calls.clear()
    with encoded_once():
        cached = scores()
        X, _ = EvaluationEncoder(ds.schema).transform(train)
        with pytest.raises(ValueError):
            X[0, 0] = 1.0  # shared with every other reader in the block: read-only
    assert cached == plain
    assert sorted(set(calls)) == sorted(calls)  # no table object validated twice
    assert len(calls) == 3 < validated_plain  # train, test, synthetic
    X2, _ = EvaluationEncoder(ds.schema).transform(train)  # outside the block: fresh
    assert X2.flags.writeable


def test_encoded_once_forgets_a_table_nobody_holds() -> None:
    import gc

    from threedgl.evaluation import encoding

    schema = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", ("a", "b"))), target="y")
    with encoding.encoded_once():
        df = pd.DataFrame({"x": [0.1, 0.9], "y": ["a", "b"]})
        EvaluationEncoder(schema).transform(df)
        cache = encoding._ENCODED.get()
        assert cache is not None and len(cache) == 2  # its validated frame and its encoding
        del df
        gc.collect()
        assert len(cache) == 0  # its encoding went with it: an id reused later cannot match
