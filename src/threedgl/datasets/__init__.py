"""The five bundled datasets of the paper, prepared as in SPEC §7.

>>> from threedgl import datasets
>>> ds = datasets.load("breast-cancer")
>>> ds.frame.shape, ds.target, ds.positive_label
((569, 31), 'diagnosis', 'B')

Raw files ship with the package (``threedgl/datasets/data/``, gzip, with
``PROVENANCE.md`` and the licence notes in ``README.md``); nothing is downloaded.

Column conventions of every prepared frame: integer-valued numeric columns are
``int64``, real-valued ones ``float64``, categorical columns and the class column hold
strings in ``object`` dtype, the class column is last, and there are no missing values.
Titanic's ``pclass`` is categorical (``"1"``, ``"2"``, ``"3"``): a three-level ticket
class, so generators emit only valid classes; under the paper's evaluation encoding
(label codes, then min-max scaling) it encodes exactly as the integer would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from threedgl.datasets._prepare import DATASETS, prepare
from threedgl.errors import ThreedglError

if TYPE_CHECKING:
    from threedgl.schema import Schema

__all__ = ["NAMES", "Dataset", "load", "summary"]

NAMES: tuple[str, ...] = ("titanic", "breast-cancer", "mushrooms", "adult", "wine-quality")


@dataclass(frozen=True)
class Dataset:
    """One prepared dataset.

    ``frame`` is the prepared table including the class column ``target``;
    ``positive_label`` is the class label counted as positive (class 1), exactly as it
    appears in ``frame[target]``. ``schema`` is inferred from ``frame`` (so it is
    data-derived, see SPEC §2).
    """

    name: str
    frame: pd.DataFrame
    schema: Schema
    target: str
    positive_label: str
    description: str
    source: str

    @property
    def features(self) -> list[str]:
        """Names of the feature columns (every column but the class column)."""
        return [c for c in self.frame.columns if c != self.target]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in DATASETS:
        raise ThreedglError(f"Unknown dataset {name!r}. Valid names: {', '.join(NAMES)}.")
    return name


def load(name: str) -> Dataset:
    """Load the bundled dataset ``name`` (one of :data:`NAMES`), prepared as in SPEC §7.

    Each call returns a fresh copy of the frame: mutating it does not affect later
    calls. Raises :class:`~threedgl.errors.ThreedglError` for an unknown name.
    """
    from threedgl.schema import infer_schema  # imported here: keeps this module light

    key = _check_name(name)
    info = DATASETS[key]
    frame = prepare(key).copy(deep=True)
    schema = infer_schema(frame, target=info.target, log_scale=info.log_scale)
    return Dataset(
        name=info.name,
        frame=frame,
        schema=schema,
        target=info.target,
        positive_label=info.positive_label,
        description=info.description,
        source=info.source,
    )


def summary() -> pd.DataFrame:
    """One row per bundled dataset: name, rows, columns (feature columns), target,
    positive label, and class balance (share of rows with the positive label)."""
    rows = []
    for name in NAMES:
        info = DATASETS[name]
        frame = prepare(name)
        rows.append(
            {
                "name": name,
                "rows": len(frame),
                "columns": frame.shape[1] - 1,
                "target": info.target,
                "positive_label": info.positive_label,
                "class_balance": float((frame[info.target] == info.positive_label).mean()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["name", "rows", "columns", "target", "positive_label", "class_balance"],
    )
