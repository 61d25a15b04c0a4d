"""The columns of a public schema: numeric (public bounds) and categorical (public
categories), each a frozen value validated when built, and their JSON form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from threedgl.errors import SchemaError

__all__ = ["CategoricalColumn", "Category", "Column", "NanPolicy", "NumericColumn"]

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
