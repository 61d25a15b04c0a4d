"""A table validated and encoded column by column, kept compact until a batch needs it.

:meth:`Schema.validate` followed by :meth:`TableEncoder.encode_valid` holds the whole table
three times (the table, its conformed copy, the float32 matrix of one-hot blocks: 4 bytes
per encoded column and row, 432 bytes a row for Adult). :func:`encode_table` does the same
checks, with the same errors and warnings, one column at a time, and keeps each feature
as one value per row (:class:`EncodedRows`): the scaled float32 value of a numeric column,
the category's code of a categorical one. Any rows expand to exactly the matrix
``encode_valid`` gives (:meth:`EncodedRows.matrix`), so a training that takes its batches
from it sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.columns import CategoricalColumn, NanPolicy, NumericColumn
from threedgl.schema.conform import (
    category_codes,
    conform_numeric,
    kept_rows,
    outside_bounds,
    warn_clipped,
)
from threedgl.schema.encoder import TableEncoder, _scale

__all__ = ["EncodedRows", "encode_table"]

#: Rows expanded at a time when a whole class is turned into something else (bin codes).
BLOCK_ROWS = 65_536

#: ``progress(done, total)``: columns conformed so far.
StageProgress = Callable[[int, int], None]


class EncodedRows:
    """Rows of a :class:`TableEncoder` matrix, one compact array per feature column.

    ``values[j]`` is feature j's column: float32 in [0, 1] (numeric) or the int code of
    its category (categorical). ``matrix(index)`` expands rows to the encoder's float32
    matrix; ``np.asarray(rows)`` expands them all.
    """

    def __init__(self, encoder: TableEncoder, values: Sequence[np.ndarray]) -> None:
        if len(values) != len(encoder.spans):
            raise SchemaError(f"expected {len(encoder.spans)} columns, got {len(values)}")
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise SchemaError("the columns of encoded rows differ in length")
        self.encoder = encoder
        self.values = list(values)
        self._n = lengths.pop() if lengths else 0

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n, self.encoder.n_outputs)

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.values)

    def take(self, index: np.ndarray) -> EncodedRows:
        """The rows at ``index`` (positions or a boolean mask), in that order."""
        return EncodedRows(self.encoder, [v[index] for v in self.values])

    def matrix(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """The float32 matrix of the rows at ``index`` (all rows if None): what
        :meth:`TableEncoder.encode_valid` gives for them."""
        cols = self.values if index is None else [v[index] for v in self.values]
        n = len(cols[0]) if cols else 0
        out = np.zeros((n, self.encoder.n_outputs), dtype=np.float32)
        rows = np.arange(n)
        for span, v in zip(self.encoder.spans, cols, strict=True):
            if span.kind == "numeric":
                out[:, span.start] = v
            else:
                out[rows, span.start + v] = 1.0
        return out

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[np.ndarray]:
        """The matrix in consecutive blocks of ``size`` rows."""
        for start in range(0, self._n, size):
            yield self.matrix(slice(start, start + size))

    def __array__(self, dtype: object = None, copy: bool | None = None) -> np.ndarray:
        out = self.matrix()
        return out if dtype is None else out.astype(dtype, copy=False)  # type: ignore[call-overload]


def _compact_codes(codes: np.ndarray, n_categories: int) -> np.ndarray:
    return codes.astype(np.int16 if n_categories <= np.iinfo(np.int16).max else np.int32)


def encode_table(
    encoder: TableEncoder,
    df: pd.DataFrame,
    *,
    require_target: bool = True,
    nan_policy: NanPolicy = "error",
    extra_columns: Literal["error", "drop"] = "error",
    progress: StageProgress | None = None,
) -> tuple[EncodedRows, np.ndarray | None]:
    """Validate ``df`` against the encoder's schema and encode it, one column at a time.

    The same checks, errors and warnings as :meth:`Schema.validate` (the NaN policy on the
    whole table first, then each column conformed in the schema's order), and the same
    numbers as :meth:`TableEncoder.encode_valid` of its result. Returns the encoded
    feature rows and, when the class column is present, each row's class index into
    ``schema.labels`` (int16), else None.
    """
    schema = encoder.schema
    present = schema.checked_columns(df, require_target=require_target,
                                     extra_columns=extra_columns)
    keep = kept_rows(df, present, nan_policy)
    values: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    clipped: list[str] = []
    for i, name in enumerate(present):
        series = df[name] if keep is None else df[name][keep]
        col = schema[name]
        if isinstance(col, NumericColumn):
            conformed = conform_numeric(col, series)
            if outside_bounds(col, conformed):
                clipped.append(f"'{name}' [{col.minimum:g}, {col.maximum:g}]")
            values[name] = _scale(col, conformed.to_numpy(dtype=np.float64))
        else:
            assert isinstance(col, CategoricalColumn)
            codes = _compact_codes(category_codes(col, series), len(col.categories))
            if name == schema.target:
                labels = codes
            else:
                values[name] = codes
        del series
        if progress is not None:
            progress(i + 1, len(present))
    warn_clipped(clipped)
    return EncodedRows(encoder, [values[c.name] for c in schema.features]), labels
