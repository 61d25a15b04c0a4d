"""Randomness of a release: OS entropy, float64 Poisson masks, secure mode, δ against 1/n."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from threedgl import DDPBetaVAE, DPMarginals, load_generator
from threedgl.errors import PrivacyWarning
from threedgl.model.base import _seed
from threedgl.privacy.dp_adam import DPAdam, _normal, noise_sources, poisson_sample
from threedgl.privacy.secure import SecureRandom


def test_a_release_seed_has_128_bits_of_os_entropy() -> None:
    seeds = [_seed(None) for _ in range(8)]
    assert len(set(seeds)) == 8
    assert max(s.bit_length() for s in seeds) > 100  # it used to be 31 bits
    assert _seed(7) == 7
    assert _seed(np.random.default_rng(0)) == _seed(np.random.default_rng(0))


def test_poisson_masks_use_float64_uniforms() -> None:
    """q = 1e-12 on 10^7 rows: float32 uniforms (2^-24 steps) would pick ~0.6 rows a call."""
    g = torch.Generator().manual_seed(0)
    picked = sum(int(poisson_sample([10_000_000], [1e-12], [g], [True])[1].sum())
                 for _ in range(20))  # float32: ~12 expected, P(0) = e^-12
    assert picked == 0


def test_release_noise_is_not_a_32_bit_torch_stream() -> None:
    """Torch's CPU generator keeps 32 bits of its seed; the privacy noise comes from PCG64."""
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5 + (7 << 32))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))  # the flaw
    s = 5
    first = [g.random(4) for g in noise_sources(s, 2)]
    other = [g.random(4) for g in noise_sources(s + (7 << 32), 2)]
    assert all(isinstance(g.bit_generator, np.random.PCG64) for g in noise_sources(s, 2))
    assert not any(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    assert not np.array_equal(first[0], first[1])


def test_secure_mode_draws_no_gradient_noise_from_the_seeded_generator() -> None:
    w, b = torch.zeros(1, 3, 2), torch.zeros(1, 3)
    g = torch.Generator().manual_seed(0)
    before = g.get_state().clone()
    opt = DPAdam([(w, b)], noise_multipliers=[1.0], max_grad_norms=[1.0],
                 expected_batch_sizes=[1.0], steps=[1], generators=[g], secure_mode=True)
    grads = [torch.zeros(1, 3, 2), torch.zeros(1, 3)]
    opt.add_noise(grads, torch.tensor([True]))
    assert torch.equal(g.get_state(), before)
    assert float(grads[0].abs().sum()) > 0


def test_poisson_sample_rate_is_respected() -> None:
    g = torch.Generator().manual_seed(1)
    n, q = 200_000, 0.013
    picked = float(poisson_sample([n], [q], [g], [True])[1].sum())
    assert abs(picked - n * q) < 5 * (n * q * (1 - q)) ** 0.5


def test_secure_random_is_standard_normal_and_uniform() -> None:
    rng = SecureRandom()
    z = rng.standard_normal(200_000)
    assert z.shape == (200_000,)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert stats.kstest(z, "norm").pvalue > 1e-4
    u = rng.uniform(100_000)
    assert u.min() > 0 and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-4
    assert rng.normal(5.0, 2.0, (3, 4)).shape == (3, 4)
    assert _normal(rng, 1.0, (2, 3)).dtype == torch.float32


@pytest.mark.parametrize("mode", ["anchored", "paper"])
def test_secure_mode_noise_does_not_follow_the_seed(titanic, tmp_path, mode: str) -> None:  # type: ignore[no-untyped-def]
    frame = titanic.frame.sample(400, random_state=0)

    def fit(secure: bool) -> DDPBetaVAE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DDPBetaVAE(mode=mode, epochs=2, random_state=3, secure_mode=secure).fit(
                frame, target=titanic.target, schema=titanic.schema)

    a, b, c = fit(True), fit(True), fit(False)
    wa, wb = a._tensors(), b._tensors()
    assert any(not np.array_equal(wa[k], wb[k]) for k in wa)  # the seed no longer fixes it
    assert a.manifest_["training"]["secure_mode"] is True
    assert "secure_mode" not in c.manifest_["training"]
    path = a.save(tmp_path / "secure.3dgl")
    loaded = load_generator(path)
    assert loaded.secure_mode is True and len(loaded.sample(50, random_state=0)) == 50


def test_secure_mode_of_the_marginals_baseline(titanic) -> None:  # type: ignore[no-untyped-def]
    fits = [DPMarginals(random_state=0, secure_mode=True).fit(
        titanic.frame, target=titanic.target, schema=titanic.schema) for _ in range(2)]
    h0, h1 = (f.histograms_[0][0] for f in fits)
    assert not np.array_equal(h0, h1)


def test_delta_at_least_one_over_n_warns(titanic) -> None:  # type: ignore[no-untyped-def]
    small = titanic.frame.sample(60, random_state=0)
    with pytest.warns(PrivacyWarning, match="at least 1/n") as caught:
        DPMarginals(delta=0.05, random_state=0).fit(
            small, target=titanic.target, schema=titanic.schema)
    # the text holds no number computed from the rows (the class sizes), only 1/delta
    sizes = {str(n) for n in small[titanic.target].value_counts()}
    numbers = set(re.findall(r"\d+", str(caught[0].message)))
    assert not sizes & numbers and "20" in numbers
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyWarning)
        DPMarginals(delta=1e-4, random_state=0).fit(
            small, target=titanic.target, schema=titanic.schema)
