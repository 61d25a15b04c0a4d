"""Membership-inference attacks (threedgl.evaluation.attacks) and ``3dgl attack``.

Measured with these fixtures (seed 0, 80 members / 80 non-members, 1000 reference rows,
5000 synthetic rows): the memorised non-private DDP-βVAE gives AUC ≈ 0.93 (DCR),
0.90 (DOMIAS), 0.84 (LOGAN); the same architecture and epochs at ε = 1.9 gives ≈ 0.5 for
all three; a generator trained on other rows of the population gives ≈ 0.51–0.52.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from threedgl import DDPBetaVAE
from threedgl.evaluation.attacks import (
    AttackResult,
    attack_scores_result,
    auc_score,
    bootstrap_ci,
    dcr_attack,
    feature_space,
    run_attacks,
    tpr_at_fpr,
)
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

EXE = shutil.which("3dgl") or str(Path(sys.executable).parent / "3dgl")
KEYS = {
    "auc", "auc_ci", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci", "tpr_at_10pct_fpr",
    "tpr_at_10pct_fpr_ci",
}
SCHEMA = Schema(
    [*(NumericColumn(f"x{i}", -5.0, 5.0) for i in range(6)), CategoricalColumn("y", ("a", "b"))],
    target="y",
)


def population(n: int, seed: int) -> pd.DataFrame:
    """Two classes of 6-d Gaussians (continuous columns: no duplicate rows)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 6)) + y[:, None] * 0.5
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    df["y"] = np.where(y == 1, "a", "b")
    return df


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny models: torch's thread pool only oversubscribes a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit(df: pd.DataFrame, *, epsilon: float, epochs: int, **params: object) -> DDPBetaVAE:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DDPBetaVAE(epsilon=epsilon, epochs=epochs, random_state=0, **params).fit(  # type: ignore[arg-type]
            df, target="y", schema=SCHEMA
        )


# The paper mode emits decoder means, which reproduce a memorised row exactly.
MEMORISE = {"mode": "paper", "hidden": (128, 64), "latent": 8, "beta": 0.01, "batch_size": 64}


@pytest.fixture(scope="module")
def small_split() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    pop = population(3000, 0)
    return pop.iloc[:80], pop.iloc[80:160], pop.iloc[2000:3000]


# -- metrics against hand-computed values ---------------------------------------------------
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
LABELS = np.array([1, 1, 0, 1, 0, 1, 0, 0])


def test_auc_hand_computed() -> None:
    # Member scores .9 .8 .6 .4 beat 4 + 4 + 3 + 2 of the 16 member/non-member pairs.
    assert auc_score(SCORES, LABELS) == pytest.approx(13 / 16)
    assert auc_score(np.ones(6), np.array([1, 0, 1, 0, 1, 0])) == 0.5  # ties count 1/2


def test_auc_perfect_reversed_and_random() -> None:
    y = np.r_[np.ones(500), np.zeros(500)]
    assert auc_score(y, y) == 1.0
    assert auc_score(-y, y) == 0.0
    rnd = np.random.default_rng(0).random(1000)
    assert auc_score(rnd, y) == pytest.approx(0.5, abs=0.05)
    assert auc_score(rnd, y) == pytest.approx(roc_auc_score(y, rnd))


def test_tpr_at_fpr_hand_computed() -> None:
    # Thresholds from the top: (FPR, TPR) = (0, .25) (0, .5) (.25, .5) (.25, .75)
    # (.5, .75) (.5, 1) (.75, 1) (1, 1).
    assert tpr_at_fpr(SCORES, LABELS, 0.0) == 0.5
    assert tpr_at_fpr(SCORES, LABELS, 0.01) == 0.5
    assert tpr_at_fpr(SCORES, LABELS, 0.1) == 0.5
    assert tpr_at_fpr(SCORES, LABELS, 0.25) == 0.75
    assert tpr_at_fpr(SCORES, LABELS, 0.5) == 1.0
    # A tied group is flagged together: all tied ⇒ FPR jumps from 0 to 1.
    assert tpr_at_fpr(np.ones(4), np.array([1, 1, 0, 0]), 0.5) == 0.0
    y = np.r_[np.ones(100), np.zeros(100)]
    assert tpr_at_fpr(y, y, 0.01) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auc_matches_sklearn_with_ties(pairs: list[tuple[int, bool]]) -> None:
    s = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs])
    if y.all() or not y.any():
        return
    assert auc_score(s, y) == pytest.approx(roc_auc_score(y, s))


@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-2, 2), st.booleans()), min_size=2,
                max_size=60), st.integers(0, 2**31 - 1))
