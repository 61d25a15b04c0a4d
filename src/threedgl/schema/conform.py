"""Conforming a table's values to a schema's columns (what :meth:`Schema.validate` does per
column) and the missing-value policy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.columns import CategoricalColumn, NanPolicy, NumericColumn, _key

__all__ = [
    "apply_nan_policy",
    "category_codes",
    "conform_numeric",
    "kept_rows",
    "outside_bounds",
    "warn_clipped",
    "where",
]


def apply_nan_policy(table: pd.DataFrame, nan_policy: NanPolicy = "error") -> pd.DataFrame:
    """Apply the missing-value policy to a table (used by :meth:`Schema.validate` and the CLI).

    ``"error"`` raises a :class:`SchemaError` naming the first column with missing values
    and how many rows; ``"drop"`` returns the table without the rows that have one.
    """
    keep = kept_rows(table, list(table.columns), nan_policy)
    return table if keep is None else table[keep]


def kept_rows(table: pd.DataFrame, columns: list, nan_policy: NanPolicy = "error"  # type: ignore[type-arg]
              ) -> np.ndarray | None:
    """The missing-value policy over ``columns`` of ``table``, one column at a time: None
    when no value is missing, else (``"drop"``) the mask of the rows kept; ``"error"``
    raises as :func:`apply_nan_policy` does."""
    if nan_policy not in ("error", "drop"):
        raise SchemaError(f"nan_policy must be 'error' or 'drop', got {nan_policy!r}")
    with_nan: dict[str, int] = {}
    missing: np.ndarray | None = None
    for c in columns:
        isna = table[c].isna().to_numpy()
        n = int(isna.sum())
        if n:
            with_nan[str(c)] = n
            missing = isna if missing is None else missing | isna
    if missing is None:
        return None
    if nan_policy == "drop":
        if missing.all():
            raise SchemaError("every row has a missing value; nothing is left after dropping")
        return ~missing
    c, n = next(iter(with_nan.items()))
    more = f" (and {len(with_nan) - 1} more column(s))" if len(with_nan) > 1 else ""
    raise SchemaError(
        f"column '{c}' has {n} missing value(s){more}; drop those rows first or use "
        "nan_policy='drop' (--drop-missing on the command line)"
    )


def conform_numeric(col: NumericColumn, series: pd.Series) -> pd.Series:
    """A numeric column's values as float64 (int64 for an integer column), or an error
    naming the column, the first text value and its row."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise SchemaError(f"column '{col.name}' is numeric in the schema but holds true/false values")
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.astype("float64")
    else:
        values = pd.to_numeric(series, errors="coerce")
        bad = values.isna() & series.notna()
        if bad.any():
            first = series[bad].iloc[0]
            raise SchemaError(
                f"column '{col.name}' is numeric but holds text: {first!r} "
                f"({int(bad.sum())} row(s), first {where(series, bad)})"
            )
        values = values.astype("float64")
    if not np.isfinite(values.to_numpy()).all():
        raise SchemaError(f"column '{col.name}' holds infinite values")
    if col.integer:
        return values.round().astype("int64")
    return values


def where(series: pd.Series, bad: pd.Series) -> str:
    """Where the first flagged row is, for a person: the 1-based data row, and the line of
    a CSV file with one header line (a table read from a file keeps its row numbers as its
    index, so rows dropped earlier do not shift it)."""
    label = series[bad].index[0]
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        n = int(label)
    else:
        n = int(np.flatnonzero(bad.to_numpy())[0])
    return f"in data row {n + 1}, line {n + 2} of a CSV file with a header line"


def warn_clipped(clipped: list[str], stacklevel: int = 2) -> None:
    """The one warning for values clipped to the schema's bounds, naming the columns and
    their public bounds only (no number computed from the rows)."""
    if clipped:
        warnings.warn(
            f"values outside the schema's bounds are clipped to them in column(s) "
            f"{', '.join(clipped)}",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def outside_bounds(col: NumericColumn, values: pd.Series) -> bool:
    """Whether any value lies outside the column's bounds (the encoder clips it)."""
    v = values.to_numpy()
    return bool(len(v)) and bool((v < col.minimum).any() or (v > col.maximum).any())


def category_codes(col: CategoricalColumn, series: pd.Series) -> np.ndarray:
    """Each value's index into the column's categories (int64), or an error naming the
    values that are not among them (mapped to the fallback category if it has one)."""
    # Matched per distinct value (then spread to the rows): the tables are long and have
    # few distinct values per column.
    lookup = {_key(c): i for i, c in enumerate(col.categories)}
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    ukeys = [_key(u) for u in uniques]
    uknown = np.array([k in lookup for k in ukeys], dtype=bool)
    if not uknown.all():
        known = uknown[codes]
        if col.fallback is None:
            unknown = series[~known]
            values = sorted({repr(v) for v in unknown.unique()})[:5]
            raise SchemaError(
                f"column '{col.name}' holds {', '.join(values)}, not among its categories "
                f"{list(col.categories)!r} ({int((~known).sum())} row(s))"
            )
        ukeys = [k if ok else _key(col.fallback) for k, ok in zip(ukeys, uknown, strict=True)]
    ucodes = np.array([lookup[k] for k in ukeys], dtype=np.int64)
    return ucodes[codes]


def _conform_categorical(col: CategoricalColumn, series: pd.Series) -> pd.Series:
    cats = np.empty(len(col.categories), dtype=object)
    cats[:] = list(col.categories)
    mapped = pd.Series(cats[category_codes(col, series)], index=series.index, name=series.name,
                       dtype=object)
    if col.category_type is bool:
        return mapped.astype(bool)
    if col.category_type is int:
        return mapped.astype("int64")
    return mapped.astype(object)
