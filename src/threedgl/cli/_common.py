"""Helpers shared by the command modules: console, progress bars, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from threedgl.errors import ThreedglError

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with code 2 (bad input)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`ThreedglError` into one line and exit code 2."""
    try:
        yield
    except ThreedglError as exc:
        fail(str(exc))


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        transient=transient,
        disable=not sys.stderr.isatty() and False,
    )


def frame_table(df, title: str | None = None, floatfmt: str = "{:.2f}") -> Table:  # type: ignore[no-untyped-def]
    """A rich table from a DataFrame."""
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "iuf" else "left")
    for _, row in df.iterrows():
        cells = []
        for col in df.columns:
            v = row[col]
            if isinstance(v, float):
                cells.append("" if v != v else floatfmt.format(v))
            else:
                cells.append(str(v))
        table.add_row(*cells)
    return table
