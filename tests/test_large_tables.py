"""Large tables (issue 22, item 3) and the budget refused before training (item 16d).

The chunked and column-by-column paths must give what the whole-table paths gave: the
same table read, the same fingerprints (ledgers written before keep working), the same
validation errors and warnings, the same encoded numbers and the same trained bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from threedgl import DDPBetaVAE, DPMarginals
from threedgl.cli.main import app
from threedgl.errors import PrivacyError, SchemaError
from threedgl.privacy.ledger import Ledger, fingerprint, fingerprints, legacy_fingerprint
from threedgl.schema import Schema, TableEncoder, read_table
from threedgl.schema import io as table_io
from threedgl.schema.rows import EncodedRows, encode_table

runner = CliRunner()


def _whole_fingerprint(df: pd.DataFrame) -> str:
    """The fingerprint as it was computed before: the whole table as text, hashed."""
    cols = sorted(df.columns, key=str)
    h = hashlib.sha256(b"threedgl.table.v2")
    h.update(json.dumps([str(c) for c in cols]).encode())
    h.update(np.sort(pd.util.hash_pandas_object(df[cols].astype(str), index=False)
                     .to_numpy()).tobytes())
    return h.hexdigest()


def _whole_legacy(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def messy(titanic, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Titanic with missing values, a bool column, floats, a column that is numbers in
    some rows and text in others, and a text column missing in a whole chunk, as a CSV."""
    df = titanic.frame.head(400).copy()
    df.loc[[3, 150], "embarked"] = np.nan
    df["flag"] = [True, False] * 200
    df["share"] = np.linspace(0, 1, 400)
    df["mixed"] = [1, "a", 2.5, None] * 100
    df["note"] = ["ok", "late"] * 200
    df.loc[37:73, "note"] = np.nan  # the whole second chunk of 37 rows: read as floats
    path = tmp_path / "messy.csv"
    df.to_csv(path, index=False)
    return path


def test_the_chunked_read_gives_the_plain_reads_values(messy: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_io, "CHUNK_ROWS", 37)  # many chunks, one of them ragged
    seen: list[tuple[int, int]] = []
    compact = read_table(messy, compact=True, progress=lambda done, size: seen.append((done, size)))
    plain = read_table(messy)
    assert len(seen) == 11 and seen[-1][0] == seen[-1][1] == messy.stat().st_size
    assert list(compact.columns) == list(plain.columns)
    for name in plain.columns:
        if plain[name].dtype == object:
            assert isinstance(compact[name].dtype, pd.CategoricalDtype) or name == "mixed"
        else:
            assert compact[name].dtype == plain[name].dtype, name
        pd.testing.assert_series_equal(compact[name].astype(object), plain[name].astype(object))
    assert fingerprints(compact) == fingerprints(plain)


def test_fingerprints_equal_the_whole_table_hashes(titanic, messy: Path) -> None:  # type: ignore[no-untyped-def]
    frames = [titanic.frame, read_table(messy), read_table(messy, compact=True),
              titanic.frame.sample(frac=1.0, random_state=0)]
    for df in frames:
        assert fingerprint(df) == _whole_fingerprint(df)
        assert legacy_fingerprint(df) == _whole_legacy(df)
        assert fingerprints(df) == (_whole_fingerprint(df), _whole_legacy(df))
        assert fingerprints(df, legacy=False) == (_whole_fingerprint(df), None)