@settings(max_examples=200, deadline=None)
def test_one_sort_gives_the_same_figures(rows: list[tuple[int, float, bool]], seed: int) -> None:
    """The bootstrap's figures of each resample (one stable sort: ``attack_metrics``) are
    exactly those of ``auc_score`` and ``tpr_at_fpr``, ties (integer scores) or not."""
    from threedgl.evaluation.roc import attack_metrics, resamples

    y = np.array([r[2] for r in rows])
    if y.all() or not y.any():
        return
    for s in (np.array([r[0] for r in rows], dtype=float), np.array([r[1] for r in rows])):
        idx = np.stack([np.arange(len(s)), *resamples(y, 3, seed)])
        figures = attack_metrics(s[idx], y[idx])
        as_ints = attack_metrics(s[idx], y[idx].astype(int))  # 0/1 labels, as auc_score takes
        for m in figures:
            np.testing.assert_array_equal(figures[m], as_ints[m])
        for k, row in enumerate(idx):
            assert figures["auc"][k] == auc_score(s[row], y[row])
            assert figures["tpr_at_1pct_fpr"][k] == tpr_at_fpr(s[row], y[row], 0.01)
            assert figures["tpr_at_10pct_fpr"][k] == tpr_at_fpr(s[row], y[row], 0.10)


def test_attack_intervals_are_those_of_the_per_metric_bootstrap() -> None:
    """``attack_scores_result``'s intervals equal ``bootstrap_ci`` of each metric (same
    seed, same resamples), on scores with ties."""
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(150, bool), np.zeros(90, bool)]
    s = np.round(rng.normal(size=240) + 0.4 * y, 1)
    result = attack_scores_result("x", s, y, n_resamples=60, random_state=11)
    assert result.auc_ci == bootstrap_ci(s, y, auc_score, n_resamples=60, random_state=11)
    for rate, ci in ((0.01, result.tpr_at_1pct_fpr_ci), (0.10, result.tpr_at_10pct_fpr_ci)):
        assert ci == bootstrap_ci(s, y, lambda a, b, r=rate: tpr_at_fpr(a, b, r),
                                  n_resamples=60, random_state=11)


def test_bootstrap_ci_contains_point_estimate() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(200), np.zeros(200)]
    s = rng.normal(size=400) + 0.5 * y
    lo, hi = bootstrap_ci(s, y, auc_score, n_resamples=200)
    point = auc_score(s, y)
    assert lo <= point <= hi and hi - lo < 0.2
    r = attack_scores_result("x", s, y)
    d = r.to_dict()
    assert set(d) == KEYS
    for m in ("auc", "tpr_at_1pct_fpr", "tpr_at_10pct_fpr"):
        assert d[f"{m}_ci"][0] <= d[m] <= d[f"{m}_ci"][1]
    json.dumps(d)


def test_feature_space_categorical_mismatch_costs_one() -> None:
    a = pd.DataFrame({**{f"x{i}": [0.0] for i in range(6)}, "y": ["a"]})
    b = a.assign(y=["b"])
    c = a.assign(x0=[5.0])  # the whole range of a numeric column
    xa, xb, xc = feature_space(SCHEMA, [a, b, c])
    assert np.linalg.norm(xa - xb) == pytest.approx(1.0)
    assert np.linalg.norm(xa - xc) == pytest.approx(0.5)
    # Without the class column in every table, it is left out.
    (xa2, xn) = feature_space(SCHEMA, [a, a.drop(columns="y")])
    assert xa2.shape == xn.shape == (1, 6)


def test_dcr_finds_copies() -> None:
    rng = np.random.default_rng(0)
    members, non = rng.random((50, 4)), rng.random((50, 4))
    synthetic = np.vstack([members + 1e-3, rng.random((50, 4))])
    r = dcr_attack(synthetic, members, non)
    assert r.auc == 1.0 and r.tpr_at_1pct_fpr == 1.0


