"""The 3DGL simulation: sealed test set, worker-count invariance, reports, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from threedgl import DPMarginals, GeneratorsPool, datasets
from threedgl.cli.simulate import paper_references
from threedgl.errors import ThreedglError
from threedgl.experiments import tables_iv_v
from threedgl.federation import (
    SCENARIOS,
    EvaluationOptions,
    InMemoryServer,
    PresetFactory,
    SimulationResult,
    simulate,
    stratified_folds,
)
from threedgl.federation import scenarios as scen_mod
from threedgl.federation import simulation as sim_mod

FAST = EvaluationOptions(pool_min_rows=400, pool_factor=4, cv_folds=5, rpp_cv_folds=3)


class RecordingFrame(pd.DataFrame):
    """A DataFrame that logs every attribute access (once armed) with the current phase."""

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame  # frames derived from it are plain (only reads of it are logged)

    def __getattribute__(self, name: str) -> Any:
        state = object.__getattribute__(self, "__dict__").get("_recording")
        if state is not None:
            state["log"].append((name, state["phase"]))
        return super().__getattribute__(name)


def _recording(df: pd.DataFrame) -> tuple[RecordingFrame, dict[str, Any]]:
    wrapped = RecordingFrame(df.copy())
    state: dict[str, Any] = {"log": [], "phase": "selection"}
    object.__setattr__(wrapped, "_recording", state)
    return wrapped, state


def _marginals(df: pd.DataFrame, schema: Any, seed: int) -> DPMarginals:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DPMarginals(epsilon=float("inf"), random_state=seed).fit(df, schema=schema)


def test_fold_test_never_reads_the_test_set_before_final_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = datasets.load("titanic")
    test = ds.frame.iloc[:130]
    folds = stratified_folds(ds.frame.iloc[130:], ds.target, 4, random_state=0)
    gens = [_marginals(f, ds.schema, i) for i, f in enumerate(folds)]
    pool = GeneratorsPool(gens)
    recorded, state = _recording(test)

    original = scen_mod.score_on_test
    seen: dict[str, Any] = {}

    def final_scoring(selection: Any, *args: Any, **kwargs: Any) -> Any:
        seen["before"] = list(state["log"])
        seen["fold_test_size"] = selection.pool_sweep.best_size
        state["phase"] = "final"
        return original(selection, *args, **kwargs)

    sweeps: list[tuple[bool, str]] = []
    original_sweep = scen_mod.size_sweep

    def spy_sweep(synthetic: Any, selection_df: Any, *args: Any, **kwargs: Any) -> Any:
        sweeps.append((selection_df is recorded, state["phase"]))
        return original_sweep(synthetic, selection_df, *args, **kwargs)

    monkeypatch.setattr(scen_mod, "score_on_test", final_scoring)
    monkeypatch.setattr(scen_mod, "size_sweep", spy_sweep)
    out = scen_mod.evaluate_client(folds[0], recorded, pool, gens[0], ds.schema, ds.positive_label,
                                  FAST, random_state=7)
    assert "before" in seen, "the final scoring was never called"
    assert seen["before"] == []  # not a single access to the test set before final scoring
    assert state["log"], "the final scoring must read the test set"
    assert all(phase == "final" for _, phase in state["log"])
    # every sweep that selected on the test set (Test-Test only) ran after the final phase began
    assert any(on_test for on_test, _ in sweeps)
    assert all(phase == "final" for on_test, phase in sweeps if on_test)
    assert out["fold_test"]["synthetic_rows"] == seen["fold_test_size"]
    assert out["fold_fold"]["synthetic_rows"] == seen["fold_test_size"]
    assert set(out) == set(SCENARIOS) - {"centralized"}
    for scores in out.values():
        for m in ("accuracy", "f1", "auc"):
            assert 0.0 <= scores[m] <= 1.0


def test_select_on_own_data_takes_no_test_set() -> None:
    import inspect

    params = inspect.signature(sim_mod.select_on_own_data).parameters
    assert not any("test" in name for name in params)


def _run(workers: int, **kwargs: Any) -> SimulationResult:
    # epsilon=inf skips the (slow) noise calibration; DP training itself is covered elsewhere
    return simulate("titanic", clients=3, epochs=1, epsilon=float("inf"), workers=workers,
                    random_state=11, options=FAST, **kwargs)


@pytest.fixture(scope="module")
def one_worker() -> SimulationResult:
    return _run(1)


@pytest.fixture(scope="module")
def two_seeds_one_worker() -> SimulationResult:
    return _run(1, seeds=2)


def test_same_seed_same_results_with_1_and_2_workers(
        two_seeds_one_worker: SimulationResult) -> None:
    two = _run(2, seeds=2)  # with a worker pool, the two seeds' rounds run at once
    pd.testing.assert_frame_equal(two_seeds_one_worker.to_frame(), two.to_frame())
    # seeds are derived per (random_state, seed index, purpose, client): all distinct
    seeds = {sim_mod.derive_seed(11, s, p, c) for s in range(2) for p in range(4) for c in range(3)}
    assert len(seeds) == 24
    assert sim_mod.derive_seed(11, 0, 2, 1) != sim_mod.derive_seed(12, 0, 2, 1)


def test_simulations_sharing_one_pool_at_once_give_the_same_scores(
        two_seeds_one_worker: SimulationResult) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from threedgl.federation.workers import make_executor

    pool = make_executor(2)
    try:
        with ThreadPoolExecutor(max_workers=2) as drivers:
            results = list(drivers.map(lambda _: _run(2, seeds=2, executor=pool), range(2)))
    finally:
        assert pool is not None
        pool.shutdown()
    for result in results:
        pd.testing.assert_frame_equal(two_seeds_one_worker.to_frame(), result.to_frame())
    with pytest.raises(ThreedglError, match="local engine"):
        simulate("titanic", clients=2, engine="flower", executor=ThreadPoolExecutor(1))


def test_result_shapes_and_reports(one_worker: SimulationResult, tmp_path: Path) -> None:
    frame = one_worker.to_frame()
    assert len(frame) == 3 * len(SCENARIOS)
    assert set(frame["scenario"]) == set(SCENARIOS)
    assert frame[["accuracy", "f1"]].stack().between(0, 100).all()
    central = frame[frame["scenario"] == "centralized"]
    assert central["accuracy"].nunique() == 1  # the same upper bound for every client
    summary = one_worker.summary()
    assert list(summary.index) == list(SCENARIOS)
    local = frame[frame["scenario"] == "local_test"]["accuracy"].mean()
    fold_test = frame[frame["scenario"] == "fold_test"]["accuracy"].mean()
    assert summary.loc["fold_test", "accuracy_gain"] == pytest.approx(fold_test - local)
    gains = one_worker.gains()
    assert set(gains["scenario"]) == {"fold_fold", "fold_test", "test_test", "own_generator",
                                      "real_plus_pool", "centralized"}
    assert "Beside the paper" not in one_worker.to_markdown()  # the report imports no paper
    paths = one_worker.write(tmp_path / "out", references=paper_references("titanic"))
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["markdown"].read_text()
    assert "Fold-Test" in md and "Beside the paper" in md
    assert "| V | fold_test | fold_test | 74.81 |" in md  # the paper's Table V number
    assert paper_references("not-in-the-paper") == []
    data = json.loads(paths["json"].read_text())
    assert data["config"]["clients"] == 3 and len(data["records"]) == len(frame)
    assert len(pd.read_csv(paths["clients_csv"])) == len(frame)
    table_iv, table_v = tables_iv_v({"titanic": one_worker})
    assert table_iv.loc[0, "dataset"] == "titanic"
    assert table_iv.loc[0, "Accuracy Real paper"] == 77.28
    assert table_iv.loc[0, "Accuracy Real ours"] == pytest.approx(summary.loc["local_cv", "accuracy"])
    assert table_v.loc[0, "F1 Synth(Fold-Test) paper"] == 64.71
    assert table_v.iloc[-1]["dataset"] == "mean gain vs Real"
    # one dataset: only its row, and the paper's gain over that dataset, not its five
    assert len(table_v) == 2
    assert table_v.iloc[-1]["Accuracy Synth(Fold-Test) paper"] == pytest.approx(
        table_v.loc[0, "Accuracy Synth(Fold-Test) paper"] - table_v.loc[0, "Accuracy Real paper"])


class _RecordingServer(InMemoryServer):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def publish(self, client: int, artifact: bytes) -> None:
        self.calls.append(("publish", client))
        super().publish(client, artifact)

    def pull(self, client: int) -> list[bytes]:
        self.calls.append(("pull", client))
        return super().pull(client)


def _marginals_factory(client: int, random_state: int) -> DPMarginals:
    return DPMarginals(epsilon=1.0, random_state=random_state)


def test_server_seam_custom_factory_and_dirichlet() -> None:
    server = _RecordingServer()
    result = simulate(datasets.load("breast-cancer"), clients=4, split="dirichlet:0.3", workers=1,
                      generator_factory=_marginals_factory, server=server, options=FAST)
    assert [c for c in server.calls if c[0] == "publish"] == [("publish", c) for c in range(4)]
    assert server.calls.index(("pull", 0)) > server.calls.index(("publish", 3))
    frame = result.to_frame()
    shares = frame.groupby("client")["client_positive_share"].first()
    assert shares.std() > 10  # label skew, in %
    assert result.config["split"] == "dirichlet:0.3"


def test_pool_is_refused_to_a_client_that_did_not_publish() -> None:
    server = InMemoryServer()
    with pytest.raises(ThreedglError, match="publish"):
        server.pull(0)


def test_bad_arguments() -> None:
    with pytest.raises(ThreedglError, match="unknown dataset"):
        simulate("nope")
    with pytest.raises(ThreedglError, match="split"):
        simulate("titanic", split="iid")
    with pytest.raises(ThreedglError, match="clients"):
        simulate("titanic", clients=1)
    with pytest.raises(ThreedglError, match="target"):
        simulate(pd.DataFrame({"a": [1, 2]}))
    assert PresetFactory("titanic", epochs=3)(0, 1).get_params()["epochs"] == 3


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("3dgl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "threedgl.cli.main"]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_cli_simulate_end_to_end(tmp_path: Path) -> None:
    proc = _cli("simulate", "titanic", "--clients", "3", "--epochs", "2", "--out", "tmp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "tmp"
    for name in ("report.md", "clients.csv", "summary.csv", "results.json", "gains.png"):
        assert (out / name).is_file(), name
    assert "fold_test" in proc.stdout and "local_test" in proc.stdout
    assert len(pd.read_csv(out / "clients.csv")) == 3 * len(SCENARIOS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "nope"], "neither a bundled dataset"),
        (["simulate", "titanic", "--split", "iid"], "invalid split"),
        (["simulate", "titanic", "--clients", "1"], "at least 2"),
    ],
)
def test_cli_bad_input_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from threedgl.cli.main import app

    with pytest.raises(SystemExit) as exc:
        app(args, prog_name="3dgl")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_seeds_give_std(tmp_path: Path) -> None:
    result = simulate(datasets.load("breast-cancer"), clients=2, seeds=2, workers=1,
                      generator_factory=_marginals_factory, options=FAST)
    summary = result.summary()
    frame = result.to_frame()
    assert sorted(frame["seed"].unique()) == [0, 1]
    # The std is the (population) std over seeds of each seed's average over clients.
    for scenario in ("centralized", "local_test", "fold_test"):
        per_seed = frame[frame["scenario"] == scenario].groupby("seed")["accuracy"].mean()
        assert len(per_seed) == 2
        expected = abs(per_seed.iloc[0] - per_seed.iloc[1]) / 2
        assert summary.loc[scenario, "accuracy_std"] == pytest.approx(expected, abs=1e-9)
    # Each seed draws its own split, so the real-data baselines differ between seeds (in
    # one metric at least: two small test splits can give the same accuracy by chance).
    for scenario in ("centralized", "local_test"):
        assert max(summary.loc[scenario, f"{m}_std"] for m in ("accuracy", "f1", "auc")) > 0


def test_the_parts_import_no_cycle_and_no_paper() -> None:
    """The federation package in parts: each module imports only the parts below it, and
    nothing of the simulation side imports the paper's tables (the report takes them in)."""
    import ast

    root = Path(sim_mod.__file__).parent
    below = {
        "scenarios": set(), "transport": set(), "splits": set(),
        "workers": {"scenarios"}, "plan": {"splits", "workers"}, "report": {"scenarios"},
        "simulation": {"plan", "report", "scenarios", "splits", "transport", "workers"},
    }
    for name, allowed in below.items():
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        used = set()
        for node in ast.walk(tree):  # also the imports inside functions
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "threedgl.federation"):
                parts = (node.module or "").split(".")
                used |= ({parts[2]} if len(parts) > 2 else {a.name for a in node.names})
        assert "paper" not in used, name
        assert used - {"flower"} <= allowed, (name, used - allowed)
    for path in root.rglob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 500, path


