"""The public surface: every name in ``threedgl.__all__`` imports, ``3dgl --version``, and
``--help`` on every command and subcommand."""

from __future__ import annotations

import importlib

import pytest
import typer
from typer.testing import CliRunner

import threedgl
from threedgl.cli.main import app

runner = CliRunner()


def test_every_public_name_imports() -> None:
    assert threedgl.__all__, "threedgl.__all__ is empty"
    assert len(set(threedgl.__all__)) == len(threedgl.__all__)
    module = importlib.import_module("threedgl")
    for name in threedgl.__all__:
        assert getattr(module, name) is not None, name
    ns: dict[str, object] = {}
    exec("from threedgl import *", ns)
    assert set(threedgl.__all__) <= set(ns)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"3dgl {threedgl.__version__}"
    assert threedgl.__version__[0].isdigit()


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        # typer vendors its own click, so look for groups by their ``commands`` mapping
        paths.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    walk(root, [])
    return paths


PATHS = _command_paths()


def test_command_tree_has_the_data_commands() -> None:
    for path in (
        ["datasets", "list"],
        ["datasets", "export"],
        ["schema", "infer"],
        ["schema", "validate"],
    ):
        assert path in PATHS


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "3dgl" for p in PATHS])
def test_help_works(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Usage:" in result.stdout
    assert "Traceback" not in result.output
