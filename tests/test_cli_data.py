"""``3dgl datasets`` and ``3dgl schema``, run as a user would.

Most cases use typer's CliRunner (fast); a representative few run the installed ``3dgl``
executable in a subprocess to check exit code 2, one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from threedgl.cli.main import app
from threedgl.schema import Schema

EXE = shutil.which("3dgl") or str(Path(sys.executable).parent / "3dgl")
runner = CliRunner()


def run(*args: str | Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def stderr_of(result) -> str:  # type: ignore[no-untyped-def]
    return result.stderr if hasattr(result, "stderr") else result.output


def assert_user_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    """Exit code 2, exactly one line on stderr naming what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    err = stderr_of(result)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


def sh(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def assert_sh_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture()
def good(tmp_path: Path) -> tuple[Path, Path]:
    """A small CSV and a schema inferred from it."""
    data = tmp_path / "good.csv"
    data.write_text("a,b,y\n1,x,p\n2,y,q\n3,x,q\n")
    schema = tmp_path / "schema.json"
    result = run("schema", "infer", data, "--target", "y", "-o", schema)
    assert result.exit_code == 0, result.output
    return data, schema


# -- datasets ---------------------------------------------------------------------------------


def test_datasets_list_shows_five_with_row_counts() -> None:
    result = run("datasets", "list")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name, rows in [
        ("titanic", 1309),
        ("breast-cancer", 569),
        ("mushrooms", 8124),
        ("adult", 45222),
        ("wine-quality", 5320),
    ]:
        line = next(ln for ln in out.splitlines() if f" {name} " in ln)
        assert f" {rows} " in line, line


def test_datasets_export_titanic(tmp_path: Path) -> None:
    out, sch = tmp_path / "x.csv", tmp_path / "s.json"
    result = run("datasets", "export", "titanic", "-o", out, "--schema", sch)
    assert result.exit_code == 0, result.output
    assert "1309 rows" in result.stdout
    df = pd.read_csv(out)
    assert len(df) == 1309 and df.columns[-1] == "survived"
    schema = Schema.read(sch)
    assert schema.target == "survived" and schema.source == "data"
    # the exported file validates against the exported schema
    result = run("schema", "validate", out, "-s", sch)
    assert result.exit_code == 0, result.output
    assert "ok: 1309 rows" in result.stdout


def test_datasets_export_parquet(tmp_path: Path) -> None:
    out = tmp_path / "b.parquet"
    result = run("datasets", "export", "breast-cancer", "-o", out)
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out).shape == (569, 31)


def test_datasets_export_bad(tmp_path: Path) -> None:
    assert_user_error(
        run("datasets", "export", "nope", "-o", tmp_path / "e.csv"), "Unknown dataset 'nope'"
    )
    assert_user_error(
        run("datasets", "export", "titanic", "-o", tmp_path / "e.xlsx"), "e.xlsx", "unsupported"
    )
    assert list(tmp_path.iterdir()) == []


# -- schema infer / validate -------------------------------------------------------------------


def test_infer_then_validate_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    assert run("datasets", "export", "titanic", "-o", data).exit_code == 0
    schema = tmp_path / "schema.json"
    result = run("schema", "infer", data, "--target", "survived", "-o", schema)
    assert result.exit_code == 0, result.output
    assert "not protected by differential privacy" in stderr_of(result)
    assert "warning" in stderr_of(result)
    s = Schema.read(schema)
    assert s.target == "survived" and s.source == "data" and len(s.columns) == 8
    assert json.loads(schema.read_text())["version"] == 1
    result = run("schema", "validate", data, "--schema", schema)
    assert result.exit_code == 0, result.output
    assert "ok: 1309 rows fit the schema (0 dropped)" in result.stdout


def test_infer_parquet_and_categorical_option(tmp_path: Path) -> None:
    data = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "y": ["p", "q", "p"]}).to_parquet(data)
    schema = tmp_path / "s.json"
    result = run("schema", "infer", data, "-t", "y", "-o", schema, "--categorical", "a")
    assert result.exit_code == 0, result.output
    s = Schema.read(schema)
    assert s["a"].kind == "categorical" and s["b"].kind == "numeric"


