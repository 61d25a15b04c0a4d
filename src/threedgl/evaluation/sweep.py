"""The synthetic-size sweep (SPEC §4, paper §IV-A).

The caller samples a large synthetic table once (shuffled, with the classes spread
through it: :func:`interleave_classes` does that). Prefixes of growing size — ``start``
rows, then geometric growth by ``growth`` or fixed steps of ``step`` rows — are used to
train the classifier, which is scored on the selection table (the real training data,
the client's private data, or the test set, depending on the scenario). The sweep stops
when the score has not improved (by more than ``min_delta``) for ``patience``
consecutive sizes, or when the table (or ``max_size``) is exhausted. The best size is the
*smallest* size reaching the best score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError, check_int, check_range
from threedgl.evaluation.encoding import EncodingMode, EvaluationEncoder, check_mode
from threedgl.evaluation.utility import (
    METRICS,
    _target_column,
    fit_and_score_many,
    positive_index,
)

MetricFn = Callable[[pd.DataFrame, pd.DataFrame], float]


@dataclass(frozen=True)
class SweepResult:
    """The sizes tried, their scores (same order), the best size and its score.

    ``report_scores`` (when the sweep was given a ``report_df``) holds, for each size, the
    score of the same fitted model on that other table: for plots only, never for the
    selection.
    """

    sizes: tuple[int, ...]
    scores: tuple[float, ...]
    best_size: int
    best_score: float
    metric: str
    report_scores: tuple[float, ...] = ()

    def report_curve(self, metric: str | None = None) -> SweepResult:
        """The sweep as seen on the ``report_df``: its scores, the size chosen on the
        selection table and that size's score on the report table."""
        if len(self.report_scores) != len(self.sizes):
            raise ThreedglError("this sweep was run without a report_df")
        best = self.report_scores[self.sizes.index(self.best_size)]
        return SweepResult(self.sizes, self.report_scores, self.best_size, best,
                           metric or f"{self.metric} (report)")

    @property
    def curve(self) -> pd.DataFrame:
        """The curve as a table with columns ``size`` and ``score``."""
        return pd.DataFrame({"size": list(self.sizes), "score": list(self.scores)})

    def best_prefix(self, synthetic_df: pd.DataFrame) -> pd.DataFrame:
        """The first ``best_size`` rows of the synthetic table the sweep ran on."""
        return synthetic_df.iloc[: self.best_size]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "sizes": list(self.sizes),
            "scores": list(self.scores),
            "best_size": self.best_size,
            "best_score": self.best_score,
        }
        if self.report_scores:
            out["report_scores"] = list(self.report_scores)
        return out


def sweep_sizes(
    n_rows: int,
    *,
    start: int = 200,
    growth: float = 1.5,
    step: int | None = None,
    max_size: int | None = None,
) -> list[int]:
    """All sizes a sweep may try: ``start`` then geometric (``ceil(size * growth)``, at
    least one more row) or fixed ``step`` growth, capped at ``min(n_rows, max_size)``;
    the cap itself is always the last size."""
    _check_int("start", start, 1)
    if step is None:
        check_range("growth", growth, low=1.0, owner="size_sweep")
    else:
        _check_int("step", step, 1)
    cap = n_rows if max_size is None else min(n_rows, _check_int("max_size", max_size, 1))
    if cap < 1:
        raise ThreedglError("the synthetic table is empty (no rows to sweep)")
    sizes: list[int] = []
    size = min(start, cap)
    while True:
        sizes.append(size)
        if size >= cap:
            return sizes
        nxt = size + step if step is not None else max(math.ceil(size * growth), size + 1)
        size = min(nxt, cap)


