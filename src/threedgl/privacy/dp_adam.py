"""DP-Adam: the only code in threedgl that spends privacy budget.

One step for each of M independent models trained together (model m has its own data,
sampling rate q_m, noise multiplier σ_m, clipping norm C_m, step budget and generator):

1. Poisson sampling: every row of model m's data joins the batch independently with
   probability q_m (:func:`poisson_sample`). Batches are padded to a common length and
   masked, padded rows contribute exactly zero.
2. Per-sample clipping to C_m. All parameters are linear layers z = a Wᵀ + b, so the
   per-sample gradients are ∂W_i = δ_i a_iᵀ and ∂b_i = δ_i with δ_i = ∂ℓ_i/∂z_i, and
   ‖∂W_i‖² = ‖δ_i‖²·‖a_i‖², ‖∂b_i‖² = ‖δ_i‖² ("ghost norm"): the norm is known without
   materialising per-sample gradients. Clip factor c_i = min(1, C / (‖g_i‖ + 1e-6)),
   exactly as Opacus. The clipped sum Σ_i c_i ∂W_i = (c⊙δ)ᵀ a is one matmul.
3. Gaussian noise N(0, σ²C²) on each summed clipped gradient, then division by the
   expected batch size q_m·n_m (Opacus, Poisson sampling, loss_reduction="mean").
4. An Adam update identical to ``torch.optim.Adam`` (with bias correction).

The sensitivity argument: changing one row changes the sum in 2. by at most C_m in
L2 norm (its clipped gradient), so step 3 is the subsampled Gaussian mechanism the
accountant (:mod:`threedgl.privacy.accounting`) charges for, once per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from threedgl.errors import PrivacyError
from threedgl.privacy.secure import SecureRandom

__all__ = ["DPAdam", "NoiseSource", "noise_sources", "poisson_sample"]

#: Where a model's privacy noise and Poisson masks come from: a NumPy generator (PCG64,
#: seeded with 128 bits: what a release uses), the OS CSPRNG (``secure_mode``), or a
#: ``torch.Generator`` (tests against Opacus). Torch's CPU generator keeps only the low 32
#: bits of its seed, so it is never the source of a release's noise.
NoiseSource = np.random.Generator | SecureRandom | torch.Generator


def noise_sources(seed: int, n_models: int) -> list[np.random.Generator]:
    """One PCG64 generator per model for its noise and masks, 128 bits from ``seed``.

    Each is seeded from a grandchild of the ``SeedSequence`` children that seed the
    models' torch generators (initialisation, reparametrisation), so knowing those
    32-bit torch seeds tells nothing about the noise.
    """
    return [np.random.default_rng(child.spawn(1)[0])
            for child in np.random.SeedSequence(seed).spawn(n_models)]


def _uniform(source: NoiseSource, n: int) -> Tensor:
    """``n`` float64 uniforms in [0, 1) (NumPy's ``random`` interface, or torch's)."""
    if isinstance(source, torch.Generator):
        return torch.rand(n, generator=source, dtype=torch.float64)
    return torch.from_numpy(source.random(n))


def _normal(source: NoiseSource, std: float, shape: tuple[int, ...]) -> Tensor:
    """N(0, std²) of ``shape`` as float32 (NumPy's ``normal`` interface, or torch's)."""
    if isinstance(source, torch.Generator):
        return torch.normal(0.0, std, shape, generator=source)
    return torch.from_numpy(source.normal(0.0, std, shape)).float()

CLIP_EPS = 1e-6  # Opacus's constant in min(1, C / (norm + 1e-6))


def poisson_sample(
    n_rows: Sequence[int],
    sample_rates: Sequence[float],
    generators: Sequence[NoiseSource],
    active: Sequence[bool],
) -> tuple[Tensor, Tensor]:
    """Poisson batches for M models: indices (M, B) padded with 0 and a 0/1 mask (M, B).

    Row j of model m is in the batch iff U_j < q_m, with U a float64 uniform (53 bits:
    a float32 one would round q to 24 bits) drawn from ``generators[m]``, or from the OS
    CSPRNG when ``secure`` is given. Inactive (finished) models draw nothing and get an
    empty batch.
    """
    picks = []
    for n, q, g, on in zip(n_rows, sample_rates, generators, active, strict=True):
        if on:
            u = _uniform(g, n)
            picks.append(torch.nonzero(u < q).flatten())
        else:
            picks.append(torch.zeros(0, dtype=torch.long))
    width = max(1, max(len(p) for p in picks))
    index = torch.zeros(len(picks), width, dtype=torch.long)
    mask = torch.zeros(len(picks), width)
    for m, p in enumerate(picks):
        index[m, : len(p)] = p
        mask[m, : len(p)] = 1.0
    return index, mask


class DPAdam:
    """DP-Adam over a stack of linear layers ``(W: (M, out, in), b: (M, out))``.

    ``step`` takes the per-sample losses (M, B), the batch mask (M, B) and, for every
    layer in the same order as ``layers``, its input ``a`` (M, B, in) and pre-activation
    output ``z`` (M, B, out) recorded by the forward pass. With ``noise_multipliers`` 0 and
    ``max_grad_norms`` inf it is plain Adam on Σ_i ℓ_i / (q·n).
    """

    def __init__(
        self,
        layers: Sequence[tuple[Tensor, Tensor]],
        *,
        noise_multipliers: Sequence[float],
        max_grad_norms: Sequence[float],
        expected_batch_sizes: Sequence[float],
        steps: Sequence[int],
        generators: Sequence[NoiseSource],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        secure_mode: bool = False,
    ) -> None:
        self.params = [p for layer in layers for p in layer]  # W0, b0, W1, b1, ...
        m = layers[0][0].shape[0]
        for name, seq in (
            ("noise_multipliers", noise_multipliers),
            ("max_grad_norms", max_grad_norms),
            ("expected_batch_sizes", expected_batch_sizes),
            ("steps", steps),
            ("generators", generators),
        ):
            if len(seq) != m:
                raise ValueError(f"{name} has {len(seq)} entries for {m} models")
        self.sigma = [float(s) for s in noise_multipliers]
        if any(
            s > 0 and not math.isfinite(c) for s, c in zip(self.sigma, max_grad_norms, strict=True)
        ):
            raise PrivacyError("Noise needs a finite max_grad_norm (the noise std is σ·C).")
        self.clip = torch.tensor([float(c) for c in max_grad_norms])
        self.batch = torch.tensor([float(b) for b in expected_batch_sizes])
        self.total_steps = torch.tensor(list(steps), dtype=torch.long)
        self.steps_done = torch.zeros(m, dtype=torch.long)
        #: Each model's noise source (gradient noise, Poisson masks): the OS CSPRNG for
        #: every model in ``secure_mode``.
        self.generators: list[NoiseSource] = (
            [SecureRandom()] * m if secure_mode else list(generators))
        self.lr, self.betas, self.eps = lr, betas, eps
        # Every model's parameters as one row of a (M, P) matrix, in parameter order, so
        # that the noise and the Adam update are a few operations per step, not a few per
        # parameter; the layers' tensors become views of it (same values, updated in place:
        # one DPAdam per model, and a step after the forward pass it differentiates, as
        # `step` does; the in-place update does not bump the views' autograd versions).
        self.sizes = [int(p[0].numel()) for p in self.params]
        self.flat = torch.cat([p.detach().reshape(m, -1) for p in self.params], 1)
        for p, view in zip(self.params, self._unflatten(self.flat), strict=True):
            p.data = view
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)

    def _unflatten(self, flat: Tensor) -> list[Tensor]:
        """Views of ``flat`` (M, P) shaped as the parameters."""
        return [v.view(p.shape) for v, p in zip(flat.split(self.sizes, 1), self.params,
                                                strict=True)]

    @property
    def active(self) -> Tensor:
        """(M,) bool: models that still have steps left."""
        return self.steps_done < self.total_steps

    def step(self, losses: Tensor, mask: Tensor, records: Sequence[tuple[Tensor, Tensor]]) -> None:
        """One DP-Adam step for every active model."""
        active = self.active
        grads, _ = self.clipped_sums(losses, mask, records)
        flat = torch.cat([g.reshape(len(g), -1) for g in grads], 1)
        self._add_noise(flat, active)
        self._adam(flat, active)

    def clipped_sums(
        self, losses: Tensor, mask: Tensor, records: Sequence[tuple[Tensor, Tensor]]
    ) -> tuple[list[Tensor], Tensor]:
        """Σ_i c_i g_i for every parameter (W0, b0, W1, ...) and the per-sample norms (M, B)."""
        # δ = ∂(Σ_i mask_i ℓ_i)/∂z: per-sample output gradients (zero on padded rows).
        deltas = torch.autograd.grad((losses * mask).sum(), [z for _, z in records])
        acts = [a.detach() for a, _ in records]
        # Ghost norms: ‖g_i‖² = Σ_layers ‖δ_i‖² (‖a_i‖² + 1)   (the +1 is the bias).
        sq = torch.zeros_like(mask)
        for a, d in zip(acts, deltas, strict=True):
            sq = sq + d.square().sum(-1) * (a.square().sum(-1) + 1.0)
        norms = sq.sqrt()
        factor = (self.clip[:, None] / (norms + CLIP_EPS)).clamp(max=1.0) * mask
        grads: list[Tensor] = []
        for a, d in zip(acts, deltas, strict=True):
            cd = d * factor[..., None]  # c_i·δ_i, (M, B, out)
            grads.append(torch.bmm(cd.transpose(1, 2), a))  # Σ_i c_i δ_i a_iᵀ, (M, out, in)
            grads.append(cd.sum(1))  # Σ_i c_i δ_i, (M, out)
        return grads, norms

    def add_noise(self, grads: list[Tensor], active: Tensor) -> None:
        """Add N(0, (σ_m C_m)²) to model m's summed gradients (one tensor per parameter,
        as :meth:`clipped_sums` gives them), in place."""
        flat = torch.cat([g.reshape(len(g), -1) for g in grads], 1)
        self._add_noise(flat, active)
        for g, noisy in zip(grads, self._unflatten(flat), strict=True):
            g.copy_(noisy)

    def _add_noise(self, flat: Tensor, active: Tensor) -> None:
        """Add N(0, (σ_m C_m)²) to row m of the summed gradients ``flat`` (M, P), in place.

        Drawn from model m's own generator in parameter order (as Opacus does); finished
        models and models without noise draw nothing.
        """
        for m in range(len(self.sigma)):
            if not bool(active[m]) or self.sigma[m] == 0.0:
                continue
            std = self.sigma[m] * float(self.clip[m])
            source = self.generators[m]
            if isinstance(source, torch.Generator):  # its fills depend on the draw's size
                for row, p in zip(flat[m].split(self.sizes), self.params, strict=True):
                    row += _normal(source, std, tuple(p.shape[1:])).reshape(-1)
                continue
            # NumPy's generators (and the OS's): one draw for every parameter gives the
            # numbers of one draw per parameter in parameter order (a generator keeps no
            # state between draws but its stream), at one call per model and step
            flat[m] += _normal(source, std, (flat.shape[1],))

    @torch.no_grad()
    def _adam(self, flat: Tensor, active: Tensor) -> None:
        """torch.optim.Adam's update on (Σ clipped + noise) / (q·n), per active model, on
        every parameter at once (``flat`` (M, P), the parameters' order)."""
        beta1, beta2 = self.betas
        t = (self.steps_done + active.long()).clamp(min=1).double()
        step_size = (self.lr / (1.0 - beta1**t)).float()[:, None]  # (M, 1)
        bc2_sqrt = (1.0 - beta2**t).sqrt().float()[:, None]
        rows: list[int | slice] = (
            [slice(None)] if bool(active.all()) else active.nonzero().flatten().tolist())
        for r in rows:  # all models at once, or each active one (finished ones keep theirs)
            g = flat[r] / self.batch[r, None]
            m1, m2 = self.exp_avg[r], self.exp_avg_sq[r]
            m1.lerp_(g, 1.0 - beta1)
            m2.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            denom = (m2.sqrt() / bc2_sqrt[r]).add_(self.eps)
            self.flat[r].sub_(step_size[r] * m1 / denom)
        self.steps_done += active.long()
