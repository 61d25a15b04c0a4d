"""Black-box membership-inference attacks on a released generator (paper §III-C, measured).

The paper argues that a DDP-βVAE generator trained at ε = 1.9 resists membership
inference but measures nothing; this module measures. The attacker holds the released
generator (it can sample as many rows as it likes), a set of *candidate* rows and, for the
density-ratio and discriminator attacks, a *reference* sample of the same population that
was not used to train the generator. Members are the generator's training rows,
non-members held-out rows of the same population; an attack gives every candidate a score
(higher ⇒ "member") and is judged by ROC AUC and by the true-positive rate at a low
false-positive rate (1 % and 10 %), each with a bootstrap confidence interval.

* :func:`dcr_attack` — distance to the closest synthetic record; score = −distance;
* :func:`domias_attack` — density ratio p_synth(x) / p_ref(x) in the style of DOMIAS
  (van Breugel et al., 2023), Gaussian kernel densities in a PCA-reduced feature space;
* :func:`logan_attack` — LOGAN-style (Hayes et al., 2019) black-box attack with auxiliary
  data: a classifier trained to tell synthetic rows from reference rows; score = its
  probability of "synthetic";
* :func:`run_attacks` — samples the generator once and runs all three (the privacy table
  of the reproduction, :func:`threedgl.experiments.privacy_table`, is built on it).

Feature space (:func:`feature_space`): the schema's encoder (numeric columns min-max scaled
with the schema's bounds, categorical columns one-hot), the class column included as one
more categorical column when every table has it; one-hot blocks are scaled by 1/√2, so a
categorical mismatch costs exactly 1 in Euclidean distance, like the full range of a
numeric column.

Metrics: ``auc`` is the Mann–Whitney estimate (ties count one half); ``tpr_at_X_fpr`` is
the largest TPR over thresholds whose FPR is at most X (scores tied at the threshold are
flagged together, so ties never split). With 100 non-members an FPR of 1 % is a single
row: the low-FPR figures are noisy on small candidate sets; read them with their interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError, ThreedglError, check_int
from threedgl.evaluation.binning import one_sort_binning
from threedgl.evaluation.density import gaussian_kde_log_density
from threedgl.evaluation.roc import (
    ATTACK_METRICS,
    auc_score,
    bootstrap_attack_metrics,
    bootstrap_ci,
    check_bootstrap,
    interval,
    point_metrics,
    tpr_at_fpr,
)
from threedgl.schema import Schema, TableEncoder
from threedgl.schema.schema import CategoricalColumn
from threedgl.threads import limit_threads

__all__ = [
    "ATTACKS",
    "ATTACK_METRICS",
    "AttackResult",
    "attack_scores_result",
    "auc_score",
    "bootstrap_ci",
    "dcr_attack",
    "domias_attack",
    "feature_space",
    "logan_attack",
    "run_attacks",
    "tpr_at_fpr",
]

@dataclass
class AttackResult:
    """The outcome of one membership-inference attack.

    ``to_dict`` gives exactly the JSON fields ``auc``, ``tpr_at_1pct_fpr``,
    ``tpr_at_10pct_fpr`` and their ``*_ci`` intervals ``[low, high]``. The other
    attributes describe the run: candidate counts, where the reference came from
    (``reference_source``: ``"given"`` or ``"split from non-members"``) and the scores.
    """

    attack: str
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_10pct_fpr: float
    auc_ci: tuple[float, float]
    tpr_at_1pct_fpr_ci: tuple[float, float]
    tpr_at_10pct_fpr_ci: tuple[float, float]
    n_members: int = 0
    n_non_members: int = 0
    n_reference: int = 0
    n_synthetic: int = 0
    reference_source: str = "given"
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in ATTACK_METRICS:
            out[m] = float(getattr(self, m))
            out[f"{m}_ci"] = [float(v) for v in getattr(self, f"{m}_ci")]
        return out


def attack_scores_result(
    attack: str,
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    n_resamples: int = 200,
    confidence: float = 0.95,
    random_state: int | None = 0,
    **info: Any,
) -> AttackResult:
    """Metrics and bootstrap intervals of one attack's scores (``labels``: 1 = member)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ThreedglError("scores and labels must be 1-d arrays of the same length")
    if not np.all(np.isfinite(s)):
        # -inf log-densities etc.: order is what matters, keep it with finite stand-ins.
        finite = s[np.isfinite(s)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        s = np.nan_to_num(s, nan=lo - 1.0, posinf=hi + 1.0, neginf=lo - 1.0)
    point = point_metrics(s, y)
    check_bootstrap(n_resamples, confidence)
    values = bootstrap_attack_metrics(s, y, n_resamples, random_state)
    ci = {m: interval(values[m], confidence) for m in ATTACK_METRICS}
    return AttackResult(
        attack=attack,
        auc=point["auc"],
        tpr_at_1pct_fpr=point["tpr_at_1pct_fpr"],
        tpr_at_10pct_fpr=point["tpr_at_10pct_fpr"],
        auc_ci=ci["auc"],
        tpr_at_1pct_fpr_ci=ci["tpr_at_1pct_fpr"],
        tpr_at_10pct_fpr_ci=ci["tpr_at_10pct_fpr"],
        n_members=int(y.sum()),
        n_non_members=int((~y).sum()),
        scores=s,
        labels=y,
        **info,
    )


# -- feature space -------------------------------------------------------------------------
def feature_space(
    schema: Schema, tables: Sequence[pd.DataFrame], *, with_target: bool | None = None
) -> list[np.ndarray]:
    """Encode tables into the attacks' common feature space (see the module docstring).

    The class column is encoded as one more categorical column when ``with_target`` is
    true (default: when the schema has one and every table has it). Tables that do not
    fit the schema raise :class:`SchemaError` naming the column.
    """
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a threedgl Schema, got {type(schema).__name__}")
    if with_target is None:
        with_target = schema.target is not None and all(
            schema.target in t.columns for t in tables
        )
    with_target = with_target and schema.target is not None
    space = schema.with_target(None) if with_target else schema
    encoder = TableEncoder(space)
    scale = np.ones(encoder.n_outputs, dtype=np.float64)
    for span, col in zip(encoder.spans, space.features, strict=True):
        if isinstance(col, CategoricalColumn):
            scale[span.start : span.stop] = 1.0 / math.sqrt(2.0)
    out = []
    for t in tables:
        if not isinstance(t, pd.DataFrame):
            raise ThreedglError(f"expected a pandas DataFrame, got {type(t).__name__}")
        out.append(encoder.encode(t).astype(np.float64) * scale)
    return out


def _candidates(members: np.ndarray, non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.vstack([members, non_members])
    y = np.r_[np.ones(len(members), dtype=bool), np.zeros(len(non_members), dtype=bool)]
    return x, y


# -- attacks (on encoded matrices) ---------------------------------------------------------
def dcr_attack(
    synthetic: np.ndarray,
    members: np.ndarray,
    non_members: np.ndarray,
    *,
    n_resamples: int = 200,
    random_state: int | None = 0,
) -> AttackResult:
    """Distance to the closest synthetic record: score = −min Euclidean distance.

    All arguments are matrices in the feature space of :func:`feature_space`.
    """
    from sklearn.neighbors import NearestNeighbors

    _check_matrices(synthetic=synthetic, members=members, non_members=non_members)
    x, y = _candidates(members, non_members)
    nn = NearestNeighbors(n_neighbors=1).fit(synthetic)
    dist, _ = nn.kneighbors(x)
    return attack_scores_result(
        "dcr", -dist[:, 0], y, n_resamples=n_resamples, random_state=random_state,
        n_synthetic=len(synthetic),
    )


def domias_attack(
    synthetic: np.ndarray,
    members: np.ndarray,
    non_members: np.ndarray,
    reference: np.ndarray,
    *,
    max_components: int = 10,
    bandwidth: float | str = "scott",
    n_resamples: int = 200,
    random_state: int | None = 0,
) -> AttackResult:
    """DOMIAS-style density ratio: score = log p_synth(x) − log p_ref(x).

    Both densities are Gaussian kernel density estimates in the same space: the feature
    space projected by PCA (fitted on synthetic and reference rows together, whitened) to
    at most ``max_components`` dimensions. ``bandwidth`` is ``"scott"`` (Scott's rule,
    n^(-1/(d+4)) for each set) or a fixed value in the whitened space.
    """
    from sklearn.decomposition import PCA

    _check_matrices(synthetic=synthetic, members=members, non_members=non_members,
                    reference=reference)
    x, y = _candidates(members, non_members)
    both = np.vstack([synthetic, reference])
    k = max(1, min(max_components, both.shape[1], len(both) - 1))
    pca = PCA(n_components=k, whiten=True, random_state=random_state).fit(both)
    keep = pca.explained_variance_ > 1e-10 * max(pca.explained_variance_.max(), 1e-300)
    if not keep.any():
        keep[:] = True

    def project(m: np.ndarray) -> np.ndarray:
        return np.asarray(pca.transform(m))[:, keep]

    zs, zr, zx = project(synthetic), project(reference), project(x)
    log_ps = _kde(zs, zx, bandwidth)
    log_pr = _kde(zr, zx, bandwidth)
    return attack_scores_result(
        "domias", log_ps - log_pr, y, n_resamples=n_resamples, random_state=random_state,
        n_synthetic=len(synthetic), n_reference=len(reference),
    )


def _kde(train: np.ndarray, points: np.ndarray, bandwidth: float | str) -> np.ndarray:
    if isinstance(bandwidth, str):
        if bandwidth != "scott":
            raise ThreedglError(f"bandwidth must be 'scott' or a positive number, got {bandwidth!r}")
        n, d = train.shape
        bw = float(n ** (-1.0 / (d + 4)))
    else:
        bw = float(bandwidth)
        if not bw > 0:
            raise ThreedglError(f"bandwidth must be positive, got {bandwidth!r}")
    return gaussian_kde_log_density(train, points, bw)


def logan_attack(
    synthetic: np.ndarray,
    members: np.ndarray,
    non_members: np.ndarray,
    reference: np.ndarray,
    *,
    max_iter: int = 100,
    n_resamples: int = 200,
    random_state: int | None = 0,
) -> AttackResult:
    """LOGAN-style black-box attack with auxiliary data.

    A histogram gradient-boosting classifier (``max_iter`` trees) learns synthetic (1) vs reference (0) rows,
    the classes weighted equally; the score of a candidate is its probability of
    "synthetic". Rows the generator reproduces too faithfully look "synthetic".
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    _check_matrices(synthetic=synthetic, members=members, non_members=non_members,
                    reference=reference)
    x, y = _candidates(members, non_members)
    train = np.vstack([synthetic, reference])
    target = np.r_[np.ones(len(synthetic)), np.zeros(len(reference))].astype(int)
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.1, class_weight="balanced", early_stopping=False,
        random_state=random_state,
    )
    # One thread: on a busy machine OpenMP oversubscription makes this 5-10x slower.
    with limit_threads(1), one_sort_binning():
        clf.fit(train, target)
        scores = clf.predict_proba(x)[:, 1]
    return attack_scores_result(
        "logan", scores, y, n_resamples=n_resamples, random_state=random_state,
        n_synthetic=len(synthetic), n_reference=len(reference),
    )


def _check_matrices(**mats: np.ndarray) -> None:
    widths = set()
    for name, m in mats.items():
        a = np.asarray(m)
        if a.ndim != 2 or len(a) == 0:
            raise ThreedglError(f"{name} must be a non-empty 2-d matrix, got shape {a.shape}")
        widths.add(a.shape[1])
    if len(widths) != 1:
        raise ThreedglError(f"the matrices have different widths: {sorted(widths)}")


ATTACKS: tuple[str, ...] = ("dcr", "domias", "logan")


# -- the whole run -------------------------------------------------------------------------
def run_attacks(
    generator: Any,
    members: pd.DataFrame,
    non_members: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    n_synthetic: int | None = None,
    random_state: int | None = 0,
    n_resamples: int = 200,
) -> dict[str, AttackResult]:
    """Attack a fitted generator: ``{"dcr": ..., "domias": ..., "logan": ...}``.

    ``members`` are the generator's training rows, ``non_members`` held-out rows of the
    same population and ``reference`` more population rows disjoint from both. Without a
    reference, half of the non-members (at random) become the reference and only the
    other half are candidates (``reference_source == "split from non-members"``).
    Members and non-members are balanced by subsampling the larger set at random.

    The generator is sampled once, ``n_synthetic`` rows (default
    ``5 * max(len(members), 1000)``) following its class sizes (``balanced=False``); the
    same synthetic rows feed the three attacks.
    """
    schema = getattr(generator, "schema_", None)
    if not isinstance(schema, Schema) or not hasattr(generator, "sample"):
        raise ThreedglError("run_attacks needs a fitted threedgl generator")
    rng = np.random.default_rng(random_state)
    for name, t in (("members", members), ("non_members", non_members), ("reference", reference)):
        if t is not None and not isinstance(t, pd.DataFrame):
            raise ThreedglError(f"{name} must be a pandas DataFrame, got {type(t).__name__}")
    if n_synthetic is None:
        n_synthetic = 5 * max(len(members), 1000)
    n_synthetic = check_int("n_synthetic", n_synthetic, low=2, owner="run_attacks")
    tables = [members, non_members] + ([reference] if reference is not None else [])
    with_target = schema.target is not None and all(schema.target in t.columns for t in tables)
    encoded = feature_space(schema, tables, with_target=with_target)
    xm, xn = encoded[0], encoded[1]
    source = "given"
    if reference is None:
        if len(xn) < 4:
            raise SchemaError(
                f"the non-member table has {len(xn)} row(s); without a reference table at "
                "least 4 are needed (half become the reference)"
            )
        perm = rng.permutation(len(xn))
        half = len(xn) // 2
        xr, xn = xn[perm[:half]], xn[perm[half:]]
        source = "split from non-members"
    else:
        xr = encoded[2]
    if len(xm) < 2 or len(xn) < 2:
        raise SchemaError("members and non-members need at least 2 rows each")
    n = min(len(xm), len(xn))
    xm = xm[np.sort(rng.choice(len(xm), n, replace=False))] if len(xm) > n else xm
    xn = xn[np.sort(rng.choice(len(xn), n, replace=False))] if len(xn) > n else xn
    synthetic_df = generator.sample(int(n_synthetic), balanced=False, random_state=rng)
    (xs,) = feature_space(schema, [synthetic_df], with_target=with_target)
    seed = int(rng.integers(0, 2**31 - 1))
    results = {
        "dcr": dcr_attack(xs, xm, xn, n_resamples=n_resamples, random_state=seed),
        "domias": domias_attack(xs, xm, xn, xr, n_resamples=n_resamples, random_state=seed),
        "logan": logan_attack(xs, xm, xn, xr, n_resamples=n_resamples, random_state=seed),
    }
    for r in results.values():
        r.n_reference = len(xr)
        r.n_synthetic = len(xs)
        r.reference_source = source
    return results
