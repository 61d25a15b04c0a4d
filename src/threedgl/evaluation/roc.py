"""The figures of a membership-inference attack: ROC AUC, TPR at a low FPR, and their
bootstrap intervals (members and non-members resampled separately).

``auc`` is the Mann–Whitney estimate (ties count one half); ``tpr_at_X_fpr`` is the
largest TPR over thresholds whose FPR is at most X (scores tied at the threshold are
flagged together, so ties never split). The bootstrap of an attack's three figures
(:func:`attack_metrics`) sorts each resample once and gives the same numbers as
:func:`auc_score` and :func:`tpr_at_fpr`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
from scipy.stats import rankdata

from threedgl.errors import ThreedglError

__all__ = ["ATTACK_METRICS", "attack_metrics", "auc_score", "bootstrap_attack_metrics",
           "bootstrap_ci", "interval",
           "point_metrics", "resamples", "tpr_at_fpr"]

#: The figures of every attack, in order (each with a ``*_ci`` interval).
ATTACK_METRICS: tuple[str, ...] = ("auc", "tpr_at_1pct_fpr", "tpr_at_10pct_fpr")


def _binary(scores: np.ndarray, labels: np.ndarray, what: str
            ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Scores as float64, labels as bool, and the numbers of members and non-members."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ThreedglError(f"{what} needs at least one member and one non-member")
    return s, y, n1, n0


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of ``scores`` (higher ⇒ positive) for binary ``labels`` (1 = member).

    The Mann–Whitney statistic with average ranks, so tied scores count one half.
    """
    s, y, n1, n0 = _binary(scores, labels, "AUC")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The largest TPR over score thresholds whose FPR is at most ``fpr``.

    A threshold ``t`` flags every candidate with score ≥ ``t`` (ties are flagged
    together); the threshold above every score (nothing flagged, TPR = FPR = 0) is
    always allowed.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ThreedglError(f"fpr must be in [0, 1], got {fpr!r}")
    s, y, n1, n0 = _binary(scores, labels, "TPR at FPR")
    tp, fp = _tied_runs(s, y)
    return _tpr_at(tp, fp, n1, n0, fpr)


def _tied_runs(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds of a ROC curve: scores sorted from the highest (stable), the members
    and the non-members flagged at the end of each run of tied scores (cumulative)."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]
    return np.cumsum(y_sorted)[last], np.cumsum(~y_sorted)[last]


def _tpr_at(tp: np.ndarray, fp: np.ndarray, n1: int, n0: int, fpr: float) -> float:
    """The largest TPR over the thresholds (:func:`_tied_runs`) whose FPR is at most ``fpr``
    (none flagged, TPR 0, is always allowed)."""
    ok = fp / n0 <= fpr + 1e-12
    return float((tp / n1)[ok].max()) if ok.any() else 0.0


def point_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:data:`ATTACK_METRICS` of one set of scores."""
    return {
        "auc": auc_score(scores, labels),
        "tpr_at_1pct_fpr": tpr_at_fpr(scores, labels, 0.01),
        "tpr_at_10pct_fpr": tpr_at_fpr(scores, labels, 0.10),
    }


def bootstrap_ci(
    scores: np.ndarray,
    labels: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_resamples: int = 200,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric``; members and non-members are resampled
    separately (so every resample keeps both groups and their sizes)."""
    return _bootstrap(scores, labels, {"m": metric}, n_resamples, confidence, random_state)["m"]


def resamples(y: np.ndarray, n_resamples: int,
              random_state: int | np.random.Generator | None) -> Iterator[np.ndarray]:
    """The bootstrap's index arrays, one per resample: members and non-members resampled
    separately (every resample keeps both groups and their sizes)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(random_state)
    for _ in range(n_resamples):
        yield np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])


def bootstrap_attack_metrics(scores: np.ndarray, labels: np.ndarray, n_resamples: int,
                             random_state: int | np.random.Generator | None,
                             ) -> dict[str, np.ndarray]:
    """:func:`attack_metrics` of each of ``n_resamples`` bootstrap resamples (the resamples
    of :func:`bootstrap_ci` with the same seed), a block of resamples at a time (a block
    holds at most about 2 M candidates, whatever the candidates' number)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    block = max(1, (1 << 21) // max(len(y), 1))
    parts: list[dict[str, np.ndarray]] = []
    rows: list[np.ndarray] = []
    for idx in resamples(y, n_resamples, random_state):
        rows.append(idx)
        if len(rows) == block:
            parts.append(_metrics_of(s, y, rows))
            rows = []
    if rows:
        parts.append(_metrics_of(s, y, rows))
    return {m: np.concatenate([p[m] for p in parts]) for m in ATTACK_METRICS}


def _metrics_of(s: np.ndarray, y: np.ndarray, rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    index = np.stack(rows)
    return attack_metrics(s[index], y[index])


def check_bootstrap(n_resamples: int, confidence: float) -> None:
    """A clear error for a bootstrap that cannot run."""
    if not 0 < confidence < 1:
        raise ThreedglError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ThreedglError(f"n_resamples must be at least 1, got {n_resamples!r}")


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of the resamples' ``values`` at ``confidence``."""
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))


def _bootstrap(
    scores: np.ndarray,
    labels: np.ndarray,
    metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]],
    n_resamples: int,
    confidence: float,
    random_state: int | np.random.Generator | None,
) -> dict[str, tuple[float, float]]:
    check_bootstrap(n_resamples, confidence)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    values: dict[str, list[float]] = {k: [] for k in metrics}
    for idx in resamples(y, n_resamples, random_state):
        for k, fn in metrics.items():
            values[k].append(fn(s[idx], y[idx]))
    return {k: interval(np.asarray(v), confidence) for k, v in values.items()}


def attack_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`ATTACK_METRICS` of every row of ``scores`` (R, n) with ``labels`` (R, n),
    each as :func:`auc_score` and :func:`tpr_at_fpr` give it (the same numbers: the
    Mann–Whitney U is a sum of half-integers, exact in float64), from one stable sort of
    the row instead of three."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ThreedglError("scores and labels must be 2-d arrays of the same shape")
    out = {m: np.empty(len(scores)) for m in ATTACK_METRICS}
    for r, (s, y) in enumerate(zip(scores, labels, strict=True)):
        s, y, n1, n0 = _binary(s, y, "Each row")
        tp, fp = _tied_runs(s, y)
        out["tpr_at_1pct_fpr"][r] = _tpr_at(tp, fp, n1, n0, 0.01)
        out["tpr_at_10pct_fpr"][r] = _tpr_at(tp, fp, n1, n0, 0.10)
        # U = Σ over members of (non-members scored below) + ½ (non-members tied with it);
        # a run of ties holding tp_k - tp_{k-1} members and fp_k - fp_{k-1} non-members
        tp_run, fp_run = np.diff(tp, prepend=0), np.diff(fp, prepend=0)
        u = float(np.sum(tp_run * (n0 - fp))) + 0.5 * float(np.sum(tp_run * fp_run))
        out["auc"][r] = u / (n1 * n0)
    return out
