"""DDP-βVAE's default mode: binned outputs, a DP marginal anchor, noisy class sizes.

Per class k, at one Rényi order α fixed from (ε, δ) before any data is seen (see
:mod:`threedgl.privacy.accounting`), the class's Rényi budget R is split four ways:

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
3. the rest, but for step 4: DP-Adam (:mod:`threedgl.privacy.dp_adam`) on the one-hot
   bins, σ calibrated at α for (q_k, steps_k).
4. ``pairs_share`` · R: the two-way marginals of F − 1 feature pairs, the maximum spanning
   tree of the DP-Adam decoder's mutual information (chosen from a DP output: free), their
   bins grouped by the noisy one-way counts (:mod:`threedgl.model.matching`), released
   with the Gaussian mechanism (sensitivity √(F − 1)).

The divergences at α add up to at most R, which converts to ε (Balle et al.): the ε
recorded for each class model is that bound (the target), and the record holds every part
so the server recomputes it from the parameters actually used (a hair below). The noisy
count, one-way and two-way marginals are *measurements* (:mod:`threedgl.privacy.
measurement`), stored in the artifact as released; the generator is then fitted to them
(:func:`threedgl.model.matching.fit_prior`, post-processing): a prior of weighted latent
points and output offsets under which its marginals agree with the measurements. Sampling
draws every feature's bin from the decoder's softmax and a value within the bin: the
synthetic rows follow a distribution, not the decoder's mean.

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
import torch

from threedgl.errors import NothingToTrain, PrivacyError
from threedgl.model import matching
from threedgl.model.matching import (
    fit_prior,
    latent_points,
    pair_groups,
    select_pairs,
)
from threedgl.model.networks import Decoder
from threedgl.model.progress import (
    PlannedCheck,
    ProgressCallback,
    announce_epochs,
    batches,
    reindexed,
    stage_callback,
)
from threedgl.model.training import BinnedRows, train_stack
from threedgl.privacy.accounting import (
    calibrate_at_order,
    epsilon_at_order,
    gaussian_rdp,
    rdp_budget,
    rdp_order,
    subsampled_gaussian_rdp,
)
from threedgl.privacy.gaussian import measure_count, measure_marginals
from threedgl.privacy.measurement import Marginal, Measurement
from threedgl.privacy.record import MAX_RECORD_SIGMA, PrivacyRecord
from threedgl.privacy.secure import SecureRandom
from threedgl.schema import Schema
from threedgl.schema.bins import LEVELS, Discretizer
from threedgl.schema.rows import EncodedRows

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


#: Bins of a numeric column: n / ROWS_PER_BIN for the smallest noisy class n, at most
#: MAX_AUTO_BINS.
ROWS_PER_BIN = 30
MIN_AUTO_BINS = 4
MAX_AUTO_BINS = 64
#: An integer column gets one bin per value when it has at most max(LEVELS, LEVELS_PER_BIN ×
#: bins) values.
LEVELS_PER_BIN = 2
#: Cells along a feature of a two-way measurement: about √(n / (PAIR_SIGNAL · s)) for a
#: class of n noisy rows and a noise of s per cell (each cell of an n-row table then holds,
#: on average, PAIR_SIGNAL noise deviations), within [2, MAX_PAIR_GROUPS]; more bins are
#: grouped by the noisy one-way counts.
PAIR_SIGNAL = 3.0
MAX_PAIR_GROUPS = 16

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

    * bins of a numeric column: n / 30, within [4, :data:`MAX_AUTO_BINS`] (each bin keeps
      ~30 rows of signal against the measurements' noise); an integer column with at most
      max(20, :data:`LEVELS_PER_BIN` × bins) values gets one bin per value (``levels``), so
      point masses (40 hours a week) are kept;
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
    out: dict[str, Any] = {"bins": int(np.clip(n_min // ROWS_PER_BIN, MIN_AUTO_BINS,
                                               MAX_AUTO_BINS))}
    if widths is None:
        out.update(fixed)
        return {**out, "levels": max(LEVELS, LEVELS_PER_BIN * int(out["bins"]))}
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
    measurements: list[list[Measurement]]  # per kept class: count, one-way, two-way
    architecture: dict[str, Any]
    privacy: list[PrivacyRecord]
    settings: dict[str, Any]


@dataclass(frozen=True)
class _Split:
    """The budget split at the fixed order: σ of each Gaussian release (0: none) and the
    Rényi budget left for DP-Adam."""

    order: float
    count: float
    marginals: float
    pairs: float
    rest: float

    def gaussian(self) -> float:
        return sum(gaussian_rdp(s, self.order) for s in (self.count, self.marginals, self.pairs)
                   if s > 0)


def _budget_split(epsilon: float, delta: float, count_share: float, marginals_share: float,
                  pairs_share: float) -> _Split:
    order = rdp_order(epsilon, delta)
    total = rdp_budget(epsilon, delta, order)

    def sigma(share: float) -> float:
        return math.sqrt(order / (2.0 * share * total)) if share > 0 else 0.0

    split = _Split(order, sigma(count_share), sigma(marginals_share), sigma(pairs_share), 0.0)
    for name, share, s in (("count_share", count_share, split.count),
                           ("marginals_share", marginals_share, split.marginals),
                           ("pairs_share", pairs_share, split.pairs)):
        if s > MAX_RECORD_SIGMA:
            raise PrivacyError(
                f"{name} = {share!r} is too small to release anything: its noise multiplier "
                f"would be {s:.3g}, above {MAX_RECORD_SIGMA:g} (use 0 for no release, or a "
                f"share of at least {order / (2 * total * MAX_RECORD_SIGMA ** 2):.2g})")
    return _Split(order, split.count, split.marginals, split.pairs, total - split.gaussian())


def fit_anchored(
    groups: Sequence[np.ndarray | EncodedRows],
    schema: Schema,
    *,
    epsilon: float,
    delta: float,
    count_share: float,
    marginals_share: float,
    pairs_share: float,
    overrides: dict[str, Any],
    max_grad_norm: float,
    seed: int,
    progress: ProgressCallback | None = None,
    secure_mode: bool = False,
    before_training: PlannedCheck | None = None,
) -> AnchoredModels:
    """Train the kept classes' anchored β-VAEs on ``groups`` (TableEncoder matrices or
    :class:`~threedgl.schema.rows.EncodedRows`).

    ``overrides`` holds the settings the user fixed (hidden, latent, beta, epochs,
    batch_size, learning_rate, bins); the others come from :func:`auto_settings`.
    ``before_training(kept, records)`` gets the kept classes' privacy records once the
    noise is calibrated, before DP-Adam's first step (it may raise to stop).
    """
    private = math.isfinite(epsilon)
    if len(schema.features) < 2:
        pairs_share = 0.0  # one feature: no pair to measure, DP-Adam keeps the share
    anchor_seed, train_seed, prior_seed = np.random.SeedSequence(seed).spawn(3)
    rng: np.random.Generator | SecureRandom = (
        SecureRandom() if secure_mode else np.random.default_rng(anchor_seed))
    split = (_budget_split(epsilon, delta, count_share, marginals_share, pairs_share)
             if private else _Split(math.nan, 0.0, 0.0, 0.0, math.inf))
    # 1. noisy counts (rounded to 0.1 row: what the manifest records and q is derived from)
    counts = [measure_count(len(g), noise_multiplier=split.count, rng=rng) for g in groups]
    noisy = [round(max(0.0, float(m.noisy[0])), 1) for m in counts]
    threshold = max(MIN_NOISY_ROWS, NOISE_MARGIN * split.count) if private else 1.0
    kept = [k for k, n in enumerate(noisy) if n >= threshold]
    if not kept:  # a tiny table: model its largest class (by noisy count) all the same
        kept = [int(np.argmax(noisy))]
    if max(noisy[k] for k in kept) < 1.0:
        raise NothingToTrain("every class has a noisy row count below 1: nothing to train on")
    rows = [noisy[k] for k in kept]
    first = auto_settings(len(schema.features), None, rows, overrides)
    disc = Discretizer(schema, int(first["bins"]), levels=int(first["levels"]))
    settings = auto_settings(len(schema.features), disc.widths, rows, overrides)
    settings["bins"] = list(disc.widths)
    settings.pop("levels", None)
    widths = list(disc.widths)
    binning = stage_callback(progress, "binning the rows")
    codes = []
    for i, k in enumerate(kept):
        codes.append(disc.compact_codes(groups[k]))
        if binning is not None:
            binning(i + 1, len(kept))
    # 2. the one-way marginals, the anchor of the output layer
    one_way = [measure_marginals(c, widths, [Marginal((j,)) for j in range(len(widths))],
                                 noise_multiplier=split.marginals, rng=rng) for c in codes]
    bias = [np.concatenate([_log_probabilities(m.noisy) for m in ms]).astype(np.float32)
            for ms in one_way]
    # 3. DP-Adam at the fixed order, q and steps from the noisy counts
    batch, epochs = int(settings["batch_size"]), int(settings["epochs"])
    rates = [min(1.0, batch / n) for n in rows]
    steps = [math.ceil(epochs / q) for q in rates]
    sigmas = [calibrate_at_order(split.rest, q, s, split.order) if private else 0.0
              for q, s in zip(rates, steps, strict=True)]
    clip = float(max_grad_norm) if private else math.inf

    def spent(k: int, done: int) -> float:
        if not private:
            return math.inf
        # the Gaussian releases (the pairs' included, released after DP-Adam) and DP-Adam's
        # steps so far
        used = split.gaussian() + subsampled_gaussian_rdp(sigmas[k], rates[k], max(1, done),
                                                          split.order)
        return epsilon_at_order(used, split.order, delta)

    # The recorded ε is what the fixed-order composition proves: the Gaussian releases at
    # their exact divergences plus DP-Adam's whole share (its σ, q and steps came from the
    # noisy count, so the bound is the share, whatever the count was), i.e. the target.
    proven = epsilon_at_order(split.gaussian() + split.rest, split.order, delta) if private \
        else math.inf
    records = []
    for k in range(len(kept)):
        if private:
            records.append(PrivacyRecord(
                noise_multiplier=sigmas[k], sample_rate=rates[k], steps=steps[k],
                max_grad_norm=clip, accountant="rdp", delta=float(delta),
                epsilon=proven, rdp_order=split.order,
                count_noise_multiplier=split.count, marginals_noise_multiplier=split.marginals,
                pairs_noise_multiplier=split.pairs or None,
            ))
        else:
            records.append(PrivacyRecord(0.0, rates[k], steps[k], clip, "rdp", float(delta),
                                         math.inf))
    if before_training is not None:  # what the fit will spend, known before any step
        before_training(kept, records)
    hidden = tuple(int(h) for h in settings["hidden"])
    announce_epochs(progress, kept, epochs, steps)
    model = train_stack(
        [BinnedRows(c, disc) for c in codes], disc.layout,
        hidden=(hidden[0], hidden[1]), latent=int(settings["latent"]),
        beta=float(settings["beta"]), learning_rate=float(settings["learning_rate"]),
        noise_multipliers=sigmas, sample_rates=rates, steps=steps,
        expected_batch_sizes=[q * n for q, n in zip(rates, rows, strict=True)],
        max_grad_norm=clip, epochs=epochs,
        seed=int.from_bytes(train_seed.generate_state(4, np.uint32).tobytes(), "little"),
        head_bias=bias, epsilon_after=spent,
        progress=reindexed(progress, kept), on_batch=batches(progress, kept),
        secure_mode=secure_mode,
    )
    # 4. two-way marginals of the pairs the DP-Adam decoder finds most dependent, and
    # 5. the fit of each decoder to all of its measurements (post-processing)
    architecture = {**model.architecture(), "bins": widths}
    points = latent_points(int(settings["latent"]), matching.PRIOR_POINTS,
                           int(prior_seed.generate_state(1, np.uint64)[0]))
    states, measured = [], []
    fitting = stage_callback(progress, "fitting to the measurements")
    ordered = [f.kind != "categorical" for f in disc.features]
    n_pairs = len(widths) - 1 if private else min(matching.MAX_EXACT_PAIRS,
                                                   len(widths) * (len(widths) - 1) // 2)
    for k in range(len(kept)):
        state = model.decoder_state(k)
        decoder = Decoder(state, architecture)
        two_way: list[Measurement] = []
        if split.pairs > 0 or not private:
            size = pair_group_count(rows[k], split.pairs * math.sqrt(max(n_pairs, 1)))
            grouping = [pair_groups(m, ordered=o, max_groups=size)
                        for m, o in zip(one_way[k], ordered, strict=True)]
            pairs = select_pairs(decoder, points, widths, grouping, all_pairs=not private)
            two_way = measure_marginals(codes[k], widths, pairs,
                                        noise_multiplier=split.pairs, rng=rng)
        ms = [counts[kept[k]], *one_way[k], *two_way]
        fitted = fit_prior(decoder, points, widths, ms)
        state["head.bias"] = torch.from_numpy(fitted.head_bias)
        state["prior.z"] = torch.from_numpy(fitted.z)
        state["prior.weight"] = torch.from_numpy(fitted.weight)
        states.append(state)
        measured.append(ms)
        if fitting is not None:
            fitting(k + 1, len(kept))
    return AnchoredModels(
        kept=kept, noisy_rows=rows, decoder_states=states, measurements=measured,
        architecture={**architecture, "prior": len(points)}, privacy=records,
        settings=settings,
    )


def pair_group_count(noisy_rows: float, cell_noise: float) -> int:
    """Cells along each feature of a class's two-way measurements (see :data:`PAIR_SIGNAL`):
    a function of its noisy row count and the public noise scale only."""
    if cell_noise <= 0:
        return MAX_PAIR_GROUPS
    cells = max(noisy_rows, 1.0) / (PAIR_SIGNAL * cell_noise)
    return int(np.clip(math.floor(math.sqrt(cells)), 2, MAX_PAIR_GROUPS))


def _log_probabilities(noisy_counts: np.ndarray) -> np.ndarray:
    """Log of the clipped, normalised noisy histogram, with a floor on every bin."""
    p = np.clip(noisy_counts, 0.0, None)
    total = p.sum()
    p = np.full(len(p), 1.0 / len(p)) if total <= 0 else p / total
    p = np.maximum(p, ANCHOR_FLOOR)
    return np.log(p / p.sum())
