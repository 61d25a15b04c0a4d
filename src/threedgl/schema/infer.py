"""Inferring a schema from a table (``source="data"``: not private)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.conform import where
from threedgl.schema.schema import CategoricalColumn, Category, Column, NumericColumn, Schema

__all__ = ["infer_schema"]


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    *,
    categorical: Iterable[str] = (),
    numeric: Iterable[str] = (),
    integer: Iterable[str] = (),
    log_scale: Iterable[str] = (),
    max_categories: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> Schema:
    """Infer a schema from a table (``source="data"``).

    Numeric dtypes become numeric columns with the observed minimum and maximum
    (``integer`` when the dtype is an integer dtype, every value is a whole number
    ("157.0"), or the column is listed in ``integer``); every other dtype, the class column
    and the columns listed in ``categorical`` become categorical with their sorted observed
    values. Numeric columns listed in ``log_scale`` get ``scale="log"`` (skewed columns:
    see :class:`NumericColumn`).

    A text column whose values are mostly numbers (at least :data:`NUMERIC_SHARE` of its
    distinct values, or numbers written with thousands separators such as ``"1,234"``) is
    not silently made categorical: a :class:`SchemaError` names it with examples of its
    other values. List it in ``numeric`` to make it numeric (bounds from the values that
    are numbers, ``"1,234"`` read as 1234; the others are left for validation to refuse),
    or in ``categorical`` to keep it categorical.

    Warning: bounds and categories inferred from private data are functions of that data
    and are *not* protected by differential privacy. Declare the schema in public for a
    real federation.

    One column at a time (text is parsed once per distinct value); ``progress(done,
    total)`` counts the columns.
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
    numeric = set(numeric)
    integer = set(integer)
    log_scale = set(log_scale)
    for name in categorical | numeric | integer | log_scale:
        if name not in df.columns:
            raise SchemaError(f"column '{name}' is not in the table")
    both = sorted(categorical & numeric)
    if both:
        raise SchemaError(f"column '{both[0]}' is listed as both categorical and numeric")
    columns: list[Column] = []
    for i, name in enumerate(df.columns):
        if progress is not None and i:
            progress(i, len(df.columns))
        s = df[name]
        if s.isna().all():
            raise SchemaError(f"column '{name}' has no values (all missing)")
        s = s.dropna()
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        if not is_num and name != target and name not in categorical:
            parsed = _numbers(s)
            if name in numeric:
                s, is_num = parsed.dropna(), True
                if len(s) == 0:
                    raise SchemaError(f"column '{name}' (--numeric) holds no number")
            else:
                _refuse_numeric_looking(str(name), s, parsed)
        if is_num and name != target and name not in categorical:
            as_int = (pd.api.types.is_integer_dtype(s.dtype) or name in integer
                      or bool(np.all(np.mod(s.to_numpy(dtype=np.float64), 1.0) == 0)))
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
    if progress is not None:
        progress(len(df.columns), len(df.columns))
    return Schema(tuple(columns), target=target, source="data")


#: A text column whose distinct values are at least this share numbers looks numeric.
NUMERIC_SHARE = 0.8
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def _numbers(s: pd.Series) -> pd.Series:
    """The values of a text column read as numbers ('1,234' as 1234), NaN where not
    (each distinct value parsed once)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str).str.strip()
    plain = text.where(~text.str.match(_THOUSANDS), text.str.replace(",", "", regex=False))
    parsed = pd.to_numeric(plain, errors="coerce").to_numpy()
    return pd.Series(parsed[codes], index=s.index, name=s.name)


def _refuse_numeric_looking(name: str, s: pd.Series, parsed: pd.Series) -> None:
    """Raise when a text column looks numeric: mostly numbers, or thousands separators."""
    _, uniques = pd.factorize(s, use_na_sentinel=False)
    distinct = pd.unique(pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str))
    if len(distinct) < 3:
        return
    is_number = pd.to_numeric(pd.Series(distinct), errors="coerce").notna().to_numpy()
    separated = [v for v in distinct if _THOUSANDS.match(v.strip())]
    if (is_number.mean() < NUMERIC_SHARE or is_number.all()) and not separated:
        return  # mostly words, or numbers held as text on purpose (codes): categorical
    others = [v for v, ok in zip(distinct, is_number, strict=True) if not ok]
    if separated:
        what = (f"holds numbers written with thousands separators, such as "
                f"{', '.join(repr(v) for v in separated[:2])}, which are read as text (write "
                "them without separators)")
        others = [v for v in others if v not in separated]
        if others:
            what += f", and text such as {', '.join(repr(v) for v in others[:3])}"
    else:
        bad = parsed.isna()
        what = (f"looks numeric ({1 - bad.mean():.0%} of its values are numbers) but holds "
                f"text such as {', '.join(repr(v) for v in others[:3])} (the first "
                f"{where(s, bad)})")
    raise SchemaError(
        f"column '{name}' {what}. Fix those values, or infer the schema with "
        f"`3dgl schema infer --numeric {name}` (numeric=[...] in Python: bounds from its "
        f"numbers; training then refuses the rest) or `--categorical {name}` to keep it "
        "categorical"
    )


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
