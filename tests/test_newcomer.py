"""A newcomer's first hour (issue 22): honest inference, the budget, error wording, help
text and output files, through the real ``3dgl`` commands on real files."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from threedgl.cli.main import app
from threedgl.schema import Schema, infer_schema

runner = CliRunner()


def run(*args: str | Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def one_error(result) -> str:  # type: ignore[no-untyped-def]
    """Exit code 2 and exactly one line on stderr, which is returned."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture
def dirty(tmp_path: Path) -> Path:
    """100 rows: 'age' numbers with one 'fifty' (data row 18), 'income' written '1,234',
    'weight' whole numbers written '157.0'."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "age": [str(x) for x in rng.integers(20, 80, 100)],
        "income": [f"{x:,}" for x in rng.integers(500, 5000, 100)],
        "weight": rng.integers(50, 200, 100).astype(float),
        "y": ["a", "b"] * 50,
    })
    df.loc[17, "age"] = "fifty"
    path = tmp_path / "dirty.csv"
    df.to_csv(path, index=False)
    assert "157.0" in path.read_text() or ".0," in path.read_text()
    return path


def test_a_numeric_column_with_a_stray_word_is_reported(dirty: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    err = one_error(run("schema", "infer", dirty, "-t", "y", "-o", out))
    assert "column 'age' looks numeric" in err and "'fifty'" in err
    assert "data row 18, line 19" in err and "--numeric age" in err
    assert not out.exists()


def test_thousands_separators_are_reported(dirty: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    err = one_error(run("schema", "infer", dirty, "-t", "y", "-o", out, "--numeric", "age"))
    assert "column 'income' holds numbers written with thousands separators" in err
    assert "--numeric income" in err and not out.exists()


def test_numeric_forces_and_train_refuses_the_rest(dirty: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    r = run("schema", "infer", dirty, "-t", "y", "-o", out, "--numeric", "age",
            "--numeric", "income")
    assert r.exit_code == 0, r.output
    schema = Schema.read(out)
    age, income, weight = schema["age"], schema["income"], schema["weight"]
    assert age.kind == income.kind == weight.kind == "numeric"
    assert income.maximum > 1000  # '4,869' read as 4869, not left out
    assert weight.integer  # '157.0' is a whole number
    err = one_error(run("schema", "validate", dirty, "--schema", out))
    assert "column 'age' is numeric but holds text: 'fifty'" in err
    assert "data row 18, line 19" in err


def test_a_categorical_column_of_words_is_not_reported() -> None:
    df = pd.DataFrame({"colour": ["red", "green", "blue", "1", "2"] * 4, "n": range(20)})
    schema = infer_schema(df)
    assert schema["colour"].kind == "categorical"
    assert schema["n"].integer


def test_whole_number_floats_are_integers_and_sampled_as_such() -> None:
    df = pd.DataFrame({"w": [157.0, 160.0, 171.0, 149.0], "x": [0.5, 1.25, 2.0, 3.0]})
    schema = infer_schema(df)
    assert schema["w"].integer and not schema["x"].integer


def test_a_latin1_file_names_its_line_and_encoding_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes("name,age,y\nbob,40,b\ncaf\xe9,30,a\nzoe,50,a\n".encode("latin-1"))
    out = tmp_path / "s.json"
    err = one_error(run("schema", "infer", path, "-t", "y", "-o", out))
    assert "is not utf-8 text: line 3 holds the byte 0xe9" in err and "--encoding" in err
    assert not out.exists()
    r = run("schema", "infer", path, "-t", "y", "-o", out, "--encoding", "latin-1")
    assert r.exit_code == 0, r.output
    assert "café" in Schema.read(out)["name"].categories
    err = one_error(run("schema", "infer", path, "-t", "y", "-o", out, "--encoding", "nope"))
    assert "unknown text encoding 'nope'" in err


def test_outputs_get_the_umask_mode_and_the_ledger_stays_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "t.csv"
        assert run("datasets", "export", "titanic", "-o", out, "--schema",
                   tmp_path / "s.json").exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o644
        ledger = tmp_path / "ledger.json"
        assert run("budget", "--ledger", ledger, "--set-budget", "5").exit_code == 0
        assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_an_infinite_epsilon_fit_spends_nothing_and_warns(small: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    data, schema = small
    ledger = tmp_path / "ledger.json"
    common = ["--schema", schema, "--generator", "dp-marginals", "--ledger", ledger]
    r = run("train", data, "-t", "survived", "-o", tmp_path / "inf.3dgl", "--epsilon", "inf",
            *common)
    assert r.exit_code == 0, r.output
    assert "WITHOUT differential privacy" in " ".join(r.stderr.split())
    assert not ledger.exists() or json.loads(ledger.read_text())["entries"] == []
    r = run("train", data, "-t", "survived", "-o", tmp_path / "a.3dgl", *common)
    assert r.exit_code == 0, r.output  # not locked by the ε = ∞ fit
    assert len(json.loads(ledger.read_text())["entries"]) == 1


def test_a_budget_refusal_comes_before_training(small: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    data, schema = small
    ledger = tmp_path / "ledger.json"
    assert run("budget", "--ledger", ledger, "--set-budget", "1").exit_code == 0
    out = tmp_path / "a.3dgl"
    r = run("train", data, "-t", "survived", "-o", out, "--schema", schema, "--epsilon", "1.9",
            "--ledger", ledger)
    err = one_error(r)
    assert "ε = 1.9 asked for is above this table's budget of 1" in err
    assert "epoch" not in r.output and not out.exists()


def test_advice_names_options_that_exist(tmp_path: Path, small: tuple[Path, Path]) -> None:
    """The missing-values advice names --drop-missing: every command that reads a table
    has it (and --encoding)."""
    for command in ("evaluate", "attack", "train", "schema infer", "schema validate", "simulate"):
        r = run(*command.split(), "--help")
        assert "--drop-missing" in r.output, command
        assert "--encoding" in r.output, command


def test_help_text_shows_brackets_and_describes_arguments() -> None:
    r = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    assert "threedgl[flower]" in r.output
    for command in (["train"], ["schema", "infer"], ["simulate"], ["audit"]):
        r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        args = r.output.split("Arguments", 1)[1].split("Options", 1)[0]
        for line in args.splitlines():
            if line.strip("│ ").split(" ")[0] in ("DATA", "DATASET"):
                assert len(line.strip("│ ").split()) > 3, line  # a description follows
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    text = " ".join(r.output.split())
    assert "chosen automatically" in text


def test_tables_fit_the_width_or_stack() -> None:
    from io import StringIO

    from rich.console import Console

    from threedgl.cli._common import frame_table

    wide = pd.DataFrame({"scenario": ["fold_fold", "local_test"],
                         "what": ["Pool, Fold-Fold [Table IV Synth]" * 2, "Real, own data"],
                         **{f"metric_{i}": [1.5, 2.25] for i in range(8)}})
    narrow = wide[["scenario", "metric_0"]]
    for df, stacked in ((wide, True), (narrow, False)):
        out = StringIO()
        Console(file=out, width=80).print(frame_table(df, title="t"))
        lines = out.getvalue().splitlines()
        assert max(len(ln) for ln in lines) <= 80
        assert ("┃" not in out.getvalue()) is stacked
        assert "fold_fold" in out.getvalue() and "2.25" in out.getvalue()
        assert ("metric_7=2.25" in out.getvalue()) is stacked


def test_inspect_fits_100_columns_in_a_log(titanic_file: Path) -> None:
    r = runner.invoke(app, ["inspect", str(titanic_file)])
    assert r.exit_code == 0, r.output
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 100


def test_clipped_values_are_warned_about_in_train(small: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    data, schema = small
    df = pd.read_csv(data)
    df.loc[3, "age"] = 150
    df.to_csv(data, index=False)
    r = run("train", data, "-t", "survived", "-o", tmp_path / "a.3dgl", "--schema", schema,
            "--generator", "dp-marginals")
    assert r.exit_code == 0, r.output
    assert "clipped to them in column(s) 'age'" in " ".join(r.stderr.split())


def test_sweep_plot_labels_do_not_touch() -> None:
    from threedgl.evaluation.plotting import size_ticks

    ticks = size_ticks([100 * k for k in range(1, 11)] + [20_000])
    assert ticks[-1] == 20_000 and len(ticks) <= 6
    assert all(b / a >= 1.5 for a, b in itertools.pairwise(ticks))


def test_one_seed_shows_no_spread_and_one_dataset_no_other_rows() -> None:
    from threedgl.experiments.tables import table_ii

    rows = [{"dataset": "titanic", "model": "logreg", "source": source, "seed": 0,
             "accuracy": 0.7, "f1": 0.6, "auc": 0.8, "synthetic_size": 500, "balance": "balanced"}
            for source in ("Real", "DDP-βVAE (ours, ε=1.9)")]
    table = table_ii(pd.DataFrame(rows))
    assert set(table["dataset"]) == {"titanic"}
    assert not any("±" in str(v) for v in table.to_numpy().ravel())


def test_fit_takes_a_schema_file(tmp_path: Path, small: tuple[Path, Path]) -> None:
    from threedgl import DPMarginals

    data, schema_path = small
    df = pd.read_csv(data)
    by_path = DPMarginals(random_state=0).fit(df, schema=str(schema_path), ledger=False)
    by_value = DPMarginals(random_state=0).fit(df, schema=Schema.read(schema_path), ledger=False)
    assert by_path.schema_ == by_value.schema_ == Schema.read(schema_path)


@pytest.mark.parametrize(("url", "words"), [
    ("postgres://postgres@127.0.0.1:5432/test", "write postgresql+psycopg://"),
    pytest.param("postgresql+psycopg://postgres@127.0.0.1:5432/threedgl_no_such_database",
                 "create it first, e.g. createdb threedgl_no_such_database",
                 marks=pytest.mark.postgres),
])
def test_database_urls_get_a_hint(tmp_path: Path, url: str, words: str) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("THREEDGL_")}
    env["THREEDGL_ADMIN_TOKEN"] = "a-real-admin-secret-0123456789abcdefghijkl"
    r = subprocess.run([sys.executable, "-m", "threedgl.cli.main", "server", "--db", url,
                        "--port", "0"], capture_output=True, text=True, timeout=60, env=env,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], r.stderr
