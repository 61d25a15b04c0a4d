"""Helpers shared by the command modules: console, progress bars, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from threedgl.errors import ThreedglError

#: ``--encoding``: the text encoding of the CSV files a command reads.
EncodingOpt = typer.Option(
    None, "--encoding", help="Text encoding of the CSV file(s) (default utf-8), e.g. latin-1.",
    show_default=False,
)

# Wide tables stay readable when the output is a file or a pipe (rich assumes 80 columns).
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with code 2 (bad input).

    The message is escaped (a column name or path may contain ``[...]``, which rich
    would otherwise read as markup) and flattened to one line.
    """
    line = " ".join(str(message).split())
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`ThreedglError` (and file-system errors) into one line and exit code 2."""
    try:
        yield
    except ThreedglError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. the output path is a directory or not writable
        where = f"'{exc.filename}'" if exc.filename else "a file"
        fail(f"cannot access {where}: {exc.strerror or exc}")


def progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        transient=transient,
    )


def frame_table(df, title: str | None = None, floatfmt: str = "{:.2f}", compact: bool = False) -> Table:  # type: ignore[no-untyped-def]
    """A rich table from a DataFrame (``compact``: light borders, one space of padding)."""
    from rich import box

    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
                  padding=(0, 1), title_justify="left" if compact else "center")
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
