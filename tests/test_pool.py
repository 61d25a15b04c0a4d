"""The Generators Pool: mixing across generators and classes, and schema refusals."""

from __future__ import annotations

import warnings

import pytest

from threedgl import DDPBetaVAE, DPMarginals, GeneratorsPool, NumericColumn, Schema
from threedgl.errors import SchemaError


@pytest.fixture(scope="module")
def marginals(titanic):  # type: ignore[no-untyped-def]
    return [
        DPMarginals(random_state=i).fit(titanic.frame, target=titanic.target, schema=titanic.schema)
        for i in range(3)
    ]


def test_allocation_is_uniform_across_generators_and_balanced_across_classes(marginals):
    pool = GeneratorsPool(marginals, weighting="equal")  # the paper's pool
    alloc = pool.allocation(600)
    assert alloc == [[100, 100], [100, 100], [100, 100]]
    table = pool.sample(600, balanced=True, random_state=0)
    assert table["survived"].value_counts().to_dict() == {"0": 300, "1": 300}


def test_allocation_when_a_generator_lacks_a_class(titanic, marginals):
    only_survivors = titanic.frame[titanic.frame.survived == "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        partial = DPMarginals(random_state=0).fit(
            only_survivors, target="survived", schema=titanic.schema
        )
    pool = GeneratorsPool([marginals[0], partial])
    alloc = pool.allocation(400)
    # class '0' comes only from the first generator; class '1' is shared
    assert alloc == [[200, 100], [100]]
    assert pool.sample(400, balanced=True, random_state=1)["survived"].value_counts().to_dict() == {
        "0": 200,
        "1": 200,
    }


def test_unbalanced_follows_each_generators_class_sizes(marginals):
    pool = GeneratorsPool(marginals, weighting="equal")
    alloc = pool.allocation(900, balanced=False)
    assert [sum(a) for a in alloc] == [300, 300, 300]
    assert all(a[0] > a[1] for a in alloc)  # more non-survivors in titanic


def test_incompatible_generator_is_refused_naming_the_difference(titanic, titanic_generator):
    cols = tuple(
        NumericColumn("age", 0.0, 120.0) if c.name == "age" else c for c in titanic.schema.columns
    )
    other_schema = Schema(cols, target="survived")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = DDPBetaVAE(epochs=1, random_state=0).fit(
            titanic.frame, target="survived", schema=other_schema
        )
    with pytest.raises(SchemaError, match="column 'age'"):
        GeneratorsPool([titanic_generator, other])


def test_pool_mixes_generator_kinds(titanic_generator, marginals):
    pool = GeneratorsPool([titanic_generator, marginals[0]])
    table = pool.sample(101, random_state=0)
    assert len(table) == 101


def test_empty_pool_is_refused():
    with pytest.raises(Exception, match="at least one generator"):
        GeneratorsPool([])
