"""DDP-βVAE's default mode: binned outputs, a DP marginal anchor, noisy class sizes.

Per class k, at one Rényi order α fixed from (ε, δ) before any data is seen (see
:mod:`threedgl.privacy.accounting`), the class's Rényi budget R is split three ways:

1. ``count_share`` · R: the row count n_k is released as n̂_k = n_k + N(0, σ_c²)
   (:func:`threedgl.privacy.gaussian.release_count`). A class whose n̂_k is below
   max(:data:`MIN_NOISY_ROWS`, 2 σ_c) is not modelled (but at least the largest is;
   without privacy, every class with a row is). Everything sized by the data from here on (the
   bins, the network, the batch size, q_k = B / n̂_k, the steps) is a function of the
   noisy counts and the public schema: exact class sizes are never used nor released.
2. ``marginals_share`` · R: the class's one-way histograms over the public bins
   (:mod:`threedgl.schema.bins`), released with the Gaussian mechanism (sensitivity √F).
   Clipped at zero and normalised, their logarithms become the decoder's output bias and
   its output weights start at zero, so an untrained decoder samples the DP marginals;
   DP-Adam then adds what the marginals miss: the correlations.
3. the rest: DP-Adam (:mod:`threedgl.privacy.dp_adam`) on the one-hot bins, σ calibrated
   at α for (q_k, steps_k).

The three divergences at α add up to at most R, which converts to ε (Balle et al.): the
ε recorded for each class model is that bound (the target), and the record holds every
part so the server recomputes it from the parameters actually used (a hair below). Sampling draws every
feature's bin from the decoder's softmax and a value within the bin: the synthetic rows
follow a distribution, not the decoder's mean.

:func:`auto_settings` chooses what the paper leaves open from public facts only (the
encoded width and the noisy class sizes); the rule and how it was chosen are in the
README ("Choices the paper leaves open").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from threedgl.errors import PrivacyError
from threedgl.model.base import ProgressCallback, reindexed
from threedgl.model.training import train_stack
from threedgl.privacy.accounting import (
    calibrate_at_order,
    epsilon_at_order,
    gaussian_rdp,
    rdp_budget,
    rdp_order,
    subsampled_gaussian_rdp,
)
from threedgl.privacy.gaussian import release_count, release_histograms
from threedgl.privacy.record import PrivacyRecord
from threedgl.privacy.secure import SecureRandom
from threedgl.schema import Schema
from threedgl.schema.bins import Discretizer

__all__ = ["MIN_NOISY_ROWS", "AnchoredModels", "auto_settings", "fit_anchored"]

#: A class whose noisy row count is below max(MIN_NOISY_ROWS, 2 σ_count) is not modelled
#: (unless no class reaches it: then the class with the largest noisy count is): too few
#: rows to learn anything at a useful ε, and a class with no rows at all passes with
#: probability 2.3 %. Deciding on the noisy counts keeps the decision private.
MIN_NOISY_ROWS = 10.0
#: ... and below NOISE_MARGIN standard deviations of the count's noise.
NOISE_MARGIN = 2.0
#: Floor of an anchor probability (a bin the noisy histogram zeroed is still reachable).
ANCHOR_FLOOR = 1e-3


#: DP-Adam steps of the largest class are capped near this, and the epochs so that all
#: classes together pass over at most MAX_ROW_PASSES rows (keeps a fit within ~10 s).
MAX_STEPS = 1000
MAX_ROW_PASSES = 300_000


def auto_settings(n_features: int, widths: Sequence[int] | None, noisy_rows: Sequence[float],
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bins, network and DP-Adam settings from public facts: the schema and noisy sizes.

    ``widths`` are the bin counts per feature once chosen (None: only choose the bins);
    ``overrides`` the settings the user fixed (kept as they are). With n the smallest and
    N the largest noisy class size and D the encoded width:

    * bins of a numeric column: n / 30, within [4, 20] (each bin keeps ~30 rows of signal
      against the anchor's noise);
    * hidden sizes (128, 64) when D > 96, else (64, 32); latent size F / 2 within [3, 8]
      for F features; β = 0.5 (sampling from the N(0, I) prior needs a posterior close to
      it: Table I's β of 0.005 to 0.1 leaves holes in the latent space);
    * batch size n / 8 rounded to a power of two, within [16, 512]; epochs 1000 / √n
      within [8, 40], then fewer if the largest class would take more than
      :data:`MAX_STEPS` steps with the batch size used, or all classes together more than
      :data:`MAX_ROW_PASSES` rows (Adult: 7 epochs); learning rate 5e-3.
    """
    fixed = dict(overrides or {})
    n_min = max(1.0, min(noisy_rows))
    n_max = max(n_min, max(noisy_rows))
    out: dict[str, Any] = {"bins": int(np.clip(n_min // 30, 4, 20))}
    if widths is None:
        return {**out, **fixed}
    width = int(sum(widths))
    h1 = 128 if width > 96 else 64
    out.update(
        hidden=(h1, h1 // 2),
        latent=int(np.clip(n_features // 2, 3, 8)),
        beta=0.5,
        batch_size=int(np.clip(2 ** round(math.log2(max(n_min / 8, 1))), 16, 512)),
        learning_rate=5e-3,
    )
    out.update(fixed)
    if "epochs" not in fixed:
        epochs = int(np.clip(round(1000 / math.sqrt(n_min)), 8, 40))
        epochs = min(epochs, int(MAX_STEPS * out["batch_size"] / n_max),
                     int(MAX_ROW_PASSES / sum(noisy_rows)))
        out["epochs"] = max(1, epochs)
    return out


@dataclass(frozen=True)
class AnchoredModels:
    """What an anchored training releases, for the kept classes only."""

    kept: list[int]  # indices into the input groups of the classes modelled
    noisy_rows: list[float]
    decoder_states: list[dict[str, Any]]
    architecture: dict[str, Any]
    privacy: list[PrivacyRecord]
    settings: dict[str, Any]


def _budget_split(epsilon: float, delta: float, count_share: float, marginals_share: float
                  ) -> tuple[float, float, float, float]:
    """(α, σ_count, σ_marginals, Rényi budget left for DP-Adam)."""
    order = rdp_order(epsilon, delta)
    total = rdp_budget(epsilon, delta, order)
    sigma_c = math.sqrt(order / (2.0 * count_share * total))
    sigma_m = math.sqrt(order / (2.0 * marginals_share * total))
    rest = total - gaussian_rdp(sigma_c, order) - gaussian_rdp(sigma_m, order)
    return order, sigma_c, sigma_m, rest


def fit_anchored(
    groups: Sequence[np.ndarray],
    schema: Schema,
    *,
    epsilon: float,
    delta: float,
    count_share: float,
    marginals_share: float,
    overrides: dict[str, Any],
    max_grad_norm: float,
    seed: int,
    progress: ProgressCallback | None = None,
    secure_mode: bool = False,
) -> AnchoredModels:
    """Train the kept classes' anchored β-VAEs on ``groups`` (TableEncoder matrices).

    ``overrides`` holds the settings the user fixed (hidden, latent, beta, epochs,
    batch_size, learning_rate, bins); the others come from :func:`auto_settings`.
    """
    private = math.isfinite(epsilon)
    anchor_seed, train_seed = np.random.SeedSequence(seed).spawn(2)
    rng: np.random.Generator | SecureRandom = (
        SecureRandom() if secure_mode else np.random.default_rng(anchor_seed))
    if private:
        order, sigma_c, sigma_m, rest = _budget_split(epsilon, delta, count_share,
                                                      marginals_share)
    else:
        order, sigma_c, sigma_m, rest = math.nan, 0.0, 0.0, math.inf
    # 1. noisy counts (rounded to 0.1 row: what the manifest records and q is derived from)
    noisy = [round(max(0.0, release_count(len(g), noise_multiplier=sigma_c, rng=rng)), 1)
             for g in groups]
    threshold = max(MIN_NOISY_ROWS, NOISE_MARGIN * sigma_c) if private else 1.0
    kept = [k for k, n in enumerate(noisy) if n >= threshold]
    if not kept:  # a tiny table: model its largest class (by noisy count) all the same
        kept = [int(np.argmax(noisy))]
    if max(noisy[k] for k in kept) < 1.0:
        raise PrivacyError("every class has a noisy row count below 1: nothing to train on")
    rows = [noisy[k] for k in kept]
    bins = auto_settings(len(schema.features), None, rows, overrides)["bins"]
    disc = Discretizer(schema, int(bins))
    settings = auto_settings(len(schema.features), disc.widths, rows, overrides)
    settings["bins"] = list(disc.widths)
    codes = [disc.codes(groups[k]) for k in kept]
    # 2. the marginal anchor
    bias = []
    for c in codes:
        hists = release_histograms(disc.histograms(c), noise_multiplier=sigma_m, rng=rng)
        bias.append(np.concatenate([_log_probabilities(h) for h in hists]).astype(np.float32))
    # 3. DP-Adam at the fixed order, q and steps from the noisy counts
    batch, epochs = int(settings["batch_size"]), int(settings["epochs"])
    rates = [min(1.0, batch / n) for n in rows]
    steps = [math.ceil(epochs / q) for q in rates]
    sigmas = [calibrate_at_order(rest, q, s, order) if private else 0.0
              for q, s in zip(rates, steps, strict=True)]
    clip = float(max_grad_norm) if private else math.inf

    def spent(k: int, done: int) -> float:
        if not private:
            return math.inf
        used = (gaussian_rdp(sigma_c, order) + gaussian_rdp(sigma_m, order)
                + subsampled_gaussian_rdp(sigmas[k], rates[k], max(1, done), order))
        return epsilon_at_order(used, order, delta)

    hidden = tuple(int(h) for h in settings["hidden"])
    model = train_stack(
        [disc.one_hot(c) for c in codes], disc.layout,
        hidden=(hidden[0], hidden[1]), latent=int(settings["latent"]),
        beta=float(settings["beta"]), learning_rate=float(settings["learning_rate"]),
        noise_multipliers=sigmas, sample_rates=rates, steps=steps,
        expected_batch_sizes=[q * n for q, n in zip(rates, rows, strict=True)],
        max_grad_norm=clip, epochs=epochs,
        seed=int(train_seed.generate_state(1, np.uint64)[0]),
        head_bias=bias, epsilon_after=spent,
        progress=reindexed(progress, kept), secure_mode=secure_mode,
    )
    # The recorded ε is what the fixed-order composition proves: the count and the anchor
    # at their exact divergences plus DP-Adam's whole share (its σ, q and steps came from
    # the noisy count, so the bound is the share, whatever the count was), i.e. the target.
    proven = (epsilon_at_order(gaussian_rdp(sigma_c, order) + gaussian_rdp(sigma_m, order)
                               + rest, order, delta) if private else math.inf)
    records = []
    for k in range(len(kept)):
        if private:
            records.append(PrivacyRecord(
                noise_multiplier=sigmas[k], sample_rate=rates[k], steps=steps[k],
                max_grad_norm=clip, accountant="rdp", delta=float(delta),
                epsilon=proven, rdp_order=order,
                count_noise_multiplier=sigma_c, marginals_noise_multiplier=sigma_m,
            ))
        else:
            records.append(PrivacyRecord(0.0, rates[k], steps[k], clip, "rdp", float(delta),
                                         math.inf))
    architecture = {**model.architecture(), "bins": list(disc.widths)}
    return AnchoredModels(
        kept=kept, noisy_rows=rows,
        decoder_states=[model.decoder_state(k) for k in range(len(kept))],
        architecture=architecture, privacy=records, settings=settings,
    )


def _log_probabilities(noisy_counts: np.ndarray) -> np.ndarray:
    """Log of the clipped, normalised noisy histogram, with a floor on every bin."""
    p = np.clip(noisy_counts, 0.0, None)
    total = p.sum()
    p = np.full(len(p), 1.0 / len(p)) if total <= 0 else p / total
    p = np.maximum(p, ANCHOR_FLOOR)
    return np.log(p / p.sum())
