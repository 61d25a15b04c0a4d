"""``3dgl datasets`` and ``3dgl schema``: the bundled tables and the public schema."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer
from rich.progress import Progress

from threedgl.cli._common import (
    EncodingOpt,
    cleared_on_error,
    console,
    frame_table,
    progress_bar,
    user_errors,
    warn,
)

datasets_app = typer.Typer(help="The five bundled datasets, prepared as the paper did.", no_args_is_help=True)
schema_app = typer.Typer(help="The public schema: the federation's protocol.", no_args_is_help=True)


@datasets_app.command("list")
def datasets_list() -> None:
    """Print name, rows, columns and class balance of each bundled dataset."""
    from threedgl import datasets

    with user_errors():
        table = datasets.summary()
    console.print(frame_table(table, title="Bundled datasets", floatfmt="{:.3f}"))


@datasets_app.command("export")
def datasets_export(
    name: str = typer.Argument(..., help="Dataset name (see `3dgl datasets list`)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output CSV or Parquet file."),
    schema_out: Path | None = typer.Option(None, "--schema", help="Also write its schema JSON here."),
) -> None:
    """Write a prepared dataset (with its class column) to a file."""
    from threedgl import datasets
    from threedgl.schema import write_table

    with user_errors():
        ds = datasets.load(name)
        write_table(ds.frame, output)
        if schema_out is not None:
            ds.schema.write(schema_out)
    console.print(f"wrote {len(ds.frame)} rows of '{ds.name}' to {output} (class column: {ds.target})")


@schema_app.command("infer")
def schema_infer(
    data: Path = typer.Argument(..., help="CSV or Parquet file."),
    target: str | None = typer.Option(None, "--target", "-t", help="The class column."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write schema.json."),
    categorical: list[str] = typer.Option([], "--categorical", help="Treat this numeric column as categorical (repeatable)."),
    numeric: list[str] = typer.Option([], "--numeric", help="Treat this text column as numeric: bounds from the values that are numbers ('1,234' read as 1234); training refuses the others (repeatable)."),
    log_scale: list[str] = typer.Option([], "--log-scale", help="Declare this numeric column skewed: binned generators cut it in log steps (repeatable)."),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    encoding: str | None = EncodingOpt,
) -> None:
    """Infer a schema from a table. Bounds and categories inferred from private data are not private."""
    from threedgl.schema import infer_schema, read_table
    from threedgl.schema.conform import apply_nan_policy

    with user_errors():
        with progress_bar(bar_width=20, transient=True) as bar, cleared_on_error(bar):
            df = read_table(data, encoding, compact=True,
                            progress=lambda done, size: _stage(bar, "reading (MB)", done >> 20,
                                                               size >> 20))
            if numeric:  # its text values are not missing values: left out of the bounds
                kept = df[[c for c in df.columns if c not in numeric]]
                df = df.loc[apply_nan_policy(kept, "drop" if drop_missing else "error").index]
            else:
                df = apply_nan_policy(df, "drop" if drop_missing else "error")
            schema = infer_schema(df, target=target, categorical=categorical, numeric=numeric,
                                  log_scale=log_scale,
                                  progress=lambda done, total: _stage(bar, "inferring", done,
                                                                      total))
        schema.write(output)
    warn(
        "bounds and categories inferred from private data are functions of that data and are "
        "not protected by differential privacy; for a real federation declare the schema in public"
    )
    console.print(f"wrote schema with {len(schema.columns)} columns to {output}")


@schema_app.command("validate")
def schema_validate(
    data: Path = typer.Argument(..., help="CSV or Parquet file."),
    schema_path: Path = typer.Option(..., "--schema", "-s", help="schema.json"),
    drop_missing: bool = typer.Option(False, "--drop-missing", help="Drop rows with missing values instead of failing."),
    encoding: str | None = EncodingOpt,
) -> None:
    """Check that a table fits a schema."""
    from threedgl.schema import Schema, TableEncoder, read_table
    from threedgl.schema.rows import encode_table

    with user_errors():
        schema = Schema.read(schema_path)
        with progress_bar(bar_width=20, transient=True) as bar, cleared_on_error(bar), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = read_table(data, encoding, compact=True,
                            progress=lambda done, size: _stage(bar, "reading (MB)", done >> 20,
                                                               size >> 20))
            # Schema.validate's checks, one column at a time, without a conformed copy
            valid, _ = encode_table(TableEncoder(schema), df,
                                    nan_policy="drop" if drop_missing else "error",
                                    progress=lambda done, total: _stage(bar, "validating", done,
                                                                        total))
    for w in caught:  # e.g. values outside the bounds, clipped when encoded
        warn(str(w.message))
    console.print(f"ok: {len(valid)} rows fit the schema ({len(df) - len(valid)} dropped)")


def _stage(bar: Progress, what: str, done: int, total: int) -> None:
    """Show a long step's progress on ``bar``: a task per step, named ``what``."""
    task = next((t.id for t in bar.tasks if t.description == what), None)
    if task is None:
        task = bar.add_task(what, total=total, status="")
    bar.update(task, completed=done, total=total)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(schema_app, name="schema")
