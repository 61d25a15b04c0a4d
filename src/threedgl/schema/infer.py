"""Inferring a schema from a table (``source="data"``: not private)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.schema import CategoricalColumn, Category, Column, NumericColumn, Schema

__all__ = ["infer_schema"]


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    *,
    categorical: Iterable[str] = (),
    integer: Iterable[str] = (),
    log_scale: Iterable[str] = (),
    max_categories: int = 1000,
) -> Schema:
    """Infer a schema from a table (``source="data"``).

    Numeric dtypes become numeric columns with the observed minimum and maximum
    (``integer`` when the dtype is an integer dtype or the column is listed in
    ``integer``); every other dtype, the class column and the columns listed in
    ``categorical`` become categorical with their sorted observed values. Numeric columns
    listed in ``log_scale`` get ``scale="log"`` (skewed columns: see :class:`NumericColumn`).

    Warning: bounds and categories inferred from private data are functions of that data
    and are *not* protected by differential privacy. Declare the schema in public for a
    real federation.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise SchemaError("the table is empty (no rows)")
    if target is not None and target not in df.columns:
        raise SchemaError(
            f"class column '{target}' is not in the table (it has: {', '.join(map(str, df.columns))})"
        )
    categorical = set(categorical)
    integer = set(integer)
    log_scale = set(log_scale)
    for name in categorical | integer | log_scale:
        if name not in df.columns:
            raise SchemaError(f"column '{name}' is not in the table")
    columns: list[Column] = []
    for name in df.columns:
        s = df[name]
        if s.isna().all():
            raise SchemaError(f"column '{name}' has no values (all missing)")
        s = s.dropna()
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        if is_num and name != target and name not in categorical:
            as_int = pd.api.types.is_integer_dtype(s.dtype) or name in integer
            columns.append(
                NumericColumn(str(name), float(s.min()), float(s.max()), integer=bool(as_int),
                              scale="log" if name in log_scale else "linear")
            )
            continue
        if name in log_scale:
            raise SchemaError(f"column '{name}' is listed in log_scale but is not numeric")
        values = list(pd.unique(s))
        if len(values) > max_categories:
            raise SchemaError(
                f"column '{name}' has {len(values)} distinct values (more than max_categories="
                f"{max_categories}); is it numeric text? declare it in a schema"
            )
        cats = _sorted_categories(values)
        columns.append(CategoricalColumn(str(name), tuple(cats)))
    return Schema(tuple(columns), target=target, source="data")


def _sorted_categories(values: Sequence[Any]) -> list[Category]:
    out: list[Category] = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)) or (
            isinstance(v, (float, np.floating)) and float(v).is_integer()
        ):
            out.append(int(v))
        else:
            out.append(str(v))
    if len({type(v) for v in out}) > 1:
        out = [str(v) for v in out]
    try:
        return sorted(out)  # type: ignore[type-var]
    except TypeError:
        return sorted(out, key=str)
