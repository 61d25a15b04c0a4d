"""What each 3DGL client evaluates: the scenarios (paper §IV-B, SPEC §5).

Every client samples the pool once (``pool_rows``: 20 × its fold size, at least 2 000 and
at most 20 000 rows, classes interleaved so every prefix has the table's class mix; the
mix, balanced as in the paper or the generators' released class sizes, is chosen by the
size sweep's score on the client's own rows: ``EvaluationOptions.class_mix``) and
evaluates, with logistic regression and the paper's evaluation encoding:

==================  =====================================================  =============
scenario            what                                                   baseline
==================  =====================================================  =============
``local_cv``        10-fold CV of LR on its own data (Table IV "Real")      —
``fold_fold``       pool prefix, size selected on own data, scored on own   ``local_cv``
``local_test``      LR on its own data, scored on test (Table V "Real")     —
``fold_test``       pool prefix, size selected on own data, scored on test  ``local_test``
``test_test``       pool prefix, size selected and scored on test           ``local_test``
``own_generator``   own generator only, size selected on own data → test    ``local_test``
``real_plus_pool``  own rows + m pool rows, m by CV on own data → test      ``local_test``
``centralized``     LR on all train rows → test (upper bound)               ``local_test``
==================  =====================================================  =============

**Label skew.** A client whose own rows hold fewer than ``MIN_JUDGE_ROWS`` (10) rows of
some class cannot rank classifiers on that class: its sweeps' choice is replaced by every
pool row it sampled, and its class mix is the released one (the federation's, as the
pool releases it) rather than one chosen on its rows. A client whose class mix is further
than ``MAX_MIX_SHIFT`` (0.1, total variation) from the federation's released mix chooses
on its rows resampled within each class to that mix (a label-shift correction: its own
skew would otherwise decide the pool's size and class mix); Fold-Fold and the local
baselines still score its rows as they are. Nothing reads the test set.

The cross-validation uses 10 stratified folds (``cv_folds``), fewer — down to 2 — when the
client's smallest class has fewer rows, so that every validation fold can hold every
class; per-fold scores are averaged (AUC ignoring folds where it is undefined).
``real_plus_pool`` chooses m among the sweep's sizes by ``rpp_cv_folds``-fold CV on the
client's data (the pool rows are added to each training fold, never to the validation
fold), and keeps m = 0 (its own data alone) unless a size beats it.

**The test set is sealed.** :func:`evaluate_client` first runs
:func:`select_on_own_data`, which receives only the client's fold and its synthetic
tables (no test set at all), then :func:`score_on_test`, which is the only code that reads
the test set: Fold-Test's size is fixed before the test set is touched.

This module knows nothing of transports, workers or engines: it is the same code whether
a client runs in a local worker process or inside a Flower ClientApp.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.evaluation import SweepResult, interleave_classes, size_sweep, utility_scores
from threedgl.evaluation.utility import METRICS
from threedgl.model.base import BaseGenerator
from threedgl.schema import Schema

SCENARIOS: tuple[str, ...] = (
    "local_cv",
    "fold_fold",
    "local_test",
    "fold_test",
    "test_test",
    "own_generator",
    "real_plus_pool",
    "centralized",
)
#: The local-only baseline each scenario's gain is measured against.
BASELINE_OF: dict[str, str] = {
    "fold_fold": "local_cv",
    "fold_test": "local_test",
    "test_test": "local_test",
    "own_generator": "local_test",
    "real_plus_pool": "local_test",
    "centralized": "local_test",
}
SCENARIO_TITLES: dict[str, str] = {
    "local_cv": "Real, own data (10-fold CV) [Table IV Real]",
    "fold_fold": "Pool, Fold-Fold [Table IV Synth]",
    "local_test": "Real, own data → test [Table V Real]",
    "fold_test": "Pool, Fold-Test [Table V]",
    "test_test": "Pool, Test-Test [Table V, optimistic]",
    "own_generator": "Own generator only → test",
    "real_plus_pool": "Own rows + pool → test",
    "centralized": "Centralized real data → test (upper bound)",
}


# -- options -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationOptions:
    """How clients evaluate (defaults follow SPEC §4)."""

    metric: str = "accuracy"
    start: int = 200
    growth: float = 1.5
    patience: int = 3
    pool_factor: int = 20
    pool_min_rows: int = 2000
    pool_max_rows: int = 20_000
    cv_folds: int = 10
    rpp_cv_folds: int = 5
    #: Class mix of the synthetic tables: "balanced" (the paper), "released" (the class
    #: sizes the generators release), or "select": both are sampled and the one whose size
    #: sweep scores better on the client's own rows is kept (as Table II does on the train
    #: split; the test set is never read).
    class_mix: str = "select"
    #: How the pool splits a class between the generators that model it: "rows" (by the
    #: rows each released for it) or "equal" (the paper's pool); :mod:`threedgl.pool.shares`.
    pool_weighting: str = "rows"

    def pool_rows(self, fold_rows: int) -> int:
        """Synthetic rows each client samples once: ``pool_factor × fold`` within bounds."""
        return int(min(self.pool_max_rows, max(self.pool_min_rows, self.pool_factor * fold_rows)))

    def check(self) -> EvaluationOptions:
        if self.metric not in METRICS:
            raise ThreedglError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        if self.class_mix not in CLASS_MIXES:
            raise ThreedglError(
                f"class_mix must be one of {list(CLASS_MIXES)}, got {self.class_mix!r}"
            )
        if self.pool_weighting not in ("rows", "equal"):
            raise ThreedglError(
                f"pool_weighting must be 'rows' or 'equal', got {self.pool_weighting!r}")
        for name in ("start", "patience", "pool_factor", "pool_min_rows", "pool_max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ThreedglError(f"{name} must be a positive int, got {value!r}")
        for name in ("cv_folds", "rpp_cv_folds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ThreedglError(f"{name} must be an int of at least 2, got {value!r}")
        if not (isinstance(self.growth, (int, float)) and self.growth > 1):
            raise ThreedglError(f"growth must be a number above 1, got {self.growth!r}")
        return self


CLASS_MIXES = ("select", "balanced", "released")

#: A client whose own rows hold fewer than this many rows of some class cannot rank
#: classifiers on that class (label skew): it then takes every pool row it sampled instead
#: of the size its rows would pick, and the released class mix (the federation's, as the
#: pool releases it) instead of choosing one on its rows. The test set plays no part.
MIN_JUDGE_ROWS = 10
#: A client's class mix further than this (total variation) from the federation's
#: released one is shifted to it before it chooses (:func:`shift_to_mix`).
MAX_MIX_SHIFT = 0.1


def can_judge(client_df: pd.DataFrame, schema: Schema) -> bool:
    """Whether the client's own rows hold at least :data:`MIN_JUDGE_ROWS` of every class."""
    counts = client_df[schema.target].astype(str).value_counts()
    return all(int(counts.get(str(label), 0)) >= MIN_JUDGE_ROWS for label in schema.labels)


