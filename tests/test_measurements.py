"""DP measurements as data: released, stored, accounted and fitted (the default mode)."""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants.analysis.rdp import compute_rdp

import threedgl.model.anchored as anchored_module
from threedgl import DDPBetaVAE, load_generator
from threedgl.artifact.format import read_artifact, write_artifact
from threedgl.errors import ArtifactError, PrivacyError
from threedgl.evaluation import kway_tvd
from threedgl.model.anchored import _budget_split
from threedgl.model.matching import (
    _spanning_tree,
    fit_prior,
    latent_points,
    pair_groups,
    select_pairs,
    total_estimate,
)
from threedgl.model.networks import BatchedVAE, Decoder
from threedgl.privacy.accounting import epsilon_at_order, rdp_budget
from threedgl.privacy.gaussian import measure_count, measure_marginals
from threedgl.privacy.measurement import Marginal, Measurement, check_against_record
from threedgl.privacy.record import PrivacyRecord
from threedgl.schema import CategoricalColumn, NumericColumn, Schema
from threedgl.schema.bins import Discretizer, _linear_position


def _fit(frame: pd.DataFrame, schema: Schema, target: str, **params: Any) -> DDPBetaVAE:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DDPBetaVAE(**params).fit(frame, target=target, schema=schema, ledger=False)


@pytest.fixture(scope="module")
def recorded(titanic):  # type: ignore[no-untyped-def]
    """A default-mode fit whose every Gaussian release is recorded as it leaves the mechanism."""
    released: list[Measurement] = []
    count, marginals = anchored_module.measure_count, anchored_module.measure_marginals

    def count_spy(*a: Any, **kw: Any) -> Measurement:
        released.append(count(*a, **kw))
        return released[-1]

    def marginals_spy(*a: Any, **kw: Any) -> list[Measurement]:
        out = marginals(*a, **kw)
        released.extend(out)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(anchored_module, "measure_count", count_spy)
        mp.setattr(anchored_module, "measure_marginals", marginals_spy)
        gen = _fit(titanic.frame, titanic.schema, titanic.target, epochs=2, random_state=0)
    return gen, released


# -- the budget: known answers ----------------------------------------------------------------------
def test_the_pairs_share_composes_to_the_target_at_the_fixed_order() -> None:
    split = _budget_split(1.9, 1e-4, 0.05, 0.5, 0.25)
    total = rdp_budget(1.9, 1e-4, 8.5)
    assert split.order == 8.5
    # σ = sqrt(α / (2 · share · R)), by hand
    for sigma, share in ((split.count, 0.05), (split.marginals, 0.5), (split.pairs, 0.25)):
        assert sigma == pytest.approx(math.sqrt(8.5 / (2 * share * total)), rel=1e-12)
    assert (split.count, split.marginals, split.pairs) == pytest.approx((8.8614, 2.8022, 3.9629),
                                                                         abs=1e-4)
    assert split.rest == pytest.approx(0.2 * total, rel=1e-9)
    q, steps, sigma = 0.05, 400, 3.0
    record = PrivacyRecord(sigma, q, steps, 1.0, "rdp", 1e-4, 1.9, 8.5, split.count,
                           split.marginals, split.pairs)
    by_hand = (8.5 / (2 * split.count**2) + 8.5 / (2 * split.marginals**2)
               + 8.5 / (2 * split.pairs**2)
               + compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=[8.5])[0])
    assert record.recompute_epsilon() == pytest.approx(epsilon_at_order(by_hand, 8.5, 1e-4),
                                                       rel=1e-12)
    without = PrivacyRecord(sigma, q, steps, 1.0, "rdp", 1e-4, 1.9, 8.5, split.count,
                            split.marginals)
    assert without.recompute_epsilon() < record.recompute_epsilon()  # the pairs are counted


def test_every_class_model_records_its_pairs_and_meets_the_target(recorded) -> None:  # type: ignore[no-untyped-def]
    gen, _ = recorded
    for record in gen.privacy_:
        assert record.pairs_noise_multiplier is not None
        assert record.epsilon == pytest.approx(1.9, rel=1e-9)
        assert 0.995 * 1.9 <= record.recompute_epsilon() <= 1.9
        assert PrivacyRecord.from_dict(record.to_dict()) == record


def test_a_pairs_field_without_the_fixed_order_is_refused() -> None:
    record = PrivacyRecord(2.0, 0.1, 100, 1.0, "rdp", 1e-4, 1.5).to_dict()
    record["pairs_noise_multiplier"] = 4.0
    with pytest.raises(PrivacyError, match="fixed order"):
        PrivacyRecord.from_dict(record)


