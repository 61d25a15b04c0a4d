"""The bundled datasets (SPEC §7): counts, dtypes, schema, and the calibrated sanity check."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

from threedgl import datasets
from threedgl.errors import ThreedglError
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

# name -> (rows, feature columns, target, positive label, positive count, negative label)
EXPECTED = {
    "titanic": (1309, 7, "survived", "1", 500, "0"),
    "breast-cancer": (569, 30, "diagnosis", "B", 357, "M"),
    "mushrooms": (8124, 22, "class", "p", 3916, "e"),
    "adult": (45222, 14, "income", ">50K", 11208, "<=50K"),
    "wine-quality": (5320, 11, "color", "red", 1359, "white"),
}

# Declared column kinds: "int" -> int64, "float" -> float64, "cat" -> object strings.
KINDS: dict[str, dict[str, str]] = {
    "titanic": {
        "pclass": "cat",
        "sex": "cat",
        "age": "float",
        "sibsp": "int",
        "parch": "int",
        "fare": "float",
        "embarked": "cat",
        "survived": "cat",
    },
    "breast-cancer": {
        **{
            f"{m}_{s}": "float"
            for s in ("mean", "se", "worst")
            for m in (
                "radius",
                "texture",
                "perimeter",
                "area",
                "smoothness",
                "compactness",
                "concavity",
                "concave_points",
                "symmetry",
                "fractal_dimension",
            )
        },
        "diagnosis": "cat",
    },
    "mushrooms": {
        **{
            c: "cat"
            for c in (
                "cap-shape",
                "cap-surface",
                "cap-color",
                "bruises",
                "odor",
                "gill-attachment",
                "gill-spacing",
                "gill-size",
                "gill-color",
                "stalk-shape",
                "stalk-root",
                "stalk-surface-above-ring",
                "stalk-surface-below-ring",
                "stalk-color-above-ring",
                "stalk-color-below-ring",
                "veil-type",
                "veil-color",
                "ring-number",
                "ring-type",
                "spore-print-color",
                "population",
                "habitat",
            )
        },
        "class": "cat",
    },
    "adult": {
        "age": "int",
        "workclass": "cat",
        "fnlwgt": "int",
        "education": "cat",
        "education-num": "int",
        "marital-status": "cat",
        "occupation": "cat",
        "relationship": "cat",
        "race": "cat",
        "sex": "cat",
        "capital-gain": "int",
        "capital-loss": "int",
        "hours-per-week": "int",
        "native-country": "cat",
        "income": "cat",
    },
    "wine-quality": {
        **{
            c: "float"
            for c in (
                "fixed acidity",
                "volatile acidity",
                "citric acid",
                "residual sugar",
                "chlorides",
                "free sulfur dioxide",
                "total sulfur dioxide",
                "density",
                "pH",
                "sulphates",
                "alcohol",
            )
        },
        "color": "cat",
    },
}

DTYPES = {"int": np.dtype("int64"), "float": np.dtype("float64"), "cat": np.dtype(object)}


@pytest.fixture(scope="module", params=datasets.NAMES)
def ds(request: pytest.FixtureRequest) -> datasets.Dataset:
    return datasets.load(request.param)


def test_names() -> None:
    assert datasets.NAMES == ("titanic", "breast-cancer", "mushrooms", "adult", "wine-quality")
    assert set(EXPECTED) == set(datasets.NAMES)


def test_rows_columns_and_class_counts(ds: datasets.Dataset) -> None:
    rows, n_features, target, positive, n_positive, negative = EXPECTED[ds.name]
    assert ds.frame.shape == (rows, n_features + 1)
    assert ds.target == target
    assert ds.frame.columns[-1] == target
    assert ds.positive_label == positive
    counts = ds.frame[target].value_counts().to_dict()
    assert counts == {positive: n_positive, negative: rows - n_positive}
    assert len(ds.features) == n_features
    assert ds.description and ds.source


def test_no_missing_values(ds: datasets.Dataset) -> None:
    assert int(ds.frame.isna().sum().sum()) == 0
    assert ds.frame.index.equals(pd.RangeIndex(len(ds.frame)))


def test_dtypes_as_declared(ds: datasets.Dataset) -> None:
    kinds = KINDS[ds.name]
    assert list(ds.frame.columns) == list(kinds)
    for col, kind in kinds.items():
        assert ds.frame[col].dtype == DTYPES[kind], (col, ds.frame[col].dtype)
        if kind == "cat":
            assert all(type(v) is str for v in ds.frame[col]), col


def test_schema_matches_frame(ds: datasets.Dataset) -> None:
    schema = ds.schema
    assert isinstance(schema, Schema)
    assert schema.target == ds.target
    assert schema.names == tuple(ds.frame.columns)
    assert ds.positive_label in schema.labels
    for col, kind in KINDS[ds.name].items():
        spec = schema[col]
        if kind == "cat":
            assert isinstance(spec, CategoricalColumn)
            assert set(spec.categories) == set(ds.frame[col].unique())
        else:
            assert isinstance(spec, NumericColumn)
            assert spec.integer == (kind == "int")
            assert spec.minimum == ds.frame[col].min()
            assert spec.maximum == ds.frame[col].max()
    conformed = schema.validate(ds.frame)
    pd.testing.assert_frame_equal(conformed, ds.frame)


def test_titanic_preparation() -> None:
    frame = datasets.load("titanic").frame
    # 263 missing ages filled with the median (28), 1 fare with the median, 2 embarked with "S".
    assert int((frame["age"] == 28.0).sum()) >= 263
    assert sorted(frame["embarked"].unique()) == ["C", "Q", "S"]
    assert int((frame["embarked"] == "S").sum()) == 914 + 2
    assert sorted(frame["pclass"].unique()) == ["1", "2", "3"]
    for dropped in ("name", "ticket", "cabin", "boat", "body", "home.dest"):
        assert dropped not in frame.columns


def test_mushrooms_question_mark_is_a_category() -> None:
    frame = datasets.load("mushrooms").frame
    assert int((frame["stalk-root"] == "?").sum()) == 2480
    assert int((frame == "?").sum().sum()) == 2480


def test_adult_preparation() -> None:
    frame = datasets.load("adult").frame
    assert set(frame["income"].unique()) == {"<=50K", ">50K"}
    assert not (frame == "?").any().any()
    for col in frame.columns:
        if frame[col].dtype == object:
            assert (frame[col] == frame[col].str.strip()).all(), col


def test_wine_dedup_within_colour() -> None:
    frame = datasets.load("wine-quality").frame
    assert "quality" not in frame.columns
    assert frame["color"].value_counts().to_dict() == {"white": 3961, "red": 1359}


def test_load_returns_independent_copies() -> None:
    a = datasets.load("breast-cancer")
    a.frame.iloc[0, 0] = -1.0
    a.frame["diagnosis"] = "X"
    b = datasets.load("breast-cancer")
    assert b.frame.iloc[0, 0] != -1.0
    assert set(b.frame["diagnosis"].unique()) == {"B", "M"}
    assert a.frame is not b.frame


def test_dataset_is_frozen() -> None:
    ds = datasets.load("titanic")
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["Titanic", "iris", "", None, 3])
def test_unknown_name(bad: object) -> None:
    with pytest.raises(ThreedglError) as info:
        datasets.load(bad)  # type: ignore[arg-type]
    msg = str(info.value)
    assert repr(bad) in msg
    for name in datasets.NAMES:
        assert name in msg


def test_summary() -> None:
    table = datasets.summary()
    assert list(table["name"]) == list(datasets.NAMES)
    for row in table.itertuples(index=False):
        rows, n_features, target, positive, n_positive, _ = EXPECTED[str(row.name)]
        assert row.rows == rows
        assert row.columns == n_features
        assert row.target == target
        assert row.positive_label == positive
        assert row.class_balance == pytest.approx(n_positive / rows)


def test_bundled_files_match_provenance() -> None:
    """The package carries its own raw copies; their content matches PROVENANCE.md."""
    data = resources.files("threedgl.datasets").joinpath("data")
    provenance = data.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in data.joinpath("README.md").read_text(encoding="utf-8")
    for fname in (
        "adult.data",
        "adult.test",
        "agaricus-lepiota.data",
        "wdbc.data",
        "winequality-red.csv",
        "winequality-white.csv",
        "titanic3.csv",
    ):
        raw = gzip.decompress(data.joinpath(f"{fname}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() in provenance, fname


def _paper_real_metrics(ds: datasets.Dataset, seeds: range) -> tuple[float, float, float]:
    """SPEC §7 evaluation: label-encode categoricals, min-max, LogisticRegression, 90/10."""
    x = ds.frame.drop(columns=ds.target).copy()
    for col in x.columns:
        if x[col].dtype == object:
            x[col] = x[col].astype("category").cat.codes
    x = x.astype("float64")
    span = (x.max() - x.min()).replace(0.0, 1.0)
    xs = ((x - x.min()) / span).to_numpy()
    y = (ds.frame[ds.target] == ds.positive_label).astype(int).to_numpy()
    scores = []
    for seed in seeds:
        x_tr, x_te, y_tr, y_te = train_test_split(
            xs, y, test_size=0.1, stratify=y, random_state=seed
        )
        p = LogisticRegression().fit(x_tr, y_tr).predict_proba(x_te)[:, 1]
        pred = (p >= 0.5).astype(int)
        scores.append((accuracy_score(y_te, pred), f1_score(y_te, pred), roc_auc_score(y_te, p)))
    acc, f1, auc = (100 * v for v in np.mean(scores, axis=0))
    return float(acc), float(f1), float(auc)


@pytest.mark.parametrize(
    ("name", "calibrated"),
    [("breast-cancer", (96.7, 97.4, 99.7)), ("titanic", (76.6, 68.8, 81.9))],
)
def test_calibrated_real_logistic_regression(
    name: str, calibrated: tuple[float, float, float]
) -> None:
    acc, f1, auc = _paper_real_metrics(datasets.load(name), range(10))
    assert acc == pytest.approx(calibrated[0], abs=1.5)
    assert f1 == pytest.approx(calibrated[1], abs=1.5)
    assert auc == pytest.approx(calibrated[2], abs=1.5)
