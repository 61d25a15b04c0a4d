"""DDP-βVAE: one differentially private β-VAE per class; only the decoders are released.

Paper §III-A and Fig. 1: the rows are split by class, one β-VAE per class is trained with
DP-Adam (per-sample clipping to C, Gaussian noise σ·C, Poisson sampling at q = B/n_class),
σ calibrated by the accountant so each class model meets (ε, δ). The decoders, fed with
N(0, I) noise, form the generator. The classes are disjoint, so by parallel composition
the generator is (ε, δ)-DP.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from threedgl.errors import ArtifactError, ThreedglError
from threedgl.model.base import BaseGenerator, ProgressCallback, _seed, single_thread
from threedgl.model.networks import Decoder
from threedgl.model.presets import preset
from threedgl.model.training import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_GRAD_NORM,
    train_class_models,
)
from threedgl.privacy.accounting import PrivacyRecord
from threedgl.schema import TableEncoder


class DDPBetaVAE(BaseGenerator):
    """Per-class differentially private β-VAE generator (the paper's DDP-βVAE).

    Parameters
    ----------
    epsilon, delta:
        The privacy target of each class model (paper: 1.9 and 1e-4). ``epsilon=inf``
        trains without privacy (for comparisons only).
    hidden, latent, beta:
        Encoder hidden sizes (h1, h2) (the decoder mirrors them), latent size d, and the
        weight β ∈ (0, 1) of the KL term. :meth:`from_preset` gives the paper's Table I.
    epochs, batch_size, max_grad_norm, learning_rate:
        DP-Adam: passes over each class, expected Poisson batch size B (q = B/n_class),
        clipping norm C and Adam's learning rate.
    accountant:
        ``"rdp"`` (the paper's) or ``"prv"`` (Opacus' accountants).
    categorical:
        How categorical outputs are decoded: ``"sample"`` from the decoder's softmax, or
        ``"argmax"``.
    random_state:
        Seed of the training noise and the initialisation. ``None`` draws fresh entropy.
        The seed is never written to the artifact (knowing it would reveal the noise).

    Examples
    --------
    >>> from threedgl import DDPBetaVAE, datasets
    >>> ds = datasets.load("titanic")
    >>> gen = DDPBetaVAE.from_preset("titanic", epochs=2, random_state=0)
    >>> gen = gen.fit(ds.frame, target=ds.target, schema=ds.schema)
    >>> gen.sample(4, random_state=0).shape
    (4, 8)
    """

    generator_kind = "ddp-betavae"

    def __init__(
        self,
        epsilon: float = 1.9,
        delta: float = 1e-4,
        hidden: tuple[int, int] = (64, 32),
        latent: int = 3,
        beta: float = 0.1,
        epochs: int = DEFAULT_EPOCHS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_grad_norm: float = DEFAULT_MAX_GRAD_NORM,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        accountant: str = "rdp",
        categorical: Literal["sample", "argmax"] = "argmax",
        random_state: int | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.accountant = accountant
        self.categorical = categorical
        self.random_state = random_state

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DDPBetaVAE:
        """The architecture of the paper's Table I for a bundled dataset."""
        params = preset(name)
        params.update(overrides)
        return cls(**params)

    def _categorical_decoding(self) -> Literal["argmax", "sample"]:
        if self.categorical not in ("sample", "argmax"):
            raise ThreedglError(
                f"The 'categorical' parameter of DDPBetaVAE must be 'sample' or 'argmax'. "
                f"Got {self.categorical!r} instead."
            )
        return self.categorical

    def _fit_classes(
        self, groups: list[np.ndarray], encoder: TableEncoder, progress: ProgressCallback | None
    ) -> list[PrivacyRecord]:
        self._categorical_decoding()
        if len(tuple(self.hidden)) != 2:
            raise ThreedglError(
                f"The 'hidden' parameter of DDPBetaVAE must be two sizes (h1, h2). Got {self.hidden!r}."
            )
        with single_thread():
            trained = self._train(groups, encoder, progress)
        self.architecture_ = trained.architecture
        self.decoders_ = [trained.decoder(k) for k in range(len(groups))]
        return list(trained.privacy)

    def _train(
        self, groups: list[np.ndarray], encoder: TableEncoder, progress: ProgressCallback | None
    ) -> Any:
        return train_class_models(
            groups,
            encoder.layout,  # type: ignore[arg-type]
            hidden=(self.hidden[0], self.hidden[1]),
            latent=self.latent,
            beta=self.beta,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            epsilon=self.epsilon,
            delta=self.delta,
            accountant=self.accountant,
            seed=_seed(self.random_state),
            progress=progress,
        )

    def _sample_class(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        with single_thread():
            return self.decoders_[k].sample(n, g)

    def _architecture(self) -> dict[str, Any]:
        return _jsonable(self.architecture_)

    def _tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, dec in enumerate(self.decoders_):
            for name, t in _decoder_state(dec).items():
                out[f"class{k}.{name}"] = t.detach().numpy()
        return out

    def _restore(self, architecture: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        groups: dict[int, dict[str, torch.Tensor]] = {}
        for name, arr in tensors.items():
            head, _, rest = name.partition(".")
            if not head.startswith("class") or not head[5:].isdigit() or not rest:
                raise ArtifactError(f"unexpected tensor name '{name}'")
            groups.setdefault(int(head[5:]), {})[rest] = torch.from_numpy(np.array(arr))
        if sorted(groups) != list(range(len(self.labels_))):
            raise ArtifactError(
                f"the file holds tensors for classes {sorted(groups)}, but the manifest lists "
                f"{len(self.labels_)} class model(s)"
            )
        n_outputs = architecture.get("n_outputs") if isinstance(architecture, dict) else None
        if n_outputs != self.encoder_.n_outputs:
            raise ArtifactError(
                f"the architecture's n_outputs ({n_outputs!r}) does not match the schema's "
                f"encoded width ({self.encoder_.n_outputs})"
            )
        self.architecture_ = architecture
        self.decoders_ = []
        for k in range(len(self.labels_)):
            try:
                self.decoders_.append(Decoder(groups[k], architecture))
            except ThreedglError as exc:
                raise ArtifactError(f"class model #{k}: {exc}") from None

    def _training_parameters(self) -> dict[str, Any]:
        return {
            "epsilon": "inf" if math.isinf(self.epsilon) else float(self.epsilon),
            "delta": float(self.delta),
            "hidden": [int(h) for h in self.hidden],
            "latent": int(self.latent),
            "beta": float(self.beta),
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "max_grad_norm": float(self.max_grad_norm) if math.isfinite(self.max_grad_norm) else "inf",
            "learning_rate": float(self.learning_rate),
            "accountant": self.accountant,
            "categorical": self.categorical,
            "optimizer": "DP-Adam (betas 0.9, 0.999; eps 1e-8), Poisson sampling",
        }

    @classmethod
    def _params_from_training(cls, training: dict[str, Any]) -> dict[str, Any]:
        params = dict(training)
        for key in ("epsilon", "max_grad_norm"):
            if params.get(key) == "inf":
                params[key] = math.inf
        if "hidden" in params and isinstance(params["hidden"], list):
            params["hidden"] = tuple(params["hidden"])
        return params


def _decoder_state(dec: Decoder) -> dict[str, torch.Tensor]:
    names = ("decoder.0", "decoder.1", "head")
    out: dict[str, torch.Tensor] = {}
    for lin, name in zip(dec.linears, names, strict=True):
        assert isinstance(lin, torch.nn.Linear)
        out[f"{name}.weight"] = lin.weight.detach().contiguous()
        out[f"{name}.bias"] = lin.bias.detach().contiguous()
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value
