"""The DP independent-marginals baseline: what a generator scores with no correlations.

Per class, one histogram per feature over the public bins of :mod:`threedgl.schema.bins`
(numeric: equal-width bins over the schema's bounds, in log steps for a column declared
``scale="log"``, or one bin per value for integer columns with few values; categorical:
one bin per category), released with the Gaussian mechanism calibrated to the same (ε, δ) as
DDP-βVAE (:mod:`threedgl.privacy.gaussian`), then clipped at zero and normalised.
Sampling draws every column independently within the class. SPEC §4 explains why this
baseline is in every table: on the paper's datasets it already scores about as well as
real data with logistic regression and fools a logistic-regression discriminator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from threedgl.errors import ArtifactError, SchemaError, check_int
from threedgl.model.base import BaseGenerator, _rng
from threedgl.model.progress import PlannedCheck, ProgressCallback
from threedgl.privacy.gaussian import measure_histograms
from threedgl.privacy.record import PrivacyRecord
from threedgl.privacy.secure import SecureRandom
from threedgl.schema import Schema, TableEncoder
from threedgl.schema.bins import Discretizer
from threedgl.schema.rows import EncodedRows


class DPMarginals(BaseGenerator):
    """Per-class independent marginals with (ε, δ)-DP (a baseline with the same interface).

    Parameters
    ----------
    epsilon, delta, accountant:
        As for :class:`~threedgl.DDPBetaVAE`.
    bins:
        Number of equal-width bins for numeric columns.
    random_state:
        Seed of the noise (never written to the artifact); ``None`` draws fresh entropy.
    """

    generator_kind = "dp-marginals"

    def __init__(
        self,
        epsilon: float = 1.9,
        delta: float = 1e-4,
        bins: int = 20,
        accountant: str = "rdp",
        random_state: int | None = None,
        secure_mode: bool = False,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.bins = bins
        self.secure_mode = secure_mode
        self.accountant = accountant
        self.random_state = random_state

    def _discretizer(self, schema: Schema) -> Discretizer:
        return Discretizer(schema, check_int("bins", self.bins, low=1, owner="DPMarginals"))

    def _fit_classes(
        self, groups: list[EncodedRows], encoder: TableEncoder, progress: ProgressCallback | None,
        planned: PlannedCheck,
    ) -> tuple[list[PrivacyRecord | None], list[float]]:
        disc = self._discretizer(encoder.schema)
        rng: np.random.Generator | SecureRandom = (
            SecureRandom() if self.secure_mode else _rng(self.random_state))
        self.discretizer_ = disc
        self.histograms_: list[list[np.ndarray]] = []
        records: list[PrivacyRecord | None] = []
        released = [math.nan] * len(groups)
        for k, rows in enumerate(groups):
            if not len(rows):
                records.append(None)
                continue
            counts = disc.histograms(disc.compact_codes(rows))
            noisy, record = measure_histograms(
                counts, epsilon=self.epsilon, delta=self.delta, accountant=self.accountant, rng=rng
            )
            clipped = [np.clip(c, 0.0, None) for c in noisy]
            released[k] = float(max(0.0, np.mean([c.sum() for c in noisy])))
            self.histograms_.append([_normalise(c) for c in clipped])
            records.append(record)
            if progress is not None:
                progress(k, 1, record.epsilon)
        kept = [k for k, r in enumerate(records) if r is not None]
        planned(kept, [r for r in records if r is not None])  # may refuse: nothing released
        return records, released

    def _released_rows(self) -> list[float | int]:
        return [round(r, 3) for r in self.class_rows_]

    def _sample_class(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        disc = self.discretizer_
        codes = np.zeros((n, len(disc.widths)), dtype=np.int64)
        for j, hist in enumerate(self.histograms_[k]):
            cdf = np.cumsum(hist)
            codes[:, j] = np.minimum(
                np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(hist) - 1
            )
        return disc.encoded(codes, rng)

    def _architecture(self) -> dict[str, Any]:
        return {
            "bins": list(self.discretizer_.widths),
            "layout": [list(x) for x in self.encoder_.layout],
        }

    def _tensors(self) -> dict[str, np.ndarray]:
        return {
            f"class{k}.feature{j}": h.astype(np.float32)
            for k, hists in enumerate(self.histograms_)
            for j, h in enumerate(hists)
        }

    def _restore(self, architecture: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        bins = architecture.get("bins") if isinstance(architecture, dict) else None
        n_features = len(self.encoder_.spans)
        if not isinstance(bins, list) or len(bins) != n_features:
            raise ArtifactError(f"architecture 'bins' must list {n_features} bin counts")
        try:
            self.discretizer_ = Discretizer(self.schema_, bins)
        except SchemaError as exc:
            raise ArtifactError(f"architecture 'bins': {exc}") from None
        expected = {
            f"class{k}.feature{j}": (int(b),)
            for k in range(len(self.labels_))
            for j, b in enumerate(bins)
        }
        if set(tensors) != set(expected):
            extra = sorted(set(tensors) - set(expected))[:3]
            missing = sorted(set(expected) - set(tensors))[:3]
            raise ArtifactError(f"unexpected tensors {extra} / missing tensors {missing}")
        self.histograms_ = []
        for k in range(len(self.labels_)):
            hists = []
            for j in range(n_features):
                t = np.asarray(tensors[f"class{k}.feature{j}"], dtype=np.float64)
                if tuple(t.shape) != expected[f"class{k}.feature{j}"] or (t < 0).any():
                    raise ArtifactError(f"tensor 'class{k}.feature{j}' has a bad shape or sign")
                hists.append(_normalise(t))
            self.histograms_.append(hists)

    def _training_parameters(self) -> dict[str, Any]:
        return {
            "epsilon": "inf" if math.isinf(self.epsilon) else float(self.epsilon),
            "delta": float(self.delta),
            "bins": int(self.bins),
            "accountant": self.accountant,
            **({"secure_mode": True} if self.secure_mode else {}),
            "mechanism": "Gaussian mechanism on per-feature histograms, L2 sensitivity sqrt(F)",
        }

    @classmethod
    def _params_from_training(cls, training: dict[str, Any]) -> dict[str, Any]:
        params = dict(training)
        if params.get("epsilon") == "inf":
            params["epsilon"] = math.inf
        return params


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total <= 0 or not np.isfinite(total):
        return np.full(len(counts), 1.0 / len(counts))
    return counts / total