# -- attacks on trained generators --------------------------------------------------------
@pytest.fixture(scope="module")
def memorised(small_split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> DDPBetaVAE:
    # Non-private, 80 rows, wide network, latent 8, β = 0.01, 2000 epochs (full batches).
    return fit(small_split[0], epsilon=math.inf, epochs=2000, **MEMORISE)


def test_attacks_detect_a_memorised_generator(
    memorised: DDPBetaVAE, small_split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    members, non, ref = small_split
    res = run_attacks(memorised, members, non, ref, random_state=0)
    assert set(res) == {"dcr", "domias", "logan"}
    aucs = {k: r.auc for k, r in res.items()}
    # Measured: dcr 0.93, domias 0.90, logan 0.84.
    assert aucs["dcr"] > 0.8, aucs
    assert aucs["domias"] > 0.8, aucs
    assert aucs["logan"] > 0.75, aucs
    for r in res.values():
        assert isinstance(r, AttackResult)
        assert r.auc_ci[0] <= r.auc <= r.auc_ci[1]
        assert r.n_members == r.n_non_members == 80
        assert r.reference_source == "given" and r.n_reference == 1000
        assert set(r.to_dict()) == KEYS


def test_dp_generator_same_setting_resists(
    small_split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    members, non, ref = small_split
    gen = fit(members, epsilon=1.9, epochs=1000, **MEMORISE)
    res = run_attacks(gen, members, non, ref, random_state=0)
    aucs = {k: r.auc for k, r in res.items()}
    # Measured ≈ 0.53 each; 80 vs 80 candidates, so the interval is about ±0.09.
    assert all(a < 0.7 for a in aucs.values()), aucs


def test_independent_generator_gives_chance() -> None:
    pop = population(2500, 1)
    gen = fit(pop.iloc[:500], epsilon=math.inf, epochs=30, hidden=(32, 16), latent=3)
    # "Members" were never seen by the generator: no attack may find them.
    res = run_attacks(
        gen, pop.iloc[500:1000], pop.iloc[1000:1500], pop.iloc[1500:2500],
        n_synthetic=2000, random_state=0,
    )
    aucs = {k: r.auc for k, r in res.items()}
    assert all(abs(a - 0.5) <= 0.05 for a in aucs.values()), aucs
    # Without a reference, half of the non-members become it.
    split = run_attacks(gen, pop.iloc[500:1000], pop.iloc[1000:2000], n_synthetic=1000,
                        n_resamples=20, random_state=0)
    for r in split.values():
        assert r.reference_source == "split from non-members"
        assert r.n_reference == 500 and r.n_members == r.n_non_members == 500


# -- the command line ---------------------------------------------------------------------
def sh(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_cli_attack_end_to_end(
    tmp_path: Path,
    memorised: DDPBetaVAE,
    small_split: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    members, non, ref = small_split
    gen_path = tmp_path / "gen.3dgl"
    memorised.save(gen_path)
    paths = {}
    for name, df in (("train", members), ("holdout", non), ("ref", ref)):
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    out = tmp_path / "out" / "attack.json"
    proc = sh("attack", "--generator", gen_path, "--members", paths["train"],
              "--non-members", paths["holdout"], "--reference", paths["ref"],
              "--json", out, "--seed", "0", "--n-synthetic", "3000")
    assert proc.returncode == 0, proc.stderr
    for word in ("dcr", "domias", "logan", "AUC", "TPR@1%FPR", "TPR@10%FPR"):
        assert word in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"dcr", "domias", "logan"}
    for d in data.values():
        assert set(d) == KEYS
    assert data["dcr"]["auc"] > 0.8
    assert not list(out.parent.glob(".*.tmp"))

    # Bad input: a missing file, and a table that does not fit the generator's schema.
    assert_user_error(
        sh("attack", "--generator", gen_path, "--members", tmp_path / "nope.csv",
           "--non-members", paths["holdout"]),
        "nope.csv",
    )
    members.drop(columns="x3").to_csv(tmp_path / "bad.csv", index=False)
    bad_json = tmp_path / "bad.json"
    assert_user_error(
        sh("attack", "--generator", gen_path, "--members", tmp_path / "bad.csv",
           "--non-members", paths["holdout"], "--json", bad_json),
        "x3",
    )
    assert not bad_json.exists()


def test_gaussian_kde_known_answers_and_scikit_learn() -> None:
    from sklearn.neighbors import KernelDensity

    from threedgl.evaluation.density import gaussian_kde_log_density

    # One training row: the density is N(x; t, h²I).
    t, x, h = np.array([[0.5, -1.0]]), np.array([[0.5, -1.0], [1.5, 0.0]]), 0.7
    expected = -np.sum((x - t) ** 2, 1) / (2 * h * h) - np.log(2 * np.pi * h * h)
    np.testing.assert_allclose(gaussian_kde_log_density(t, x, h), expected, atol=1e-12)
    rng = np.random.default_rng(0)
    train, points = rng.normal(size=(700, 4)), rng.normal(size=(1500, 4)) * 2.0
    got = gaussian_kde_log_density(train, points, 0.4, chunk=100)  # several chunks
    # Every row summed directly (float64, max-shifted)
    a = -((points[:, None, :] - train[None, :, :]) ** 2).sum(-1) / (2 * 0.4**2)
    top = a.max(1)
    direct = top + np.log(np.exp(a - top[:, None]).sum(1)) - np.log(700) \
        - 2 * np.log(2 * np.pi * 0.4**2)
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-9)
    # scikit-learn's tree gives the same where the density is not tiny.
    ref = KernelDensity(kernel="gaussian", bandwidth=0.4).fit(train).score_samples(points)
    dense = ref > -20
    assert dense.sum() > 1000
    np.testing.assert_allclose(got[dense], ref[dense], atol=1e-6)


def test_gaussian_kde_refuses_a_bandwidth_that_is_not_positive() -> None:
    from threedgl.errors import ThreedglError
    from threedgl.evaluation.density import gaussian_kde_log_density

    for h in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ThreedglError, match="bandwidth"):
            gaussian_kde_log_density(np.zeros((3, 2)), np.zeros((1, 2)), h)
