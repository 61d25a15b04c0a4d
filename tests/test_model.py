"""DDP-βVAE and the DP marginals baseline as estimators."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from threedgl import DDPBetaVAE, DPMarginals, datasets, load_generator
from threedgl.errors import NotFittedError, PrivacyError, SchemaError
from threedgl.privacy import compute_epsilon


def test_sample_is_valid_under_the_schema_and_has_every_class(titanic, titanic_generator):
    table = titanic_generator.sample(600, random_state=0)
    assert list(table.columns) == list(titanic.frame.columns)
    assert dict(table.dtypes) == dict(titanic.frame.dtypes)
    titanic.schema.validate(table)  # raises if anything is off
    counts = table[titanic.target].value_counts()
    assert set(counts.index) == set(titanic.schema.labels)
    assert counts.max() - counts.min() <= 1  # balanced by default


def test_unbalanced_sampling_follows_class_sizes(titanic, titanic_generator):
    table = titanic_generator.sample(1309, balanced=False, random_state=0)
    real = titanic.frame[titanic.target].value_counts()
    synth = table[titanic.target].value_counts()
    for label in real.index:
        assert abs(synth[label] - real[label]) <= 1


def test_sampling_is_reproducible_from_its_seed(titanic_generator):
    a = titanic_generator.sample(200, random_state=3)
    b = titanic_generator.sample(200, random_state=3)
    c = titanic_generator.sample(200, random_state=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_each_class_model_meets_the_target_epsilon(titanic_generator):
    for record in titanic_generator.privacy_:
        assert record.epsilon <= 1.9
        assert record.epsilon >= 0.98 * 1.9
        recomputed = compute_epsilon(
            record.noise_multiplier, record.sample_rate, record.steps, record.delta
        )
        assert recomputed == pytest.approx(record.epsilon, rel=1e-9)
    assert titanic_generator.epsilon_ <= 1.9


@pytest.mark.parametrize("name", datasets.NAMES)
def test_every_bundled_dataset_trains_to_epsilon_at_most_1_9(name, tmp_path):
    ds = datasets.load(name)
    frame = ds.frame if len(ds.frame) < 6000 else ds.frame.sample(6000, random_state=0)
    gen = DDPBetaVAE.from_preset(name, epochs=1, random_state=0)
    gen.fit(frame, target=ds.target, schema=ds.schema)
    path = gen.save(tmp_path / f"{name}.3dgl")
    manifest = load_generator(path).manifest_
    assert manifest["privacy"]["epsilon"] <= 1.9
    assert all(m["privacy"]["epsilon"] <= 1.9 for m in manifest["models"])


def test_same_seed_gives_the_same_file(titanic, tmp_path):
    paths = []
    for i in range(2):
        gen = DDPBetaVAE.from_preset("titanic", epochs=1, random_state=7)
        gen.fit(titanic.frame, target=titanic.target, schema=titanic.schema)
        paths.append(gen.save(tmp_path / f"g{i}.3dgl"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = DDPBetaVAE.from_preset("titanic", epochs=1, random_state=8)
    other.fit(titanic.frame, target=titanic.target, schema=titanic.schema)
    other.save(tmp_path / "g2.3dgl")
    assert (tmp_path / "g2.3dgl").read_bytes() != paths[0].read_bytes()


def test_seed_is_not_written_to_the_artifact(titanic_generator):
    assert "random_state" not in titanic_generator.manifest_["training"]
    assert "seed" not in titanic_generator.manifest_["training"]


def test_without_a_class_column_one_model_on_all_rows(titanic):
    frame = titanic.frame.drop(columns=[titanic.target])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DDPBetaVAE(epochs=1, random_state=0).fit(frame)
    assert gen.labels_ == (None,)
    assert len(gen.privacy_) == 1
    table = gen.sample(50, random_state=0)
    assert list(table.columns) == list(frame.columns)


def test_more_than_two_classes(titanic):
    frame = titanic.frame.drop(columns=[titanic.target])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DDPBetaVAE(epochs=1, random_state=0).fit(frame, target="embarked")
    assert len(gen.labels_) == 3
    assert set(gen.sample(90, random_state=0)["embarked"]) == {"C", "Q", "S"}


def test_non_private_mode_records_infinite_epsilon(titanic):
    gen = DDPBetaVAE.from_preset("titanic", epsilon=math.inf, epochs=1, random_state=0)
    gen.fit(titanic.frame, target=titanic.target, schema=titanic.schema)
    assert math.isinf(gen.epsilon_)
    assert all(r.noise_multiplier == 0 for r in gen.privacy_)
    assert "WITHOUT differential privacy" in gen.privacy_statement()


def test_not_fitted_error_names_fit():
    with pytest.raises(NotFittedError, match=r"not fitted yet\. Call 'fit'"):
        DDPBetaVAE().sample(3)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"epsilon": -1.0},
            r"'epsilon' parameter of DDPBetaVAE must be a float in the range \(0, inf\]",
        ),
        ({"delta": 2.0}, r"'delta' parameter of DDPBetaVAE must be a float in the range \(0, 1\)"),
        ({"accountant": "moments"}, "'accountant' parameter"),
    ],
)
def test_bad_parameters_are_named(titanic, params, match):
    with pytest.raises(PrivacyError, match=match):
        DDPBetaVAE(**params).fit(titanic.frame, target=titanic.target, schema=titanic.schema)


def test_fit_refuses_a_table_outside_the_schema(titanic):
    bad = titanic.frame.copy()
    bad.loc[0, "embarked"] = "X"
    with pytest.raises(SchemaError, match=r"'embarked'.*'X'"):
        DDPBetaVAE(epochs=1).fit(bad, target=titanic.target, schema=titanic.schema)


def test_a_class_missing_from_the_training_rows_is_skipped_with_a_warning(titanic):
    only_one = titanic.frame[titanic.frame[titanic.target] == "1"]
    with pytest.warns(UserWarning, match="no rows"):
        gen = DDPBetaVAE(mode="paper", epochs=1, random_state=0).fit(
            only_one, target=titanic.target, schema=titanic.schema
        )
    assert gen.labels_ == ("1",)


def test_get_params_round_trip():
    gen = DDPBetaVAE.from_preset("adult", epochs=5)
    assert gen.get_params()["hidden"] == (128, 64)
    assert gen.get_params()["beta"] == 0.005
    clone = DDPBetaVAE(**gen.get_params())
    assert clone.get_params() == gen.get_params()


def test_dp_marginals_baseline(titanic, tmp_path):
    gen = DPMarginals(random_state=0).fit(
        titanic.frame, target=titanic.target, schema=titanic.schema
    )
    assert gen.epsilon_ <= 1.9
    path = gen.save(tmp_path / "m.3dgl")
    loaded = load_generator(path)
    assert isinstance(loaded, DPMarginals)
    table = loaded.sample(400, random_state=0)
    titanic.schema.validate(table)
    # independent within class: the share of women among survivors is kept roughly
    real = titanic.frame
    share_real = (real[real.survived == "1"].sex == "female").mean()
    share_syn = (table[table.survived == "1"].sex == "female").mean()
    assert abs(share_real - share_syn) < 0.15


def test_dp_marginals_noise_matches_the_gaussian_mechanism(titanic):
    """Statistical tolerance: the spread of released counts is σ·√F (within 15%)."""
    from threedgl.privacy.gaussian import measure_histograms

    counts = [np.full(10, 50.0) for _ in range(4)]
    rng = np.random.default_rng(0)
    noisy, record = measure_histograms(counts, epsilon=1.0, delta=1e-5, accountant="rdp", rng=rng)
    draws = []
    for _ in range(200):
        noisy, _ = measure_histograms(counts, epsilon=1.0, delta=1e-5, accountant="rdp", rng=rng)
        draws.append(np.concatenate(noisy) - 50.0)
    std = np.std(np.concatenate(draws))
    expected = record.noise_multiplier * math.sqrt(4)
    assert abs(std - expected) / expected < 0.15
    assert record.epsilon <= 1.0