def _all_rows(sweep: SweepResult, table: pd.DataFrame) -> SweepResult:
    """``sweep`` with every row of ``table`` chosen (a client that cannot judge)."""
    return replace(sweep, best_size=len(table), best_score=math.nan)


def released_mix(pool: Any) -> dict[str, float]:
    """The federation's class mix as the pool releases it: per class label (as text), its
    share of the rows the pool's generators released (public, DP in the default mode)."""
    totals: dict[str, float] = {}
    for released in pool.released_rows():
        for label, rows in released.items():
            if rows > 0:
                totals[str(label)] = totals.get(str(label), 0.0) + float(rows)
    whole = sum(totals.values())
    return {k: v / whole for k, v in totals.items()} if whole > 0 else {}


def shift_to_mix(client_df: pd.DataFrame, mix: dict[str, float], schema: Schema,
                 random_state: int) -> pd.DataFrame:
    """The client's rows resampled (with replacement, within each class) to the class mix
    ``mix``: its selection set corrected for label shift. Under label skew a client's own
    class mix is not the federation's, and choosing a pool size or class mix by accuracy on
    its own rows would fit its skew; its rows of each class are kept, their weights follow
    the federation's released mix (classes it does not hold cannot be added). With the
    federation's mix (stratified clients) it is a bootstrap of its own rows' mix."""
    y = client_df[schema.target].astype(str).to_numpy()
    present = [label for label in mix if (y == label).any()]
    own = {label: float((y == label).mean()) for label in set(y) | set(mix)}
    shift = 0.5 * sum(abs(own.get(k, 0.0) - mix.get(k, 0.0)) for k in own)
    if not present or shift <= MAX_MIX_SHIFT:
        return client_df
    from threedgl.apportion import class_counts

    rng = np.random.default_rng(random_state)
    sizes = class_counts(len(client_df), [mix[label] for label in present])
    picks = [rng.choice(np.flatnonzero(y == label), size=k, replace=True)
             for label, k in zip(present, sizes, strict=True) if k]
    return client_df.iloc[np.sort(np.concatenate(picks))]

