"""Scale: 100 clients of Adult (``--split dirichlet:0.5``) on the Flower engine and the local one.

Each engine runs in its own child process (``3dgl``'s :func:`simulate` with the same seeds),
sampled every 0.5 s for the resident memory of its whole process tree (the driver, the
local engine's worker processes, Ray's GCS, raylet and ClientApp actors). Prints and
records, per engine: wall time, peak memory (sum of the tree's RSS: shared pages count
once per process, so it is an upper bound) and the scenario summary; then the ratio of
the Flower engine's time and memory to the local engine's (the baseline, measured in the
same run) and the largest difference between the two engines' per-client scores (0 when
they agree, as the same seeds promise).

    nice -n 10 python benchmarks/flower_scale.py [--clients 100] [--dataset adult]
        [--split dirichlet:0.5] [--workers 2] [--evaluation light|full] [--out benchmarks/results]

``--evaluation light`` (the default) has every client sample fewer synthetic rows (4 × its
fold, 400 to 20,000), cross-validate with 5 and 3 folds and use the balanced class mix:
the same scenarios at a fraction of the cost of ``full`` (SPEC §4's defaults), since what
this benchmark measures is the engines, not the generators' quality (see
benchmarks/federation_quality.py for that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and all its descendants (Linux /proc)."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def _markdown(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.2f}"
        return str(v)

    rows = [" | ".join(cell(v) for v in row) for row in df.itertuples(index=False)]
    head = " | ".join(df.columns)
    sep = "|".join("---:" if df[c].dtype.kind == "f" else "---" for c in df.columns)
    return "\n".join([f"| {head} |", f"|{sep}|", *[f"| {r} |" for r in rows]])


def run_engine(engine: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One engine in a child process; its wall time, peak tree memory and result file."""
    result_path = out / f"flower_scale_{engine}.json"
    cmd = [sys.executable, __file__, "--child", engine, "--evaluation", args.evaluation,
           "--clients", str(args.clients),
           "--dataset", args.dataset, "--split", args.split, "--workers", str(args.workers),
           "--seed", str(args.seed), "--result", str(result_path)]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.5)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the {engine} engine failed (exit {proc.returncode})")
    return {"engine": engine, "wall_seconds": wall, "peak_memory_mb": peak / 2**20,
            "result": json.loads(result_path.read_text(encoding="utf-8"))}


#: ``--evaluation`` settings (``full``: SPEC §4's defaults).
EVALUATION = {
    "light": {"pool_factor": 4, "pool_min_rows": 400, "cv_folds": 5, "rpp_cv_folds": 3,
              "class_mix": "balanced"},
    "full": {},
}


def child(engine: str, args: argparse.Namespace) -> None:
    from threedgl.federation import EvaluationOptions, simulate

    t = time.perf_counter()

    def progress(phase: str, done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"[{engine}] {phase} {done}/{total} at {time.perf_counter() - t:.0f} s",
                  file=sys.stderr, flush=True)

    result = simulate(args.dataset, clients=args.clients, split=args.split, workers=args.workers,
                      random_state=args.seed, epochs=args.epochs or None, engine=engine,
                      options=EvaluationOptions(**EVALUATION[args.evaluation]),
                      progress=progress)
    data = result.to_dict()
    data["inner_seconds"] = time.perf_counter() - t
    Path(args.result).write_text(json.dumps(data, indent=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--split", default="dirichlet:0.5")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=0, help="0: the model's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default="local,flower")
    parser.add_argument("--evaluation", choices=sorted(EVALUATION), default="light")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {e: run_engine(e, args, out) for e in args.engines.split(",")}
    lines = [
        f"# Scale: {args.clients} clients, {args.dataset}, split {args.split}, "
        f"{args.workers} workers, seed {args.seed}, evaluation {args.evaluation}, "
        f"epochs {args.epochs or 'default'}",
        "",
        "| engine | wall time (s) | peak memory (MB, process tree) |",
        "|---|---:|---:|",
    ]
    for e, r in runs.items():
        lines.append(f"| {e} | {r['wall_seconds']:.0f} | {r['peak_memory_mb']:.0f} |")
    if {"local", "flower"} <= set(runs):
        loc, flo = runs["local"], runs["flower"]
        lines += ["", f"Flower / local: time × {flo['wall_seconds'] / loc['wall_seconds']:.2f}, "
                  f"memory × {flo['peak_memory_mb'] / loc['peak_memory_mb']:.2f}"]
        a = pd.DataFrame(loc["result"]["records"]).sort_values(["seed", "client", "scenario"])
        b = pd.DataFrame(flo["result"]["records"]).sort_values(["seed", "client", "scenario"])
        diff = max(float((a[m].to_numpy() - b[m].to_numpy()).__abs__().max())
                   for m in ("accuracy", "f1", "auc"))
        lines.append(f"Largest difference between the engines' per-client scores: {diff:.3g} "
                     "points")
    for e, r in runs.items():
        summary = pd.DataFrame(r["result"]["summary"])
        cols = ["scenario", "accuracy", "f1", "auc", "accuracy_gain", "f1_gain", "auc_gain"]
        lines += ["", f"## Scenario summary, {e} engine (%, mean over clients)", "",
                  _markdown(summary[cols])]
    text = "\n".join(lines) + "\n"
    (out / "flower-scale.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
