from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from threedgl.errors import ThreedglError
from threedgl.evaluation import (
    evaluate_generator_table,
    kway_tvd,
    plot_marginals,
    plot_sweep,
    size_sweep,
)
from threedgl.evaluation.marginals import TVD_KEYS
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("age", 0, 80, integer=True),
        NumericColumn("fare", 0, 100),
        CategoricalColumn("sex", ("female", "male")),
        CategoricalColumn("survived", ("no", "yes")),
    ),
    target="survived",
)


def titanic_like(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n, p=[0.35, 0.65])
    age = rng.integers(1, 80, n)
    fare = np.clip(rng.gamma(2, 12, n), 0, 100)
    logit = -1.0 + 2.2 * (sex == "female") + 0.02 * fare - 0.01 * age
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"age": age, "fare": fare, "sex": sex, "survived": y})


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def test_evaluate_generator_table_is_complete_and_json_able() -> None:
    train, test, syn = titanic_like(400, 0), titanic_like(100, 1), titanic_like(400, 2)
    out = evaluate_generator_table(train, test, syn, SCHEMA, folds=5)
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
    for key in (
        "accuracy",
        "f1",
        "auc",
        "utility",
        "discriminator",
        "kld",
        "kld_per_feature",
        "tld",
        "pairwise_fidelity",
        "majority_accuracy",
        "tvd_1way",
        "tvd_2way",
        "tvd_3way",
        "tvd_floor",
    ):
        assert key in out
    assert set(out["utility"]) == set(out["discriminator"]) == {"logreg", "hgb"}
    assert out["accuracy"] == out["utility"]["logreg"]["accuracy"]
    assert out["positive_label"] == "yes" == out["utility"]["hgb"]["positive_label"]
    assert out["accuracy"] > out["majority_accuracy"] - 0.05
    assert out["auc"] > 0.7
    for m in ("logreg", "hgb"):
        assert {"accuracy", "f1", "auc"} <= set(out["discriminator"][m])
        assert out["discriminator"][m]["auc"] < 0.65  # same generating process
    assert set(out["kld_per_feature"]) == {"age", "fare", "sex"}
    assert out["kld"] == pytest.approx(np.mean(list(out["kld_per_feature"].values())))
    assert out["tld"] >= 0 and out["pairwise_fidelity"] < 0.1
    # The k-way marginal TVD, real train vs synthetic, and the floor (real test vs train).
    assert {key: out[key] for key in TVD_KEYS} == pytest.approx(kway_tvd(train, syn, SCHEMA))
    assert out["tvd_floor"] == pytest.approx(kway_tvd(train, test, SCHEMA))
    assert 0 < out["tvd_1way"] <= out["tvd_2way"] <= out["tvd_3way"] < 0.5


def test_evaluate_rejects_schema_without_class() -> None:
    df = titanic_like(50, 0)
    with pytest.raises(ThreedglError, match="class column"):
        evaluate_generator_table(df, df, df, SCHEMA.with_target(None))


def test_plots_write_png(tmp_path: Path) -> None:
    syn, sel = titanic_like(600, 3), titanic_like(200, 4)
    res = {
        "logreg": size_sweep(syn, sel, SCHEMA, start=100, growth=2.0, patience=1, max_size=400),
        "custom": size_sweep(
            syn, sel, SCHEMA, start=50, step=100, metric=lambda p, s: len(p) / 600
        ),
    }
    path = plot_sweep(res, tmp_path / "sweep.png", title="sweep")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = plot_marginals(titanic_like(300, 0), syn, SCHEMA, None, tmp_path / "sub" / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = plot_marginals(titanic_like(300, 0), syn, SCHEMA, ["fare"], tmp_path / "one.png")
    assert path.stat().st_size > 1000
    with pytest.raises(ThreedglError, match="nope"):
        plot_marginals(syn, syn, SCHEMA, ["nope"], tmp_path / "x.png")
    with pytest.raises(ThreedglError):
        plot_sweep({}, tmp_path / "y.png")
