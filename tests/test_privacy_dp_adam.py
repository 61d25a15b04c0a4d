"""Tests of threedgl.privacy.dp_adam (ghost clipping, noise, Adam) against autograd and Opacus."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from threedgl.errors import PrivacyError
from threedgl.model.networks import BatchedVAE
from threedgl.model.training import class_generators, run_stack
from threedgl.privacy.dp_adam import DPAdam, poisson_sample

LAYOUT = [("numeric", 0, 1), ("numeric", 1, 2), ("categorical", 2, 5), ("categorical", 5, 7)]
D, LATENT, HIDDEN = 7, 2, (6, 4)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids thread hand-offs on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, D), dtype=np.float32)
    x[:, :2] = rng.random((n, 2))
    x[np.arange(n), 2 + rng.integers(0, 3, n)] = 1
    x[np.arange(n), 5 + rng.integers(0, 2, n)] = 1
    return x


def _model(m: int, seed: int = 0) -> tuple[BatchedVAE, list[torch.Generator]]:
    gens = class_generators(seed, m)
    return BatchedVAE(D, LAYOUT, hidden=HIDDEN, latent=LATENT, beta=0.1, generators=gens), gens


def _opt(model: BatchedVAE, gens: list[torch.Generator], **kw: object) -> DPAdam:
    m = model.n_models
    args: dict[str, object] = {
        "noise_multipliers": [1.0] * m,
        "max_grad_norms": [1.0] * m,
        "expected_batch_sizes": [5.0] * m,
        "steps": [10] * m,
        "generators": gens,
        "lr": 1e-2,
    }
    args.update(kw)
    return DPAdam(model.layers, **args)  # type: ignore[arg-type]


def _per_sample_grads(model: BatchedVAE, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(M, B, P) per-sample gradients by a loop over samples with autograd."""
    params = [p for layer in model.layers for p in layer]
    out = torch.zeros(x.shape[0], x.shape[1], sum(p[0].numel() for p in params))
    for i in range(x.shape[1]):
        losses, _ = model.forward(x[:, i : i + 1], noise[:, i : i + 1])
        grads = torch.autograd.grad(losses.sum(), params)
        out[:, i] = torch.cat([g.reshape(g.shape[0], -1) for g in grads], 1)
    return out


