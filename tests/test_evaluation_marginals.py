"""The k-way marginal TVD (SPEC §4): known answers, the public bins, properties, tolerances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threedgl.errors import ThreedglError
from threedgl.evaluation import kway_tvd, marginal_tvds
from threedgl.evaluation.divergence import histogram
from threedgl.evaluation.marginals import TVD_KEYS, marginal_codes
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SCHEMA = Schema(
    (
        NumericColumn("n", 0, 16),  # continuous: 16 bins of width 1
        NumericColumn("k", 0, 4, integer=True),  # 5 integer values: one bin each
        CategoricalColumn("c", ("a", "b", "c")),
        CategoricalColumn("t", ("no", "yes")),
    ),
    target="t",
)


def table(n: list[float], k: list[int], c: list[str], t: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"n": n, "k": k, "c": c, "t": t})


# -- known answers ---------------------------------------------------------------------------
def test_identical_tables_give_zero() -> None:
    df = table([0.5, 3.2, 15.9, 8.0], [0, 1, 4, 2], ["a", "b", "c", "a"], ["no", "yes", "no", "no"])
    assert kway_tvd(df, df.copy(), SCHEMA) == {key: 0.0 for key in TVD_KEYS}
    # Relative frequencies: the same table twice over is the same distribution.
    assert kway_tvd(df, pd.concat([df, df]), SCHEMA) == {key: 0.0 for key in TVD_KEYS}


def test_disjoint_tables_give_one() -> None:
    real = table([1.0] * 3, [0] * 3, ["a"] * 3, ["no"] * 3)
    syn = table([9.0] * 2, [3] * 2, ["c"] * 2, ["yes"] * 2)
    assert kway_tvd(real, syn, SCHEMA) == {key: 1.0 for key in TVD_KEYS}


def test_two_way_by_hand() -> None:
    # n and k are the same constant in both tables: only c and t differ.
    real = table([1.0] * 4, [2] * 4, ["a", "a", "b", "c"], ["no", "no", "yes", "yes"])
    syn = table([1.0] * 4, [2] * 4, ["a", "b", "b", "b"], ["no", "no", "yes", "yes"])
    one = marginal_tvds(real, syn, SCHEMA, k=1)
    # c: (1/2, 1/4, 1/4) vs (1/4, 3/4, 0) -> ½ (1/4 + 1/2 + 1/4); t: the same counts.
    assert one == {("n",): 0.0, ("k",): 0.0, ("c",): 0.5, ("t",): 0.0}
    two = marginal_tvds(real, syn, SCHEMA, k=2)
    # (c, t): real (a,no) 1/2, (b,yes) 1/4, (c,yes) 1/4; synthetic (a,no) 1/4, (b,no) 1/4,
    # (b,yes) 1/2 -> ½ (1/4 + 1/4 + 1/4 + 1/4).
    assert two[("c", "t")] == pytest.approx(0.5)
    assert two[("n", "c")] == two[("k", "c")] == pytest.approx(0.5)  # a constant adds nothing
    assert two[("n", "k")] == two[("n", "t")] == two[("k", "t")] == 0.0
    assert list(two) == [("n", "k"), ("n", "c"), ("n", "t"), ("k", "c"), ("k", "t"), ("c", "t")]
    out = kway_tvd(real, syn, SCHEMA)
    assert out["tvd_1way"] == pytest.approx(0.5 / 4)
    assert out["tvd_2way"] == pytest.approx(1.5 / 6)
    assert out["tvd_3way"] == pytest.approx(np.mean(list(marginal_tvds(real, syn, SCHEMA, k=3).values())))


def test_class_column_counts_as_a_column() -> None:
    real = table([1.0] * 4, [2] * 4, ["a"] * 4, ["no", "no", "no", "yes"])
    syn = table([1.0] * 4, [2] * 4, ["a"] * 4, ["no", "yes", "yes", "yes"])
    assert marginal_tvds(real, syn, SCHEMA, k=1)[("t",)] == pytest.approx(0.5)
    assert kway_tvd(real, syn, SCHEMA, ways=(1,))["tvd_1way"] == pytest.approx(0.5 / 4)


def test_ways_above_the_columns_are_left_out() -> None:
    small = Schema((NumericColumn("x", 0, 1), CategoricalColumn("y", (0, 1))), target="y")
    df = pd.DataFrame({"x": [0.2, 0.9], "y": [0, 1]})
    assert set(kway_tvd(df, df, small)) == {"tvd_1way", "tvd_2way"}
    assert kway_tvd(df, df, small, ways=(2,)) == {"tvd_2way": 0.0}
    assert marginal_tvds(df, df, small, k=3) == {}


# -- the bins: a public rule from the schema -------------------------------------------------
def test_bins_rule() -> None:
    df = table([-5.0, 0.0, 3.5, 15.99, 16.0, 99.0], [-3, 0, 1, 4, 4, 9],
               ["a", "b", "c", "a", "b", "c"], ["no"] * 6)
    codes, widths = marginal_codes(df, SCHEMA)
    assert widths == [16, 5, 3, 2]
    # n: 16 equal-width bins over [0, 16], values outside the bounds clipped into the ends.
    assert codes[:, 0].tolist() == [0, 0, 3, 15, 15, 15]
    # k: an integer column with 5 ≤ 16 values gets one bin per value (clipped likewise).
    assert codes[:, 1].tolist() == [0, 0, 1, 4, 4, 4]
    assert codes[:, 2].tolist() == [0, 1, 2, 0, 1, 2]
    assert codes[:, 3].tolist() == [0] * 6
    # With 3 bins, k's 5 values no longer fit: 3 equal-width bins over [0, 4].
    codes, widths = marginal_codes(df, SCHEMA, bins=3)
    assert widths == [3, 3, 3, 2]
    assert codes[:, 1].tolist() == [0, 0, 0, 2, 2, 2]


def test_bins_of_a_wide_integer_and_a_constant_column() -> None:
    schema = Schema((NumericColumn("i", 0, 16, integer=True), NumericColumn("z", 3, 3),
                     CategoricalColumn("t", ("no", "yes"))), target="t")
    df = pd.DataFrame({"i": [0, 1, 8, 15, 16], "z": [3.0, 3.0, 7.0, 3.0, 3.0], "t": "no"})
    codes, widths = marginal_codes(df, schema)
    # 17 integer values > 16 bins: equal-width bins of 1 over [0, 16], 16 in the last.
    assert widths == [16, 1, 2]
    assert codes[:, 0].tolist() == [0, 1, 8, 15, 15]
    assert codes[:, 1].tolist() == [0] * 5


def test_bins_are_the_kld_histograms_bins() -> None:
    rng = np.random.default_rng(0)
    df = table(rng.uniform(-2, 18, 200).tolist(), rng.integers(-1, 6, 200).tolist(),
               rng.choice(["a", "b", "c"], 200).tolist(), rng.choice(["no", "yes"], 200).tolist())
    codes, widths = marginal_codes(df, SCHEMA)
    conformed = SCHEMA.validate(df)
    for j, col in enumerate(SCHEMA.columns):
        expected = histogram(conformed[col.name], col, bins=16)
        assert np.bincount(codes[:, j], minlength=widths[j]).tolist() == expected.tolist()


# -- the sample of k-column sets -------------------------------------------------------------
WIDE = Schema((*(CategoricalColumn(f"c{i}", ("x", "y")) for i in range(11)),
               CategoricalColumn("t", (0, 1))), target="t")


def wide_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c.name: rng.choice(list(c.categories), n) for c in WIDE.columns})


def test_seeded_sample_of_marginals() -> None:
    real, syn = wide_table(60, 0), wide_table(60, 1)
    every = marginal_tvds(real, syn, WIDE, k=3)
    assert len(every) == math.comb(12, 3) == 220
    sample = marginal_tvds(real, syn, WIDE, k=3, max_marginals=50, random_state=7)
    assert len(sample) == 50 and set(sample) <= set(every)
    assert all(sample[cols] == every[cols] for cols in sample)
    assert marginal_tvds(real, syn, WIDE, k=3, max_marginals=50, random_state=7) == sample
    assert set(marginal_tvds(real, syn, WIDE, k=3, max_marginals=50, random_state=8)) != set(sample)
    out = kway_tvd(real, syn, WIDE, max_marginals=50, random_state=7)
    assert out["tvd_3way"] == pytest.approx(np.mean(list(sample.values())))
    assert out["tvd_1way"] == pytest.approx(np.mean(list(marginal_tvds(real, syn, WIDE, k=1).values())))
    # 2-way: 66 ≤ 2000 sets, all of them; with a cap of 50, a sample.
    assert len(marginal_tvds(real, syn, WIDE, k=2)) == 66
    assert len(marginal_tvds(real, syn, WIDE, k=2, max_marginals=50)) == 50


def test_large_marginals_are_counted_sparsely() -> None:
    # Three columns of 2,000 categories: 8e9 cells, which a dense count could not hold.
    cats = tuple(f"v{i}" for i in range(2000))
    schema = Schema((CategoricalColumn("a", cats), CategoricalColumn("b", cats),
                     CategoricalColumn("t", cats)), target="t")
    real = pd.DataFrame({"a": ["v1", "v2", "v3", "v1"], "b": ["v5", "v5", "v9", "v5"],
                         "t": ["v0", "v0", "v1999", "v0"]})
    syn = real.assign(a=["v1", "v2", "v3", "v4"])
    assert marginal_tvds(real, syn, schema, k=3) == {("a", "b", "t"): pytest.approx(0.25)}
    assert kway_tvd(real, real, schema)["tvd_3way"] == 0.0


# -- errors ------------------------------------------------------------------------------------
def test_user_errors() -> None:
    df = table([1.0], [1], ["a"], ["no"])
    with pytest.raises(ThreedglError, match="empty"):
        kway_tvd(df.iloc[:0], df, SCHEMA)
    with pytest.raises(ThreedglError, match="empty"):
        kway_tvd(df, df.iloc[:0], SCHEMA)
    with pytest.raises(ThreedglError, match="'bins' parameter"):
        kway_tvd(df, df, SCHEMA, bins=0)
    with pytest.raises(ThreedglError, match="'k' parameter"):
        kway_tvd(df, df, SCHEMA, ways=(0,))
    with pytest.raises(ThreedglError, match="'max_marginals' parameter"):
        marginal_tvds(df, df, SCHEMA, k=1, max_marginals=0)
    with pytest.raises(ThreedglError, match="Schema"):
        kway_tvd(df, df, {"n": "numeric"})  # type: ignore[arg-type]
    with pytest.raises(ThreedglError, match="class column"):
        kway_tvd(df.drop(columns=["t"]), df, SCHEMA)
    with pytest.raises(ThreedglError, match="'d'"):
        kway_tvd(df, df.assign(c="d"), SCHEMA)


# -- properties ------------------------------------------------------------------------------
rows = st.tuples(st.floats(-5, 20), st.integers(-1, 6), st.sampled_from("abc"),
                 st.sampled_from(["no", "yes"]))
tables = st.lists(rows, min_size=1, max_size=25).map(
    lambda r: pd.DataFrame(r, columns=["n", "k", "c", "t"]))


@settings(max_examples=60, deadline=None)
@given(tables, tables, st.randoms(use_true_random=False))
def test_properties(real: pd.DataFrame, syn: pd.DataFrame, rnd) -> None:  # type: ignore[no-untyped-def]
    out = kway_tvd(real, syn, SCHEMA)
    assert set(out) == set(TVD_KEYS)
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in out.values())
    # Symmetric, and blind to the order of the rows.
    back = kway_tvd(syn, real, SCHEMA)
    assert all(back[key] == pytest.approx(out[key], abs=1e-12) for key in TVD_KEYS)
    order = list(range(len(syn)))
    rnd.shuffle(order)
    shuffled = kway_tvd(real, syn.iloc[order], SCHEMA)
    assert all(shuffled[key] == pytest.approx(out[key], abs=1e-12) for key in TVD_KEYS)
    # 1-way: the mean of the per-column TVDs, each computed from the KLD's histograms.
    per_column = []
    r, s = SCHEMA.validate(real), SCHEMA.validate(syn)
    for col in SCHEMA.columns:
        p, q = histogram(r[col.name], col, bins=16), histogram(s[col.name], col, bins=16)
        per_column.append(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())
    assert out["tvd_1way"] == pytest.approx(np.mean(per_column), abs=1e-12)
    # Marginalising never increases a TVD: a set of columns is at least as far apart as any
    # of its subsets, so the means grow with k (over every set, none sampled).
    one, two = marginal_tvds(real, syn, SCHEMA, k=1), marginal_tvds(real, syn, SCHEMA, k=2)
    for (a, b), value in two.items():
        assert value >= max(one[(a,)], one[(b,)]) - 1e-12
    assert out["tvd_1way"] <= out["tvd_2way"] + 1e-12 <= out["tvd_3way"] + 2e-12


# -- statistical tolerances ------------------------------------------------------------------
def test_shuffled_columns_keep_one_way_and_lose_two_way() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    c = rng.choice(["a", "b", "c"], n)
    t = np.where(c == "a", "yes", np.where(rng.random(n) < 0.2, "yes", "no"))
    k = np.where(c == "a", 4, rng.integers(0, 3, n))
    real = table(rng.uniform(0, 16, n).tolist(), k.tolist(), c.tolist(), t.tolist())
    # Each column shuffled on its own: the same 1-way counts, the pairs broken.
    independent = real.apply(lambda col: rng.permutation(col.to_numpy()))
    out = kway_tvd(real, independent, SCHEMA)
    assert out["tvd_1way"] == 0.0
    assert out["tvd_2way"] > 0.1 and out["tvd_3way"] > out["tvd_2way"]


def test_sampling_noise_matches_theory() -> None:
    """Two samples of n rows of one categorical column of K equally likely values: the
    expected TVD is about ½ K √(2/π) √(2 p (1 − p) / n), p = 1/K (the sampling floor)."""
    schema = Schema((CategoricalColumn("c", ("a", "b", "c")), CategoricalColumn("t", (0,))),
                    target="t")
    n, reps = 3000, 100
    rng = np.random.default_rng(1)
    values = [
        kway_tvd(pd.DataFrame({"c": rng.choice(list("abc"), n), "t": 0}),
                 pd.DataFrame({"c": rng.choice(list("abc"), n), "t": 0}), schema,
                 ways=(1,))["tvd_1way"] * 2  # the constant class column adds a 0
        for _ in range(reps)
    ]
    p = 1 / 3
    expected = 0.5 * 3 * math.sqrt(2 / math.pi) * math.sqrt(2 * p * (1 - p) / n)
    assert np.mean(values) == pytest.approx(expected, rel=0.15)
