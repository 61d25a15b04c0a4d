"""Does sampling calibrated to the federation's summed DP measurements help? (issue 21, item 3)

For each dataset and split: 10 clients train default-mode DDP-βVAE generators (ε = 1.9)
on their folds, as ``3dgl simulate`` splits them; the pool (weighted by released rows)
gives 20,000 rows, plainly (``GeneratorsPool.sample``) and calibrated to the federation's
one-way histograms (``threedgl.pool.statistics.calibrated_sample``), both balanced. Each
table is scored against the train split (all clients' rows together: what the federation
as a whole holds) with the k-way marginal error, and by training logistic regression and
gradient boosting on it and testing on the external test split.

    python benchmarks/federation_calibration.py [--datasets titanic,wine-quality] \\
        [--splits stratified,dirichlet:0.1] [--seeds 2] [--out results.csv]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from threedgl.markdown import markdown_table


def main(argv: list[str] | None = None) -> int:
    from threedgl import datasets
    from threedgl.evaluation import utility_scores
    from threedgl.evaluation.marginals import kway_tvd
    from threedgl.federation import plan
    from threedgl.federation.plan import resolve_data, split_for_seed
    from threedgl.federation.splits import parse_split
    from threedgl.federation.workers import (
        PresetFactory,
        TrainTask,
        derive_seed,
        make_executor,
        run_all,
        run_train,
    )
    from threedgl.model.registry import load_generator_bytes
    from threedgl.pool import GeneratorsPool
    from threedgl.pool.statistics import calibrated_sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--splits", default="stratified,dirichlet:0.1")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for name in args.datasets.split(","):
        _, frame, schema, pos, preset = resolve_data(name, None, None, None, None)
        for split in args.splits.split(","):
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                sp = split_for_seed(frame, schema, args.clients, parse_split(split), 0, seed,
                                    test_size=0.1, min_rows=10)
                executor = make_executor(2)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        trained = run_all(run_train, [
                            TrainTask(c, sp.folds[c], schema, PresetFactory(preset),
                                      derive_seed(0, seed, plan.TRAIN, c, bits=128))
                            for c in range(args.clients)], executor, lambda: None)
                finally:
                    if executor is not None:
                        executor.shutdown(wait=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pool = GeneratorsPool(load_generator_bytes(t.artifact) for t in trained
                                          if t.artifact is not None)
                    tables = {"plain": pool.sample(args.rows, random_state=seed),
                              "calibrated": calibrated_sample(pool, args.rows,
                                                              random_state=seed)}
                for how, table in tables.items():
                    tvd = kway_tvd(sp.train, table, schema, ways=(1, 2))
                    row = {"dataset": name, "split": split, "seed": seed, "sampling": how,
                           **{k: round(v, 4) for k, v in tvd.items()}}
                    for model in ("logreg", "hgb"):
                        s = utility_scores(table, sp.test, schema, model=model,
                                           positive_label=pos)
                        row[f"{model}_acc"] = round(100 * s["accuracy"], 2)
                        row[f"{model}_f1"] = round(100 * s["f1"], 2)
                    row["seconds"] = round(time.perf_counter() - t0, 1)
                    rows.append(row)
                    print(row, flush=True)
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    mean = table.groupby(["dataset", "split", "sampling"]).mean(numeric_only=True).drop(
        columns=["seed", "seconds"]).round(3)
    print(markdown_table(mean.reset_index(), floatfmt="{:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