# -- what is stored is what was released ----------------------------------------------------------
def test_the_artifact_stores_exactly_what_was_released(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gen, released = recorded
    stored = [m for ms in gen.measurements_ for m in ms]
    # every stored measurement left a mechanism as it is (the same object, values untouched)
    assert all(any(m is r for r in released) for m in stored)
    gen.save(tmp_path / "g.3dgl")
    loaded = load_generator(tmp_path / "g.3dgl")
    again = [m for ms in loaded.measurements_ for m in ms]
    assert len(again) == len(stored) > 0
    for a, b in zip(stored, again, strict=True):
        assert a.marginal == b.marginal and a.noise_std == b.noise_std
        assert a.noisy.dtype == b.noisy.dtype == np.float32
        assert np.array_equal(a.noisy, b.noisy)  # bit for bit
    assert np.array_equal(loaded.sample(500, random_state=3).to_numpy(),
                          gen.sample(500, random_state=3).to_numpy())


def test_no_stored_measurement_is_an_exact_quantity(recorded, titanic) -> None:  # type: ignore[no-untyped-def]
    gen, _ = recorded
    disc = gen.discretizer_
    table = titanic.schema.validate(titanic.frame, require_target=True)
    matrix = gen.encoder_.encode_valid(table)
    residuals = []
    for label, ms in zip(gen.labels_, gen.measurements_, strict=True):
        codes = disc.codes(matrix[table[titanic.target].to_numpy() == label])
        for m in ms:
            exact = (np.array([len(codes)], float) if not m.features else
                     np.bincount(np.ravel_multi_index(m.marginal.group_codes(codes).T,
                                                      m.marginal.shape(disc.widths)),
                                 minlength=m.marginal.cells(disc.widths)))
            assert m.noise_std > 1.0 and not np.array_equal(m.noisy, exact)
            residuals.append((m.noisy - exact) / m.noise_std)
    z = np.concatenate(residuals)
    # statistical tolerance: the noise is N(0, noise_std²) cell by cell
    assert len(z) > 200  # std within 15 %: more than 3 standard errors
    assert abs(z.mean()) < 4 / math.sqrt(len(z))
    assert z.std() == pytest.approx(1.0, rel=0.15)


def test_noise_scales_follow_the_record(recorded) -> None:  # type: ignore[no-untyped-def]
    gen, _ = recorded
    for ms, record in zip(gen.measurements_, gen.privacy_, strict=True):
        by_k: dict[int, list[Measurement]] = {}
        for m in ms:
            by_k.setdefault(len(m.features), []).append(m)
        assert len(by_k[0]) == 1 and by_k[0][0].noise_std == record.count_noise_multiplier
        f = len(gen.schema_.features)
        assert len(by_k[1]) == f and len(by_k[2]) == f - 1  # a spanning tree of pairs
        for m in by_k[1]:
            assert m.noise_std == pytest.approx(record.marginals_noise_multiplier * math.sqrt(f))
        for m in by_k[2]:
            assert m.noise_std == pytest.approx(record.pairs_noise_multiplier * math.sqrt(f - 1))
        check_against_record(ms, record)


def _tampered(gen: DDPBetaVAE, tmp_path: Path, change: Any) -> Path:
    path = gen.save(tmp_path / "g.3dgl")
    artifact = read_artifact(path)
    manifest, tensors = copy.deepcopy(artifact.manifest), dict(artifact.tensors)
    change(manifest, tensors)
    out = tmp_path / "tampered.3dgl"
    write_artifact(out, manifest, tensors)
    return out


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m, t: m["models"][0]["measurements"][3].update(noise_std=1.0),
         "the privacy record's release"),
        (lambda m, t: m["models"][0]["privacy"].pop("pairs_noise_multiplier"),
         "does not account for the 2-way"),
        (lambda m, t: t.pop("class0.measurements"), "no tensor class0.measurements"),
        (lambda m, t: t.update({"class9.measurements": np.zeros(3, np.float32)}),
         "(?i)does not list|classes"),
        (lambda m, t: t.update({"class0.measurements": t["class0.measurements"][:-1]}),
         "values"),
        (lambda m, t: t.update({"class0.measurements": np.zeros(7, np.float32)}), "values"),
        (lambda m, t: t.update({"class0.measurements": np.concatenate(
            [t["class0.measurements"], np.zeros(1, np.float32)])}), "tensor holds"),
        (lambda m, t: t.update({"class0.measurements": np.full_like(
            t["class0.measurements"], np.nan)}), "finite"),
        (lambda m, t: m["models"][0]["measurements"].pop(), "values"),
        (lambda m, t: m["models"][1]["measurements"][2].update(features=["nope"]), "unknown"),
        (lambda m, t: m["models"][1]["measurements"][2].update(groups=[[5, -1]]), "groups"),
        (lambda m, t: m["models"][1].pop("measurements"), "every class model"),
        (lambda m, t: t.update({"class².head.bias": np.zeros(3, np.float32)}),
         "(?i)unexpected tensor"),
        (lambda m, t: t.update({"class0.measurement²": np.zeros(3, np.float32)}),
         "(?i)unexpected tensor|does not match"),
        (lambda m, t: t.update({"class00.head.bias": np.zeros(3, np.float32)}),
         "(?i)unexpected tensor"),
        (lambda m, t: t.update({"class01.measurements": np.zeros(3, np.float32)}),
         "(?i)unexpected tensor"),
    ],
)
def test_tampered_measurements_are_refused(recorded, tmp_path: Path, change: Any,  # type: ignore[no-untyped-def]
                                           words: str) -> None:
    gen, _ = recorded
    path = _tampered(gen, tmp_path, change)
    with pytest.raises(ArtifactError, match=words):
        load_generator(path)