def test_a_client_that_cannot_judge_takes_every_pool_row() -> None:
    """Label skew: a client with fewer than MIN_JUDGE_ROWS rows of a class cannot rank
    classifiers on it, so its size sweep's choice is replaced by every sampled pool row
    and its class mix is the released one; a client with enough of each class keeps its
    sweep's choice."""
    ds = datasets.load("titanic")
    frame = ds.frame.sample(frac=1.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = DPMarginals(random_state=0).fit(frame.iloc[:600], target=ds.target,
                                             schema=ds.schema)
    pool = GeneratorsPool([gen])
    synthetic = pool.sample(3000, balanced=True, random_state=0)
    skewed = pd.concat([frame[frame[ds.target] == "0"].iloc[:60],
                        frame[frame[ds.target] == "1"].iloc[:4]])
    mixed = frame.iloc[600:700]
    assert not scen_mod.can_judge(skewed, ds.schema) and scen_mod.can_judge(mixed, ds.schema)
    for client, judged in ((skewed, False), (mixed, True)):
        sel = scen_mod.select_on_own_data(client, synthetic, synthetic, ds.schema,
                                          ds.positive_label, FAST, 0)
        if judged:
            assert sel.pool_sweep.best_size in sel.pool_sweep.sizes
        else:
            assert sel.pool_sweep.best_size == sel.own_sweep.best_size == len(synthetic)
    table = scen_mod.sample_class_mix(pool, 1000, 1, 2, skewed, ds.schema, ds.positive_label,
                                      EvaluationOptions())
    released = pool.sample(1000, balanced=False, random_state=1)[ds.target].value_counts()
    assert table[ds.target].value_counts().to_dict() == released.to_dict()


def test_a_skewed_clients_selection_rows_follow_the_federations_mix() -> None:
    ds = datasets.load("titanic")
    frame = ds.frame.sample(frac=1.0, random_state=1)
    skewed = pd.concat([frame[frame[ds.target] == "0"].iloc[:90],
                        frame[frame[ds.target] == "1"].iloc[:10]])
    shifted = scen_mod.shift_to_mix(skewed, {"0": 0.5, "1": 0.5}, ds.schema, 0)
    assert shifted[ds.target].value_counts().to_dict() == {"0": 50, "1": 50}
    assert set(shifted.index) <= set(skewed.index)  # its own rows, reweighted
    # a client within 0.1 of the federation's mix keeps its rows; an unknown mix too
    near = scen_mod.shift_to_mix(skewed, {"0": 0.85, "1": 0.15}, ds.schema, 0)
    assert near is skewed
    assert scen_mod.shift_to_mix(skewed, {}, ds.schema, 0) is skewed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gens = [DPMarginals(random_state=i).fit(part, target=ds.target, schema=ds.schema)
                for i, part in enumerate((frame.iloc[:300], frame.iloc[300:700]))]
    mix = scen_mod.released_mix(GeneratorsPool(gens))
    assert set(mix) == {"0", "1"} and abs(sum(mix.values()) - 1) < 1e-12
    released = sum(g.class_rows_[0] for g in gens) / sum(sum(g.class_rows_) for g in gens)
    assert mix["0"] == pytest.approx(released)


def test_cross_validation_encodes_once_and_scores_as_utility_scores_does() -> None:
    """The CV helper encodes each table once; its scores are utility_scores' per fold."""
    from threedgl.evaluation import utility_scores

    ds = datasets.load("titanic")
    frame = ds.frame.sample(200, random_state=3)
    extra = ds.frame.sample(150, random_state=4)
    folds = scen_mod.cv_splits(frame[ds.target], 5, 0)
    for more in (None, extra):
        got = scen_mod._cv_scores(frame, folds, ds.schema, ds.positive_label, extra=more)
        want: dict[str, list[float]] = {m: [] for m in ("accuracy", "f1", "auc")}
        for tr, va in folds:
            train = frame.iloc[tr] if more is None else pd.concat([frame.iloc[tr], more])
            s = utility_scores(train, frame.iloc[va], ds.schema,
                               positive_label=ds.positive_label)
            for m in want:
                want[m].append(s[m])
        for m, values in want.items():
            assert got[m] == pytest.approx(sum(values) / len(values), abs=1e-12)


def test_a_failing_simulation_does_not_wait_for_the_others() -> None:
    """simulate_all: one simulation's error cancels the others' waiting tasks and is raised
    at once (not after every other simulation finished)."""
    import time

    from threedgl.experiments.runs import simulate_all

    jobs = {"slow": {"data": "adult", "clients": 4, "seeds": 3, "epochs": 1,
                     "epsilon": float("inf"), "options": FAST},
            "bad": {"data": "titanic", "clients": 2, "seeds": 1, "split": "nonsense"}}
    t0 = time.perf_counter()
    with pytest.raises(ThreedglError):
        simulate_all(jobs, workers=2)
    assert time.perf_counter() - t0 < 60
