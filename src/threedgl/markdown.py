"""The one Markdown table writer (reports, ``tables.md``, README tables)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["markdown_table"]


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (its index is not written).

    Floats are formatted with ``floatfmt`` and NaN is an empty cell; ``|`` in a cell is
    escaped; numeric columns are right-aligned.

    >>> print(markdown_table(pd.DataFrame({"a": ["x"], "b": [1.5]})))
    | a | b |
    |---|---:|
    | x | 1.50 |
    """

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else floatfmt.format(v)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---:" if df[c].dtype.kind in "iuf" else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])
