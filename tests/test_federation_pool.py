"""The pool of client generators: its mix across generators and classes, and refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threedgl import DPMarginals, GeneratorsPool
from threedgl.errors import SchemaError, ThreedglError
from threedgl.schema import CategoricalColumn, NumericColumn, Schema

SOURCES = ("g0", "g1", "g2")
SCHEMA = Schema(
    columns=(
        NumericColumn("x", 0.0, 1.0),
        CategoricalColumn("src", SOURCES),
        CategoricalColumn("y", ("no", "yes")),
    ),
    target="y",
)


def _client_table(i: int, n: int, share_yes: float, rng: np.random.Generator) -> pd.DataFrame:
    """A client whose every row is marked with its generator's name (``src``)."""
    y = np.where(rng.random(n) < share_yes, "yes", "no")
    return pd.DataFrame({"x": rng.random(n), "src": SOURCES[i], "y": y})


def _known_generators(only_no: int | None = None) -> list[DPMarginals]:
    rng = np.random.default_rng(0)
    gens = []
    for i in range(3):
        df = _client_table(i, 60 + 40 * i, 0.2 + 0.3 * i, rng)
        if only_no == i:
            df = df[df["y"] == "no"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gens.append(DPMarginals(epsilon=float("inf"), random_state=i).fit(df, schema=SCHEMA))
    return gens


def _counts(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby(["src", "y"]).size().unstack(fill_value=0).reindex(
        index=list(SOURCES), columns=["no", "yes"], fill_value=0
    )


def test_pool_uniform_across_generators_and_balanced_classes() -> None:
    pool = GeneratorsPool(_known_generators(), weighting="equal")  # the paper's pool
    n = 1201
    alloc = pool.allocation(n)
    table = pool.sample(n, balanced=True, random_state=0)
    assert len(table) == n
    counts = _counts(table)
    # every generator's rows are marked with its name: the observed mix is the allocation
    for gi, g in enumerate(pool.generators):
        for k, label in enumerate(g.labels_):
            assert counts.loc[SOURCES[gi], label] == alloc[gi][k]
    per_gen = counts.sum(axis=1).to_numpy()
    per_class = counts.sum(axis=0).to_numpy()
    assert per_gen.max() - per_gen.min() <= 2  # uniform across generators
    assert per_class.max() - per_class.min() <= 1  # balanced across classes


def test_pool_unbalanced_follows_released_class_sizes() -> None:
    pool = GeneratorsPool(_known_generators(), weighting="equal")
    table = pool.sample(3000, balanced=False, random_state=1)
    counts = _counts(table)
    for gi, g in enumerate(pool.generators):
        row = counts.loc[SOURCES[gi]]
        assert row.sum() == 1000
        want = np.asarray(g.class_rows_) / sum(g.class_rows_)
        got = row[list(g.labels_)].to_numpy() / row.sum()
        np.testing.assert_allclose(got, want, atol=0.002)


def test_pool_class_missing_from_one_generator() -> None:
    # client 0 has no "yes" rows (label skew): "yes" comes from the two others only
    pool = GeneratorsPool(_known_generators(only_no=0), weighting="equal")
    table = pool.sample(900, balanced=True, random_state=2)
    counts = _counts(table)
    assert counts.loc["g0", "yes"] == 0
    assert counts["yes"].sum() == counts["no"].sum() == 450
    assert abs(counts.loc["g1", "yes"] - counts.loc["g2", "yes"]) <= 1
    assert counts["no"].max() - counts["no"].min() <= 1


def test_pool_refuses_a_different_schema_naming_the_difference() -> None:
    gens = _known_generators()
    other = Schema(
        columns=(
            NumericColumn("x", 0.0, 2.0),
            CategoricalColumn("src", SOURCES),
            CategoricalColumn("y", ("no", "yes")),
        ),
        target="y",
    )
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        odd = DPMarginals(epsilon=float("inf"), random_state=0).fit(
            _client_table(1, 50, 0.5, rng), schema=other
        )
    with pytest.raises(SchemaError, match=r"generator #3.*column 'x'"):
        GeneratorsPool([*gens, odd])


# -- the pool weighs generators by what they learned from (issue 21, item 2) ----------------------
def test_weighted_pool_follows_the_released_counts() -> None:
    """ε = ∞ marginals release their exact class sizes: g0 has 60 rows (48 no, 12 yes),
    g1 100 (≈50/50), g2 140 (≈ 20/80); each class is split by those counts."""
    pool = GeneratorsPool(_known_generators())
    assert pool.weighting == "rows"
    rows = [dict(zip(g.labels_, g.class_rows_, strict=True)) for g in pool.generators]
    table = pool.sample(1200, balanced=True, random_state=0)
    counts = _counts(table)
    for label in ("no", "yes"):
        total = sum(r[label] for r in rows)
        for gi, source in enumerate(SOURCES):
            assert abs(counts.loc[source, label] - 600 * rows[gi][label] / total) <= 1
    shares = pool.shares()
    assert all(abs(sum(s[label] for s in shares) - 1.0) < 1e-12 for label in ("no", "yes"))
    released = _counts(pool.sample(1200, balanced=False, random_state=0))
    grand = sum(sum(r.values()) for r in rows)
    for gi, source in enumerate(SOURCES):  # every cell in proportion to its count
        for label in ("no", "yes"):
            assert abs(released.loc[source, label] - 1200 * rows[gi][label] / grand) <= 1


def test_shares_known_answers_ties_and_zero_counts() -> None:
    from threedgl.pool.shares import allocate, class_shares

    gens = [{"a": 1000.0, "b": 10.0}, {"a": 60.0}, {"a": 0.0, "b": -3.0}]
    shares = class_shares(gens, ["a", "b"])
    assert shares[0]["a"] == pytest.approx(1000 / 1060) and shares[1]["a"] == pytest.approx(60 / 1060)
    assert shares[2] == {"a": 0.0, "b": 0.0} and shares[0]["b"] == 1.0
    # no positive count in a class: split equally between its owners
    assert class_shares([{"a": 0.0}, {"a": -1.0}], ["a"]) == [{"a": 0.5}, {"a": 0.5}]
    # a tie of remainders goes to the earlier generator
    assert allocate(3, [{"a": 5.0}, {"a": 5.0}], ["a"]) == [{"a": 2}, {"a": 1}]
    assert allocate(10, [{"a": 1.0}, {"a": 3.0}], ["a"], weighting="equal") == [
        {"a": 5}, {"a": 5}]
    with pytest.raises(ThreedglError, match="weighting must be one of"):
        GeneratorsPool(_known_generators(), weighting="noise")


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 5000),
    counts=st.lists(st.lists(st.one_of(st.none(), st.floats(-50, 5000)), min_size=3, max_size=3),
                    min_size=1, max_size=6),
    balanced=st.booleans(),
    weighting=st.sampled_from(["rows", "equal"]),
)
def test_allocation_properties(n: int, counts: list[list[float | None]], balanced: bool,
                               weighting: str) -> None:
    """Every row is allocated, only to a (generator, class) it models; balanced classes get
    n / K ± 1; within a class, rows follow the shares within one row."""
    from threedgl.pool.shares import allocate, class_shares

    labels = ["a", "b", "c"]
    gens = [{lab: c for lab, c in zip(labels, row, strict=True) if c is not None}
            for row in counts]
    gens = [g if g else {"a": 1.0} for g in gens]
    present = [lab for lab in labels if any(lab in g for g in gens)]
    alloc = allocate(n, gens, present, balanced=balanced, weighting=weighting)
    assert sum(sum(a.values()) for a in alloc) == n
    assert all(set(a) == set(g) for a, g in zip(alloc, gens, strict=True))
    assert all(v >= 0 for a in alloc for v in a.values())
    per_class = [sum(a.get(lab, 0) for a in alloc) for lab in present]
    if balanced:
        assert max(per_class) - min(per_class) <= 1
        shares = class_shares(gens, present, weighting)
        for lab, total in zip(present, per_class, strict=True):
            for a, s in zip(alloc, shares, strict=True):
                if lab in a:
                    assert abs(a[lab] - total * s[lab]) < 1.0 + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["anchored", "paper"])
def test_a_large_generator_gets_most_of_the_pool(mode: str) -> None:
    """Issue 21's bar: a 1,000-row and a 60-row generator (ε = 1.9): the first gets at least
    80 % of the rows, in both modes (default mode: noisy counts; paper mode: exact ones)."""
    from threedgl import DDPBetaVAE, datasets

    ds = datasets.load("titanic")
    frame = ds.frame.sample(1060, random_state=0)
    gens = []
    for rows, seed in ((frame.iloc[:1000], 1), (frame.iloc[1000:], 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gens.append(DDPBetaVAE(mode=mode, epochs=1, random_state=seed).fit(
                rows, target=ds.target, schema=ds.schema))
    for balanced in (True, False):
        alloc = GeneratorsPool(gens).allocation(10_000, balanced=balanced)
        assert sum(alloc[0]) >= 8000, (mode, balanced, alloc)
