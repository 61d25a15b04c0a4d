"""One 3DGL client's evaluation, timed against a baseline commit in the same run (issue 23).

The clients' generators are trained once (DDP-βVAE, default mode, one epoch) and written
to a temporary directory; then ``evaluate_artifacts`` (every scenario of one client, as
``3dgl simulate`` runs it) is timed in a fresh process for the current tree and for
``--baseline`` (a git commit, checked out in a temporary worktree), alternating, best of
``--repeats``. Prints both times, their ratio and whether the scores are identical.

    python benchmarks/evaluation_speed.py [--baseline ba019e7~1] [--datasets titanic,adult]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, pickle, sys, time, warnings
warnings.simplefilter("ignore")
from threedgl.federation.scenarios import EvaluationOptions
from threedgl.federation.workers import evaluate_artifacts
task = pickle.load(open(sys.argv[1], "rb"))
t0 = time.process_time()
out = evaluate_artifacts(task["fold"], task["test"], task["schema"], task["pos"],
                         task["pool"], task["own"], EvaluationOptions(), 0)
print(json.dumps({"seconds": time.process_time() - t0, "scores": out}))
"""


def prepare(name: str, path: Path) -> None:
    import pickle
    import warnings

    from threedgl.federation.plan import resolve_data, split_for_seed
    from threedgl.federation.splits import parse_split
    from threedgl.federation.workers import PresetFactory, train_client

    warnings.simplefilter("ignore")
    _, frame, schema, pos, _ = resolve_data(name, None, None, None, None)
    sp = split_for_seed(frame, schema, 10, parse_split("stratified"), 0, 0, test_size=0.1,
                        min_rows=10)
    pool = [train_client(sp.folds[c], schema, PresetFactory(None, 1.9, 1e-4, 1), c, c).artifact
            for c in range(3)]
    with path.open("wb") as f:  # a benchmark's own scratch file, read back by its children
        pickle.dump({"fold": sp.folds[0], "test": sp.test, "schema": schema, "pos": pos,
                     "pool": pool, "own": pool[0]}, f)


def run(src: Path, task: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(task)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ba019e7~1")
    parser.add_argument("--datasets", default="titanic,adult")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        worktree = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                        str(worktree), args.baseline], check=True)
        try:
            for name in args.datasets.split(","):
                task = tmp / f"{name}.pkl"
                prepare(name, task)
                best = {"current": float("inf"), "baseline": float("inf")}
                scores = {}
                for _ in range(args.repeats):
                    for label, src in (("baseline", worktree / "src"), ("current", ROOT / "src")):
                        got = run(src, task)
                        best[label] = min(best[label], got["seconds"])
                        scores[label] = got["scores"]
                same = json.dumps(scores["current"], sort_keys=True) == json.dumps(
                    scores["baseline"], sort_keys=True)
                print(f"{name}: one client's evaluation, CPU s (best of {args.repeats}): "
                      f"baseline {best['baseline']:.2f}, current {best['current']:.2f}, "
                      f"ratio {best['current'] / best['baseline']:.2f}; identical scores: "
                      f"{same}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
