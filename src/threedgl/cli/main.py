"""The ``3dgl`` program: one Typer app, commands grouped by part."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape

from threedgl import __version__
from threedgl.cli import attack as attack_commands
from threedgl.cli import data as data_commands
from threedgl.cli import evaluate as evaluate_commands
from threedgl.cli import flower as flower_commands
from threedgl.cli import generator as generator_commands
from threedgl.cli import privacy as privacy_commands
from threedgl.cli import server as server_commands
from threedgl.cli import simulate as simulate_commands
from threedgl.cli._common import err_console
from threedgl.errors import ThreedglError


def _keep_argument_help() -> None:
    """Show the arguments' help (DATA, DATASET, ...) again.

    Typer 0.20 stores an argument's help on the parameter, then calls Click's
    ``Argument.__init__``, which since Click 8.3 takes a ``help`` of its own and sets it to
    None: every argument's description vanished from ``--help``. Setting it again after
    the constructor restores it, whichever of the two versions is installed.
    """
    from typer.core import TyperArgument

    if getattr(TyperArgument.__init__, "_threedgl_keeps_help", False):
        return
    original = TyperArgument.__init__

    def __init__(self: TyperArgument, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if kwargs.get("help") is not None:
            self.help = kwargs["help"]

    __init__._threedgl_keeps_help = True  # type: ignore[attr-defined]
    TyperArgument.__init__ = __init__  # type: ignore[method-assign]


_keep_argument_help()

app = typer.Typer(
    name="3dgl",
    help="threedgl: generative federated learning with differential privacy (3DGL, DDP-βVAE).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"3dgl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """threedgl: generative federated learning with differential privacy."""


data_commands.register(app)
generator_commands.register(app)
evaluate_commands.register(app)
privacy_commands.register(app)
server_commands.register(app)
attack_commands.register(app)
simulate_commands.register(app)
flower_commands.register(app)


def main() -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2."""
    try:
        app()
    except ThreedglError as exc:  # pragma: no cover - commands catch their own
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
