"""The β-VAE of DDP-βVAE (paper Table I), batched over M independent class models.

Architecture: encoder Dense(h1, tanh) → Dense(h2, tanh) → (μ, log σ²) of size d (one
linear layer of width 2d); decoder Dense(h2, tanh) → Dense(h1, tanh) → one linear
"head" with one logit per encoded column.

Output heads, chosen per span of the encoder layout ``(kind, start, stop)``:

* ``"numeric"`` (one column scaled to [0, 1]): sigmoid mean with binary cross-entropy
  (a Bernoulli likelihood with fractional targets). Its logit gradient ``σ(l) - x`` lies
  in [-1, 1] and never vanishes when the sigmoid saturates (squared error on a sigmoid
  does), which keeps per-sample gradient norms small and informative under clipping.
  The decoded value is the mean ``σ(l)`` in [0, 1].
* ``"categorical"`` (one-hot block): softmax with cross-entropy; decoded as the block's
  probabilities (the sampler draws a category from them).

Per-sample loss = Σ_columns reconstruction + β · KL(N(μ, σ²) ‖ N(0, I)); reparametrisation
noise comes from the caller (drawn from a ``torch.Generator``).

All linear layers are explicit tensors ``W: (M, out, in)``, ``b: (M, out)`` applied with
``torch.baddbmm``; the forward pass records each layer's input ``a`` and pre-activation
``z`` for :class:`threedgl.privacy.dp_adam.DPAdam`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from threedgl.errors import ThreedglError, check_int

__all__ = [
    "KINDS",
    "BatchedVAE",
    "Decoder",
    "VAEModule",
    "check_architecture",
    "check_layout",
]

KINDS = ("numeric", "categorical")
#: One block of the decoder's output layout: (kind, start column, stop column).
OutputBlock = tuple[str, int, int]
#: Most latent points a prior fitted to measurements may hold (a file cannot ask for more).
MAX_PRIOR_POINTS = 1 << 16
LOGVAR_BOUND = 10.0  # log σ² clamped to [-10, 10] so exp() cannot overflow under DP noise
# Layer order (index into BatchedVAE.layers); decoder layers are the last three.
LAYER_NAMES = ("encoder.0", "encoder.1", "encoder.out", "decoder.0", "decoder.1", "head")


def check_layout(layout: Any, n_outputs: int | None = None) -> list[OutputBlock]:
    """Validate a layout: spans ``(kind, start, stop)`` covering ``[0, n_outputs)`` in order."""
    if not isinstance(layout, list | tuple) or not layout:
        raise ThreedglError(f"The layout must be a non-empty list of spans. Got {layout!r}.")
    spans: list[OutputBlock] = []
    pos = 0
    for i, span in enumerate(layout):
        if not isinstance(span, list | tuple) or len(span) != 3:
            raise ThreedglError(f"Layout span {i} must be (kind, start, stop). Got {span!r}.")
        kind, start, stop = span
        if kind not in KINDS:
            raise ThreedglError(f"Layout span {i} has kind {kind!r}; expected one of {KINDS}.")
        start = check_int("start", start, owner=f"layout span {i}")
        stop = check_int("stop", stop, owner=f"layout span {i}")
        if start != pos or stop <= start:
            raise ThreedglError(
                f"Layout span {i} {span!r} must start at {pos} and be non-empty (spans are "
                "contiguous and in order)."
            )
        if kind == "numeric" and stop - start != 1:
            raise ThreedglError(f"Layout span {i} is numeric and must be one column wide.")
        spans.append((str(kind), start, stop))
        pos = stop
    if n_outputs is not None and pos != n_outputs:
        raise ThreedglError(f"The layout covers {pos} columns but there are {n_outputs} outputs.")
    return spans


def check_architecture(arch: Any) -> dict[str, Any]:
    """Validate an architecture dict ``{h1, h2, latent, n_outputs, layout}``; return a copy.

    A binned model (DDP-βVAE's default mode) also has ``bins``: the bin count of every
    feature (checked against the schema by :class:`threedgl.schema.bins.Discretizer`), and
    one fitted to its measurements ``prior``: the number of latent points of its prior.
    """
    if not isinstance(arch, Mapping):
        raise ThreedglError(f"The architecture must be a mapping. Got {type(arch).__name__}.")
    keys = {"h1", "h2", "latent", "n_outputs", "layout"}
    if set(arch) - {"bins", "prior"} != keys:
        raise ThreedglError(
            f"The architecture must have exactly the keys {sorted(keys)} (and optionally 'bins' "
            "and 'prior')."
        )
    out: dict[str, Any] = {}
    for k in ("h1", "h2", "latent", "n_outputs"):
        v = arch[k]
        out[k] = check_int(k, v, low=1, high=100_000, owner="the architecture")
    out["layout"] = [list(s) for s in check_layout(arch["layout"], out["n_outputs"])]
    if "bins" in arch:
        bins = arch["bins"]
        if not isinstance(bins, list):
            raise ThreedglError("Architecture field 'bins' must be a list of positive ints.")
        bins = [check_int("bins", b, low=1, owner="the architecture") for b in bins]
        if sum(bins) != out["n_outputs"]:
            raise ThreedglError(
                f"Architecture field 'bins' adds up to {sum(bins)}, not n_outputs={out['n_outputs']}."
            )
        out["bins"] = list(bins)
    if "prior" in arch:
        out["prior"] = check_int("prior", arch["prior"], low=1, high=MAX_PRIOR_POINTS,
                                 owner="the architecture")
    return out


class _BlockLogSumExp(torch.autograd.Function):
    """logsumexp of each categorical block of the logits, ``(..., blocks)``.

    The numbers of one ``torch.logsumexp`` per block (its forward and backward formulas),
    but the backward writes every block's gradient into one tensor: autograd's slices
    would each allocate and add a zero tensor of the logits' size (half a DP-Adam step at
    Adult's 479 outputs and batch 512).
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, cats: Sequence[tuple[int, int]]) -> Tensor:
        # a loop over blocks beats a padded gather (measured)
        lse = torch.stack([torch.logsumexp(logits[..., s:e], -1) for s, e in cats], -1)
        ctx.save_for_backward(logits, lse)
        ctx.cats = cats
        return lse

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        logits, lse = ctx.saved_tensors
        out = torch.zeros_like(logits)  # columns outside every block get no gradient
        for j, (s, e) in enumerate(ctx.cats):
            out[..., s:e] = grad[..., j:j + 1] * (logits[..., s:e] - lse[..., j:j + 1]).exp()
        return out, None