# -- per-client evaluation ---------------------------------------------------------------------------
Scores = dict[str, float]


@dataclass(frozen=True)
class OwnSelection:
    """Everything a client decides from its own data (before the test set is opened)."""

    local_cv: Scores
    fold_fold: Scores
    pool_sweep: SweepResult
    own_sweep: SweepResult
    rpp_rows: int
    rpp_sweep: SweepResult | None


def _scores(d: Mapping[str, Any]) -> Scores:
    return {m: float(d[m]) for m in METRICS}


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


def cv_splits(y: Any, max_folds: int, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified CV folds: ``max_folds``, fewer (down to 2) when the smallest class present
    has fewer rows."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray([str(v) for v in y])
    _, counts = np.unique(labels, return_counts=True)
    n_splits = int(max(2, min(max_folds, counts.min(), len(labels))))
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [(tr, va) for tr, va in skf.split(np.zeros(len(labels)), labels)]


@dataclass(frozen=True)
class _Encoded:
    """A table encoded once for the evaluation's classifier (``X``, class codes ``y``)."""

    X: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame, schema: Schema) -> _Encoded:
        from threedgl.evaluation import EvaluationEncoder

        X, y = EvaluationEncoder(schema).transform(df)
        assert y is not None
        return cls(X, y)


def _cv_scores(
    df: pd.DataFrame | _Encoded,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    schema: Schema,
    positive_label: Any,
    extra: pd.DataFrame | _Encoded | None = None,
) -> Scores:
    """Per-fold scores of logistic regression trained on the fold's rows (plus ``extra``,
    e.g. pool rows) and scored on its validation rows, averaged. The tables are encoded
    once (as :func:`~threedgl.evaluation.utility_scores` encodes them; the rows are the
    same, so are the scores), not once per fold."""
    from threedgl.evaluation.utility import fit_and_score, positive_index

    table = df if isinstance(df, _Encoded) else _Encoded.of(df, schema)
    more = extra if isinstance(extra, _Encoded) or extra is None else (
        _Encoded.of(extra, schema) if len(extra) else None)
    k = len(schema.labels)
    per_fold: dict[str, list[float]] = {m: [] for m in METRICS}
    for tr, va in folds:
        X_train, y_train = table.X[tr], table.y[tr]
        if more is not None and len(more.y):
            X_train = np.concatenate([X_train, more.X])
            y_train = np.concatenate([y_train, more.y])
        s = fit_and_score(X_train, y_train, table.X[va], table.y[va], n_classes=k,
                          pos=positive_index(schema, positive_label, y_train))
        for m in METRICS:
            per_fold[m].append(float(s[m]))
    return {m: _nanmean(v) for m, v in per_fold.items()}