def _batch(m: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.stack([torch.from_numpy(_data(b, s)) for s in range(m)])
    return x, torch.randn(m, b, LATENT, generator=g)


def test_ghost_norms_equal_per_sample_norms() -> None:
    model, gens = _model(2)
    x, noise = _batch(2, 6)
    opt = _opt(model, gens)
    losses, records = model.forward(x, noise)
    _, norms = opt.clipped_sums(losses, torch.ones(2, 6), records)
    direct = _per_sample_grads(model, x, noise).norm(dim=-1)
    torch.testing.assert_close(norms, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip", [0.05, 0.5, math.inf])
def test_clipping_bounds_each_sample(clip: float) -> None:
    model, gens = _model(2)
    x, noise = _batch(2, 5)
    opt = _opt(model, gens, max_grad_norms=[clip, clip], noise_multipliers=[0.0, 0.0])
    direct = _per_sample_grads(model, x, noise)
    for i in range(5):  # only sample i in the batch: the clipped sum is its clipped gradient
        mask = torch.zeros(2, 5)
        mask[:, i] = 1
        losses, records = model.forward(x, noise)
        grads, _ = opt.clipped_sums(losses, mask, records)
        flat = torch.cat([g.reshape(2, -1) for g in grads], 1)
        assert bool((flat.norm(dim=1) <= clip + 1e-6).all())
        g_i = direct[:, i]
        expected = g_i * (clip / (g_i.norm(dim=1, keepdim=True) + 1e-6)).clamp(max=1.0)
        torch.testing.assert_close(flat, expected, rtol=1e-5, atol=1e-6)


def test_matches_opacus(monkeypatch: pytest.MonkeyPatch) -> None:
    import opacus.optimizers.optimizer as opacus_optimizer

    sigma, clip, expected_b, lr = 0.7, 0.3, 4.5, 1e-2
    model, _ = _model(1, seed=5)
    module = model.to_module(0)
    gs_module = GradSampleModule(module, batch_first=True, loss_reduction="mean")
    noise_gen = torch.Generator().manual_seed(99)
    ours_gen = torch.Generator().manual_seed(99)

    def fake_noise(
        std: float, reference: torch.Tensor, generator: object = None, secure_mode: bool = False
    ) -> torch.Tensor:
        # same draw as ours: torch.normal(0, std, shape) from the model's generator
        return torch.normal(0.0, std, reference.shape, generator=noise_gen)

    module.requires_grad_(True)
    monkeypatch.setattr(opacus_optimizer, "_generate_noise", fake_noise)
    dp_opt = DPOptimizer(
        torch.optim.Adam(module.parameters(), lr=lr),
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=expected_b,
        loss_reduction="mean",
    )
    ours = _opt(
        model, [ours_gen], noise_multipliers=[sigma], max_grad_norms=[clip],
        expected_batch_sizes=[expected_b], lr=lr,
    )  # fmt: skip
    for step in range(3):
        b = 4 + step
        x, noise = _batch(1, b)
        dp_opt.zero_grad(set_to_none=True)
        gs_module(x[0], noise[0]).mean().backward()
        dp_opt.step()
        losses, records = model.forward(x, noise)
        ours.step(losses, torch.ones(1, b), records)
    for lin, (w, bias) in zip(module.linears, model.layers, strict=True):
        torch.testing.assert_close(w[0].detach(), lin.weight.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bias[0].detach(), lin.bias.detach(), rtol=1e-5, atol=1e-5)


def test_no_noise_no_clipping_equals_non_private_adam() -> None:
    model, gens = _model(1, seed=2)
    module = model.to_module(0)
    adam = torch.optim.Adam(module.parameters(), lr=1e-2)
    opt = _opt(
        model, gens, noise_multipliers=[0.0], max_grad_norms=[math.inf], expected_batch_sizes=[6.0]
    )
    for step in range(4):
        b = 5 + step
        x, noise = _batch(1, b)
        mask = torch.ones(1, b)
        mask[0, -1] = 0  # a padded row must not count
        adam.zero_grad()
        (module(x[0, :-1], noise[0, :-1]).sum() / 6.0).backward()
        adam.step()
        losses, records = model.forward(x, noise)
        opt.step(losses, mask, records)
    for lin, (w, bias) in zip(module.linears, model.layers, strict=True):
        torch.testing.assert_close(w[0].detach(), lin.weight.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bias[0].detach(), lin.bias.detach(), rtol=1e-5, atol=1e-6)


def test_batched_equals_one_by_one() -> None:
    arrays = [_data(30, 0), _data(12, 1), _data(50, 2)]
    rates = [0.2, 0.5, 0.1]
    kw: dict[str, object] = {
        "noise_multipliers": [1.0, 0.5, 2.0],
        "max_grad_norms": [1.0, 0.5, 2.0],
        "expected_batch_sizes": [6.0, 6.0, 5.0],
        "steps": [7, 3, 11],
    }
    model, gens = _model(3, seed=11)
    run_stack(model, _opt(model, gens, **kw), arrays, rates, gens)
    for k in range(3):
        gens_all = class_generators(11, 3)
        single = BatchedVAE(
            D, LAYOUT, hidden=HIDDEN, latent=LATENT, beta=0.1, generators=[gens_all[k]]
        )
        kw_k = {name: [v[k]] for name, v in kw.items()}  # type: ignore[attr-defined]
        opt = _opt(single, [gens_all[k]], **kw_k)
        run_stack(single, opt, [arrays[k]], [rates[k]], [gens_all[k]])
        assert int(opt.steps_done[0]) == kw["steps"][k]  # type: ignore[index]
        for (w, b), (w1, b1) in zip(model.layers, single.layers, strict=True):
            torch.testing.assert_close(w[k], w1[0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(b[k], b1[0], rtol=1e-5, atol=1e-6)


def test_finished_models_are_not_updated() -> None:
    model, gens = _model(2)
    opt = _opt(model, gens, steps=[1, 3])
    x, noise = _batch(2, 4)
    for _ in range(3):
        losses, records = model.forward(x, noise)
        before = [w[0].detach().clone() for w, _ in model.layers]
        opt.step(losses, torch.ones(2, 4), records)
    assert opt.steps_done.tolist() == [1, 3]
    for (w, _), b in zip(model.layers, before, strict=True):
        assert torch.equal(w[0], b)  # model 0 stopped after its one step
    assert not bool(opt.active.any())


def test_noise_std() -> None:
    sigma, clip = 1.3, 0.7
    model, gens = _model(2)
    opt = _opt(model, gens, noise_multipliers=[sigma, 0.0], max_grad_norms=[clip, clip])
    grads = [torch.zeros_like(p) for layer in model.layers for p in layer]
    opt.add_noise(grads, torch.tensor([True, True]))
    flat = torch.cat([g[0].flatten() for g in grads])
    assert abs(float(flat.std()) - sigma * clip) < 0.15 * sigma * clip
    assert abs(float(flat.mean())) < 0.15 * sigma * clip
    assert all(bool((g[1] == 0).all()) for g in grads)  # σ = 0: no noise


def test_noise_std_large_sample() -> None:
    g = torch.Generator().manual_seed(0)
    layers = [(torch.zeros(1, 200, 100), torch.zeros(1, 200))]
    opt = DPAdam(
        layers, noise_multipliers=[2.0], max_grad_norms=[0.5], expected_batch_sizes=[1.0],
        steps=[1], generators=[g],
    )  # fmt: skip
    grads = [torch.zeros(1, 200, 100), torch.zeros(1, 200)]
    opt.add_noise(grads, torch.tensor([True]))
    assert float(grads[0].std()) == pytest.approx(1.0, rel=0.05)


def test_poisson_sample() -> None:
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    sizes = []
    for _ in range(200):
        index, mask = poisson_sample([1000, 50, 10], [0.05, 0.5, 1.0], gens, [True, True, False])
        counts = mask.sum(1)
        sizes.append(counts)
        assert index.shape == mask.shape
        assert int(counts[2]) == 0  # inactive model draws nothing
        assert bool((index[0, : int(counts[0])] < 1000).all())
        assert len(set(index[0, : int(counts[0])].tolist())) == int(counts[0])
    mean = torch.stack(sizes).mean(0)
    assert float(mean[0]) == pytest.approx(50, rel=0.05)
    assert float(mean[1]) == pytest.approx(25, rel=0.05)


def test_noise_needs_finite_clip() -> None:
    model, gens = _model(1)
    with pytest.raises(PrivacyError, match="max_grad_norm"):
        _opt(model, gens, noise_multipliers=[1.0], max_grad_norms=[math.inf])