# -- the fit (post-processing): known answers and properties ---------------------------------------
def _random_decoder(widths: list[int], latent: int = 4, seed: int = 0) -> Decoder:
    n = sum(widths)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    layout = [("categorical", int(a), int(b)) for a, b in itertools.pairwise(offsets)]
    vae = BatchedVAE(n, layout, hidden=(32, 16), latent=latent, beta=0.5,
                     generators=[torch.Generator().manual_seed(seed)])
    state = vae.decoder_state(0)
    state["head.weight"] *= 8  # a decoder whose output depends strongly on z
    return Decoder(state, {**vae.architecture(), "bins": widths})


def _expected_marginals(dec: Decoder, z: torch.Tensor, weight: np.ndarray, bias: np.ndarray,
                        widths: list[int]) -> np.ndarray:
    dec.linears[2].bias.copy_(torch.from_numpy(bias))
    with torch.no_grad():
        p = dec(z).double().numpy()
    return (weight.astype(np.float64) / weight.sum()) @ p


def test_fitting_exact_marginals_of_a_product_distribution_reproduces_them() -> None:
    widths = [3, 4, 5]
    rng = np.random.default_rng(0)
    margins = [rng.dirichlet(np.ones(w)) for w in widths]
    n = 10_000.0
    exact = [Measurement(Marginal(()), np.array([n], np.float32), 0.0)]
    exact += [Measurement(Marginal((j,)), (n * p).astype(np.float32), 0.0)
              for j, p in enumerate(margins)]
    exact += [Measurement(Marginal((i, j)), (n * np.outer(margins[i], margins[j])).ravel()
                          .astype(np.float32), 0.0) for i, j in ((0, 1), (1, 2))]
    dec = _random_decoder(widths)
    z = latent_points(4, 1024, seed=1)
    fitted = fit_prior(dec, z, widths, exact, steps=400)
    got = _expected_marginals(dec, z, fitted.weight, fitted.head_bias, widths)
    offsets = np.concatenate([[0], np.cumsum(widths)])
    for j, p in enumerate(margins):
        assert 0.5 * np.abs(got[offsets[j]:offsets[j + 1]] - p).sum() < 0.01
    # and what the decoder samples agrees within sampling tolerance (20,000 draws)
    dec.prior_z, dec.prior_weight = torch.from_numpy(fitted.z), torch.from_numpy(fitted.weight)
    draws = dec.sample(20_000, torch.Generator().manual_seed(2)).astype(np.float64)
    for j, p in enumerate(margins):  # 20,000 latent draws: a Monte Carlo error of ~0.005
        assert 0.5 * np.abs(draws[:, offsets[j]:offsets[j + 1]].mean(0) - p).sum() < 0.02


def test_without_privacy_the_generator_matches_the_datas_two_way_marginals(titanic) -> None:  # type: ignore[no-untyped-def]
    gen = _fit(titanic.frame, titanic.schema, titanic.target, epsilon=math.inf, epochs=3,
               random_state=0)
    synthetic = gen.sample(len(titanic.frame), balanced=False, random_state=0)
    got = kway_tvd(titanic.frame, synthetic, titanic.schema, ways=(1, 2))
    # two real samples of this size differ by about 0.02 / 0.05
    assert got["tvd_1way"] < 0.035 and got["tvd_2way"] < 0.07


