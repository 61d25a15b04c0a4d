"""Train one (ε, δ)-DP β-VAE per class, all classes together as one stack.

For class k with n_k rows: sampling rate q_k = min(1, batch_size / n_k), steps_k =
ceil(epochs / q_k), and the noise multiplier σ_k is calibrated by the accountant so that
(σ_k, q_k, steps_k) meets (ε, δ) (within 2 %, never above). The classes are disjoint, so
by parallel composition the set of class models is (ε, δ)-DP. ``epsilon=inf`` trains
without privacy (σ = 0, no clipping).

Defaults. The paper gives none of epochs, batch size, C or learning rate. They were
chosen on Adult (two classes of 24,720 and 7,841 rows, D = 108 encoded columns, Table I
architecture (128, 64), d = 7, β = 0.005, ε = 1.9, δ = 1e-4, RDP): a logistic regression
trained on as many decoded samples as real rows, tested on adult.test. Real-data
reference: accuracy 0.851, F1 0.652, AUC 0.904. Measured (accuracy / F1 / AUC):

=====  ======  =====  ====  =======================  ==========
B      epochs  lr     C     synthetic → real test     σ (class)
=====  ======  =====  ====  =======================  ==========
128    20      5e-3   1     0.829 / 0.627 / 0.878     0.95, 1.38
128    20      5e-3   1     0.815 / 0.619 / 0.870     (seed 1)
256    30      5e-3   1     0.818 / 0.616 / 0.874     1.33, 2.16
128    10      5e-3   1     0.816 / 0.618 / 0.862     0.84, 1.12
256    20      1e-2   1     0.818 / 0.606 / 0.859     1.17, 1.81
128    20      1e-2   1     0.762 / 0.617 / 0.858
128    20      2e-3   1     0.813 / 0.568 / 0.849
128    20      2e-3   0.3   0.813 / 0.566 / 0.850
128    20      2e-3   3     0.814 / 0.565 / 0.851
256    20      2e-3   1     0.803 / 0.544 / 0.827
64     20      2e-3   1     0.816 / 0.560 / 0.854
64     10      2e-3   1     0.812 / 0.541 / 0.843
=====  ======  =====  ====  =======================  ==========

So B = 128, 20 epochs, lr = 5e-3, C = 1: the learning rate matters most (2e-3 is too
slow for the few thousand noisy steps, 1e-2 too noisy), C barely matters with Adam
(it rescales signal and noise alike; 1 is Opacus's usual value), more epochs at B = 256
cost σ and did not help. Cost: 20 / q steps per class, i.e. ≈ 4,700 steps of batch 128
for a 30k-row class, ≈ 12-16 s on 2 cores (≈ 3 ms per step measured); the classes of a
table train together in one stack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from threedgl.errors import PrivacyError, ThreedglError, check_int, check_range
from threedgl.model.networks import BatchedVAE, Decoder, OutputBlock, check_layout
from threedgl.privacy.accounting import (
    ACCOUNTANTS,
    calibrate_noise_multiplier,
    compute_epsilon,
)
from threedgl.privacy.dp_adam import DPAdam, noise_sources, poisson_sample
from threedgl.privacy.record import PrivacyRecord
from threedgl.schema.rows import EncodedRows

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MAX_GRAD_NORM",
    "TrainedModels",
    "class_generators",
    "run_stack",
    "train_class_models",
    "train_stack",
]

#: Passes over each class (in expectation). See the module docstring for the measurements.
DEFAULT_EPOCHS = 20
#: Expected Poisson batch size B (q = B / n_class).
DEFAULT_BATCH_SIZE = 128
#: Per-sample clipping norm C.
DEFAULT_MAX_GRAD_NORM = 1.0
#: Adam learning rate.
DEFAULT_LEARNING_RATE = 5e-3

ProgressCallback = Callable[[int, int, float], None]
#: ``on_batch(class_index, steps_done)``: after every DP-Adam step of an active class.
BatchCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainedModels:
    """The released part of a training: decoders, architecture, privacy per class."""

    decoder_states: list[dict[str, torch.Tensor]]
    architecture: dict[str, Any]
    privacy: list[PrivacyRecord]
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def decoder(self, class_index: int) -> Decoder:
        return Decoder(self.decoder_states[class_index], self.architecture)


def class_generators(seed: int, n_classes: int) -> list[torch.Generator]:
    """One independent ``torch.Generator`` per class, derived from ``seed``."""
    children = np.random.SeedSequence(seed).spawn(n_classes)
    return [torch.Generator().manual_seed(int(c.generate_state(1, np.uint64)[0])) for c in children]


def _check_int(name: str, value: Any, low: int = 1) -> int:
    return check_int(name, value, low=low)


def train_class_models(
    datasets: Sequence[np.ndarray | EncodedRows],
    layout: Sequence[OutputBlock],
    *,
    hidden: tuple[int, int] = (64, 32),
    latent: int = 3,
    beta: float = 0.1,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    max_grad_norm: float = DEFAULT_MAX_GRAD_NORM,
    epsilon: float = 1.9,
    delta: float = 1e-4,
    accountant: str = "rdp",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    on_batch: BatchCallback | None = None,
    before_training: Callable[[list[PrivacyRecord]], None] | None = None,
    secure_mode: bool = False,
) -> TrainedModels:
    """Train one DP β-VAE per entry of ``datasets`` (encoded float32 matrices n_k × D, or
    :class:`~threedgl.schema.rows.EncodedRows`, expanded one batch at a time).

    ``progress(class_index, epoch, epsilon_spent_so_far)`` is called each time a class
    completes an epoch (in expectation: every ceil(1/q) steps), ``on_batch(class_index,
    steps_done)`` after every step. ``before_training(records)`` gets each class's privacy
    record once the noise is calibrated, before any step (it may raise to stop).
    """
    if not isinstance(datasets, Sequence) or len(datasets) == 0:
        raise ThreedglError("'datasets' must be a non-empty list of 2-D arrays (one per class).")
    spans = check_layout(list(layout))
    n_cols = spans[-1][2]
    arrays: list[np.ndarray | EncodedRows] = []
    for k, d in enumerate(datasets):
        # EncodedRows come from encode_table: conformed, finite, expanded per batch
        a = d if isinstance(d, EncodedRows) else np.asarray(d, dtype=np.float32)
        shape = a.shape
        if len(shape) != 2 or shape[1] != n_cols or shape[0] < 1:
            raise ThreedglError(
                f"Class {k} data must have shape (n >= 1, {n_cols}). Got {shape} instead."
            )
        if isinstance(a, np.ndarray) and not np.isfinite(a).all():
            raise ThreedglError(f"Class {k} data contains NaN or infinite values.")
        arrays.append(a)
    h1, h2 = (_check_int("hidden", h) for h in hidden)
    latent = _check_int("latent", latent)
    epochs = _check_int("epochs", epochs)
    batch_size = _check_int("batch_size", batch_size)
    seed = _check_int("seed", seed, low=0)
    check_range("beta", beta, low=0, high=1)
    check_range("learning_rate", learning_rate, low=0)
    try:
        check_range("epsilon", epsilon, low=0, high=math.inf, high_inclusive=True)
        check_range("delta", delta, low=0, high=1)
        check_range("max_grad_norm", max_grad_norm, low=0, high=math.inf, high_inclusive=True)
    except ThreedglError as exc:
        raise PrivacyError(str(exc)) from None
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"The 'accountant' parameter must be one of {list(ACCOUNTANTS)}.")

    private = math.isfinite(epsilon)
    clip = float(max_grad_norm) if private else math.inf
    n_rows = [len(a) for a in arrays]
    rates = [min(1.0, batch_size / n) for n in n_rows]
    steps = [math.ceil(epochs / q) for q in rates]
    sigmas = [
        calibrate_noise_multiplier(epsilon, delta, q, s, accountant) if private else 0.0
        for q, s in zip(rates, steps, strict=True)
    ]

    def epsilon_after(k: int, done: int) -> float:
        return compute_epsilon(sigmas[k], rates[k], done, delta, accountant) if private else math.inf

    records_out = [
        PrivacyRecord(
            noise_multiplier=sigma,
            sample_rate=q,
            steps=s,
            max_grad_norm=clip,
            accountant=accountant,
            delta=float(delta),
            epsilon=compute_epsilon(sigma, q, s, delta, accountant) if private else math.inf,
        )
        for sigma, q, s in zip(sigmas, rates, steps, strict=True)
    ]
    if before_training is not None:  # what the training will spend, known before any step
        before_training(records_out)
    model = train_stack(
        arrays, spans, hidden=(h1, h2), latent=latent, beta=beta, learning_rate=learning_rate,
        noise_multipliers=sigmas, sample_rates=rates, steps=steps,
        expected_batch_sizes=[q * n for q, n in zip(rates, n_rows, strict=True)],
        max_grad_norm=clip, epochs=epochs, seed=seed, epsilon_after=epsilon_after,
        progress=progress, on_batch=on_batch, secure_mode=secure_mode,
    )
    return TrainedModels(
        decoder_states=[model.decoder_state(k) for k in range(len(arrays))],
        architecture=model.architecture(),
        privacy=records_out,
        hyperparameters={
            "hidden": [h1, h2],
            "latent": latent,
            "beta": float(beta),
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": float(learning_rate),
            "max_grad_norm": clip,
            "seed": seed,
        },
    )


def train_stack(
    arrays: Sequence[Any],
    layout: Sequence[OutputBlock],
    *,
    hidden: tuple[int, int],
    latent: int,
    beta: float,
    learning_rate: float,
    noise_multipliers: Sequence[float],
    sample_rates: Sequence[float],
    steps: Sequence[int],
    expected_batch_sizes: Sequence[float],
    max_grad_norm: float,
    epochs: int,
    seed: int,
    head_bias: Sequence[np.ndarray] | None = None,
    epsilon_after: Callable[[int, int], float] | None = None,
    progress: ProgressCallback | None = None,
    on_batch: BatchCallback | None = None,
    secure_mode: bool = False,
) -> BatchedVAE:
    """Run DP-Adam on one β-VAE per array with the given, already accounted, parameters.

    ``arrays[k]`` is class k's rows: a float32 matrix, or anything with ``len`` and a
    ``matrix(index)`` method giving the rows at ``index`` as one (:class:`~threedgl.schema.
    rows.EncodedRows`, :class:`BinnedRows`): batches are expanded as they are drawn.

    ``head_bias[k]``, if given, is class k's initial output bias (its DP marginal anchor);
    its head weights then start at zero, so the untrained decoder outputs exactly the
    anchor whatever z is. ``epsilon_after(k, steps_done)`` feeds ``progress``.
    """
    m_models = len(arrays)
    n_cols = check_layout(list(layout))[-1][2]
    gens = class_generators(seed, m_models)  # initialisation and reparametrisation
    model = BatchedVAE(n_cols, layout, hidden=hidden, latent=latent, beta=beta, generators=gens)
    if head_bias is not None:
        w, b = model.layers[-1]
        with torch.no_grad():
            w.zero_()
            b.copy_(torch.as_tensor(np.stack(head_bias), dtype=b.dtype))
    clip = float(max_grad_norm)
    opt = DPAdam(
        model.layers,
        noise_multipliers=noise_multipliers,
        max_grad_norms=[clip] * m_models,
        expected_batch_sizes=expected_batch_sizes,
        steps=steps,
        generators=noise_sources(seed, m_models),  # the privacy noise: 128-bit PCG64
        lr=learning_rate,
        secure_mode=secure_mode,
    )
    done_epochs = [0] * m_models

    def on_step(active: list[bool]) -> None:
        if progress is None and on_batch is None:
            return
        done = opt.steps_done.tolist()
        if on_batch is not None:
            for k in range(m_models):
                if active[k]:
                    on_batch(k, done[k])
        if progress is None:
            return
        for k in range(m_models):
            epoch = min(epochs, done[k] * epochs // steps[k])
            if active[k] and epoch > done_epochs[k]:
                done_epochs[k] = epoch
                eps = epsilon_after(k, done[k]) if epsilon_after is not None else math.nan
                progress(k, epoch, eps)

    run_stack(model, opt, arrays, sample_rates, gens, on_step)
    return model


class BinnedRows:
    """A class's rows as bin codes ``(n, F)``, one-hot encoded by ``discretizer`` a batch
    at a time (2 bytes a feature instead of 4 a bin)."""

    def __init__(self, codes: np.ndarray, discretizer: Any) -> None:
        self.codes, self.discretizer = codes, discretizer

    def __len__(self) -> int:
        return len(self.codes)

    def matrix(self, index: np.ndarray) -> np.ndarray:
        return self.discretizer.one_hot(self.codes[index].astype(np.int64))  # type: ignore[no-any-return]


class _Dense:
    def __init__(self, a: np.ndarray) -> None:
        self.a = np.ascontiguousarray(a, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.a)

    def matrix(self, index: np.ndarray) -> np.ndarray:
        return self.a[index]


def run_stack(
    model: BatchedVAE,
    opt: DPAdam,
    arrays: Sequence[Any],
    rates: Sequence[float],
    generators: Sequence[torch.Generator],
    on_step: Callable[[list[bool]], None] | None = None,
) -> None:
    """Run DP-Adam on a stack of models until every model has done its steps.

    Per step and per active model m, its noise source (``opt.generators[m]``) draws the
    Poisson batch, its torch generator the reparametrisation noise, and its noise source
    the gradient noise, so a model trained in a stack is the same as trained alone. Each
    batch's rows are taken from ``arrays[m]`` by index when drawn (a matrix, or rows with a
    ``matrix(index)`` method), so the training holds no copy of the data.
    """
    m_models = len(arrays)
    sources = [a if hasattr(a, "matrix") else _Dense(a) for a in arrays]
    n_rows = [len(a) for a in sources]

    def batch(index: Tensor) -> Tensor:  # (M, B, D); a padded slot holds the class's row 0
        width = index.shape[1]
        return torch.from_numpy(np.stack([
            src.matrix(index[k].numpy()) if n_rows[k] else
            np.zeros((width, model.n_outputs), dtype=np.float32)
            for k, src in enumerate(sources)]))

    while bool(opt.active.any()):
        active = opt.active.tolist()
        index, mask = poisson_sample(n_rows, rates, opt.generators, active)
        counts = mask.sum(1).long().tolist()
        noise = torch.zeros(m_models, index.shape[1], model.latent)
        for k in range(m_models):  # reparametrisation noise, drawn per model
            if active[k] and counts[k]:
                noise[k, : counts[k]] = torch.randn(
                    counts[k], model.latent, generator=generators[k]
                )
        losses, records = model.forward(batch(index), noise)
        opt.step(losses, mask, records)
        if on_step is not None:
            on_step(active)
