"""`3dgl evaluate` and `3dgl reproduce` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from threedgl.cli.main import app
from threedgl.experiments.reproduce import split

runner = CliRunner()


@pytest.fixture(scope="module")
def breast_cancer_files(tmp_path_factory):  # type: ignore[no-untyped-def]
    from threedgl import DDPBetaVAE, datasets

    ds = datasets.load("breast-cancer")
    train, test = split(ds.frame, ds.target, 0)
    root = tmp_path_factory.mktemp("bc")
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DDPBetaVAE.from_preset("breast-cancer", epochs=5, random_state=0)
        gen.fit(train, target=ds.target, schema=ds.schema)
    gen.save(root / "bc.3dgl")
    return root


def test_evaluate_writes_every_figure(breast_cancer_files: Path) -> None:
    root = breast_cancer_files
    out = root / "eval.json"
    result = runner.invoke(app, [
        "evaluate", "--generator", str(root / "bc.3dgl"), "--train", str(root / "train.csv"),
        "--test", str(root / "test.csv"), "--target", "diagnosis", "--json", str(out),
        "--pool-size", "2000",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for key in ("accuracy", "f1", "auc", "discriminator", "kld", "tld", "pairwise_fidelity",
                "utility", "synthetic_size", "majority_accuracy",
                "tvd_1way", "tvd_2way", "tvd_3way", "tvd_floor"):
        assert key in report
    assert set(report["discriminator"]) == {"logreg", "hgb"}
    assert 0.0 <= report["accuracy"] <= 1.0
    assert 0.0 < report["tvd_1way"] <= report["tvd_2way"] <= report["tvd_3way"] <= 1.0
    assert set(report["tvd_floor"]) == {"tvd_1way", "tvd_2way", "tvd_3way"}
    assert "TLD" in result.output and "marginal TVD" in result.output
    assert f"{report['tvd_2way']:.4f}" in result.output


def test_evaluate_wrong_target_is_one_line_exit_2(breast_cancer_files: Path) -> None:
    root = breast_cancer_files
    out = root / "never.json"
    result = runner.invoke(app, [
        "evaluate", "--generator", str(root / "bc.3dgl"), "--train", str(root / "train.csv"),
        "--test", str(root / "test.csv"), "--target", "nope", "--json", str(out),
    ])
    assert result.exit_code == 2
    assert "nope" in result.output
    assert not out.exists()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):  # type: ignore[no-untyped-def]
    """`3dgl reproduce --quick` on Breast Cancer (Tables II and III), run once."""
    out = tmp_path_factory.mktemp("reproduce") / "run"
    result = runner.invoke(app, [
        "reproduce", "--quick", "--datasets", "breast-cancer", "--no-federation",
        "--no-privacy", "--epochs", "5", "--out", str(out),
    ])
    return result, out


def test_reproduce_quick_on_one_small_dataset(quick_run) -> None:  # type: ignore[no-untyped-def]
    result, out = quick_run
    assert result.exit_code == 0, result.output
    assert "Table II" in result.output and "Table III" in result.output
    assert "96.5" in result.output  # the paper's Synth accuracy beside ours
    # The terminal summary fits 100 columns; the last line is the report's path.
    assert max(len(line) for line in result.output.splitlines()) <= 100, result.output
    assert result.output.strip().splitlines()[-1] == str(out / "report.html")
    for name in ("tables.md", "results.csv", "results.json", "table_ii.csv", "table_iii.csv",
                 "sweep-breast-cancer.png", "marginals-breast-cancer.png", "report.html"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    assert "paper 96.51" in page  # the paper's Synth accuracy beside ours, in the report
    assert page.count("data:image/png;base64,") == 2  # the sweep and the marginals, embedded
    assert "How obtained" in page and 'id="table_ii"' in page and 'id="table_iii"' in page
    assert "src=\"http" not in page and "href=\"http" not in page  # self-contained
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    # how long each part took and how busy the machine was (issue 23)
    run = results["run"]
    assert set(run["seconds"]) == {"Tables II and III", "total"}
    assert 0 < run["seconds"]["Tables II and III"] <= run["seconds"]["total"]
    assert set(run["load_average"]) == {"Tables II and III"} and run["jobs"] >= 1
    assert run["load_average"]["Tables II and III"]["max"] >= 0
    assert "(load average " in page
    sources = {r["source"] for r in rows}
    assert {"Real", "DDP-βVAE (ε=1.9)", "DP marginals (ε=1.9)", "βVAE, no DP (ε=∞)"} <= sources
    main = [r for r in rows if r["source"] == "DDP-βVAE (ε=1.9)" and r["model"] == "logreg"]
    assert main and main[0]["epsilon_reached"] <= 1.9
    # Table III's k-way marginal TVD: every generator, and the floor (test vs train) first.
    table = pd.read_csv(out / "table_iii.csv", dtype=str).fillna("")
    assert list(table.columns[-3:]) == ["tvd 1-way", "tvd 2-way", "tvd 3-way"]
    assert table["source"].iloc[0] == "Real test split (floor)"
    # one seed: the mean alone (no "± 0.00", issue 22)
    assert table["auc"].iloc[0] == "" and all(table["tvd 3-way"].str.fullmatch(r"[\d.]+"))
    assert "marginal TVD" in result.output and "floor" in result.output
    assert "tvd 2-way" in page and "total variation distance" in page


def test_compare_tables_skips_what_the_readme_does_not_record(quick_run, capsys) -> None:  # type: ignore[no-untyped-def]
    """benchmarks/compare_tables.py on a run whose Table III has columns and a row the
    README's tables do not: compared cell by cell, the new ones skipped."""
    import importlib.util

    _, out = quick_run
    path = Path(__file__).parent.parent / "benchmarks" / "compare_tables.py"
    spec = importlib.util.spec_from_file_location("compare_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(out), "--all"]) in (0, 1)
    printed = capsys.readouterr().out
    assert "table_iii" in printed and "cells within" in printed and "tvd" not in printed
    assert "floor" not in printed


def test_table_iii_from_rows() -> None:
    from threedgl.experiments.tables import summary_tables, table_iii

    base = {"dataset": "titanic"}
    disc = {"model": "discriminator", "disc_accuracy": 50.0, "disc_f1": 50.0, "disc_auc": 52.0,
            "disc_hgb_auc": 90.0, "kld": 0.01, "tld": 0.2, "pairwise_fidelity": 0.1}
    rows = [{**base, "seed": s, "source": "DP marginals (ε=1.9)", **disc} for s in (0, 1)]
    old = table_iii(pd.DataFrame(rows))  # a run made before the TVD: no such columns
    assert "tvd 1-way" not in old and list(old["source"]) == ["DP marginals (ε=1.9)"]
    tvd = [{**base, "seed": s, "source": src, "model": "marginals", "tvd_1way": 0.01 * (s + 1),
            "tvd_2way": 0.02, "tvd_3way": 0.04} for s in (0, 1)
           for src in ("Real", "DP marginals (ε=1.9)")]
    frame = pd.DataFrame(rows + tvd)
    new = table_iii(frame)
    assert list(new["source"]) == ["Real test split (floor)", "DP marginals (ε=1.9)"]
    assert new["tvd 1-way"].tolist() == ["0.015 ± 0.007"] * 2
    assert new["tvd 3-way"].tolist() == ["0.040 ± 0.000"] * 2
    assert new["auc"].tolist() == ["", "52.00 ± 0.00"]
    summary = summary_tables(pd.concat([frame, pd.DataFrame(
        [{**base, "seed": 0, "source": "Real", "model": "logreg", "accuracy": 80.0}])]))
    (tvd_table,) = [t for title, t in summary.items() if "marginal TVD" in title]
    assert tvd_table.to_dict("records") == [
        {"dataset": "titanic", "floor": "0.020/0.040", "DP marg.": "0.020/0.040"}]


def test_reproduce_unknown_dataset_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["reproduce", "--datasets", "iris", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "iris" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))
    and not os.environ.get("THREEDGL_REQUIRE_BROWSER"),
    reason="no headless browser (apt-get install -y chromium)",
)
def test_report_renders_in_a_headless_browser(quick_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """report.html opens in a real browser: the page is not blank, its embedded plots draw.

    Skipped without a browser, except where THREEDGL_REQUIRE_BROWSER is set (CI: `.ci/run`
    installs Debian's chromium), where a missing browser fails it."""
    _, out = quick_run
    script = Path(__file__).parent.parent / "benchmarks" / "report_screenshot.py"
    shot = tmp_path / "report.png"
    run = subprocess.run([sys.executable, str(script), str(out / "report.html"), "--out",
                          str(shot), "--height", "3000"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[FAIL]" not in run.stdout and shot.stat().st_size > 10_000


def test_reproduce_rows_do_not_depend_on_the_number_of_processes() -> None:
    from threedgl.experiments.reproduce import ReproduceConfig, reproduce

    def run(jobs: int) -> Any:
        config = ReproduceConfig(datasets=["breast-cancer"], seeds=2, quick=True,
                                 generators=("DP marginals (ε=1.9)",), table_iii=False,
                                 jobs=jobs)
        return reproduce(config)

    one, two = run(1), run(2)
    rows_one, rows_two = (r.frame().drop(columns=["fit_seconds"]) for r in (one, two))
    # Per seed: Real and the generator, each with logreg, hgb and the marginal TVD.
    assert len(rows_one) == 2 * 6 and sorted(rows_one["seed"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(rows_one, rows_two)
    # the plots' inputs too: the sweep curves and the (train, sample) pair of seed 0
    sweeps = one.sweeps["breast-cancer"]
    assert set(sweeps) == set(two.sweeps["breast-cancer"]) == {"DP marginals (ε=1.9)"}
    for name, sweep in sweeps.items():
        assert sweep == two.sweeps["breast-cancer"][name]
    for a, b in zip(one.marginals["breast-cancer"], two.marginals["breast-cancer"], strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_reproduce_config_refuses_unknown_or_repeated_generators() -> None:
    from threedgl.errors import ThreedglError
    from threedgl.experiments.reproduce import ReproduceConfig

    for generators in (("DP marginals (ε=1.9)", "DP marginals (ε=1.9)"), ("GAN",)):
        with pytest.raises(ThreedglError, match="generators must be distinct names"):
            ReproduceConfig(datasets=["titanic"], generators=generators)


def test_noniid_table_sets_the_pool_beside_dp_marginals_and_centralized(tmp_path: Path) -> None:
    """`3dgl reproduce --noniid`'s table (issue 21): one row per (dataset, split), the
    differences computed from the simulations' own summaries, rendered in report.html."""
    from threedgl.experiments.report import RunInfo, write_outputs
    from threedgl.experiments.reproduce import ReproduceResult
    from threedgl.experiments.runs import noniid_table, simulate_all

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = noniid_table(["titanic"], splits=("quantity:0.3",), seeds=1, clients=3,
                             epochs=1, workers=1)
        alone = simulate_all({"m": {"data": "titanic", "split": "quantity:0.3", "clients": 3,
                                    "seeds": 1, "epochs": 1, "generator": "dp-marginals"}},
                             workers=1)["m"].summary()
    assert list(table[["dataset", "split"]].itertuples(index=False, name=None)) == [
        ("titanic", "quantity:0.3")]
    row = table.iloc[0]
    assert row["pool, DP marginals"] == alone.loc["fold_test", "accuracy"]
    assert row["centralized"] == alone.loc["centralized", "accuracy"]  # the same split
    assert row["Δ vs centralized"] == pytest.approx(row["pool, DDP-βVAE"] - row["centralized"])
    assert row["Δ vs DP marginals"] == pytest.approx(
        row["pool, DDP-βVAE"] - row["pool, DP marginals"])
    written = write_outputs(ReproduceResult(), tmp_path, {"noniid": table}, RunInfo())
    page = written[-1].read_text()
    assert "Label and quantity skew" in page and "quantity:0.3" in page


def test_compare_runs_takes_a_cells_noise_from_the_new_runs_std_file(tmp_path: Path,
                                                                      capsys) -> None:  # type: ignore[no-untyped-def]
    """A cell without a recorded std (Tables IV/V, privacy) is judged against the new run's
    ``<table>_std.csv`` (written by write_outputs from the table's ``attrs["std"]``)."""
    import importlib.util

    from threedgl.experiments.report import RunInfo, write_outputs
    from threedgl.experiments.reproduce import ReproduceResult

    path = Path(__file__).parent.parent / "benchmarks" / "compare_tables.py"
    spec = importlib.util.spec_from_file_location("compare_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    pd.DataFrame({"dataset": ["wine", "adult"], "Accuracy Real ours": [90.0, 80.0]}).to_csv(
        old / "table_iv.csv", index=False)
    table = pd.DataFrame({"dataset": ["wine", "adult"], "Accuracy Real ours": [90.3, 80.0]})
    table.attrs["std"] = [{"dataset": "wine", "Accuracy Real ours": 0.5},
                          {"dataset": "adult", "Accuracy Real ours": 0.0}]
    written = write_outputs(ReproduceResult(), new, {"table_iv": table}, RunInfo())
    assert new / "table_iv_std.csv" in written
    assert module.compare_runs(new, old) == 0  # 0.3 within the wine cell's std 0.5
    table.attrs["std"][0]["Accuracy Real ours"] = 0.1
    write_outputs(ReproduceResult(), new, {"table_iv": table}, RunInfo())
    assert module.compare_runs(new, old) == 1  # 0.3 is 3 stds now
    assert "OUTSIDE" in capsys.readouterr().out
