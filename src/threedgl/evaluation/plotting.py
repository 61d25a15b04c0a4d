"""PNG plots of sweep curves and marginals (matplotlib's Agg canvas; pyplot untouched)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from threedgl.errors import ThreedglError
from threedgl.evaluation.divergence import histogram
from threedgl.evaluation.sweep import SweepResult
from threedgl.schema import CategoricalColumn, NumericColumn, Schema
from threedgl.schema.io import atomic_open


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    FigureCanvasAgg(fig)
    with atomic_open(p, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    return p


def plot_sweep(
    results_by_name: Mapping[str, SweepResult],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """One curve (score against synthetic size, log x axis) per named sweep, best size
    marked; written as PNG to ``path``."""
    if not results_by_name:
        raise ThreedglError("plot_sweep needs at least one sweep result")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    metrics = set()
    for name, res in results_by_name.items():
        if not isinstance(res, SweepResult):
            raise ThreedglError(f"'{name}' is not a SweepResult (got {type(res).__name__})")
        metrics.add(res.metric)
        (line,) = ax.plot(res.sizes, res.scores, marker="o", ms=3, label=str(name))
        ax.scatter([res.best_size], [res.best_score], s=60, color=line.get_color(), marker="*")
    ax.set_xscale("log")
    ticks = size_ticks([int(v) for res in results_by_name.values() for v in res.sizes])
    if ticks:  # a few sizes as plain numbers: log scale's own minor labels overlap
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:,}" for t in ticks], fontsize=8)
    ax.set_xlabel("synthetic rows")
    ax.set_ylabel(", ".join(sorted(metrics)))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def size_ticks(sizes: Sequence[int], most: int = 6, ratio: float = 1.5) -> list[int]:
    """At most ``most`` of the swept sizes (the largest included) for a log axis's labels,
    each at least ``ratio`` times the one before, so that no two labels touch."""
    ticks: list[int] = []
    for size in sorted(set(sizes), reverse=True):
        if not ticks or ticks[-1] / size >= ratio:
            ticks.append(size)
    ticks.reverse()
    step = max(1, math.ceil(len(ticks) / most))
    return ticks[::-1][::step][::-1]


def plot_marginals(
    real_df: pd.DataFrame,
    synthetic_df: pd.DataFrame,
    schema: Schema,
    columns: Sequence[str] | None,
    path: str | os.PathLike[str],
    *,
    bins: int = 20,
) -> Path:
    """Real and synthetic marginal distributions (normalised histograms on the schema's
    bins, as used by the KLD) of ``columns`` (default: all columns), one panel each."""
    if not isinstance(schema, Schema):
        raise ThreedglError(f"expected a Schema, got {type(schema).__name__}")
    names = list(schema.names) if columns is None else list(columns)
    if not names:
        raise ThreedglError("plot_marginals needs at least one column")
    for name in names:
        schema[name]  # raises SchemaError naming an unknown column
    need_target = schema.target in names
    real = schema.validate(real_df, require_target=need_target, extra_columns="drop")
    syn = schema.validate(synthetic_df, require_target=need_target, extra_columns="drop")
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows))
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        col = schema[name]
        p = histogram(real[name], col, bins=bins)
        q = histogram(syn[name], col, bins=bins)
        p = p / max(p.sum(), 1.0)
        q = q / max(q.sum(), 1.0)
        x = np.arange(len(p))
        ax.bar(x - 0.2, p, width=0.4, label="real")
        ax.bar(x + 0.2, q, width=0.4, label="synthetic")
        if isinstance(col, CategoricalColumn):
            ax.set_xticks(x)
            ax.set_xticklabels([str(c) for c in col.categories], rotation=45, fontsize=7)
        else:
            assert isinstance(col, NumericColumn)
            ax.set_xticks([0, len(p) - 1])
            ax.set_xticklabels([f"{col.minimum:g}", f"{col.maximum:g}"], fontsize=7)
        ax.set_title(name, fontsize=9)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
