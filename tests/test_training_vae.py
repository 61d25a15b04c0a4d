"""Tests of threedgl.model.training and threedgl.model.networks."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from threedgl.errors import PrivacyError, ThreedglError
from threedgl.model.networks import BatchedVAE, Decoder, check_architecture, check_layout
from threedgl.model.training import TrainedModels, class_generators, train_class_models

LAYOUT = [("numeric", 0, 1), ("categorical", 1, 4), ("numeric", 4, 5)]


def _class_data(n: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 5), dtype=np.float32)
    x[:, 0] = np.clip(rng.normal(0.3 + shift, 0.05, n), 0, 1)
    x[:, 4] = np.clip(rng.normal(0.7 - shift, 0.05, n), 0, 1)
    x[np.arange(n), 1 + rng.choice(3, n, p=[0.7, 0.2, 0.1] if shift else [0.1, 0.2, 0.7])] = 1
    return x


DATA = [_class_data(300, 0, 0.0), _class_data(120, 1, 0.4)]
SMALL = {"hidden": (16, 8), "latent": 2, "beta": 0.1, "epochs": 2, "batch_size": 32}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids thread hand-offs on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def _one_epoch() -> TrainedModels:
    return _train(epochs=1)


def _train(**kw: object) -> TrainedModels:
    args: dict[str, object] = {**SMALL, "epsilon": 1.9, "delta": 1e-4, "seed": 3}
    args.update(kw)
    return train_class_models(DATA, LAYOUT, **args)  # type: ignore[arg-type]


def test_same_seed_same_decoders() -> None:
    a, b, c = _one_epoch(), _train(epochs=1), _train(epochs=1, seed=4)
    for sa, sb, sc in zip(a.decoder_states, b.decoder_states, c.decoder_states, strict=True):
        assert list(sa) == ["decoder.0.weight", "decoder.0.bias", "decoder.1.weight",
                            "decoder.1.bias", "head.weight", "head.bias"]  # fmt: skip
        for name in sa:
            assert torch.equal(sa[name], sb[name])
            assert sa[name].dtype == torch.float32 and sa[name].is_contiguous()
        assert not torch.equal(sa["head.weight"], sc["head.weight"])


def test_privacy_records() -> None:
    out = _train()
    assert len(out.privacy) == 2
    for rec, n in zip(out.privacy, (300, 120), strict=True):
        assert rec.sample_rate == pytest.approx(32 / n)
        assert rec.steps == math.ceil(2 / (32 / n))
        assert 0.98 * 1.9 <= rec.epsilon <= 1.9
        assert rec.recompute_epsilon() == rec.epsilon
        assert rec.max_grad_norm == SMALL.get("max_grad_norm", 1.0)
    assert out.hyperparameters["batch_size"] == 32


def test_small_class_uses_full_batch() -> None:
    data = [_class_data(20, 0, 0.0)]
    out = train_class_models(data, LAYOUT, **SMALL, epsilon=1.9, delta=1e-4, seed=0)  # type: ignore[arg-type]
    assert out.privacy[0].sample_rate == 1.0
    assert out.privacy[0].steps == 2


def test_non_private_and_progress() -> None:
    calls: list[tuple[int, int, float]] = []
    out = _train(epsilon=math.inf, progress=lambda k, e, eps: calls.append((k, e, eps)))
    assert all(r.noise_multiplier == 0 and r.epsilon == math.inf for r in out.privacy)
    assert all(r.max_grad_norm == math.inf for r in out.privacy)
    assert sorted((k, e) for k, e, _ in calls) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    calls.clear()
    _train(progress=lambda k, e, eps: calls.append((k, e, eps)))
    eps_by_class = {k: [eps for kk, _, eps in calls if kk == k] for k in (0, 1)}
    for values in eps_by_class.values():
        assert values == sorted(values) and values[-1] <= 1.9


def test_non_private_training_learns_the_data() -> None:
    out = train_class_models(
        DATA, LAYOUT, hidden=(16, 8), latent=2, beta=0.1, epochs=30, batch_size=64,
        learning_rate=1e-2, epsilon=math.inf, seed=0,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for k, data in enumerate(DATA):
        samples = out.decoder(k).sample(2000, g)
        assert samples.shape == (2000, 5)
        assert np.allclose(samples[:, 1:4].sum(1), 1, atol=1e-5)
        assert ((samples[:, [0, 4]] >= 0) & (samples[:, [0, 4]] <= 1)).all()
        assert abs(samples[:, 0].mean() - data[:, 0].mean()) < 0.1
        assert np.abs(samples[:, 1:4].mean(0) - data[:, 1:4].mean(0)).max() < 0.15


def test_decoder_matches_batched_model() -> None:
    gens = class_generators(0, 2)
    model = BatchedVAE(5, LAYOUT, hidden=(16, 8), latent=2, beta=0.1, generators=gens)
    dec = Decoder(model.decoder_state(1), model.architecture())
    z = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    out = dec.decode(z)
    w = [t.detach()[1] for layer in model.layers[3:] for t in layer]
    h = torch.tanh(torch.from_numpy(z) @ w[0].T + w[1])
    h = torch.tanh(h @ w[2].T + w[3])
    logits = h @ w[4].T + w[5]
    np.testing.assert_allclose(out[:, 0], torch.sigmoid(logits[:, 0]).numpy(), rtol=1e-5)
    np.testing.assert_allclose(out[:, 1:4], torch.softmax(logits[:, 1:4], 1).numpy(), rtol=1e-5)
    with pytest.raises(ThreedglError, match="shape"):
        dec.decode(np.zeros((3, 5)))


@pytest.mark.parametrize(
    ("mutate", "word"),
    [
        (lambda s: s.pop("head.bias"), "head.bias"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "extra.weight"),
        (lambda s: s.__setitem__("decoder.1.weight", torch.zeros(3, 3)), "decoder.1.weight"),
        (lambda s: s.__setitem__("head.weight", s["head.weight"].double()), "head.weight"),
        (lambda s: s["decoder.0.bias"].fill_(math.nan), "decoder.0.bias"),
        (lambda s: s.__setitem__("head.bias", [0.0] * 5), "head.bias"),
    ],
)
def test_decoder_rejects_bad_state(mutate: object, word: str) -> None:
    out = _one_epoch()
    state = {k: v.clone() for k, v in out.decoder_states[0].items()}
    mutate(state)  # type: ignore[operator]
    with pytest.raises(ThreedglError, match=word.replace(".", r"\.")):
        Decoder(state, out.architecture)


def test_architecture_and_layout_checks() -> None:
    arch = _one_epoch().architecture
    assert check_architecture(arch) == arch
    for key, value in (("h1", 0), ("latent", True), ("n_outputs", 6), ("layout", [])):
        bad = {**arch, key: value}
        with pytest.raises(ThreedglError):
            check_architecture(bad)
    with pytest.raises(ThreedglError):
        check_architecture({**arch, "extra": 1})
    for layout in (
        [("numeric", 0, 2)],
        [("numeric", 1, 2)],
        [("text", 0, 1)],
        [("categorical", 0, 0)],
        [("numeric", 0, 1.0)],
    ):
        with pytest.raises(ThreedglError):
            check_layout(layout)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"epsilon": 0.0}, PrivacyError),
        ({"delta": 1.0}, PrivacyError),
        ({"max_grad_norm": -1.0}, PrivacyError),
        ({"accountant": "gdp"}, PrivacyError),
        ({"epochs": 0}, ThreedglError),
        ({"batch_size": 2.5}, ThreedglError),
        ({"beta": 1.5}, ThreedglError),
        ({"learning_rate": 0.0}, ThreedglError),
    ],
)
def test_train_validates(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        _train(**kwargs)


def test_train_validates_data() -> None:
    with pytest.raises(ThreedglError, match="shape"):
        train_class_models([np.zeros((10, 4))], LAYOUT, **SMALL)  # type: ignore[arg-type]
    bad = DATA[0].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ThreedglError, match="NaN"):
        train_class_models([bad], LAYOUT, **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ThreedglError):
        train_class_models([], LAYOUT, **SMALL)  # type: ignore[arg-type]