def test_the_legacy_fingerprint_is_computed_only_for_a_ledger_with_entries(
        titanic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    df = titanic.frame
    book = Ledger.open(tmp_path / "l.json")
    columns: list[int] = []
    assert book.identify(df, progress=lambda done, total: columns.append(done)) == fingerprint(df)
    assert columns == list(range(1, len(df.columns) + 1))
    old = {"fingerprint": legacy_fingerprint(df), "generator": "dp-marginals", "target": None,
           "models": []}
    book.entries.append(old)
    assert book.identify(df) == fingerprint(df)
    assert old["fingerprint"] == fingerprint(df)  # adopted


def _validated_then_encoded(schema: Schema, df: pd.DataFrame, **kw):  # type: ignore[no-untyped-def]
    table = schema.validate(df, **kw)
    matrix = TableEncoder(schema).encode_valid(table)
    labels = None
    if schema.target in table.columns:
        labels = np.array([list(schema.labels).index(v) for v in table[schema.target]])
    return matrix, labels


def test_encoding_column_by_column_equals_validate_then_encode(titanic) -> None:  # type: ignore[no-untyped-def]
    schema = titanic.schema
    df = titanic.frame.copy()
    df.loc[[5, 9], "age"] = np.nan
    df.loc[7, "fare"] = 10_000.0  # above the bounds: clipped, with a warning
    for frame in (df, df.astype({"sex": "category", "embarked": "category"})):
        with warnings.catch_warnings(record=True) as whole:
            warnings.simplefilter("always")
            matrix, labels = _validated_then_encoded(schema, frame, nan_policy="drop")
        with warnings.catch_warnings(record=True) as columns:
            warnings.simplefilter("always")
            rows, codes = encode_table(TableEncoder(schema), frame, nan_policy="drop")
        assert [str(w.message) for w in columns] == [str(w.message) for w in whole]
        assert len(whole) == 1
        assert isinstance(rows, EncodedRows) and len(rows) == len(titanic.frame) - 2
        np.testing.assert_array_equal(rows.matrix(), matrix)
        np.testing.assert_array_equal(np.asarray(rows), matrix)
        np.testing.assert_array_equal(codes, labels)
        index = np.array([4, 0, 17, 17, 3])
        np.testing.assert_array_equal(rows.matrix(index), matrix[index])
        np.testing.assert_array_equal(np.concatenate(list(rows.blocks(100))), matrix)


@pytest.mark.parametrize("change", ["text in a number", "unknown category", "missing value",
                                    "missing column", "extra column"])
def test_encoding_column_by_column_fails_as_validate_does(titanic, change: str) -> None:  # type: ignore[no-untyped-def]
    df = titanic.frame.head(50).copy()
    if change == "text in a number":
        df["age"] = df["age"].astype(object)
        df.loc[[12, 30], "age"] = "fifty"
    elif change == "unknown category":
        df["embarked"] = df["embarked"].astype(object)
        df.loc[[4, 8], "embarked"] = "X"
    elif change == "missing value":
        df.loc[[1, 2], "fare"] = np.nan
    elif change == "missing column":
        df = df.drop(columns="sex")
    else:
        df["extra"] = 1
    with pytest.raises(SchemaError) as whole:
        titanic.schema.validate(df)
    with pytest.raises(SchemaError) as columns:
        encode_table(TableEncoder(titanic.schema), df)
    assert str(columns.value) == str(whole.value)


@pytest.mark.parametrize("mode", ["anchored", "paper"])
def test_a_compact_table_trains_the_same_bytes(titanic, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The category-typed table a large CSV is read as, and EncodedRows expanded per batch,
    train the bytes the plain table and whole matrices train."""
    plain = titanic.frame
    compact = plain.astype({c: "category" for c in plain.columns if plain[c].dtype == object})
    out = []
    for df in (plain, compact):
        gen = DDPBetaVAE(mode=mode, epochs=2, random_state=4)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gen.fit(df, target=titanic.target, schema=titanic.schema, ledger=False)
        out.append(gen.to_bytes())
    assert out[0] == out[1]


def test_batches_taken_by_index_train_as_the_whole_matrix_did(titanic) -> None:  # type: ignore[no-untyped-def]
    from threedgl.model.training import train_class_models

    encoder = TableEncoder(titanic.schema)
    rows, labels = encode_table(encoder, titanic.frame)
    assert labels is not None
    classes = [rows.take(np.flatnonzero(labels == k)) for k in range(2)]
    kw = {"hidden": (16, 8), "latent": 3, "epochs": 2, "batch_size": 64, "seed": 1}
    lazy = train_class_models(classes, encoder.layout, **kw)  # type: ignore[arg-type]
    dense = train_class_models([c.matrix() for c in classes], encoder.layout, **kw)  # type: ignore[arg-type]
    for a, b in zip(lazy.decoder_states, dense.decoder_states, strict=True):
        for name in a:
            assert torch_equal(a[name], b[name]), name
    assert lazy.privacy == dense.privacy


def torch_equal(a, b) -> bool:  # type: ignore[no-untyped-def]
    import torch

    return bool(torch.equal(a, b))


class Recorder:
    """A progress object with every optional method, recording the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, k: int, epoch: int, eps: float) -> None:
        self.calls.append(("epoch", k, epoch))

    def planned(self, k: int, epochs: int, steps: int | None = None) -> None:
        self.calls.append(("planned", k, epochs, steps))

    def batch(self, k: int, done: int) -> None:
        self.calls.append(("batch", k, done))

    def stage(self, what: str, done: int, total: int) -> None:
        self.calls.append(("stage", what, done, total))


@pytest.mark.parametrize("mode", ["anchored", "paper"])
def test_progress_counts_batches_towards_the_known_steps(titanic, mode: str) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder()
    gen = DDPBetaVAE(mode=mode, epochs=2, random_state=0)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen.fit(titanic.frame, target=titanic.target, schema=titanic.schema, ledger=False,
                progress=rec)
    stages = {c[1] for c in rec.calls if c[0] == "stage"}
    assert "checking and encoding columns" in stages
    for k, record in enumerate(gen.privacy_):
        assert ("planned", k, 2, record.steps) in rec.calls
        done = [c[2] for c in rec.calls if c[0] == "batch" and c[1] == k]
        assert done == list(range(1, record.steps + 1))
        assert ("epoch", k, 2) in rec.calls


def test_the_python_fit_refuses_a_composed_budget_before_any_step(titanic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ledger.json"
    kw = {"target": titanic.target, "schema": titanic.schema, "ledger": path}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DDPBetaVAE(epochs=2, random_state=0).fit(titanic.frame, **kw)
    book = Ledger.open(path)
    book.budgets["*"] = 2.5  # one ε = 1.9 fit fits; two compose to more
    book.save()
    before = path.read_bytes()
    rec = Recorder()
    gen = DDPBetaVAE(epochs=2, random_state=1)
    with pytest.raises(PrivacyError, match="refused before training"):
        gen.fit(titanic.frame, progress=rec, **kw)
    assert not [c for c in rec.calls if c[0] in ("batch", "epoch")]  # no DP-Adam step ran
    assert not hasattr(gen, "manifest_") and path.read_bytes() == before


def test_train_refuses_a_composed_budget_before_training(small: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    data, schema = small
    ledger = tmp_path / "ledger.json"
    common = ["-t", "survived", "--schema", schema, "--ledger", ledger, "--seed", "0"]
    first = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / "a.3dgl"), "--epochs",
                                "2", *map(str, common)])
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["budget", "--ledger", str(ledger), "--set-budget",
                               "2.5"]).exit_code == 0
    before = ledger.read_bytes()
    out = tmp_path / "b.3dgl"
    t0 = time.perf_counter()
    # 20,000 epochs would train for many minutes: the refusal must come before
    r = runner.invoke(app, ["train", str(data), "-o", str(out), "--epochs", "20000",
                            *map(str, common)])
    elapsed = time.perf_counter() - t0
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "above its budget of 2.5" in lines[0] and "refused before training" in lines[0]
    assert not out.exists() and ledger.read_bytes() == before
    assert elapsed < 30, elapsed


