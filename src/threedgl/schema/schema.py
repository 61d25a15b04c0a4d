"""The public schema: column names, kinds, bounds, categories and the class column.

A federation agrees on a schema before anyone trains (SPEC §2). It is public: encoding
data with it leaks nothing. A schema *inferred* from private data does leak (its bounds
and category sets are functions of the data); :func:`infer_schema` marks such a schema
with ``source="data"`` and the manifest of every generator records it.

The schema is a frozen value type, validated when built, with an exact JSON round trip::

    >>> s = Schema(columns=(NumericColumn("age", 0, 100, integer=True),
    ...                     CategoricalColumn("y", ("no", "yes"))), target="y")
    >>> Schema.from_json(s.to_json()) == s
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError

SCHEMA_FORMAT = "threedgl.schema"
SCHEMA_VERSION = 1

Category = str | int | bool
NanPolicy = Literal["error", "drop"]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"a column name must be a non-empty string, got {name!r}")
    return name


#: The largest magnitude of a numeric bound: beyond it float64 loses integer precision and
#: ranges (maximum - minimum) may overflow.
MAX_ABS_BOUND = 1e15


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column with public bounds ``[minimum, maximum]``.

    Values outside the bounds are clipped when encoded. ``integer=True`` columns are
    rounded when decoded and come back as ``int64``. ``scale`` is public knowledge of the
    column's shape: ``"log"`` for a skewed column (fares, capital gains) makes binned
    generators cut its range into equal steps of ``log1p(x - minimum)`` instead of equal
    steps of ``x``.
    """

    name: str
    minimum: float
    maximum: float
    integer: bool = False
    scale: Literal["linear", "log"] = "linear"
    kind: Literal["numeric"] = field(default="numeric", init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise SchemaError(
                    f"column '{self.name}': {bound} must be a number, got {value!r}"
                )
            try:
                magnitude = abs(float(value))
            except OverflowError:
                magnitude = math.inf
            if not magnitude <= MAX_ABS_BOUND:
                raise SchemaError(
                    f"column '{self.name}': {bound} must be a finite number in "
                    f"[-{MAX_ABS_BOUND:g}, {MAX_ABS_BOUND:g}], got {value!r}"
                )
            object.__setattr__(self, bound, float(value))
        if self.minimum > self.maximum:
            raise SchemaError(
                f"column '{self.name}': minimum {self.minimum!r} is above maximum {self.maximum!r}"
            )
        if not isinstance(self.integer, (bool, np.bool_)):
            raise SchemaError(f"column '{self.name}': integer must be true or false")
        object.__setattr__(self, "integer", bool(self.integer))
        if self.scale not in ("linear", "log"):
            raise SchemaError(
                f"column '{self.name}': scale must be 'linear' or 'log', got {self.scale!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": "numeric",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "integer": self.integer,
        }
        if self.scale != "linear":  # the default is left out: older schemas stay identical
            out["scale"] = self.scale
        return out


@dataclass(frozen=True)
class CategoricalColumn:
    """A categorical column with its ordered list of categories.

    Categories are strings, integers or booleans (one type per column), kept with their
    type so a decoded table has the original dtype. ``fallback`` (optional, one of the
    categories) receives values that are not in the list; without it such values are an
    error naming the column and the value.
    """

    name: str
    categories: tuple[Category, ...]
    fallback: Category | None = None
    kind: Literal["categorical"] = field(default="categorical", init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        cats = tuple(self.categories)
        if not cats:
            raise SchemaError(f"column '{self.name}': a categorical column needs categories")
        normalised: list[Category] = []
        for c in cats:
            if isinstance(c, (bool, np.bool_)):
                normalised.append(bool(c))
            elif isinstance(c, (int, np.integer)):
                normalised.append(int(c))
            elif isinstance(c, str):
                normalised.append(c)
            else:
                raise SchemaError(
                    f"column '{self.name}': category {c!r} must be a string, integer or boolean"
                )
        types = {type(c) for c in normalised}
        if len(types) > 1:
            raise SchemaError(
                f"column '{self.name}': categories mix types "
                f"({', '.join(sorted(t.__name__ for t in types))}); use one type"
            )
        keys = [_key(c) for c in normalised]
        if len(set(keys)) != len(keys):
            dup = next(c for c in normalised if keys.count(_key(c)) > 1)
            raise SchemaError(f"column '{self.name}': category {dup!r} appears twice")
        object.__setattr__(self, "categories", tuple(normalised))
        if self.fallback is not None:
            if _key(self.fallback) not in set(keys):
                raise SchemaError(
                    f"column '{self.name}': fallback {self.fallback!r} is not one of its categories"
                )
            # Store the category itself (its type), so equality and JSON are exact.
            object.__setattr__(self, "fallback", normalised[keys.index(_key(self.fallback))])

    @property
    def category_type(self) -> type:
        return type(self.categories[0])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": "categorical",
            "categories": list(self.categories),
        }
        if self.fallback is not None:
            out["fallback"] = self.fallback
        return out


Column = NumericColumn | CategoricalColumn


def _key(value: object) -> str:
    """The string a category is matched by (so ``1``, ``"1"`` and ``1.0`` match)."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Schema:
    """The public schema of a table: its columns in order and, optionally, the class column.

    ``target`` names a categorical column whose categories are the class labels.
    ``source`` says where the schema came from: ``"declared"`` (agreed in public) or
    ``"data"`` (inferred from private data: not itself private).
    """

    columns: tuple[Column, ...]
    target: str | None = None
    source: Literal["declared", "data"] = "declared"
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        cols = tuple(self.columns)
        if not cols:
            raise SchemaError("a schema needs at least one column")
        for c in cols:
            if not isinstance(c, (NumericColumn, CategoricalColumn)):
                raise SchemaError(f"schema columns must be column objects, got {c!r}")
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise SchemaError(f"column '{dup}' appears twice in the schema")
        object.__setattr__(self, "columns", cols)
        if self.target is not None:
            if self.target not in names:
                raise SchemaError(
                    f"class column '{self.target}' is not in the schema "
                    f"(columns: {', '.join(names)})"
                )
            if not isinstance(self[self.target], CategoricalColumn):
                raise SchemaError(
                    f"class column '{self.target}' must be categorical (its labels are the classes)"
                )
            if len(cols) < 2:
                raise SchemaError("a schema with a class column needs at least one feature column")
        if self.source not in ("declared", "data"):
            raise SchemaError(f"schema source must be 'declared' or 'data', got {self.source!r}")
        if self.version != SCHEMA_VERSION:
            raise SchemaError(
                f"schema version {self.version!r} is not supported (this library reads "
                f"version {SCHEMA_VERSION})"
            )

    # -- access ---------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def features(self) -> tuple[Column, ...]:
        """The columns other than the class column, in order."""
        return tuple(c for c in self.columns if c.name != self.target)

    @property
    def labels(self) -> tuple[Category, ...]:
        """The class labels (the categories of the class column); ``()`` without one."""
        if self.target is None:
            return ()
        col = self[self.target]
        assert isinstance(col, CategoricalColumn)
        return col.categories

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"column '{name}' is not in the schema (columns: {', '.join(self.names)})")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def with_target(self, target: str | None) -> Schema:
        return Schema(self.columns, target=target, source=self.source, version=self.version)

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SCHEMA_FORMAT,
            "version": self.version,
            "source": self.source,
            "target": self.target,
            "columns": [c.to_dict() for c in self.columns],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping):
            raise SchemaError("a schema must be a JSON object")
        fmt = data.get("format", SCHEMA_FORMAT)
        if fmt != SCHEMA_FORMAT:
            raise SchemaError(f"not a threedgl schema (format {fmt!r}, expected {SCHEMA_FORMAT!r})")
        unknown = set(data) - {"format", "version", "source", "target", "columns"}
        if unknown:
            raise SchemaError(f"unknown schema field(s): {', '.join(sorted(unknown))}")
        raw_columns = data.get("columns")
        if not isinstance(raw_columns, list):
            raise SchemaError("schema field 'columns' must be a list")
        columns: list[Column] = []
        for i, raw in enumerate(raw_columns):
            columns.append(_column_from_dict(raw, i))
        version = data.get("version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise SchemaError(f"schema field 'version' must be an integer, got {version!r}")
        target = data.get("target")
        if target is not None and not isinstance(target, str):
            raise SchemaError(f"schema field 'target' must be a string or null, got {target!r}")
        return cls(
            tuple(columns),
            target=target,
            source=data.get("source", "declared"),
            version=version,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: str | Any) -> Schema:
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise SchemaError(f"schema file '{p}' does not exist")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except SchemaError as exc:
            raise SchemaError(f"schema file '{p}': {exc}") from None

    def write(self, path: str | Any) -> None:
        from threedgl.schema.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    # -- comparison -----------------------------------------------------------------------
    def differences(self, other: Schema) -> list[str]:
        """What differs between two schemas as protocols (``source`` is ignored).

        An empty list means the schemas are compatible: generators trained under one can
        be pooled with generators trained under the other.
        """
        out: list[str] = []
        if self.target != other.target:
            out.append(f"class column '{self.target}' vs '{other.target}'")
        mine, theirs = self.names, other.names
        if mine != theirs:
            missing = [n for n in mine if n not in theirs]
            extra = [n for n in theirs if n not in mine]
            if missing:
                out.append(f"columns missing: {', '.join(missing)}")
            if extra:
                out.append(f"columns added: {', '.join(extra)}")
            if not missing and not extra:
                out.append("columns in a different order")
            return out
        for a, b in zip(self.columns, other.columns, strict=True):
            if a != b:
                out.append(f"column '{a.name}': {_describe(a)} vs {_describe(b)}")
        return out

    def is_compatible(self, other: Schema) -> bool:
        return not self.differences(other)

    # -- tables ---------------------------------------------------------------------------
    def validate(
        self,
        df: pd.DataFrame,
        *,
        require_target: bool = True,
        nan_policy: NanPolicy = "error",
        extra_columns: Literal["error", "drop"] = "error",
    ) -> pd.DataFrame:
        """Check a table against the schema and return a conformed copy.

        The copy has the schema's column order and dtypes (``float64`` or ``int64`` for
        numeric columns, ``object`` holding the schema's category values for categorical
        ones). Numeric values outside the bounds are kept here (the encoder clips them).

        NaN policy: ``"error"`` (default) raises an error naming the column and the number
        of rows; ``"drop"`` drops every row with a missing value. Dropping is a row-wise
        operation, so it keeps the add/remove-one privacy analysis intact, unlike imputing
        with a statistic of the data (a median depends on every row).

        Raises :class:`SchemaError` naming the column and the offending value.
        """
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise SchemaError("the table is empty (no rows)")
        if len(set(map(str, df.columns))) != len(df.columns):
            raise SchemaError("the table has duplicate column names")
        needed = [c for c in self.names if require_target or c != self.target]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            what = "class column" if missing == [self.target] else "column(s)"
            raise SchemaError(
                f"{what} {', '.join(repr(m) for m in missing)} missing from the table "
                f"(it has: {', '.join(map(str, df.columns))})"
            )
        extra = [c for c in df.columns if c not in self]
        if extra and extra_columns == "error":
            raise SchemaError(
                f"column(s) {', '.join(repr(str(e)) for e in extra)} not in the schema "
                f"(schema columns: {', '.join(self.names)})"
            )
        present = [c for c in self.names if c in df.columns]
        table = df.loc[:, present].copy()
        # NaN policy first, so a missing value is reported as missing, not as a bad value.
        table = apply_nan_policy(table, nan_policy)
        out: dict[str, pd.Series] = {}
        for name in present:
            col = self[name]
            series = table[name]
            if isinstance(col, NumericColumn):
                out[name] = _conform_numeric(col, series)
            else:
                out[name] = _conform_categorical(col, series)
        return pd.DataFrame(out, index=table.index)


def apply_nan_policy(table: pd.DataFrame, nan_policy: NanPolicy = "error") -> pd.DataFrame:
    """Apply the missing-value policy to a table (used by :meth:`Schema.validate` and the CLI).

    ``"error"`` raises a :class:`SchemaError` naming the first column with missing values
    and how many rows; ``"drop"`` returns the table without the rows that have one.
    """
    if nan_policy not in ("error", "drop"):
        raise SchemaError(f"nan_policy must be 'error' or 'drop', got {nan_policy!r}")
    nan_counts = {str(c): int(table[c].isna().sum()) for c in table.columns}
    with_nan = {c: n for c, n in nan_counts.items() if n}
    if not with_nan:
        return table
    if nan_policy == "drop":
        table = table.dropna(axis=0, how="any")
        if len(table) == 0:
            raise SchemaError("every row has a missing value; nothing is left after dropping")
        return table
    c, n = next(iter(with_nan.items()))
    more = f" (and {len(with_nan) - 1} more column(s))" if len(with_nan) > 1 else ""
    raise SchemaError(
        f"column '{c}' has {n} missing value(s){more}; drop those rows first or use "
        "nan_policy='drop' (--drop-missing on the command line)"
    )


def _describe(c: Column) -> str:
    if isinstance(c, NumericColumn):
        kind = "integer" if c.integer else "numeric"
        scale = "" if c.scale == "linear" else f" ({c.scale} scale)"
        return f"{kind} [{c.minimum!r}, {c.maximum!r}]{scale}"
    return f"categorical {list(c.categories)!r}"


def _column_from_dict(raw: Any, index: int) -> Column:
    if not isinstance(raw, Mapping):
        raise SchemaError(f"schema column #{index} must be a JSON object")
    kind = raw.get("kind")
    name = _check_name(raw.get("name"))
    where = f"schema column #{index} ('{name}')"
    if kind == "numeric":
        allowed = {"name", "kind", "minimum", "maximum", "integer", "scale"}
        unknown = set(raw) - allowed
        if unknown:
            raise SchemaError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for f in ("minimum", "maximum"):
            if f not in raw:
                raise SchemaError(f"{where}: field '{f}' is required for a numeric column")
        return NumericColumn(
            name=name, minimum=raw["minimum"], maximum=raw["maximum"],
            integer=raw.get("integer", False), scale=raw.get("scale", "linear"),
        )
    if kind == "categorical":
        allowed = {"name", "kind", "categories", "fallback"}
        unknown = set(raw) - allowed
        if unknown:
            raise SchemaError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        cats = raw.get("categories")
        if not isinstance(cats, list):
            raise SchemaError(f"{where}: field 'categories' must be a list")
        return CategoricalColumn(name=name, categories=tuple(cats), fallback=raw.get("fallback"))
    raise SchemaError(f"{where}: kind must be 'numeric' or 'categorical', got {kind!r}")


def _conform_numeric(col: NumericColumn, series: pd.Series) -> pd.Series:
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
                f"({int(bad.sum())} row(s), first at row {series[bad].index[0]!r})"
            )
        values = values.astype("float64")
    if not np.isfinite(values.to_numpy()).all():
        raise SchemaError(f"column '{col.name}' holds infinite values")
    if col.integer:
        return values.round().astype("int64")
    return values


def _conform_categorical(col: CategoricalColumn, series: pd.Series) -> pd.Series:
    lookup = {_key(c): c for c in col.categories}
    keys = series.map(_key)
    known = keys.isin(list(lookup))
    if not known.all():
        if col.fallback is None:
            unknown = series[~known]
            values = sorted({repr(v) for v in unknown.unique()})[:5]
            raise SchemaError(
                f"column '{col.name}' holds {', '.join(values)}, not among its categories "
                f"{list(col.categories)!r} ({int((~known).sum())} row(s))"
            )
        keys = keys.where(known, _key(col.fallback))
    mapped = keys.map(lookup)
    if col.category_type is bool:
        return mapped.astype(bool)
    if col.category_type is int:
        return mapped.astype("int64")
    return mapped.astype(object)


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
