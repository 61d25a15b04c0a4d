"""The pool of client generators: its mix across generators and classes, and refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from threedgl import DPMarginals, GeneratorsPool
from threedgl.errors import SchemaError
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
    pool = GeneratorsPool(_known_generators())
    n = 1201
    alloc = pool.allocation(n)
    table = pool.sample(n, random_state=0)
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
    pool = GeneratorsPool(_known_generators())
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
    pool = GeneratorsPool(_known_generators(only_no=0))
    table = pool.sample(900, random_state=2)
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
