"""DDP-βVAE: one differentially private β-VAE per class; only the decoders are released.

The default (``mode="anchored"``) is described in :mod:`threedgl.model.anchored`; the
paper's model (``mode="paper"``) below.

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

from threedgl.errors import ArtifactError, PrivacyError, SchemaError, ThreedglError, check_range
from threedgl.model.anchored import fit_anchored
from threedgl.model.base import BaseGenerator, _seed, one_hot_codes
from threedgl.model.networks import Decoder
from threedgl.model.presets import preset
from threedgl.model.progress import (
    PlannedCheck,
    ProgressCallback,
    announce_epochs,
    batches,
    reindexed,
)
from threedgl.model.stored import (
    MEASUREMENTS,
    decoder_state,
    jsonable,
    measurement_tensor,
    restore_measurements,
    split_class_tensors,
)
from threedgl.model.training import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_GRAD_NORM,
    _check_int,
    train_class_models,
)
from threedgl.privacy.measurement import Measurement
from threedgl.privacy.record import PrivacyRecord
from threedgl.schema import TableEncoder
from threedgl.schema.bins import Discretizer
from threedgl.schema.rows import EncodedRows
from threedgl.threads import single_thread

#: Paper mode's values of the settings left to ``None`` (``"auto"`` in the default mode).
PAPER_DEFAULTS: dict[str, Any] = {
    "hidden": (64, 32),
    "latent": 3,
    "beta": 0.1,
    "epochs": DEFAULT_EPOCHS,
    "batch_size": DEFAULT_BATCH_SIZE,
    "learning_rate": DEFAULT_LEARNING_RATE,
    "categorical": "argmax",
}
MODES = ("anchored", "paper")
#: Default shares of each class's Rényi budget (default mode): the noisy row count, the
#: one-way marginals (the anchor) and the two-way marginals measured after DP-Adam (0:
#: none); DP-Adam gets the rest. See the README for how they were chosen.
COUNT_SHARE = 0.05
MARGINALS_SHARE = 0.50
PAIRS_SHARE = 0.25
#: Values within a numeric bin follow a linear density whose slope comes from the class's
#: fitted probabilities of the neighbouring bins (False: uniform within the bin).
SHAPED_BINS = True


class DDPBetaVAE(BaseGenerator):
    """Per-class differentially private β-VAE generator (the paper's DDP-βVAE).

    Two modes. ``mode="anchored"`` (the default) is DDP-βVAE as a full generative model:
    every feature is a softmax over public bins (:mod:`threedgl.schema.bins`) that sampling
    draws from; a share of each class's budget releases its row count and one-way
    marginals, which set the decoder's output layer before DP-Adam starts; the sampling
    rate, steps and noise follow from the noisy count, so no exact class size is used or
    released; settings left to ``None`` are chosen from the schema and the noisy sizes
    (:func:`threedgl.model.anchored.auto_settings`). ``mode="paper"`` is the paper's model
    as published: numeric columns are the decoder's sigmoid mean, categorical columns its
    argmax, the exact class sizes set q, the Table I architecture via :meth:`from_preset`.

    Parameters
    ----------
    epsilon, delta:
        The privacy target of each class model (paper: 1.9 and 1e-4). ``epsilon=inf``
        trains without privacy (for comparisons only).
    mode:
        ``"anchored"`` (default) or ``"paper"``.
    hidden, latent, beta:
        Encoder hidden sizes (h1, h2) (the decoder mirrors them), latent size d, and the
        weight β ∈ (0, 1) of the KL term. ``None``: chosen (anchored) or (64, 32), 3, 0.1
        (paper). :meth:`from_preset` gives the paper's Table I.
    epochs, batch_size, max_grad_norm, learning_rate:
        DP-Adam: passes over each class, expected Poisson batch size B (q = B/n_class),
        clipping norm C and Adam's learning rate. ``None``: chosen (anchored) or 20, 128,
        5e-3 (paper).
    bins:
        Anchored mode: bins of a numeric column (``None``: from the smallest noisy class).
    count_share, marginals_share, pairs_share:
        Anchored mode: the shares of each class's Rényi budget spent on its noisy row count,
        on its one-way marginals (the anchor) and on the two-way marginals of selected pairs
        of features (0: none); DP-Adam gets the rest. The generator is fitted to all of
        these measurements after DP-Adam.
    accountant:
        ``"rdp"`` (the paper's) or ``"prv"`` (paper mode only; the anchored composition is
        RDP at a fixed order).
    categorical:
        How categorical columns are decoded: ``"sample"`` from the decoder's softmax (the
        anchored mode's default) or ``"argmax"`` (paper mode's default). Numeric columns
        are always sampled in the anchored mode.
    random_state:
        Seed of the training noise and the initialisation. ``None`` (the default for a
        release) draws 128 bits of fresh entropy from the operating system. The seed is
        never written to the artifact (knowing it would reveal the noise).
    secure_mode:
        Draw the privacy noise (gradient noise, noisy counts and histograms) and the
        Poisson masks from the OS CSPRNG instead of a seeded generator, as Opacus'
        ``secure_mode``; ``random_state`` then seeds only the initialisation. Costs
        some speed (``benchmarks/secure_mode.py``).

    Examples
    --------
    >>> from threedgl import DDPBetaVAE, datasets
    >>> ds = datasets.load("titanic")
    >>> gen = DDPBetaVAE(epochs=2, random_state=0)
    >>> gen = gen.fit(ds.frame, target=ds.target, schema=ds.schema)
    >>> gen.sample(4, random_state=0).shape
    (4, 8)
    """

    generator_kind = "ddp-betavae"

    def __init__(
        self,
        epsilon: float = 1.9,
        delta: float = 1e-4,
        mode: Literal["anchored", "paper"] = "anchored",
        hidden: tuple[int, int] | None = None,
        latent: int | None = None,
        beta: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        max_grad_norm: float = DEFAULT_MAX_GRAD_NORM,
        learning_rate: float | None = None,
        bins: int | None = None,
        count_share: float = COUNT_SHARE,
        marginals_share: float = MARGINALS_SHARE,
        pairs_share: float = PAIRS_SHARE,
        accountant: str = "rdp",
        categorical: Literal["sample", "argmax"] | None = None,
        random_state: int | None = None,
        secure_mode: bool = False,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.mode = mode
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.learning_rate = learning_rate
        self.bins = bins
        self.count_share = count_share
        self.marginals_share = marginals_share
        self.pairs_share = pairs_share
        self.accountant = accountant
        self.categorical = categorical
        self.random_state = random_state
        self.secure_mode = secure_mode

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DDPBetaVAE:
        """The paper's Table I model for a bundled dataset (paper mode unless overridden)."""
        params = {"mode": "paper", **preset(name)}
        params.update(overrides)
        return cls(**params)

    # -- parameters -----------------------------------------------------------------------
    def _check_mode(self) -> str:
        if self.mode not in MODES:
            raise ThreedglError(
                f"The 'mode' parameter of DDPBetaVAE must be one of {list(MODES)}. "
                f"Got {self.mode!r} instead."
            )
        return self.mode

    def _setting(self, name: str) -> Any:
        value = getattr(self, name)
        return PAPER_DEFAULTS[name] if value is None and self.mode == "paper" else value

    def _overrides(self) -> dict[str, Any]:
        """Anchored mode: the settings the user fixed (the others are chosen)."""
        out: dict[str, Any] = {}
        for name in ("hidden", "latent", "beta", "epochs", "batch_size", "learning_rate", "bins"):
            value = getattr(self, name)
            if value is None:
                continue
            if name == "hidden":
                if len(tuple(value)) != 2:
                    raise ThreedglError(
                        f"The 'hidden' parameter of DDPBetaVAE must be two sizes (h1, h2). "
                        f"Got {value!r}."
                    )
                value = tuple(_check_int("hidden", h) for h in value)
            elif name in ("latent", "epochs", "batch_size", "bins"):
                value = _check_int(name, value)
            else:
                check_range(name, value, low=0, high=1 if name == "beta" else None,
                            owner="DDPBetaVAE")
            out[name] = value
        return out

    # -- training -------------------------------------------------------------------------
    def _fit_classes(
        self, groups: list[EncodedRows], encoder: TableEncoder, progress: ProgressCallback | None,
        planned: PlannedCheck,
    ) -> tuple[list[PrivacyRecord | None], list[float]]:
        mode = self._check_mode()
        for stale in ("measurements_", "discretizer_", "_bin_shapes_cache"):  # of a last fit
            self.__dict__.pop(stale, None)
        if self.categorical not in (None, "sample", "argmax"):
            raise ThreedglError(
                f"The 'categorical' parameter of DDPBetaVAE must be 'sample' or 'argmax'. "
                f"Got {self.categorical!r} instead."
            )
        if mode == "anchored":
            return self._fit_anchored(groups, encoder, progress, planned)
        hidden = self._setting("hidden")
        if len(tuple(hidden)) != 2:
            raise ThreedglError(
                f"The 'hidden' parameter of DDPBetaVAE must be two sizes (h1, h2). Got {hidden!r}."
            )
        kept = [k for k, g in enumerate(groups) if len(g)]
        epochs = self._setting("epochs")

        def calibrated(records: list[PrivacyRecord]) -> None:
            planned(kept, records)  # the budget first: may refuse before any step
            announce_epochs(progress, kept, epochs, [r.steps for r in records])

        with single_thread():
            trained = train_class_models(
                [groups[k] for k in kept],
                encoder.layout,  # type: ignore[arg-type]
                hidden=(hidden[0], hidden[1]),
                latent=self._setting("latent"),
                beta=self._setting("beta"),
                epochs=epochs,
                batch_size=self._setting("batch_size"),
                learning_rate=self._setting("learning_rate"),
                max_grad_norm=self.max_grad_norm,
                epsilon=self.epsilon,
                delta=self.delta,
                accountant=self.accountant,
                seed=_seed(self.random_state),
                progress=reindexed(progress, kept),
                on_batch=batches(progress, kept),
                before_training=calibrated,
                secure_mode=bool(self.secure_mode),
            )
        self.architecture_ = trained.architecture
        self.decoders_ = [trained.decoder(k) for k in range(len(kept))]
        self.settings_ = {name: self._setting(name) for name in PAPER_DEFAULTS}
        records: list[PrivacyRecord | None] = [None] * len(groups)
        for i, k in enumerate(kept):
            records[k] = trained.privacy[i]
        return records, [float(len(g)) for g in groups]  # paper mode: the exact sizes

    def _fit_anchored(
        self, groups: list[EncodedRows], encoder: TableEncoder, progress: ProgressCallback | None,
        planned: PlannedCheck,
    ) -> tuple[list[PrivacyRecord | None], list[float]]:
        if self.accountant != "rdp":
            raise PrivacyError(
                "DDPBetaVAE's anchored mode composes its parts at a fixed Rényi order: use "
                f"accountant='rdp' (or mode='paper' for {self.accountant!r})."
            )
        check_range("max_grad_norm", self.max_grad_norm, low=0, high=math.inf,
                    high_inclusive=True, owner="DDPBetaVAE")
        for name in ("count_share", "marginals_share"):
            check_range(name, getattr(self, name), low=0, high=1, owner="DDPBetaVAE")
        check_range("pairs_share", self.pairs_share, low=0, high=1, low_inclusive=True,
                    owner="DDPBetaVAE")
        if self.count_share + self.marginals_share + self.pairs_share >= 1:
            raise PrivacyError(
                "count_share + marginals_share + pairs_share must be below 1 (DP-Adam needs "
                f"the rest); got {self.count_share!r} + {self.marginals_share!r} + "
                f"{self.pairs_share!r}."
            )
        overrides = self._overrides()
        seed = _seed(self.random_state)
        with single_thread():
            trained = fit_anchored(
                groups, encoder.schema, epsilon=self.epsilon, delta=self.delta,
                count_share=self.count_share, marginals_share=self.marginals_share,
                pairs_share=self.pairs_share,
                overrides=overrides, max_grad_norm=self.max_grad_norm, seed=seed,
                progress=progress, secure_mode=bool(self.secure_mode), before_training=planned,
            )
        self.architecture_ = trained.architecture
        self.decoders_ = [Decoder(st, trained.architecture) for st in trained.decoder_states]
        self.measurements_ = trained.measurements
        self.discretizer_ = Discretizer(encoder.schema, trained.architecture["bins"])
        self.settings_ = trained.settings
        records: list[PrivacyRecord | None] = [None] * len(groups)
        rows = [math.nan] * len(groups)  # only the kept classes' noisy counts are released
        for i, k in enumerate(trained.kept):
            records[k] = trained.privacy[i]
            rows[k] = trained.noisy_rows[i]
        return records, rows

    @property
    def balanced_by_default(self) -> bool:
        return self.mode == "paper"  # the paper balances classes; the default mode follows
        # its released (noisy) class sizes

    # -- sampling -------------------------------------------------------------------------
    def _sample_class(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        with single_thread():
            out = self.decoders_[k].sample(n, g)
        if self.mode == "anchored":
            disc = self.discretizer_
            codes = disc.sample_codes(out, rng)
            if self.categorical == "argmax":
                for j, f in enumerate(disc.features):
                    if f.kind == "categorical":
                        codes[:, j] = np.argmax(out[:, disc.offsets[j] : disc.offsets[j + 1]], 1)
            return disc.encoded(codes, rng, self._bin_shapes(k))
        decoding = self._setting("categorical")
        return one_hot_codes(out, self.encoder_.layout, rng if decoding == "sample" else None)

    def _bin_shapes(self, k: int) -> list[np.ndarray | None] | None:
        """Class k's probabilities of the bins of each numeric column cut into bins (the
        shape of values within a bin, :meth:`Discretizer.encoded`): the exact marginals of
        a decoder fitted to its measurements; None for one without a fitted prior."""
        cache: dict[int, list[np.ndarray | None] | None] = self.__dict__.setdefault(
            "_bin_shapes_cache", {})
        if k not in cache:
            dec, disc = self.decoders_[k], self.discretizer_
            if dec.prior_z is None or dec.prior_weight is None or not SHAPED_BINS:
                cache[k] = None
            else:
                with single_thread():
                    probs = dec.prior_outputs().astype(np.float64)  # type: ignore[union-attr]
                weight = dec.prior_weight.double().numpy()
                marginal = (weight / weight.sum()) @ probs
                cache[k] = [marginal[disc.offsets[j] : disc.offsets[j + 1]]
                            if f.kind in ("linear", "log") else None
                            for j, f in enumerate(disc.features)]
        return cache[k]

    # -- artifact -------------------------------------------------------------------------
    def _architecture(self) -> dict[str, Any]:
        return jsonable(self.architecture_)

    def _tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, dec in enumerate(self.decoders_):
            for name, t in decoder_state(dec).items():
                out[f"class{k}.{name}"] = t.detach().numpy()
            if getattr(self, "measurements_", None) is not None:
                out[f"class{k}.{MEASUREMENTS}"] = measurement_tensor(self._measurements(k))
        return out

    def _measurements(self, k: int) -> list[Measurement]:
        stored = getattr(self, "measurements_", None)
        return list(stored[k]) if stored is not None else []

    def _measurement_entries(self) -> list[list[dict[str, Any]] | None]:
        if getattr(self, "measurements_", None) is None:
            return [None] * len(self.labels_)
        names = [f.name for f in self.schema_.features]
        return [[m.to_manifest(names) for m in self._measurements(k)]
                for k in range(len(self.labels_))]

    def _restore(self, architecture: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        groups, stored = split_class_tensors(tensors)
        if sorted(groups) != list(range(len(self.labels_))):
            raise ArtifactError(
                f"the file holds tensors for classes {sorted(groups)}, but the manifest lists "
                f"{len(self.labels_)} class model(s)"
            )
        if not isinstance(architecture, dict):
            raise ArtifactError("the architecture must be a JSON object")
        binned = self._check_mode() == "anchored"
        for k, record in enumerate(self.privacy_):
            composed = record.rdp_order is not None
            if binned and not composed and math.isfinite(record.epsilon):
                raise ArtifactError(
                    f"class model #{k}: an anchored generator's privacy record needs its "
                    "Rényi order and the noise of its count and marginals"
                )
            if not binned and composed:
                raise ArtifactError(
                    f"class model #{k}: a paper-mode generator's privacy record has no "
                    "Rényi order or anchor fields"
                )
        if not binned and "prior" in architecture:
            raise ArtifactError("a 'paper' mode generator has no architecture field 'prior'")
        if binned != ("bins" in architecture):
            raise ArtifactError(
                f"a {self.mode!r} mode generator {'needs' if binned else 'has no'} "
                "architecture field 'bins'"
            )
        if binned:
            try:
                self.discretizer_ = Discretizer(self.schema_, architecture["bins"])
            except SchemaError as exc:
                raise ArtifactError(f"architecture 'bins': {exc}") from None
            width = self.discretizer_.n_outputs
            layout = self.discretizer_.layout
        else:
            width, layout = self.encoder_.n_outputs, self.encoder_.layout
        n_outputs = architecture.get("n_outputs")
        if n_outputs != width:
            raise ArtifactError(
                f"the architecture's n_outputs ({n_outputs!r}) does not match the schema's "
                f"encoded width ({width})"
            )
        given = architecture.get("layout")
        if (not isinstance(given, list)
                or [tuple(s) if isinstance(s, list) else s for s in given]
                != [tuple(s) for s in layout]):
            raise ArtifactError("the architecture's layout does not match the schema's")
        self.architecture_ = architecture
        self.decoders_ = []
        for k in range(len(self.labels_)):
            try:
                self.decoders_.append(Decoder(groups[k], architecture))
            except ThreedglError as exc:
                raise ArtifactError(f"class model #{k}: {exc}") from None
        self._restore_measurements(stored)
        names = ["hidden", "latent", "beta", "epochs", "batch_size", "learning_rate"]
        self.settings_ = {name: self._setting(name) for name in names}
        if binned:
            self.settings_["bins"] = list(architecture["bins"])
        else:
            self.settings_["categorical"] = self._setting("categorical")

    def _restore_measurements(self, stored: dict[int, np.ndarray]) -> None:
        entries = [m.get("measurements") for m in self.manifest_["models"]]
        restored = restore_measurements(
            entries, stored, self.privacy_, anchored=self.mode == "anchored",
            names=[f.name for f in self.schema_.features],
            widths=list(self.discretizer_.widths) if self.mode == "anchored" else [])
        if restored is not None:
            self.measurements_ = restored

    def _training_parameters(self) -> dict[str, Any]:
        st = self.settings_
        out: dict[str, Any] = {
            "mode": self.mode,
            "epsilon": "inf" if math.isinf(self.epsilon) else float(self.epsilon),
            "delta": float(self.delta),
            "hidden": [int(h) for h in st["hidden"]],
            "latent": int(st["latent"]),
            "beta": float(st["beta"]),
            "epochs": int(st["epochs"]),
            "batch_size": int(st["batch_size"]),
            "max_grad_norm": float(self.max_grad_norm) if math.isfinite(self.max_grad_norm) else "inf",
            "learning_rate": float(st["learning_rate"]),
            "accountant": self.accountant,
            **({"secure_mode": True} if self.secure_mode else {}),
            "optimizer": "DP-Adam (betas 0.9, 0.999; eps 1e-8), Poisson sampling",
        }
        if self.mode == "paper":
            out["categorical"] = st["categorical"]
        else:
            out["categorical"] = self.categorical or "sample"
            out["count_share"] = float(self.count_share)
            out["marginals_share"] = float(self.marginals_share)
            out["pairs_share"] = float(self.pairs_share)
            out["chosen"] = sorted(set(st) - set(self._overrides()) - {"bins"})
        return out

    @classmethod
    def _params_from_training(cls, training: dict[str, Any]) -> dict[str, Any]:
        params = dict(training)
        params.setdefault("mode", "paper")  # files written before the anchored mode
        for key in ("epsilon", "max_grad_norm"):
            if params.get(key) == "inf":
                params[key] = math.inf
        if "hidden" in params and isinstance(params["hidden"], list):
            params["hidden"] = tuple(params["hidden"])
        return params
