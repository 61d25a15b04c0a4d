"""Quality bar of DDP-βVAE (issue 3): Table II's Synth column at ε = 1.9, 5 seeds.

For each bundled dataset and seed: stratified 90/10 split; DDP-βVAE with the Table I
preset trained on the train split; a large balanced synthetic table; the size sweep
selected on the real train split (SPEC §4); logistic regression trained on the selected
prefix and scored on the real test split. Prints our mean beside the paper's Synth
numbers and whether Accuracy and F1 meet or beat them.

    python benchmarks/quality.py [--seeds 5] [--datasets titanic,adult] [--categorical argmax]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from threedgl import datasets
from threedgl.evaluation import paper
from threedgl.evaluation.reproduce import MAIN, ReproduceConfig, run_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(datasets.NAMES))
    parser.add_argument("--categorical", default=None, choices=["argmax", "sample"])
    parser.add_argument("--csv", default=None, help="also write every seed's scores here")
    args = parser.parse_args()
    overrides = {"categorical": args.categorical} if args.categorical else {}
    config = ReproduceConfig(datasets=args.datasets.split(","), seeds=args.seeds,
                             generators=(MAIN,), overrides=overrides, table_iii=False)
    rows = []
    start = time.perf_counter()
    for name in config.datasets:
        for seed in range(config.seeds):
            out, _, _ = run_dataset(name, seed, config)
            rows += [r for r in out if r["model"] == "logreg"]
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    report = []
    passed = 0
    for name in config.datasets:
        d = df[df.dataset == name]
        real = d[d.source == "Real"][["accuracy", "f1", "auc"]].mean()
        syn = d[d.source == MAIN][["accuracy", "f1", "auc"]].mean()
        ref = paper.TABLE_II[name]["synth"]
        ok = syn["accuracy"] >= ref[0] and syn["f1"] >= ref[1]
        passed += ok
        report.append({
            "dataset": name,
            "real acc/f1/auc": f"{real['accuracy']:.2f} / {real['f1']:.2f} / {real['auc']:.2f}",
            "synth acc/f1/auc": f"{syn['accuracy']:.2f} / {syn['f1']:.2f} / {syn['auc']:.2f}",
            "paper synth": f"{ref[0]:.2f} / {ref[1]:.2f} / {ref[2]:.2f}",
            "meets acc & f1": "yes" if ok else "no",
            "synthetic size": f"{d[d.source == MAIN]['synthetic_size'].mean():.0f}",
        })
    print(_markdown(pd.DataFrame(report)))
    print(f"\nmeets or beats the paper's Synth Accuracy and F1 on {passed} of {len(config.datasets)} "
          f"datasets (mean of {config.seeds} seeds; {time.perf_counter() - start:.0f} s)")


def _markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
