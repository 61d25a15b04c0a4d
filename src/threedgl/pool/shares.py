"""How the Generators Pool splits a class's rows between the generators that model it.

**The rule** (``weighting="rows"``, the default). Generator *g*'s share of class *k* is
its released row count for that class over the class's released rows in the pool:

    share[g][k] = w[g][k] / Σ_h w[h][k],   w[g][k] = max(0, rows[g][k])

where ``rows`` is what each artifact's manifest releases (the noisy class count in the
default mode and in the DP marginals baseline, which the privacy statement covers; the
exact class size in paper mode, as the paper releases it). A generator that does not
model class *k* gets none of it. When no generator of the class has a positive count, the
class is split equally between them. Rows are apportioned by largest remainder; ties go
to the earlier generator (the pool's order: the server lists clients by name), so the
split is deterministic.

A generator that learned a class from 5 noisy rows at ε = 1.9 mostly emits noise; one that
learned it from 5,000 rows does not: weighing by the released count keeps the first from
diluting the second (issue 21). ``weighting="equal"`` is the paper's pool: every owner of a
class gets the same share.

Both class mixes use the shares: ``balanced`` gives every class n / K rows, split by the
shares; ``released`` gives every (generator, class) cell rows in proportion to its weight
(with ``"equal"``, every generator n / G rows, split over its classes by its own counts).

Pure arithmetic on public manifest fields: no privacy budget is spent, and the server
computes the shares it lists without loading any model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from threedgl.apportion import class_counts

__all__ = ["WEIGHTINGS", "allocate", "class_shares"]

#: The pool's weighting rules.
WEIGHTINGS: tuple[str, ...] = ("rows", "equal")

#: One generator's released rows per class label (labels it does not model are absent).
Rows = Mapping[Any, float]


def _weight(rows: float | None, weighting: str) -> float:
    if weighting == "equal":
        return 1.0
    if rows is None or not isinstance(rows, (int, float)) or not math.isfinite(rows):
        return 0.0
    return max(0.0, float(rows))


def _check(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        from threedgl.errors import ThreedglError

        raise ThreedglError(f"weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")


def class_shares(generators: Sequence[Rows], labels: Sequence[Any],
                 weighting: str = "rows") -> list[dict[Any, float]]:
    """Per generator, its share (a fraction in [0, 1]) of each class it models."""
    _check(weighting)
    out: list[dict[Any, float]] = [{} for _ in generators]
    for label in labels:
        owners = [g for g, rows in enumerate(generators) if label in rows]
        if not owners:
            continue
        weights = [_weight(generators[g][label], weighting) for g in owners]
        total = sum(weights)
        for g, w in zip(owners, weights, strict=True):
            out[g][label] = w / total if total > 0 else 1.0 / len(owners)
    return out


def allocate(n: int, generators: Sequence[Rows], labels: Sequence[Any], *,
             balanced: bool = True, weighting: str = "rows") -> list[dict[Any, int]]:
    """Rows per generator and per class for ``n`` pool rows (``labels``: every class some
    generator models, in the schema's order)."""
    _check(weighting)
    out: list[dict[Any, int]] = [dict.fromkeys(rows, 0) for rows in generators]
    if balanced or weighting == "rows":
        shares = class_shares(generators, labels, weighting)
        if balanced:
            per_class = class_counts(int(n), [1.0] * len(labels))
        else:  # released: each class in proportion to its rows in the pool
            per_class = class_counts(int(n), [
                sum(_weight(rows[label], weighting) for rows in generators if label in rows)
                for label in labels])
        for label, n_class in zip(labels, per_class, strict=True):
            owners = [g for g in range(len(generators)) if label in shares[g]]
            split = class_counts(n_class, [shares[g][label] for g in owners])
            for g, rows in zip(owners, split, strict=True):
                out[g][label] += rows
        return out
    # released, equal: every generator n / G rows, split by its own class sizes
    per_generator = class_counts(int(n), [1.0] * len(generators))
    for g, released in enumerate(generators):
        own = list(released)
        split = class_counts(per_generator[g], [released[x] for x in own])
        for label, k in zip(own, split, strict=True):
            out[g][label] += k
    return out