def size_sweep(
    synthetic_df: pd.DataFrame,
    selection_df: pd.DataFrame,
    schema: Any,
    *,
    start: int = 200,
    growth: float = 1.5,
    step: int | None = None,
    patience: int = 3,
    metric: str | MetricFn = "accuracy",
    model: Any = "logreg",
    positive_label: Any = None,
    max_size: int | None = None,
    min_delta: float = 0.0,
    encoding: EncodingMode = "label",
    random_state: int | None = 0,
    report_df: pd.DataFrame | None = None,
) -> SweepResult:
    """Find the synthetic-table size that scores best on ``selection_df``.

    ``metric`` is ``"accuracy"``, ``"f1"`` (of the positive class), ``"auc"`` or a callable
    ``metric(prefix_df, selection_df) -> float`` (higher is better; it trains and scores
    whatever it likes, and ``model``/``encoding`` are then unused). ``positive_label``
    defaults to the minority class of ``selection_df``. A NaN score never counts as an
    improvement.

    ``report_df`` (another table, e.g. the test split): each model the sweep fits is also
    scored on it, into ``report_scores``, for a plot of what the selection did; it never
    influences the selection. Not available with a callable ``metric``.
    """
    if not isinstance(synthetic_df, pd.DataFrame) or not isinstance(selection_df, pd.DataFrame):
        raise ThreedglError(
            "size_sweep needs pandas DataFrames for the synthetic and selection tables"
        )
    _check_int("patience", patience, 1)
    check_range("min_delta", min_delta, low=0.0, low_inclusive=True, owner="size_sweep")
    sizes = sweep_sizes(len(synthetic_df), start=start, growth=growth, step=step, max_size=max_size)

    score_fn: MetricFn
    report: list[float] = []
    if callable(metric):
        if report_df is not None:
            raise ThreedglError("size_sweep: report_df needs a named metric, not a callable")
        score_fn = metric
        metric_name = getattr(metric, "__name__", "custom")
    elif metric in METRICS:
        metric_name = metric
        tcol = _target_column(schema)
        enc = EvaluationEncoder(schema, check_mode(encoding))
        X_all, y_all = enc.transform(synthetic_df)
        X_sel, y_sel = enc.transform(selection_df)
        if y_all is None or y_sel is None:
            raise ThreedglError(f"both tables need the class column '{tcol.name}'")
        k = len(tcol.categories)
        pos = positive_index(schema, positive_label, y_sel)
        targets = [(X_sel, y_sel)]
        if report_df is not None:
            X_rep, y_rep = enc.transform(report_df)
            if y_rep is None:
                raise ThreedglError(f"report_df needs the class column '{tcol.name}'")
            targets.append((X_rep, y_rep))

        def score_fn(prefix: pd.DataFrame, _sel: pd.DataFrame) -> float:
            n = len(prefix)
            scores = fit_and_score_many(
                X_all[:n], y_all[:n], targets, n_classes=k, pos=pos, model=model,
                random_state=random_state,
            )
            if len(scores) > 1:
                report.append(scores[1][metric_name])
            return scores[0][metric_name]
    else:
        raise ThreedglError(
            f"The 'metric' parameter must be one of {list(METRICS)!r} or a callable. "
            f"Got {metric!r} instead."
        )

    tried: list[int] = []
    scores: list[float] = []
    best_size, best_score = sizes[0], -math.inf
    since = 0
    for size in sizes:
        score = float(score_fn(synthetic_df.iloc[:size], selection_df))
        tried.append(size)
        scores.append(score)
        if not math.isnan(score) and (best_score == -math.inf or score > best_score + min_delta):
            best_size, best_score = size, score
            since = 0
        else:
            since += 1
            if since >= patience:
                break
    if best_score == -math.inf:
        best_score = float("nan")
    return SweepResult(tuple(tried), tuple(scores), best_size, best_score, metric_name,
                       tuple(report))


def interleave_classes(
    df: pd.DataFrame, schema: Any, *, random_state: int | None = 0
) -> pd.DataFrame:
    """Shuffle rows within each class and interleave the classes so that every prefix
    holds (as nearly as possible) the class proportions of the whole table.

    Row ``i`` of a class with ``n_c`` rows is placed at key ``(i + 0.5) / n_c``; rows are
    sorted by key. Use it on a pool sampled once before :func:`size_sweep`.
    """
    tcol = _target_column(schema)
    if tcol.name not in df.columns:
        raise ThreedglError(f"the table has no class column '{tcol.name}'")
    rng = np.random.default_rng(random_state)
    _, y = EvaluationEncoder(schema).transform(df)
    assert y is not None
    keys = np.empty(len(df), dtype=np.float64)
    order_rows = np.arange(len(df))
    for c in np.unique(y):
        rows = rng.permutation(order_rows[y == c])
        keys[rows] = (np.arange(len(rows)) + 0.5) / len(rows)
    order = np.lexsort((y, keys))
    return df.iloc[order].reset_index(drop=True)


def _check_int(name: str, value: Any, low: int) -> int:
    return check_int(name, value, low=low, owner="size_sweep")
