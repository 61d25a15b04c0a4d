"""``3dgl flower-run``: ``flwr run`` whose exit code says how the run ended."""

from __future__ import annotations

import typer
from rich.markup import escape

from threedgl.cli._common import err_console, fail


def flower_run(ctx: typer.Context) -> None:
    """Run a Flower app with `flwr run ARGS --stream` and exit with the run's status.

    Every argument goes to `flwr run` as it is ([APP] [SUPERLINK], --run-config, --federation-config, ...; `--stream` is added). Its log is shown as it comes; at the end the run's status is read from the SuperLink (`flwr ls --run-id`).

    Exit code 0: the run finished:completed. 1: it failed or was stopped (for instance, no client was evaluated) or its status cannot be read. flwr's own code when flwr itself failed (1 for its own errors, 128 + N when killed by signal N); 130 on Ctrl-C (the run goes on at the SuperLink). (Flower 1.42's `flwr run --stream` exits 0 whatever the run's outcome.)

    Example: 3dgl flower-run flower-app --federation-config "num-supernodes=3"
    """
    from threedgl.errors import ThreedglError
    from threedgl.federation.flower import flower_missing
    from threedgl.federation.flower.flwr_run import (
        FlwrInterrupted,
        exit_code,
        flwr_run,
        verdict,
    )

    if (missing := flower_missing()) is not None:
        fail(missing)
    try:
        outcome = flwr_run(ctx.args)
    except ThreedglError as exc:
        fail(str(exc))
    except FlwrInterrupted as stop:
        where = (f"run {stop.run_id} goes on at the SuperLink (flwr stop {stop.run_id} stops it)"
                 if stop.run_id is not None else "no run was announced")
        err_console.print(f"interrupted: {where}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    code = exit_code(outcome)
    style = "green" if code == 0 else "bold red"
    err_console.print(f"[{style}]3dgl flower-run:[/] {escape(verdict(outcome))}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command(
        "flower-run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                          "help_option_names": ["--help"]},
    )(flower_run)
