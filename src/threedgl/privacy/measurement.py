"""A DP measurement as data: the noisy counts of one marginal, as released, and their noise.

As in private-pgm, a measurement is a small value object that estimation consumes without
ever seeing a row: which *marginal* was measured (a set of features of one class's table,
each over its public bins or over groups of them), the noisy counts of its cells, and the
standard deviation of the Gaussian noise on every cell. The generator is fitted to them
(:mod:`threedgl.model.matching`), the artifact stores them (one tensor
``class{k}.measurements`` per class model, :func:`read_measurements` reads them back), and
anyone holding the artifact can post-process them again (the pool, the server).

The empty marginal is the class's row count. A measurement's cells are in C order over
its features: cell ``(c_1, …, c_k)`` is index ``ravel_multi_index((c_1, …, c_k), shape)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from threedgl.errors import PrivacyError

__all__ = [
    "MAX_MEASURED_FEATURES",
    "Marginal",
    "Measurement",
    "check_against_record",
    "marginal_counts",
    "read_measurements",
]

#: Marginals of at most this many features are measured (the count, one-way, two-way).
MAX_MEASURED_FEATURES = 2
#: At most this many cells in one measurement (a hostile file cannot ask for more).
MAX_CELLS = 1 << 20


@dataclass(frozen=True)
class Marginal:
    """What is measured: features (indices into the schema's features, increasing) and,
    per feature, the group of each of its bins (``None``: every bin is its own cell)."""

    features: tuple[int, ...]
    groups: tuple[tuple[int, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        if not self.groups:
            object.__setattr__(self, "groups", (None,) * len(self.features))
        if len(self.groups) != len(self.features):
            raise PrivacyError("a marginal needs one grouping (or None) per feature")
        if list(self.features) != sorted(set(self.features)) or any(f < 0 for f in self.features):
            raise PrivacyError(f"a marginal's features must be distinct and increasing, got "
                               f"{list(self.features)}")
        if len(self.features) > MAX_MEASURED_FEATURES:
            raise PrivacyError(f"a marginal has at most {MAX_MEASURED_FEATURES} features")

    def shape(self, widths: Sequence[int]) -> tuple[int, ...]:
        """Cells along each feature, given every feature's bin count ``widths``."""
        out = []
        for f, g in zip(self.features, self.groups, strict=True):
            if g is None:
                out.append(int(widths[f]))
                continue
            if len(g) != widths[f]:
                raise PrivacyError(f"feature #{f} has {widths[f]} bins but a grouping of {len(g)}")
            out.append(max(g) + 1)
        return tuple(out)

    def cells(self, widths: Sequence[int]) -> int:
        return math.prod(self.shape(widths))

    def group_codes(self, codes: np.ndarray) -> np.ndarray:
        """Cell coordinates ``(n, k)`` of rows given as bin codes ``(n, features)``."""
        out = np.zeros((len(codes), len(self.features)), dtype=np.int64)
        for i, (f, g) in enumerate(zip(self.features, self.groups, strict=True)):
            out[:, i] = codes[:, f] if g is None else np.asarray(g, dtype=np.int64)[codes[:, f]]
        return out


def marginal_counts(codes: np.ndarray, marginal: Marginal, widths: Sequence[int]) -> np.ndarray:
    """Exact counts (float64, flat in C order) of one marginal of rows given as bin codes."""
    shape = marginal.shape(widths)
    if not marginal.features:
        return np.array([float(len(codes))])
    flat = np.ravel_multi_index(marginal.group_codes(codes).T, shape)
    return np.bincount(flat, minlength=math.prod(shape)).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Measurement:
    """One released marginal: noisy counts (float32, as released: may be negative) and the
    standard deviation of the Gaussian noise on each cell (0: exact, no privacy)."""

    marginal: Marginal
    noisy: np.ndarray
    noise_std: float

    @property
    def features(self) -> tuple[int, ...]:
        return self.marginal.features

    def to_manifest(self, names: Sequence[str]) -> dict[str, Any]:
        """What the manifest lists (the values themselves travel as a tensor)."""
        return {
            "features": [names[f] for f in self.features],
            "groups": [None if g is None else list(g) for g in self.marginal.groups],
            "noise_std": float(self.noise_std),
        }


def read_measurements(entries: Sequence[Any], values: np.ndarray, names: Sequence[str],
                      widths: Sequence[int]) -> list[Measurement]:
    """A class model's measurements from its manifest entries and the one flat tensor that
    holds their values, concatenated in the listed order (every field checked, and the
    tensor's length against the cells the entries describe)."""
    flat = np.asarray(values)
    if flat.ndim != 1:
        raise PrivacyError(f"the measurements tensor must be flat, got shape {flat.shape}")
    out, start = [], 0
    position = {name: i for i, name in enumerate(names)}
    for n, entry in enumerate(entries):
        try:
            marginal, std = _parse_entry(entry, position, widths)
        except PrivacyError as exc:
            raise PrivacyError(f"measurement #{n}: {exc}") from None
        size = marginal.cells(widths)
        if start + size > len(flat):
            raise PrivacyError(f"the measurements listed need more than the {len(flat)} "
                               "values the tensor holds")
        values = flat[start:start + size]
        if not np.isfinite(values).all():
            raise PrivacyError(f"measurement #{n} needs {size} finite values")
        out.append(Measurement(marginal, values.astype(np.float32), std))
        start += size
    if start != len(flat):
        raise PrivacyError(f"the measurements listed need {start} values but the tensor "
                           f"holds {len(flat)}")
    return out


def _parse_entry(entry: Any, position: Mapping[str, int], widths: Sequence[int]
                 ) -> tuple[Marginal, float]:
    """The marginal and noise of one manifest entry (strictly checked, cells bounded; the
    number of features first, so a hostile list costs nothing)."""
    if not isinstance(entry, Mapping) or set(entry) != {"features", "groups", "noise_std"}:
        raise PrivacyError("a measurement entry has exactly the keys features, groups, "
                           "noise_std")
    feats, groups, std = entry["features"], entry["groups"], entry["noise_std"]
    if (not isinstance(feats, list) or len(feats) > MAX_MEASURED_FEATURES
            or not all(isinstance(f, str) for f in feats)):
        raise PrivacyError(f"a measurement's 'features' must be a list of at most "
                           f"{MAX_MEASURED_FEATURES} feature names")
    unknown = [f for f in feats if f not in position]
    if unknown:
        raise PrivacyError(f"a measurement names unknown feature(s) "
                           f"{[f[:40] for f in unknown]!r}")
    if not isinstance(groups, list) or len(groups) != len(feats):
        raise PrivacyError("a measurement needs one 'groups' entry per feature")
    parsed: list[tuple[int, ...] | None] = []
    for g in groups:
        if g is None:
            parsed.append(None)
        elif (isinstance(g, list) and g and len(g) <= MAX_CELLS
              and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(g)
                      for v in g)):
            parsed.append(tuple(g))
        else:
            raise PrivacyError("a measurement's groups must be null or a list of group "
                               "indices (one per bin)")
    if isinstance(std, bool) or not isinstance(std, int | float) or not (0 <= std <= 1e12):
        raise PrivacyError(f"a measurement's noise_std must be a number in [0, 1e12], got "
                           f"{str(std)[:40]!r}")
    index = [position[f] for f in feats]
    order = sorted(range(len(index)), key=index.__getitem__)
    marginal = Marginal(tuple(index[i] for i in order), tuple(parsed[i] for i in order))
    if [index[i] for i in order] != index:
        raise PrivacyError("a measurement's features must be listed in schema order")
    if marginal.cells(widths) > MAX_CELLS:
        raise PrivacyError(f"a measurement of {marginal.cells(widths)} cells is above the "
                           f"limit of {MAX_CELLS}")
    return marginal, float(std)