def select_on_own_data(
    client_df: pd.DataFrame,
    pool_synthetic: pd.DataFrame,
    own_synthetic: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    random_state: int,
    selection_df: pd.DataFrame | None = None,
    *,
    swept: tuple[SweepResult | None, SweepResult | None] = (None, None),
) -> OwnSelection:
    """Every choice a client makes from its own data only (this function never sees the
    test set): the Fold-Fold / Fold-Test size, the own-generator size, the number of pool
    rows to add to its own rows, and the local cross-validation baseline. The sizes are
    chosen on ``selection_df`` (default: its rows as they are; :func:`evaluate_client`
    passes them shifted to the federation's class mix, :func:`shift_to_mix`). ``swept``:
    the size sweeps of the pool's and the own table on ``selection_df`` when
    :func:`sample_class_mix` already ran them (the same sweeps: they are not run again)."""
    if selection_df is None:
        selection_df = client_df
    sweep_kw: dict[str, Any] = {
        "start": options.start,
        "growth": options.growth,
        "patience": options.patience,
        "metric": options.metric,
        "positive_label": positive_label,
    }
    folds = cv_splits(client_df[schema.target], options.cv_folds, random_state)
    local_cv = _cv_scores(client_df, folds, schema, positive_label)
    pool_sweep = swept[0] or size_sweep(pool_synthetic, selection_df, schema, **sweep_kw)
    judge = can_judge(client_df, schema)
    if not judge:
        pool_sweep = _all_rows(pool_sweep, pool_synthetic)
    fold_fold = _scores(
        utility_scores(pool_sweep.best_prefix(pool_synthetic), client_df, schema,
                       positive_label=positive_label)
    )
    own_sweep = swept[1] or size_sweep(own_synthetic, selection_df, schema, **sweep_kw)
    if not judge:
        own_sweep = _all_rows(own_sweep, own_synthetic)

    rpp_folds = cv_splits(client_df[schema.target], options.rpp_cv_folds, random_state)
    own_rows = _Encoded.of(client_df, schema)
    rpp_base = _cv_scores(own_rows, rpp_folds, schema, positive_label)[options.metric]
    pool_rows = _Encoded.of(pool_synthetic, schema)  # every prefix is a slice of it

    def real_plus_pool_cv(prefix: pd.DataFrame, selection: pd.DataFrame) -> float:
        n = len(prefix)
        return _cv_scores(own_rows, rpp_folds, schema, positive_label,
                          extra=_Encoded(pool_rows.X[:n], pool_rows.y[:n]))[options.metric]

    rpp_sweep = size_sweep(
        pool_synthetic, client_df, schema, **{**sweep_kw, "metric": real_plus_pool_cv}
    )
    beats = not math.isnan(rpp_sweep.best_score) and (
        math.isnan(rpp_base) or rpp_sweep.best_score > rpp_base
    )
    return OwnSelection(
        local_cv=local_cv,
        fold_fold=fold_fold,
        pool_sweep=pool_sweep,
        own_sweep=own_sweep,
        rpp_rows=rpp_sweep.best_size if beats else 0,
        rpp_sweep=rpp_sweep,
    )


def score_on_test(
    selection: OwnSelection,
    client_df: pd.DataFrame,
    pool_synthetic: pd.DataFrame,
    own_synthetic: pd.DataFrame,
    test_df: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
) -> dict[str, dict[str, float]]:
    """The final scores on the external test set (the only code that reads it), then the
    optimistic Test-Test sweep (which selects on the test set by design)."""

    def on_test(train: pd.DataFrame) -> Scores:
        return _scores(utility_scores(train, test_df, schema, positive_label=positive_label))

    rpp_train = pd.concat([client_df, pool_synthetic.iloc[: selection.rpp_rows]], ignore_index=True)
    out: dict[str, dict[str, float]] = {
        "local_test": {**on_test(client_df), "synthetic_rows": 0},
        "fold_test": {
            **on_test(selection.pool_sweep.best_prefix(pool_synthetic)),
            "synthetic_rows": selection.pool_sweep.best_size,
        },
        "own_generator": {
            **on_test(selection.own_sweep.best_prefix(own_synthetic)),
            "synthetic_rows": selection.own_sweep.best_size,
        },
        "real_plus_pool": {**on_test(rpp_train), "synthetic_rows": selection.rpp_rows},
    }
    test_sweep = size_sweep(
        pool_synthetic,
        test_df,
        schema,
        start=options.start,
        growth=options.growth,
        patience=options.patience,
        metric=options.metric,
        positive_label=positive_label,
    )
    out["test_test"] = {
        **on_test(test_sweep.best_prefix(pool_synthetic)),
        "synthetic_rows": test_sweep.best_size,
    }
    return out


