"""Every feature as a distribution over public bins, built from the schema alone.

Binned generators (DDP-βVAE's default mode and the DP marginals baseline) model each
feature as a categorical variable:

* a categorical column: one bin per category;
* an integer column with at most ``levels`` values in its bounds (by default
  max(``bins``, 20)): one bin per value (``"levels"``), so a value is reproduced exactly;
* any other numeric column: ``bins`` equal steps of its public range, in ``x`` or, when
  the schema declares ``scale="log"``, in ``log1p(x - minimum)``. A value drawn for a bin
  is uniform within the bin (on the column's scale), or, given the bins' probabilities,
  follows a linear density whose slope comes from the neighbouring bins
  (``_linear_position``); an integer column takes the bin's integer at the drawn position's
  rank (uniform positions: every integer of the bin alike).

Nothing here looks at data to choose an edge: the bins are a function of the schema and
the bin count, so encoding data with them leaks nothing. :class:`Discretizer` works on
the matrix of :class:`~threedgl.schema.TableEncoder` (numeric columns min-max scaled to
[0, 1], categorical one-hot), so a generator that samples bin codes decodes through the
same encoder as every other generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from threedgl.errors import SchemaError, check_int
from threedgl.schema.encoder import TableEncoder
from threedgl.schema.rows import BLOCK_ROWS, EncodedRows
from threedgl.schema.schema import CategoricalColumn, NumericColumn, Schema

__all__ = ["MAX_BINS", "Discretizer", "FeatureBins"]

#: Upper bound of bins per numeric column (a hostile manifest cannot ask for more).
MAX_BINS = 1000
#: An integer column with at most this many values (or at most ``bins``) gets one bin per
#: value: counts such as Titanic's ``parch`` are skewed within any wider bin.
LEVELS = 20


@dataclass(frozen=True)
class FeatureBins:
    """How one feature is binned: ``width`` bins of the given ``kind``."""

    name: str
    kind: Literal["categorical", "levels", "linear", "log"]
    width: int
    start: int  # first column of the feature in the TableEncoder matrix


class Discretizer:
    """Map a :class:`TableEncoder` matrix to per-feature bin codes and back.

    ``bins`` is the number of bins of a numeric column (an int), or one width per feature
    (what an artifact records); categorical widths are always the category counts. With an
    int, ``levels`` is the most integer values a column may have to get one bin per value
    (default max(``bins``, :data:`LEVELS`)); with widths, a width equal to the column's
    number of integer values means one bin per value.
    """

    def __init__(self, schema: Schema, bins: int | Sequence[int], levels: int | None = None
                 ) -> None:
        self.encoder = TableEncoder(schema)
        spans = self.encoder.spans
        features = schema.features
        widths: list[int | None]
        if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
            widths = [None] * len(features)
            default = check_int("bins", bins, low=1, high=MAX_BINS, error=SchemaError)
        elif isinstance(bins, bool) or not isinstance(bins, Sequence):
            raise SchemaError(f"bins must be an int or a list of ints, got {bins!r}")
        else:
            widths = list(bins)
            default = 0
            if any(w is None for w in widths):
                raise SchemaError("every bin count must be an int, got null")
            if len(widths) != len(features):
                raise SchemaError(
                    f"expected {len(features)} bin counts (one per feature), got {len(widths)}"
                )
        out: list[FeatureBins] = []
        for span, col, w in zip(spans, features, widths, strict=True):
            if w is not None:
                w = check_int("bins", w, low=1, high=MAX_BINS, owner=f"column '{col.name}'",
                              error=SchemaError)
            if isinstance(col, CategoricalColumn):
                if w is not None and w != span.width:
                    raise SchemaError(f"column '{col.name}': {w} bins but "
                                      f"{span.width} categories")
                out.append(FeatureBins(col.name, "categorical", span.width, span.start))
                continue
            assert isinstance(col, NumericColumn)
            values = _levels(col)
            width = default if w is None else int(w)
            most = max(width, LEVELS) if levels is None else max(width, int(levels))
            if values is not None and (most >= values if w is None else width == values):
                out.append(FeatureBins(col.name, "levels", values, span.start))
            else:
                out.append(FeatureBins(col.name, col.scale, width, span.start))
        self.features: tuple[FeatureBins, ...] = tuple(out)
        self.schema = schema
        # Integer columns cut into bins: the first integer of every bin, so a value drawn
        # for a bin is one of the integers that bin holds (not a real rounded out of it).
        self._first_integer: dict[int, np.ndarray] = {
            j: _first_integers(col, f.kind, f.width)
            for j, (f, col) in enumerate(zip(out, features, strict=True))
            if f.kind in ("linear", "log") and isinstance(col, NumericColumn) and col.integer
        }
        self.widths: tuple[int, ...] = tuple(f.width for f in out)
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)]).astype(np.int64)
        self.n_outputs = int(self.offsets[-1])

    @property
    def layout(self) -> list[tuple[str, int, int]]:
        """Every feature as a categorical block (what the model's output heads need)."""
        return [("categorical", int(a), int(b))
                for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    # -- data → codes ---------------------------------------------------------------------
    def codes(self, encoded: np.ndarray) -> np.ndarray:
        """Bin codes ``(n, F)`` of the rows of a TableEncoder matrix."""
        x = np.asarray(encoded)
        out = np.zeros((len(x), len(self.features)), dtype=np.int64)
        for j, (f, col) in enumerate(zip(self.features, self.schema.features, strict=True)):
            if f.kind == "categorical":
                out[:, j] = np.argmax(x[:, f.start : f.start + f.width], axis=1)
                continue
            assert isinstance(col, NumericColumn)
            u = np.clip(x[:, f.start].astype(np.float64), 0.0, 1.0)
            if f.kind == "levels":
                code = np.rint(u * (col.maximum - col.minimum)) if f.width > 1 else 0 * u
                out[:, j] = np.clip(code, 0, f.width - 1).astype(np.int64)
            else:
                out[:, j] = _bin_of(col, f.kind, f.width, u)
        return out

    def compact_codes(self, encoded: np.ndarray | EncodedRows, block: int = BLOCK_ROWS
                      ) -> np.ndarray:
        """:meth:`codes` computed ``block`` rows at a time (a matrix, or
        :class:`~threedgl.schema.rows.EncodedRows` expanded block by block), in the
        smallest integer type that holds every bin (int16 unless a feature has more)."""
        dtype = np.int16 if max(self.widths, default=1) <= np.iinfo(np.int16).max else np.int32
        n = len(encoded)
        out = np.zeros((n, len(self.features)), dtype=dtype)
        for start in range(0, n, block):
            rows = (encoded.matrix(slice(start, start + block)) if isinstance(encoded, EncodedRows)
                    else encoded[start : start + block])
            out[start : start + block] = self.codes(rows)
        return out

    def one_hot(self, codes: np.ndarray) -> np.ndarray:
        """The codes as concatenated one-hot blocks, float32 ``(n, n_outputs)``."""
        out = np.zeros((len(codes), self.n_outputs), dtype=np.float32)
        rows = np.arange(len(codes))
        for j in range(len(self.features)):
            out[rows, self.offsets[j] + codes[:, j]] = 1.0
        return out

    def histograms(self, codes: np.ndarray) -> list[np.ndarray]:
        """One count vector per feature (each row counted once per feature)."""
        return [np.bincount(codes[:, j], minlength=w).astype(np.float64)
                for j, w in enumerate(self.widths)]

    # -- codes → data ---------------------------------------------------------------------
    def encoded(self, codes: np.ndarray, rng: np.random.Generator,
                shapes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """A TableEncoder matrix for bin codes: values drawn within their bins.

        Uniformly within the bin, or, where ``shapes[j]`` gives the probabilities of feature
        j's bins (a numeric column cut into bins), from a density linear across the bin
        whose slope is that of the neighbouring bins, so a bin on a
        slope puts more of its values towards its denser neighbour (the bin's own mass is
        unchanged). An integer column takes the bin's integer at the drawn position's rank.
        """
        n = len(codes)
        out = np.zeros((n, self.encoder.n_outputs), dtype=np.float32)
        rows = np.arange(n)
        for j, (f, col) in enumerate(zip(self.features, self.schema.features, strict=True)):
            c = codes[:, j]
            if f.kind == "categorical":
                out[rows, f.start + c] = 1.0
                continue
            assert isinstance(col, NumericColumn)
            span = col.maximum - col.minimum
            if f.kind == "levels":
                out[:, f.start] = c / span if span > 0 else 0.0
            elif j in self._first_integer:
                first = self._first_integer[j]
                lo = first[c]
                count = first[c + 1] - lo  # integers in the bin (0: none, take its first)
                shape = None if shapes is None else shapes[j]
                # a position in the bin (uniform, or on the linear shape), then the integer
                # at that rank: uniform positions give every integer of the bin alike
                t = rng.random(n) if shape is None else _linear_position(shape, c, rng)
                value = lo + np.minimum(np.floor(t * np.maximum(count, 1)),
                                        np.maximum(count, 1) - 1)
                out[:, f.start] = (value - col.minimum) / span if span > 0 else 0.0
            else:
                shape = None if shapes is None else shapes[j]
                t = rng.random(n) if shape is None else _linear_position(shape, c, rng)
                # off the bin's edges by EDGE of its width: the float32 matrix (and a
                # decode / encode round trip) must not move a value into the next bin
                t = np.clip(t, EDGE, 1.0 - EDGE)
                out[:, f.start] = _from_unit(col, f.kind, (c + t) / f.width)
        return out

    def sample_codes(self, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw one bin per feature from per-block probabilities ``(n, n_outputs)``."""
        p = np.asarray(probabilities, dtype=np.float64)
        n = len(p)
        out = np.zeros((n, len(self.features)), dtype=np.int64)
        u = rng.random((n, len(self.features)))
        for j, w in enumerate(self.widths):
            block = p[:, self.offsets[j] : self.offsets[j] + w]
            cdf = np.cumsum(block, axis=1)
            out[:, j] = np.minimum((cdf < u[:, j : j + 1] * cdf[:, -1:]).sum(axis=1), w - 1)
        return out


#: A value drawn in a bin of a continuous column stays this share of the bin's width away
#: from its edges (float32 spacing near 1 is 6e-8; a bin of 1/1000 of the range times EDGE
#: is 1e-7).
EDGE = 1e-4

def _linear_position(probabilities: np.ndarray, codes: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray:
    """Positions in [0, 1) within bins ``codes`` from a density linear across the bin: its
    slope is the central difference of the neighbours' probabilities (one-sided at the ends
    of the range), limited so the density stays ≥ 0; the bin's own mass is unchanged."""
    d = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, None)
    if len(d) < 2:
        return rng.random(len(codes))
    slope = np.gradient(d)  # central differences, one-sided at both ends
    slope = np.clip(slope, -2 * d, 2 * d)[codes]
    mid = d[codes]
    a, b = mid - slope / 2, mid + slope / 2  # density at the bin's two edges (≥ 0)
    u = rng.random(len(codes))
    root = np.sqrt(np.maximum(a * a + (b - a) * u * (a + b), 0.0))
    denom = a + root
    t = np.where(denom > 0, u * (a + b) / np.where(denom > 0, denom, 1.0), u)
    return np.clip(t, 0.0, np.nextafter(1.0, 0.0))


def _levels(col: NumericColumn) -> int | None:
    """Number of integer values in an integer column's bounds (None if not integer)."""
    if not col.integer:
        return None
    lo, hi = math.ceil(col.minimum), math.floor(col.maximum)
    if lo != col.minimum or hi != col.maximum:
        return None  # integer column with fractional bounds: bin it
    return int(hi - lo) + 1 if hi - lo < MAX_BINS else None


def _bin_of(col: NumericColumn, kind: str, width: int, u: np.ndarray) -> np.ndarray:
    """Bin codes of min-max scaled values ``u`` (as the TableEncoder stores them)."""
    code = np.floor(_to_unit(col, kind, np.clip(u, 0.0, 1.0)) * width)
    return np.clip(code, 0, width - 1).astype(np.int64)


def _first_integers(col: NumericColumn, kind: str, width: int) -> np.ndarray:
    """``first[b]``: the smallest integer of the bounds in bin b or above (``width + 1``
    entries, the last one past the maximum), found with the encoder's own arithmetic."""
    lo, hi = math.ceil(col.minimum), math.floor(col.maximum)
    span = col.maximum - col.minimum

    def code(x: np.ndarray) -> np.ndarray:
        u = np.clip((x - col.minimum) / span, 0.0, 1.0).astype(np.float32) if span > 0 else 0 * x
        return _bin_of(col, kind, width, np.asarray(u, dtype=np.float64))

    edges = col.minimum + _from_unit(col, kind, np.arange(width + 1) / width) * span
    first = np.clip(np.ceil(edges), lo, hi + 1).astype(np.float64)
    first[0], first[-1] = lo, hi + 1
    for _ in range(64):  # float rounding at the edges: step to the encoder's own answer
        inner = first[1:-1]
        b = np.arange(1, width)
        up = (inner <= hi) & (code(np.minimum(inner, hi)) < b)
        down = (inner - 1 >= lo) & (code(np.maximum(inner - 1, lo)) >= b)
        if not (up.any() or down.any()):
            break
        first[1:-1] = inner + up - down
    return np.maximum.accumulate(first)


def _to_unit(col: NumericColumn, kind: str, u: np.ndarray) -> np.ndarray:
    """Position in [0, 1] on the column's scale of min-max scaled values ``u``."""
    if kind != "log":
        return u
    span = col.maximum - col.minimum
    if span <= 0:
        return u
    return np.log1p(u * span) / math.log1p(span)


def _from_unit(col: NumericColumn, kind: str, t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_to_unit`: min-max scaled values of positions on the scale."""
    t = np.clip(t, 0.0, 1.0)
    if kind != "log":
        return t
    span = col.maximum - col.minimum
    if span <= 0:
        return t
    return np.expm1(t * math.log1p(span)) / span
