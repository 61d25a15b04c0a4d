"""Federation-level DP statistics: the clients' released measurements, combined.

Every default-mode DDP-βVAE stores the DP measurements it was fitted to (issue 18): per
class, a noisy row count and noisy one-way histograms over its own public bins (and
two-way marginals over per-client groupings of bins, which do not line up across clients
and are left out here). They are released under each client's privacy statement, so
anything computed from them is post-processing: no budget is spent.

:func:`federation_marginals` sums them over the pool:

* the class counts add, and so do their noise variances;
* a one-way histogram is first carried onto a common grid per feature (categories, or one
  bin per integer value, line up already; a numeric column binned differently by
  different clients is carried onto the finest of their grids, each bin's count spread
  over the common bins it overlaps in proportion to the overlap, which assumes a uniform
  density within a bin), then added; a cell's noise variance is the sum of the variances
  spread onto it (σ² × fraction²).

:func:`calibrated_sample` draws ``oversample × n`` candidate rows from the pool and resamples
``n`` of them with weights raked (iterative proportional fitting) so that each class's
weighted one-way distributions match the federation's histograms, clipped at 0 and
normalised. Whether this helps is measured in ``benchmarks/federation_calibration.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.schema.bins import Discretizer

if TYPE_CHECKING:
    from threedgl.pool.pool import GeneratorsPool

__all__ = ["FederationMarginals", "calibrated_sample", "federation_marginals"]


@dataclass(frozen=True)
class FederationMarginals:
    """Per class label: the summed noisy count and its noise variance, and per feature the
    summed noisy histogram on the common grid (``discretizer``) with its cells' variances.
    ``members[label]`` is how many generators contributed to the class."""

    discretizer: Discretizer
    counts: dict[Any, float]
    count_variances: dict[Any, float]
    histograms: dict[Any, list[np.ndarray]]
    variances: dict[Any, list[np.ndarray]]
    members: dict[Any, int]


def _overlap(width_from: int, width_to: int) -> np.ndarray:
    """``M[i, j]``: the fraction of bin i of ``width_from`` equal bins of [0, 1] that lies in
    bin j of ``width_to`` equal bins (rows sum to 1). Every client cuts a numeric column
    into equal bins of the same scale (linear, or log per the schema), so the bins of two
    clients line up on it."""
    a = np.arange(width_from + 1) / width_from
    b = np.arange(width_to + 1) / width_to
    lo = np.maximum(a[:-1, None], b[None, :-1])
    hi = np.minimum(a[1:, None], b[None, 1:])
    return np.clip(hi - lo, 0.0, None) * width_from


def _common_grid(discretizers: list[Discretizer]) -> Discretizer:
    """The finest grid of every feature among the generators' (same kinds: the schema)."""
    schema = discretizers[0].schema
    widths = [max(d.widths[f] for d in discretizers) for f in range(len(schema.features))]
    return Discretizer(schema, widths)


def federation_marginals(pool: GeneratorsPool) -> FederationMarginals:
    """Sum the stored DP measurements of the pool's generators (see the module docstring).

    Generators that store no measurements (paper mode, DP marginals) contribute nothing;
    a pool where none does raises :class:`ThreedglError`.
    """
    members = [g for g in pool.generators if getattr(g, "measurements_", None) is not None]
    if not members:
        raise ThreedglError("no generator of the pool stores DP measurements (only the "
                            "default mode of DDP-βVAE does): nothing to combine")
    grid = _common_grid([g.discretizer_ for g in members])
    n_features = len(grid.widths)
    counts: dict[Any, float] = {}
    count_var: dict[Any, float] = {}
    hists: dict[Any, list[np.ndarray]] = {}
    variances: dict[Any, list[np.ndarray]] = {}
    contributed: dict[Any, int] = {}
    for g in members:
        disc = g.discretizer_
        maps = [np.eye(grid.widths[f]) if disc.widths[f] == grid.widths[f]
                else _overlap(disc.widths[f], grid.widths[f]) for f in range(n_features)]
        for label, measured in zip(g.labels_, g.measurements_, strict=True):
            if label not in hists:
                counts[label], count_var[label], contributed[label] = 0.0, 0.0, 0
                hists[label] = [np.zeros(w) for w in grid.widths]
                variances[label] = [np.zeros(w) for w in grid.widths]
            contributed[label] += 1
            for m in measured:
                features = m.marginal.features
                if not features:
                    counts[label] += float(m.noisy[0])
                    count_var[label] += m.noise_std ** 2
                elif len(features) == 1 and m.marginal.groups[0] is None:
                    f = features[0]
                    hists[label][f] += np.asarray(m.noisy, dtype=np.float64) @ maps[f]
                    variances[label][f] += m.noise_std ** 2 * (maps[f] ** 2).sum(axis=0)
    return FederationMarginals(grid, counts, count_var, hists, variances, contributed)