def sample_class_mix(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """``n`` rows of ``generator`` (a pool or a generator), classes interleaved, in the class
    mix of ``options.class_mix`` ("select": the mix whose size sweep scores better on the
    client's own rows, or ``selection_df``; never the test set); the arguments of
    :func:`_sample_class_mix`."""
    return _sample_class_mix(*args, **kwargs)[0]


def _sample_class_mix(
    generator: Any,
    n: int,
    sample_seed: int,
    order_seed: int,
    client_df: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    selection_df: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, SweepResult | None]:
    """:func:`sample_class_mix` and the chosen table's sweep (``None``: one mix, no sweep)."""
    if selection_df is None:
        selection_df = client_df
    mixes = ("balanced", "released") if options.class_mix == "select" else (options.class_mix,)
    if options.class_mix == "select" and not can_judge(client_df, schema):
        mixes = ("released",)  # its rows cannot choose: the federation's released mix
    best: tuple[float, pd.DataFrame, SweepResult] | None = None
    for mix in mixes:
        table = interleave_classes(
            generator.sample(n, balanced=mix == "balanced", random_state=sample_seed), schema,
            random_state=order_seed,
        )
        if len(mixes) == 1:
            return table, None
        sweep = size_sweep(table, selection_df, schema, start=options.start,
                           growth=options.growth, patience=options.patience,
                           metric=options.metric, positive_label=positive_label)
        if best is None or sweep.best_score > best[0]:
            best = (sweep.best_score, table, sweep)
    assert best is not None
    return best[1], best[2]


def evaluate_local_only(
    client_df: pd.DataFrame,
    test_df: pd.DataFrame,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    random_state: int,
) -> dict[str, dict[str, float]]:
    """The scenarios of a participant without a generator (it could not train, or its
    generator was refused): its own data's scores (``local_cv``, ``local_test``, as
    :func:`evaluate_client` computes them) and NaN for every scenario that needs a pool or
    a generator of its own (no pool under contribute-to-access)."""
    s_cv = np.random.SeedSequence(random_state).generate_state(4)[3]
    folds = cv_splits(client_df[schema.target], options.cv_folds, int(s_cv))
    nan = {**{m: math.nan for m in METRICS}, "synthetic_rows": 0}
    out: dict[str, dict[str, float]] = {s: dict(nan) for s in SCENARIOS if s != "centralized"}
    out["local_cv"] = {**_cv_scores(client_df, folds, schema, positive_label),
                       "synthetic_rows": 0}
    out["local_test"] = {**_scores(utility_scores(client_df, test_df, schema,
                                                  positive_label=positive_label)),
                         "synthetic_rows": 0}
    return out


def evaluate_client(
    client_df: pd.DataFrame,
    test_df: pd.DataFrame,
    pool: Any,
    own: BaseGenerator,
    schema: Schema,
    positive_label: Any,
    options: EvaluationOptions,
    random_state: int,
) -> dict[str, dict[str, float]]:
    """One client's scenarios: sample the pool and its own generator once, decide on its own
    data (:func:`select_on_own_data`), then score on the test set (:func:`score_on_test`).

    Returns ``scenario → {accuracy, f1, auc (fractions), synthetic_rows}`` for every
    scenario but ``centralized`` (the same for all clients; :func:`simulate` adds it).
    """
    n = options.pool_rows(len(client_df))
    s_pool, s_own, s_order, s_cv, s_shift = np.random.SeedSequence(random_state).generate_state(5)
    shifted = shift_to_mix(client_df, released_mix(pool), schema, int(s_shift))
    pool_syn, pool_sweep = _sample_class_mix(pool, n, int(s_pool), int(s_order), client_df,
                                             schema, positive_label, options, shifted)
    own_syn, own_sweep = _sample_class_mix(own, n, int(s_own), int(s_order), client_df, schema,
                                           positive_label, options, shifted)
    selection = select_on_own_data(
        client_df, pool_syn, own_syn, schema, positive_label, options, int(s_cv), shifted,
        swept=(pool_sweep, own_sweep),
    )
    out = score_on_test(
        selection, client_df, pool_syn, own_syn, test_df, schema, positive_label, options
    )
    out["local_cv"] = {**selection.local_cv, "synthetic_rows": 0}
    out["fold_fold"] = {**selection.fold_fold, "synthetic_rows": selection.pool_sweep.best_size}
    return out