def check_against_record(measurements: Sequence[Measurement], record: Any) -> None:
    """The measurements' noise must be what the class model's privacy record accounts for.

    Each number of features is one Gaussian release (k = 0: the row count, sensitivity 1;
    k = 1: the one-way marginals; k = 2: the two-way marginals, sensitivity √m for m
    marginals), so every measurement of a release has the same noise, the release's noise
    multiplier (recorded) times √m. A record without noise (ε = ∞) goes with exact values.
    """
    releases: dict[int, list[Measurement]] = {}
    for m in measurements:
        releases.setdefault(len(m.features), []).append(m)
    if len(releases.get(0, [])) > 1:
        raise PrivacyError("a class model has at most one row-count measurement")
    multipliers = {0: record.count_noise_multiplier, 1: record.marginals_noise_multiplier,
                   2: record.pairs_noise_multiplier}
    exact = math.isinf(record.epsilon)
    for k, ms in releases.items():
        sigma = 0.0 if exact else multipliers.get(k)
        if sigma is None:
            raise PrivacyError(f"the privacy record does not account for the {k}-way "
                               "measurements the file holds")
        expected = sigma * math.sqrt(len(ms)) if k else sigma
        for m in ms:
            if not math.isclose(m.noise_std, expected, rel_tol=1e-6, abs_tol=1e-12):
                raise PrivacyError(
                    f"a {k}-way measurement has noise_std {m.noise_std!r}, but the privacy "
                    f"record's release of {len(ms)} such marginal(s) has {expected!r}")
