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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from threedgl.errors import SchemaError
from threedgl.schema.columns import (
    CategoricalColumn,
    Category,
    Column,
    NanPolicy,
    NumericColumn,
    _column_from_dict,
    _describe,
)
from threedgl.schema.conform import (
    _conform_categorical,
    apply_nan_policy,
    conform_numeric,
    outside_bounds,
    warn_clipped,
)

SCHEMA_FORMAT = "threedgl.schema"
SCHEMA_VERSION = 1


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
        present = self.checked_columns(df, require_target=require_target,
                                       extra_columns=extra_columns)
        table = df.loc[:, present].copy()
        # NaN policy first, so a missing value is reported as missing, not as a bad value.
        table = apply_nan_policy(table, nan_policy)
        out: dict[str, pd.Series] = {}
        clipped: list[str] = []
        for name in present:
            col = self[name]
            series = table[name]
            if isinstance(col, NumericColumn):
                out[name] = conform_numeric(col, series)
                if outside_bounds(col, out[name]):
                    clipped.append(f"'{name}' [{col.minimum:g}, {col.maximum:g}]")
            else:
                out[name] = _conform_categorical(col, series)
        warn_clipped(clipped)
        return pd.DataFrame(out, index=table.index)

    def checked_columns(
        self,
        df: pd.DataFrame,
        *,
        require_target: bool = True,
        extra_columns: Literal["error", "drop"] = "error",
    ) -> list[str]:
        """The schema's columns present in ``df``, in the schema's order, after the checks
        :meth:`validate` makes of the table as a whole (not empty, no duplicate, missing or,
        with ``extra_columns="error"``, extra column)."""
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
        return [c for c in self.names if c in df.columns]