def _rake(codes: np.ndarray, targets: list[np.ndarray | None], iterations: int,
          bound: float) -> np.ndarray:
    """Weights of ``codes`` (rows × features) whose weighted one-way distributions approach
    ``targets`` (None: that feature is left free); each weight within [1/bound, bound] × the
    mean."""
    w = np.ones(len(codes))
    for _ in range(iterations):
        for f, target in enumerate(targets):
            if target is None:
                continue
            have = np.bincount(codes[:, f], weights=w, minlength=len(target)) / w.sum()
            factor = np.where(have > 0, target / np.maximum(have, 1e-300), 1.0)
            w = w * factor[codes[:, f]]
            w = np.clip(w / w.mean(), 1.0 / bound, bound)
    return w / w.sum()


def calibrated_sample(
    pool: GeneratorsPool,
    n: int,
    *,
    balanced: bool = True,
    random_state: int | np.random.Generator | None = None,
    oversample: int = 4,
    iterations: int = 10,
    bound: float = 20.0,
) -> pd.DataFrame:
    """``n`` rows of ``pool`` resampled to the federation's one-way histograms, per class.

    The class mix is ``balanced`` (n / K rows each) or the federation's summed noisy counts.
    """
    from threedgl.apportion import class_counts
    from threedgl.model.base import random_generator, shuffle_rows

    rng = random_generator(random_state)
    stats = federation_marginals(pool)
    schema = pool.schema
    candidates = pool.sample(int(n) * int(oversample), balanced=balanced, random_state=rng)
    labels = list(pool.labels)
    unmeasured = [lab for lab in labels if lab not in stats.histograms]
    if unmeasured:
        import warnings

        warnings.warn(f"class label(s) {unmeasured!r} come only from generators that store no "
                      "DP measurements: their rows are drawn from the pool unraked",
                      UserWarning, stacklevel=2)
    if balanced:
        sizes = class_counts(int(n), [1.0] * len(labels))
    else:
        released = pool.released_rows()  # rows, for the classes nobody measured
        sizes = class_counts(int(n), [
            max(stats.counts[lab], 0.0) if lab in stats.counts
            else float(sum(max(r.get(lab, 0.0), 0.0) for r in released)) for lab in labels])
    grid = stats.discretizer
    frames = []
    for label, size in zip(labels, sizes, strict=True):
        rows = candidates if schema.target is None else candidates[
            candidates[schema.target].astype(str) == str(label)]
        if not len(rows) or not size:
            continue
        if label not in stats.histograms:  # unmeasured: the pool's rows as they come
            frames.append(rows.iloc[rng.choice(len(rows), size=size, replace=True)])
            continue
        codes = grid.codes(grid.encoder.encode_valid(rows))
        targets: list[np.ndarray | None] = []
        for hist in stats.histograms[label]:
            clipped = np.clip(hist, 0.0, None)
            targets.append(clipped / clipped.sum() if clipped.sum() > 0 else None)
        weights = _rake(codes, targets, iterations, bound)
        pick = rng.choice(len(rows), size=size, replace=True, p=weights)
        frames.append(rows.iloc[pick])
    if not frames:
        return candidates.iloc[:0]
    return shuffle_rows(pd.concat(frames, ignore_index=True), rng)