class _Heads:
    """Vectorised reconstruction losses and decoded outputs for a layout."""

    def __init__(self, layout: Sequence[OutputBlock], n_outputs: int) -> None:
        self.n = n_outputs
        self.numeric = torch.tensor([s for k, s, _ in layout if k == "numeric"], dtype=torch.long)
        self.numeric_mask = torch.zeros(n_outputs)  # 1 on numeric columns (avoids indexing)
        self.numeric_mask[self.numeric] = 1.0
        self.cats = [(s, e) for k, s, e in layout if k == "categorical"]

    def loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """Σ_columns reconstruction loss, shape ``logits.shape[:-1]``.

        BCE(l, x) = softplus(l) − x·l and CE = logsumexp(block) − Σ x·l, so the x·l term
        is shared by all columns.
        """
        out = -(x * logits).sum(-1)
        if len(self.numeric):
            out = out + (F.softplus(logits) * self.numeric_mask).sum(-1)
        if self.cats:
            out = out + _BlockLogSumExp.apply(logits, self.cats).sum(-1)
        return out

    def decode(self, logits: Tensor) -> Tensor:
        out = torch.empty_like(logits)
        if len(self.numeric):
            out[..., self.numeric] = torch.sigmoid(logits[..., self.numeric])
        for s, e in self.cats:
            out[..., s:e] = torch.softmax(logits[..., s:e], -1)
        return out


def _vae_loss(
    x: Tensor,
    noise: Tensor,
    linear: Callable[[int, Tensor], Tensor],
    heads: _Heads,
    latent: int,
    beta: float,
) -> Tensor:
    """Per-sample β-VAE loss; ``linear(i, a)`` applies layer i of :data:`LAYER_NAMES`."""
    h = torch.tanh(linear(0, x))
    h = torch.tanh(linear(1, h))
    stats = linear(2, h)
    mu = stats[..., :latent]
    logvar = stats[..., latent:].clamp(-LOGVAR_BOUND, LOGVAR_BOUND)
    z = mu + torch.exp(0.5 * logvar) * noise
    h = torch.tanh(linear(3, z))
    h = torch.tanh(linear(4, h))
    logits = linear(5, h)
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)
    return heads.loss(logits, x) + beta * kl