def test_train_shows_class_bars_counting_steps_within_100_columns(small: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data, schema = small
    env = {**os.environ, "COLUMNS": "100", "THREEDGL_LEDGER": str(tmp_path / "l.json")}
    r = subprocess.run([sys.executable, "-m", "threedgl.cli.main", "train", str(data), "-t",
                        "survived", "--schema", str(schema), "-o", str(tmp_path / "a.3dgl"),
                        "--epochs", "3", "--seed", "0", "--generator", "ddp-betavae"],
                       capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert max(len(ln) for ln in lines) <= 100, r.stderr
    manifest = json.loads(subprocess.run(
        [sys.executable, "-m", "threedgl.cli.main", "inspect", "--json",
         str(tmp_path / "a.3dgl")], capture_output=True, text=True, check=True).stdout)
    for model in manifest["models"]:
        steps = model["privacy"]["steps"]
        bar = next(ln for ln in lines if ln.startswith(f"survived = {model['label']} "))
        assert f"{steps}/{steps}" in bar and "epoch 3/3" in bar, bar
    assert any(ln.startswith("reading t.csv (MB)") for ln in lines), r.stderr


def test_dp_marginals_refuses_before_releasing(titanic, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ledger.json"
    kw = {"target": titanic.target, "schema": titanic.schema, "ledger": path}
    DPMarginals(epsilon=1.9, random_state=0).fit(titanic.frame, **kw)
    book = Ledger.open(path)
    book.budgets["*"] = 2.5
    book.save()
    gen = DPMarginals(epsilon=1.9, random_state=1)
    with pytest.raises(PrivacyError, match="refused before training"):
        gen.fit(titanic.frame, **kw)
    assert not hasattr(gen, "manifest_") and len(Ledger.open(path).entries) == 1
