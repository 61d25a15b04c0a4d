"""The public schema: column names, kinds, bounds, categories and the class column.

A federation agrees on a schema before anyone trains (SPEC §2). It is public: encoding
data with it leaks nothing. A schema *inferred* from private data does leak (its bounds
and category sets are functions of the data); :func:`~threedgl.schema.infer.infer_schema` marks such a schema
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.conform import (
    _conform_categorical,
    _conform_numeric,
    _key,
    apply_nan_policy,
)

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
