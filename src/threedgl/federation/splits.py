"""Client folds: the train table split into K disjoint private datasets (paper §IV-B).

Three splits, all reproducible for a ``random_state`` and all returning ``k`` disjoint
frames that together hold every row of the input exactly once (each fold keeps the
input's index, in the input's row order):

* :func:`stratified_folds` — the paper's: like scikit-learn's ``StratifiedKFold`` test
  folds. The rows of each class are shuffled and dealt round-robin over the clients (the
  classes one after the other, the dealing continuing where the previous class stopped),
  so every fold holds ``floor`` or ``ceil`` of ``n_class / k`` rows of each class and the
  fold sizes differ by at most one row.
* :func:`dirichlet_folds` — label skew (non-IID): for each class, client shares
  ``p ~ Dir(alpha · 1_k)`` and the class's rows are split by largest remainder. Small
  ``alpha`` gives clients dominated by one class; large ``alpha`` tends to stratified.
* :func:`quantity_folds` — quantity skew: fold sizes follow ``p ~ Dir(alpha · 1_k)`` and
  the classes are spread evenly within (the rows are ordered so that every stretch has the
  table's class proportions, then cut into consecutive stretches of those sizes).

**Repair (both Dirichlet splits).** A Dirichlet draw can leave a client with almost no
rows. Every client gets at least ``min_rows`` rows (default 10, lowered to ``n // k`` when
the table is too small): while some client has fewer, one random row of the currently
largest client moves to the smallest one. For :func:`dirichlet_folds` the moved row is
taken, when possible, from a class the receiving client lacks (so repaired clients are
not single-class by accident). The repair moves at most ``k · min_rows`` rows, so the
skew is kept for any reasonable table size.

:func:`parse_split` reads ``"stratified"``, ``"dirichlet:ALPHA"`` or ``"quantity:ALPHA"``;
:func:`make_folds` dispatches on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError, check_int

DEFAULT_MIN_ROWS = 10
SPLIT_KINDS: tuple[str, ...] = ("stratified", "dirichlet", "quantity")


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split: ``kind`` and, for the Dirichlet splits, ``alpha``."""

    kind: str
    alpha: float | None = None

    def __str__(self) -> str:
        return self.kind if self.alpha is None else f"{self.kind}:{self.alpha:g}"


def parse_split(text: str | SplitSpec) -> SplitSpec:
    """``"stratified"``, ``"dirichlet:ALPHA"`` or ``"quantity:ALPHA"`` (ALPHA > 0).

    >>> parse_split("dirichlet:0.5")
    SplitSpec(kind='dirichlet', alpha=0.5)
    """
    if isinstance(text, SplitSpec):
        return text
    usage = "use 'stratified', 'dirichlet:ALPHA' or 'quantity:ALPHA' with ALPHA > 0"
    if not isinstance(text, str):
        raise ThreedglError(f"invalid split {text!r}: {usage}")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "stratified" and not sep:
        return SplitSpec("stratified")
    if kind in ("dirichlet", "quantity") and sep:
        try:
            alpha = float(rest)
        except ValueError:
            raise ThreedglError(f"invalid split {text!r}: ALPHA '{rest}' is not a number; {usage}") from None
        if not (math.isfinite(alpha) and alpha > 0):
            raise ThreedglError(f"invalid split {text!r}: ALPHA must be a positive number; {usage}")
        return SplitSpec(kind, alpha)
    raise ThreedglError(f"invalid split {text!r}: {usage}")


