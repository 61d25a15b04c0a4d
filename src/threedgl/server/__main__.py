"""``python -m threedgl.server``: the same as ``3dgl server``."""

from __future__ import annotations

import typer

from threedgl.cli.server import serve


def main() -> None:
    typer.run(serve)


if __name__ == "__main__":
    main()
