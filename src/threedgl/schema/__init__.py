"""The public schema (the federation's protocol) and the reversible encoder built from it."""

from threedgl.schema.encoder import Span, TableEncoder
from threedgl.schema.infer import infer_schema
from threedgl.schema.io import read_table, write_table
from threedgl.schema.schema import (
    CategoricalColumn,
    Column,
    NumericColumn,
    Schema,
)

__all__ = [
    "CategoricalColumn",
    "Column",
    "NumericColumn",
    "Schema",
    "Span",
    "TableEncoder",
    "infer_schema",
    "read_table",
    "write_table",
]
