"""The pool under label and quantity skew, in the default mode (issue 21, items 2 and 4).

For each dataset, split and seed: the table is split as ``3dgl simulate`` splits it (90 %
train / 10 % test, the train part over the clients), every client trains its generator
once (DDP-βVAE in the default mode, and DP marginals, ε = 1.9), and every client evaluates
the pool as ``simulate`` does (:func:`threedgl.federation.workers.evaluate_artifacts`):
with the pool weighing generators by their released rows (``rows``, the default) and, on
``--equal`` splits, also with the paper's equal shares (the same trained generators, so
the comparison isolates the weighting). Centralized real data is the upper bound.

One CSV row per (dataset, split, clients, seed, generator, weighting), appended as soon as
it is computed (a long run leaves every finished row behind). ``--report CSV`` prints the
tables and the bar of issue 21 from such a file.

    python benchmarks/federation_noniid.py --out benchmarks/results/federation-noniid.csv \\
        [--datasets wine-quality,adult] [--splits dirichlet:0.5,dirichlet:0.1,quantity:0.3] \\
        [--clients 10] [--seeds 3] [--equal quantity:0.3]
    python benchmarks/federation_noniid.py --report benchmarks/results/federation-noniid.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from threedgl.markdown import markdown_table

FIELDS = ["dataset", "split", "clients", "seed", "generator", "weighting", "without_generator",
          "local_acc", "local_f1", "fold_test_acc", "fold_test_f1", "rpp_acc",
          "central_acc", "central_f1", "seconds"]


def run_one(name: str, split: str, clients: int, seed: int, generator: str,
            weightings: list[str], workers: int) -> list[dict[str, Any]]:
    from threedgl.evaluation import utility_scores
    from threedgl.federation import plan
    from threedgl.federation.plan import resolve_data, split_for_seed
    from threedgl.federation.scenarios import EvaluationOptions
    from threedgl.federation.splits import parse_split
    from threedgl.federation.workers import (
        EvalTask,
        PresetFactory,
        TrainTask,
        derive_seed,
        make_executor,
        run_all,
        run_eval,
        run_train,
    )

    t0 = time.perf_counter()
    _, frame, schema, pos, preset = resolve_data(name, None, None, None, None)
    random_state = 0
    sp = split_for_seed(frame, schema, clients, parse_split(split), random_state, seed,
                        test_size=0.1, min_rows=10)
    factory = PresetFactory(preset, 1.9, 1e-4, None, "anchored", generator)
    executor = make_executor(workers)
    try:
        trained = run_all(run_train, [
            TrainTask(c, sp.folds[c], schema, factory,
                      derive_seed(random_state, seed, plan.TRAIN, c, bits=128))
            for c in range(clients)], executor, lambda: None)
        accepted = [c for c in range(clients) if trained[c].artifact is not None]
        pool = tuple(trained[c].artifact for c in accepted)
        central = utility_scores(sp.train, sp.test, schema, positive_label=pos)
        rows = []
        for weighting in weightings:
            options = replace(EvaluationOptions(), pool_weighting=weighting)
            evaluated = run_all(run_eval, [
                EvalTask(c, sp.folds[c], sp.test, schema, pos,
                         pool if c in accepted else (),
                         trained[c].artifact if c in accepted else None, options,
                         derive_seed(random_state, seed, plan.EVAL, c))
                for c in range(clients)], executor, lambda: None)

            def mean(scenario: str, metric: str, evaluated: list[Any] = evaluated) -> float:
                values = [e[scenario][metric] for e in evaluated]
                return 100.0 * float(np.nanmean(values))

            rows.append({
                "dataset": name, "split": split, "clients": clients, "seed": seed,
                "generator": generator, "weighting": weighting,
                "without_generator": clients - len(accepted),
                "local_acc": mean("local_test", "accuracy"), "local_f1": mean("local_test", "f1"),
                "fold_test_acc": mean("fold_test", "accuracy"),
                "fold_test_f1": mean("fold_test", "f1"),
                "rpp_acc": mean("real_plus_pool", "accuracy"),
                "central_acc": 100.0 * central["accuracy"], "central_f1": 100.0 * central["f1"],
                "seconds": round(time.perf_counter() - t0, 1),
            })
        return rows
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def report(path: Path) -> None:
    frame = pd.read_csv(path)
    keys = ["dataset", "split", "clients", "generator", "weighting"]
    table = frame.groupby(keys).agg(
        seeds=("seed", "nunique"), without=("without_generator", "mean"),
        local=("local_acc", "mean"), fold_test=("fold_test_acc", "mean"),
        fold_test_f1=("fold_test_f1", "mean"), own_plus_pool=("rpp_acc", "mean"),
        central=("central_acc", "mean")).round(2).reset_index()
    print(markdown_table(table))
    print()
    ours = frame[(frame.generator == "ddp-betavae") & (frame.weighting == "rows")]
    marg = frame[(frame.generator == "dp-marginals") & (frame.weighting == "rows")]
    key = ["dataset", "split", "clients", "seed"]
    both = ours.merge(marg, on=key, suffixes=("", "_dpm"))
    for (dataset, split), group in both.groupby(["dataset", "split"]):
        gap_c = (group.fold_test_acc - group.central_acc).mean()
        gap_m = (group.fold_test_acc - group.fold_test_acc_dpm).mean()
        print(f"{dataset:13s} {split:14s} seeds {len(group)}: Fold-Test − centralized "
              f"{gap_c:+.2f}, − DP-marginals pool {gap_m:+.2f}")
    equal = frame[(frame.generator == "ddp-betavae") & (frame.weighting == "equal")]
    paired = ours.merge(equal, on=key, suffixes=("", "_equal"))
    for (dataset, split), group in paired.groupby(["dataset", "split"]):
        diff = (group.fold_test_acc - group.fold_test_acc_equal).mean()
        print(f"{dataset:13s} {split:14s} seeds {len(group)}: weighted − equal pool "
              f"(Fold-Test accuracy) {diff:+.2f}")


def main(argv: list[str] | None = None) -> int:
    from threedgl import datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("federation-noniid.csv"))
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--splits", default="dirichlet:0.5,dirichlet:0.1,quantity:0.3")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--generators", default="ddp-betavae,dp-marginals")
    parser.add_argument("--equal", default="quantity:0.3",
                        help="splits on which the equal-share pool is also evaluated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", type=Path, help="print the tables of this CSV and stop")
    args = parser.parse_args(argv)
    if args.report:
        report(args.report)
        return 0
    done = set()
    if args.out.exists():
        for row in csv.DictReader(args.out.open()):
            done.add((row["dataset"], row["split"], int(row["clients"]), int(row["seed"]),
                      row["generator"]))
    else:
        with args.out.open("w", newline="") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    equal = set(args.equal.split(",")) if args.equal else set()
    for seed in range(args.seeds):
        for name in args.datasets.split(","):
            for split in args.splits.split(","):
                for generator in args.generators.split(","):
                    if (name, split, args.clients, seed, generator) in done:
                        continue
                    weightings = ["rows"]
                    if split in equal and generator == "ddp-betavae":
                        weightings.append("equal")
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        rows = run_one(name, split, args.clients, seed, generator, weightings,
                                       args.workers)
                    with args.out.open("a", newline="") as f:
                        csv.DictWriter(f, FIELDS).writerows(rows)
                    for r in rows:
                        print(f"{name} {split} seed {seed} {generator} {r['weighting']}: "
                              f"local {r['local_acc']:.2f}, fold-test {r['fold_test_acc']:.2f}, "
                              f"central {r['central_acc']:.2f} ({r['seconds']:.0f} s)",
                              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