class BatchedVAE:
    """M independent β-VAEs whose parameters are stacked along a leading model dimension."""

    def __init__(
        self,
        n_outputs: int,
        layout: Sequence[OutputBlock],
        *,
        hidden: tuple[int, int],
        latent: int,
        beta: float,
        generators: Sequence[torch.Generator],
    ) -> None:
        self.layout = check_layout(list(layout), n_outputs)
        self.n_outputs, self.hidden, self.latent, self.beta = n_outputs, hidden, latent, beta
        self.heads = _Heads(self.layout, n_outputs)
        h1, h2 = hidden
        shapes = [
            (h1, n_outputs),
            (h2, h1),
            (2 * latent, h2),
            (h2, latent),
            (h1, h2),
            (n_outputs, h1),
        ]
        per_model = [self._init(shapes, g) for g in generators]  # nn.Linear's default init
        self.layers: list[tuple[Tensor, Tensor]] = []
        for i in range(len(shapes)):
            w = torch.stack([pm[i][0] for pm in per_model]).requires_grad_(True)
            b = torch.stack([pm[i][1] for pm in per_model]).requires_grad_(True)
            self.layers.append((w, b))

    @staticmethod
    def _init(shapes: list[tuple[int, int]], g: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        out = []
        for o, i in shapes:
            bound = 1.0 / math.sqrt(i)  # kaiming_uniform(a=√5) for W and the bias rule
            w = (torch.rand(o, i, generator=g) * 2 - 1) * bound
            b = (torch.rand(o, generator=g) * 2 - 1) * bound
            out.append((w, b))
        return out

    @property
    def n_models(self) -> int:
        return self.layers[0][0].shape[0]

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Per-sample losses (M, B) for x (M, B, D), noise (M, B, d), and the (a, z) records."""
        records: list[tuple[Tensor, Tensor]] = []

        def linear(i: int, a: Tensor) -> Tensor:
            w, b = self.layers[i]
            z = torch.baddbmm(b.unsqueeze(1), a, w.transpose(1, 2))
            records.append((a, z))
            return z

        return _vae_loss(x, noise, linear, self.heads, self.latent, self.beta), records

    def architecture(self) -> dict[str, Any]:
        h1, h2 = self.hidden
        layout = [list(s) for s in self.layout]
        return {
            "h1": h1,
            "h2": h2,
            "latent": self.latent,
            "n_outputs": self.n_outputs,
            "layout": layout,
        }

    def decoder_state(self, model_index: int) -> dict[str, Tensor]:
        """Decoder tensors of one model (float32, contiguous, detached copies)."""
        out = {}
        for name, i in (("decoder.0", 3), ("decoder.1", 4), ("head", 5)):
            w, b = self.layers[i]
            out[f"{name}.weight"] = w[model_index].detach().to(torch.float32).contiguous().clone()
            out[f"{name}.bias"] = b[model_index].detach().to(torch.float32).contiguous().clone()
        return out

    def to_module(self, model_index: int) -> VAEModule:
        """Model ``model_index`` as an ordinary ``nn.Module`` of ``nn.Linear`` (same weights)."""
        mod = VAEModule(
            self.n_outputs, self.layout, hidden=self.hidden, latent=self.latent, beta=self.beta
        )
        with torch.no_grad():
            for lin, (w, b) in zip(mod.linears, self.layers, strict=True):
                assert isinstance(lin, nn.Linear)
                lin.weight.copy_(w[model_index])
                lin.bias.copy_(b[model_index])
        return mod


class VAEModule(nn.Module):
    """One β-VAE as ``nn.Linear`` layers; ``forward(x, noise)`` gives per-sample losses."""

    def __init__(
        self,
        n_outputs: int,
        layout: Sequence[OutputBlock],
        *,
        hidden: tuple[int, int],
        latent: int,
        beta: float,
    ) -> None:
        super().__init__()
        h1, h2 = hidden
        self.latent, self.beta = latent, beta
        self.heads = _Heads(check_layout(list(layout), n_outputs), n_outputs)
        dims = [
            (n_outputs, h1),
            (h1, h2),
            (h2, 2 * latent),
            (latent, h2),
            (h2, h1),
            (h1, n_outputs),
        ]
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in dims)

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return _vae_loss(
            x, noise, lambda i, a: self.linears[i](a), self.heads, self.latent, self.beta
        )


class Decoder(nn.Module):
    """A standalone decoder rebuilt from :meth:`BatchedVAE.decoder_state` + architecture.

    Its latent prior is N(0, I), or, for a decoder fitted to its DP measurements
    (:mod:`threedgl.model.matching`, architecture ``prior`` = M), the weighted latent
    points ``prior.z`` (M × d) with weights ``prior.weight`` (M, non-negative).

    The state and architecture may come from untrusted files: names, shapes, dtypes and
    finiteness are checked strictly and any mismatch raises :class:`ThreedglError`.
    """

    def __init__(self, state: Mapping[str, Tensor], architecture: Mapping[str, Any]) -> None:
        super().__init__()
        arch = check_architecture(architecture)
        h1, h2, d, n = arch["h1"], arch["h2"], arch["latent"], arch["n_outputs"]
        self.architecture = arch
        self.latent = d
        self.heads = _Heads(check_layout(arch["layout"], n), n)
        expected = {
            "decoder.0.weight": (h2, d), "decoder.0.bias": (h2,),
            "decoder.1.weight": (h1, h2), "decoder.1.bias": (h1,),
            "head.weight": (n, h1), "head.bias": (n,),
        }  # fmt: skip
        if "prior" in arch:
            expected.update({"prior.z": (arch["prior"], d), "prior.weight": (arch["prior"],)})
        if not isinstance(state, Mapping):
            raise ThreedglError("The decoder state must be a mapping of tensor names to tensors.")
        for name in state:
            if name not in expected:
                raise ThreedglError(f"Unexpected tensor {name!r} in the decoder state.")
        for name, shape in expected.items():
            if name not in state:
                raise ThreedglError(f"Missing tensor {name!r} in the decoder state.")
            t = state[name]
            if not isinstance(t, Tensor):
                raise ThreedglError(f"Decoder tensor {name!r} is not a tensor.")
            if t.dtype != torch.float32:
                raise ThreedglError(
                    f"Decoder tensor {name!r} has dtype {t.dtype}; expected float32."
                )
            if tuple(t.shape) != shape:
                raise ThreedglError(
                    f"Decoder tensor {name!r} has shape {tuple(t.shape)}; expected {shape}."
                )
            if not bool(torch.isfinite(t).all()):
                raise ThreedglError(f"Decoder tensor {name!r} contains NaN or infinite values.")
        self.linears = nn.ModuleList([nn.Linear(d, h2), nn.Linear(h2, h1), nn.Linear(h1, n)])
        with torch.no_grad():
            for lin, name in zip(self.linears, ("decoder.0", "decoder.1", "head"), strict=True):
                assert isinstance(lin, nn.Linear)
                lin.weight.copy_(state[f"{name}.weight"])
                lin.bias.copy_(state[f"{name}.bias"])
        self.prior_z: Tensor | None = None
        self.prior_weight: Tensor | None = None
        if "prior" in arch:
            weight = state["prior.weight"]
            if bool((weight < 0).any()) or not float(weight.sum()) > 0:
                raise ThreedglError("Decoder tensor 'prior.weight' must be non-negative with a "
                                    "positive sum.")
            self.prior_z = state["prior.z"].clone()
            self.prior_weight = weight.clone()
        self.requires_grad_(False)

    def logits(self, z: Tensor) -> Tensor:
        """The output layer's logits at latent points ``z``."""
        h = torch.tanh(self.linears[0](z))
        h = torch.tanh(self.linears[1](h))
        return self.linears[2](h)

    def forward(self, z: Tensor) -> Tensor:
        """Decoded outputs in encoded space (numeric in [0, 1], categorical probabilities)."""
        return self.heads.decode(self.logits(z))

    def decode(self, z: np.ndarray | Tensor) -> np.ndarray:
        """``forward`` on a (n, latent) array; returns a float32 (n, n_outputs) array."""
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if zt.dim() != 2 or zt.shape[1] != self.latent:
            raise ThreedglError(f"z must have shape (n, {self.latent}). Got {tuple(zt.shape)}.")
        with torch.no_grad():
            return self.forward(zt).numpy().astype(np.float32, copy=False)

    def prior_outputs(self) -> np.ndarray | None:
        """The decoded outputs at the fitted prior's points (float32, one row per point),
        computed once; None without a fitted prior."""
        if self.prior_z is None or self.prior_weight is None:
            return None
        if getattr(self, "_prior_outputs", None) is None:
            self._prior_outputs = self.decode(self.prior_z)
        return self._prior_outputs

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """Decode ``n`` latent draws from the prior, drawn with ``generator``.

        Without a fitted prior, N(0, I). A fitted prior has finitely many points: they are
        decoded once, and a draw picks one of them (the same distribution as decoding every
        draw, without the cost).
        """
        outputs = self.prior_outputs()
        if outputs is None or self.prior_weight is None:
            return self.decode(torch.randn(n, self.latent, generator=generator))
        index = torch.multinomial(self.prior_weight.double(), max(n, 1), replacement=True,
                                  generator=generator)[:n]
        return outputs[index.numpy()]