def test_total_estimate_weighs_every_measurement_by_its_noise() -> None:
    widths = [2, 3]
    count = Measurement(Marginal(()), np.array([100.0], np.float32), 10.0)
    one = Measurement(Marginal((0,)), np.array([60.0, 60.0], np.float32), 5.0)  # var 2·25
    assert total_estimate([count], widths) == pytest.approx(100.0)
    # inverse-variance weights 1/100 and 1/50: (100/100 + 120/50) / (1/100 + 1/50)
    assert total_estimate([count, one], widths) == pytest.approx((1 + 2.4) / 0.03)
    exact = Measurement(Marginal((1,)), np.array([10.0, 20.0, 30.0], np.float32), 0.0)
    assert total_estimate([count, one, exact], widths) == 60.0


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.floats(-50, 500), min_size=1, max_size=60),
       groups=st.integers(2, 12), ordered=st.booleans())
def test_pair_groups_are_contiguous_and_bounded(counts: list[float], groups: int,
                                                ordered: bool) -> None:
    m = Measurement(Marginal((0,)), np.array(counts, np.float32), 1.0)
    g = pair_groups(m, ordered=ordered, max_groups=groups)
    if len(counts) <= groups:
        assert g is None
        return
    assert g is not None and len(g) == len(counts)
    labels = sorted(set(g))
    assert labels == list(range(len(labels))) and len(labels) <= groups
    if ordered:
        assert list(g) == sorted(g)  # contiguous groups of neighbouring bins
    else:  # the largest noisy counts keep a cell of their own
        clipped = np.clip(np.array(counts, np.float32).astype(np.float64), 0, None)
        top = np.argsort(-clipped, kind="stable")[: groups - 1]  # negative counts tie at 0
        assert len({g[i] for i in top}) == groups - 1


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10**6))
def test_the_selected_pairs_form_a_maximum_spanning_tree(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    info = rng.random((n, n))
    info = (info + info.T) / 2
    tree = _spanning_tree(info)
    assert len(tree) == n - 1 and all(i < j for i, j in tree)
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for i, j in tree:
        parent[root(i)] = root(j)
    assert len({root(a) for a in range(n)}) == 1  # connected: a tree
    # no other spanning tree weighs more (checked against Kruskal)
    edges = sorted(((info[i, j], i, j) for i in range(n) for j in range(i + 1, n)), reverse=True)
    parent = list(range(n))
    best = 0.0
    for w, i, j in edges:
        if root(i) != root(j):
            parent[root(i)] = root(j)
            best += w
    assert sum(info[i, j] for i, j in tree) == pytest.approx(best)


def test_pairs_come_from_the_decoder_and_cover_every_feature() -> None:
    widths = [3, 4, 5, 2]
    dec = _random_decoder(widths, seed=3)
    z = latent_points(4, 512, seed=0)
    pairs = select_pairs(dec, z, widths, [None] * 4)
    assert len(pairs) == 3 and {f for p in pairs for f in p.features} == {0, 1, 2, 3}
    every = select_pairs(dec, z, widths, [None] * 4, all_pairs=True)
    assert len(every) == 6


def test_gaussian_measurements_have_their_stated_noise() -> None:
    codes = np.zeros((1000, 2), dtype=np.int64)
    rng = np.random.default_rng(0)
    ms = measure_marginals(codes, [50, 40], [Marginal((0,)), Marginal((0, 1))],
                           noise_multiplier=2.0, rng=rng)
    assert [m.noise_std for m in ms] == [pytest.approx(2.0 * math.sqrt(2))] * 2
    noise = np.concatenate([ms[0].noisy[1:], ms[1].noisy[1:]])  # cells with no rows
    assert noise.std() == pytest.approx(2.0 * math.sqrt(2), rel=0.1)
    assert measure_count(7, noise_multiplier=0.0, rng=rng).noisy[0] == 7.0


# -- values within a bin ----------------------------------------------------------------------------
def test_the_linear_shape_takes_its_slope_from_the_neighbours() -> None:
    rng = np.random.default_rng(0)
    codes = np.full(50_000, 1)
    flat = _linear_position(np.array([1.0, 1.0, 1.0]), codes, rng)
    assert flat.mean() == pytest.approx(0.5, abs=0.01) and flat.min() >= 0 and flat.max() < 1
    # neighbours 0.1 and 0.5 around 0.3: slope 0.2 per bin, density 0.2 → 0.4 across the bin
    ramp = _linear_position(np.array([0.1, 0.3, 0.5]), codes, rng)
    t = np.linspace(0, 1, 200_001)
    density = 0.2 + 0.2 * t
    assert ramp.mean() == pytest.approx(np.trapezoid(t * density, t) / np.trapezoid(density, t),
                                        abs=0.004)
    # an empty neighbour cannot make the density negative: the slope is limited to 2 × 0.3
    steep = _linear_position(np.array([0.0, 0.3, 5.0]), codes, rng)
    assert steep.mean() == pytest.approx(2 / 3, abs=0.005)  # density 0 → 0.6: a triangle


def test_values_drawn_with_a_shape_stay_in_their_bins() -> None:
    schema = Schema((NumericColumn("x", 0.0, 10.0), NumericColumn("k", 0, 1000, integer=True),
                     CategoricalColumn("y", ("a", "b"))), target="y")
    disc = Discretizer(schema, 8)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 8, size=(5000, 2))
    shapes = [rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(8))]
    again = disc.codes(disc.encoded(codes, rng, shapes))
    assert np.array_equal(again, codes)