def make_folds(
    df: pd.DataFrame,
    target: str,
    k: int,
    split: str | SplitSpec = "stratified",
    random_state: int | None = 0,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[pd.DataFrame]:
    """Split ``df`` into ``k`` client folds with the split named by ``split``."""
    spec = parse_split(split)
    if spec.kind == "stratified":
        return stratified_folds(df, target, k, random_state)
    assert spec.alpha is not None
    if spec.kind == "dirichlet":
        return dirichlet_folds(df, target, k, spec.alpha, random_state, min_rows=min_rows)
    return quantity_folds(df, k, spec.alpha, random_state, target=target, min_rows=min_rows)


# -- the three splits ------------------------------------------------------------------------
def stratified_folds(
    df: pd.DataFrame, target: str, k: int, random_state: int | None = 0
) -> list[pd.DataFrame]:
    """``k`` stratified disjoint folds (each class's count within one row of ``n_c / k``)."""
    y = _check(df, target, k)
    rng = np.random.default_rng(random_state)
    codes, _ = _codes(y)
    order = np.concatenate([rng.permutation(np.flatnonzero(codes == c)) for c in np.unique(codes)])
    assign = np.empty(len(df), dtype=np.int64)
    assign[order] = np.arange(len(order)) % k
    return _frames(df, assign, k)


def dirichlet_folds(
    df: pd.DataFrame,
    target: str,
    k: int,
    alpha: float,
    random_state: int | None = 0,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[pd.DataFrame]:
    """Label-skewed folds: per class, client shares ``~ Dir(alpha)`` (see the module doc)."""
    y = _check(df, target, k)
    _check_alpha(alpha)
    rng = np.random.default_rng(random_state)
    codes, n_classes = _codes(y)
    assign = np.empty(len(df), dtype=np.int64)
    for c in range(n_classes):
        rows = rng.permutation(np.flatnonzero(codes == c))
        counts = _largest_remainder(len(rows), rng.dirichlet(np.full(k, float(alpha))))
        assign[rows] = np.repeat(np.arange(k), counts)
    _repair(assign, k, _min_rows(len(df), k, min_rows), rng, codes)
    return _frames(df, assign, k)


def quantity_folds(
    df: pd.DataFrame,
    k: int,
    alpha: float,
    random_state: int | None = 0,
    *,
    target: str | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> list[pd.DataFrame]:
    """Folds of unequal sizes ``~ Dir(alpha)``, classes of ``target`` spread evenly within."""
    _check_alpha(alpha)
    if target is None:
        _check_k(len(df), k)
        codes = np.zeros(len(df), dtype=np.int64)
    else:
        codes, _ = _codes(_check(df, target, k))
    rng = np.random.default_rng(random_state)
    # Interleave the classes: row i of a class of n_c rows gets key (i + 0.5) / n_c.
    keys = np.empty(len(df), dtype=np.float64)
    for c in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == c))
        keys[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
    order = np.lexsort((rng.random(len(df)), keys))
    floor = _min_rows(len(df), k, min_rows)
    shares = rng.dirichlet(np.full(k, float(alpha)))
    sizes = np.asarray(_largest_remainder(len(df) - floor * k, shares)) + floor
    assign = np.empty(len(df), dtype=np.int64)
    assign[order] = np.repeat(np.arange(k), sizes)
    return _frames(df, assign, k)


# -- helpers -----------------------------------------------------------------------------------
def _check_k(n: int, k: int) -> None:
    check_int("clients", k, low=2)
    if n < k:
        raise ThreedglError(f"cannot split {n} rows over {k} clients (fewer rows than clients)")


def _check(df: pd.DataFrame, target: str, k: int) -> np.ndarray:
    if not isinstance(df, pd.DataFrame):
        raise ThreedglError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if target not in df.columns:
        raise ThreedglError(f"the table has no class column '{target}'")
    _check_k(len(df), k)
    y = df[target].to_numpy()
    if pd.isna(df[target]).any():
        raise ThreedglError(f"class column '{target}' has missing values")
    return y


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (
        math.isfinite(alpha) and alpha > 0
    ):
        raise ThreedglError(f"alpha must be a positive number, got {alpha!r}")


def _codes(y: np.ndarray) -> tuple[np.ndarray, int]:
    labels = sorted({str(v) for v in y})
    index = {lab: i for i, lab in enumerate(labels)}
    return np.fromiter((index[str(v)] for v in y), dtype=np.int64, count=len(y)), len(labels)


def _min_rows(n: int, k: int, min_rows: int) -> int:
    check_int("min_rows", min_rows, low=0)
    return int(min(min_rows, n // k))


def _largest_remainder(n: int, shares: np.ndarray) -> list[int]:
    raw = np.asarray(shares, dtype=np.float64) * n / max(float(np.sum(shares)), 1e-300)
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts.tolist()


def _repair(
    assign: np.ndarray, k: int, floor: int, rng: np.random.Generator, codes: np.ndarray
) -> None:
    """Move single rows from the largest to the smallest client until all have ``floor``."""
    sizes = np.bincount(assign, minlength=k)
    while sizes.min() < floor:
        small = int(np.argmin(sizes))
        big = int(np.argmax(sizes))
        donor_rows = np.flatnonzero(assign == big)
        have = set(codes[assign == small].tolist())
        lacking = donor_rows[~np.isin(codes[donor_rows], list(have))]
        pick_from = lacking if len(lacking) else donor_rows
        row = int(rng.choice(pick_from))
        assign[row] = small
        sizes[big] -= 1
        sizes[small] += 1


def _frames(df: pd.DataFrame, assign: np.ndarray, k: int) -> list[pd.DataFrame]:
    return [df.iloc[np.flatnonzero(assign == i)] for i in range(k)]
