"""What one seed's 3DGL round is made of: the data, the external test split, the client folds,
and the seed of every random choice.

Every engine (the local process pool, Flower's simulation runtime) and every place a client
runs (a worker process, a Flower ClientApp) derives the same split from the same numbers,
so the same seeds give the same folds, generators and scores wherever they run:

1. the table is split stratified ``1 - test_size`` train / ``test_size`` test (the
   *external data*), seeded by ``derive_seed(random_state, seed, SPLIT)``;
2. the train part is split into K disjoint client folds (:mod:`threedgl.federation.splits`),
   seeded by ``derive_seed(random_state, seed, FOLDS)``;
3. client ``c`` trains with ``derive_seed(random_state, seed, TRAIN, c, bits=128)`` (128
   bits: its privacy noise derives from them) and evaluates
   with ``derive_seed(random_state, seed, EVAL, c)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.federation.splits import SplitSpec, make_folds
from threedgl.federation.workers import derive_seed
from threedgl.schema import Schema

# Purposes of derived seeds.
SPLIT, FOLDS, TRAIN, EVAL = 0, 1, 2, 3


@dataclass(frozen=True)
class SeedSplit:
    """One seed's external test set and client folds (client ``c`` holds ``folds[c]``)."""

    train: pd.DataFrame
    test: pd.DataFrame
    folds: list[pd.DataFrame]


@dataclass
class SeedOutcome:
    """What the clients of one seed report, whatever engine ran them: training warnings
    and, per client, the scores of every scenario but ``centralized`` (``evaluated[c]``)."""

    warnings: list[list[str]] = field(default_factory=list)
    evaluated: list[dict[str, dict[str, float]]] = field(default_factory=list)
    #: Participants without a generator (they could not train, or their generator was
    #: refused): client -> the reason. They scored their own data only.
    without_generator: dict[int, str] = field(default_factory=dict)


def split_for_seed(
    frame: pd.DataFrame,
    schema: Schema,
    clients: int,
    spec: SplitSpec,
    random_state: int,
    seed: int,
    *,
    test_size: float,
    min_rows: int,
) -> SeedSplit:
    """The external test split and the K client folds of seed index ``seed``."""
    from sklearn.model_selection import train_test_split

    target = schema.target
    assert target is not None
    train, test = train_test_split(
        frame,
        test_size=test_size,
        stratify=frame[target].astype(str),
        random_state=derive_seed(random_state, seed, SPLIT),
    )
    folds = make_folds(train, target, clients, spec, derive_seed(random_state, seed, FOLDS),
                       min_rows=min_rows)
    return SeedSplit(train=train, test=test, folds=folds)


def resolve_data(
    data: Any, target: str | None, schema: Schema | None, positive_label: Any, name: str | None
) -> tuple[str, pd.DataFrame, Schema, Any, str | None]:
    """``(name, validated frame, schema, positive label, preset)`` of ``data``: a bundled
    dataset name, a :class:`~threedgl.datasets.Dataset` or a DataFrame (with ``target`` or
    ``schema``); ``preset`` is the dataset's Table I preset name when it has one."""
    from threedgl.datasets import NAMES, Dataset, load
    from threedgl.model.presets import PRESETS

    if isinstance(data, str):
        if data not in NAMES:
            raise ThreedglError(
                f"unknown dataset {data!r}; bundled datasets: {', '.join(NAMES)} "
                "(or pass a DataFrame with target=...)"
            )
        data = load(data)
    if isinstance(data, Dataset):
        pos = data.positive_label if positive_label is None else positive_label
        ds_name = name or data.name
        return (ds_name, data.frame, schema or data.schema, pos,
                ds_name if ds_name in PRESETS else None)
    if not isinstance(data, pd.DataFrame):
        raise ThreedglError(
            f"simulate expects a dataset name, a Dataset or a DataFrame, got {type(data).__name__}"
        )
    if schema is None:
        if target is None:
            raise ThreedglError("a DataFrame needs target=... (the class column) or a schema")
        from threedgl.schema import infer_schema

        warnings.warn(
            "no schema given: inferring one from the whole table (its bounds and categories "
            "are not protected by differential privacy; pass the federation's public schema)",
            UserWarning,
            stacklevel=3,
        )
        schema = infer_schema(data, target=target)
    elif target is not None and schema.target != target:
        schema = schema.with_target(target)
    if schema.target is None:
        raise ThreedglError("the simulation needs a class column (target)")
    frame = schema.validate(data, require_target=True, nan_policy="error", extra_columns="error")
    if positive_label is None:
        from threedgl.evaluation import minority_label

        positive_label = minority_label(frame, schema)
    ds_name = name or "data"
    return ds_name, frame, schema, positive_label, ds_name if ds_name in PRESETS else None