# -- limits and edge cases ---------------------------------------------------------------------------
def test_a_wide_table_stays_within_the_readers_tensor_limit(tmp_path: Path) -> None:
    """Measurements travel as one tensor per class: the tensor count does not grow with F."""
    from threedgl.artifact.format import MAX_TENSORS

    rng = np.random.default_rng(0)
    n_features, n = 40, 300
    frame = pd.DataFrame({f"c{j}": rng.choice(["a", "b", "c"], n) for j in range(n_features)})
    frame["y"] = rng.choice(["p", "q"], n)
    columns = [CategoricalColumn(f"c{j}", ("a", "b", "c")) for j in range(n_features)]
    schema = Schema((*columns, CategoricalColumn("y", ("p", "q"))), target="y")
    gen = _fit(frame, schema, "y", epochs=1, random_state=0)
    path = gen.save(tmp_path / "wide.3dgl")
    tensors = read_artifact(path).tensors
    per_class = {name.partition(".")[0] for name in tensors}
    assert len(tensors) <= 10 * len(per_class) < MAX_TENSORS
    loaded = load_generator(path)
    assert sum(len(ms) for ms in loaded.measurements_) == sum(len(ms) for ms in gen.measurements_)
    assert all(len(ms) == 1 + n_features + n_features - 1 for ms in gen.measurements_)


def test_one_feature_charges_no_pairs_and_the_statement_claims_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(5, 2, 400).clip(0, 10), "y": rng.choice(["a", "b"], 400)})
    schema = Schema((NumericColumn("x", 0.0, 10.0), CategoricalColumn("y", ("a", "b"))),
                    target="y")
    gen = _fit(frame, schema, "y", epochs=1, random_state=0)
    for record, ms in zip(gen.privacy_, gen.measurements_, strict=True):
        assert record.pairs_noise_multiplier is None
        assert [len(m.features) for m in ms] == [0, 1]
        assert 0.995 * 1.9 <= record.recompute_epsilon() <= 1.9  # DP-Adam kept the share
    statement = gen.privacy_statement()
    assert "two-way" not in statement
    assert "one-way" in statement


def test_a_share_too_small_to_release_anything_is_refused() -> None:
    with pytest.raises(PrivacyError, match=r"pairs_share = 1e-15 is too small"):
        _budget_split(1.9, 1e-4, 0.05, 0.5, 1e-15)
    assert _budget_split(1.9, 1e-4, 0.05, 0.5, 0.0).pairs == 0.0


def test_without_the_pairs_share_no_two_way_is_measured(titanic) -> None:  # type: ignore[no-untyped-def]
    gen = _fit(titanic.frame, titanic.schema, titanic.target, epochs=1, pairs_share=0.0,
               random_state=0)
    assert all(r.pairs_noise_multiplier is None for r in gen.privacy_)
    assert all(max(len(m.features) for m in ms) == 1 for ms in gen.measurements_)
    assert all(0.995 * 1.9 <= r.recompute_epsilon() <= 1.9 for r in gen.privacy_)


def test_a_refit_in_paper_mode_keeps_nothing_of_the_anchored_fit(titanic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gen = _fit(titanic.frame, titanic.schema, titanic.target, epochs=1, random_state=0)
    gen.sample(10, random_state=0)  # fills the bins' shape cache
    gen.set_params(mode="paper", epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen.fit(titanic.frame, target=titanic.target, schema=titanic.schema, ledger=False)
    assert getattr(gen, "measurements_", None) is None
    assert "_bin_shapes_cache" not in gen.__dict__
    loaded = load_generator(gen.save(tmp_path / "paper.3dgl"))
    assert not any(name.endswith(".measurements") for name in read_artifact(
        tmp_path / "paper.3dgl").tensors)
    assert getattr(loaded, "measurements_", None) is None
    assert "measurement" not in loaded.privacy_statement()