def test_validate_drop_missing(tmp_path: Path, good: tuple[Path, Path]) -> None:
    _, schema = good
    data = tmp_path / "nan.csv"
    data.write_text("a,b,y\n1,x,p\n,y,q\n3,,q\n2,x,p\n")
    assert_user_error(run("schema", "validate", data, "-s", schema), "column 'a'", "1 missing")
    result = run("schema", "validate", data, "-s", schema, "--drop-missing")
    assert result.exit_code == 0, result.output
    assert "ok: 2 rows fit the schema (2 dropped)" in result.stdout


BAD_VALIDATE = [
    # (file name, content or None for a missing file, words the error must contain)
    ("missing.csv", None, ["missing.csv", "does not exist"]),
    ("empty.csv", "a,b,y\n", ["empty.csv", "no rows"]),
    ("zero.csv", "", ["zero.csv", "empty"]),
    ("text.csv", "a,b,y\n1,x,p\nfoo,y,q\n", ["column 'a'", "'foo'", "1 row"]),
    ("cat.csv", "a,b,y\n1,x,p\n2,zz,q\n", ["column 'b'", "'zz'"]),
    ("label.csv", "a,b,y\n1,x,p\n2,x,maybe\n", ["column 'y'", "'maybe'"]),
    ("nan.csv", "a,b,y\n1,x,p\n,y,q\n", ["column 'a'", "1 missing", "--drop-missing"]),
    ("notarget.csv", "a,b\n1,x\n", ["class column 'y'", "missing"]),
    ("extra.csv", "a,b,y,z\n1,x,p,0\n", ["'z'", "not in the schema"]),
    ("ragged.csv", "a,b,y\n1,x\n2,y,q,4,5\n", ["ragged.csv", "not a valid CSV"]),
    ("mark[red]up.csv", "a,b,y\n1,[/]zz,p\n", ["column 'b'", "'[/]zz'"]),
    ("no[red]file.csv", None, ["no[red]file.csv", "does not exist"]),
]


@pytest.mark.parametrize(
    ("name", "content", "needles"), BAD_VALIDATE, ids=[b[0] for b in BAD_VALIDATE]
)
def test_validate_bad_input(
    tmp_path: Path, good: tuple[Path, Path], name, content, needles
) -> None:  # type: ignore[no-untyped-def]
    _, schema = good
    data = tmp_path / name
    if content is not None:
        data.write_text(content)
    assert_user_error(run("schema", "validate", data, "-s", schema), *needles)


