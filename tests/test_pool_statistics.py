"""Federation-level DP statistics (issue 21, item 3): the clients' measurements, summed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from threedgl import DDPBetaVAE, DPMarginals, GeneratorsPool, datasets
from threedgl.errors import ThreedglError
from threedgl.pool.statistics import _overlap, calibrated_sample, federation_marginals


@given(st.integers(1, 64), st.integers(1, 64))
def test_overlap_rows_are_distributions(a: int, b: int) -> None:
    m = _overlap(a, b)
    assert m.shape == (a, b) and (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    # the mass of bin i lands where bin i lies: its centre's common bin gets some of it
    for i in range(a):
        assert m[i, min(b - 1, int((i + 0.5) / a * b))] > 0


def test_overlap_known_answers() -> None:
    np.testing.assert_allclose(_overlap(2, 4), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(_overlap(3, 3), np.eye(3))
    np.testing.assert_allclose(_overlap(2, 3), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])


@pytest.fixture(scope="module")
def three_clients() -> tuple[GeneratorsPool, list[DDPBetaVAE]]:
    ds = datasets.load("titanic")
    frame = ds.frame.sample(frac=1.0, random_state=0)
    sizes = [(0, 500), (500, 700), (700, 760)]  # different sizes: different bins per client
    gens = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (a, b) in enumerate(sizes):
            gens.append(DDPBetaVAE(epochs=1, random_state=i).fit(
                frame.iloc[a:b], target=ds.target, schema=ds.schema))
    return GeneratorsPool(gens), gens


def test_federation_marginals_sum_the_measurements(three_clients) -> None:
    pool, gens = three_clients
    stats = federation_marginals(pool)
    for label in pool.labels:
        own = [(g, g.labels_.index(label)) for g in gens if label in g.labels_]
        want = sum(float(g.measurements_[k][0].noisy[0]) for g, k in own)
        assert stats.counts[label] == pytest.approx(want)
        assert stats.count_variances[label] == pytest.approx(
            sum(g.measurements_[k][0].noise_std ** 2 for g, k in own))
        assert stats.members[label] == len(own)
        for f, hist in enumerate(stats.histograms[label]):
            assert len(hist) == max(g.discretizer_.widths[f] for g in gens)
            # spreading a histogram onto a finer grid keeps its total
            one_way = [next(m for m in g.measurements_[k] if m.marginal.features == (f,))
                       for g, k in own]
            assert hist.sum() == pytest.approx(sum(m.noisy.sum() for m in one_way))
            assert (stats.variances[label][f] > 0).all()


def test_calibrated_sample_moves_toward_the_federations_histograms(three_clients) -> None:
    """The raked rows' one-way distributions are closer to the summed noisy histograms
    than the plain pool's (statistically: 20,000 rows, every feature of both classes)."""
    pool, _ = three_clients
    stats = federation_marginals(pool)
    grid = stats.discretizer
    plain = pool.sample(20_000, random_state=1)
    calibrated = calibrated_sample(pool, 20_000, random_state=1)
    assert len(calibrated) == 20_000
    counts = calibrated[pool.schema.target].value_counts()
    assert abs(counts.iloc[0] - counts.iloc[1]) <= 1  # balanced
    tvd: dict[str, list[float]] = {"plain": [], "calibrated": []}
    for label in pool.labels:
        for how, table in (("plain", plain), ("calibrated", calibrated)):
            rows = table[table[pool.schema.target].astype(str) == str(label)]
            codes = grid.codes(grid.encoder.encode_valid(rows))
            for f, hist in enumerate(stats.histograms[label]):
                target = np.clip(hist, 0, None) / np.clip(hist, 0, None).sum()
                have = np.bincount(codes[:, f], minlength=len(target)) / len(codes)
                tvd[how].append(0.5 * float(np.abs(have - target).sum()))
    assert np.mean(tvd["calibrated"]) < np.mean(tvd["plain"])


def test_a_pool_without_measurements_is_refused_by_name() -> None:
    ds = datasets.load("titanic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DPMarginals(random_state=0).fit(ds.frame.iloc[:300], target=ds.target,
                                             schema=ds.schema)
    with pytest.raises(ThreedglError, match="stores DP measurements"):
        federation_marginals(GeneratorsPool([gen]))
