"""Fit a class decoder to its DP measurements: post-processing, no privacy budget.

A decoder trained with DP-Adam samples rows whose marginals drift from the data's: nothing
pulls them back, and sampling N(0, I) through a decoder trained on posterior samples
distorts them even without noise. Each class model of DDP-βVAE's default mode also holds
DP *measurements* (:mod:`threedgl.privacy.measurement`): its noisy row count, its one-way
marginals and selected two-way marginals. This module makes the generator agree with them.

The generator becomes a mixture over M latent points ``z_i`` drawn once from N(0, I):
row ~ Σ_i w_i Π_j softmax(h_j(z_i) + b_j), where ``h`` is the DP-Adam decoder's output
layer. The weights ``w`` (on the simplex) and the output offsets ``b`` minimise the
negative log-likelihood of the measurements under their Gaussian noise,

    Σ_m ‖N · μ_m(w, b) − y_m‖² / (2 v_m)  +  λ · N · KL(w ‖ uniform),

where μ_m is the generator's exact marginal (computed from the M points, not sampled),
y_m the noisy counts, v_m their noise variance (at least 1) and N the class size estimated
from every measurement (inverse-variance weighting). The KL term keeps the mixture close
to the DP-Adam model where the measurements say nothing. As private-pgm's estimation, this
reads only measurements and DP outputs, never a row: it is post-processing.

:func:`select_pairs` chooses which two-way marginals to measure from the DP-Adam decoder
alone (a maximum spanning tree of its pairwise mutual information, as Chow and Liu), and
:func:`pair_groups` coarsens a feature's bins for them from its noisy one-way marginal
(rare categories together, numeric bins into groups of similar mass): both are functions
of DP outputs and public facts, so they cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from threedgl.model.networks import Decoder
from threedgl.privacy.measurement import Marginal, Measurement

__all__ = [
    "FittedPrior",
    "fit_prior",
    "latent_points",
    "pair_groups",
    "select_pairs",
    "total_estimate",
]

#: Latent points of the fitted prior.
PRIOR_POINTS = 1024
#: Adam steps and learning rate of the fit (the weights' logits and the output offsets).
FIT_STEPS = 150
FIT_LEARNING_RATE = 0.05
#: λ, the weight of KL(w ‖ uniform) (per estimated row).
KL_WEIGHT = 0.1
#: Without privacy, two-way marginals are exact and free: up to this many are measured.
MAX_EXACT_PAIRS = 100


@dataclass(frozen=True)
class FittedPrior:
    """What the fit releases for one class: the latent points, their weights, and the
    output layer's new bias (the DP-Adam bias plus the fitted offsets)."""

    z: np.ndarray  # (M, latent) float32
    weight: np.ndarray  # (M,) float32, sums to 1
    head_bias: np.ndarray  # (D,) float32


def total_estimate(measurements: Sequence[Measurement], widths: Sequence[int]) -> float:
    """The class size implied by all measurements: the noisy count and every marginal's
    sum, weighted by the inverse of their noise variances (≥ 1 row, exact if one is exact)."""
    values, weights = [], []
    for m in measurements:
        cells = m.marginal.cells(widths) if m.features else 1
        var = cells * float(m.noise_std) ** 2
        if var == 0:
            return max(1.0, float(np.sum(m.noisy, dtype=np.float64)))
        values.append(float(np.sum(m.noisy, dtype=np.float64)))
        weights.append(1.0 / var)
    if not values:
        return 1.0
    return max(1.0, float(np.dot(values, weights) / np.sum(weights)))


