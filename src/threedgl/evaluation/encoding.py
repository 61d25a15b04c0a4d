"""The paper's evaluation encoding: what the evaluation classifiers see.

Built from the public :class:`~threedgl.schema.Schema` only, never fitted on data, so a
real table and a synthetic table are encoded identically (SPEC §7):

* numeric column → ``(x - minimum) / (maximum - minimum)`` with the *schema's* bounds,
  clipped to ``[0, 1]`` (``0`` when ``minimum == maximum``);
* categorical column, ``mode="label"`` (the paper's encoding, the default) → the index of
  the value in the schema's categories (label encoding, "ordinal codes"), divided by
  ``n_categories - 1`` so it lies in ``[0, 1]`` (``0`` for a single category);
* categorical column, ``mode="onehot"`` → a one-hot block over the schema's categories.

The class column becomes ``y``, the integer index of each label in ``schema.labels``.
With ``include_target=True`` it is also encoded as a feature (the discriminator uses
this: it tells real from synthetic rows, and the class is part of a row).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from threedgl.errors import ThreedglError
from threedgl.schema import CategoricalColumn, Column, NumericColumn, Schema

EncodingMode = Literal["label", "onehot"]
T = TypeVar("T")
ENCODING_MODES: tuple[str, ...] = ("label", "onehot")


def check_mode(mode: object) -> EncodingMode:
    if mode not in ENCODING_MODES:
        raise ThreedglError(
            f"The 'encoding' parameter must be one of {list(ENCODING_MODES)!r}. Got {mode!r} instead."
        )
    return mode  # type: ignore[return-value]


def category_codes(col: CategoricalColumn, values: pd.Series) -> np.ndarray:
    """Schema category index of each value of a column already conformed by ``validate``."""
    index = {c: i for i, c in enumerate(col.categories)}
    # Looked up per distinct value, then spread to the rows.
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    lookup = np.fromiter((index[v] for v in uniques), dtype=np.int64, count=len(uniques))
    return lookup[codes] if len(values) else np.zeros(0, dtype=np.int64)


class EvaluationEncoder:
    """Encode a table to ``(X, y)`` for the evaluation classifiers, from the schema alone.

    >>> from threedgl.schema import Schema, NumericColumn, CategoricalColumn
    >>> s = Schema((NumericColumn("age", 0, 100), CategoricalColumn("c", ("a", "b", "c")),
    ...             CategoricalColumn("y", ("no", "yes"))), target="y")
    >>> X, y = EvaluationEncoder(s).transform(
    ...     pd.DataFrame({"age": [25.0], "c": ["c"], "y": ["yes"]}))
    >>> X.tolist(), y.tolist()
    ([[0.25, 1.0]], [1])
    """

    def __init__(
        self, schema: Schema, mode: EncodingMode = "label", *, include_target: bool = False
    ) -> None:
        if not isinstance(schema, Schema):
            raise ThreedglError(f"EvaluationEncoder needs a Schema, got {type(schema).__name__}")
        self.schema = schema
        self.mode: EncodingMode = check_mode(mode)
        self.include_target = bool(include_target)
        if self.include_target and schema.target is None:
            raise ThreedglError("include_target=True needs a schema with a class column")
        self.columns: tuple[Column, ...] = (
            schema.columns if self.include_target else schema.features
        )
        names: list[str] = []
        for col in self.columns:
            if isinstance(col, CategoricalColumn) and self.mode == "onehot":
                names.extend(f"{col.name}={c}" for c in col.categories)
            else:
                names.append(col.name)
        self.feature_names: tuple[str, ...] = tuple(names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Validate ``df`` against the schema (extra columns dropped); the class column is
        required when the schema has one and the table holds it or ``include_target``."""
        return self.schema.validate(df, require_target=self._require_target(df),
                                    extra_columns="drop")

    def _require_target(self, df: pd.DataFrame) -> bool:
        target = self.schema.target
        return target is not None and (self.include_target or target in df.columns)

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """``(X, y)``: ``X`` float64 of shape ``(n, n_features)`` in ``[0, 1]``; ``y`` the
        class codes (int64), or ``None`` when the table has no class column. Inside
        :func:`encoded_once`, a table already encoded (the same object, schema and mode)
        is not validated and encoded again."""
        def encode() -> tuple[np.ndarray, np.ndarray | None]:
            table = validated(self.schema, df, require_target=self._require_target(df))
            X, y = self.transform_valid(table)
            for array in (X, y):
                if array is not None and _ENCODED.get() is not None:
                    array.flags.writeable = False  # shared by every caller in the block
            return X, y

        return computed_once(df, self.schema, ("encoded", self.mode, self.include_target),
                             encode)

    def transform_valid(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :meth:`transform` for a table that :meth:`Schema.validate` conformed."""
        n = len(table)
        blocks: list[np.ndarray] = []
        for col in self.columns:
            values = table[col.name]
            if isinstance(col, NumericColumn):
                blocks.append(_scale(col, values.to_numpy(dtype=np.float64))[:, None])
            else:
                codes = category_codes(col, values)
                k = len(col.categories)
                if self.mode == "label":
                    denom = max(k - 1, 1)
                    blocks.append((codes / denom).astype(np.float64)[:, None])
                else:
                    block = np.zeros((n, k), dtype=np.float64)
                    block[np.arange(n), codes] = 1.0
                    blocks.append(block)
        X = np.hstack(blocks) if blocks else np.zeros((n, 0))
        y: np.ndarray | None = None
        target = self.schema.target
        if target is not None and target in table.columns:
            tcol = self.schema[target]
            assert isinstance(tcol, CategoricalColumn)
            y = category_codes(tcol, table[target])
        return X, y

    def inverse_transform(self, X: np.ndarray, y: np.ndarray | None = None) -> pd.DataFrame:
        """Decode an encoded matrix (and class codes) back to a table in the schema's format.

        Numeric values are clipped to ``[0, 1]`` and mapped back to the schema bounds
        (rounded for integer columns); label codes are rounded to the nearest category,
        one-hot blocks decoded by ``argmax``.
        """
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ThreedglError(
                f"expected a matrix with {self.n_features} columns, got shape {x.shape}"
            )
        data: dict[str, object] = {}
        pos = 0
        for col in self.columns:
            if isinstance(col, NumericColumn):
                v = np.clip(x[:, pos], 0.0, 1.0)
                out = col.minimum + v * (col.maximum - col.minimum)
                data[col.name] = np.rint(out).astype(np.int64) if col.integer else out
                pos += 1
                continue
            k = len(col.categories)
            if self.mode == "label":
                codes = np.clip(np.rint(x[:, pos] * max(k - 1, 1)), 0, k - 1).astype(np.int64)
                pos += 1
            else:
                codes = np.argmax(x[:, pos : pos + k], axis=1)
                pos += k
            data[col.name] = _labels(col, codes)
        target = self.schema.target
        if y is not None and target is not None and not self.include_target:
            tcol = self.schema[target]
            assert isinstance(tcol, CategoricalColumn)
            data[target] = _labels(tcol, np.asarray(y, dtype=np.int64))
        names = [c for c in self.schema.names if c in data]
        return pd.DataFrame({c: data[c] for c in names})


def _scale(col: NumericColumn, values: np.ndarray) -> np.ndarray:
    span = col.maximum - col.minimum
    if span <= 0:
        return np.zeros_like(values, dtype=np.float64)
    return np.clip((values - col.minimum) / span, 0.0, 1.0)


def _labels(col: CategoricalColumn, codes: np.ndarray) -> np.ndarray | pd.Series:
    cats = np.asarray(col.categories, dtype=object)[codes]
    if col.category_type is bool:
        return cats.astype(bool)
    if col.category_type is int:
        return cats.astype(np.int64)
    return pd.Series(cats, dtype=object)  # object dtype, as Schema.validate returns


class _Cache(dict[tuple[Any, ...], tuple[Any, Any, Any]]):
    """What one :func:`encoded_once` block computed per table (weak references to them)."""


def _forget(cache: weakref.ref[_Cache], key: tuple[Any, ...]) -> None:
    live = cache()
    if live is not None:
        live.pop(key, None)


def computed_once(df: pd.DataFrame, schema: Schema, what: tuple[Any, ...],
                  compute: Callable[[], T]) -> T:
    """``compute()``, the ``what`` of table ``df`` under ``schema``: inside
    :func:`encoded_once`, once per table object (the same ``df`` and ``schema`` objects);
    outside, every time."""
    cache = _ENCODED.get()
    if cache is None:
        return compute()
    key = (id(df), id(schema), *what)
    hit = cache.get(key)
    if hit is not None and hit[0]() is df and hit[1] is schema:
        return hit[2]  # type: ignore[no-any-return]
    value = compute()
    # a weak reference: a table no one holds any more leaves the cache with what was
    # computed from it (and its id, which a new table may get, with it)
    cache[key] = (weakref.ref(df), schema, value)
    weakref.finalize(df, _forget, weakref.ref(cache), key)
    return value


def validated(schema: Schema, df: pd.DataFrame, *, require_target: bool) -> pd.DataFrame:
    """``schema.validate(df, require_target=..., extra_columns="drop")``, once per table
    inside :func:`encoded_once` (the caller must not change the frame it gets)."""
    return computed_once(df, schema, ("validated", bool(require_target)),
                         lambda: schema.validate(df, require_target=require_target,
                                                 extra_columns="drop"))


_ENCODED: ContextVar[_Cache | None] = ContextVar("threedgl_encoded", default=None)


@contextmanager
def encoded_once() -> Iterator[None]:
    """Within the block, :meth:`EvaluationEncoder.transform` validates and encodes each
    table object once, however many scores, sweeps and discriminators read it (the
    evaluation of a client or of a reproduction run encodes the same real and synthetic
    tables dozens of times: 28 % of an Adult client's evaluation); the divergences, the
    k-way marginals and the pairwise associations validate each table once too, and
    the real table's associations are computed once (:func:`computed_once`). The block
    must not change a table in place once it was read; the arrays are read-only, so code
    that would write to them fails instead of changing another caller's data. Scores are
    the same as without it (tested)."""
    token = _ENCODED.set(_Cache())
    try:
        yield
    finally:
        _ENCODED.reset(token)