def test_validate_bad_schema_file(tmp_path: Path, good: tuple[Path, Path]) -> None:
    data, _ = good
    assert_user_error(
        run("schema", "validate", data, "-s", tmp_path / "no.json"), "no.json", "does not exist"
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert_user_error(run("schema", "validate", data, "-s", bad), "bad.json", "not valid JSON")


BAD_INFER = [
    ("missing.csv", None, ["--target", "y"], ["missing.csv", "does not exist"]),
    ("empty.csv", "a,b,y\n", ["--target", "y"], ["no rows"]),
    (
        "good.csv",
        "a,b,y\n1,x,p\n",
        ["--target", "nope"],
        ["class column 'nope'", "not in the table"],
    ),
    ("nan.csv", "a,b,y\n1,x,p\n,y,q\n", ["--target", "y"], ["column 'a'", "1 missing"]),
    (
        "cat.csv",
        "a,b,y\n1,x,p\n",
        ["--target", "y", "--categorical", "zz"],
        ["'zz'", "not in the table"],
    ),
    ("we[red]ird.csv", "a,b,y\n1,x,p\n", ["--target", "[/]"], ["class column '[/]'"]),
]


@pytest.mark.parametrize(
    ("name", "content", "opts", "needles"),
    BAD_INFER,
    ids=[b[0] + str(i) for i, b in enumerate(BAD_INFER)],
)
def test_infer_bad_input_writes_nothing(tmp_path: Path, name, content, opts, needles) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / name
    if content is not None:
        data.write_text(content)
    out = tmp_path / "out" / "schema.json"
    assert_user_error(run("schema", "infer", data, "-o", out, *opts), *needles)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_infer_drop_missing(tmp_path: Path) -> None:
    data = tmp_path / "nan.csv"
    data.write_text("a,b,y\n1,x,p\n,y,q\n3,x,q\n")
    out = tmp_path / "s.json"
    result = run("schema", "infer", data, "-t", "y", "-o", out, "--drop-missing")
    assert result.exit_code == 0, result.output
    s = Schema.read(out)
    assert s["a"].kind == "numeric"


def test_output_that_cannot_be_written(tmp_path: Path, good: tuple[Path, Path]) -> None:
    data, _ = good
    (tmp_path / "adir").mkdir()
    assert_user_error(run("schema", "infer", data, "-t", "y", "-o", tmp_path / "adir"), "adir")
    assert list((tmp_path / "adir").iterdir()) == []


# -- the real executable: exit code 2, one line, no traceback ------------------------------------
# (each call costs the package's import time, so only a representative few)


def test_executable_success_and_bad_inputs(tmp_path: Path) -> None:
    ok = tmp_path / "ok.csv"
    ok.write_text("a,b,y\n1,x,p\n2,y,q\n")
    schema = tmp_path / "schema.json"
    proc = sh("schema", "infer", ok, "--target", "y", "-o", schema)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "not protected" in proc.stderr
    assert Schema.read(schema).target == "y"

    text = tmp_path / "text.csv"
    text.write_text("a,b,y\n1,x,p\nfoo,[/]y,q\n")
    assert_sh_user_error(sh("schema", "validate", text, "-s", schema), "column 'a'", "'foo'")

    nan = tmp_path / "nan.csv"
    nan.write_text("a,b,y\n1,x,p\n,y,q\n")
    out = tmp_path / "never.json"
    assert_sh_user_error(
        sh("schema", "infer", nan, "-t", "y", "-o", out), "column 'a'", "1 missing"
    )
    assert not out.exists()


# -- train: the default mode and the paper's ---------------------------------------------------


@pytest.fixture(scope="module")
def titanic_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("titanic")
    data, schema = d / "t.csv", d / "t.schema.json"
    result = run("datasets", "export", "titanic", "-o", data, "--schema", schema)
    assert result.exit_code == 0, result.output
    return data, schema


@pytest.mark.parametrize(
    ("flags", "mode", "noisy"),
    [([], "anchored", True), (["--paper", "--epochs", "2"], "paper", False),
     (["--preset", "titanic", "--epochs", "2"], "paper", False)],
)
def test_train_default_and_paper_modes(
    tmp_path: Path, titanic_csv: tuple[Path, Path], flags: list[str], mode: str, noisy: bool
) -> None:
    import json

    data, schema = titanic_csv
    out = tmp_path / "g.3dgl"
    result = run("train", data, "--target", "survived", "--schema", schema, "-o", out,
                 "--seed", "0", "--ledger", tmp_path / "ledger.json", *flags)
    assert result.exit_code == 0, result.output
    shown = run("inspect", out, "--json")
    manifest = json.loads(shown.stdout)
    assert manifest["training"]["mode"] == mode
    rows = [m["rows"] for m in manifest["models"]]
    assert (sorted(rows) != [500, 809]) is noisy
    assert ("rdp_order" in manifest["models"][0]["privacy"]) is noisy
    inspected = run("inspect", out)
    assert ("released exactly" in inspected.stdout) is not noisy


def test_infer_declares_log_scale_columns(tmp_path: Path, good: tuple[Path, Path]) -> None:
    import json

    data, _ = good
    out = tmp_path / "s.json"
    result = run("schema", "infer", data, "--target", "y", "--log-scale", "a", "-o", out)
    assert result.exit_code == 0, result.output
    columns = {c["name"]: c for c in json.loads(out.read_text())["columns"]}
    assert columns["a"]["scale"] == "log" and "scale" not in columns["y"]
    bad = run("schema", "infer", data, "--target", "y", "--log-scale", "b", "-o", tmp_path / "t.json")
    assert_user_error(bad, "'b'", "not numeric")
    assert not (tmp_path / "t.json").exists()