def pair_groups(one_way: Measurement, *, ordered: bool, max_groups: int) -> tuple[int, ...] | None:
    """Groups of a feature's bins for two-way measurements, from its noisy one-way counts.

    At most ``max_groups`` groups; ``None`` when the feature has no more bins than that.
    Ordered features (numeric bins, levels) are cut into contiguous groups of about equal
    noisy mass; categories keep their own cell for the ``max_groups - 1`` largest noisy
    counts and share the last one otherwise.
    """
    counts = np.clip(np.asarray(one_way.noisy, dtype=np.float64), 0.0, None)
    width = len(counts)
    if width <= max_groups:
        return None
    if not ordered:
        keep = np.argsort(-counts, kind="stable")[: max_groups - 1]
        groups = np.full(width, max_groups - 1, dtype=np.int64)
        groups[np.sort(keep)] = np.arange(max_groups - 1)
        return tuple(int(g) for g in groups)
    total = counts.sum()
    mass = counts / total if total > 0 else np.full(width, 1.0 / width)
    before = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    raw = np.minimum((before * max_groups).astype(np.int64), max_groups - 1)
    _, groups = np.unique(raw, return_inverse=True)  # contiguous labels 0..g-1
    return tuple(int(g) for g in groups)


class _Blocks:
    """The decoder's outputs at the M latent points as per-feature probability blocks, as
    functions of the output offsets ``b`` (differentiable in ``b``).

    p[m, c] = E[m, c]·s[c] / Σ_{c' of c's feature} E[m, c']·s[c'], with E = exp(logits less
    each block's row maximum), fixed, and s = exp(b less each block's maximum of b): a step
    rescales E's columns and normalises, instead of a softmax over every point and bin.
    Everything is stored output column by latent point (D, M): sums over a feature's
    columns or a group's add whole rows of M values.
    """

    def __init__(self, logits: Tensor, widths: Sequence[int]) -> None:
        self.widths = [int(w) for w in widths]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        self.block = torch.repeat_interleave(torch.arange(len(self.widths)),
                                             torch.tensor(self.widths))
        rowmax = torch.stack([logits[:, a:b].max(1).values for a, b in
                              zip(self.offsets[:-1], self.offsets[1:], strict=True)], 1)
        # (D, M); every block's maximum is 1
        self.exp = torch.exp(logits - rowmax[:, self.block]).T.contiguous()

    def unnormalised(self, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, norm, s)``: x = E·s (D, M), norm = 1 / each feature's sum of x (F, M) and
        the column scales s (D,), so that p = x · norm[block]."""
        top = torch.zeros(len(self.widths)).scatter_reduce(
            0, self.block, bias.detach(), "amax", include_self=False)
        s = torch.exp(bias - top[self.block])
        x = self.exp * s[:, None]
        sums = torch.zeros(len(self.widths), x.shape[1]).index_add_(0, self.block, x)
        return x, 1.0 / sums, s

    def one_way(self, w: Tensor, norm: Tensor, s: Tensor) -> Tensor:
        """The mixture's one-way marginals Σ_m w_m p[c, m] (D,), without forming p:
        Σ_m E[c, m] s[c] w_m norm[j(c), m] = s[c] · (E (norm·w)ᵀ)[c, j(c)]."""
        per_feature = self.exp @ (norm * w).T  # (D, F)
        return s * per_feature.gather(1, self.block[:, None])[:, 0]

    def grouped(self, x: Tensor, norm: Tensor, rows: Tensor, size: int) -> Tensor:
        """``(F, size, M)``: every feature's probabilities over its groups (zero-padded);
        ``rows`` from :func:`_group_columns`."""
        raw = torch.zeros(len(self.widths) * size, x.shape[1]).index_add_(0, rows, x)
        return raw.view(len(self.widths), size, -1) * norm[:, None, :]


def _group_columns(widths: Sequence[int], groupings: Sequence[tuple[int, ...] | None],
                   size: int) -> Tensor:
    """Output column c of feature j → row j·size + its group in :meth:`_Blocks.grouped`."""
    return torch.cat([
        j * size + (torch.arange(w) if g is None else torch.tensor(g))
        for j, (w, g) in enumerate(zip(widths, groupings, strict=True))])


def select_pairs(decoder: Decoder, z: Tensor, widths: Sequence[int],
                 groups: Sequence[tuple[int, ...] | None], *, all_pairs: bool = False
                 ) -> list[Marginal]:
    """The two-way marginals to measure: the maximum spanning tree of the decoder's pairwise
    mutual information over the (grouped) bins (Chow–Liu); with ``all_pairs`` (no privacy:
    exact measurements are free) also the most dependent other pairs, up to
    :data:`MAX_EXACT_PAIRS` in all."""
    n = len(widths)
    if n < 2:
        return []
    size = max(_group_count(w, g) for w, g in zip(widths, groups, strict=True))
    with torch.no_grad():
        blocks = _Blocks(decoder.logits(z), widths)
        x, norm, _ = blocks.unnormalised(torch.zeros(int(blocks.offsets[-1])))
        q = blocks.grouped(x, norm, _group_columns(widths, groups, size), size)
        q = q.permute(2, 0, 1).double()  # (M, F, size)
    info = np.zeros((n, n))
    for i in range(n):
        joint = torch.einsum("ma,mfb->fab", q[:, i], q[:, i + 1:]).numpy() / len(z)
        outer = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(joint > 1e-12, joint * np.log(joint / outer), 0.0)
        info[i, i + 1:] = info[i + 1:, i] = terms.sum((1, 2))
    if all_pairs:  # the tree, then the most dependent other pairs, MAX_EXACT_PAIRS in all
        chosen = set(_spanning_tree(info))
        rest = sorted(((info[i, j], i, j) for i in range(n) for j in range(i + 1, n)
                       if (i, j) not in chosen), reverse=True)
        chosen |= {(i, j) for _, i, j in rest[: max(0, MAX_EXACT_PAIRS - len(chosen))]}
        return [Marginal((i, j), (groups[i], groups[j])) for i, j in sorted(chosen)]
    return [Marginal((i, j), (groups[i], groups[j])) for i, j in _spanning_tree(info)]


def _spanning_tree(info: np.ndarray) -> list[tuple[int, int]]:
    """The maximum spanning tree of a weighted complete graph (Prim), as sorted pairs."""
    n = len(info)
    tree, best, parent = [], info[0].copy(), np.zeros(n, dtype=np.int64)
    inside = np.zeros(n, dtype=bool)
    inside[0] = True
    for _ in range(n - 1):  # Prim's algorithm on the complete graph
        j = int(np.argmax(np.where(inside, -np.inf, best)))
        i = int(parent[j])
        inside[j] = True
        tree.append((min(i, j), max(i, j)))
        better = ~inside & (info[j] > best)
        best[better], parent[better] = info[j][better], j
    return sorted(tree)


def fit_prior(
    decoder: Decoder,
    z: Tensor,
    widths: Sequence[int],
    measurements: Sequence[Measurement],
    *,
    steps: int | None = None,
    learning_rate: float | None = None,
    kl_weight: float | None = None,
) -> FittedPrior:
    """Weights of the latent points ``z`` and output offsets that fit ``measurements``
    (see the module docstring). Deterministic given its inputs.

    One-way measurements must be over every bin of their feature (no grouping), at most
    one per feature; two-way ones may group bins. ``None`` settings are the module's
    :data:`FIT_STEPS`, :data:`FIT_LEARNING_RATE` and :data:`KL_WEIGHT`.
    """
    steps = FIT_STEPS if steps is None else steps
    learning_rate = FIT_LEARNING_RATE if learning_rate is None else learning_rate
    kl_weight = KL_WEIGHT if kl_weight is None else kl_weight
    total = total_estimate(measurements, widths)
    n_out = int(sum(widths))
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    with torch.no_grad():
        blocks = _Blocks(decoder.logits(z), widths)
        head = decoder.linears[2]
        assert isinstance(head, torch.nn.Linear)
        bias0 = head.bias.detach().clone()
    # One-way: targets and weights per output column (0 where a feature is not measured).
    target1, scale1 = torch.zeros(n_out), torch.zeros(n_out)
    pairs: list[Measurement] = []
    for m in measurements:
        if len(m.features) == 1:
            (j,) = m.features
            if m.marginal.groups[0] is not None:
                raise ValueError("fit_prior takes one-way measurements over every bin")
            target1[offsets[j] : offsets[j + 1]] = torch.as_tensor(m.noisy / total)
            scale1[offsets[j] : offsets[j + 1]] = _scale(m, total)
        elif len(m.features) == 2:
            pairs.append(m)
    groupings: list[tuple[int, ...] | None] = [None] * len(widths)
    for m in pairs:  # every feature is grouped one way across the two-way measurements
        for f, g in zip(m.features, m.marginal.groups, strict=True):
            if groupings[f] is None:
                groupings[f] = g
            elif g != groupings[f]:
                raise ValueError("fit_prior takes one grouping per feature")
    size = max([_group_count(w, g) for w, g in zip(widths, groupings, strict=True)], default=1)
    first = torch.tensor([m.features[0] for m in pairs], dtype=torch.long)
    second = torch.tensor([m.features[1] for m in pairs], dtype=torch.long)
    target2 = torch.zeros(len(pairs), size, size)
    scale2 = torch.zeros(len(pairs), 1, 1)
    for i, m in enumerate(pairs):
        a, b = m.marginal.shape(widths)
        target2[i, :a, :b] = torch.as_tensor(m.noisy.reshape(a, b) / total)
        scale2[i] = _scale(m, total)
    columns = _group_columns(widths, groupings, size)
    logit_w = torch.zeros(len(z), requires_grad=True)
    offset = torch.zeros(n_out, requires_grad=True)
    opt = torch.optim.Adam([logit_w, offset], lr=learning_rate)
    for _ in range(steps if bool(scale1.any()) or pairs else 0):
        w = torch.softmax(logit_w, 0)
        x, norm, s = blocks.unnormalised(offset)
        loss = kl_weight * total * torch.sum(w * torch.log(w * len(z) + 1e-30))
        loss = loss + torch.sum(scale1 * (blocks.one_way(w, norm, s) - target1) ** 2)
        if pairs:
            q = blocks.grouped(x, norm, columns, size)
            joint = _pair_marginals(q, w, first, second)
            loss = loss + torch.sum(scale2 * (joint - target2) ** 2)
        opt.zero_grad()
        (loss / total).backward()
        opt.step()
    with torch.no_grad():
        weight = torch.softmax(logit_w, 0).numpy().astype(np.float64)
    weight = (weight / weight.sum()).astype(np.float32)
    return FittedPrior(
        z=z.detach().numpy().astype(np.float32),
        weight=weight,
        head_bias=(bias0 + offset.detach()).numpy().astype(np.float32),
    )


def _pair_marginals(q: Tensor, w: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """``(P, size, size)``: Σ_m w_m q[first_p, :, m] q[second_p, :, m]ᵀ for every pair p of
    the grouped probabilities ``q`` (F, size, M). When most pairs of features are measured
    (no privacy) one matmul over all pairs is 4 times faster than one per pair (Adult);
    for a tree's F − 1 pairs the matmul per pair keeps wide tables cheap."""
    n_features, size, _ = q.shape
    if 4 * len(first) >= n_features * n_features:
        flat = q.reshape(n_features * size, -1)
        gram = (flat * w) @ flat.T
        return gram.view(n_features, size, n_features, size)[first, :, second, :]
    return torch.bmm(q[first] * w, q[second].transpose(1, 2))


def _scale(m: Measurement, total: float) -> float:
    """Weight of a measurement's squared error in probability units: N² / (2 v)."""
    return total * total / (2.0 * max(float(m.noise_std) ** 2, 1.0))


def _group_count(width: int, groups: tuple[int, ...] | None) -> int:
    return int(width) if groups is None else max(groups) + 1


def latent_points(latent: int, points: int, seed: int) -> Tensor:
    """The M latent points of a fitted prior: N(0, I) draws (public randomness)."""
    g = torch.Generator().manual_seed(seed % (2**63))
    return torch.randn(points, latent, generator=g)

