from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from threedgl.errors import ThreedglError
from threedgl.evaluation import minority_label, utility_scores
from threedgl.evaluation.encoding import EvaluationEncoder
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", ("no", "yes"))), target="y")
TRAIN = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.7, 0.9], "y": ["no", "no", "no", "yes", "yes"]})
TEST = pd.DataFrame({"x": [0.1, 0.2, 0.8, 0.9, 0.3], "y": ["no", "yes", "yes", "no", "no"]})


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    # histogram gradient boosting on tiny tables is much faster single-threaded
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_scores_by_hand_with_a_tree() -> None:
    # the tree predicts no, no, yes, yes, no with 0/1 probabilities
    s = utility_scores(TRAIN, TEST, SCHEMA, model=DecisionTreeClassifier(random_state=0))
    assert s["positive_label"] == "yes"  # minority class of the training table
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["f1"] == pytest.approx(0.5)  # TP 1, FP 1, FN 1
    # positives score 0 and 1, negatives 0, 1, 0: (1 + 2.5) / 6 pairs
    assert s["auc"] == pytest.approx(3.5 / 6)
    assert s["majority_accuracy"] == pytest.approx(3 / 5)  # "no" for every row
    assert s["majority_f1"] == 0.0 and s["majority_auc"] == 0.5
    assert s["n_train"] == 5 and s["n_test"] == 5


def test_positive_label_changes_f1_only() -> None:
    tree = DecisionTreeClassifier(random_state=0)
    s = utility_scores(TRAIN, TEST, SCHEMA, model=tree, positive_label="no")
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # TP 2, FP 1, FN 1
    assert s["auc"] == pytest.approx(3.5 / 6)
    assert s["majority_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))


def test_logreg_and_hgb_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(400)
    df = pd.DataFrame({"x": x, "y": np.where(x > 0.5, "yes", "no")})
    for model in ("logreg", "hgb"):
        s = utility_scores(df.iloc[:300], df.iloc[300:], SCHEMA, model=model)
        assert s["accuracy"] > 0.9 and s["auc"] > 0.97 and s["f1"] > 0.9, (model, s)


def test_logreg_is_sklearn_default() -> None:
    rng = np.random.default_rng(1)
    x = rng.random(200)
    y = np.where(x + rng.normal(0, 0.3, 200) > 0.5, "yes", "no")
    df = pd.DataFrame({"x": x, "y": y})
    s = utility_scores(df.iloc[:150], df.iloc[150:], SCHEMA, positive_label="yes")
    enc = EvaluationEncoder(SCHEMA)
    Xtr, ytr = enc.transform(df.iloc[:150])
    Xte, yte = enc.transform(df.iloc[150:])
    clf = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
    assert s["accuracy"] == pytest.approx(float(np.mean(clf.predict(Xte) == yte)))
    assert s["auc"] == pytest.approx(roc_auc_score(yte, clf.predict_proba(Xte)[:, 1]))


def test_one_class_training_table_does_not_crash() -> None:
    train = TRAIN[TRAIN["y"] == "no"]
    for model in ("logreg", "hgb"):
        s = utility_scores(train, TEST, SCHEMA, model=model, positive_label="yes")
        assert s["accuracy"] == pytest.approx(3 / 5)
        assert s["f1"] == 0.0 and s["auc"] == 0.5


def test_multiclass_auc_is_ovr_macro() -> None:
    schema = Schema(
        (NumericColumn("a", 0, 1), NumericColumn("b", 0, 1), CategoricalColumn("c", (3, 1, 2))),
        target="c",
    )
    rng = np.random.default_rng(2)
    a, b = rng.random(300), rng.random(300)
    c = np.select([a + rng.normal(0, 0.2, 300) > 0.6, b > 0.5], [3, 1], 2)
    df = pd.DataFrame({"a": a, "b": b, "c": c})
    s = utility_scores(df.iloc[:200], df.iloc[200:], schema, positive_label=2)
    enc = EvaluationEncoder(schema)
    Xtr, ytr = enc.transform(df.iloc[:200])
    Xte, yte = enc.transform(df.iloc[200:])
    proba = LogisticRegression(max_iter=1000).fit(Xtr, ytr).predict_proba(Xte)
    assert s["auc"] == pytest.approx(roc_auc_score(yte, proba, multi_class="ovr", average="macro"))
    assert s["positive_label"] == 2
    assert minority_label(df, schema) in (1, 2, 3)


def test_user_errors() -> None:
    with pytest.raises(ThreedglError, match="'model' parameter"):
        utility_scores(TRAIN, TEST, SCHEMA, model="svm")
    with pytest.raises(ThreedglError, match="'positive_label' parameter"):
        utility_scores(TRAIN, TEST, SCHEMA, positive_label="maybe")
    with pytest.raises(ThreedglError, match="'encoding' parameter"):
        utility_scores(TRAIN, TEST, SCHEMA, encoding="ordinal")  # type: ignore[arg-type]
    with pytest.raises(ThreedglError, match="class column"):
        utility_scores(TRAIN.drop(columns="y"), TEST, SCHEMA)


def test_binary_auc_known_answers():
    from threedgl.evaluation.utility import binary_auc

    assert binary_auc(np.array([False, True]), np.array([0.1, 0.9])) == 1.0
    assert binary_auc(np.array([True, False]), np.array([0.1, 0.9])) == 0.0
    assert binary_auc(np.array([True, False, True, False]), np.array([1.0, 1.0, 1.0, 1.0])) == 0.5
    # one tie between a positive and a negative counts a half: (1 + 1 + 0.5 + 1) / 4
    assert binary_auc(np.array([True, True, False, False]),
                      np.array([0.9, 0.5, 0.5, 0.1])) == 0.875


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60),
       st.booleans())
def test_binary_auc_is_scikit_learns_roc_auc(pairs, continuous):
    from threedgl.evaluation.utility import binary_auc

    truth = np.array([t for t, _ in pairs])
    assume(truth.any() and not truth.all())
    score = np.array([float(s) for _, s in pairs])  # few distinct values: many ties
    if continuous:
        score = score + np.linspace(0, 0.5, len(score))
    assert binary_auc(truth, score) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)


def test_binary_auc_refuses_nan_scores():
    from threedgl.evaluation.utility import binary_auc

    with pytest.raises(ThreedglError, match="NaN"):
        binary_auc(np.array([True, False]), np.array([np.nan, 0.5]))


def test_logreg_solver_follows_the_number_of_features_and_classes() -> None:
    from threedgl.evaluation.utility import NEWTON_MAX_COEFFICIENTS, make_classifier

    assert make_classifier("logreg", n_features=14).solver == "newton-cholesky"
    assert make_classifier("logreg", n_features=NEWTON_MAX_COEFFICIENTS + 1).solver == "lbfgs"
    assert make_classifier("logreg", n_features=4, n_classes=3).solver == "lbfgs"  # multinomial
    assert make_classifier("logreg").solver == "lbfgs"  # size unknown
    # The same problem: at a tight tolerance both solvers reach the same coefficients.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 8))
    y = (X @ rng.normal(size=8) + rng.normal(size=2000) > 0).astype(int)
    newton = LogisticRegression(solver="newton-cholesky", tol=1e-10).fit(X, y)
    lbfgs = LogisticRegression(solver="lbfgs", tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(newton.coef_, lbfgs.coef_, atol=1e-5)
    np.testing.assert_allclose(newton.intercept_, lbfgs.intercept_, atol=1e-5)
