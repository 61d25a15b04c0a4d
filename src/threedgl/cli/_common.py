"""Helpers shared by the command modules: console, progress bars, errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderResult
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

# A file or a pipe gets 100 columns (or $COLUMNS), a terminal its own width; a table wider
# than that is stacked (one block per row) instead of wrapped (see frame_table).
console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 0) or 100)
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


def progress_bar(transient: bool = False, bar_width: int | None = 40) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=bar_width),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        transient=transient,
    )


@contextmanager
def cleared_on_error(bar: Progress) -> Iterator[None]:
    """On an error, remove ``bar``'s tasks before it stops, so that a failed command prints
    its one error line and no bar (a file or pipe gets the bars' final state)."""
    try:
        yield
    except BaseException:
        for task in list(bar.task_ids):
            bar.remove_task(task)
        raise


def frame_table(df, title: str | None = None, floatfmt: str = "{:.2f}", compact: bool = False) -> FittedTable:  # type: ignore[no-untyped-def]
    """A rich table from a DataFrame (``compact``: light borders, one space of padding),
    shown as a table when it fits the console's width and stacked otherwise."""
    from rich import box

    table = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
                  padding=(0, 1), title_justify="left" if compact else "center")
    cells: list[list[str]] = []
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "iuf" else "left")
    for _, row in df.iterrows():
        line = []
        for col in df.columns:
            v = row[col]
            if isinstance(v, float):
                line.append("" if v != v else floatfmt.format(v))
            else:
                line.append(str(v))
        table.add_row(*line)
        cells.append(line)
    return FittedTable(table, [str(c) for c in df.columns], cells, title)


class FittedTable:
    """A table that fits the width it is printed in: as a table when its natural width
    fits, else stacked, one block per row (its first cells as a heading, then each other
    column as ``name value``), so that nothing is cut or wrapped inside a cell."""

    def __init__(self, table: Table, columns: list[str], rows: list[list[str]],
                 title: str | None) -> None:
        self.table, self.columns, self.rows, self.title = table, columns, rows, title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.measure import Measurement
        from rich.text import Text

        natural = Measurement.get(console, options.update_width(100_000), self.table).maximum
        if natural <= options.max_width:
            yield self.table
            return
        if self.title:
            yield Text(self.title, style="bold")
        heading = 2 if len(self.columns) > 2 and not _numeric(self.rows, 1) else 1
        for row in self.rows:
            yield Text(" — ".join(c for c in row[:heading] if c), style="bold")
            pairs = [f"{name}={value}" for name, value in
                     zip(self.columns[heading:], row[heading:], strict=True) if value]
            line = ""
            for pair in pairs:  # packed into lines, a pair never split across two
                if line and 4 + len(line) + 3 + len(pair) > options.max_width:
                    yield Text("    " + line)
                    line = ""
                line = f"{line}   {pair}" if line else pair
            if line:
                yield Text("    " + line)


def _numeric(rows: list[list[str]], j: int) -> bool:
    def number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return text == ""
        return True

    return all(number(r[j]) for r in rows if len(r) > j)
