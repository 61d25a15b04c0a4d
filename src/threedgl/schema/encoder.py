"""A reversible encoder built from the schema alone, never fitted on data.

Encoding (features only; the class column is handled by the per-class models):

* numeric column → one value ``(x - min) / (max - min)`` clipped to ``[0, 1]``
  (``0`` when ``min == max``);
* categorical column → a one-hot block over the schema's categories.

Decoding turns model outputs that are not exactly one-hot or in range into a valid
table: numeric values are clipped to ``[0, 1]``, mapped back to the bounds and rounded
for integer columns; a categorical block is read as unnormalised scores and decoded by
``argmax`` (default) or by sampling from the normalised, non-negative scores
(``categorical="sample"``, with a passed random generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.schema import CategoricalColumn, Column, NanPolicy, NumericColumn, Schema


@dataclass(frozen=True)
class Span:
    """Where one column lives in the encoded matrix: ``matrix[:, start:stop]``."""

    name: str
    kind: Literal["numeric", "categorical"]
    start: int
    stop: int

    @property
    def width(self) -> int:
        return self.stop - self.start


class TableEncoder:
    """Encode the feature columns of a table to a float32 matrix and back.

    Built from a :class:`Schema` only. ``encode`` validates the table against the schema
    (so bad input raises :class:`SchemaError` naming the column and value).
    """

    def __init__(self, schema: Schema) -> None:
        if not isinstance(schema, Schema):
            raise SchemaError(f"TableEncoder needs a Schema, got {type(schema).__name__}")
        self.schema = schema
        spans: list[Span] = []
        pos = 0
        for col in schema.features:
            width = 1 if isinstance(col, NumericColumn) else len(col.categories)
            spans.append(Span(col.name, col.kind, pos, pos + width))
            pos += width
        self.spans: tuple[Span, ...] = tuple(spans)
        self.n_outputs = pos

    @property
    def layout(self) -> list[tuple[str, int, int]]:
        """``[(kind, start, stop), ...]``: what the models need to build their output heads."""
        return [(s.kind, s.start, s.stop) for s in self.spans]

    def encode(self, df: pd.DataFrame, *, nan_policy: NanPolicy = "error") -> np.ndarray:
        """Validate the table's feature columns and encode them (class column ignored)."""
        table = self.schema.validate(
            df, require_target=False, nan_policy=nan_policy, extra_columns="drop"
        )
        return self.encode_valid(table)

    def encode_valid(self, table: pd.DataFrame) -> np.ndarray:
        """Encode a table that :meth:`Schema.validate` already conformed."""
        out = np.zeros((len(table), self.n_outputs), dtype=np.float32)
        for span, col in zip(self.spans, self.schema.features, strict=True):
            values = table[col.name]
            if isinstance(col, NumericColumn):
                out[:, span.start] = _scale(col, values.to_numpy(dtype=np.float64))
            else:
                codes = _codes(col, values)
                out[np.arange(len(table)), span.start + codes] = 1.0
        return out

    def decode(
        self,
        matrix: np.ndarray,
        *,
        categorical: Literal["argmax", "sample"] = "argmax",
        rng: np.random.Generator | None = None,
        target_values: np.ndarray | pd.Series | list | None = None,
    ) -> pd.DataFrame:
        """Decode a matrix of model outputs to a table in the schema's format.

        ``target_values``, if given, is inserted as the class column at its position, so
        the table has the schema's full column order.
        """
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_outputs:
            raise SchemaError(
                f"expected a matrix with {self.n_outputs} columns, got shape {x.shape}"
            )
        if categorical == "sample" and rng is None:
            raise SchemaError("categorical='sample' needs a random generator (rng)")
        data: dict[str, pd.Series | np.ndarray] = {}
        for span, col in zip(self.spans, self.schema.features, strict=True):
            block = x[:, span.start : span.stop]
            if isinstance(col, NumericColumn):
                data[col.name] = _unscale(col, block[:, 0])
            else:
                if categorical == "argmax":
                    codes = np.argmax(np.nan_to_num(block, nan=-np.inf), axis=1)
                elif categorical == "sample":
                    assert rng is not None
                    codes = _sample_codes(block, rng)
                else:
                    raise SchemaError(
                        f"categorical must be 'argmax' or 'sample', got {categorical!r}"
                    )
                data[col.name] = _labels(col, codes)
        frame = pd.DataFrame(data)
        if self.schema.target is not None and target_values is not None:
            tcol = self.schema[self.schema.target]
            assert isinstance(tcol, CategoricalColumn)
            values = pd.Series(np.asarray(target_values, dtype=object))
            labels = _conform_labels(tcol, values)
            frame[tcol.name] = pd.Series(
                labels, index=frame.index, dtype=object if tcol.category_type is str else None
            )
            frame = frame.loc[:, list(self.schema.names)]
        return frame


def _scale(col: NumericColumn, values: np.ndarray) -> np.ndarray:
    span = col.maximum - col.minimum
    if span <= 0:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - col.minimum) / span, 0.0, 1.0).astype(np.float32)


def _unscale(col: NumericColumn, values: np.ndarray) -> np.ndarray:
    v = np.clip(np.nan_to_num(values, nan=0.5), 0.0, 1.0)
    out = col.minimum + v * (col.maximum - col.minimum)
    out = np.clip(out, col.minimum, col.maximum)
    if col.integer:
        return np.clip(np.rint(out), np.ceil(col.minimum), np.floor(col.maximum)).astype(np.int64)
    return out.astype(np.float64)


def _codes(col: CategoricalColumn, values: pd.Series) -> np.ndarray:
    index = {c: i for i, c in enumerate(col.categories)}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def _sample_codes(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = np.clip(np.nan_to_num(block, nan=0.0), 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)
    cdf = np.cumsum(p, axis=1)
    u = rng.random((p.shape[0], 1)) * cdf[:, -1:]
    codes = (cdf < u).sum(axis=1)
    return np.minimum(codes, p.shape[1] - 1)


def _labels(col: CategoricalColumn, codes: np.ndarray) -> np.ndarray | pd.Series:
    cats = np.asarray(col.categories, dtype=object)
    values = cats[codes]
    return _typed(col, values)


def _typed(col: Column, values: np.ndarray) -> np.ndarray | pd.Series:
    assert isinstance(col, CategoricalColumn)
    if col.category_type is bool:
        return values.astype(bool)
    if col.category_type is int:
        return values.astype(np.int64)
    return pd.Series(values, dtype=object)


def _conform_labels(col: CategoricalColumn, values: pd.Series) -> np.ndarray | pd.Series:
    lookup = {str(c): c for c in col.categories}
    # each distinct text once, in order of appearance (the first unknown one is named); the
    # text, not the value: 1 and True are one value but different labels
    # (a NumPy array first: iterating an Arrow-backed column in Python is slow)
    raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    texts = np.asarray([str(v) for v in raw], dtype=object)
    codes, distinct = pd.factorize(texts, use_na_sentinel=False)
    try:
        mapped = np.asarray([lookup[v] for v in distinct], dtype=object)[codes]
    except KeyError as exc:
        raise SchemaError(
            f"class label {exc.args[0]!r} is not among the labels {list(col.categories)!r}"
        ) from None
    out = _typed(col, mapped)
    return out.to_numpy() if isinstance(out, pd.Series) else out
