"""The Generators Pool.

A pool holds generators trained under the same public schema (by different clients). By
default it samples balanced across classes (the paper balanced classes): each class gets
``n / n_classes`` rows (±1), split between the generators that model the class in
proportion to the rows each released for it (:mod:`threedgl.pool.shares`: the rule, its
ties and zero counts; ``weighting="equal"`` splits evenly, as the paper's pool). With
``balanced=False`` the classes follow the released class sizes.

Sampling is post-processing of DP outputs: it spends no privacy budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from threedgl.errors import NotFittedError, SchemaError, ThreedglError, check_int
from threedgl.model.base import BaseGenerator, random_generator, shuffle_rows
from threedgl.pool.shares import WEIGHTINGS, allocate, class_shares
from threedgl.schema import Schema
from threedgl.schema.schema import Category


class GeneratorsPool:
    """A set of compatible generators sampled as one.

    >>> pool = GeneratorsPool.from_files(["a.3dgl", "b.3dgl"])  # doctest: +SKIP
    >>> pool.sample(1000, random_state=0)  # doctest: +SKIP
    """

    def __init__(self, generators: Iterable[BaseGenerator], weighting: str = "rows") -> None:
        if weighting not in WEIGHTINGS:
            raise ThreedglError(f"weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
        self.weighting = weighting
        gens = list(generators)
        if not gens:
            raise ThreedglError("a Generators Pool needs at least one generator")
        for i, g in enumerate(gens):
            if not isinstance(g, BaseGenerator):
                raise ThreedglError(f"pool member #{i} is not a threedgl generator: {g!r}")
            if getattr(g, "manifest_", None) is None:
                raise NotFittedError(f"pool member #{i} is not fitted: call its 'fit' first")
        first = gens[0].schema_
        for i, g in enumerate(gens[1:], start=1):
            diff = first.differences(g.schema_)
            if diff:
                raise SchemaError(
                    f"generator #{i} was trained under a different schema than generator #0: "
                    + "; ".join(diff)
                )
        self.generators: list[BaseGenerator] = gens
        self.schema: Schema = first

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike[str]],
                   weighting: str = "rows") -> GeneratorsPool:
        from threedgl.model.registry import load_generator

        return cls((load_generator(p) for p in paths), weighting)

    def __len__(self) -> int:
        return len(self.generators)

    @property
    def labels(self) -> tuple[Category | None, ...]:
        """Every class label some member can generate, in the schema's order."""
        have = {repr(lab) for g in self.generators for lab in g.labels_}
        if self.schema.target is None:
            return (None,)
        return tuple(lab for lab in self.schema.labels if repr(lab) in have)

    @property
    def epsilon(self) -> float:
        """The largest ε among members (each protects a different client's rows)."""
        return max(g.epsilon_ for g in self.generators)

    def _released_rows(self) -> list[dict[Category | None, float]]:
        return [dict(zip(g.labels_, g.class_rows_, strict=True)) for g in self.generators]

    def shares(self) -> list[dict[Category | None, float]]:
        """Per generator, its share of each class it models (:mod:`threedgl.pool.shares`)."""
        return class_shares(self._released_rows(), self.labels, self.weighting)

    def allocation(self, n: int, balanced: bool = True) -> list[list[int]]:
        """Rows per generator and per class (in each generator's ``labels_`` order)."""
        n = check_int("n", n, low=0, owner="GeneratorsPool")
        cells = allocate(int(n), self._released_rows(), self.labels, balanced=balanced,
                         weighting=self.weighting)
        return [[cells[gi][label] for label in g.labels_]
                for gi, g in enumerate(self.generators)]

    def sample(
        self,
        n: int,
        balanced: bool | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """``n`` synthetic rows from the pool, shuffled, in the schema's format.

        Each generator draws its share through its public :meth:`sample_classes` (so it
        decodes as it does alone); the rows are then shuffled together. ``balanced=None``
        is balanced when every member is the paper's model (as each would sample alone),
        else the released class sizes.
        """
        if balanced is None:
            balanced = all(g._balanced_by_default() for g in self.generators)
        rng = random_generator(random_state)
        alloc = self.allocation(n, balanced)
        frames = [g.sample_classes(per_class, rng)
                  for g, per_class in zip(self.generators, alloc, strict=True)]
        return shuffle_rows(pd.concat(frames, ignore_index=True), rng)
